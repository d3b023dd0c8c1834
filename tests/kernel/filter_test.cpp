// SPDX-License-Identifier: Apache-2.0
// Filters are applied in the kernel: a capture loaded with a filter must see
// exactly the matching allocations of a namespace, and nothing else.
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sched.h>

#include <array>
#include <cerrno>
#include <cstdio>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "kernel_support.h"
#include "system/container_cgroups.h"

namespace portwatch::test {
namespace {

// Binds port 0 on one socket of each kind (tcp4, tcp6, udp4, udp6) in `netns`,
// from a thread named `comm`.
void bind_one_of_each(const Netns &netns, const char *comm) {
    netns.run([&] {
        prctl(PR_SET_NAME, comm);
        for (Family family : {Family::ipv4, Family::ipv6}) {
            for (Proto proto : {Proto::tcp, Proto::udp}) {
                int fd = make_socket(family, proto);
                socklen_t length;
                sockaddr_storage addr = loopback(family, 0, &length);
                ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr *>(&addr), length), 0);
                close(fd);
            }
        }
    });
}

// A child forked before the capture loads (so that its pid, uid or cgroup can be a filter)
// that waits until the test releases it, then runs `body` with the write end of its report
// pipe and exits. `body` makes only async-signal-safe calls: the test process has threads.
class WaitingChild {
  public:
    template <class Body>
    explicit WaitingChild(Body body) {
        EXPECT_EQ(pipe(go_), 0);
        EXPECT_EQ(pipe(report_), 0);
        pid_ = fork();
        if (pid_ == 0) {
            char go;
            if (read(go_[0], &go, 1) == 1) body(report_[1]);
            _exit(0);
        }
        close(go_[0]);
        close(report_[1]);
    }
    ~WaitingChild() {
        close(go_[1]);
        close(report_[0]);
        waitpid(pid_, nullptr, 0);
    }
    WaitingChild(const WaitingChild &) = delete;
    WaitingChild &operator=(const WaitingChild &) = delete;

    pid_t pid() const { return pid_; }

  protected:
    // Releases it, and reads what it reports first.
    template <class Report>
    Report release_and_read() {
        char go = 1;
        EXPECT_EQ(write(go_[1], &go, 1), 1);
        return read_report<Report>();
    }
    template <class Report>
    Report read_report() {
        Report report{};
        EXPECT_EQ(read(report_[0], &report, sizeof report), ssize_t(sizeof report));
        return report;
    }

  private:
    pid_t pid_ = -1;
    int go_[2] = {-1, -1}, report_[2] = {-1, -1};
};

// The local port getsockname() gives `fd`; 0 when it fails. Async-signal-safe.
std::uint16_t port_of(int fd) {
    sockaddr_in address{};
    socklen_t length = sizeof address;
    if (getsockname(fd, reinterpret_cast<sockaddr *>(&address), &length) != 0) return 0;
    return ntohs(address.sin_port);
}

// Binds a UDP socket to 127.0.0.1 port 0: the port it got, 0 if it failed. Async-signal-safe.
std::uint16_t bind_udp_loopback() {
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, reinterpret_cast<sockaddr *>(&address), sizeof address) != 0) return 0;
    return port_of(fd);
}

// Once released, binds a UDP socket to port 0 in `netns` and reports its port.
class BindingChild : public WaitingChild {
  public:
    explicit BindingChild(const Netns &netns)
        : WaitingChild([netns_fd = netns.fd()](int report) {
              std::uint16_t port = setns(netns_fd, CLONE_NEWNET) == 0 ? bind_udp_loopback() : 0;
              if (write(report, &port, sizeof port) != sizeof port) _exit(1);
          }) {}

    // Lets it bind; the port it got (0 if it failed).
    std::uint16_t bind_now() { return release_and_read<std::uint16_t>(); }
};

// Once released, in `netns` as `uid` (real, effective and saved): binds a UDP socket to port
// 0, listens on an unbound TCP socket and connects a TCP socket to it, and reports the three
// local ports getsockname() gave (0 for each that failed).
class UserChild : public WaitingChild {
  public:
    UserChild(const Netns &netns, uid_t uid)
        : WaitingChild([netns_fd = netns.fd(), uid](int report) {
              std::uint16_t ports[3] = {};
              if (setns(netns_fd, CLONE_NEWNET) == 0 && setresuid(uid, uid, uid) == 0)
                  allocate(ports);
              if (write(report, ports, sizeof ports) != sizeof ports) _exit(1);
          }) {}

    std::set<std::uint16_t> allocate_now() {
        auto ports = release_and_read<std::array<std::uint16_t, 3>>();
        return {ports[0], ports[1], ports[2]};
    }

  private:
    static void allocate(std::uint16_t (&ports)[3]) {
        ports[0] = bind_udp_loopback();
        int listener = socket(AF_INET, SOCK_STREAM, 0);
        if (listen(listener, 4) == 0) ports[1] = port_of(listener);
        sockaddr_in loopback4{};
        loopback4.sin_family = AF_INET;
        loopback4.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        loopback4.sin_port = htons(ports[1]);
        int client = socket(AF_INET, SOCK_STREAM, 0);
        if (ports[1] &&
            connect(client, reinterpret_cast<sockaddr *>(&loopback4), sizeof loopback4) == 0)
            ports[2] = port_of(client);
    }
};

// Once released, in `netns`: binds a UDP socket to port 0, then forks a child that forks a
// grandchild and exits at once; the grandchild, a daemon by then (its parent gone), binds a
// UDP socket to port 0 too. Each reports (its pid, the port getsockname() gave it).
class ForkingParent : public WaitingChild {
  public:
    explicit ForkingParent(const Netns &netns)
        : WaitingChild([netns_fd = netns.fd()](int report) {
              if (setns(netns_fd, CLONE_NEWNET) != 0) _exit(1);
              bind_and_report(report);
              pid_t child = fork();
              if (child == 0) {
                  pid_t parent = getpid();
                  if (fork() == 0) {
                      while (getppid() == parent) sched_yield();  // until the child is gone
                      bind_and_report(report);
                  }
                  _exit(0);
              }
              waitpid(child, nullptr, 0);
          }) {}

    // (pid, port) of the parent's bind and of the grandchild's.
    std::set<std::pair<std::uint32_t, std::uint16_t>> bind_now() {
        std::set<std::pair<std::uint32_t, std::uint16_t>> seen;
        auto first = release_and_read<std::array<std::uint32_t, 2>>();
        auto second = read_report<std::array<std::uint32_t, 2>>();
        for (const auto &pair : {first, second}) seen.insert({pair[0], std::uint16_t(pair[1])});
        return seen;
    }

  private:
    static void bind_and_report(int report) {
        std::uint32_t pair[2] = {std::uint32_t(getpid()), bind_udp_loopback()};
        if (write(report, pair, sizeof pair) != sizeof pair) _exit(1);
    }
};

// The (pid, port) of each allocation.
std::set<std::pair<std::uint32_t, std::uint16_t>> pids_and_ports(
    const std::vector<AllocateEvent> &events) {
    std::set<std::pair<std::uint32_t, std::uint16_t>> seen;
    for (const AllocateEvent &event : events) seen.insert({event.task.pid, event.sock.local_port});
    return seen;
}

class FilterTest : public KernelTest {
  protected:
    // `outside` and this process bind in the test's netns too; only `inside`'s port is reported.
    void expect_only_inside_reported(const Netns &netns, BindingChild &inside,
                                     BindingChild &outside) {
        std::uint16_t outside_port = outside.bind_now();
        std::set<std::pair<std::uint32_t, std::uint16_t>> expected{
            {inside.pid(), inside.bind_now()}};
        bind_one_of_each(netns, "pw-filter");  // this process, in neither
        ASSERT_NE(outside_port, 0);
        EXPECT_EQ(pids_and_ports(allocations_in(netns, 1)), expected);
    }

    // Each test sets the filters, then calls KernelTest::SetUp() itself.
    void SetUp() override {}
    CaptureConfig config() const override {
        CaptureConfig config;
        config.filters = filters;
        return config;
    }

    std::vector<AllocateEvent> allocations_in(
        const Netns &netns, std::size_t expected,
        std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
        return allocations(EventLog(*capture).collect(netns.inode(), at_least(expected), timeout));
    }

    Filters filters;
};

// What a busy host does: TCP connects accepted and closed (the client closing first, and the
// server), connects refused, a listen() without bind(), UDP sends from unbound sockets.
void make_traffic(const Netns &netns) {
    netns.run([] {
        for (Family family : {Family::ipv4, Family::ipv6}) {
            int listener = make_socket(family, Proto::tcp);
            ASSERT_EQ(listen(listener, 64), 0);
            std::uint16_t port = local_port_of(listener);
            for (int i = 0; i < 20; i++) {
                int client = make_socket(family, Proto::tcp);
                ASSERT_EQ(connect_to(client, family, port), 0);
                int server = accept(listener, nullptr, nullptr);
                ASSERT_GE(server, 0);
                close(i % 2 ? client : server);
                close(i % 2 ? server : client);
                int refused = make_socket(family, Proto::tcp);
                EXPECT_EQ(connect_to(refused, family, 1), -1);
                close(refused);
                int udp = make_socket(family, Proto::udp);
                socklen_t length;
                sockaddr_storage to = loopback(family, 9, &length);
                EXPECT_EQ(sendto(udp, "x", 1, 0, reinterpret_cast<sockaddr *>(&to), length), 1);
                close(udp);
            }
            close(listener);
        }
    });
}

// The records the kernel side sent, over every poll until `quiet` passes without one; and it
// counted none emitted or lost.
void expect_no_records(Capture &capture, std::chrono::milliseconds quiet) {
    std::uint64_t records = 0;
    Capture::EventHandler ignore = [](Event &) {};
    auto until = std::chrono::steady_clock::now() + quiet;
    while (std::chrono::steady_clock::now() < until) {
        Result<int> polled = capture.poll(50, ignore);
        ASSERT_TRUE(polled.ok()) << polled.error();
        records += std::uint64_t(*polled);
    }
    EXPECT_EQ(records, 0u);
    Capture::CounterReading read = capture.counters();
    ASSERT_EQ(read.error, "");
    EXPECT_EQ(read.totals.emitted_total(), 0u);
    EXPECT_EQ(read.totals.lost_total(), 0u);
}

// A filter is applied where each path starts: filtered to a process that makes no call, the
// kernel side sends nothing of a busy host, not even the closes of sockets it did not report.
TEST_F(FilterTest, PidOfAnIdleProcessSendsNoRecordOfABusyHost) {
    pid_t idle = fork();
    ASSERT_GE(idle, 0);
    if (idle == 0) {
        pause();
        _exit(0);
    }
    filters.pids = {static_cast<std::uint32_t>(idle)};
    KernelTest::SetUp();
    if (!IsSkipped() && !HasFatalFailure()) {
        Netns netns;
        make_traffic(netns);
        expect_no_records(*capture, std::chrono::milliseconds(500));
    }
    kill(idle, SIGKILL);
    waitpid(idle, nullptr, 0);
}

TEST_F(FilterTest, NetnsWithoutTrafficSendsNoRecordOfABusyHost) {
    Netns idle, busy;
    filters.netns = idle.inode();
    KernelTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    make_traffic(busy);
    expect_no_records(*capture, std::chrono::milliseconds(500));
}

// The netns filter only keeps other tests' and the host's UDP out of the count: the TCP made in
// that netns passes it, and the proto filter alone must stop it.
TEST_F(FilterTest, ProtoUdpSendsNoRecordOfTcp) {
    Netns netns;
    filters.proto = Proto::udp;
    filters.netns = netns.inode();
    KernelTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    netns.run([] {
        int listener = make_socket(Family::ipv4, Proto::tcp);
        ASSERT_EQ(listen(listener, 64), 0);
        for (int i = 0; i < 20; i++) {
            int client = make_socket(Family::ipv4, Proto::tcp);
            ASSERT_EQ(connect_to(client, Family::ipv4, local_port_of(listener)), 0);
            close(client);
            close(accept(listener, nullptr, nullptr));
        }
        close(listener);
    });
    expect_no_records(*capture, std::chrono::milliseconds(500));
}

TEST_F(FilterTest, ProtoKeepsOnlyThatProtocol) {
    filters.proto = Proto::udp;
    KernelTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    Netns netns;
    bind_one_of_each(netns, "pw-filter");
    auto seen = allocations_in(netns, 2);
    ASSERT_EQ(seen.size(), 2u);
    for (const auto &event : seen) EXPECT_EQ(event.sock.proto, Proto::udp);
}

TEST_F(FilterTest, FamilyKeepsOnlyThatFamily) {
    filters.family = Family::ipv6;
    KernelTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    Netns netns;
    bind_one_of_each(netns, "pw-filter");
    auto seen = allocations_in(netns, 2);
    ASSERT_EQ(seen.size(), 2u);
    for (const auto &event : seen) EXPECT_EQ(event.sock.family, Family::ipv6);
}

TEST_F(FilterTest, NetnsKeepsOnlyThatNamespace) {
    Netns watched, other;
    filters.netns = watched.inode();
    KernelTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    bind_one_of_each(other, "pw-filter");
    bind_one_of_each(watched, "pw-filter");
    EXPECT_EQ(allocations_in(watched, 4).size(), 4u);
    EXPECT_EQ(allocations_in(other, 1, std::chrono::seconds(1)).size(), 0u);
}

TEST_F(FilterTest, PidKeepsOnlyThatProcess) {
    filters.pids = {static_cast<std::uint32_t>(getpid())};
    KernelTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    Netns netns;
    bind_one_of_each(netns, "pw-filter");
    auto seen = allocations_in(netns, 4);
    ASSERT_EQ(seen.size(), 4u);
    for (const auto &event : seen) EXPECT_EQ(event.task.pid, static_cast<std::uint32_t>(getpid()));
}

TEST_F(FilterTest, PidOfAnotherProcessSeesNothingOfOurs) {
    filters.pids = {static_cast<std::uint32_t>(getppid())};
    KernelTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    Netns netns;
    bind_one_of_each(netns, "pw-filter");
    EXPECT_EQ(allocations_in(netns, 1, std::chrono::seconds(1)).size(), 0u);
}

TEST_F(FilterTest, RepeatedPidKeepsEachOfThoseProcesses) {
    Netns netns;
    BindingChild first(netns), second(netns), other(netns);
    filters.pids = {std::uint32_t(first.pid()), std::uint32_t(second.pid())};
    KernelTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    std::uint16_t other_port = other.bind_now();
    std::set<std::pair<std::uint32_t, std::uint16_t>> expected{{first.pid(), first.bind_now()},
                                                               {second.pid(), second.bind_now()}};
    ASSERT_NE(other_port, 0);
    EXPECT_EQ(pids_and_ports(allocations_in(netns, 2)), expected);
}

// --cgroup: the processes in the cgroup or below it, no other.
TEST_F(FilterTest, CgroupKeepsItsProcessesAndItsDescendantsOnly) {
    std::string base = "/portwatch-filter-test-" + std::to_string(getpid());
    TestCgroup inner(base + "/inner"), beside(base + "-beside");
    Netns netns;
    BindingChild inside(netns), outside(netns);
    inner.add(inside.pid());
    beside.add(outside.pid());
    filters.cgroups = {base};
    KernelTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    expect_only_inside_reported(netns, inside, outside);
}

TEST_F(FilterTest, CommKeepsOnlyThreadsWithThatName) {
    filters.comm = "pw-wanted";
    KernelTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    Netns netns;
    bind_one_of_each(netns, "pw-unwanted");
    bind_one_of_each(netns, "pw-wanted");
    auto seen = allocations_in(netns, 4);
    ASSERT_EQ(seen.size(), 4u);
    for (const auto &event : seen) EXPECT_EQ(event.task.comm, "pw-wanted");
}

// --uid: the calls of that user only, TCP connects too (taken at the syscall with this
// filter: sockops cannot read the caller's uid); repeated: any of them.
TEST_F(FilterTest, UidKeepsOnlyThatUsersCalls) {
    constexpr uid_t kWatched = 65534, kAlsoWatched = 65533, kOther = 65532;
    Netns netns;
    UserChild watched(netns, kWatched), also_watched(netns, kAlsoWatched), other(netns, kOther);
    filters.uids = {kWatched, kAlsoWatched};
    KernelTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    std::set<std::uint16_t> other_ports = other.allocate_now();
    bind_one_of_each(netns, "pw-filter");  // root's
    std::set<std::pair<std::uint32_t, std::uint16_t>> expected;
    for (auto [child, uid] : {std::pair{&watched, kWatched}, {&also_watched, kAlsoWatched}})
        for (std::uint16_t port : child->allocate_now()) expected.insert({uid, port});
    ASSERT_EQ(expected.size(), 6u);  // each port allocated (none 0)
    ASSERT_FALSE(other_ports.contains(0));
    std::set<std::pair<std::uint32_t, std::uint16_t>> seen;
    for (const AllocateEvent &event : allocations_in(netns, 6, std::chrono::seconds(5)))
        seen.insert({event.task.uid, event.sock.local_port});
    EXPECT_EQ(seen, expected);
}

// The uid filter sends nothing of a busy host made by another user (root here).
TEST_F(FilterTest, UidOfAnIdleUserSendsNoRecordOfABusyHost) {
    filters.uids = {65534};
    KernelTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    Netns netns;
    make_traffic(netns);
    expect_no_records(*capture, std::chrono::milliseconds(500));
}

// --port: the allocations whose local port is in a range, and their releases, on every TCP
// connect path; a failed bind() by the port it asked for; a failure where the kernel was to
// choose (the range exhausted: no port) passes. Nothing else of the netns is sent.
TEST_F(FilterTest, PortKeepsThoseLocalPortsTheirReleasesAndExhaustion) {
    Netns netns(
        Sysctls{{"net/ipv4/ip_local_port_range", "40000 40009"}, {"net/ipv4/tcp_tw_reuse", "0"}});
    filters.netns = netns.inode();
    filters.ports = {LocalPortRange{40000, 40004}, LocalPortRange{7001, 7001}};
    KernelTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    std::set<std::uint16_t> connected, expected_allocated{7001};
    int exhausted_errno = 0, busy_7001 = 0, busy_7002 = 0;
    netns.run([&] {
        int listener = listener_on(Family::ipv4, 7000);  // outside: not sent
        int udp_in = make_socket(Family::ipv4, Proto::udp),
            udp_out = make_socket(Family::ipv4, Proto::udp);
        ASSERT_EQ(bind_to(udp_in, Family::ipv4, 7001), 0);
        ASSERT_EQ(bind_to(udp_out, Family::ipv4, 7002), 0);
        int again_in = make_socket(Family::ipv4, Proto::udp),
            again_out = make_socket(Family::ipv4, Proto::udp);
        busy_7001 = bind_to(again_in, Family::ipv4, 7001) == 0 ? 0 : errno;
        busy_7002 = bind_to(again_out, Family::ipv4, 7002) == 0 ? 0 : errno;
        std::vector<int> clients;
        for (int i = 0; i < 10; i++) {
            clients.push_back(make_socket(Family::ipv4, Proto::tcp));
            ASSERT_EQ(connect_to(clients.back(), Family::ipv4, 7000), 0);
            connected.insert(local_port_of(clients.back()));
        }
        int one_too_many = make_socket(Family::ipv4, Proto::tcp);
        exhausted_errno = connect_to(one_too_many, Family::ipv4, 7000) == 0 ? 0 : errno;
        for (int fd : clients) close(fd);
        for (int fd : {one_too_many, again_in, again_out, udp_in, udp_out, listener}) close(fd);
    });
    ASSERT_EQ(connected.size(), 10u);
    ASSERT_EQ(busy_7001, EADDRINUSE);
    ASSERT_EQ(busy_7002, EADDRINUSE);
    ASSERT_EQ(exhausted_errno, EADDRNOTAVAIL);
    for (std::uint16_t port : connected)
        if (port <= 40004) expected_allocated.insert(port);
    ASSERT_EQ(expected_allocated.size(), 6u);  // 7001 and 40000-40004, all taken
    std::vector<Event> events =
        EventLog(*capture).collect(netns.inode(), at_least(6, 2, 6), std::chrono::seconds(5));
    std::set<std::uint16_t> allocated, released;
    std::set<std::pair<std::uint16_t, int>> failed;
    for (const AllocateEvent &event : allocations(events)) allocated.insert(event.sock.local_port);
    for (const AllocateEvent &event : allocations(events, true))
        failed.insert({event.sock.local_port, event.error});
    for (const ReleaseEvent &event : releases(events)) released.insert(event.sock.local_port);
    EXPECT_EQ(allocated, expected_allocated);
    EXPECT_EQ(released, expected_allocated);
    EXPECT_EQ(failed,
              (std::set<std::pair<std::uint16_t, int>>{{0, EADDRNOTAVAIL}, {7001, EADDRINUSE}}));
}

// Two container ids sharing their first 11 digits (f35 and this test process's pid), which
// differ in the 12th: two containers docker would name with the systemd cgroup driver.
struct TwoContainers {
    std::string shared = [] {
        char pid[9];
        std::snprintf(pid, sizeof pid, "%08x", unsigned(getpid()));
        return "f35" + std::string(pid);
    }();
    std::string watched_id = shared + std::string(53, 'b');
    std::string other_id = shared + std::string(53, 'c');
    std::string slice = "/portwatch-filter-test-" + std::to_string(getpid()) + ".slice";
    TestCgroup watched{slice + "/docker-" + watched_id + ".scope"};
    TestCgroup watched_inner{watched.path() + "/inner"};  // a cgroup of its own inside
    TestCgroup other{slice + "/docker-" + other_id + ".scope"};
};

// --container: a prefix of the id, resolved as portwatch resolves it (the cgroup2 tree
// walked, each path read by container_of()) to that container's cgroup, whose processes and
// their sub-cgroups' pass; another container's and the host's do not.
TEST_F(FilterTest, ContainerKeepsOnlyThatContainersProcesses) {
    TwoContainers containers;
    Netns netns;
    BindingChild inside(netns), outside(netns);
    containers.watched_inner.add(inside.pid());
    containers.other.add(outside.pid());
    Result<std::vector<std::string>> paths = cgroup_paths_under(TestCgroup::mount());
    ASSERT_TRUE(paths.ok()) << paths.error();
    ContainersMatching found = containers_matching(*paths, containers.watched_id.substr(0, 12));
    EXPECT_EQ(found.ids, std::vector<std::string>{containers.watched_id});
    EXPECT_EQ(found.paths, std::vector<std::string>{containers.watched.path()});
    filters.container_cgroups = found.paths;
    KernelTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    expect_only_inside_reported(netns, inside, outside);
}

// The portwatch binary: a prefix two containers share is refused (exit 2, naming both), one
// no container has too (exit 1), each in one line.
TEST_F(FilterTest, ContainerPrefixAmbiguousOrUnknownIsOneLine) {
    TwoContainers containers;
    Monitor ambiguous({"snapshot", "--container", containers.shared});
    EXPECT_EQ(ambiguous.wait_exit_code(), 2);
    EXPECT_EQ(ambiguous.all_stderr(), "portwatch: --container " + containers.shared +
                                          " is ambiguous: it starts the ids of " +
                                          containers.watched_id + " and " + containers.other_id +
                                          " (give more digits)\n");
    std::string unknown_prefix = containers.shared + "d";
    Monitor unknown({"snapshot", "--container", unknown_prefix});
    EXPECT_EQ(unknown.wait_exit_code(), 1);
    EXPECT_EQ(unknown.all_stderr(), "portwatch: --container " + unknown_prefix +
                                        ": no container's cgroup under " + TestCgroup::mount() +
                                        " has an id starting with it\n");
}

// The ports_held of this process in what `snapshot --json` reports of `netns` with `args`
// (null when it lists none of this process's).
nlohmann::json ports_held_by_us(const Netns &netns, std::vector<std::string> args) {
    args.insert(args.begin(), {"snapshot", "--json", "--netns", std::to_string(netns.inode())});
    Monitor snapshot(args, &netns);
    nlohmann::json held;
    for (std::string line = snapshot.next_line(); !line.empty(); line = snapshot.next_line()) {
        nlohmann::json report = nlohmann::json::parse(line);
        for (const nlohmann::json &process : report.value("processes", nlohmann::json::array()))
            if (process["pid"] == getpid()) held = process["ports_held"];
    }
    EXPECT_EQ(snapshot.wait_exit_code(), 0) << snapshot.all_stderr();
    return held;
}

// The socket-table passes apply --port and --uid as the kernel side does, together (AND):
// a TCP listener on 7001 and a UDP socket on 7002, held by this process (root).
TEST_F(FilterTest, SnapshotTakesPortAndUidFromTheTables) {
    Netns netns;
    int listener = -1, udp = -1;
    netns.run([&] {
        listener = listener_on(Family::ipv4, 7001);
        udp = make_socket(Family::ipv4, Proto::udp);
        ASSERT_EQ(bind_to(udp, Family::ipv4, 7002), 0);
    });
    nlohmann::json all = ports_held_by_us(netns, {});
    EXPECT_EQ(all["tcp"]["bind"], 1) << all.dump();
    EXPECT_EQ(all["udp"]["bind"], 1) << all.dump();
    nlohmann::json port_7001 = ports_held_by_us(netns, {"--port", "7001", "--uid", "0"});
    EXPECT_EQ(port_7001["tcp"]["bind"], 1) << port_7001.dump();
    EXPECT_EQ(port_7001["udp"], nlohmann::json::object()) << port_7001.dump();
    EXPECT_TRUE(ports_held_by_us(netns, {"--port", "7001", "--uid", "65534"}).is_null());
    EXPECT_TRUE(ports_held_by_us(netns, {"--port", "7003-9000"}).is_null());
    close(listener);
    close(udp);
}

// --children: a --pid process's descendants forked after the start are followed in the
// kernel, a daemon whose parent exited included; an unrelated process is not.
TEST_F(FilterTest, ChildrenFollowsThePidsDescendants) {
    Netns netns;
    ForkingParent parent(netns);
    BindingChild other(netns);
    filters.pids = {std::uint32_t(parent.pid())};
    filters.follow_children = true;
    KernelTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    std::uint16_t other_port = other.bind_now();
    std::set<std::pair<std::uint32_t, std::uint16_t>> expected = parent.bind_now();
    ASSERT_EQ(expected.size(), 2u);
    for (auto [pid, port] : expected) ASSERT_NE(port, 0) << pid;
    ASSERT_NE(other_port, 0);
    EXPECT_EQ(pids_and_ports(allocations_in(netns, 2)), expected);
}

// Without --children, the same pid filter keeps the parent's bind only.
TEST_F(FilterTest, PidWithoutChildrenKeepsThatProcessOnly) {
    Netns netns;
    ForkingParent parent(netns);
    filters.pids = {std::uint32_t(parent.pid())};
    KernelTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    std::set<std::pair<std::uint32_t, std::uint16_t>> both = parent.bind_now();
    std::set<std::pair<std::uint32_t, std::uint16_t>> expected;
    for (auto pair : both)
        if (pair.first == std::uint32_t(parent.pid())) expected.insert(pair);
    ASSERT_EQ(expected.size(), 1u);
    EXPECT_EQ(pids_and_ports(allocations_in(netns, 2, std::chrono::seconds(1))), expected);
}

}  // namespace
}  // namespace portwatch::test
