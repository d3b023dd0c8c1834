// SPDX-License-Identifier: Apache-2.0
// Why a scope fills, end to end: `portwatch monitor --json` while a real scenario in its own
// netns makes one cause dominant; the warnings and the final report rank that cause first,
// with its figures. Nothing here depends on timing: the monitor's lines are read after it
// stopped, and the one pause (NarrowRange) only makes a fill rate measurable.
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <functional>
#include <future>
#include <string>
#include <thread>
#include <vector>

#include "kernel_support.h"
#include "monitor_log.h"

namespace portwatch::test {
namespace {

using Json = nlohmann::json;

constexpr std::uint16_t kServerPort = 7000;  // outside the test ranges
const Sysctls kTenPorts{{"net/ipv4/ip_local_port_range", "40000 40009"},
                        {"net/ipv4/tcp_tw_reuse", "0"}};
const Sysctls kTwentyPorts{{"net/ipv4/ip_local_port_range", "40000 40019"}};

// Runs `body` on a thread inside the netns and keeps that thread there until destroyed, so
// that the monitor's final pass over the socket tables finds the netns, as it finds a
// process's.
class Resident {
  public:
    Resident(const Netns &netns, const std::function<void()> &body)
        : thread_([this, &netns, body] {
              netns.run([&] {
                  body();
                  inside_.set_value();
                  leave_.get_future().wait();
              });
          }) {
        inside_.get_future().wait();
    }
    ~Resident() {
        leave_.set_value();
        thread_.join();
    }
    Resident(const Resident &) = delete;
    Resident &operator=(const Resident &) = delete;

  private:
    std::promise<void> inside_, leave_;
    std::thread thread_;
};

// The warning lines of a scope (of a destination port, for destination scopes).
std::vector<Json> warnings_of(const std::vector<Json> &lines, const char *scope,
                              int remote_port = -1) {
    std::vector<Json> out;
    for (const auto &line : lines)
        if (line.value("type", "") == "warning" && line["scope"] == scope &&
            (remote_port < 0 || line["remote_port"] == remote_port))
            out.push_back(line);
    return out;
}

// The first warning line of that scope at level `warning`; fails the test if none.
Json first_warning(const std::vector<Json> &lines, const char *scope, int remote_port = -1) {
    for (const Json &line : warnings_of(lines, scope, remote_port))
        if (line["level"] == "warning") return line;
    std::string all;
    for (const auto &line : lines) all += line.dump() + "\n";
    ADD_FAILURE() << "no warning for the " << scope << " scope; the lines:\n" << all;
    return Json::object({{"causes", Json::array()}});
}

const Json *cause_of(const Json &scope, const char *cause) {
    for (const auto &entry : scope["causes"])
        if (entry["cause"] == cause) return &entry;
    return nullptr;
}

std::string top_cause(const Json &scope) {
    if (!scope.contains("causes") || scope["causes"].empty()) return "(none) in " + scope.dump();
    return scope["causes"][0]["cause"];
}

// Starts the monitor, runs `open` in a fresh netns with `sysctls` on a thread that stays
// there, stops the monitor while the sockets `open` put in its vector are still open, then
// closes them: the monitor's lines about that netns.
std::vector<Json> monitored(const Sysctls &sysctls,
                            const std::function<void(std::vector<int> &)> &open) {
    MonitorLog log;
    Netns netns(sysctls);
    std::vector<int> fds;
    std::vector<Json> lines;
    {
        Resident resident(netns, [&] { open(fds); });
        lines = log.stop_and_collect(netns.inode());
    }
    for (int fd : fds) close(fd);
    return lines;
}

// `count` connect()s to the server, each socket first prepared by `prepare` (0 = ok), kept
// open in `fds`.
void connect_many(int count, std::uint16_t port, std::vector<int> &fds,
                  const std::function<int(int)> &prepare = {}) {
    for (int i = 0; i < count; i++) {
        int fd = make_socket(Family::ipv4, Proto::tcp);
        if (prepare) {
            ASSERT_EQ(prepare(fd), 0) << std::strerror(errno);
        }
        ASSERT_EQ(connect_to(fd, Family::ipv4, port), 0) << std::strerror(errno);
        fds.push_back(fd);
    }
}

using CausesTest = KernelTest;

TEST_F(CausesTest, TimeWaitIsTheCauseWhenClosedConnectionsFillADestination) {
    capture.reset();  // the monitor binary is under test
    MonitorLog log;
    Netns netns(kTenPorts);
    netns.run([&] {
        int server = listener_on(Family::ipv4, kServerPort);
        for (int i = 0; i < 10; i++) connect_and_close(server, kServerPort);
        close(server);
    });
    auto lines = log.stop_and_collect(netns.inode());
    Json warning = first_warning(lines, "destination", kServerPort);
    EXPECT_EQ(top_cause(warning), "time_wait");
    const Json *report = report_of(lines);
    ASSERT_NE(report, nullptr);
    const Json *scope = scope_in(*report, "destination", kServerPort);
    ASSERT_NE(scope, nullptr) << report->dump();
    ASSERT_EQ(top_cause(*scope), "time_wait");
    const Json &cause = (*scope)["causes"][0];
    EXPECT_EQ(cause["share"], 1.0) << cause.dump();
    EXPECT_EQ(cause["ports"], 10);
    EXPECT_EQ(cause["share_of_in_use"], 1.0);
    EXPECT_EQ(cause["closed_here_first"], 10) << "this host closed every connection first";
    EXPECT_EQ(cause["closed_by_peer"], 0);
    EXPECT_EQ(cause["tcp_tw_reuse"], 0);
    std::string advice = cause["advice"];
    EXPECT_NE(advice.find("net.ipv4.tcp_tw_reuse=1"), std::string::npos) << advice;
    EXPECT_NE(advice.find("this netns has 0"), std::string::npos) << advice;
    EXPECT_EQ(cause_of(*scope, "one_destination"), nullptr) << "no live connection left";
}

// A client that binds port 0 before every connect() fills the bind range (each such port
// is held for every destination); the same client with IP_BIND_ADDRESS_NO_PORT does not.
TEST_F(CausesTest, BindBeforeConnectIsTheCauseWhenBoundClientsFillTheBindRange) {
    capture.reset();
    std::vector<Json> lines = monitored(kTenPorts, [](std::vector<int> &fds) {
        fds.push_back(listener_on(Family::ipv4, kServerPort));
        connect_many(8, kServerPort, fds, [](int fd) { return bind_to(fd, Family::ipv4, 0); });
    });
    Json warning = first_warning(lines, "bind");
    ASSERT_EQ(top_cause(warning), "bind_before_connect");
    EXPECT_EQ(warning["causes"][0]["share"], 0.8) << warning.dump();
    EXPECT_EQ(warning["causes"][0]["ports"], 8);
    EXPECT_EQ(warning["causes"][0]["processes"][0]["pid"], getpid());
    EXPECT_NE(std::string(warning["causes"][0]["advice"]).find("IP_BIND_ADDRESS_NO_PORT"),
              std::string::npos);

    const Json *report = report_of(lines);
    ASSERT_NE(report, nullptr);
    const Json *bind = scope_in(*report, "bind");
    ASSERT_NE(bind, nullptr) << report->dump();
    ASSERT_EQ(top_cause(*bind), "bind_before_connect");
    EXPECT_EQ((*bind)["causes"][0]["seen_connected"], 8)
        << "the socket tables showed them connected: " << bind->dump();
}

TEST_F(CausesTest, TheSameClientWithIpBindAddressNoPortHasNoBindBeforeConnect) {
    capture.reset();
    std::vector<Json> lines = monitored(kTenPorts, [](std::vector<int> &fds) {
        fds.push_back(listener_on(Family::ipv4, kServerPort));
        connect_many(8, kServerPort, fds, [](int fd) {
            int one = 1;
            if (setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one)) != 0)
                return -1;
            return bind_to(fd, Family::ipv4, 0);
        });
    });
    for (const auto &line : lines)
        if (line.value("type", "") == "warning") {
            EXPECT_EQ(cause_of(line, "bind_before_connect"), nullptr) << line.dump();
        }
    Json warning = first_warning(lines, "destination", kServerPort);
    EXPECT_EQ(top_cause(warning), "one_destination") << "the ports are the destination's own";
    const Json *report = report_of(lines);
    ASSERT_NE(report, nullptr);
    const Json *bind = scope_in(*report, "bind");
    ASSERT_NE(bind, nullptr);
    EXPECT_EQ(cause_of(*bind, "bind_before_connect"), nullptr) << bind->dump();
}

TEST_F(CausesTest, ListenersInsideTheRangeAreTheCauseForEveryDestination) {
    capture.reset();
    std::vector<Json> lines = monitored(kTenPorts, [](std::vector<int> &fds) {
        fds.push_back(listener_on(Family::ipv4, kServerPort));
        for (std::uint16_t port = 40000; port < 40005; port++)
            fds.push_back(listener_on(Family::ipv4, port));
        connect_many(4, kServerPort, fds);  // 4 of the 5 ports left: 80 %
    });
    Json warning = first_warning(lines, "destination", kServerPort);
    ASSERT_EQ(top_cause(warning), "bind_held_in_range");
    const Json &cause = warning["causes"][0];
    EXPECT_EQ(cause["share"], 0.5) << cause.dump();
    EXPECT_EQ(cause["ports"], 5);
    EXPECT_EQ(cause["listeners"], 0) << "bind() then listen(): the tables have not been read yet";
    EXPECT_EQ(cause["ports_in_range"], Json({40000, 40001, 40002, 40003, 40004}));
    EXPECT_EQ(cause["processes"][0]["pid"], getpid());
    EXPECT_NE(std::string(cause["advice"]).find("net.ipv4.ip_local_reserved_ports"),
              std::string::npos);
    EXPECT_EQ(warning["capacity"], 5);
    ASSERT_NE(cause_of(warning, "one_destination"), nullptr);
    EXPECT_EQ((*cause_of(warning, "one_destination"))["share"], 0.4);
    const Json *report = report_of(lines);
    ASSERT_NE(report, nullptr);
    const Json *scope = scope_in(*report, "destination", kServerPort);
    ASSERT_NE(scope, nullptr) << report->dump();
    ASSERT_EQ(top_cause(*scope), "bind_held_in_range");
    EXPECT_EQ((*scope)["causes"][0]["listeners"], 5) << "the tables showed them listening";
}

TEST_F(CausesTest, ReservedPortsAreTheCauseWhenTheyTakeMostOfTheRange) {
    capture.reset();
    std::vector<Json> lines =
        monitored(Sysctls{{"net/ipv4/ip_local_port_range", "40000 40019"},
                          {"net/ipv4/ip_local_reserved_ports", "40000-40011"},
                          {"net/ipv4/tcp_tw_reuse", "0"}},
                  [](std::vector<int> &fds) {
                      fds.push_back(listener_on(Family::ipv4, kServerPort));
                      connect_many(7, kServerPort, fds);  // 7 of the 8 ports left
                  });
    Json warning = first_warning(lines, "destination", kServerPort);
    ASSERT_EQ(top_cause(warning), "reserved_ports");
    EXPECT_EQ(warning["causes"][0]["share"], 0.6) << warning.dump();
    EXPECT_EQ(warning["causes"][0]["reserved"], 12);
    EXPECT_EQ(warning["causes"][0]["range_size"], 20);
}

TEST_F(CausesTest, OneDestinationIsTheCauseWhenItsConnectionsFillIt) {
    capture.reset();
    std::vector<Json> lines = monitored(kTenPorts, [](std::vector<int> &fds) {
        fds.push_back(listener_on(Family::ipv4, kServerPort));
        fds.push_back(listener_on(Family::ipv4, kServerPort + 1));
        connect_many(1, kServerPort + 1, fds);
        connect_many(8, kServerPort, fds);
    });
    Json warning = first_warning(lines, "destination", kServerPort);
    ASSERT_EQ(top_cause(warning), "one_destination");
    const Json &cause = warning["causes"][0];
    EXPECT_EQ(cause["share"], 0.8) << cause.dump();
    EXPECT_EQ(cause["connections"], 8);
    EXPECT_EQ(cause["netns_connect_ports"], 9);
    EXPECT_EQ(cause["destinations"], 2);
    EXPECT_EQ(cause["destination_share"], 0.8889);
    ASSERT_NE(cause_of(warning, "holder"), nullptr) << "the same ports, one process";
    EXPECT_TRUE(warnings_of(lines, "destination", kServerPort + 1).empty());
}

TEST_F(CausesTest, HolderIsTheCauseWhenOneProcessHoldsTheUdpRange) {
    capture.reset();
    std::vector<Json> lines = monitored(kTenPorts, [](std::vector<int> &fds) {
        for (int i = 0; i < 8; i++) {
            fds.push_back(make_socket(Family::ipv4, Proto::udp));
            socklen_t length;
            sockaddr_storage to = loopback(Family::ipv4, 9, &length);
            EXPECT_EQ(sendto(fds.back(), "x", 1, 0, reinterpret_cast<sockaddr *>(&to), length), 1);
        }
    });
    Json warning = first_warning(lines, "udp");
    ASSERT_EQ(top_cause(warning), "holder");
    const Json &cause = warning["causes"][0];
    EXPECT_EQ(cause["share"], 0.8) << cause.dump();
    EXPECT_EQ(cause["ports"], 8);
    EXPECT_EQ(cause["processes"][0]["pid"], getpid());
    EXPECT_EQ(cause["releases_last_minute"], 0);
    const Json *report = report_of(lines);
    ASSERT_NE(report, nullptr);
    const Json *udp = scope_in(*report, "udp");
    ASSERT_NE(udp, nullptr);
    ASSERT_EQ(top_cause(*udp), "holder");
    EXPECT_GE((*udp)["causes"][0]["held_s_oldest"].get<double>(),
              (*udp)["causes"][0]["held_s_median"].get<double>());
}

// 16 processes with one UDP port each fill a 20-port range: no single cause, the range is
// too narrow for the load.
TEST_F(CausesTest, NarrowRangeIsTheCauseWhenManySmallHoldersFillIt) {
    capture.reset();
    std::vector<pid_t> children;
    socklen_t length;
    sockaddr_storage to = loopback(Family::ipv4, 9, &length);
    auto spawn = [&] {
        int ready[2];
        ASSERT_EQ(pipe(ready), 0);
        pid_t pid = fork();
        if (pid == 0) {
            int fd = socket(AF_INET, SOCK_DGRAM, 0);
            if (sendto(fd, "x", 1, 0, reinterpret_cast<sockaddr *>(&to), length) != 1) _exit(1);
            if (write(ready[1], "x", 1) != 1) _exit(1);
            pause();
            _exit(0);
        }
        close(ready[1]);
        char byte;
        EXPECT_EQ(read(ready[0], &byte, 1), 1) << "child could not send";
        close(ready[0]);
        children.push_back(pid);
    };
    std::vector<Json> lines = monitored(kTwentyPorts, [&](std::vector<int> &) {
        for (int i = 0; i < 8; i++) spawn();
        // the fill rate needs samples 0.1 s apart (an ETA); more time only helps
        std::this_thread::sleep_for(std::chrono::milliseconds(300));
        for (int i = 0; i < 8; i++) spawn();
    });
    for (pid_t child : children) {
        kill(child, SIGKILL);
        waitpid(child, nullptr, 0);
    }
    Json warning = first_warning(lines, "udp");
    ASSERT_EQ(top_cause(warning), "narrow_range");
    EXPECT_EQ(cause_of(warning, "holder"), nullptr) << "5 % each: below 10 %";
    const Json &cause = warning["causes"][0];
    EXPECT_EQ(cause["range_size"], 20);
    EXPECT_GT(cause["widen_by"].get<int>(), 0) << cause.dump();
    EXPECT_NE(std::string(cause["advice"]).find("net.ipv4.ip_local_port_range (now '40000 40019')"),
              std::string::npos)
        << cause.dump();
}

// The text output: the top cause and its advice on the warning line.
TEST_F(CausesTest, TheTextWarningLineSaysWhyAndWhatToDo) {
    capture.reset();
    Monitor monitor({"monitor", "--stats-interval", "0", "--report-interval", "0"});
    ASSERT_NE(monitor.next_line().find("ready"), std::string::npos);
    Netns netns(kTenPorts);
    std::vector<int> fds;
    std::string warning_line, cause_row;
    {
        Resident resident(netns, [&] {
            fds.push_back(listener_on(Family::ipv4, kServerPort));
            connect_many(8, kServerPort, fds, [](int fd) { return bind_to(fd, Family::ipv4, 0); });
        });
        monitor.signal(SIGINT);
        std::string netns_text = "netns " + std::to_string(netns.inode());
        for (std::string line = monitor.next_line(); !line.empty(); line = monitor.next_line()) {
            if (line.find("# ") == 0 &&
                line.find(" warning tcp bind " + netns_text) != std::string::npos)
                warning_line = line;
            if (line.find("why: bind_before_connect") != std::string::npos && line.find("# ") != 0)
                cause_row = line;
        }
        EXPECT_EQ(monitor.wait_exit_code(), 0);
    }
    for (int fd : fds) close(fd);
    EXPECT_NE(warning_line.find("; why: bind_before_connect 80% of the range"), std::string::npos)
        << warning_line;
    EXPECT_NE(warning_line.find("; do: set IP_BIND_ADDRESS_NO_PORT"), std::string::npos)
        << warning_line;
    EXPECT_NE(cause_row.find("why: bind_before_connect 80.0% of the range (ports 8, "
                             "seen_connected 8): set IP_BIND_ADDRESS_NO_PORT"),
              std::string::npos)
        << "the final report's row under the bind scope: " << cause_row;
}

}  // namespace
}  // namespace portwatch::test
