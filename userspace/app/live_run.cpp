// SPDX-License-Identifier: Apache-2.0
#include "app/live_run.h"

#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <set>

#include "capture/capture.h"
#include "enrich/enricher.h"
#include "model/port_model.h"
#include "output/report_bound.h"
#include "output/reporter.h"
#include "base/schedule.h"
#include "app/version.h"
#include "app/host_tables.h"
#include "app/nat_watch.h"
#include "capture/feature_probe.h"
#include "system/cgroup_id_lookup.h"
#include "system/netns_config.h"
#include "system/output_file.h"
#include "system/privileges.h"
#include "system/host_info.h"

namespace portwatch {
namespace {

volatile std::sig_atomic_t g_stop_signal = 0;
volatile std::sig_atomic_t g_stop_from_terminal = 0;
volatile std::sig_atomic_t g_reopen_signal = 0;

// SI_KERNEL: the tty driver's SIGINT/SIGQUIT (isig(), kill_pgrp()) and a hangup's SIGHUP.
void on_stop_signal(int signal, siginfo_t *info, void *) {
    g_stop_from_terminal = info && info->si_code == SI_KERNEL;
    g_stop_signal = signal;
}

void on_reopen_signal(int signal) {
    g_reopen_signal = signal;
}

}  // namespace

bool stop_requested() {
    return g_stop_signal != 0;
}

ClockReading system_clocks() {
    return {clock_ns(CLOCK_REALTIME), clock_ns(CLOCK_BOOTTIME)};
}

// No SA_RESTART: the signal must interrupt epoll_wait so the loop sees it, and a write(2) to
// an output nobody reads, so that the writer gives up after its grace. SIGHUP reopens
// --output; without one it stops the run as SIGTERM does (final report included).
void install_signal_handlers(bool output_file) {
    struct sigaction action {};
    sigemptyset(&action.sa_mask);
    action.sa_flags = SA_SIGINFO;
    action.sa_sigaction = on_stop_signal;
    sigaction(SIGINT, &action, nullptr);
    sigaction(SIGTERM, &action, nullptr);
    if (output_file) {
        action.sa_flags = 0;
        action.sa_handler = on_reopen_signal;
    }
    sigaction(SIGHUP, &action, nullptr);
    std::signal(SIGPIPE, SIG_IGN);  // a closed stdout shows as a write error instead
}

namespace {

class MonitorLoop {
  public:
    MonitorLoop(const LiveRun &run, Capture &capture, PortModel &model,
                NetnsConfigReader &netns_reader, const Reach &reach)
        : views_(run.views),
          command_(run.command),
          facts_(run.facts),
          summary_(run.summary),
          before_final_stats_(run.before_final_stats),
          reach_(reach),
          cgroups_(read_cgroup2_mount()),
          enricher_(
              run.options.max_tracked_sockets,
              [&model](ReleaseEvent &release) { return model.attribute(release); },
              [this](std::uint64_t cgroup_id) { return cgroups_.path_of(cgroup_id); }),
          options_(run.options),
          capture_(capture),
          reporter_(*run.reporter),
          output_(run.output),
          clocks_(run.clocks),
          model_(model),
          netns_reader_(netns_reader),
          nat_(model, netns_reader, run.options.filters.netns) {
        start_clock();
    }

    // The sockets that exist already. The programs are attached: what they report meanwhile is
    // drained before each table's dump, as on every pass, so that a busy host's baseline does
    // not outlast the ring buffer; the model takes those events at once, their lines and
    // warnings wait for `ready`. The run's clock starts after it.
    // --children: the tables' owners by the processes the kernel side follows now.
    Filters table_filters() const {
        Filters filters = options_.filters;
        // added to the --pid ones: were those followed all gone, no pid would mean every one
        if (filters.follow_children)
            for (std::uint32_t pid : capture_.followed_pids()) filters.pids.push_back(pid);
        return filters;
    }

    void take_baseline() {
        holding_lines_ = true;
        baseline_ms_ = reconcile_with_tables(model_, netns_reader_, table_filters(),
                                             [this] { drain_ring_buffer(); });
        nat_.pass(clock_ns(CLOCK_BOOTTIME));
        last_reconcile_ms_ = baseline_ms_;
        holding_lines_ = false;
        start_clock();
    }

    int run() {
        pass_on_held_lines();
        for (const Warning &warning : model_.take_warnings()) warn(warning);
        reporter_.flush();
        auto deliver = [this](Event &event) { this->deliver(event); };
        int status = 0;
        if (command_) command_->start();
        while (!stop_asked() && !duration_over() && !view_wants_stop()) {
            follow_wall_clock(clocks_, reporter_);
            if (Result<int> polled = capture_.poll(kPollMs, deliver); !polled) {
                std::fprintf(stderr, "portwatch: %s; stopping\n", polled.error().c_str());
                ring_buffer_failed_ = true;
                status = 1;
                break;
            }
            for (const Warning &warning : nat_.poll(clock_ns(CLOCK_BOOTTIME))) warn(warning);
            reporter_.flush();
            if (output_ && output_->reader_gone()) {
                std::fprintf(stderr, "portwatch: nobody reads %s any more; stopping\n",
                             output_->name().c_str());
                return 1;
            }
            maybe_report_stats();
            maybe_report_usage();
            maybe_refresh_views();
            maybe_reopen_output();
        }
        follow_wall_clock(clocks_, reporter_);
        drain_ring_buffer();  // whatever is still in the ring buffer
        report_usage();
        if (before_final_stats_) {
            reporter_.flush();
            before_final_stats_();
        }
        StatsSnapshot final_stats = snapshot(true);
        reporter_.stats(final_stats);
        reporter_.flush();
        if (facts_) facts_->lost = records_lost(final_stats);
        return status;
    }

    // The views' first picture, before `ready` is written: a probe asked right after it is
    // answered. Warnings wait for run(), so that `ready` stays the first line.
    void refresh_views_before_ready() {
        if (!views_.empty()) refresh_views(false);
    }

  private:
    static constexpr int kPollMs = 100;

    // With a command: when it exits, and a stop signal goes to it (once) instead.
    bool stop_asked() {
        if (!command_) return g_stop_signal != 0;
        if (int signal = g_stop_signal) {
            g_stop_signal = 0;
            if (!g_stop_from_terminal) command_->forward(signal);
        }
        return command_->exited();
    }
    static constexpr std::int64_t kRefreshNs = 1'000'000'000;

    void start_clock() {
        started_ns_ = clock_ns(CLOCK_MONOTONIC);
        next_stats_ns_ = started_ns_ + interval_ns();
        next_report_ns_ = started_ns_ + report_interval_ns();
        next_refresh_ns_ = started_ns_;
    }

    void deliver(Event &event) {
        if (!enricher_.enrich(event)) return;
        if (holding_lines_) {
            held_.push_back({event, model_.apply(event)});
            return;
        }
        pass_on(event, model_.apply(event));
    }

    void pass_on(const Event &event, const std::vector<Warning> &warnings) {
        if (facts_ && std::holds_alternative<AllocateEvent>(event) &&
            std::get<AllocateEvent>(event).failed())
            facts_->failures++;
        if (summary_) summary_->add(event);
        reporter_.event(event);
        for (LiveView *view : views_) view->event(event);
        for (const Warning &warning : warnings) warn(warning);
    }

    void pass_on_held_lines() {
        for (const HeldEvent &held : held_) pass_on(held.event, held.warnings);
        held_ = {};
    }

    // What the ring buffer holds now, without waiting. A failure is said once: the main
    // loop's own poll meets it too, and stops.
    void drain_ring_buffer() {
        Result<int> drained = capture_.poll(0, [this](Event &event) { deliver(event); });
        if (!drained && !ring_buffer_failed_)
            std::fprintf(stderr, "portwatch: %s\n", drained.error().c_str());
        ring_buffer_failed_ = ring_buffer_failed_ || !drained;
    }

    void warn(const Warning &warning) {
        if (facts_) facts_->highest_level = std::max(facts_->highest_level, warning.level);
        reporter_.warning(warning);
        for (LiveView *view : views_) view->warning(warning);
    }

    void maybe_reopen_output() {
        if (!g_reopen_signal || !options_.output) return;
        g_reopen_signal = 0;
        reporter_.flush();
        if (Status reopened = append_stdout_to(*options_.output); !reopened)
            std::fprintf(stderr, "portwatch: cannot reopen --output %s; writing on where it was\n",
                         reopened.error().c_str());
    }

    bool view_wants_stop() {
        bool stop = false;
        for (LiveView *view : views_) stop = view->wants_stop() || stop;
        return stop;
    }

    void maybe_refresh_views() {
        if (views_.empty() || clock_ns(CLOCK_MONOTONIC) < next_refresh_ns_) return;
        refresh_views(true);
    }

    // The metrics and top views get the model's current picture; with `warn`, the level
    // changes computing it found are written first.
    void refresh_views(bool warn_now) {
        next_refresh_ns_ = clock_ns(CLOCK_MONOTONIC) + kRefreshNs;
        Report current = model_.current(clock_ns(CLOCK_BOOTTIME));
        if (warn_now) {
            for (const Warning &warning : model_.take_warnings()) warn(warning);
            reporter_.flush();
        }
        StatsSnapshot stats = snapshot(false);
        for (LiveView *view : views_) view->refresh(current, stats);
    }

    std::int64_t interval_ns() const { return options_.stats_interval.count(); }

    std::int64_t report_interval_ns() const { return options_.report_interval.count(); }

    void maybe_report_usage() {
        if (report_interval_ns() == 0 || clock_ns(CLOCK_MONOTONIC) < next_report_ns_) return;
        next_report_ns_ =
            next_deadline(next_report_ns_, report_interval_ns(), clock_ns(CLOCK_MONOTONIC));
        report_usage();
        reporter_.flush();
    }

    void report_usage() {
        last_reconcile_ms_ = reconcile_with_tables(model_, netns_reader_, table_filters(),
                                                   [this] { drain_ring_buffer(); });
        nat_.pass(clock_ns(CLOCK_BOOTTIME));
        capture_.forget_held_ports(model_.take_gone_cookies());
        Report report = model_.report(clock_ns(CLOCK_BOOTTIME));
        bound_report(report, options_.report_top);
        for (const Warning &warning : model_.take_warnings()) warn(warning);
        reporter_.report(report);
        netns_reader_.keep_only(model_.namespaces());
    }

    bool duration_over() const {
        return options_.duration.count() > 0 &&
               clock_ns(CLOCK_MONOTONIC) - started_ns_ >= options_.duration.count();
    }

    void maybe_report_stats() {
        if (interval_ns() == 0 || clock_ns(CLOCK_MONOTONIC) < next_stats_ns_) return;
        next_stats_ns_ = next_deadline(next_stats_ns_, interval_ns(), clock_ns(CLOCK_MONOTONIC));
        reporter_.stats(snapshot(false));
        reporter_.flush();
    }

    StatsSnapshot snapshot(bool final) const {
        StatsSnapshot stats;
        stats.realtime_ns = clocks_().realtime_ns;
        stats.uptime_s = (clock_ns(CLOCK_MONOTONIC) - started_ns_) / 1e9;
        Capture::CounterReading counters = capture_.counters();
        stats.kernel = counters.totals;
        stats.counters_error = counters.error;
        stats.decoded = capture_.decoded();
        stats.decode_errors = capture_.decode_errors();
        stats.owners_forgotten = enricher_.owners_forgotten();
        stats.output_lines_lost = output_ ? output_->lines_lost() : 0;
        stats.reconcile = model_.reconcile_totals();
        stats.reconcile.baseline_ms = baseline_ms_;
        stats.reconcile.last_ms = last_reconcile_ms_;
        stats.tracked_sockets = model_.tracked_sockets();
        stats.nat = nat_.totals();
        stats.reach = reach_;
        stats.detached = capture_.detached_hooks();
        stats.final = final;
        return stats;
    }

    std::vector<LiveView *> views_;
    std::optional<RunCommand> command_;
    RunFacts *facts_;
    RunSummaryBuilder *summary_;
    std::function<void()> before_final_stats_;
    Reach reach_;
    CgroupIdLookup cgroups_;
    Enricher enricher_;  // after cgroups_, which it reads
    double baseline_ms_ = 0;
    double last_reconcile_ms_ = 0;
    const MonitorOptions &options_;
    Capture &capture_;
    Reporter &reporter_;
    const LineOutput *output_;
    Clocks clocks_;
    PortModel &model_;
    NetnsConfigReader &netns_reader_;
    NatWatch nat_;
    std::int64_t started_ns_;
    std::int64_t next_stats_ns_;
    std::int64_t next_report_ns_;
    std::int64_t next_refresh_ns_;
    bool ring_buffer_failed_ = false;  // and said so on stderr
    struct HeldEvent {
        Event event;
        std::vector<Warning> warnings;
    };
    bool holding_lines_ = false;
    std::vector<HeldEvent> held_;  // drained during the baseline, before `ready`
};

}  // namespace

int run_live(const LiveRun &run) {
    Capture capture(capture_config(run.options));
    Reach reach = current_reach();
    reach.every_cgroup = capture.sees_every_cgroup();
    print_reach_limits(reach);

    NetnsConfigReader netns_reader;
    PortModel model = make_port_model(run.options, netns_reader);
    MonitorLoop loop(run, capture, model, netns_reader, reach);
    loop.take_baseline();  // `ready` says the programs and the baseline are in place

    ReadyInfo ready;
    ready.realtime_ns = clock_ns(CLOCK_REALTIME);
    ready.version = kPortwatchVersion;
    ready.revision = git_revision();
    ready.kernel_release = kernel_release();
    ready.hooks = capture.hooks();
    ready.hook_set = name_of(capture.hook_set());
    ready.hook_set_reason = capture.hook_set_reason();
    ready.agent_pid = static_cast<std::uint32_t>(getpid());
    ready.metrics_address = run.metrics_address;
    ready.events = std::string(name_of(run.options.event_lines));
    ready.reach = reach;
    for (LiveView *view : run.views) view->started(ready);
    loop.refresh_views_before_ready();
    run.reporter->ready(ready);
    run.reporter->flush();
    return loop.run();
}

}  // namespace portwatch
