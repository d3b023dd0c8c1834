// SPDX-License-Identifier: Apache-2.0
// The monitor's passes over the socket tables, with the real programs: the baseline on a busy
// host, while the programs already report (the ring buffer must be read during it, as on later
// passes), and what a pass finds gone without a release.
#include <bpf/bpf.h>
#include <linux/bpf.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <functional>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "kernel_support.h"

namespace portwatch::test {
namespace {

using Json = nlohmann::json;

std::size_t bpf_link_count() {
    std::size_t count = 0;
    for (std::uint32_t id = 0; bpf_link_get_next_id(id, &id) == 0;) count++;
    return count;
}

// Waits until `count` links have been attached, at most 30 s.
bool links_attached(std::size_t count) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (std::chrono::steady_clock::now() < deadline) {
        if (bpf_link_count() >= count) return true;
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    return false;
}

// Loopback connections, kPerSecond of them, each closed at once with a reset (SO_LINGER 0:
// no TIME_WAIT, so the ports never run out), from `go` until `stop`. Paced: as fast as one
// thread can (~50,000 a second here) would also test how well two cores share themselves.
constexpr int kPerSecond = 20'000;

class ConnectStorm {
  public:
    explicit ConnectStorm(const Netns &netns)
        : thread_([this, &netns] { netns.run([this] { run(); }); }) {
        while (!listening_) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    ~ConnectStorm() { stop(); }

    void start() { go_ = true; }
    void stop() {
        go_ = stop_ = true;
        if (thread_.joinable()) thread_.join();
    }
    int connects() const { return connects_; }

  private:
    void run() {
        int listener = listener_on(Family::ipv4, 0);  // made before the monitor: in its baseline
        std::uint16_t port = local_port_of(listener);
        listening_ = true;
        while (!go_) std::this_thread::sleep_for(std::chrono::milliseconds(1));
        linger reset{1, 0};
        auto started = std::chrono::steady_clock::now();
        while (!stop_) {
            if (connects_ % 100 == 0) wait_for_the_pace(started);
            int client = make_socket(Family::ipv4, Proto::tcp);
            ASSERT_EQ(connect_to(client, Family::ipv4, port), 0) << std::strerror(errno);
            connects_++;
            int accepted = accept(listener, nullptr, nullptr);
            ASSERT_GE(accepted, 0);
            setsockopt(client, SOL_SOCKET, SO_LINGER, &reset, sizeof(reset));
            close(client);
            close(accepted);
        }
        close(listener);
    }

    void wait_for_the_pace(std::chrono::steady_clock::time_point started) const {
        std::this_thread::sleep_until(
            started + std::chrono::microseconds(1'000'000LL * connects_.load() / kPerSecond));
    }

    std::atomic<bool> listening_ = false, go_ = false, stop_ = false;
    std::atomic<int> connects_ = 0;
    std::thread thread_;
};

class ReconcileTest : public KernelTest {};

// 80,000 live sockets make a baseline of ~700 ms on this VM; a connect storm meanwhile fills
// a 1 MiB ring buffer (~3,800 connections' records) in ~200 ms. Before the baseline drained the
// ring buffer, the records past it were lost.
TEST_F(ReconcileTest, AConnectStormDuringABusyHostsBaselineLosesNothing) {
    std::size_t monitors_links = capture->hooks().size();  // one link a hook
    capture.reset();  // this process's own programs would halve the storm
    Monitor farm({"--sockets", "80000", "--new-netns"}, nullptr, SOCKET_FARM_BINARY);
    std::string farm_line = farm.next_line(std::chrono::seconds(60));
    ASSERT_FALSE(farm_line.empty()) << farm.all_stderr();
    ASSERT_EQ(Json::parse(farm_line)["sockets"], 80000);

    Netns netns;
    ConnectStorm storm(netns);
    std::size_t links_before = bpf_link_count();
    Monitor monitor({"monitor", "--json", "--ringbuf-mb", "1", "--events", "none",
                     "--stats-interval", "0", "--report-interval", "0", "--report-top", "0"});
    ASSERT_TRUE(links_attached(links_before + monitors_links));
    storm.start();  // every connection from now on is seen by the monitor's programs
    std::string ready = monitor.next_line(std::chrono::seconds(30));
    ASSERT_FALSE(ready.empty()) << monitor.all_stderr();
    ASSERT_EQ(Json::parse(ready)["type"], "ready");
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    storm.stop();
    monitor.signal(SIGINT);

    Json report, stats;
    for (std::string line = monitor.next_line(); !line.empty(); line = monitor.next_line()) {
        Json object = Json::parse(line);
        if (object["type"] == "report") report = object;
        if (object["type"] == "stats") stats = object;
    }
    EXPECT_EQ(monitor.wait_exit_code(), 0);
    farm.signal(SIGTERM);
    EXPECT_EQ(farm.wait_exit_code(), 0);
    ASSERT_FALSE(stats.is_null());
    EXPECT_EQ(stats["lost_total"], 0) << stats.dump();
    ASSERT_FALSE(report.is_null());
    Json allocations;
    for (const Json &process : report["processes"])
        if (process["pid"] == getpid()) allocations = process["allocations"];
    EXPECT_EQ(allocations, storm.connects()) << "every connect of the storm seen";
    EXPECT_GE(storm.connects(), 4000) << "enough to overflow 1 MiB without the reader";
}

// The ids of the BPF objects `next_id` lists (maps or links) that `matches`.
std::set<__u32> bpf_ids(int (*next_id)(__u32, __u32 *), int (*fd_of)(__u32),
                        const std::function<bool(int fd)> &matches) {
    std::set<__u32> ids;
    for (__u32 id = 0; next_id(id, &id) == 0;) {
        int fd = fd_of(id);
        if (fd < 0) continue;  // gone meanwhile
        if (matches(fd)) ids.insert(id);
        close(fd);
    }
    return ids;
}

std::set<__u32> held_ports_maps() {
    return bpf_ids(bpf_map_get_next_id, bpf_map_get_fd_by_id, [](int fd) {
        bpf_map_info info{};
        __u32 length = sizeof(info);
        return bpf_obj_get_info_by_fd(fd, &info, &length) == 0 &&
               std::strcmp(info.name, "held_ports") == 0;
    });
}

std::set<__u32> sock_release_links() {
    return bpf_ids(bpf_link_get_next_id, bpf_link_get_fd_by_id, [](int fd) {
        bpf_link_info info{};
        __u32 length = sizeof(info);
        return bpf_obj_get_info_by_fd(fd, &info, &length) == 0 &&
               info.type == BPF_LINK_TYPE_CGROUP &&
               info.cgroup.attach_type == BPF_CGROUP_INET_SOCK_RELEASE;
    });
}

// The one id in `now` that is not in `before`, or 0.
__u32 new_id(const std::set<__u32> &before, const std::set<__u32> &now) {
    std::vector<__u32> added;
    for (__u32 id : now)
        if (!before.contains(id)) added.push_back(id);
    return added.size() == 1 ? added[0] : 0;
}

bool map_has(int map, std::uint64_t key) {
    std::vector<char> value(4096);  // larger than any held_ports value
    return bpf_map_lookup_elem(map, &key, value.data()) == 0;
}

// A release the programs missed (here: another root process detached the monitor's
// cgroup/sock_release link, which reports UDP closes) leaves the socket in the kernel's
// held_ports; the next pass finds it gone from the tables and must delete it there too.
TEST_F(ReconcileTest, ASocketGoneWithoutAReleaseLeavesTheKernelsTableAtTheNextPass) {
    capture.reset();
    Netns netns;
    std::set<__u32> maps_before = held_ports_maps(), links_before = sock_release_links();
    Monitor monitor({"monitor", "--json", "--events", "none", "--stats-interval", "0",
                     "--report-interval", "1", "--netns", std::to_string(netns.inode())});
    ASSERT_EQ(Json::parse(monitor.next_line())["type"], "ready") << monitor.all_stderr();
    __u32 map_id = new_id(maps_before, held_ports_maps());
    __u32 link_id = new_id(links_before, sock_release_links());
    ASSERT_NE(map_id, 0u);
    ASSERT_NE(link_id, 0u);
    int map = bpf_map_get_fd_by_id(map_id);
    ASSERT_GE(map, 0) << std::strerror(errno);

    int udp = -1;
    std::uint64_t cookie = 0;
    netns.run([&] {
        udp = make_socket(Family::ipv4, Proto::udp);
        ASSERT_EQ(bind_to(udp, Family::ipv4, 0), 0);
        socklen_t length = sizeof(cookie);
        ASSERT_EQ(getsockopt(udp, SOL_SOCKET, SO_COOKIE, &cookie, &length), 0);
    });
    ASSERT_TRUE(map_has(map, cookie)) << "the bind is held";
    int link = bpf_link_get_fd_by_id(link_id);
    ASSERT_GE(link, 0);
    ASSERT_EQ(bpf_link_detach(link), 0) << std::strerror(errno);
    close(link);
    close(udp);
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    ASSERT_TRUE(map_has(map, cookie)) << "no program saw the close";

    // the grace (2 s) past the bind, then the next pass (every second)
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(8);
    while (map_has(map, cookie) && std::chrono::steady_clock::now() < deadline)
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
    EXPECT_FALSE(map_has(map, cookie)) << "still in held_ports 8 s after it was gone";
    close(map);
    monitor.signal(SIGTERM);
    EXPECT_EQ(monitor.wait_exit_code(), 0);
}

}  // namespace
}  // namespace portwatch::test
