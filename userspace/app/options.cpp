// SPDX-License-Identifier: Apache-2.0
#include "app/options.h"

#include <CLI/CLI.hpp>
#include <pwd.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <map>
#include <optional>
#include <vector>

#include "output/names.h"
#include "app/version.h"

namespace portwatch {
namespace {

constexpr std::size_t kMaxCommLength = 15;
constexpr std::size_t kMaxPids = 16;        // filter_pids in bpf/common.bpf.h
constexpr std::size_t kMaxUids = 16;        // filter_uids in bpf/common.bpf.h
constexpr std::size_t kMaxPortRanges = 16;  // filter_port_low in bpf/common.bpf.h

std::string validate_comm(const std::string &comm) {
    if (comm.empty()) return "must not be empty";
    if (comm.size() > kMaxCommLength)
        return "is longer than the kernel's 15-byte comm, so it could never match";
    return "";
}

// CLI11 reads "nan" and "inf" as doubles too; NaN compares false with every bound.
std::optional<double> finite_number(const std::string &text) {
    double value = 0;
    if (!CLI::detail::lexical_cast(text, value) || !std::isfinite(value)) return std::nullopt;
    return value;
}

// CLI11's own NonNegativeNumber/PositiveNumber print the largest double in full;
// these say the same in a few words.
CLI::Validator number_at_least(double minimum, const char *what) {
    return CLI::Validator(
        [minimum, what](const std::string &text) -> std::string {
            std::optional<double> value = finite_number(text);
            if (!value || *value < minimum) return std::string("must be ") + what + ", not " + text;
            return "";
        },
        what);
}

// "250ms", "30s", "5m", "2h", "1d" or a plain number of seconds, as seconds. The unit is the
// trailing run of letters, so "nan" and "inf" (all letters) are no numbers here. (Not CLI11's
// AsNumberWithUnit: it writes the product back with six significant digits, 1234567s as
// 1234570.)
std::optional<double> duration_seconds(const std::string &text) {
    static constexpr std::pair<std::string_view, double> kUnits[] = {
        {"ms", 1e-3}, {"s", 1}, {"m", 60}, {"h", 3600}, {"d", 86400}};
    std::size_t unit_at = text.size();
    while (unit_at > 0 && std::isalpha(static_cast<unsigned char>(text[unit_at - 1]))) unit_at--;
    std::string_view unit = std::string_view(text).substr(unit_at);
    std::optional<double> number = finite_number(text.substr(0, unit_at));
    if (!number) return std::nullopt;
    if (unit.empty()) return number;
    for (const auto &[name, seconds] : kUnits)
        if (unit == name) return *number * seconds;
    return std::nullopt;
}

// Durations and intervals: bounded, so that their nanoseconds fit an int64 with room to spare.
// Rewrites the text as seconds, what the option's double reads.
CLI::Validator duration_up_to_a_year() {
    return CLI::Validator(
        [](std::string &text) -> std::string {
            std::optional<double> seconds = duration_seconds(text);
            if (!seconds || *seconds < 0 || *seconds > kMaxSeconds)
                return "must be a duration up to a year (90, 250ms, 30s, 5m, 2h, 1d), not " + text;
            char digits[32];
            text.assign(digits, std::to_chars(digits, digits + sizeof digits, *seconds).ptr);
            return "";
        },
        "");
}

// Before CLI::Range, which lets NaN through.
CLI::Validator finite() {
    return CLI::Validator(
        [](const std::string &text) -> std::string {
            double value = 0;
            if (CLI::detail::lexical_cast(text, value) && !std::isfinite(value))
                return "must be a finite number, not " + text;
            return "";
        },
        "");
}

bool is_power_of_two(std::uint32_t value) {
    return value != 0 && (value & (value - 1)) == 0;
}

void add_output_option(CLI::App &command, bool &json) {
    command.add_flag("--json", json, "One JSON object per line (NDJSON) instead of text columns");
}

// A cgroup v2 path as /proc/PID/cgroup shows it: from the root of the cgroup2 mount.
std::string validate_cgroup_path(const std::string &path) {
    if (!path.starts_with("/"))
        return "must be a cgroup v2 path from its root, as /proc/PID/cgroup shows it "
               "(/system.slice/nginx.service), not " +
               path;
    if (path.find("/../") != std::string::npos || path.ends_with("/.."))
        return "must not hold .., not " + path;
    return "";
}

struct FilterTexts {
    std::string proto, family, cgroup;
    std::vector<std::string> uids, ports;
};

// A prefix of a container's 64-hex-digit id, at least 4 digits (docker ps shows 12).
// (convert_targets() lowercases it, as the runtimes print ids.)
std::string validate_container_prefix(const std::string &text) {
    bool hex =
        std::all_of(text.begin(), text.end(), [](unsigned char c) { return std::isxdigit(c); });
    if (!hex || text.size() < 4 || text.size() > 64)
        return "must be 4 to 64 hex digits of a container's id, as docker ps or podman ps show "
               "it, not " +
               text;
    return "";
}

void add_filter_options(CLI::App &command, MonitorOptions &options, FilterTexts &texts) {
    command
        .add_option("--pid", options.filters.pids,
                    "Only this process (tgid); repeatable: any of them (at most 16)")
        ->check(number_at_least(1, "a number >= 1"))
        ->delimiter(',')
        ->allow_extra_args(false);  // one value a flag: a `--` after it still starts CMD
    command.add_flag("--children", options.filters.follow_children,
                     "With --pid: those processes' descendants too, forked after portwatch started "
                     "(followed in the kernel)");
    command
        .add_option("--uid", texts.uids,
                    "Only calls by this user (real uid, or a user name); repeatable: any of them "
                    "(at most 16)")
        ->delimiter(',')
        ->allow_extra_args(false);
    command
        .add_option("--port", texts.ports,
                    "Only this local port (N) or range (A-B, both included); repeatable: any of "
                    "them (at most 16)")
        ->delimiter(',')
        ->allow_extra_args(false);
    command
        .add_option("--container", options.filters.containers,
                    "Only processes in the container whose id starts with this (at least 4 hex "
                    "digits) and below its cgroup; repeatable: any of them")
        ->check(CLI::Validator(validate_container_prefix, "ID"))
        ->delimiter(',')
        ->allow_extra_args(false);
    command
        .add_option("--cgroup", texts.cgroup,
                    "Only processes in this cgroup (v2) or below it: its path from the cgroup2 "
                    "root, as /proc/PID/cgroup shows it")
        ->check(CLI::Validator(validate_cgroup_path, "PATH"));
    command.add_option("--comm", options.filters.comm, "Only threads with this exact comm")
        ->check(CLI::Validator(validate_comm, "COMM"));
    command
        .add_option("--netns", options.filters.netns,
                    "Only this network namespace (inode, as readlink /proc/PID/ns/net shows)")
        ->check(number_at_least(1, "a number >= 1"));
    command.add_option("--proto", texts.proto, "Only tcp or udp")
        ->check(CLI::IsMember(names_in(kProtoNames)));
    command.add_option("--family", texts.family, "Only IPv4 (4) or IPv6 (6)")
        ->check(CLI::IsMember(names_in(kFamilyNames)));
}

void add_report_top_option(CLI::App &command, MonitorOptions &options) {
    command
        .add_option("--report-top", options.report_top,
                    "Scopes and processes per netns in a report, fullest first; the rest in "
                    "one summary row (scopes at warning or above always shown; 0: all)")
        ->check(CLI::Range(std::size_t{0}, std::size_t{1000000}));
}

void add_threshold_options(CLI::App &command, MonitorOptions &options) {
    command
        .add_option("--warn-ratio", options.warn_ratio,
                    "Utilization of a port scope that raises a warning (0-1)")
        ->check(finite())
        ->check(CLI::Range(0.01, 1.0));
    command
        .add_option("--critical-ratio", options.critical_ratio,
                    "Utilization of a port scope that is critical (0-1, above --warn-ratio)")
        ->check(finite())
        ->check(CLI::Range(0.01, 1.0));
}

constexpr const char *kOutputFlag = "--output";  // the one option whose value is a file

// For the subcommands that load the programs. (Not CLI11's envname(): it fills the variable
// the three subcommands share from the environment after the command line had set it.)
void add_hooks_option(CLI::App &command, std::string &hooks) {
    command
        .add_option("--hooks", hooks,
                    "Which hooks see allocations: fexit (the kernel's port allocators), "
                    "tracepoint (the syscalls), or auto (default): fexit where it attaches")
        ->check(CLI::IsMember(names_in(kHookChoiceNames)));
}

// The durations as CLI11 reads them: seconds, converted to MonitorOptions' nanoseconds once.
struct Seconds {
    double duration = 0;
    double stats_interval = 10;
    double report_interval = 10;
};

void add_monitor_options(CLI::App &monitor, MonitorOptions &options, Seconds &seconds,
                         std::vector<std::string> &fail_on) {
    monitor
        .add_option("--duration", seconds.duration,
                    "Stop after DURATION (30s, 5m, 2h; 0: until SIGINT/SIGTERM)")
        ->type_name("DURATION")
        ->transform(duration_up_to_a_year());
    monitor
        .add_option("--stats-interval", seconds.stats_interval,
                    "Print a stats line every DURATION (0: only at exit)")
        ->type_name("DURATION")
        ->transform(duration_up_to_a_year());
    monitor
        .add_option("--ringbuf-mb", options.ringbuf_mb, "Ring buffer size in MiB (power of two)")
        ->check(CLI::Range(1, 1024));
    monitor
        .add_option("--max-tracked-sockets", options.max_tracked_sockets,
                    "Sockets whose release is followed at once")
        ->check(CLI::Range(1024u, 1u << 24));
    monitor.add_option(kOutputFlag, options.output,
                       "Append the output to FILE instead of standard output; SIGHUP reopens "
                       "FILE (after log rotation)");
    monitor
        .add_option("--events", options.event_lines,
                    "Which allocate/release lines to write: all (default), failures "
                    "(allocate_failed only) or none; warnings, reports and stats always")
        ->transform(CLI::CheckedTransformer(values_by_name(kEventLinesNames), CLI::ignore_case));
    monitor
        .add_option("--fail-on", fail_on,
                    "Exit 3 after the final report when this happened: warning or critical "
                    "(a scope reached that level), failure (an allocation failed), lost "
                    "(records or lines lost); repeatable")
        ->check(CLI::IsMember(names_in(kFailOnNames)))
        ->delimiter(',')
        ->allow_extra_args(false);  // one value a flag: a `--` after it still starts CMD
    monitor
        .add_option("command", options.command,
                    "-- CMD [ARGS...]: run CMD in a cgroup of its own and watch it and every "
                    "process it starts, until it exits; exit with its status")
        ->type_name("CMD");
    monitor
        .add_option("--report-interval", seconds.report_interval,
                    "Print a usage report every DURATION (0: only at exit)")
        ->type_name("DURATION")
        ->transform(duration_up_to_a_year());
}

CLI::Validator listen_address() {
    return CLI::Validator(
        [](const std::string &text) {
            // CLI11's validators return "" for a valid value, else why not.
            Result<ListenAddress> address = parse_listen_address(text);
            return address ? std::string() : address.error();
        },
        "ADDR:PORT");
}

void add_metrics_options(CLI::App &monitor, MonitorOptions &options, std::string &listen) {
    monitor
        .add_option("--metrics-listen", listen,
                    "Serve Prometheus /metrics and /healthz on [ADDR:]PORT (default address "
                    "127.0.0.1; port 0 picks a free one)")
        ->check(listen_address());
    monitor
        .add_option("--metrics-top", options.metrics_top,
                    "Destination scopes and processes that get their own series")
        ->check(CLI::Range(1, 1000));
}

CommandLine exit_with(int code, std::string output) {
    CommandLine result;
    result.action = CommandLine::Action::exit;
    result.exit_code = code;
    result.output = std::move(output);
    return result;
}

// What the options write to while CLI11 parses; parse_command_line() checks and converts it.
struct ParseTargets {
    MonitorOptions options;
    Seconds seconds;
    FilterTexts filters;
    std::string metrics_listen, hooks;
    std::vector<std::string> fail_on;
    bool json = false;
};

// portwatch's CLI::App together with the variables its options are bound to (by reference:
// neither may move, hence one object that is never copied).
class PortwatchApp : public CLI::App {
  public:
    PortwatchApp();
    ParseTargets targets;
    CLI::App *monitor, *snapshot, *top, *check;
};

PortwatchApp::PortwatchApp()
    : CLI::App("portwatch: every local port the kernel hands out, who got it and how",
               "portwatch") {
    set_version_flag("--version", version_text());
    require_subcommand(1);
    monitor = add_subcommand(
        "monitor",
        "Trace port allocations and releases live; with CMD [ARGS...] after a double "
        "dash, run CMD and trace only it and its descendants until it exits");
    snapshot = add_subcommand("snapshot",
                              "The ports in use now, from the kernel's socket tables (no tracing)");
    top = add_subcommand(
        "top", "A live terminal view: fullest scopes, processes holding most ports, failures");
    check = add_subcommand(
        "check", "What this kernel and these privileges allow; exit 1 if monitor cannot run");
    MonitorOptions &options = targets.options;
    add_output_option(*check, targets.json);
    for (CLI::App *command : {monitor, snapshot}) {
        add_output_option(*command, targets.json);
        add_report_top_option(*command, options);
    }
    for (CLI::App *command : {monitor, snapshot, top}) {
        add_filter_options(*command, options, targets.filters);
        add_threshold_options(*command, options);
    }
    for (CLI::App *command : {monitor, top, check}) add_hooks_option(*command, targets.hooks);
    add_monitor_options(*monitor, options, targets.seconds, targets.fail_on);
    add_metrics_options(*monitor, options, targets.metrics_listen);
}

// Runs CLI11's parser: nullopt when the command line parsed, else what to print and exit with.
std::optional<CommandLine> run_parser(PortwatchApp &app, int argc, const char *const *argv) {
    try {
        app.parse(argc, argv);
    } catch (const CLI::CallForHelp &) {
        return exit_with(0, app.help());
    } catch (const CLI::CallForAllHelp &) {
        return exit_with(0, app.help("", CLI::AppFormatMode::All));
    } catch (const CLI::CallForVersion &) {
        return exit_with(0, version_text() + "\n");
    } catch (const CLI::ParseError &error) {
        return exit_with(2, "portwatch: " + std::string(error.what()) + " (see --help)\n");
    }
    return std::nullopt;
}

// --hooks, else PORTWATCH_HOOKS, else auto.
std::string hook_name(const std::string &from_command_line) {
    if (!from_command_line.empty()) return from_command_line;
    const char *from_environment = std::getenv("PORTWATCH_HOOKS");
    return from_environment ? from_environment : "auto";
}

// What CLI11 cannot check on one option alone: "" when all is well, else the error line.
std::string check_combinations(const MonitorOptions &options, bool double_dash) {
    if (options.filters.pids.size() > kMaxPids)
        return "portwatch: --pid: at most " + std::to_string(kMaxPids) + " processes, not " +
               std::to_string(options.filters.pids.size()) + " (see --help)\n";
    if (options.filters.follow_children && options.filters.pids.empty())
        return "portwatch: --children follows the processes of --pid: give one (see --help)\n";
    if (!double_dash && !options.command.empty())
        return "portwatch: monitor: unexpected argument " + options.command.front() +
               " (a command to run goes after --) (see --help)\n";
    if (double_dash && options.command.empty())
        return "portwatch: monitor --: no command after -- (see --help)\n";
    if (!options.command.empty() && options.duration.count() > 0)
        return "portwatch: --duration does not combine with -- CMD: the run ends when CMD "
               "exits (see --help)\n";
    if (!is_power_of_two(options.ringbuf_mb))
        return "portwatch: --ringbuf-mb: must be a power of two, not " +
               std::to_string(options.ringbuf_mb) + " (see --help)\n";
    if (options.critical_ratio <= options.warn_ratio)
        return "portwatch: --critical-ratio must be above --warn-ratio (see --help)\n";
    return "";
}

// A uid as a number, else the uid of the user of that name (getpwnam()).
std::optional<std::uint32_t> uid_named(const std::string &text) {
    std::uint32_t uid = 0;
    auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), uid);
    if (!text.empty() && error == std::errc() && end == text.data() + text.size()) return uid;
    if (const passwd *user = getpwnam(text.c_str())) return user->pw_uid;
    return std::nullopt;
}

std::string convert_uids(const std::vector<std::string> &texts, std::vector<std::uint32_t> &uids) {
    for (const std::string &text : texts) {
        std::optional<std::uint32_t> uid = uid_named(text);
        if (!uid)
            return "portwatch: --uid: " + text +
                   " is neither a uid (0 to 4294967295) nor a user name this host knows "
                   "(see --help)\n";
        uids.push_back(*uid);
    }
    if (uids.size() > kMaxUids)
        return "portwatch: --uid: at most " + std::to_string(kMaxUids) + " users, not " +
               std::to_string(uids.size()) + " (see --help)\n";
    return "";
}

std::optional<std::uint16_t> port_number(std::string_view text) {
    unsigned port = 0;
    auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), port);
    if (text.empty() || error != std::errc() || end != text.data() + text.size() || port == 0 ||
        port > 65535)
        return std::nullopt;
    return static_cast<std::uint16_t>(port);
}

// "N" or "A-B": "" when it is one, else the error line.
std::string parse_port_range(const std::string &text, LocalPortRange &range) {
    std::size_t dash = text.find('-');
    std::optional<std::uint16_t> low = port_number(std::string_view(text).substr(0, dash));
    std::optional<std::uint16_t> high =
        dash == std::string::npos ? low : port_number(std::string_view(text).substr(dash + 1));
    if (!low || !high)
        return "portwatch: --port: must be a port 1-65535 or a range A-B of them, not " + text +
               " (see --help)\n";
    if (*low > *high)
        return "portwatch: --port: the range " + text + " starts above its end (see --help)\n";
    range = {*low, *high};
    return "";
}

std::string convert_ports(const std::vector<std::string> &texts,
                          std::vector<LocalPortRange> &ports) {
    for (const std::string &text : texts) {
        LocalPortRange range;
        if (std::string error = parse_port_range(text, range); !error.empty()) return error;
        ports.push_back(range);
    }
    if (ports.size() > kMaxPortRanges)
        return "portwatch: --port: at most " + std::to_string(kMaxPortRanges) + " ranges, not " +
               std::to_string(ports.size()) + " (see --help)\n";
    return "";
}

// Turns the text CLI11 bound into the options' types: "" when all is well, else the error line.
std::string convert_targets(ParseTargets &targets) {
    MonitorOptions &options = targets.options;
    options.format = targets.json ? OutputFormat::json : OutputFormat::text;
    options.duration = seconds_to_ns(targets.seconds.duration);
    options.stats_interval = seconds_to_ns(targets.seconds.stats_interval);
    options.report_interval = seconds_to_ns(targets.seconds.report_interval);
    if (!targets.metrics_listen.empty()) {
        // Checked by the validator already: a failure here would be a bug, still not ignored.
        Result<ListenAddress> address = parse_listen_address(targets.metrics_listen);
        if (!address) return "portwatch: --metrics-listen: " + address.error() + " (see --help)\n";
        options.metrics_listen = std::move(address).value();
    }
    std::string hooks = hook_name(targets.hooks);
    std::optional<HookChoice> hook_choice = value_named(kHookChoiceNames, hooks);
    if (!hook_choice)
        return "portwatch: PORTWATCH_HOOKS: " + hooks + " not in {" +
               CLI::detail::join(names_in(kHookChoiceNames), ",") + "}\n";
    options.hooks = *hook_choice;
    if (!targets.filters.cgroup.empty()) {
        std::string path = targets.filters.cgroup;
        while (path.size() > 1 && path.ends_with('/')) path.pop_back();
        options.filters.cgroups.push_back(path);
    }
    for (const std::string &name : targets.fail_on)
        options.fail_on.push_back(*value_named(kFailOnNames, name));  // checked by IsMember
    for (std::string &prefix : options.filters.containers)
        std::transform(prefix.begin(), prefix.end(), prefix.begin(),
                       [](unsigned char c) { return std::tolower(c); });
    if (!targets.filters.proto.empty()) options.filters.proto = parse_proto(targets.filters.proto);
    if (!targets.filters.family.empty())
        options.filters.family = parse_family(targets.filters.family);
    if (std::string error = convert_ports(targets.filters.ports, options.filters.ports);
        !error.empty())
        return error;
    return convert_uids(targets.filters.uids, options.filters.uids);
}

// `monitor --` with nothing after it: CLI11 leaves the command empty, as without `--`.
bool has_double_dash(int argc, const char *const *argv) {
    for (int i = 1; i < argc; ++i)
        if (std::string_view(argv[i]) == "--") return true;
    return false;
}

CommandLine::Action action_parsed(const PortwatchApp &app) {
    return app.snapshot->parsed() ? CommandLine::Action::snapshot
           : app.top->parsed()    ? CommandLine::Action::top
           : app.check->parsed()  ? CommandLine::Action::check
                                  : CommandLine::Action::monitor;
}

}  // namespace

CommandLine parse_command_line(int argc, const char *const *argv) {
    PortwatchApp app;
    if (std::optional<CommandLine> exit = run_parser(app, argc, argv)) return *exit;
    if (std::string error = convert_targets(app.targets); !error.empty())
        return exit_with(2, error);
    if (std::string error = check_combinations(app.targets.options, has_double_dash(argc, argv));
        !error.empty())
        return exit_with(2, error);
    CommandLine result;
    result.action = action_parsed(app);
    result.monitor = app.targets.options;
    return result;
}

std::chrono::nanoseconds seconds_to_ns(double seconds) {
    return std::chrono::nanoseconds(std::llround(seconds * 1e9));
}

std::unique_ptr<CLI::App> command_line_app() {
    return std::make_unique<PortwatchApp>();
}

bool takes_file_name(const CLI::Option &option) {
    return option.get_name() == kOutputFlag;
}

CaptureConfig capture_config(const MonitorOptions &options) {
    return {options.filters, options.ringbuf_mb, options.max_tracked_sockets, options.hooks};
}

}  // namespace portwatch
