// SPDX-License-Identifier: Apache-2.0
#include "output/top_screen.h"

#include <algorithm>

#include "events/containers.h"
#include "output/names.h"
#include "output/text_lines.h"

namespace portwatch {
namespace {

using Style = ScreenLine::Style;

constexpr std::size_t kSectionOverhead = 3;  // blank line, title, column heading
constexpr const char *kScopeColumns = "%-8s %6s %8s %8s %6s %8s %7s %-11s %-5s %s";
constexpr const char *kProcessColumns = "%-8s %-16s %-11s %6s %6s %6s %8s %6s  %s";
constexpr const char *kFailureColumns = "%-8s %-8s %-16s %-14s %-16s %-8s %-11s %s";

Style style_of(WarningLevel level) {
    switch (level) {
        case WarningLevel::critical:
            return Style::critical;
        case WarningLevel::warning:
            return Style::warning;
        case WarningLevel::ok:
            break;
    }
    return Style::normal;
}

std::vector<const ScopeUsage *> fullest_scopes(const Report &report) {
    std::vector<const ScopeUsage *> scopes;
    for (const NetnsReport &ns : report.netns)
        for (const ScopeUsage &scope : ns.scopes) scopes.push_back(&scope);
    std::stable_sort(scopes.begin(), scopes.end(), [](const ScopeUsage *a, const ScopeUsage *b) {
        return std::tie(a->utilization, a->in_use) > std::tie(b->utilization, b->in_use);
    });
    return scopes;
}

// "  why: time_wait 80%": the cause explaining most of a scope at warning or above.
std::string why_text(const ScopeUsage &scope) {
    if (scope.causes.empty()) return "";
    const Cause &top = scope.causes.front();
    return format_text("  why: %s %.0f%%", std::string(name_of(top.kind)).c_str(), top.share * 100);
}

ScreenLine scope_line(const ScopeUsage &scope) {
    return {
        format_text(kScopeColumns, std::string(name_of(scope.level)).c_str(),
                    format_text("%.1f%%", scope.utilization * 100).c_str(),
                    std::to_string(scope.in_use).c_str(), std::to_string(scope.capacity).c_str(),
                    std::to_string(scope.time_wait).c_str(),
                    format_text("%.1f", scope.allocation_rate).c_str(),
                    eta_text(scope.eta_seconds).c_str(), std::to_string(scope.key.netns).c_str(),
                    std::string(name_of(scope.proto)).c_str(),
                    (scope_name(scope) + why_text(scope)).c_str()),
        style_of(scope.level)};
}

std::size_t held_of(const ProcessUsage &process, Proto proto) {
    std::size_t total = 0;
    for (const auto &[kind, count] : process.held)
        if (kind.first == proto) total += count;
    return total;
}

std::string container_text(const ProcessUsage &process) {
    const std::optional<Container> &container = process.cgroup_path.container();
    if (!container) return "-";
    return container->runtime + " " + std::string(short_container_id(container->id));
}

ScreenLine process_line(const ProcessUsage &process) {
    return {format_text(kProcessColumns, std::to_string(process.pid).c_str(),
                        printable_column(process.comm, 16).c_str(),
                        std::to_string(process.netns).c_str(),
                        std::to_string(process.held_total()).c_str(),
                        std::to_string(held_of(process, Proto::tcp)).c_str(),
                        std::to_string(held_of(process, Proto::udp)).c_str(),
                        format_text("%.1f", process.allocation_rate).c_str(),
                        std::to_string(process.failures).c_str(), container_text(process).c_str())};
}

ScreenLine failure_line(const AllocateEvent &failure, const TimeBase &time) {
    std::string remote = failure.sock.has_remote()
                             ? endpoint(failure.sock.remote_addr, failure.sock.remote_port)
                             : "-";
    return {
        format_text(
            kFailureColumns, clock_time(time.realtime(failure.boot_ns)).substr(0, 8).c_str(),
            std::to_string(failure.task.pid).c_str(),
            printable_column(failure.task.comm, 16).c_str(), errno_name(failure.error).c_str(),
            std::string(name_of(failure.how)).c_str(),
            std::string(name_of(failure.syscall)).c_str(),
            std::to_string(failure.sock.netns).c_str(),
            (endpoint(failure.sock.local_addr, failure.sock.local_port) + " -> " + remote).c_str()),
        Style::critical};
}

// The rows each section gets below its title and heading: failures a quarter, the rest
// shared by scopes and processes, and what one section leaves unused goes to the others.
struct Budget {
    std::size_t scopes = 0, processes = 0, failures = 0;
};

Budget share_rows(std::size_t rows, std::size_t scopes, std::size_t processes,
                  std::size_t failures) {
    std::size_t fixed = 1 + 3 * kSectionOverhead;
    std::size_t left = rows > fixed ? rows - fixed : 0;
    Budget budget;
    budget.failures =
        std::min(std::max<std::size_t>(1, failures), std::max<std::size_t>(1, left / 4));
    left -= std::min(left, budget.failures);
    budget.scopes = std::min(std::max<std::size_t>(1, scopes), (left + 1) / 2);
    budget.processes =
        std::min(std::max<std::size_t>(1, processes), left - std::min(left, budget.scopes));
    budget.scopes =
        std::min(std::max<std::size_t>(1, scopes), left - std::min(left, budget.processes));
    return budget;
}

// Only the rows that fit are formatted: a host can have thousands of scopes.
template <typename Items, typename Format>
void section(std::vector<ScreenLine> &lines, const char *title, std::string heading,
             const Items &items, std::size_t budget, Format format_row) {
    lines.push_back({});
    lines.push_back({title, Style::title});
    lines.push_back({std::move(heading), Style::heading});
    if (items.empty()) lines.push_back({"  none"});
    bool cut = items.size() > budget && budget > 0;
    std::size_t shown = cut ? budget - 1 : items.size();
    for (std::size_t i = 0; i < shown; ++i) lines.push_back(format_row(items[i]));
    if (cut) lines.push_back({format_text("  ... %zu more", items.size() - shown)});
}

// Cuts at `cols` bytes without splitting a UTF-8 sequence.
void fit(std::string &text, std::size_t cols) {
    if (text.size() <= cols) return;
    std::size_t cut = cols;
    while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) --cut;
    text.resize(cut);
}

std::string title_line(const TopInput &input) {
    const StatsSnapshot &stats = *input.stats;
    std::uint64_t seen = 0;
    for (const auto &row : stats.kernel.emitted)
        for (std::uint64_t count : row) seen += count;
    return format_text(
        "portwatch top  %s UTC  namespaces %zu  sockets %zu  events %llu  lost %llu"
        "  (q quits)",
        clock_time(input.now_realtime_ns).substr(0, 8).c_str(), input.current->netns.size(),
        stats.tracked_sockets, (unsigned long long)seen,
        (unsigned long long)stats.kernel.lost_total());
}

}  // namespace

void RecentFailures::add(const AllocateEvent &failure) {
    failures_.push_front(failure);
    if (failures_.size() > capacity_) failures_.pop_back();
}

std::vector<ScreenLine> render_top(const TopInput &input, std::size_t rows, std::size_t cols) {
    std::vector<const ScopeUsage *> scopes = fullest_scopes(*input.current);
    std::vector<const ProcessUsage *> processes;
    for (const ProcessUsage &process : input.current->processes)
        if (process.pid != 0) processes.push_back(&process);
    const std::deque<AllocateEvent> &failures = input.failures->newest_first();
    Budget budget = share_rows(rows, scopes.size(), processes.size(), failures.size());

    std::vector<ScreenLine> lines{{title_line(input), Style::title}};
    section(lines, "SCOPES CLOSEST TO EXHAUSTION",
            format_text(kScopeColumns, "LEVEL", "USE", "IN_USE", "CAPACITY", "TW", "ALLOC/s", "ETA",
                        "NETNS", "PROTO", "SCOPE"),
            scopes, budget.scopes, [](const ScopeUsage *scope) { return scope_line(*scope); });
    section(lines, "PROCESSES HOLDING MOST PORTS",
            format_text(kProcessColumns, "PID", "COMM", "NETNS", "PORTS", "TCP", "UDP", "ALLOC/s",
                        "FAILS", "CONTAINER"),
            processes, budget.processes,
            [](const ProcessUsage *process) { return process_line(*process); });
    section(lines, "RECENT FAILURES",
            format_text(kFailureColumns, "TIME", "PID", "COMM", "ERROR", "HOW", "SYSCALL", "NETNS",
                        "LOCAL -> REMOTE"),
            failures, budget.failures,
            [&](const AllocateEvent &failure) { return failure_line(failure, input.time); });
    if (lines.size() > rows) lines.resize(rows);
    for (ScreenLine &line : lines) fit(line.text, cols);
    return lines;
}

}  // namespace portwatch
