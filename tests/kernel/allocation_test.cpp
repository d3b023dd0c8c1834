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

#include "kernel_said.h"
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

// In `netns`: makes one socket, lets `allocate` get it a port as `how` by `syscall`, holds it
// a little (so that held_ns has a floor to check), then closes it; what the kernel said.
KernelSaid allocate_on_one_socket(const Netns &netns, Combo combo, How how, Syscall syscall,
                                  const std::function<int(int)> &allocate) {
    KernelSaid said;
    netns.run([&] {
        int fd = make_socket(combo.family, combo.proto);
        said = said_by_kernel(fd, how, syscall, [&] { return allocate(fd); });
        usleep(10'000);
        said.released = timed([&] { close(fd); });
    });
    return said;
}

class BindTest : public KernelTest, public ::testing::WithParamInterface<Combo> {};

TEST_P(BindTest, ExplicitPortIsBindAndNotEphemeral) {
    Combo combo = GetParam();
    Netns netns;
    KernelSaid said = allocate_on_one_socket(netns, combo, How::bind, Syscall::bind, [&](int fd) {
        return bind_to(fd, combo.family, kFixedPort);
    });
    EXPECT_EQ(said.local.port, kFixedPort);
    auto events = EventLog(*capture).collect(netns.inode(), at_least(1, 0, 1));
    auto allocated = allocations(events);
    ASSERT_EQ(allocated.size(), 1u);
    expect_allocation(allocated[0], said);
    EXPECT_FALSE(allocated[0].ephemeral);
    auto released = releases(events);
    ASSERT_EQ(released.size(), 1u);
    expect_release(released[0], said, ReleaseReason::socket_closed);
}

// The netns's events are one bind(0) allocation, ephemeral, and its release, as `said`.
void expect_one_bind_ephemeral(Capture &capture, const Netns &netns, const KernelSaid &said) {
    auto events = EventLog(capture).collect(netns.inode(), at_least(1, 0, 1));
    auto allocated = allocations(events);
    ASSERT_EQ(allocated.size(), 1u);
    expect_allocation(allocated[0], said);
    EXPECT_TRUE(allocated[0].ephemeral);
    auto released = releases(events);
    ASSERT_EQ(released.size(), 1u);
    expect_release(released[0], said, ReleaseReason::socket_closed);
}

TEST_P(BindTest, PortZeroIsBindEphemeral) {
    Combo combo = GetParam();
    Netns netns;
    KernelSaid said = allocate_on_one_socket(netns, combo, How::bind_ephemeral, Syscall::bind,
                                             [&](int fd) { return bind_to(fd, combo.family, 0); });
    expect_one_bind_ephemeral(*capture, netns, said);
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
    KernelSaid said =
        allocate_on_one_socket(netns, combo, How::bind_ephemeral, Syscall::bind, [&](int fd) {
            std::uint32_t range = std::uint32_t(kHigh) << 16 | kLow;
            if (setsockopt(fd, IPPROTO_IP, IP_LOCAL_PORT_RANGE, &range, sizeof(range)) != 0)
                return -1;
            return bind_to(fd, combo.family, 0);
        });
    EXPECT_GE(said.local.port, kLow);
    EXPECT_LE(said.local.port, kHigh);
    expect_one_bind_ephemeral(*capture, netns, said);
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
    KernelSaid said = allocate_on_one_socket(netns, combo, How::listen_autobind, Syscall::listen,
                                             [](int fd) { return listen(fd, 8); });
    auto events = EventLog(*capture).collect(netns.inode(), at_least(1, 0, 1));
    auto allocated = allocations(events);
    ASSERT_EQ(allocated.size(), 1u);
    expect_allocation(allocated[0], said);
    EXPECT_TRUE(allocated[0].ephemeral);
    auto released = releases(events);
    ASSERT_EQ(released.size(), 1u);
    expect_release(released[0], said, ReleaseReason::tcp_closed);
}

TEST_P(TcpTest, ConnectWithoutBindIsConnectAutobind) {
    Combo combo = GetParam();
    Netns netns;
    KernelSaid said;
    netns.run([&] {
        int server = listener_on(combo.family, kServerPort);
        int client = make_socket(combo.family, Proto::tcp);
        said = said_by_kernel(client, How::connect_autobind, Syscall::connect,
                              [&] { return connect_to(client, combo.family, kServerPort); });
        usleep(10'000);
        said.released = timed([&] {
            // the listener first: it resets the connection it never accepted, and the client
            // goes to CLOSE (tcp_reset()). The client first would race its orphan into
            // TIME_WAIT (tcp_close() -> tcp_time_wait(TCP_FIN_WAIT2)) against that reset.
            close(server);
            close(client);
        });
    });
    EXPECT_EQ(said.remote->port, kServerPort);
    auto events = EventLog(*capture).collect(netns.inode(), at_least(2, 0, 2));
    auto connect = only_event_of(allocations(events), said);
    ASSERT_TRUE(connect);
    expect_allocation(*connect, said);
    EXPECT_TRUE(connect->ephemeral);
    auto release = only_event_of(releases(events), said);
    ASSERT_TRUE(release);
    expect_release(*release, said, ReleaseReason::tcp_closed);
    EXPECT_EQ(of_how(allocations(events), How::bind).size(), 1u);  // the listener
}

TEST_P(TcpTest, BindAddressNoPortDefersThePortToConnect) {
    Combo combo = GetParam();
    Netns netns;
    KernelSaid said;
    netns.run([&] {
        int server = listener_on(combo.family, kServerPort);
        int client = make_socket(combo.family, Proto::tcp);
        int one = 1;
        ASSERT_EQ(setsockopt(client, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one)), 0);
        ASSERT_EQ(bind_to(client, combo.family, 0), 0);
        ASSERT_EQ(local_port_of(client), 0);  // no port yet
        said = said_by_kernel(client, How::connect_autobind, Syscall::connect,
                              [&] { return connect_to(client, combo.family, kServerPort); });
        said.released = timed([&] {
            close(server);  // resets the client, as above
            close(client);
        });
    });
    auto events = EventLog(*capture).collect(netns.inode(), at_least(2, 0, 2));
    EXPECT_TRUE(of_how(allocations(events), How::bind_ephemeral).empty())
        << "bind() allocated nothing";
    auto connect = only_event_of(allocations(events), said);
    ASSERT_TRUE(connect);
    expect_allocation(*connect, said);  // with the address bind() chose
    auto release = only_event_of(releases(events), said);
    ASSERT_TRUE(release);
    expect_release(*release, said, ReleaseReason::tcp_closed);
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
    KernelSaid said;
    netns.run([&] {
        int server = listener_on(combo.family, kServerPort);
        int client = make_socket(combo.family, Proto::tcp);
        said = said_by_kernel(client, How::connect_autobind, Syscall::connect,
                              [&] { return connect_to(client, combo.family, kServerPort); });
        int accepted = accept(server, nullptr, nullptr);
        ASSERT_GE(accepted, 0);
        // tcp_close() hands an orphan already in FIN_WAIT2 to a timewait socket at once
        // (tcp_time_wait(TCP_FIN_WAIT2)); one the server's ACK reaches later, at the server's
        // FIN. Seen both ways (5.10 tcp6: the first): the release is within these three calls.
        said.released = timed([&] {
            close(client);  // FIN_WAIT1 -> FIN_WAIT2 once the server acks
            char byte;
            ASSERT_EQ(read(accepted, &byte, 1), 0);  // server sees the FIN
            close(accepted);                         // client: FIN_WAIT2 -> TIME_WAIT
        });
        close(server);
    });
    auto events = EventLog(*capture).collect(netns.inode(), at_least(2, 0, 2));
    auto release = only_event_of(releases(events), said);
    ASSERT_TRUE(release);
    expect_release(*release, said, ReleaseReason::time_wait);
    EXPECT_TRUE(release->time_wait());
    expect_client_and_listener_releases_only(releases(events));
}

TEST_P(TcpTest, PassiveCloseReleasesWithoutTimeWait) {
    Combo combo = GetParam();
    Netns netns;
    KernelSaid said;
    netns.run([&] {
        int server = listener_on(combo.family, kServerPort);
        int client = make_socket(combo.family, Proto::tcp);
        said = said_by_kernel(client, How::connect_autobind, Syscall::connect,
                              [&] { return connect_to(client, combo.family, kServerPort); });
        int accepted = accept(server, nullptr, nullptr);
        close(accepted);  // server closes first: client CLOSE_WAIT
        char byte;
        ASSERT_EQ(read(client, &byte, 1), 0);
        said.released = timed([&] { close(client); });  // LAST_ACK -> CLOSE
        usleep(50'000);
        close(server);
    });
    auto events = EventLog(*capture).collect(netns.inode(), at_least(2, 0, 2));
    auto release = only_event_of(releases(events), said);
    ASSERT_TRUE(release);
    expect_release(*release, said, ReleaseReason::tcp_closed);
    EXPECT_FALSE(release->time_wait());
    expect_client_and_listener_releases_only(releases(events));
}

TEST_P(TcpTest, RefusedConnectAllocatesThenReleases) {
    Combo combo = GetParam();
    for (bool blocking : {true, false}) {
        SCOPED_TRACE(blocking ? "blocking connect" : "non-blocking connect");
        Netns netns;
        KernelSaid said;
        int error = 0;
        netns.run([&] {
            int client = make_socket(combo.family, Proto::tcp);
            if (!blocking) fcntl(client, F_SETFL, O_NONBLOCK);
            said = said_by_kernel(client, How::connect_autobind, Syscall::connect, [&] {
                error = connect_to(client, combo.family, kServerPort) == 0 ? 0 : errno;
                return 0;
            });  // getsockname(): inet_sport, the port connect() was given
            Window closed = timed([&] { close(client); });
            // the peer's RST may come back within connect() itself
            said.released = {said.allocated.from_ns, closed.to_ns};
        });
        EXPECT_EQ(error, blocking ? ECONNREFUSED : EINPROGRESS);  // nobody listens
        EXPECT_FALSE(said.remote) << "never connected";
        said.remote = loopback_endpoint(combo.family, kServerPort);  // the destination given
        if (blocking) {
            // After the refusal __inet_stream_connect() called tcp_disconnect(), whose
            // inet_reset_saddr() cleared the source address getsockname() reads (the port
            // stays). The connect had loopback; which one an event says depends on the hook
            // (docs/limits.md), so only the port is compared.
            EXPECT_TRUE(said.local.addr.is_unspecified()) << to_string(said.local);
            said.local_addr_unknown = true;
        }
        auto events = EventLog(*capture).collect(netns.inode(), at_least(1, 0, 1));
        auto connects = allocations(events);
        ASSERT_EQ(connects.size(), 1u);
        expect_allocation(connects[0], said);
        EXPECT_TRUE(allocations(events, true).empty())
            << "the port was allocated; the peer refused";
        auto released = releases(events);
        ASSERT_EQ(released.size(), 1u);
        expect_release(released[0], said, ReleaseReason::tcp_closed);
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
        KernelSaid said;
        netns.run([&] {
            int fd = make_socket(combo.family, Proto::udp);
            said = said_by_kernel(fd, How::sendto_autobind, syscall, [&] {
                return send_with(syscall, fd, combo.family, 9) == 1 ? 0 : -1;
            });
            ASSERT_EQ(send_with(syscall, fd, combo.family, 9), 1);  // bound now: no new event
            usleep(10'000);
            said.released = timed([&] { close(fd); });
        });
        EXPECT_FALSE(said.remote) << "sendto() connects nothing";
        said.remote = loopback_endpoint(combo.family, 9);  // the destination given
        auto events = EventLog(*capture).collect(netns.inode(), at_least(1, 0, 1));
        auto allocated = allocations(events);
        ASSERT_EQ(allocated.size(), 1u);
        expect_allocation(allocated[0], said);
        auto released = releases(events);
        ASSERT_EQ(released.size(), 1u);
        expect_release(released[0], said, ReleaseReason::socket_closed);
    }
}

TEST_P(UdpTest, ConnectIsConnectAutobindAndDisconnectReleases) {
    Combo combo = GetParam();
    Netns netns;
    KernelSaid said;
    netns.run([&] {
        int fd = make_socket(combo.family, Proto::udp);
        said = said_by_kernel(fd, How::connect_autobind, Syscall::connect,
                              [&] { return connect_to(fd, combo.family, 9); });
        usleep(10'000);
        sockaddr unspec{};
        unspec.sa_family = AF_UNSPEC;
        said.released = timed([&] { ASSERT_EQ(connect(fd, &unspec, sizeof(unspec)), 0); });
        ASSERT_EQ(local_port_of(fd), 0);
        close(fd);
    });
    auto events = EventLog(*capture).collect(netns.inode(), at_least(1, 0, 1));
    auto allocated = allocations(events);
    ASSERT_EQ(allocated.size(), 1u);
    expect_allocation(allocated[0], said);
    auto released = releases(events);
    ASSERT_EQ(released.size(), 1u);
    expect_release(released[0], said, ReleaseReason::disconnect);
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
