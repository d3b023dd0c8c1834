// SPDX-License-Identifier: Apache-2.0
#include <algorithm>
#include <chrono>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include <cstdlib>

#include "app/options.h"
#include "app/version.h"
#include "portwatch_abi.h"

namespace portwatch {
namespace {

using namespace std::chrono_literals;

CommandLine parse(std::vector<std::string> args) {
    args.insert(args.begin(), "portwatch");
    std::vector<const char *> argv;
    for (const auto &arg : args) argv.push_back(arg.c_str());
    return parse_command_line(static_cast<int>(argv.size()), argv.data());
}

TEST(Options, CommandAfterDoubleDash) {
    CommandLine cl = parse({"monitor", "--json", "--", "curl", "-s", "--json", "http://x/"});
    EXPECT_EQ(cl.action, CommandLine::Action::monitor);
    EXPECT_EQ(cl.monitor.command, (std::vector<std::string>{"curl", "-s", "--json", "http://x/"}));
    EXPECT_EQ(cl.monitor.format, OutputFormat::json);
}

// A `--` right after a repeatable option ends the flags, not only that option's values.
TEST(Options, CommandAfterRepeatableOptions) {
    CommandLine cl =
        parse({"monitor", "--pid", "1", "--fail-on", "failure", "--", "python3", "-c", "print()"});
    EXPECT_EQ(cl.exit_code, 0) << cl.output;
    EXPECT_EQ(cl.monitor.command, (std::vector<std::string>{"python3", "-c", "print()"}));
    EXPECT_EQ(cl.monitor.fail_on, std::vector<FailOn>{FailOn::failure});
    EXPECT_EQ(cl.monitor.filters.pids, std::vector<std::uint32_t>{1});
}

TEST(Options, CommandBadInput) {
    CommandLine empty = parse({"monitor", "--"});
    EXPECT_EQ(empty.exit_code, 2);
    EXPECT_EQ(empty.output, "portwatch: monitor --: no command after -- (see --help)\n");
    CommandLine with_duration = parse({"monitor", "--duration", "5s", "--", "true"});
    EXPECT_EQ(with_duration.exit_code, 2);
    EXPECT_NE(with_duration.output.find("--duration does not combine with -- CMD"),
              std::string::npos);
}

// --uid: a number or a user name (getpwnam(): root is 0 on every host), repeatable.
TEST(Options, UidIsANumberOrAUserNameAndRepeatable) {
    CommandLine cl = parse({"monitor", "--uid", "1000", "--uid", "root,65534", "--", "true"});
    EXPECT_EQ(cl.exit_code, 0) << cl.output;
    EXPECT_EQ(cl.monitor.filters.uids, (std::vector<std::uint32_t>{1000, 0, 65534}));
    EXPECT_EQ(cl.monitor.command, std::vector<std::string>{"true"});
    EXPECT_EQ(parse({"snapshot", "--uid", "4294967295"}).monitor.filters.uids,
              std::vector<std::uint32_t>{4294967295u});
    std::vector<std::string> seventeen{"top"};
    for (int uid = 1; uid <= 17; ++uid)
        seventeen.insert(seventeen.end(), {"--uid", std::to_string(uid)});
    EXPECT_EQ(parse(seventeen).output, "portwatch: --uid: at most 16 users, not 17 (see --help)\n");
}

// --port: a port or a range, both ends included, repeatable.
TEST(Options, PortIsAPortOrARangeAndRepeatable) {
    CommandLine cl =
        parse({"monitor", "--port", "8080", "--port", "32768-60999,1-1", "--", "true"});
    EXPECT_EQ(cl.exit_code, 0) << cl.output;
    EXPECT_EQ(cl.monitor.filters.ports,
              (std::vector<LocalPortRange>{{8080, 8080}, {32768, 60999}, {1, 1}}));
    EXPECT_EQ(parse({"snapshot", "--port", "65535"}).monitor.filters.ports,
              (std::vector<LocalPortRange>{{65535, 65535}}));
    std::vector<std::string> seventeen{"top"};
    for (int port = 1; port <= 17; ++port)
        seventeen.insert(seventeen.end(), {"--port", std::to_string(port)});
    EXPECT_EQ(parse(seventeen).output,
              "portwatch: --port: at most 16 ranges, not 17 (see --help)\n");
}

TEST(Options, PortOutOfRangeOrBackwardsIsOneLineExit2) {
    CommandLine backwards = parse({"monitor", "--port", "9-3"});
    EXPECT_EQ(backwards.exit_code, 2);
    EXPECT_EQ(backwards.output,
              "portwatch: --port: the range 9-3 starts above its end (see --help)\n");
    for (const char *bad :
         {"70000", "0", "-5", "80-", "-80", "1-70000", "http", "8080-9090-9999", ""}) {
        CommandLine cl = parse({"monitor", "--port", bad});
        EXPECT_EQ(cl.exit_code, 2) << bad;
        EXPECT_EQ(cl.output,
                  "portwatch: --port: must be a port 1-65535 or a range A-B of them, not " +
                      std::string(bad) + " (see --help)\n");
    }
}

// --container: 4 to 64 hex digits, lowercased as the runtimes print ids; repeatable.
TEST(Options, ContainerIsAHexPrefixOfAtLeast4Digits) {
    CommandLine cl = parse({"monitor", "--container", "3F2A9c1b", "--container", "abcd,0123"});
    EXPECT_EQ(cl.exit_code, 0) << cl.output;
    EXPECT_EQ(cl.monitor.filters.containers,
              (std::vector<std::string>{"3f2a9c1b", "abcd", "0123"}));
    for (const char *bad : {"abc", "nginx", "12345g", ""}) {
        CommandLine refused = parse({"snapshot", "--container", bad});
        EXPECT_EQ(refused.exit_code, 2) << bad;
        EXPECT_NE(refused.output.find("--container: must be 4 to 64 hex digits"), std::string::npos)
            << refused.output;
        EXPECT_EQ(refused.output.find('\n'), refused.output.size() - 1) << refused.output;
    }
    EXPECT_EQ(parse({"top", "--container", std::string(65, 'a')}).exit_code, 2);
}

// --children goes with --pid.
TEST(Options, ChildrenNeedsAPid) {
    CommandLine cl = parse({"monitor", "--pid", "42", "--children"});
    EXPECT_EQ(cl.exit_code, 0) << cl.output;
    EXPECT_TRUE(cl.monitor.filters.follow_children);
    EXPECT_FALSE(parse({"monitor", "--pid", "42"}).monitor.filters.follow_children);
    CommandLine alone = parse({"monitor", "--children"});
    EXPECT_EQ(alone.exit_code, 2);
    EXPECT_EQ(alone.output,
              "portwatch: --children follows the processes of --pid: give one (see --help)\n");
}

TEST(Options, UidNeitherANumberNorAUserIsOneLineExit2) {
    for (const char *bad : {"no-such-user-pw35", "-1", "4294967296", "1.5", ""}) {
        CommandLine cl = parse({"monitor", "--uid", bad});
        EXPECT_EQ(cl.exit_code, 2) << bad;
        EXPECT_EQ(cl.output, "portwatch: --uid: " + std::string(bad) +
                                 " is neither a uid (0 to 4294967295) nor a user name this host "
                                 "knows (see --help)\n");
    }
}

TEST(Options, PidIsRepeatableAndCgroupIsAPathFromTheRoot) {
    CommandLine cl = parse(
        {"monitor", "--pid", "10", "--pid", "11,12", "--cgroup", "/system.slice/nginx.service/"});
    EXPECT_EQ(cl.monitor.filters.pids, (std::vector<std::uint32_t>{10, 11, 12}));
    EXPECT_EQ(cl.monitor.filters.cgroups, std::vector<std::string>{"/system.slice/nginx.service"});
    std::vector<std::string> seventeen{"monitor"};
    for (int pid = 1; pid <= 17; ++pid)
        seventeen.insert(seventeen.end(), {"--pid", std::to_string(pid)});
    EXPECT_EQ(parse(seventeen).output,
              "portwatch: --pid: at most 16 processes, not 17 (see --help)\n");
    CommandLine relative = parse({"snapshot", "--cgroup", "system.slice"});
    EXPECT_EQ(relative.exit_code, 2);
    EXPECT_NE(relative.output.find("--cgroup: must be a cgroup v2 path from its root"),
              std::string::npos);
    EXPECT_EQ(parse({"top", "--cgroup", "/a/../b"}).exit_code, 2);
}

TEST(Options, FailOnIsRepeatable) {
    CommandLine cl = parse({"monitor", "--fail-on", "critical", "--fail-on", "lost,failure"});
    EXPECT_EQ(cl.monitor.fail_on,
              (std::vector<FailOn>{FailOn::critical, FailOn::lost, FailOn::failure}));
    CommandLine bad = parse({"monitor", "--fail-on", "sometimes"});
    EXPECT_EQ(bad.exit_code, 2);
    EXPECT_EQ(bad.output,
              "portwatch: --fail-on: sometimes not in {warning,critical,failure,lost} (see "
              "--help)\n");
}

TEST(Options, MonitorDefaults) {
    CommandLine cl = parse({"monitor"});
    EXPECT_EQ(cl.action, CommandLine::Action::monitor);
    EXPECT_EQ(cl.exit_code, 0);
    EXPECT_EQ(cl.monitor.format, OutputFormat::text);
    EXPECT_EQ(cl.monitor.duration, 0ns);
    EXPECT_EQ(cl.monitor.stats_interval, 10s);
    EXPECT_EQ(cl.monitor.ringbuf_mb, 8u);
    EXPECT_EQ(cl.monitor.report_interval, 10s);
    EXPECT_DOUBLE_EQ(cl.monitor.warn_ratio, 0.80);
    EXPECT_DOUBLE_EQ(cl.monitor.critical_ratio, 0.95);
    EXPECT_TRUE(cl.monitor.filters.pids.empty());
    EXPECT_FALSE(cl.monitor.filters.comm);
    EXPECT_FALSE(cl.monitor.filters.netns);
    EXPECT_FALSE(cl.monitor.filters.proto);
    EXPECT_FALSE(cl.monitor.filters.family);
}

TEST(Options, MonitorWithEveryFilter) {
    CommandLine cl = parse({"monitor",
                            "--json",
                            "--duration",
                            "5",
                            "--pid",
                            "1234",
                            "--comm",
                            "curl",
                            "--netns",
                            "4026531840",
                            "--proto",
                            "udp",
                            "--family",
                            "6",
                            "--ringbuf-mb",
                            "16",
                            "--stats-interval",
                            "0.5",
                            "--max-tracked-sockets",
                            "2048"});
    ASSERT_EQ(cl.action, CommandLine::Action::monitor) << cl.output;
    EXPECT_EQ(cl.exit_code, 0);
    EXPECT_EQ(cl.monitor.format, OutputFormat::json);
    EXPECT_EQ(cl.monitor.duration, 5s);
    EXPECT_EQ(cl.monitor.stats_interval, 500ms);
    EXPECT_EQ(cl.monitor.filters.pids, std::vector<std::uint32_t>{1234u});
    EXPECT_EQ(cl.monitor.filters.comm, "curl");
    EXPECT_EQ(cl.monitor.filters.netns, 4026531840u);
    EXPECT_EQ(cl.monitor.filters.proto, Proto::udp);
    EXPECT_EQ(cl.monitor.filters.family, Family::ipv6);
    EXPECT_EQ(cl.monitor.ringbuf_mb, 16u);
    EXPECT_EQ(cl.monitor.max_tracked_sockets, 2048u);
}

TEST(Options, FamilyAndProtoSpellings) {
    const std::pair<const char *, Family> families[] = {
        {"4", Family::ipv4}, {"ipv4", Family::ipv4}, {"6", Family::ipv6}, {"ipv6", Family::ipv6}};
    for (const auto &[text, family] : families) {
        CommandLine cl = parse({"monitor", "--family", text});
        ASSERT_EQ(cl.action, CommandLine::Action::monitor) << text;
        EXPECT_EQ(cl.monitor.filters.family, family) << text;
    }
    EXPECT_EQ(parse({"monitor", "--proto", "tcp"}).monitor.filters.proto, Proto::tcp);
}

TEST(Options, CommOfFifteenBytesIsAccepted) {
    CommandLine cl = parse({"monitor", "--comm", "abcdefghijklmno"});
    ASSERT_EQ(cl.action, CommandLine::Action::monitor) << cl.output;
    EXPECT_EQ(cl.monitor.filters.comm, "abcdefghijklmno");
}

TEST(Options, HooksForEverySubcommandThatLoads) {
    EXPECT_EQ(parse({"monitor"}).monitor.hooks, HookChoice::automatic);
    EXPECT_EQ(parse({"monitor", "--hooks", "fexit"}).monitor.hooks, HookChoice::fexit);
    EXPECT_EQ(parse({"top", "--hooks", "tracepoint"}).monitor.hooks, HookChoice::tracepoint);
    EXPECT_EQ(parse({"check", "--hooks", "auto"}).monitor.hooks, HookChoice::automatic);
    setenv("PORTWATCH_HOOKS", "tracepoint", 1);  // the default; the command line wins
    EXPECT_EQ(parse({"monitor"}).monitor.hooks, HookChoice::tracepoint);
    EXPECT_EQ(parse({"monitor", "--hooks", "fexit"}).monitor.hooks, HookChoice::fexit);
    setenv("PORTWATCH_HOOKS", "kprobe", 1);
    EXPECT_EQ(parse({"monitor"}).output,
              "portwatch: PORTWATCH_HOOKS: kprobe not in "
              "{auto,fexit,tracepoint}\n");
    unsetenv("PORTWATCH_HOOKS");
    CommandLine bad = parse({"monitor", "--hooks", "kprobe"});
    EXPECT_EQ(bad.exit_code, 2);
    EXPECT_EQ(bad.output,
              "portwatch: --hooks: kprobe not in {auto,fexit,tracepoint} (see --help)\n");
}

TEST(Options, RingbufPowersOfTwo) {
    for (const char *mb : {"1", "2", "64", "1024"}) {
        CommandLine cl = parse({"monitor", "--ringbuf-mb", mb});
        ASSERT_EQ(cl.action, CommandLine::Action::monitor) << mb << ": " << cl.output;
        EXPECT_EQ(cl.monitor.ringbuf_mb, std::stoul(mb));
    }
}

struct ErrorCase {
    std::vector<std::string> args;
    std::string mentions;  // the error names what was wrong
};

// A bad command line: exit 2 and one line on stderr that names what was wrong.
void expect_bad_command_line(const ErrorCase &c) {
    std::string shown;
    for (const auto &arg : c.args) shown += "[" + arg + "]";
    SCOPED_TRACE(shown);
    CommandLine cl = parse(c.args);
    EXPECT_EQ(cl.action, CommandLine::Action::exit);
    EXPECT_EQ(cl.exit_code, 2);
    EXPECT_EQ(cl.output.rfind("portwatch: ", 0), 0u) << cl.output;
    EXPECT_EQ(std::count(cl.output.begin(), cl.output.end(), '\n'), 1) << cl.output;
    EXPECT_EQ(cl.output.back(), '\n') << cl.output;
    EXPECT_NE(cl.output.find(c.mentions), std::string::npos) << cl.output;
}

TEST(Options, ErrorsAreOneLine) {
    const ErrorCase cases[] = {
        {{"monitor", "--bogus"}, "--bogus"},
        {{"--bogus"}, ""},  // CLI11 reports the missing subcommand first
        {{}, "subcommand"},
        {{"frobnicate"}, ""},
        {{"monitor", "extra"}, "extra"},
        {{"monitor", "--proto", "sctp"}, "--proto: sctp"},
        {{"monitor", "--family", "5"}, "--family: 5"},
        {{"monitor", "--duration", "-1"},
         "--duration: must be a duration up to a year (90, 250ms, 30s, 5m, 2h, 1d), not -1"},
        {{"monitor", "--duration", "soon"}, "--duration: must be a duration"},
        {{"monitor", "--stats-interval", "-2"}, "--stats-interval: must be a duration"},
        {{"monitor", "--comm", "abcdefghijklmnop"}, "--comm: is longer than the kernel's 15-byte"},
        {{"monitor", "--comm", ""}, "--comm: must not be empty"},
        {{"monitor", "--ringbuf-mb", "3"}, "--ringbuf-mb: must be a power of two"},
        {{"monitor", "--ringbuf-mb", "0"}, "--ringbuf-mb: Value 0"},
        {{"monitor", "--ringbuf-mb", "2048"}, "--ringbuf-mb: Value 2048"},
        {{"monitor", "--ringbuf-mb", "abc"}, "--ringbuf-mb: Value abc"},
        {{"monitor", "--pid", "abc"}, "--pid: must be a number >= 1, not abc"},
        {{"monitor", "--pid", "0"}, "--pid: must be a number >= 1, not 0"},
        {{"monitor", "--pid", "1.5"}, "--pid = 1.5"},
        {{"monitor", "--pid", "4294967296"}, "--pid = 4294967296"},
        {{"monitor", "--pid"}, "--pid"},
        {{"monitor", "--netns", "-3"}, "--netns: must be a number >= 1, not -3"},
        {{"monitor", "--max-tracked-sockets", "10"}, "--max-tracked-sockets: Value 10"},
        {{"monitor", "--report-interval", "-1"}, "--report-interval: must be a duration"},
        {{"monitor", "--warn-ratio", "1.5"}, "--warn-ratio: Value 1.5"},
        {{"monitor", "--critical-ratio", "0"}, "--critical-ratio: Value 0"},
        {{"monitor", "--metrics-listen", "localhost:9464"}, "--metrics-listen: 'localhost:9464'"},
        {{"monitor", "--metrics-listen", "::1:9464"}, "IPv6 in brackets"},
        {{"monitor", "--metrics-listen", "127.0.0.1:99999"}, "'99999' is not a port number"},
        {{"monitor", "--metrics-listen", "127.0.0.1:"}, "'' is not a port number"},
        {{"monitor", "--metrics-top", "0"}, "--metrics-top: Value 0"},
        {{"snapshot", "--metrics-listen", "9464"}, "--metrics-listen"},
        {{"top", "--json"}, "--json"},
        {{"monitor", "--report-top", "-1"}, "--report-top"},
        {{"snapshot", "--report-top", "many"}, "--report-top"},
        {{"top", "--report-top", "5"}, "--report-top"},
        {{"monitor", "--events", "some"}, "--events"},
        {{"snapshot", "--events", "all"}, "--events"},
        {{"top", "--duration", "5"}, "--duration"},
        {{"monitor", "--warn-ratio", "0.9", "--critical-ratio", "0.9"},
         "--critical-ratio must be above --warn-ratio"},
    };
    for (const auto &c : cases) expect_bad_command_line(c);
}

// "One clear line": the NonNegativeNumber/PositiveNumber validators of CLI11
// 2.1.2 print DBL_MAX in full, a 309-digit number, in every such error.
TEST(Options, RangeErrorsAreShort) {
    for (const char *flag : {"--duration", "--stats-interval", "--pid", "--netns"}) {
        CommandLine cl = parse({"monitor", flag, "-1"});
        EXPECT_NE(cl.exit_code, 0) << flag;
        EXPECT_LT(cl.output.size(), 120u) << cl.output;
    }
}

// Issue 35: durations take a unit, as the tools developers know do (ms, s, m, h, d); a plain
// number is still seconds.
TEST(Options, DurationsTakeAUnit) {
    CommandLine cl = parse(
        {"monitor", "--duration", "1.5m", "--stats-interval", "250ms", "--report-interval", "2h"});
    ASSERT_EQ(cl.action, CommandLine::Action::monitor) << cl.output;
    EXPECT_EQ(cl.monitor.duration, 90s);
    EXPECT_EQ(cl.monitor.stats_interval, 250ms);
    EXPECT_EQ(cl.monitor.report_interval, 7200s);
    cl = parse({"monitor", "--duration", "1234567s", "--stats-interval", "1d", "--report-interval",
                "365d"});
    ASSERT_EQ(cl.action, CommandLine::Action::monitor) << cl.output;
    EXPECT_EQ(cl.monitor.duration, 1'234'567s);
    EXPECT_EQ(cl.monitor.stats_interval, 86'400s);
    EXPECT_EQ(cl.monitor.report_interval, 31'536'000s);
}

// Issue 32: nan, inf and numbers whose nanoseconds overflow an int64 were taken; every one is
// now one line and exit 2, naming the flag and the value.
TEST(Options, NumbersOutOfBoundsAreBadFlags) {
    const std::vector<std::string> seconds_flags = {"--duration", "--stats-interval",
                                                    "--report-interval"};
    for (const std::string &flag : seconds_flags)
        for (const char *value :
             {"nan", "NaN", "inf", "Infinity", "1e10", "1e12", "1e300", "31536000.5", "-0.5",
              "366d", "5x", "m", "1.5 s", "5M", "30sec"}) {
            CommandLine cl = parse({"monitor", flag, value});
            SCOPED_TRACE(flag + " " + value);
            EXPECT_EQ(cl.action, CommandLine::Action::exit);
            EXPECT_EQ(cl.exit_code, 2);
            EXPECT_EQ(cl.output, "portwatch: " + flag +
                                     ": must be a duration up to a year (90, 250ms, 30s, 5m, "
                                     "2h, 1d), not " +
                                     value + " (see --help)\n");
        }
    const ErrorCase cases[] = {
        {{"monitor", "--warn-ratio", "nan"}, "--warn-ratio: must be a finite number, not nan"},
        {{"monitor", "--critical-ratio", "nan"}, "--critical-ratio: must be a finite number"},
        {{"monitor", "--warn-ratio", "inf"}, "--warn-ratio"},
        {{"top", "--critical-ratio", "nan"}, "--critical-ratio: must be a finite number"},
        {{"snapshot", "--warn-ratio", "NaN"}, "--warn-ratio: must be a finite number"},
        {{"monitor", "--pid", "nan"}, "--pid: must be a number >= 1, not nan"},
        {{"monitor", "--pid", "inf"}, "--pid: must be a number >= 1, not inf"},
        {{"monitor", "--netns", "nan"}, "--netns: must be a number >= 1, not nan"},
        {{"monitor", "--netns", "18446744073709551616"}, "--netns"},
        {{"monitor", "--ringbuf-mb", "nan"}, "--ringbuf-mb"},
        {{"monitor", "--ringbuf-mb", "-1"}, "--ringbuf-mb"},
        {{"monitor", "--ringbuf-mb", "4294967296"}, "--ringbuf-mb"},
        {{"monitor", "--max-tracked-sockets", "nan"}, "--max-tracked-sockets"},
        {{"monitor", "--max-tracked-sockets", "16777217"}, "--max-tracked-sockets"},
        {{"monitor", "--max-tracked-sockets", "-1"}, "--max-tracked-sockets"},
        {{"monitor", "--report-top", "nan"}, "--report-top"},
        {{"monitor", "--report-top", "1000001"}, "--report-top"},
        {{"monitor", "--report-top", "18446744073709551616"}, "--report-top"},
        {{"monitor", "--metrics-top", "nan"}, "--metrics-top"},
        {{"monitor", "--metrics-top", "1001"}, "--metrics-top"},
        {{"monitor", "--metrics-top", "-1"}, "--metrics-top"},
    };
    for (const auto &c : cases) expect_bad_command_line(c);
}

TEST(Options, NumbersAtTheirBoundsAreTaken) {
    CommandLine cl = parse(
        {"monitor", "--duration", "31536000", "--stats-interval", "31536000", "--report-interval",
         "0", "--ringbuf-mb", "1024", "--max-tracked-sockets", "16777216", "--report-top",
         "1000000", "--metrics-top", "1000", "--warn-ratio", "0.01", "--critical-ratio", "1"});
    ASSERT_EQ(cl.action, CommandLine::Action::monitor) << cl.output;
    EXPECT_EQ(cl.monitor.duration, std::chrono::seconds(31'536'000));
    EXPECT_EQ(cl.monitor.stats_interval, std::chrono::seconds(31'536'000));
    EXPECT_EQ(cl.monitor.report_interval, 0ns);
    EXPECT_EQ(cl.monitor.ringbuf_mb, 1024u);
    EXPECT_EQ(cl.monitor.max_tracked_sockets, 16'777'216u);
    EXPECT_EQ(cl.monitor.report_top, 1'000'000u);
    EXPECT_EQ(cl.monitor.metrics_top, 1000u);
}

// The run's end and the periodic deadlines are int64 nanoseconds: a year of them is exact and
// positive (10^10 s, once taken, overflowed into a negative deadline that ended the run at once).
TEST(Options, SecondsBecomeExactNanoseconds) {
    EXPECT_EQ(seconds_to_ns(kMaxSeconds).count(), 31'536'000'000'000'000);
    EXPECT_EQ(seconds_to_ns(0).count(), 0);
    EXPECT_EQ(seconds_to_ns(0.1).count(), 100'000'000);  // rounded, not truncated to 99'999'999
    EXPECT_EQ(seconds_to_ns(1e-9).count(), 1);
    EXPECT_EQ(parse({"monitor", "--duration", "0.3"}).monitor.duration, 300ms);
}

TEST(Options, WarningThresholds) {
    CommandLine cl = parse(
        {"monitor", "--warn-ratio", "0.5", "--critical-ratio", "0.75", "--report-interval", "2.5"});
    ASSERT_EQ(cl.action, CommandLine::Action::monitor) << cl.output;
    EXPECT_DOUBLE_EQ(cl.monitor.warn_ratio, 0.5);
    EXPECT_DOUBLE_EQ(cl.monitor.critical_ratio, 0.75);
    EXPECT_EQ(cl.monitor.report_interval, 2500ms);
}

TEST(Options, SnapshotTakesFiltersAndThresholdsButNotMonitorFlags) {
    CommandLine cl = parse({"snapshot", "--json", "--netns", "4026531840", "--warn-ratio", "0.5"});
    ASSERT_EQ(cl.action, CommandLine::Action::snapshot) << cl.output;
    EXPECT_EQ(cl.monitor.format, OutputFormat::json);
    EXPECT_EQ(cl.monitor.filters.netns, 4026531840u);
    EXPECT_DOUBLE_EQ(cl.monitor.warn_ratio, 0.5);
    CommandLine bad = parse({"snapshot", "--duration", "3"});
    EXPECT_EQ(bad.action, CommandLine::Action::exit);
    EXPECT_NE(bad.exit_code, 0);
    EXPECT_NE(bad.output.find("--duration"), std::string::npos) << bad.output;
}

TEST(Options, CheckTakesOnlyJson) {
    EXPECT_EQ(parse({"check"}).action, CommandLine::Action::check);
    EXPECT_EQ(parse({"check", "--json"}).monitor.format, OutputFormat::json);
    EXPECT_NE(parse({"check", "--pid", "1"}).exit_code, 0);
}

TEST(Options, MetricsListenDefaultsToLoopback) {
    EXPECT_FALSE(parse({"monitor"}).monitor.metrics_listen);
    EXPECT_EQ(parse({"monitor"}).monitor.metrics_top, 10u);
    struct Case {
        const char *arg, *host;
        std::uint16_t port;
        const char *text;
    };
    const Case cases[] = {
        {"9464", "127.0.0.1", 9464, "127.0.0.1:9464"},
        {":9464", "127.0.0.1", 9464, "127.0.0.1:9464"},
        {"0.0.0.0:80", "0.0.0.0", 80, "0.0.0.0:80"},
        {"[::1]:9464", "::1", 9464, "[::1]:9464"},
        {"[::]:0", "::", 0, "[::]:0"},
    };
    for (const Case &c : cases) {
        CommandLine command = parse({"monitor", "--metrics-listen", c.arg, "--metrics-top", "3"});
        ASSERT_EQ(command.action, CommandLine::Action::monitor) << c.arg << command.output;
        ASSERT_TRUE(command.monitor.metrics_listen) << c.arg;
        EXPECT_EQ(command.monitor.metrics_listen->host, c.host);
        EXPECT_EQ(command.monitor.metrics_listen->port, c.port);
        EXPECT_EQ(command.monitor.metrics_listen->text(), c.text);
        EXPECT_EQ(command.monitor.metrics_top, 3u);
    }
}

TEST(Options, EventsChoosesTheEventLines) {
    EXPECT_EQ(parse({"monitor"}).monitor.event_lines, EventLines::all);
    EXPECT_EQ(parse({"monitor", "--events", "failures"}).monitor.event_lines, EventLines::failures);
    EXPECT_EQ(parse({"monitor", "--events", "none"}).monitor.event_lines, EventLines::none);
}

TEST(Options, ReportTopBoundsMonitorAndSnapshotReports) {
    EXPECT_EQ(parse({"monitor"}).monitor.report_top, 20u);
    EXPECT_EQ(parse({"monitor", "--report-top", "5"}).monitor.report_top, 5u);
    EXPECT_EQ(parse({"snapshot", "--report-top", "0"}).monitor.report_top, 0u) << "0: all";
}

TEST(Options, TopTakesFiltersAndThresholds) {
    CommandLine command = parse({"top", "--netns", "4026531840", "--proto", "tcp", "--warn-ratio",
                                 "0.5", "--critical-ratio", "0.7"});
    ASSERT_EQ(command.action, CommandLine::Action::top) << command.output;
    EXPECT_EQ(command.monitor.filters.netns, 4026531840u);
    EXPECT_EQ(command.monitor.filters.proto, Proto::tcp);
    EXPECT_EQ(command.monitor.warn_ratio, 0.5);
    EXPECT_EQ(command.monitor.critical_ratio, 0.7);
}

TEST(Options, Help) {
    CommandLine cl = parse({"--help"});
    EXPECT_EQ(cl.action, CommandLine::Action::exit);
    EXPECT_EQ(cl.exit_code, 0);
    EXPECT_NE(cl.output.find("monitor"), std::string::npos) << cl.output;
}

TEST(Options, MonitorHelpListsItsFlags) {
    CommandLine cl = parse({"monitor", "--help"});
    EXPECT_EQ(cl.action, CommandLine::Action::exit);
    EXPECT_EQ(cl.exit_code, 0);
    for (const char *flag : {"--json", "--duration", "--pid", "--comm", "--netns", "--proto",
                             "--family", "--ringbuf-mb"})
        EXPECT_NE(cl.output.find(flag), std::string::npos) << flag;
}

TEST(Options, Version) {
    CommandLine cl = parse({"--version"});
    EXPECT_EQ(cl.action, CommandLine::Action::exit);
    EXPECT_EQ(cl.exit_code, 0);
    // The version CMake's project() gives, the revision git gives, the ABI the records carry.
    std::string expected = std::string("portwatch ") + PORTWATCH_VERSION + " (revision " +
                           git_revision() + ", BPF ABI " + std::to_string(PW_ABI_VERSION) + ")\n";
    EXPECT_EQ(cl.output, expected);
    EXPECT_NE(std::string(git_revision()), "");
}

TEST(Options, OutputFileIsMonitorsOnly) {
    EXPECT_FALSE(parse({"monitor"}).monitor.output);
    EXPECT_EQ(parse({"monitor", "--output", "/var/log/portwatch/events.json"}).monitor.output,
              "/var/log/portwatch/events.json");
    CommandLine top = parse({"top", "--output", "/tmp/x"});
    EXPECT_EQ(top.action, CommandLine::Action::exit);
    EXPECT_EQ(top.exit_code, 2);
    EXPECT_EQ(parse({"monitor", "--output"}).exit_code, 2);
}

}  // namespace
}  // namespace portwatch
