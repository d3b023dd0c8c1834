// SPDX-License-Identifier: Apache-2.0
#include "app/monitor.h"

#include <chrono>
#include <cstdio>
#include <ctime>
#include <memory>
#include <string>
#include <variant>
#include <vector>

#include "app/host_tables.h"
#include "capture/feature_probe.h"
#include "app/live_run.h"
#include "agent/health.h"
#include "output/metrics.h"
#include "output/run_summary_lines.h"
#include "app/version.h"
#include "system/cgroup_dir.h"
#include "system/child_process.h"
#include "system/metrics_server.h"
#include "system/output_file.h"
#include "system/host_info.h"

namespace portwatch {
namespace {

// A write waiting this long stops the loop from reading the ring buffer: the events that
// do not fit it meanwhile are lost (and counted).
constexpr std::chrono::seconds kOutputBlockedAfter{2};

std::vector<std::string> output_problems(const LineOutput &output) {
    auto blocked = std::chrono::duration_cast<std::chrono::seconds>(output.blocked_for());
    if (blocked < kOutputBlockedAfter) return {};
    return {"output blocked: " + output.name() + " has taken nothing for " +
            std::to_string(blocked.count()) +
            " s; events that do not fit the ring buffer meanwhile are lost (counted)"};
}

// Counts what the loop sees and publishes the exposition on every refresh.
class MetricsView : public LiveView {
  public:
    MetricsView(const ListenAddress &address, std::size_t top_n, const LineOutput &output)
        : server_(address, [&output] { return output_problems(output); }),
          top_n_(top_n),
          kernel_release_(kernel_release()) {}

    std::string address() const { return server_.bound().text(); }

    void started(const ReadyInfo &ready) override { hook_set_ = ready.hook_set; }
    void event(const Event &event) override { counters_.count(event); }
    void warning(const Warning &warning) override { counters_.count(warning); }

    void refresh(const Report &current, const StatsSnapshot &stats) override {
        MetricsInput input;
        input.version = kPortwatchVersion;
        input.kernel_release = kernel_release_;
        input.hook_set = hook_set_;
        input.usage = &current;
        input.stats = &stats;
        input.counters = &counters_;
        input.top_n = top_n_;
        server_.publish(render_prometheus(input), health_problems(previous_, stats));
        previous_ = stats;
    }

  private:
    MetricsServer server_;
    EventCounters counters_;
    StatsSnapshot previous_;  // of the last refresh
    std::size_t top_n_;
    std::string kernel_release_;
    std::string hook_set_;
};

// The exit codes of a run that met a --fail-on condition, and of one stopped while its
// output took nothing (docs/usage.md).
constexpr int kExitFailOn = 3;
constexpr int kExitOutputAbandoned = 4;

int gave_up_on(const LineOutput &output) {
    std::fprintf(stderr,
                 "portwatch: %s took nothing for %lld s after the stop; gave up on it: %llu lines "
                 "(%llu bytes) could not be written\n",
                 output.name().c_str(), static_cast<long long>(LineOutput::kStopGrace.count()),
                 static_cast<unsigned long long>(output.lines_lost()),
                 static_cast<unsigned long long>(output.bytes_lost()));
    return kExitOutputAbandoned;
}

// `monitor -- CMD`: the command, its cgroup, and what became of it. The cgroup is removed at
// the end, unless a process that outlived the command is still in it: portwatch does not
// kill the user's processes.
class CommandInCgroup {
  public:
    CommandInCgroup(const std::vector<std::string> &argv, CommandCgroup cgroup,
                    std::optional<CommandUser> user)
        : argv_(argv), cgroup_(std::move(cgroup)), user_(std::move(user)) {}
    CommandInCgroup(const CommandInCgroup &) = delete;
    CommandInCgroup &operator=(const CommandInCgroup &) = delete;
    ~CommandInCgroup() { remove_cgroup(); }

    RunCommand hooks() {
        return {[this] { start(); }, [this] { return exit_code().has_value(); },
                [this](int signal) {
                    if (child_) child_->forward(signal);
                }};
    }

    const std::string &cgroup_path() const { return cgroup_.path; }

    // The command's exit code once it exited or could not start.
    std::optional<int> exit_code() {
        if (child_) return child_->exited();
        return failed_start_;
    }

  private:
    void start() {
        auto started = ChildProcess::start(argv_, cgroup_.directory() + "/cgroup.procs", user_);
        if (auto *child = std::get_if<ChildProcess>(&started)) {
            child_ = *child;
            return;
        }
        const StartFailure &failure = std::get<StartFailure>(started);
        std::fprintf(stderr, "portwatch: %s\n", failure.message.c_str());
        failed_start_ = failure.exit_code;
    }

    void remove_cgroup() {
        Result<std::size_t> left = remove_command_cgroup(cgroup_);
        if (!left)
            std::fprintf(stderr, "portwatch: %s\n", left.error().c_str());
        else if (*left)
            std::fprintf(stderr,
                         "portwatch: %zu process(es) that outlived %s still run in %s; left "
                         "running, and the cgroup in place\n",
                         *left, argv_.front().c_str(), cgroup_.directory().c_str());
    }

    std::vector<std::string> argv_;
    CommandCgroup cgroup_;
    std::optional<CommandUser> user_;
    std::optional<ChildProcess> child_;
    std::optional<int> failed_start_;
};

// The cgroup and the user for `-- CMD`; nullptr with the reason said when either is missing.
std::unique_ptr<CommandInCgroup> prepare_command(const std::vector<std::string> &argv) {
    Result<std::optional<CommandUser>> user = sudo_user();
    if (!user) {
        std::fprintf(stderr, "portwatch: %s\n", user.error().c_str());
        return nullptr;
    }
    Result<CommandCgroup> cgroup = create_command_cgroup();
    if (!cgroup) {
        std::fprintf(stderr, "portwatch: cannot run %s: %s\n", argv.front().c_str(),
                     cgroup.error().c_str());
        return nullptr;
    }
    return std::make_unique<CommandInCgroup>(argv, std::move(cgroup).value(),
                                             std::move(user).value());
}

std::string join(const std::vector<std::string> &parts, const char *between) {
    std::string joined;
    for (const std::string &part : parts) joined += (joined.empty() ? "" : between) + part;
    return joined;
}

// The run starts the command, ends when it exits, and writes its summary before the final stats.
void follow_command(LiveRun &run, CommandInCgroup &command, RunSummaryBuilder &summary,
                    std::FILE *out) {
    run.command = command.hooks();
    run.summary = &summary;
    run.before_final_stats = [&command, &summary, out, &options = run.options] {
        SummaryContext context{system_clocks().realtime_ns, options.command, command.exit_code()};
        std::string text = options.format == OutputFormat::json
                               ? summary_json_line(summary.summary(), context)
                               : summary_text_block(summary.summary(), context);
        std::fputs(text.c_str(), out);
    };
}

// 3 when a --fail-on condition was met (said in one line, with the command's status), else
// the command's status (0 without one).
int exit_code_of_run(const MonitorOptions &options, int command_status, const RunFacts &facts) {
    std::vector<std::string> met = conditions_met(options.fail_on, facts);
    if (met.empty()) return command_status;
    std::string command_said =
        options.command.empty()
            ? ""
            : "; " + options.command.front() + " exited with " + std::to_string(command_status);
    std::fprintf(stderr, "portwatch: --fail-on %s%s\n", join(met, ", ").c_str(),
                 command_said.c_str());
    return kExitFailOn;
}

}  // namespace

int run_monitor(const MonitorOptions &given) {
    MonitorOptions options = given;
    std::unique_ptr<CommandInCgroup> command;
    if (!options.command.empty()) {
        command = prepare_command(options.command);
        if (!command) return 1;
        options.filters.cgroups.push_back(command->cgroup_path());
    }
    install_signal_handlers(options.output.has_value());
    if (options.output) {
        if (Status opened = append_stdout_to(*options.output); !opened) {
            std::fprintf(stderr, "portwatch: cannot open --output %s\n", opened.error().c_str());
            return 1;
        }
    }
    LineOutput output(options.output.value_or("standard output"), stop_requested);
    ClockReading now = system_clocks();  // the loop takes the offset again every turn
    auto reporter =
        make_reporter(options.format, output.stream(),
                      TimeBase::between(now.realtime_ns, now.boottime_ns), options.event_lines);

    LiveRun run;
    run.options = options;
    run.reporter = reporter.get();
    run.output = &output;
    // Bound before the BPF programs load: a port in use fails fast and attaches nothing.
    std::unique_ptr<MetricsView> metrics;
    if (options.metrics_listen) {
        metrics =
            std::make_unique<MetricsView>(*options.metrics_listen, options.metrics_top, output);
        run.views.push_back(metrics.get());
        run.metrics_address = metrics->address();
    }
    RunFacts facts;
    run.facts = &facts;
    RunSummaryBuilder summary;
    if (command) follow_command(run, *command, summary, output.stream());
    int status = run_live(run);
    if (output.gave_up()) return gave_up_on(output);
    if (status != 0) return status;
    // A run that stopped before the command exited (the ring buffer failed) said why: 1.
    return exit_code_of_run(options, command ? command->exit_code().value_or(1) : 0, facts);
}

}  // namespace portwatch
