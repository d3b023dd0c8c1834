// SPDX-License-Identifier: Apache-2.0
// One test per allocation kind x family x protocol where the kind applies: the
// exact port getsockname() reports, the kind, the syscall, pid/tid and netns.
#include <fcntl.h>
#include <netinet/in.h>
#ifndef IP_LOCAL_PORT_RANGE
#define IP_LOCAL_PORT_RANGE 51 /* linux/in.h, kernel 6.3 */
#endif
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <functional>
#include <set>
#include <vector>

#include "kernel_support.h"
#include "system/cgroup_id_lookup.h"

namespace portwatch::test {
namespace {

struct Combo {
    Family family;
    Proto proto;
};

std::string combo_name(const ::testing::TestParamInfo<Combo> &info) {
    return std::string(info.param.proto == Proto::tcp ? "tcp" : "udp") +
           (info.param.family == Family::ipv4 ? "4" : "6");
}

const Combo kAll[] = {{Family::ipv4, Proto::tcp},
                      {Family::ipv6, Proto::tcp},
                      {Family::ipv4, Proto::udp},
                      {Family::ipv6, Proto::udp}};
const Combo kTcp[] = {{Family::ipv4, Proto::tcp}, {Family::ipv6, Proto::tcp}};
const Combo kUdp[] = {{Family::ipv4, Proto::udp}, {Family::ipv6, Proto::udp}};

// What a test knows from the socket side, to compare with the event.
struct Expected {
    How how;
    Syscall syscall;
    Combo combo;
    std::uint16_t port;
    std::uint32_t netns;
    std::uint32_t tid;
};

void expect_allocation(const AllocateEvent &event, const Expected &want) {
    EXPECT_EQ(event.how, want.how);
    EXPECT_EQ(event.syscall, want.syscall);
    EXPECT_EQ(event.sock.family, want.combo.family);
    EXPECT_EQ(event.sock.proto, want.combo.proto);
    EXPECT_EQ(event.sock.local_port, want.port);
    EXPECT_EQ(event.sock.netns, want.netns);
    EXPECT_EQ(event.task.pid, static_cast<std::uint32_t>(getpid()));
    EXPECT_EQ(event.task.tid, want.tid);
    EXPECT_EQ(event.task.uid, 0u);
    EXPECT_NE(event.sock.cookie, 0u);
    EXPECT_FALSE(event.task.comm.empty());
}

std::vector<AllocateEvent> of_how(const std::vector<AllocateEvent> &events, How how) {
    std::vector<AllocateEvent> out;
    for (const auto &event : events)
        if (event.how == how) out.push_back(event);
    return out;
}

constexpr std::uint16_t kServerPort = 7000;
constexpr std::uint16_t kFixedPort = 5555;  // below the default range 32768-60999

// An even-sized range, so that exactly two automatic choices fit (kernel-facts).
const Sysctls kTwoPortRange{{"net/ipv4/ip_local_port_range", "40000 40001"}};

// Three sockets try `allocate` in turn and stay open until the last has tried: the
// ports the ones that succeeded got, and the errno of the last one that failed.
struct Exhaustion {
    std::vector<std::uint16_t> ports;
    int error = 0;
};
Exhaustion try_three_sockets(Family family, Proto proto, const std::function<bool(int)> &allocate) {
    Exhaustion result;
    std::vector<int> fds;
    for (int i = 0; i < 3; i++) {
        int fd = make_socket(family, proto);
        fds.push_back(fd);
        if (allocate(fd))
            result.ports.push_back(local_port_of(fd));
        else
            result.error = errno;
    }
    for (int fd : fds) close(fd);
    return result;
}

// What one socket got: the port getsockname() reports and the thread that asked.
struct Outcome {
    std::uint16_t port = 0;
    std::uint32_t tid = 0;
};

// In `netns`: makes one socket, lets `allocate` get it a port, then closes it.
Outcome allocate_on_one_socket(const Netns &netns, Combo combo,
                               const std::function<int(int)> &allocate) {
    Outcome outcome;
    netns.run([&] {
        int fd = make_socket(combo.family, combo.proto);
        ASSERT_EQ(allocate(fd), 0) << std::strerror(errno);
        outcome.port = local_port_of(fd);
        outcome.tid = current_tid();
        close(fd);
    });
    return outcome;
}

class BindTest : public KernelTest, public ::testing::WithParamInterface<Combo> {};

TEST_P(BindTest, ExplicitPortIsBindAndNotEphemeral) {
    Combo combo = GetParam();
    Netns netns;
    auto [port, tid] = allocate_on_one_socket(
        netns, combo, [&](int fd) { return bind_to(fd, combo.family, kFixedPort); });
    auto events = EventLog(*capture).collect(netns.inode(), at_least(1, 0, 1));
    auto allocated = allocations(events);
    ASSERT_EQ(allocated.size(), 1u);
    expect_allocation(allocated[0], {How::bind, Syscall::bind, combo, port, netns.inode(), tid});
    EXPECT_EQ(port, kFixedPort);
    EXPECT_FALSE(allocated[0].ephemeral);
    auto released = releases(events);
    ASSERT_EQ(released.size(), 1u);
    EXPECT_EQ(released[0].sock.local_port, port);
    EXPECT_EQ(released[0].reason, ReleaseReason::socket_closed);
    EXPECT_EQ(released[0].sock.cookie, allocated[0].sock.cookie);
}

// The netns's events are one bind(0) allocation (and its release): `want`, ephemeral, no remote.
void expect_one_bind_ephemeral(Capture &capture, const Netns &netns, const Expected &want) {
    auto events = EventLog(capture).collect(netns.inode(), at_least(1, 0, 1));
    auto allocated = allocations(events);
    ASSERT_EQ(allocated.size(), 1u);
    expect_allocation(allocated[0], want);
    EXPECT_TRUE(allocated[0].ephemeral);
    EXPECT_FALSE(allocated[0].sock.has_remote());
}

TEST_P(BindTest, PortZeroIsBindEphemeral) {
    Combo combo = GetParam();
    Netns netns;
    auto [port, tid] =
        allocate_on_one_socket(netns, combo, [&](int fd) { return bind_to(fd, combo.family, 0); });
    expect_one_bind_ephemeral(
        *capture, netns, {How::bind_ephemeral, Syscall::bind, combo, port, netns.inode(), tid});
}

// IP_LOCAL_PORT_RANGE (6.3): a per-socket range inside the netns's. bind(0) takes its port
// from it (inet_sk_get_local_port_range()), and the port is still ephemeral.
bool ip_local_port_range_works() {
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    std::uint32_t range = 0;
    int rc = setsockopt(fd, IPPROTO_IP, IP_LOCAL_PORT_RANGE, &range, sizeof(range));
    close(fd);
    return rc == 0;
}

TEST_P(BindTest, PortZeroTakesThePerSocketRange) {
    SKIP_UNLESS_KERNEL_HAS(ip_local_port_range_works(), "IP_LOCAL_PORT_RANGE", 6, 3);
    Combo combo = GetParam();
    Netns netns;
    constexpr std::uint16_t kLow = 40100, kHigh = 40104;
    auto [port, tid] = allocate_on_one_socket(netns, combo, [&](int fd) {
        std::uint32_t range = std::uint32_t(kHigh) << 16 | kLow;
        if (setsockopt(fd, IPPROTO_IP, IP_LOCAL_PORT_RANGE, &range, sizeof(range)) != 0) return -1;
        return bind_to(fd, combo.family, 0);
    });
    EXPECT_GE(port, kLow);
    EXPECT_LE(port, kHigh);
    expect_one_bind_ephemeral(
        *capture, netns, {How::bind_ephemeral, Syscall::bind, combo, port, netns.inode(), tid});
}

TEST_P(BindTest, PortInUseFailsWithEaddrinuse) {
    Combo combo = GetParam();
    Netns netns;
    int error = 0;
    netns.run([&] {
        int first = make_socket(combo.family, combo.proto);
        ASSERT_EQ(bind_to(first, combo.family, kFixedPort), 0);
        int second = make_socket(combo.family, combo.proto);
        ASSERT_NE(bind_to(second, combo.family, kFixedPort), 0);
        error = errno;
        close(second);
        close(first);
    });
    ASSERT_EQ(error, EADDRINUSE);
    auto events = EventLog(*capture).collect(netns.inode(), at_least(1, 1));
    auto failed = allocations(events, true);
    ASSERT_EQ(failed.size(), 1u);
    EXPECT_EQ(failed[0].error, EADDRINUSE);
    EXPECT_EQ(failed[0].how, How::bind);
    EXPECT_EQ(failed[0].sock.local_port, kFixedPort);  // the port asked for
    EXPECT_EQ(allocations(events).size(), 1u);
}

TEST_P(BindTest, ExhaustedRangeFailsBindZeroWithEaddrinuse) {
    Combo combo = GetParam();
    Netns netns(kTwoPortRange);
    Exhaustion tried;
    netns.run([&] {
        tried = try_three_sockets(combo.family, combo.proto,
                                  [&](int fd) { return bind_to(fd, combo.family, 0) == 0; });
    });
    const auto &[ports, error] = tried;
    ASSERT_EQ(ports.size(), 2u);
    ASSERT_EQ(error, EADDRINUSE);
    auto events = EventLog(*capture).collect(netns.inode(), at_least(2, 1, 2));
    auto allocated = allocations(events);
    ASSERT_EQ(allocated.size(), 2u);
    EXPECT_EQ(allocated[0].sock.local_port, ports[0]);
    EXPECT_EQ(allocated[1].sock.local_port, ports[1]);
    auto failed = allocations(events, true);
    ASSERT_EQ(failed.size(), 1u);
    EXPECT_EQ(failed[0].error, EADDRINUSE);
    EXPECT_EQ(failed[0].how, How::bind_ephemeral);
    EXPECT_EQ(failed[0].sock.local_port, 0);
}

INSTANTIATE_TEST_SUITE_P(Kernel, BindTest, ::testing::ValuesIn(kAll), combo_name);

class TcpTest : public KernelTest, public ::testing::WithParamInterface<Combo> {};

TEST_P(TcpTest, ListenWithoutBindIsListenAutobind) {
    Combo combo = GetParam();
    Netns netns;
    auto [port, tid] = allocate_on_one_socket(netns, combo, [](int fd) { return listen(fd, 8); });
    auto events = EventLog(*capture).collect(netns.inode(), at_least(1, 0, 1));
    auto allocated = allocations(events);
    ASSERT_EQ(allocated.size(), 1u);
    expect_allocation(allocated[0],
                      {How::listen_autobind, Syscall::listen, combo, port, netns.inode(), tid});
    EXPECT_TRUE(allocated[0].ephemeral);
    auto released = releases(events);
    ASSERT_EQ(released.size(), 1u);
    EXPECT_EQ(released[0].sock.local_port, port);
    EXPECT_EQ(released[0].how, How::listen_autobind);
}

TEST_P(TcpTest, ConnectWithoutBindIsConnectAutobind) {
    Combo combo = GetParam();
    Netns netns;
    std::uint16_t port = 0;
    std::uint32_t tid = 0;
    netns.run([&] {
        int server = listener_on(combo.family, kServerPort);
        int client = make_socket(combo.family, Proto::tcp);
        ASSERT_EQ(connect_to(client, combo.family, kServerPort), 0) << std::strerror(errno);
        port = local_port_of(client);
        tid = current_tid();
        close(client);
        close(server);
    });
    auto events = EventLog(*capture).collect(netns.inode(), at_least(2));
    auto connects = of_how(allocations(events), How::connect_autobind);
    ASSERT_EQ(connects.size(), 1u);
    expect_allocation(connects[0],
                      {How::connect_autobind, Syscall::connect, combo, port, netns.inode(), tid});
    EXPECT_EQ(connects[0].sock.remote_port, kServerPort);
    EXPECT_TRUE(connects[0].ephemeral);
    EXPECT_EQ(of_how(allocations(events), How::bind).size(), 1u);  // the listener
}

TEST_P(TcpTest, BindAddressNoPortDefersThePortToConnect) {
    Combo combo = GetParam();
    Netns netns;
    std::uint16_t port = 0;
    std::uint32_t tid = 0;
    netns.run([&] {
        int server = listener_on(combo.family, kServerPort);
        int client = make_socket(combo.family, Proto::tcp);
        int one = 1;
        ASSERT_EQ(setsockopt(client, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one)), 0);
        ASSERT_EQ(bind_to(client, combo.family, 0), 0);
        ASSERT_EQ(local_port_of(client), 0);  // no port yet
        ASSERT_EQ(connect_to(client, combo.family, kServerPort), 0);
        port = local_port_of(client);
        tid = current_tid();
        close(client);
        close(server);
    });
    auto events = EventLog(*capture).collect(netns.inode(), at_least(2));
    auto allocated = allocations(events);
    EXPECT_TRUE(of_how(allocated, How::bind_ephemeral).empty()) << "bind() allocated nothing";
    auto connects = of_how(allocated, How::connect_autobind);
    ASSERT_EQ(connects.size(), 1u);
    expect_allocation(connects[0],
                      {How::connect_autobind, Syscall::connect, combo, port, netns.inode(), tid});
    EXPECT_FALSE(connects[0].sock.local_addr.is_unspecified());  // the address bind() chose
}

TEST_P(TcpTest, ExhaustedDestinationFailsWithEaddrnotavail) {
    Combo combo = GetParam();
    Netns netns(kTwoPortRange);
    Exhaustion tried;
    netns.run([&] {
        int server = listener_on(combo.family, kServerPort);
        tried = try_three_sockets(combo.family, Proto::tcp, [&](int fd) {
            return connect_to(fd, combo.family, kServerPort) == 0;
        });
        close(server);
    });
    const auto &[ports, error] = tried;
    ASSERT_EQ(ports.size(), 2u);
    ASSERT_EQ(error, EADDRNOTAVAIL);
    auto events = EventLog(*capture).collect(netns.inode(), at_least(3, 1));
    auto connects = of_how(allocations(events), How::connect_autobind);
    ASSERT_EQ(connects.size(), 2u);
    EXPECT_EQ(connects[0].sock.local_port, ports[0]);
    EXPECT_EQ(connects[1].sock.local_port, ports[1]);
    auto failed = allocations(events, true);
    ASSERT_EQ(failed.size(), 1u);
    EXPECT_EQ(failed[0].error, EADDRNOTAVAIL);
    EXPECT_EQ(failed[0].how, How::connect_autobind);
    EXPECT_EQ(failed[0].syscall, Syscall::connect);
    EXPECT_EQ(failed[0].sock.local_port, 0);
    EXPECT_EQ(failed[0].sock.remote_port, kServerPort);
}

// An accepted socket shares its listener's port: only the client's port and the
// listener's are given back, and the owner of each is known.
void expect_client_and_listener_releases_only(const std::vector<ReleaseEvent> &released) {
    EXPECT_EQ(released.size(), 2u);
    for (const auto &release : released) {
        EXPECT_TRUE(release.owner_known) << "port " << release.sock.local_port;
        EXPECT_EQ(release.how,
                  release.sock.local_port == kServerPort ? How::bind : How::connect_autobind);
    }
}

TEST_P(TcpTest, ActiveCloseHandsThePortToTimeWait) {
    Combo combo = GetParam();
    Netns netns(Sysctls{{"net/ipv4/tcp_tw_reuse", "0"}});
    std::uint16_t port = 0;
    netns.run([&] {
        int server = listener_on(combo.family, kServerPort);
        int client = make_socket(combo.family, Proto::tcp);
        ASSERT_EQ(connect_to(client, combo.family, kServerPort), 0);
        port = local_port_of(client);
        int accepted = accept(server, nullptr, nullptr);
        ASSERT_GE(accepted, 0);
        close(client);  // FIN_WAIT1 -> FIN_WAIT2 once the server acks
        char byte;
        ASSERT_EQ(read(accepted, &byte, 1), 0);  // server sees the FIN
        close(accepted);                         // client: FIN_WAIT2 -> TIME_WAIT
        close(server);
    });
    auto events = EventLog(*capture).collect(netns.inode(), at_least(2, 0, 2));
    ReleaseEvent *client_release = nullptr;
    auto released = releases(events);
    for (auto &release : released)
        if (release.sock.local_port == port) client_release = &release;
    ASSERT_NE(client_release, nullptr);
    EXPECT_EQ(client_release->reason, ReleaseReason::time_wait);
    EXPECT_TRUE(client_release->time_wait());
    EXPECT_EQ(client_release->how, How::connect_autobind);
    EXPECT_EQ(client_release->sock.remote_port, kServerPort);
    EXPECT_EQ(client_release->owner.pid, static_cast<std::uint32_t>(getpid()));
    expect_client_and_listener_releases_only(released);
}

TEST_P(TcpTest, PassiveCloseReleasesWithoutTimeWait) {
    Combo combo = GetParam();
    Netns netns;
    std::uint16_t port = 0;
    netns.run([&] {
        int server = listener_on(combo.family, kServerPort);
        int client = make_socket(combo.family, Proto::tcp);
        ASSERT_EQ(connect_to(client, combo.family, kServerPort), 0);
        port = local_port_of(client);
        int accepted = accept(server, nullptr, nullptr);
        close(accepted);  // server closes first: client CLOSE_WAIT
        char byte;
        ASSERT_EQ(read(client, &byte, 1), 0);
        close(client);  // LAST_ACK -> CLOSE
        usleep(50'000);
        close(server);
    });
    auto events = EventLog(*capture).collect(netns.inode(), at_least(2, 0, 2));
    bool found = false;
    for (const auto &release : releases(events)) {
        if (release.sock.local_port != port) continue;
        found = true;
        EXPECT_EQ(release.reason, ReleaseReason::tcp_closed);
        EXPECT_FALSE(release.time_wait());
    }
    EXPECT_TRUE(found) << "no release for client port " << port;
    expect_client_and_listener_releases_only(releases(events));
}

TEST_P(TcpTest, RefusedConnectAllocatesThenReleases) {
    Combo combo = GetParam();
    for (bool blocking : {true, false}) {
        SCOPED_TRACE(blocking ? "blocking connect" : "non-blocking connect");
        Netns netns;
        std::uint16_t port = 0;
        std::uint32_t tid = 0;
        int error = 0;
        netns.run([&] {
            int client = make_socket(combo.family, Proto::tcp);
            if (!blocking) fcntl(client, F_SETFL, O_NONBLOCK);
            ASSERT_EQ(connect_to(client, combo.family, kServerPort), -1);  // nobody listens
            error = errno;
            port = local_port_of(client);  // inet_sport: the port connect() was given
            tid = current_tid();
            close(client);
        });
        EXPECT_EQ(error, blocking ? ECONNREFUSED : EINPROGRESS);
        auto events = EventLog(*capture).collect(netns.inode(), at_least(1, 0, 1));
        auto connects = allocations(events);
        ASSERT_EQ(connects.size(), 1u);
        expect_allocation(connects[0], {How::connect_autobind, Syscall::connect, combo, port,
                                        netns.inode(), tid});
        EXPECT_TRUE(allocations(events, true).empty())
            << "the port was allocated; the peer refused";
        auto released = releases(events);
        ASSERT_EQ(released.size(), 1u);
        EXPECT_EQ(released[0].sock.local_port, port);
        EXPECT_EQ(released[0].sock.cookie, connects[0].sock.cookie);
        EXPECT_EQ(released[0].reason, ReleaseReason::tcp_closed);
        EXPECT_EQ(released[0].how, How::connect_autobind);
        EXPECT_EQ(released[0].owner.tid, tid);
    }
}

INSTANTIATE_TEST_SUITE_P(Kernel, TcpTest, ::testing::ValuesIn(kTcp), combo_name);

class UdpTest : public KernelTest, public ::testing::WithParamInterface<Combo> {};

ssize_t send_with(Syscall syscall, int fd, Family family, std::uint16_t port) {
    socklen_t length;
    sockaddr_storage addr = loopback(family, port, &length);
    char payload[] = "x";
    iovec iov{payload, 1};
    msghdr msg{};
    msg.msg_name = &addr;
    msg.msg_namelen = length;
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    mmsghdr mmsg{};
    mmsg.msg_hdr = msg;
    switch (syscall) {
        case Syscall::sendto:
            return sendto(fd, payload, 1, 0, reinterpret_cast<sockaddr *>(&addr), length);
        case Syscall::sendmsg:
            return sendmsg(fd, &msg, 0);
        default:
            return sendmmsg(fd, &mmsg, 1, 0) == 1 ? 1 : -1;
    }
}

TEST_P(UdpTest, SendOnUnboundSocketIsSendtoAutobind) {
    Combo combo = GetParam();
    for (Syscall syscall : {Syscall::sendto, Syscall::sendmsg, Syscall::sendmmsg}) {
        SCOPED_TRACE(std::string(syscall == Syscall::sendto    ? "sendto"
                                 : syscall == Syscall::sendmsg ? "sendmsg"
                                                               : "sendmmsg"));
        Netns netns;
        std::uint16_t port = 0;
        std::uint32_t tid = 0;
        netns.run([&] {
            int fd = make_socket(combo.family, Proto::udp);
            ASSERT_EQ(send_with(syscall, fd, combo.family, 9), 1) << std::strerror(errno);
            port = local_port_of(fd);
            tid = current_tid();
            ASSERT_EQ(send_with(syscall, fd, combo.family, 9), 1);  // bound now: no new event
            close(fd);
        });
        auto events = EventLog(*capture).collect(netns.inode(), at_least(1, 0, 1));
        auto allocated = allocations(events);
        ASSERT_EQ(allocated.size(), 1u);
        expect_allocation(allocated[0],
                          {How::sendto_autobind, syscall, combo, port, netns.inode(), tid});
        EXPECT_EQ(allocated[0].sock.remote_port, 9);
        EXPECT_EQ(releases(events).size(), 1u);
    }
}

TEST_P(UdpTest, ConnectIsConnectAutobindAndDisconnectReleases) {
    Combo combo = GetParam();
    Netns netns;
    std::uint16_t port = 0;
    std::uint32_t tid = 0;
    netns.run([&] {
        int fd = make_socket(combo.family, Proto::udp);
        ASSERT_EQ(connect_to(fd, combo.family, 9), 0);
        port = local_port_of(fd);
        tid = current_tid();
        sockaddr unspec{};
        unspec.sa_family = AF_UNSPEC;
        ASSERT_EQ(connect(fd, &unspec, sizeof(unspec)), 0);
        ASSERT_EQ(local_port_of(fd), 0);
        close(fd);
    });
    auto events = EventLog(*capture).collect(netns.inode(), at_least(1, 0, 1));
    auto allocated = allocations(events);
    ASSERT_EQ(allocated.size(), 1u);
    expect_allocation(allocated[0],
                      {How::connect_autobind, Syscall::connect, combo, port, netns.inode(), tid});
    auto released = releases(events);
    ASSERT_EQ(released.size(), 1u);
    EXPECT_EQ(released[0].reason, ReleaseReason::disconnect);
    EXPECT_EQ(released[0].sock.local_port, port);
}

TEST_P(UdpTest, ExhaustedRangeFailsSendWithEagain) {
    Combo combo = GetParam();
    Netns netns(kTwoPortRange);
    Exhaustion tried;
    netns.run([&] {
        tried = try_three_sockets(combo.family, Proto::udp, [&](int fd) {
            return send_with(Syscall::sendto, fd, combo.family, 9) == 1;
        });
    });
    const auto &[ports, error] = tried;
    ASSERT_EQ(ports.size(), 2u);
    ASSERT_EQ(error, EAGAIN);
    auto events = EventLog(*capture).collect(netns.inode(), at_least(2, 1, 2));
    EXPECT_EQ(allocations(events).size(), 2u);
    auto failed = allocations(events, true);
    ASSERT_EQ(failed.size(), 1u);
    EXPECT_EQ(failed[0].error, EAGAIN);
    EXPECT_EQ(failed[0].how, How::sendto_autobind);
    EXPECT_EQ(failed[0].syscall, Syscall::sendto);
    EXPECT_EQ(failed[0].sock.remote_port, 9);
    EXPECT_EQ(releases(events).size(), 2u);
}

INSTANTIATE_TEST_SUITE_P(Kernel, UdpTest, ::testing::ValuesIn(kUdp), combo_name);

class TaskTest : public KernelTest {};

// Who asked, on each path that fills it in (a TCP connect through sockops, fexit or sys_exit;
// bind and sendto through sys_exit or fexit): pid, tid, uid, name and cgroup, from a thread
// whose uid and name differ from the process's (and the uid from root's, which a zero would
// pass for).
TEST_F(TaskTest, EveryAllocationCarriesTheCallingThreadsIdentity) {
    constexpr uid_t kUid = 4242;
    constexpr char kComm[] = "pw-identity";
    Netns netns;
    std::uint32_t tid = 0;
    netns.run([&] {
        int server = listener_on(Family::ipv4, kServerPort);
        prctl(PR_SET_NAME, kComm);
        // the raw call: glibc's setresuid() would change every thread of the test
        ASSERT_EQ(syscall(SYS_setresuid, kUid, kUid, kUid), 0) << std::strerror(errno);
        tid = current_tid();
        int client = make_socket(Family::ipv4, Proto::tcp);
        ASSERT_EQ(connect_to(client, Family::ipv4, kServerPort), 0) << std::strerror(errno);
        int sender = make_socket(Family::ipv6, Proto::udp);
        ASSERT_EQ(send_with(Syscall::sendto, sender, Family::ipv6, 9), 1) << std::strerror(errno);
        int bound = make_socket(Family::ipv4, Proto::udp);
        ASSERT_EQ(bind_to(bound, Family::ipv4, 0), 0) << std::strerror(errno);
        for (int fd : {bound, sender, client, server}) close(fd);
    });
    auto events = EventLog(*capture).collect(netns.inode(), at_least(4, 0, 4));
    std::uint64_t cgroup_id = cgroup_id_at(TestCgroup::mount(), own_cgroup_path());
    auto expect_the_thread = [&](const TaskInfo &task) {
        EXPECT_EQ(task.pid, static_cast<std::uint32_t>(getpid()));
        EXPECT_EQ(task.tid, tid);
        EXPECT_EQ(task.uid, kUid);
        EXPECT_EQ(task.comm, kComm);
        EXPECT_EQ(task.cgroup_id, cgroup_id);
    };
    std::set<How> hows;
    for (const AllocateEvent &event : allocations(events)) {
        if (event.sock.local_port == kServerPort) continue;  // the listener, bound as root
        hows.insert(event.how);
        expect_the_thread(event.task);
    }
    EXPECT_EQ(hows,
              (std::set<How>{How::connect_autobind, How::sendto_autobind, How::bind_ephemeral}));
    for (const ReleaseEvent &event : releases(events)) {
        if (event.sock.local_port == kServerPort) continue;
        ASSERT_TRUE(event.owner_known) << "port " << event.sock.local_port;
        expect_the_thread(event.owner);
    }
}

class HeldPortsTest : public KernelTest {};

// Binds `count` UDP sockets to port 0 at once, then closes them out of allocation order (every
// other one, then the rest backwards); returns the ports they got.
std::set<std::uint16_t> hold_then_close_udp_ports(const Netns &netns, std::size_t count) {
    std::set<std::uint16_t> ports;
    netns.run([&] {
        std::vector<int> fds;
        for (std::size_t i = 0; i < count; i++) {
            int fd = make_socket(Family::ipv4, Proto::udp);
            ASSERT_EQ(bind_to(fd, Family::ipv4, 0), 0) << "socket " << i;
            ports.insert(local_port_of(fd));
            fds.push_back(fd);
        }
        for (std::size_t i = 0; i < fds.size(); i += 2) close(fds[i]);
        for (std::size_t i = fds.size(); i-- > 0;)
            if (i % 2) close(fds[i]);
    });
    return ports;
}

// The kernel side skips held_ports lookups by a count of its cookies per slot (4096 slots,
// key_counts in bpf/common.bpf.h). With more ports held at once than slots, slots are shared:
// each release must still be found, once.
TEST_F(HeldPortsTest, MorePortsHeldThanKeySlotsAreEachReleasedOnce) {
    constexpr std::size_t kHeld = 5000;  // at least 904 slots shared
    rlimit files{};
    ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &files), 0);
    rlimit enough = files;
    enough.rlim_cur = std::max<rlim_t>(files.rlim_cur, kHeld + 1024);
    enough.rlim_max = std::max(files.rlim_max, enough.rlim_cur);
    ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &enough), 0) << std::strerror(errno);
    Netns netns;
    std::set<std::uint16_t> ports = hold_then_close_udp_ports(netns, kHeld);
    EXPECT_EQ(setrlimit(RLIMIT_NOFILE, &files), 0);
    ASSERT_EQ(ports.size(), kHeld);

    auto events = EventLog(*capture).collect(netns.inode(), at_least(kHeld, 0, kHeld),
                                             std::chrono::seconds(20));
    std::set<std::uint64_t> allocated, released;
    for (const AllocateEvent &event : allocations(events)) allocated.insert(event.sock.cookie);
    for (const ReleaseEvent &event : releases(events)) {
        EXPECT_TRUE(event.owner_known) << "cookie " << event.sock.cookie;
        EXPECT_EQ(event.how, How::bind_ephemeral);
        released.insert(event.sock.cookie);
    }
    EXPECT_EQ(allocations(events).size(), kHeld);
    EXPECT_EQ(releases(events).size(), kHeld);
    EXPECT_EQ(released, allocated);
}

}  // namespace
}  // namespace portwatch::test
