// SPDX-License-Identifier: Apache-2.0
#include "output/text_lines.h"

#include <algorithm>
#include <cstddef>
#include <cstdio>
#include <iterator>
#include <type_traits>

#include "events/containers.h"
#include "output/names.h"

namespace portwatch {
namespace {

// "container=<12 digits>" for a process whose cgroup shows a container, "" otherwise: it goes
// last on a line, so the columns stay where they were.
std::string container_label(const CgroupPath &cgroup_path) {
    const std::optional<Container> &container = cgroup_path.container();
    if (!container) return "";
    return "container=" + std::string(short_container_id(container->id));
}

std::string joined(const std::string &text, const std::string &more) {
    if (text.empty() || more.empty()) return text + more;
    return text + " " + more;
}

// What one event line shows, column by column.
struct EventRow {
    std::string time;
    std::string_view event, how, syscall;
    const SocketInfo &sock;
    const TaskInfo *task;  // null: the owner is not known
    std::string detail;
};

struct Column {
    const char *header;
    int width;  // padded to it, never cut; the last column is not padded
    std::string (*text)(const EventRow &row);
};

std::string task_text(const EventRow &row, std::string (*text)(const TaskInfo &task)) {
    return row.task ? text(*row.task) : "-";
}

constexpr Column kEventColumns[] = {
    {"TIME", 15, [](const EventRow &row) { return row.time; }},
    {"EVENT", 15, [](const EventRow &row) { return std::string(row.event); }},
    {"HOW", 16, [](const EventRow &row) { return std::string(row.how); }},
    {"SYSCALL", 8, [](const EventRow &row) { return std::string(row.syscall); }},
    {"PROTO", 5,
     [](const EventRow &row) {
         return std::string(name_of(row.sock.proto)) +
                (row.sock.family == Family::ipv4 ? "4" : "6");
     }},
    {"PID", 7,
     [](const EventRow &row) {
         return task_text(row, [](const TaskInfo &task) { return std::to_string(task.pid); });
     }},
    {"TID", 7,
     [](const EventRow &row) {
         return task_text(row, [](const TaskInfo &task) { return std::to_string(task.tid); });
     }},
    {"COMM", 16,
     [](const EventRow &row) {
         return task_text(row,
                          [](const TaskInfo &task) { return printable_column(task.comm, 16); });
     }},
    {"NETNS", 10, [](const EventRow &row) { return std::to_string(row.sock.netns); }},
    {"LOCAL", 26,
     [](const EventRow &row) { return endpoint(row.sock.local_addr, row.sock.local_port); }},
    {"REMOTE", 26,
     [](const EventRow &row) {
         return row.sock.has_remote() ? endpoint(row.sock.remote_addr, row.sock.remote_port)
                                      : std::string("-");
     }},
    {"DETAIL", 0,
     [](const EventRow &row) {
         return joined(row.detail, row.task ? container_label(row.task->cgroup_path) : "");
     }},
};

std::string columns_line(std::string (*text_of)(const Column &column, const EventRow *row),
                         const EventRow *row) {
    std::string line;
    for (const Column &column : kEventColumns) {
        std::string text = text_of(column, row);
        line += text;
        if (&column == std::end(kEventColumns) - 1) break;
        line.append(std::max<std::ptrdiff_t>(column.width - std::ptrdiff_t(text.size()), 0) + 1,
                    ' ');
    }
    return line + "\n";
}

std::string row_line(const EventRow &row) {
    return columns_line([](const Column &column, const EventRow *of) { return column.text(*of); },
                        &row);
}

// A field's value as the text line writes it (Detail::key_value).
std::string text_of(bool value) {
    return value ? "true" : "false";
}
std::string text_of(double value) {
    return format_text("%g", value);
}
template <std::integral Value>
requires(!std::is_same_v<Value, bool>) std::string text_of(Value value) {
    return std::to_string(value);
}
std::string text_of(const IpAddress &addr) {
    return to_string(addr);
}
std::string text_of(std::string_view text) {
    return printable(std::string(text));
}
std::string text_of(RawText text) {
    return printable(std::string(text.bytes));
}
template <class Value>
requires requires(Value value) {
    name_of(value);
}
std::string text_of(Value value) {
    return std::string(name_of(value));
}
std::string text_of(ErrnoName error) {
    return errno_name(error.error);
}
template <class Value>
std::string text_of(const std::optional<Value> &value) {
    return value ? text_of(*value) : "-";
}
template <class Value>
std::string text_of(const IfSet<Value> &value) {
    return value.set ? text_of(value.value) : "-";
}

// "key=value" for each field its table (and its groups' tables) marks Detail::key_value.
template <class Object, class Table>
void add_key_values(std::string &detail, const Object &object, const Table &table) {
    for_each_field(table, [&](const auto &entry) {
        using Entry = std::remove_cvref_t<decltype(entry)>;
        if constexpr (kIsGroup<Entry>) {
            visit_group(
                object, entry,
                [&](const auto &member) { add_key_values(detail, member, entry.fields); },
                [] {});  // an unknown owner adds nothing
        } else if constexpr (!kIsCopy<Entry>) {
            if (entry.detail == Detail::key_value)
                detail =
                    joined(detail, std::string(entry.key) + "=" + text_of(value_of(object, entry)));
        }
    });
}

template <class Object, class Table>
std::string with_key_values(std::string detail, const Object &object, const Table &table) {
    add_key_values(detail, object, table);
    return detail;
}

std::string allocate_line(const AllocateEvent &event, const TimeBase &time) {
    std::string detail =
        event.failed() ? errno_name(event.error) : (event.ephemeral ? "ephemeral" : "");
    return row_line({clock_time(time.realtime(event.boot_ns)),
                     event.failed() ? "FAILED" : "allocate", name_of(event.how),
                     name_of(event.syscall), event.sock, &event.task,
                     with_key_values(detail, event, kAllocateFields)});
}

std::string release_line(const ReleaseEvent &event, const TimeBase &time) {
    std::string reason(name_of(event.reason));
    char held[64];
    if (event.owner_known)
        std::snprintf(held, sizeof(held), "held %.3fms %s", event.held_ns / 1e6, reason.c_str());
    else
        std::snprintf(held, sizeof(held), "owner unknown %s", reason.c_str());
    return row_line({clock_time(time.realtime(event.boot_ns)), "release",
                     event.owner_known ? name_of(event.how) : "-", "-", event.sock,
                     event.owner_known ? &event.owner : nullptr,
                     with_key_values(held, event, kReleaseFields)});
}

}  // namespace

std::string clock_time(std::int64_t realtime_ns) {
    return rfc3339_utc(realtime_ns).substr(11, 15);  // HH:MM:SS.uuuuuu
}

std::string scope_name(const ScopeUsage &usage) {
    const ScopeKey &key = usage.key;
    if (!per_destination(key.kind) || key.remote_port == 0) return std::string(name_of(key.kind));
    std::string prefix = key.kind == ScopeKind::nat ? "nat " : "";
    return prefix + to_string(key.local_addr) + "->" + endpoint(key.remote_addr, key.remote_port);
}

std::string eta_text(const std::optional<double> &eta) {
    return eta ? format_text("%.0fs", *eta) : std::string("-");
}

std::string text_header() {
    return columns_line(
        [](const Column &column, const EventRow *) { return std::string(column.header); }, nullptr);
}

std::string text_line(const Event &event, const TimeBase &time) {
    if (const auto *allocate = std::get_if<AllocateEvent>(&event))
        return allocate_line(*allocate, time);
    return release_line(std::get<ReleaseEvent>(event), time);
}

std::string text_line(const ReadyInfo &ready) {
    std::string hooks;
    for (const auto &hook : ready.hooks) hooks += (hooks.empty() ? "" : ", ") + hook;
    return "# portwatch " + ready.version + " ready (kernel " + ready.kernel_release +
           "); hooks (" + ready.hook_set + ", " + ready.hook_set_reason + "): " + hooks +
           (ready.metrics_address.empty() ? "" : "; metrics on http://" + ready.metrics_address) +
           (ready.events == "all" ? "" : "; event lines: " + ready.events) + "\n";
}

std::string text_line(const StatsSnapshot &stats) {
    auto total = [](const CounterTotals::Matrix &m, std::size_t type) {
        std::uint64_t n = 0;
        for (auto v : m[type]) n += v;
        return n;
    };
    char buffer[512];
    std::snprintf(buffer, sizeof(buffer),
                  "# stats%s: allocate %llu, failed %llu, release %llu; lost %llu; untracked %llu; "
                  "decode errors %llu\n",
                  stats.final ? " (final)" : "",
                  (unsigned long long)total(stats.kernel.emitted, PW_RECORD_ALLOCATE),
                  (unsigned long long)total(stats.kernel.emitted, PW_RECORD_ALLOCATE_FAILED),
                  (unsigned long long)total(stats.kernel.emitted, PW_RECORD_RELEASE),
                  (unsigned long long)stats.kernel.lost_total(),
                  (unsigned long long)stats.kernel.untracked,
                  (unsigned long long)stats.decode_errors);
    std::string line = buffer;
    if (stats.output_lines_lost > 0)  // a full disk: this line may be the first to say so
        line.insert(line.size() - 1,
                    "; output lines lost " + std::to_string(stats.output_lines_lost));
    if (!stats.counters_error.empty())  // the figures are the last that could be read
        line.insert(line.size() - 1, "; " + stats.counters_error);
    return line;
}

namespace {

// pid 0 is an owner nobody could name: "-", as in a release line.
std::string pid_text(std::uint32_t pid) {
    return pid ? std::to_string(pid) : "-";
}

std::string comm_text(std::uint32_t pid, const std::string &comm) {
    return pid ? printable(comm) : "-";
}

std::string top_text(const std::vector<TopProcess> &top) {
    std::string text;
    for (const auto &process : top)
        text += format_text("%s%s[%s] %zu", text.empty() ? "" : ", ",
                            comm_text(process.pid, process.comm).c_str(),
                            pid_text(process.pid).c_str(), process.ports);
    return text.empty() ? "-" : text;
}

std::string held_text(const ProcessUsage &usage) {
    std::string text;
    for (const auto &[kind, count] : usage.held)
        if (count)
            text += format_text("%s%s/%s %zu", text.empty() ? "" : ", ",
                                std::string(name_of(kind.first)).c_str(),
                                std::string(name_of(kind.second)).c_str(), count);
    return text.empty() ? "-" : text;
}

std::string left_out_row(const NetnsReport &ns) {
    const ScopesLeftOut &rest = ns.scopes_left_out;
    if (!rest.count) return "";
    return format_text("%-11u ... %zu more scopes: %zu in use, %zu TIME_WAIT, fullest %.1f%% %s\n",
                       ns.netns, rest.count, rest.in_use, rest.time_wait, rest.utilization * 100,
                       std::string(name_of(rest.level)).c_str());
}

std::string left_out_row(const ProcessesLeftOut &rest) {
    if (!rest.count) return "";
    return format_text("... %zu more processes: %zu ports held, %llu allocations, %llu failures\n",
                       rest.count, rest.ports_held, (unsigned long long)rest.allocations,
                       (unsigned long long)rest.failures);
}

std::string figures_text(const Cause &cause) {
    std::string text;
    for (const Figure &figure : cause.figures)
        text += format_text(figure.whole ? "%s%s %.0f" : "%s%s %.2f", text.empty() ? "" : ", ",
                            figure.name, figure.value);
    return text;
}

// "time_wait 80% of the range (also narrow_range 79%): <advice>"
std::string top_cause_text(const std::vector<Cause> &causes) {
    if (causes.empty()) return "";
    std::string text =
        format_text("; why: %s %.0f%% of the range", std::string(name_of(causes[0].kind)).c_str(),
                    causes[0].share * 100);
    for (std::size_t i = 1; i < causes.size(); i++)
        text += format_text("%s%s %.0f%%", i == 1 ? " (also " : ", ",
                            std::string(name_of(causes[i].kind)).c_str(), causes[i].share * 100);
    if (causes.size() > 1) text += ")";
    return text + "; do: " + causes[0].advice;
}

// One row per cause under its scope's row in the report.
std::string cause_rows(const std::vector<Cause> &causes) {
    std::string text;
    for (const Cause &cause : causes)
        text += format_text("%-11s why: %s %.1f%% of the range (%s): %s\n", "",
                            std::string(name_of(cause.kind)).c_str(), cause.share * 100,
                            figures_text(cause).c_str(), cause.advice.c_str());
    return text;
}

}  // namespace

std::string text_line(const Warning &warning, const TimeBase &time) {
    const ScopeUsage &usage = warning.usage;
    std::string line = format_text(
        "# %s %s %s %s netns %u: %zu/%zu in use (%.1f%%), %zu TIME_WAIT, eta %s; top: %s",
        clock_time(time.realtime(warning.boot_ns)).c_str(),
        std::string(name_of(warning.level)).c_str(), std::string(name_of(usage.proto)).c_str(),
        scope_name(usage).c_str(), usage.key.netns, usage.in_use, usage.capacity,
        usage.utilization * 100, usage.time_wait, eta_text(usage.eta_seconds).c_str(),
        top_text(usage.top_processes).c_str());
    if (warning.failure)
        line += format_text("; FAILED %s[%u] %s", printable(warning.failure->task.comm).c_str(),
                            warning.failure->task.pid, errno_name(warning.failure->error).c_str());
    return line + top_cause_text(usage.causes) + "\n";
}

std::string text_report(const Report &report, const TimeBase &time) {
    std::string text =
        format_text("# report %s (interval %.1fs)\n",
                    clock_time(time.realtime(report.boot_ns)).c_str(), report.interval_s);
    text += format_text("%-11s %-11s %-4s %-5s %-45s %7s %7s %7s %6s %8s %7s %s\n", "NETNS",
                        "RANGE", "RSV", "PROTO", "SCOPE", "IN_USE", "CAP", "UTIL", "TW", "RATE/s",
                        "ETA", "LEVEL");
    for (const auto &ns : report.netns) {
        std::string range = format_text("%u-%u", ns.config.range.low, ns.config.range.high);
        for (const auto &usage : ns.scopes) {
            text += format_text(
                "%-11u %-11s %-4zu %-5s %-45s %7zu %7zu %6.1f%% %6zu %8.1f %7s %s\n", ns.netns,
                range.c_str(), ns.config.reserved_in_range(),
                std::string(name_of(usage.proto)).c_str(), scope_name(usage).c_str(), usage.in_use,
                usage.capacity, usage.utilization * 100, usage.time_wait, usage.allocation_rate,
                eta_text(usage.eta_seconds).c_str(), std::string(name_of(usage.level)).c_str());
            text += cause_rows(usage.causes);
        }
        text += left_out_row(ns);
    }
    text += format_text("%-8s %-16s %-11s %6s %6s %5s %8s %s\n", "PID", "COMM", "NETNS", "HELD",
                        "ALLOC", "FAIL", "RATE/s", "BY KIND");
    for (const auto &usage : report.processes)
        text +=
            format_text("%-8s %-16s %-11u %6zu %6llu %5llu %8.1f %s\n", pid_text(usage.pid).c_str(),
                        usage.pid ? printable_column(usage.comm, 16).c_str() : "-", usage.netns,
                        usage.held_total(), (unsigned long long)usage.allocations,
                        (unsigned long long)usage.failures, usage.allocation_rate,
                        joined(held_text(usage), container_label(usage.cgroup_path)).c_str());
    text += left_out_row(report.processes_left_out);
    return text;
}

}  // namespace portwatch
