// SPDX-License-Identifier: Apache-2.0
// Filters are applied in the kernel: a capture loaded with a filter must see
// exactly the matching allocations of a namespace, and nothing else.
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <thread>

#include "kernel_support.h"

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

class FilterTest : public KernelTest {
  protected:
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
    filters.pid = static_cast<std::uint32_t>(idle);
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
    filters.pid = static_cast<std::uint32_t>(getpid());
    KernelTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    Netns netns;
    bind_one_of_each(netns, "pw-filter");
    auto seen = allocations_in(netns, 4);
    ASSERT_EQ(seen.size(), 4u);
    for (const auto &event : seen) EXPECT_EQ(event.task.pid, static_cast<std::uint32_t>(getpid()));
}

TEST_F(FilterTest, PidOfAnotherProcessSeesNothingOfOurs) {
    filters.pid = static_cast<std::uint32_t>(getppid());
    KernelTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    Netns netns;
    bind_one_of_each(netns, "pw-filter");
    EXPECT_EQ(allocations_in(netns, 1, std::chrono::seconds(1)).size(), 0u);
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

}  // namespace
}  // namespace portwatch::test
