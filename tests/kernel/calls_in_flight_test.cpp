// SPDX-License-Identifier: Apache-2.0
// The kernel tables of calls in flight (pending, tcp_calls_in_flight, io_uring_calls in bpf/)
// are sized from --max-tracked-sockets, and a call that does not fit is counted in
// pending_overflow, not lost unseen. Blocking TCP calls are held in flight by a listener whose
// accept queue is full: the kernel drops their SYNs (tcp_conn_request()), and each call waits
// in SYN_SENT until its send timeout.
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <set>
#include <thread>
#include <vector>

#include "kernel_support.h"

namespace portwatch::test {
namespace {

constexpr std::uint32_t kCallsThatFit = 8;
constexpr int kCallSeconds = 6;  // SO_SNDTIMEO of each held call

// The calls held in flight: TCP Fast Open sends reach every hook set's call tables (a send
// on an unbound TCP socket), connect() only where sockops cannot tell the caller.
enum class Call { fast_open_send, connect };

int tcp_state(int fd) {
    tcp_info info{};
    socklen_t length = sizeof(info);
    if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &length) != 0) return -1;
    return info.tcpi_state;
}

// A listener on loopback that answers no SYN: backlog 0, and one connection accepted by the
// kernel but never by us fills its accept queue. Returns its port; the fds stay open.
std::uint16_t full_listener(std::vector<int> &keep) {
    int listener = make_socket(Family::ipv4, Proto::tcp);
    EXPECT_EQ(listen(listener, 0), 0);
    std::uint16_t port = local_port_of(listener);
    int queued = make_socket(Family::ipv4, Proto::tcp);
    EXPECT_EQ(connect_to(queued, Family::ipv4, port), 0);
    keep.insert(keep.end(), {listener, queued});
    return port;
}

// Starts `call` on fd (blocking, bounded by kCallSeconds) on a thread of its own.
std::thread start_blocking_call(Call call, int fd, std::uint16_t port) {
    timeval timeout{kCallSeconds, 0};
    EXPECT_EQ(setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof(timeout)), 0);
    return std::thread([call, fd, port] {
        socklen_t length;
        sockaddr_storage to = loopback(Family::ipv4, port, &length);
        auto *address = reinterpret_cast<sockaddr *>(&to);
        if (call == Call::connect)
            connect(fd, address, length);
        else
            sendto(fd, "x", 1, MSG_FASTOPEN, address, length);
    });
}

// True once every fd is in SYN_SENT (its call has chosen the port and waits), within the
// first half of the calls' timeout, so that all of them are in flight at once.
bool all_waiting(const std::vector<int> &fds) {
    auto until = std::chrono::steady_clock::now() + std::chrono::seconds(kCallSeconds) / 2;
    while (std::chrono::steady_clock::now() < until) {
        std::size_t waiting = 0;
        for (int fd : fds) waiting += tcp_state(fd) == TCP_SYN_SENT;
        if (waiting == fds.size()) return true;
        usleep(10'000);
    }
    return false;
}

class CallsInFlightTest : public KernelTest {
  protected:
    void SetUp() override {}  // each test makes its netns, then calls KernelTest::SetUp()
    CaptureConfig config() const override {
        CaptureConfig wanted;
        wanted.max_tracked_sockets = 4 * kCallsThatFit;
        wanted.filters.netns = netns_inode;
        return wanted;
    }
    // False when KernelTest::SetUp() skipped or failed: the test then returns.
    bool start_in(const Netns &netns) {
        netns_inode = netns.inode();
        KernelTest::SetUp();
        return capture != nullptr;
    }
    // Whether the programs remember a call of this kind in flight (else fexit or sockops
    // report it at once).
    bool remembers(Call call) const {
        if (capture->hook_set() != HookSet::tracepoint) return false;
        return call == Call::fast_open_send || !sockops_reports_connects();
    }
    // Where sockops may read the task it reports every TCP connect, a Fast Open send too
    // when the send was not remembered.
    bool sockops_reports_connects() const {
        return capture->hook_set() == HookSet::tracepoint &&
               !capture->kernel_verdict().lacks(Feature::sockops_task);
    }
    std::uint64_t overflow() const {
        Capture::CounterReading read = capture->counters();
        EXPECT_EQ(read.error, "");
        return read.totals.pending_overflow;
    }

    // Holds `count` calls in flight at once in netns; returns the local ports the kernel gave
    // them (getsockname() while they wait).
    std::set<std::uint16_t> hold_calls(const Netns &netns, Call call, std::uint32_t count) {
        std::set<std::uint16_t> ports;
        netns.run([&] {
            std::vector<int> keep;
            std::uint16_t port = full_listener(keep);
            std::vector<int> fds;
            std::vector<std::thread> calls;
            for (std::uint32_t i = 0; i < count; i++) {
                fds.push_back(make_socket(Family::ipv4, Proto::tcp));
                calls.push_back(start_blocking_call(call, fds.back(), port));
            }
            bool waited = all_waiting(fds);
            for (int fd : fds) ports.insert(local_port_of(fd));
            for (auto &thread : calls) thread.join();
            EXPECT_TRUE(waited) << "the calls were not all in SYN_SENT at once";
            for (int fd : fds) close(fd);
            for (int fd : keep) close(fd);
        });
        return ports;
    }

    // The successful connect-kind allocations of `ports` the kernel side reported.
    // The connect()-allocated ports of `ports` reported, leaving out those of `gone` processes
    // (whose ports, released when they were killed, the kernel may hand out again).
    std::size_t reported_of(const Netns &netns, const std::set<std::uint16_t> &ports,
                            std::size_t expected, const std::set<std::uint32_t> &gone = {}) {
        auto events = EventLog(*capture).collect(netns.inode(), at_least(expected + 1),
                                                 std::chrono::seconds(10));
        std::size_t reported = 0;
        for (const AllocateEvent &event : allocations(events))
            reported += event.how == How::connect_autobind && ports.count(event.sock.local_port) &&
                        !gone.count(event.task.pid);
        return reported;
    }

    void fill_and_count(Call call) {
        Netns netns(Sysctls{{"net/ipv4/tcp_fastopen", "1"}});
        if (!start_in(netns)) return;
        constexpr std::uint32_t held = kCallsThatFit + 5;
        std::set<std::uint16_t> ports = hold_calls(netns, call, held);
        ASSERT_EQ(ports.size(), held);
        std::uint32_t kept = remembers(call) ? kCallsThatFit : held;
        EXPECT_EQ(overflow(), held - kept) << "calls in flight that did not fit";
        std::uint32_t reported = sockops_reports_connects() ? held : kept;
        EXPECT_EQ(reported_of(netns, ports, reported), reported);
    }

    std::uint32_t netns_inode = 0;
};

TEST_F(CallsInFlightTest, FastOpenSendsBeyondTheTableAreCounted) {
    fill_and_count(Call::fast_open_send);
}

TEST_F(CallsInFlightTest, ConnectsBeyondTheTableAreCounted) {
    fill_and_count(Call::connect);
}

// A process killed inside its call leaves no entry behind: sys_exit still runs for it. The
// table is filled by processes killed mid-call, then holds as many calls again.
TEST_F(CallsInFlightTest, CallsOfKilledProcessesLeaveTheTable) {
    Netns netns(Sysctls{{"net/ipv4/tcp_fastopen", "1"}});
    if (!start_in(netns)) return;
    std::set<std::uint32_t> killed;
    netns.run([&] {
        std::vector<int> keep;
        std::uint16_t port = full_listener(keep);
        std::vector<pid_t> children;
        std::vector<int> fds;
        for (std::uint32_t i = 0; i < kCallsThatFit; i++) {
            int fd = make_socket(Family::ipv4, Proto::tcp);
            pid_t child = fork();
            ASSERT_GE(child, 0);
            if (child == 0) {
                socklen_t length;
                sockaddr_storage to = loopback(Family::ipv4, port, &length);
                sendto(fd, "x", 1, MSG_FASTOPEN, reinterpret_cast<sockaddr *>(&to), length);
                _exit(0);
            }
            children.push_back(child);
            killed.insert(std::uint32_t(child));
            fds.push_back(fd);
        }
        EXPECT_TRUE(all_waiting(fds));
        for (pid_t child : children) {
            kill(child, SIGKILL);
            int status = 0;
            waitpid(child, &status, 0);
            EXPECT_TRUE(WIFSIGNALED(status));
        }
        for (int fd : fds) close(fd);
        for (int fd : keep) close(fd);
    });
    EXPECT_EQ(overflow(), 0u);
    std::set<std::uint16_t> ports = hold_calls(netns, Call::fast_open_send, kCallsThatFit);
    EXPECT_EQ(overflow(), 0u) << "entries of killed processes still fill the table";
    std::size_t kept = reported_of(netns, ports, kCallsThatFit, killed);
    EXPECT_EQ(kept, kCallsThatFit);
}

}  // namespace
}  // namespace portwatch::test
