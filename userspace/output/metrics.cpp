// SPDX-License-Identifier: Apache-2.0
#include "output/metrics.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <functional>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "events/containers.h"
#include "output/names.h"
#include "output/value_text.h"

namespace portwatch {
namespace {

using Labels = std::vector<std::pair<std::string_view, std::string>>;

std::string escape_label_value(std::string_view raw) {
    // UTF-8 (the format requires it) without terminal controls: a scrape is often read with
    // curl or cat, and a process may name itself anything
    std::string text = printable(raw);
    std::string out;
    out.reserve(text.size());
    for (char c : text) {
        if (c == '\\')
            out += "\\\\";
        else if (c == '"')
            out += "\\\"";
        else if (c == '\n')
            out += "\\n";
        else
            out += c;
    }
    return out;
}

std::string format_value(double value) {
    if (std::isnan(value)) return "NaN";
    if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
    char buffer[32];
    auto result = std::to_chars(buffer, buffer + sizeof(buffer), value);
    return std::string(buffer, result.ptr);
}

// One metric family at a time: HELP and TYPE, then its samples.
class Exposition {
  public:
    void family(std::string_view name, std::string_view type, std::string_view help) {
        name_ = name;
        out_ += "# HELP ";
        out_ += name;
        out_ += ' ';
        out_ += help;
        out_ += "\n# TYPE ";
        out_ += name;
        out_ += ' ';
        out_ += type;
        out_ += '\n';
    }

    void sample(const Labels &labels, double value) {
        out_ += name_;
        if (!labels.empty()) {
            out_ += '{';
            for (std::size_t i = 0; i < labels.size(); ++i) {
                if (i) out_ += ',';
                out_ += labels[i].first;
                out_ += "=\"";
                out_ += escape_label_value(labels[i].second);
                out_ += '"';
            }
            out_ += '}';
        }
        out_ += ' ';
        out_ += format_value(value);
        out_ += '\n';
    }

    std::string take() { return std::move(out_); }

  private:
    std::string name_;
    std::string out_;
};

std::string text_of(std::string_view name) {
    return std::string(name);
}

// The scopes that get series: every per-netns scope (bind, udp), and the fullest
// `top_n` destination and NAT scopes, which are the ones a host can have thousands of.
std::vector<const ScopeUsage *> exported_scopes(const Report &usage, std::size_t top_n) {
    std::vector<const ScopeUsage *> per_netns, destinations;
    for (const NetnsReport &ns : usage.netns)
        for (const ScopeUsage &scope : ns.scopes)
            (per_destination(scope.key.kind) ? destinations : per_netns).push_back(&scope);
    std::stable_sort(
        destinations.begin(), destinations.end(), [](const ScopeUsage *a, const ScopeUsage *b) {
            return std::tie(a->utilization, a->in_use) > std::tie(b->utilization, b->in_use);
        });
    destinations.resize(std::min(destinations.size(), top_n));
    per_netns.insert(per_netns.end(), destinations.begin(), destinations.end());
    return per_netns;
}

Labels scope_labels(const ScopeUsage &scope) {
    Labels labels{{"netns", std::to_string(scope.key.netns)},
                  {"scope", text_of(name_of(scope.key.kind))},
                  {"proto", text_of(name_of(scope.proto))}};
    if (per_destination(scope.key.kind)) {
        labels.emplace_back("src_addr", to_string(scope.key.local_addr));
        labels.emplace_back("dst_addr", to_string(scope.key.remote_addr));
        labels.emplace_back("dst_port", std::to_string(scope.key.remote_port));
    }
    return labels;
}

void write_scopes(Exposition &out, const MetricsInput &input) {
    std::vector<const ScopeUsage *> scopes = exported_scopes(*input.usage, input.top_n);
    struct Gauge {
        const char *name;
        const char *help;
        std::function<std::optional<double>(const ScopeUsage &)> value;
    };
    const Gauge gauges[] = {
        {"portwatch_scope_ports_in_use",
         "Ports the allocator cannot hand out in this scope (TIME_WAIT included where it blocks)",
         [](const ScopeUsage &s) { return double(s.in_use); }},
        {"portwatch_scope_ports_capacity", "Ports an automatic choice can hand out in this scope",
         [](const ScopeUsage &s) { return double(s.capacity); }},
        {"portwatch_scope_utilization_ratio",
         "ports_in_use / ports_capacity (1 when capacity is 0)",
         [](const ScopeUsage &s) { return s.utilization; }},
        {"portwatch_scope_time_wait_ports", "Ports of this scope held by TIME_WAIT sockets",
         [](const ScopeUsage &s) { return double(s.time_wait); }},
        {"portwatch_scope_allocation_rate", "Allocations per second in this scope (last minute)",
         [](const ScopeUsage &s) { return s.allocation_rate; }},
        {"portwatch_scope_exhaustion_eta_seconds",
         "Seconds until the scope is full at the current fill rate (absent when not filling)",
         [](const ScopeUsage &s) { return s.eta_seconds; }},
        {"portwatch_scope_level", "Warning level of the scope: 0 ok, 1 warning, 2 critical",
         [](const ScopeUsage &s) { return double(s.level); }},
    };
    for (const Gauge &gauge : gauges) {
        out.family(gauge.name, "gauge", gauge.help);
        for (const ScopeUsage *scope : scopes)
            if (auto value = gauge.value(*scope)) out.sample(scope_labels(*scope), *value);
    }
    out.family(
        "portwatch_scope_cause", "gauge",
        "Share of the range a cause of a scope at warning or above explains (docs/usage.md: Why "
        "is it filling?)");
    for (const ScopeUsage *scope : scopes)
        for (const Cause &cause : scope->causes) {
            Labels labels = scope_labels(*scope);
            labels.emplace_back("cause", text_of(name_of(cause.kind)));
            out.sample(labels, cause.share);
        }
    out.family(
        "portwatch_scopes", "gauge",
        "Scopes with ports in use or recent allocations, exported or not (see --metrics-top)");
    for (ScopeKind kind :
         {ScopeKind::destination, ScopeKind::bind, ScopeKind::udp, ScopeKind::nat}) {
        std::size_t count = 0;
        for (const NetnsReport &ns : input.usage->netns)
            count += std::count_if(ns.scopes.begin(), ns.scopes.end(),
                                   [kind](const ScopeUsage &s) { return s.key.kind == kind; });
        out.sample({{"scope", text_of(name_of(kind))}}, double(count));
    }
}

// Per netns that translates (or that dropped): conntrack's insert_failed since the start.
void write_nat_drops(Exposition &out, const MetricsInput &input) {
    out.family("portwatch_nat_drops_total", "counter",
               "Packets a netns's NAT dropped for want of a free tuple (conntrack insert_failed), "
               "since start");
    for (const NetnsReport &ns : input.usage->netns) {
        bool translates = std::any_of(ns.scopes.begin(), ns.scopes.end(), [](const ScopeUsage &s) {
            return s.key.kind == ScopeKind::nat;
        });
        if (translates || ns.nat_drops)
            out.sample({{"netns", std::to_string(ns.netns)}}, double(ns.nat_drops));
    }
}

void write_processes(Exposition &out, const MetricsInput &input) {
    out.family("portwatch_process_ports_held", "gauge",
               "Ports held by the processes holding most (top --metrics-top)");
    std::size_t written = 0;
    for (const ProcessUsage &process : input.usage->processes) {
        if (written == input.top_n || process.held_total() == 0) break;
        if (process.pid == 0) continue;  // sockets from the tables whose owner was not found
        const std::optional<Container> &container = process.cgroup_path.container();
        out.sample({{"pid", std::to_string(process.pid)},
                    {"comm", process.comm},
                    {"netns", std::to_string(process.netns)},
                    {"cgroup", process.cgroup_path.text()},
                    {"container_id", container ? container->id : ""},
                    {"container_runtime", container ? container->runtime : ""}},
                   double(process.held_total()));
        ++written;
    }
}

void write_event_counters(Exposition &out, const EventCounters &counters) {
    out.family("portwatch_allocations_total", "counter",
               "Ports handed out, by how, proto and family");
    for (const auto &[key, count] : counters.allocations) {
        auto [how, proto, family] = key;
        out.sample({{"how", text_of(name_of(how))},
                    {"proto", text_of(name_of(proto))},
                    {"family", text_of(name_of(family))}},
                   double(count));
    }
    out.family("portwatch_allocation_failures_total", "counter",
               "Allocations that failed, by how, proto and errno");
    for (const auto &[key, count] : counters.failures) {
        auto [how, proto, error] = key;
        out.sample({{"how", text_of(name_of(how))},
                    {"proto", text_of(name_of(proto))},
                    {"errno", errno_name(error)}},
                   double(count));
    }
    out.family("portwatch_releases_total", "counter", "Ports that went back, by proto and reason");
    for (const auto &[key, count] : counters.releases)
        out.sample(
            {{"proto", text_of(name_of(key.first))}, {"reason", text_of(name_of(key.second))}},
            double(count));
    out.family("portwatch_warnings_total", "counter", "Scope level changes, by the level entered");
    for (WarningLevel level : {WarningLevel::ok, WarningLevel::warning, WarningLevel::critical})
        out.sample({{"level", text_of(name_of(level))}}, double(counters.warnings[int(level)]));
}

const char *record_type_name(int type) {
    switch (type) {
        case PW_RECORD_ALLOCATE:
            return "allocate";
        case PW_RECORD_ALLOCATE_FAILED:
            return "allocate_failed";
        default:
            return "release";
    }
}

void write_record_counters(Exposition &out, const char *name, const char *help,
                           const CounterTotals::Matrix &matrix) {
    out.family(name, "counter", help);
    for (int type = PW_RECORD_ALLOCATE; type < PW_RECORD_TYPE_COUNT; ++type) {
        std::uint64_t total = 0;
        for (std::uint64_t count : matrix[type]) total += count;
        out.sample({{"type", record_type_name(type)}}, double(total));
    }
}

void write_agent_stats(Exposition &out, const MetricsInput &input) {
    const StatsSnapshot &stats = *input.stats;
    write_record_counters(out, "portwatch_events_total",
                          "Records the BPF programs wrote to the ring buffer",
                          stats.kernel.emitted);
    write_record_counters(out, "portwatch_events_lost_total",
                          "Records lost because the ring buffer was full", stats.kernel.lost);
    struct Counter {
        const char *name;
        const char *help;
        std::uint64_t value;
    };
    const Counter counters[] = {
        {"portwatch_decode_errors_total", "Records user space rejected", stats.decode_errors},
        {"portwatch_untracked_releases_total",
         "Releases the kernel side could not follow (no cookie, or its table was full)",
         stats.kernel.untracked},
        {"portwatch_pending_overflow_total",
         "Syscalls in flight the kernel side could not remember", stats.kernel.pending_overflow},
        {"portwatch_owners_forgotten_total", "Releases reported without their owner",
         stats.owners_forgotten},
        {"portwatch_output_lines_lost_total",
         "Output lines that could not be written (a full disk), dropped whole",
         stats.output_lines_lost},
        {"portwatch_reconcile_runs_total", "Passes over the kernel's socket tables",
         stats.reconcile.runs},
        {"portwatch_nat_event_overflows_total",
         "Times a conntrack events socket overflowed (its table was read again)",
         stats.nat.overflows},
    };
    for (const Counter &counter : counters) {
        out.family(counter.name, "counter", counter.help);
        out.sample({}, double(counter.value));
    }
    out.family("portwatch_reconcile_corrections_total", "counter",
               "Corrections the socket tables made to the event-built picture, by kind");
    out.sample({{"kind", "added"}}, double(stats.reconcile.added));
    out.sample({{"kind", "removed"}}, double(stats.reconcile.removed));
    out.sample({{"kind", "time_wait"}}, double(stats.reconcile.time_wait));
    out.family("portwatch_reconcile_duration_seconds", "gauge",
               "Wall time of the first (baseline) and of the latest pass over the socket tables");
    out.sample({{"pass", "baseline"}}, stats.reconcile.baseline_ms / 1e3);
    out.sample({{"pass", "last"}}, stats.reconcile.last_ms / 1e3);
    out.family("portwatch_tracked_sockets", "gauge", "Sockets whose ports the model holds");
    out.sample({}, double(stats.tracked_sockets));
    out.family("portwatch_nat_mappings", "gauge", "Source NAT mappings the model holds");
    out.sample({}, double(stats.nat.mappings));
    out.family("portwatch_reach", "gauge",
               "1 when the agent sees every network namespace, socket owner or cgroup; 0 when its "
               "privileges or cgroup namespace limit it (stderr says how)");
    const Reach &reach = stats.reach;
    out.sample({{"aspect", "every_netns"}}, reach.every_netns ? 1 : 0);
    out.sample({{"aspect", "every_owner"}}, reach.every_owner ? 1 : 0);
    out.sample({{"aspect", "every_cgroup"}}, reach.every_cgroup ? 1 : 0);
    out.family("portwatch_uptime_seconds", "gauge", "Seconds since the agent attached");
    out.sample({}, stats.uptime_s);
}

}  // namespace

void EventCounters::count(const Event &event) {
    if (const auto *allocate = std::get_if<AllocateEvent>(&event)) {
        if (allocate->failed())
            ++failures[{allocate->how, allocate->sock.proto, allocate->error}];
        else
            ++allocations[{allocate->how, allocate->sock.proto, allocate->sock.family}];
        return;
    }
    const auto &release = std::get<ReleaseEvent>(event);
    ++releases[{release.sock.proto, release.reason}];
}

void EventCounters::count(const Warning &warning) {
    ++warnings[int(warning.level)];
}

std::string render_prometheus(const MetricsInput &input) {
    Exposition out;
    out.family("portwatch_build_info", "gauge",
               "Always 1; the agent's version, kernel release and hook set");
    out.sample(
        {{"version", input.version}, {"kernel", input.kernel_release}, {"hooks", input.hook_set}},
        1);
    write_scopes(out, input);
    write_nat_drops(out, input);
    write_processes(out, input);
    write_event_counters(out, *input.counters);
    write_agent_stats(out, input);
    return out.take();
}

}  // namespace portwatch
