// SPDX-License-Identifier: Apache-2.0
// Filters are applied in the kernel: a capture loaded with a filter must see
// exactly the matching allocations of a namespace, and nothing else.
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

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
