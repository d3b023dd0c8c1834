// SPDX-License-Identifier: Apache-2.0
// The command line (CLI11), parsed into plain options. No side effects: the
// caller decides what to print and how to exit.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "app/fail_on.h"
#include "capture/capture_config.h"
#include "capture/kernel_features.h"
#include "events/filters.h"
#include "output/report_bound.h"
#include "output/output_choice.h"
#include "system/listen_address.h"

namespace CLI {
class App;
class Option;
}  // namespace CLI

namespace portwatch {

struct MonitorOptions {
    OutputFormat format = OutputFormat::text;
    // Converted from seconds once, at parse time. 0: until SIGINT/SIGTERM, only at exit.
    std::chrono::nanoseconds duration{0};
    std::chrono::nanoseconds stats_interval = std::chrono::seconds(10);
    std::chrono::nanoseconds report_interval = std::chrono::seconds(10);
    Filters filters;
    std::uint32_t ringbuf_mb = CaptureConfig{}.ringbuf_mb;
    std::uint32_t max_tracked_sockets = CaptureConfig{}.max_tracked_sockets;
    HookChoice hooks = CaptureConfig{}.hooks;     // --hooks; PORTWATCH_HOOKS in the environment
    std::size_t report_top = kDefaultReportTop;   // scopes and processes per netns in a report
    double warn_ratio = 0.80;                     // utilization of a scope that raises `warning`
    double critical_ratio = 0.95;                 // ... and `critical`
    std::optional<ListenAddress> metrics_listen;  // serve /metrics and /healthz there
    std::size_t metrics_top = 10;                 // destination scopes and processes given series
    std::optional<std::string> output;            // append to this file, not stdout; SIGHUP reopens
    EventLines event_lines = EventLines::all;     // --events
    std::vector<std::string> command;             // monitor -- CMD [ARGS...]: run and watch it
    std::vector<FailOn> fail_on;                  // exit 3 when one happened (app/fail_on.h)
};

struct CommandLine {
    enum class Action { monitor, snapshot, top, check, exit };
    Action action = Action::exit;
    MonitorOptions monitor;
    int exit_code = 0;
    std::string output;  // help or version text (stdout) or one error line (stderr)
};

CommandLine parse_command_line(int argc, const char *const *argv);

// The longest --duration, --stats-interval and --report-interval: a year.
inline constexpr double kMaxSeconds = 31'536'000;

// A number of seconds from the command line, already checked to be finite and within 0 to
// kMaxSeconds, as nanoseconds (rounded to the nearest).
std::chrono::nanoseconds seconds_to_ns(double seconds);

// The command line's one definition (CLI11): every subcommand and option with its type, checks
// and description. parse_command_line() parses with it; the man page and the shell completions
// (app/cli_docs.h) are generated from it.
std::unique_ptr<CLI::App> command_line_app();

// Whether the option's value names a file (the completions offer file names for it).
bool takes_file_name(const CLI::Option &option);

// The capture's share of the options.
CaptureConfig capture_config(const MonitorOptions &options);

}  // namespace portwatch
