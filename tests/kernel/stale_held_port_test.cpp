// SPDX-License-Identifier: Apache-2.0
// The kernel's held_ports table, kept by the monitor's passes over the socket tables: what a
// pass finds gone without a release leaves it, and only that.
#include <bpf/bpf.h>
#include <linux/bpf.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

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

class StaleHeldPortTest : public KernelTest {};

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
// held_ports; the passes that find it gone from the tables must delete it there too.
TEST_F(StaleHeldPortTest, ASocketGoneWithoutAReleaseLeavesTheKernelsTable) {
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

    // the grace (2 s) past the bind, then the passes that must agree (every second)
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (map_has(map, cookie) && std::chrono::steady_clock::now() < deadline)
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
    EXPECT_FALSE(map_has(map, cookie)) << "still in held_ports 10 s after it was gone";
    close(map);
    monitor.signal(SIGTERM);
    EXPECT_EQ(monitor.wait_exit_code(), 0);
}

}  // namespace
}  // namespace portwatch::test
