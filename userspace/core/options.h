// The command line (CLI11), parsed into plain options. No side effects: the
// caller decides what to print and how to exit.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

#include "event.h"
#include "kernel_features.h"
#include "report_bound.h"
#include "reporter.h"

namespace portwatch {

struct Filters {
    std::optional<std::uint32_t> pid;
    std::optional<std::string> comm;  // exact match, at most 15 bytes (TASK_COMM_LEN - 1)
    std::optional<std::uint32_t> netns;
    std::optional<Proto> proto;
    std::optional<Family> family;
};

// Where the Prometheus endpoint listens. A numeric address; loopback unless named.
struct ListenAddress {
    std::string host = "127.0.0.1";
    std::uint16_t port = 0;  // 0: any free port (the ready line says which)

    std::string text() const;  // "127.0.0.1:9464", "[::1]:9464"
};

// "9464", ":9464", "0.0.0.0:9464", "[::1]:9464"; nullopt with `error` set otherwise.
std::optional<ListenAddress> parse_listen_address(const std::string &text, std::string &error);

struct MonitorOptions {
    OutputFormat format = OutputFormat::text;
    double duration_s = 0;         // 0: until SIGINT/SIGTERM
    double stats_interval_s = 10;  // 0: only the final stats line
    Filters filters;
    std::uint32_t ringbuf_mb = 8;
    std::uint32_t max_tracked_sockets = 1u << 16;
    HookChoice hooks = HookChoice::automatic;     // --hooks; PORTWATCH_HOOKS in the environment
    double report_interval_s = 10;                // 0: only the report at exit
    std::size_t report_top = kDefaultReportTop;   // scopes and processes per netns in a report
    double warn_ratio = 0.80;                     // utilization of a scope that raises `warning`
    double critical_ratio = 0.95;                 // ... and `critical`
    std::optional<ListenAddress> metrics_listen;  // serve /metrics and /healthz there
    std::size_t metrics_top = 10;                 // destination scopes and processes given series
    std::optional<std::string> output;            // append to this file, not stdout; SIGHUP reopens
    EventLines event_lines = EventLines::all;     // --events
};

struct CommandLine {
    enum class Action { monitor, snapshot, top, check, exit };
    Action action = Action::exit;
    MonitorOptions monitor;
    int exit_code = 0;
    std::string output;  // help or version text (stdout) or one error line (stderr)
};

CommandLine parse_command_line(int argc, const char *const *argv);

}  // namespace portwatch
