// SPDX-License-Identifier: Apache-2.0
// io_uring's socket ops take ports with no bind(), listen(), connect() or send*() syscall:
// each op on each protocol and family, the same exact events the syscalls give. Debian's
// liburing 2.3 has no io_uring_prep_bind()/prep_listen(): their SQEs are made by hand.
#include <liburing.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <functional>

#include "capture/feature_probe.h"
#include "kernel_said.h"
#include "kernel_support.h"

namespace portwatch::test {
namespace {

constexpr int kOpBind = 56;    // IORING_OP_BIND (6.11), not in liburing 2.3's enum
constexpr int kOpListen = 57;  // IORING_OP_LISTEN (6.11)
constexpr std::uint16_t kFixedPort = 5555;

struct Combo {
    Family family;
    Proto proto;
};

std::string combo_name(const ::testing::TestParamInfo<Combo> &info) {
    return std::string(info.param.proto == Proto::tcp ? "tcp" : "udp") +
           (info.param.family == Family::ipv4 ? "4" : "6");
}

// One ring per call: the SQE `prepare` fills, submitted and waited for. The CQE's res.
int run_one_op(const std::function<void(io_uring_sqe *)> &prepare, unsigned sqe_flags = 0,
               unsigned ring_flags = 0) {
    io_uring ring{};
    int rc = io_uring_queue_init(4, &ring, ring_flags);
    if (rc < 0) return rc;
    io_uring_sqe *sqe = io_uring_get_sqe(&ring);
    prepare(sqe);
    sqe->flags |= sqe_flags;
    rc = io_uring_submit(&ring);
    io_uring_cqe *cqe = nullptr;
    if (rc == 1) rc = io_uring_wait_cqe(&ring, &cqe);
    if (rc == 0) {
        rc = cqe->res;
        io_uring_cqe_seen(&ring, cqe);
    }
    io_uring_queue_exit(&ring);
    return rc;
}

bool op_supported(int opcode) {
    io_uring_probe *probe = io_uring_get_probe();
    bool supported = probe && io_uring_opcode_supported(probe, opcode);
    if (probe) io_uring_free_probe(probe);
    return supported;
}

int uring_bind(int fd, Family family, std::uint16_t port) {
    socklen_t length = 0;
    sockaddr_storage addr = loopback(family, port, &length);
    return run_one_op([&](io_uring_sqe *sqe) {
        // sqe->addr2 (the address length) shares its slot with the offset
        io_uring_prep_rw(kOpBind, sqe, fd, &addr, 0, length);
    });
}

int uring_connect(int fd, Family family, std::uint16_t port, unsigned sqe_flags = 0,
                  unsigned ring_flags = 0) {
    socklen_t length = 0;
    sockaddr_storage addr = loopback(family, port, &length);
    return run_one_op(
        [&](io_uring_sqe *sqe) {
            io_uring_prep_connect(sqe, fd, reinterpret_cast<sockaddr *>(&addr), length);
        },
        sqe_flags, ring_flags);
}

class IoUringTest : public KernelTest, public ::testing::WithParamInterface<Combo> {
  protected:
    void SetUp() override {
        KernelTest::SetUp();
        if (IsSkipped() || HasFatalFailure()) return;
        SKIP_UNLESS_KERNEL_HAS(io_uring_submit_tracepoint() != IoUringSubmit::none,
                               "io_uring tracepoints with the request", 5, 19);
    }

    // In a new netns: a socket of the combo, `op` run on it as `how` by `syscall`, then
    // closed; what the kernel said. `op` returns the CQE's res, which must be `want_res`.
    KernelSaid run(const Netns &netns, How how, Syscall syscall, const std::function<int(int)> &op,
                   int want_res = 0) {
        Combo combo = GetParam();
        KernelSaid said;
        netns.run([&] {
            int fd = make_socket(combo.family, combo.proto);
            said = said_by_kernel(fd, how, syscall, [&] {
                int res = op(fd);
                EXPECT_EQ(res, want_res) << std::strerror(res < 0 ? -res : 0);
                return res == want_res ? 0 : -1;
            });
            said.released = timed([&] { close(fd); });
        });
        return said;
    }

    // The netns's events are one allocation and its release (`reason`), as `said`.
    AllocateEvent expect_one_allocation(const Netns &netns, const KernelSaid &said,
                                        ReleaseReason reason = ReleaseReason::socket_closed) {
        auto events = EventLog(*capture).collect(netns.inode(), at_least(1, 0, 1));
        auto allocated = allocations(events);
        EXPECT_EQ(allocated.size(), 1u);
        if (allocated.empty()) return {};
        expect_allocation(allocated[0], said);
        auto released = releases(events);
        EXPECT_EQ(released.size(), 1u);
        if (!released.empty()) expect_release(released[0], said, reason);
        return allocated[0];
    }
};

class IoUringUdpTest : public IoUringTest {};
class IoUringTcpTest : public IoUringTest {};

TEST_P(IoUringTest, BindPortZeroIsBindEphemeral) {
    SKIP_UNLESS_KERNEL_HAS(op_supported(kOpBind), "IORING_OP_BIND", 6, 11);
    Netns netns;
    KernelSaid said = run(netns, How::bind_ephemeral, Syscall::bind,
                          [&](int fd) { return uring_bind(fd, GetParam().family, 0); });
    AllocateEvent event = expect_one_allocation(netns, said);
    EXPECT_TRUE(event.ephemeral);
}

TEST_P(IoUringTest, BindFixedPortIsBind) {
    SKIP_UNLESS_KERNEL_HAS(op_supported(kOpBind), "IORING_OP_BIND", 6, 11);
    Netns netns;
    KernelSaid said = run(netns, How::bind, Syscall::bind,
                          [&](int fd) { return uring_bind(fd, GetParam().family, kFixedPort); });
    EXPECT_EQ(said.local.port, kFixedPort);
    AllocateEvent event = expect_one_allocation(netns, said);
    EXPECT_FALSE(event.ephemeral);
}

TEST_P(IoUringTest, BindToAPortInUseFailsWithEaddrinuse) {
    SKIP_UNLESS_KERNEL_HAS(op_supported(kOpBind), "IORING_OP_BIND", 6, 11);
    Combo combo = GetParam();
    Netns netns;
    netns.run([&] {
        int holder = make_socket(combo.family, combo.proto);
        ASSERT_EQ(bind_to(holder, combo.family, kFixedPort), 0);
        int fd = make_socket(combo.family, combo.proto);
        EXPECT_EQ(uring_bind(fd, combo.family, kFixedPort), -EADDRINUSE);
        close(fd);
        close(holder);
    });
    auto events = EventLog(*capture).collect(netns.inode(), at_least(1, 1, 1));
    auto failed = allocations(events, true);
    ASSERT_EQ(failed.size(), 1u);
    EXPECT_EQ(failed[0].error, EADDRINUSE);
    EXPECT_EQ(failed[0].how, How::bind);
    EXPECT_EQ(failed[0].syscall, Syscall::bind);
    EXPECT_EQ(failed[0].sock.local_port, kFixedPort);  // the port asked for
}

TEST_P(IoUringTcpTest, ListenWithoutBindIsListenAutobind) {
    SKIP_UNLESS_KERNEL_HAS(op_supported(kOpListen), "IORING_OP_LISTEN", 6, 11);
    Netns netns;
    KernelSaid said = run(netns, How::listen_autobind, Syscall::listen, [](int fd) {
        return run_one_op(
            [fd](io_uring_sqe *sqe) { io_uring_prep_rw(kOpListen, sqe, fd, nullptr, 16, 0); });
    });
    expect_one_allocation(netns, said, ReleaseReason::tcp_closed);
}

TEST_P(IoUringTcpTest, ConnectIsConnectAutobind) {
    Combo combo = GetParam();
    Netns netns;
    KernelSaid said;
    netns.run([&] {
        int server = listener_on(combo.family, kFixedPort);
        int fd = make_socket(combo.family, Proto::tcp);
        said = said_by_kernel(fd, How::connect_autobind, Syscall::connect,
                              [&] { return uring_connect(fd, combo.family, kFixedPort); });
        said.released = timed([&] {
            // the listener first: it resets the client to CLOSE, where the client first would
            // race its orphan into TIME_WAIT (tcp_close(), tcp_time_wait(TCP_FIN_WAIT2))
            close(server);
            close(fd);
        });
    });
    auto events = EventLog(*capture).collect(netns.inode(), at_least(2, 0, 2));
    auto connect = only_event_of(allocations(events), said);
    ASSERT_TRUE(connect);
    expect_allocation(*connect, said);
    auto release = only_event_of(releases(events), said);
    ASSERT_TRUE(release);
    expect_release(*release, said, ReleaseReason::tcp_closed);
}

TEST_P(IoUringUdpTest, ConnectIsConnectAutobind) {
    Netns netns;
    KernelSaid said = run(netns, How::connect_autobind, Syscall::connect,
                          [&](int fd) { return uring_connect(fd, GetParam().family, 9); });
    expect_one_allocation(netns, said);
}

// A connect a thread of this process other than the submitter ran: an io-wq worker
// (IOSQE_ASYNC) or the SQPOLL thread, which submits too (it shares the fd table).
void expect_connect_by_another_thread(Capture &capture, Family family, unsigned sqe_flags,
                                      unsigned ring_flags) {
    Netns netns;
    std::uint16_t port = 0;
    netns.run([&] {
        int fd = make_socket(family, Proto::udp);
        ASSERT_EQ(uring_connect(fd, family, 9, sqe_flags, ring_flags), 0);
        port = local_port_of(fd);
        close(fd);
    });
    auto events = EventLog(capture).collect(netns.inode(), at_least(1, 0, 1));
    auto allocated = allocations(events);
    ASSERT_EQ(allocated.size(), 1u);
    EXPECT_EQ(allocated[0].how, How::connect_autobind);
    EXPECT_EQ(allocated[0].sock.local_port, port);
    EXPECT_NE(port, 0);
    EXPECT_EQ(allocated[0].task.pid, static_cast<std::uint32_t>(getpid()));
    EXPECT_EQ(releases(events).size(), 1u);
}

TEST_P(IoUringUdpTest, ConnectIssuedByAWorkerIsConnectAutobindOfThisProcess) {
    expect_connect_by_another_thread(*capture, GetParam().family, IOSQE_ASYNC, 0);
}

TEST_P(IoUringUdpTest, ConnectSubmittedBySqpollIsConnectAutobindOfThisProcess) {
    expect_connect_by_another_thread(*capture, GetParam().family, 0, IORING_SETUP_SQPOLL);
}

TEST_P(IoUringUdpTest, SendmsgOnUnboundSocketIsSendtoAutobind) {
    Combo combo = GetParam();
    Netns netns;
    KernelSaid said = run(
        netns, How::sendto_autobind, Syscall::sendmsg,
        [&](int fd) {
            socklen_t length = 0;
            sockaddr_storage addr = loopback(combo.family, 9, &length);
            char payload[1] = {'x'};
            iovec iov{payload, 1};
            msghdr msg{};
            msg.msg_name = &addr;
            msg.msg_namelen = length;
            msg.msg_iov = &iov;
            msg.msg_iovlen = 1;
            return run_one_op([&](io_uring_sqe *sqe) { io_uring_prep_sendmsg(sqe, fd, &msg, 0); });
        },
        1);
    EXPECT_FALSE(said.remote) << "sendmsg() connects nothing";
    said.remote = loopback_endpoint(combo.family, 9);  // the destination given
    expect_one_allocation(netns, said);
}

const Combo kAll[] = {{Family::ipv4, Proto::tcp},
                      {Family::ipv6, Proto::tcp},
                      {Family::ipv4, Proto::udp},
                      {Family::ipv6, Proto::udp}};
const Combo kTcp[] = {{Family::ipv4, Proto::tcp}, {Family::ipv6, Proto::tcp}};
const Combo kUdp[] = {{Family::ipv4, Proto::udp}, {Family::ipv6, Proto::udp}};

INSTANTIATE_TEST_SUITE_P(Kernel, IoUringTest, ::testing::ValuesIn(kAll), combo_name);
INSTANTIATE_TEST_SUITE_P(Kernel, IoUringTcpTest, ::testing::ValuesIn(kTcp), combo_name);
INSTANTIATE_TEST_SUITE_P(Kernel, IoUringUdpTest, ::testing::ValuesIn(kUdp), combo_name);

}  // namespace
}  // namespace portwatch::test
