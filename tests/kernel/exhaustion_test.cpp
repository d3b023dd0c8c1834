// SPDX-License-Identifier: Apache-2.0
// `portwatch monitor --json` end to end while a test exhausts a narrow port range in its
// own netns: the warnings come before the failure, name the process, count TIME_WAIT and
// give the exact capacity; the final report agrees.
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <map>
#include <set>
#include <future>
#include <thread>
#include <nlohmann/json.hpp>
#include <vector>

#include "kernel_support.h"
#include "monitor_log.h"

namespace portwatch::test {
namespace {

using Json = nlohmann::json;

constexpr std::uint16_t kServerPort = 7000;  // outside the test range
constexpr std::size_t kRangeSize = 10;       // even-sized: exact capacity (kernel-facts)
const Sysctls kNarrowRangeNoTwReuse{{"net/ipv4/ip_local_port_range", "40000 40009"},
                                    {"net/ipv4/tcp_tw_reuse", "0"}};

void expect_warned_before_failure(const std::vector<Json> &lines, const char *scope) {
    int warning = first(lines, "warning", "warning", scope);
    int critical = first(lines, "warning", "critical", scope);
    int failed = first(lines, "allocate_failed");
    ASSERT_GE(failed, 0) << "no allocate_failed line";
    std::string warnings;
    for (const auto &line : lines)
        if (line.value("type", "") == "warning") warnings += line.dump() + "\n";
    ASSERT_GE(warning, 0) << "no warning; the warnings:\n" << warnings;
    ASSERT_GE(critical, 0) << "no critical";
    EXPECT_LT(warning, critical);
    EXPECT_LT(critical, failed) << "critical must come before the failure";
    EXPECT_EQ(lines[warning]["scope"], scope);
    EXPECT_EQ(lines[critical]["scope"], scope);
    EXPECT_EQ(lines[critical]["capacity"], kRangeSize);
    // the failure itself raises a critical warning naming the process
    bool named = false;
    for (std::size_t i = failed; i < lines.size(); i++)
        if (lines[i].value("type", "") == "warning" && lines[i].contains("failed"))
            named = lines[i]["failed"]["pid"] == getpid() && lines[i]["scope"] == scope;
    EXPECT_TRUE(named) << "no critical warning naming pid " << getpid();
}

using ExhaustionTest = KernelTest;

TEST_F(ExhaustionTest, TimeWaitExhaustsADestinationAfterWarningAndCritical) {
    capture.reset();  // the monitor binary is under test
    MonitorLog log;
    Netns netns(kNarrowRangeNoTwReuse);
    int error = 0;
    std::size_t connected = 0;
    netns.run([&] {
        int server = listener_on(Family::ipv4, kServerPort);
        for (; connected < kRangeSize; connected++) connect_and_close(server, kServerPort);
        int extra = make_socket(Family::ipv4, Proto::tcp);
        EXPECT_NE(connect_to(extra, Family::ipv4, kServerPort), 0);
        error = errno;
        close(extra);
        close(server);
    });
    ASSERT_EQ(connected, kRangeSize);
    ASSERT_EQ(error, EADDRNOTAVAIL);
    auto lines = log.stop_and_collect(netns.inode());
    expect_warned_before_failure(lines, "destination");
    int critical = first(lines, "warning", "critical", "destination");
    EXPECT_GE(lines[critical]["time_wait"].get<int>(), 8) << lines[critical].dump();

    const Json *report = report_of(lines);
    ASSERT_NE(report, nullptr);
    EXPECT_EQ((*report)["port_range"]["low"], 40000);
    EXPECT_EQ((*report)["tcp_tw_reuse"], 0);
    const Json *scope = scope_in(*report, "destination", kServerPort);
    ASSERT_NE(scope, nullptr);
    EXPECT_EQ((*scope)["capacity"], kRangeSize);
    EXPECT_EQ((*scope)["time_wait"], kRangeSize) << report->dump();
    EXPECT_EQ((*scope)["in_use"], kRangeSize);
}

TEST_F(ExhaustionTest, TwoDestinationsHaveSeparateCapacities) {
    capture.reset();
    MonitorLog log;
    Netns netns(kNarrowRangeNoTwReuse);
    std::vector<int> open_sockets;
    netns.run([&] {
        int first_server = listener_on(Family::ipv4, kServerPort);
        int second_server = listener_on(Family::ipv4, kServerPort + 1);
        for (std::size_t i = 0; i < kRangeSize; i++) {
            int fd = make_socket(Family::ipv4, Proto::tcp);
            ASSERT_EQ(connect_to(fd, Family::ipv4, kServerPort), 0);
            open_sockets.push_back(fd);
        }
        int other = make_socket(Family::ipv4, Proto::tcp);
        EXPECT_EQ(connect_to(other, Family::ipv4, kServerPort + 1), 0)
            << "a full first destination does not touch the second";
        open_sockets.push_back(other);
        for (int fd : open_sockets) close(fd);
        close(first_server);
        close(second_server);
    });
    auto lines = log.stop_and_collect(netns.inode());
    int critical = first(lines, "warning", "critical", "destination");
    ASSERT_GE(critical, 0);
    EXPECT_EQ(lines[critical]["remote_port"], kServerPort);
    for (const auto &line : lines) {
        if (line.value("type", "") != "warning" || line["scope"] != "destination") continue;
        EXPECT_EQ(line["remote_port"], kServerPort) << "only the first destination filled up";
    }
}

// One socket more than the range holds, each trying `allocate` (0 on success), all
// kept open until the last has tried: the errno of the last failure.
int exhaust_range(const Netns &netns, Proto proto, const std::function<int(int)> &allocate) {
    int error = 0;
    netns.run([&] {
        std::vector<int> fds;
        for (std::size_t i = 0; i <= kRangeSize; i++) {
            fds.push_back(make_socket(Family::ipv4, proto));
            if (allocate(fds.back()) != 0) error = errno;
        }
        for (int fd : fds) close(fd);
    });
    return error;
}

TEST_F(ExhaustionTest, BindZeroExhaustsTheBindScope) {
    capture.reset();
    MonitorLog log;
    Netns netns(kNarrowRangeNoTwReuse);
    int error =
        exhaust_range(netns, Proto::tcp, [](int fd) { return bind_to(fd, Family::ipv4, 0); });
    ASSERT_EQ(error, EADDRINUSE);
    expect_warned_before_failure(log.stop_and_collect(netns.inode()), "bind");
}

TEST_F(ExhaustionTest, UdpSendersExhaustTheUdpScope) {
    capture.reset();
    MonitorLog log;
    Netns netns(kNarrowRangeNoTwReuse);
    int error = exhaust_range(netns, Proto::udp, [](int fd) {
        socklen_t length;
        sockaddr_storage to = loopback(Family::ipv4, 9, &length);
        return sendto(fd, "x", 1, 0, reinterpret_cast<sockaddr *>(&to), length) < 0 ? -1 : 0;
    });
    ASSERT_EQ(error, EAGAIN);
    expect_warned_before_failure(log.stop_and_collect(netns.inode()), "udp");
}

TEST_F(ExhaustionTest, SocketsOpenedBeforeTheMonitorAreInItsFirstReport) {
    capture.reset();
    Netns netns(kNarrowRangeNoTwReuse);
    std::vector<int> fds;
    std::uint16_t client_port = 0;
    // A thread stays inside, as a process would: that is how the monitor finds the netns.
    std::promise<void> opened, monitored;
    std::thread resident([&] {
        netns.run([&] {
            fds.push_back(listener_on(Family::ipv4, kServerPort));
            fds.push_back(make_socket(Family::ipv4, Proto::tcp));
            EXPECT_EQ(connect_to(fds.back(), Family::ipv4, kServerPort), 0);
            client_port = local_port_of(fds.back());
            fds.push_back(accept(fds[0], nullptr, nullptr));
            fds.push_back(make_socket(Family::ipv4, Proto::udp));
            EXPECT_EQ(bind_to(fds.back(), Family::ipv4, 0), 0);
            opened.set_value();
            monitored.get_future().wait();
        });
    });
    opened.get_future().wait();
    std::vector<Json> lines;
    {
        MonitorLog log;  // started after the sockets
        lines = log.stop_and_collect(netns.inode());
    }
    monitored.set_value();
    resident.join();
    for (int fd : fds) close(fd);

    EXPECT_EQ(first(lines, "allocate"), -1) << "no event: the sockets predate the monitor";
    const Json *report = report_of(lines);
    ASSERT_NE(report, nullptr);
    const Json *destination = scope_in(*report, "destination", kServerPort);
    ASSERT_NE(destination, nullptr) << report->dump();
    EXPECT_EQ((*destination)["in_use"], 1) << "the client; the accepted socket holds no port";
    EXPECT_EQ((*destination)["capacity"], kRangeSize);
    EXPECT_EQ((*destination)["top_processes"][0]["pid"], getpid());
    const Json *udp = scope_in(*report, "udp");
    ASSERT_NE(udp, nullptr);
    EXPECT_EQ((*udp)["in_use"], 1);
    EXPECT_TRUE(client_port >= 40000 && client_port <= 40009) << client_port;
}

// `ss` run from inside the netns (the child of a thread inherits its netns): the local
// ports of the ESTABLISHED TCP sockets it lists.
std::vector<int> established_ports_by_ss() {
    std::vector<int> ports;
    FILE *ss = popen("ss -Htan state established 2>/dev/null", "r");
    if (!ss) return ports;
    char line[512];
    while (std::fgets(line, sizeof(line), ss)) {
        std::string text(line);
        auto colon = text.find(':');  // "0 0 127.0.0.1:40003 127.0.0.1:7000"
        if (colon != std::string::npos) ports.push_back(std::atoi(text.c_str() + colon + 1));
    }
    pclose(ss);
    return ports;
}

// Without root, snapshot still reads its own netns (tables and settings); the sockets of
// other users' processes are counted, without an owner.
TEST_F(ExhaustionTest, SnapshotWithoutPrivilegesCountsItsOwnNetns) {
    capture.reset();
    Netns netns(kNarrowRangeNoTwReuse);
    std::vector<int> fds;
    netns.run([&] {
        fds.push_back(listener_on(Family::ipv4, kServerPort));
        for (int i = 0; i < 2; i++) {
            fds.push_back(make_socket(Family::ipv4, Proto::tcp));
            EXPECT_EQ(connect_to(fds.back(), Family::ipv4, kServerPort), 0);
        }
        fds.push_back(make_socket(Family::ipv4, Proto::udp));
        EXPECT_EQ(bind_to(fds.back(), Family::ipv4, 0), 0);
    });
    BinaryForNobody binary;
    Monitor snapshot(binary.setpriv_args({"snapshot", "--json"}), &netns, "/usr/bin/setpriv");
    Json report;
    for (std::string line = snapshot.next_line(); !line.empty(); line = snapshot.next_line()) {
        Json object = Json::parse(line);
        if (object["type"] == "report") report = object;
    }
    EXPECT_EQ(snapshot.wait_exit_code(), 0);
    EXPECT_NE(snapshot.all_stderr().find("portwatch: no CAP_SYS_ADMIN and CAP_SYS_PTRACE: "),
              std::string::npos);
    for (int fd : fds) close(fd);

    ASSERT_FALSE(report.is_null());
    ASSERT_EQ(report["netns"].size(), 1u) << report.dump();
    EXPECT_EQ(report["netns"][0]["netns"], netns.inode());
    EXPECT_EQ(report["netns"][0]["port_range"]["low"], 40000) << "the netns's own range";
    const Json *destination = scope_in(report["netns"][0], "destination", kServerPort);
    ASSERT_NE(destination, nullptr) << report.dump();
    EXPECT_EQ((*destination)["in_use"], 2);
    EXPECT_EQ((*destination)["capacity"], kRangeSize);
    const Json *udp = scope_in(report["netns"][0], "udp");
    ASSERT_NE(udp, nullptr);
    EXPECT_EQ((*udp)["in_use"], 1);
    for (const auto &process : report["processes"]) EXPECT_NE(process["pid"], getpid());
}

TEST_F(ExhaustionTest, SnapshotCountsWhatSsShows) {
    capture.reset();  // snapshot uses no BPF
    Netns netns(kNarrowRangeNoTwReuse);
    std::vector<int> fds, ss_ports;
    std::promise<void> opened, done;
    std::thread resident([&] {
        netns.run([&] {
            fds.push_back(listener_on(Family::ipv4, kServerPort));
            for (int i = 0; i < 3; i++) {
                fds.push_back(make_socket(Family::ipv4, Proto::tcp));
                EXPECT_EQ(connect_to(fds.back(), Family::ipv4, kServerPort), 0);
                fds.push_back(accept(fds[0], nullptr, nullptr));
            }
            fds.push_back(make_socket(Family::ipv4, Proto::udp));
            EXPECT_EQ(bind_to(fds.back(), Family::ipv4, 0), 0);
            ss_ports = established_ports_by_ss();
            opened.set_value();
            done.get_future().wait();
        });
    });
    opened.get_future().wait();
    Monitor snapshot({"snapshot", "--json", "--netns", std::to_string(netns.inode())});
    Json report;
    for (std::string line = snapshot.next_line(); !line.empty(); line = snapshot.next_line()) {
        Json object = Json::parse(line);
        if (object["type"] == "report") report = object;
    }
    EXPECT_EQ(snapshot.wait_exit_code(), 0);
    done.set_value();
    resident.join();
    for (int fd : fds) close(fd);

    // ss shows 6 established sockets: 3 clients on ports in the range, 3 accepted on 7000
    ASSERT_EQ(ss_ports.size(), 6u);
    std::size_t clients = std::count_if(ss_ports.begin(), ss_ports.end(),
                                        [](int port) { return port != kServerPort; });
    ASSERT_FALSE(report.is_null());
    ASSERT_EQ(report["netns"].size(), 1u);
    const Json *destination = scope_in(report["netns"][0], "destination", kServerPort);
    ASSERT_NE(destination, nullptr) << report.dump();
    EXPECT_EQ((*destination)["in_use"], clients);
    EXPECT_EQ((*destination)["capacity"], kRangeSize);
    const Json *udp = scope_in(report["netns"][0], "udp");
    ASSERT_NE(udp, nullptr);
    EXPECT_EQ((*udp)["in_use"], 1);
    ASSERT_EQ(report["processes"].size(), 1u);
    EXPECT_EQ(report["processes"][0]["pid"], getpid());
    EXPECT_EQ(report["processes"][0]["ports_held_total"], clients + 2) << "+ listener, UDP";
}

// A netns that holds hundreds of real connections: 300 loopback listeners, each the
// destination of one client; 30 child processes hold 10 clients each. connect() may give
// one local port to two of a child's clients (__inet_hash_connect() wants only a unique
// 4-tuple), so each child says how many distinct ports it holds. The listeners are on fixed
// ports below the ephemeral range, as services are: from the tables alone, a local port shared
// by 3 or more connects towards ports of the range reads as a gone server's (docs/limits.md).
class HundredsOfDestinations {
  public:
    static constexpr int kListeners = 300, kChildren = 30;
    static constexpr std::uint16_t kFirstListenerPort = 20000;

    explicit HundredsOfDestinations(const Netns &netns) {
        netns.run([&] {
            for (int i = 0; i < kListeners; i++)
                listeners_.push_back(listener_on(Family::ipv4, kFirstListenerPort + i));
            for (int child = 0; child < kChildren; child++) spawn(child);
        });
    }
    ~HundredsOfDestinations() {
        for (const auto &[child, ports] : ports_of_child_) {
            kill(child, SIGKILL);
            waitpid(child, nullptr, 0);
        }
        for (int fd : listeners_) close(fd);
    }

    // The ports held by the children not among `shown` (pids).
    int ports_of_children_other_than(const std::vector<pid_t> &shown) const {
        int ports = 0;
        for (const auto &[child, held] : ports_of_child_)
            if (std::find(shown.begin(), shown.end(), child) == shown.end()) ports += held;
        return ports;
    }

  private:
    // A child that connects to its 10 listeners, says how many ports it holds and waits
    // to be killed.
    void spawn(int child) {
        int ready[2];
        EXPECT_EQ(pipe(ready), 0);
        pid_t pid = fork();
        if (pid == 0) {
            const int per_child = kListeners / kChildren;
            std::set<std::uint16_t> ports;
            for (int i = child * per_child; i < (child + 1) * per_child; i++) {
                int fd = make_socket(Family::ipv4, Proto::tcp);
                if (connect_to(fd, Family::ipv4, local_port_of(listeners_[i])) != 0) _exit(1);
                ports.insert(local_port_of(fd));
            }
            const char held = static_cast<char>(ports.size());
            if (write(ready[1], &held, 1) != 1) _exit(1);
            pause();
            _exit(0);
        }
        close(ready[1]);
        char byte = 0;
        EXPECT_EQ(read(ready[0], &byte, 1), 1) << "child " << child << " could not connect";
        close(ready[0]);
        ports_of_child_[pid] = byte;
    }

    std::vector<int> listeners_;
    std::map<pid_t, int> ports_of_child_;
};

std::vector<std::string> snapshot_lines(const Netns &netns, bool json) {
    std::vector<std::string> args = {"snapshot", "--report-top", "10", "--netns",
                                     std::to_string(netns.inode())};
    if (json) args.push_back("--json");
    Monitor snapshot(args);
    std::vector<std::string> lines;
    for (std::string line = snapshot.next_line(); !line.empty(); line = snapshot.next_line())
        lines.push_back(line);
    EXPECT_EQ(snapshot.wait_exit_code(), 0) << snapshot.all_stderr();
    return lines;
}

TEST(BoundedReport, HundredsOfDestinationsAndProcessesGiveTenRowsEachAndASummary) {
    Netns netns;
    HundredsOfDestinations host(netns);
    constexpr int kScopes = HundredsOfDestinations::kListeners + 1;    // and the bind scope
    constexpr int kProcesses = HundredsOfDestinations::kChildren + 1;  // and this one

    Json report;
    for (const std::string &line : snapshot_lines(netns, true))
        if (Json object = Json::parse(line); object["type"] == "report") report = object;
    ASSERT_FALSE(report.is_null());
    ASSERT_EQ(report["netns"].size(), 1u);
    EXPECT_EQ(report["netns"][0]["scopes"].size(), 10u);
    EXPECT_EQ(report["netns"][0]["scopes"][0]["scope"], "bind") << "the fullest first";
    EXPECT_EQ(report["netns"][0]["scopes_left_out"]["count"], kScopes - 10);
    EXPECT_EQ(report["netns"][0]["scopes_left_out"]["in_use"], kScopes - 10);
    EXPECT_EQ(report["processes"].size(), 10u);
    EXPECT_EQ(report["processes"][0]["pid"], getpid()) << "the listeners' holder";
    EXPECT_EQ(report["processes_left_out"]["count"], kProcesses - 10);
    std::vector<pid_t> shown;
    for (const Json &process : report["processes"]) shown.push_back(process["pid"]);
    EXPECT_EQ(report["processes_left_out"]["ports_held_total"],
              host.ports_of_children_other_than(shown))
        << "the children left out, up to 10 ports each";

    std::vector<std::string> text = snapshot_lines(netns, false);
    std::size_t rows = std::count_if(text.begin(), text.end(),
                                     [](const std::string &line) { return line[0] != '#'; });
    EXPECT_EQ(rows, 1 + 10 + 1 + 1 + 10 + 1u) << "headers, rows and summaries";
    auto has = [&](const std::string &start) {
        return std::any_of(text.begin(), text.end(), [&](const std::string &line) {
            return line.find(start) != std::string::npos;
        });
    };
    EXPECT_TRUE(has("... " + std::to_string(kScopes - 10) + " more scopes: "));
    EXPECT_TRUE(has("... " + std::to_string(kProcesses - 10) + " more processes: "));
}

TEST(ReportCountsPorts, ThreeReusePortSocketsOnOnePortAreOnePortHeld) {
    Netns netns;
    std::vector<int> fds;
    std::uint16_t port = 0;
    netns.run([&] {
        for (int i = 0; i < 3; i++) {
            int fd = make_socket(Family::ipv4, Proto::udp);
            int on = 1;
            ASSERT_EQ(setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, sizeof(on)), 0);
            ASSERT_EQ(bind_to(fd, Family::ipv4, port), 0);
            port = local_port_of(fd);  // the first bind(0) picks it; the others share it
            fds.push_back(fd);
        }
    });
    Json report;
    for (const std::string &line : snapshot_lines(netns, true))
        if (Json object = Json::parse(line); object["type"] == "report") report = object;
    for (int fd : fds) close(fd);
    ASSERT_FALSE(report.is_null());
    ASSERT_EQ(report["processes"].size(), 1u) << report.dump();
    EXPECT_EQ(report["processes"][0]["ports_held_total"], 1) << "port " << port << ", 3 sockets";
    const Json *udp = scope_in(report["netns"][0], "udp");
    ASSERT_NE(udp, nullptr);
    EXPECT_EQ((*udp)["in_use"], 1);
    EXPECT_EQ((*udp)["top_processes"][0]["ports"], 1);
}

}  // namespace
}  // namespace portwatch::test
