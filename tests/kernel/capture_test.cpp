// SPDX-License-Identifier: Apache-2.0
// What the capture itself promises, whatever the events: its counters of what the kernel side
// emitted and lost are never made up.
#include <bpf/bpf.h>
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <vector>

#include "kernel_support.h"

namespace portwatch::test {
namespace {

// This process's descriptor of the BPF map named `name`, or -1.
int map_fd_named(const char *name) {
    for (const auto &entry : std::filesystem::directory_iterator("/proc/self/fd")) {
        int fd = std::stoi(entry.path().filename().string());
        bpf_map_info info{};
        __u32 length = sizeof(info);
        if (bpf_obj_get_info_by_fd(fd, &info, &length) == 0 && std::strcmp(info.name, name) == 0)
            return fd;
    }
    return -1;
}

class CaptureTest : public KernelTest {};

// A map that cannot be read (here: its descriptor replaced under the capture) must not read
// as "nothing lost": the capture keeps its last reading and says why it has no newer one.
TEST_F(CaptureTest, UnreadableCountersKeepTheLastReadingAndSayWhy) {
    Netns netns;
    netns.run([] {
        int fd = make_socket(Family::ipv4, Proto::udp);
        EXPECT_EQ(bind_to(fd, Family::ipv4, 0), 0);
        close(fd);
    });
    EventLog log(*capture);
    log.collect(netns.inode(), [](const std::vector<Event> &events) { return !events.empty(); });
    Capture::CounterReading read = capture->counters();
    ASSERT_EQ(read.error, "");
    ASSERT_GE(read.totals.emitted_total(), 1u);

    int counters_fd = map_fd_named("counters");
    ASSERT_GE(counters_fd, 0);
    int not_a_map = open("/dev/null", O_RDONLY | O_CLOEXEC);
    ASSERT_EQ(dup2(not_a_map, counters_fd), counters_fd);
    close(not_a_map);

    Capture::CounterReading unreadable = capture->counters();
    EXPECT_EQ(unreadable.error.rfind("cannot read the event counters: ", 0), 0u)
        << unreadable.error;
    EXPECT_EQ(unreadable.totals.emitted_total(), read.totals.emitted_total());
    EXPECT_EQ(unreadable.totals.lost_total(), read.totals.lost_total());
}

// The descriptors of this process that are epoll instances: the ring buffer's.
std::vector<int> epoll_fds() {
    std::vector<int> fds;
    for (const auto &entry : std::filesystem::directory_iterator("/proc/self/fd"))
        if (std::filesystem::read_symlink(entry.path()).string() == "anon_inode:[eventpoll]")
            fds.push_back(std::stoi(entry.path().filename().string()));
    return fds;
}

// A ring buffer that cannot be waited on is an error the caller sees (the monitor stops
// with it), not a quiet poll that returns nothing.
TEST_F(CaptureTest, ARingBufferThatCannotBeWaitedOnIsAnError) {
    auto ignore = [](Event &) {};
    Result<int> first = capture->poll(10, ignore);
    ASSERT_TRUE(first) << first.error();
    ASSERT_GE(*first, 0);
    std::vector<int> epolls = epoll_fds();
    ASSERT_FALSE(epolls.empty());
    int not_an_epoll = open("/dev/null", O_RDONLY | O_CLOEXEC);
    for (int fd : epolls) ASSERT_EQ(dup2(not_an_epoll, fd), fd);
    close(not_an_epoll);
    Result<int> polled = capture->poll(10, ignore);
    EXPECT_FALSE(polled);  // not taken for a signal (EINTR), which is a poll of 0 records
    EXPECT_EQ(polled.error().rfind("cannot wait on the ring buffer: ", 0), 0u) << polled.error();
}

}  // namespace
}  // namespace portwatch::test
