// SPDX-License-Identifier: Apache-2.0
#include <sstream>
#include <string>

#include <gtest/gtest.h>

#include "system/mounts.h"

namespace portwatch {
namespace {

std::optional<std::string> find(const std::string &proc_mounts) {
    std::istringstream in(proc_mounts);
    return find_cgroup2_mount(in);
}

TEST(Mounts, Hybrid) {
    const char *sample =
        "sysfs /sys sysfs rw,nosuid,nodev,noexec,relatime 0 0\n"
        "tmpfs /sys/fs/cgroup tmpfs ro,nosuid,nodev,noexec,mode=755 0 0\n"
        "cgroup2 /sys/fs/cgroup/unified cgroup2 rw,nosuid,nodev,noexec,relatime 0 0\n"
        "cgroup /sys/fs/cgroup/systemd cgroup rw,nosuid,nodev,noexec,relatime,xattr 0 0\n"
        "cgroup /sys/fs/cgroup/net_cls,net_prio cgroup rw,net_cls,net_prio 0 0\n"
        "cgroup /sys/fs/cgroup/memory cgroup rw,nosuid,nodev,noexec,relatime,memory 0 0\n";
    EXPECT_EQ(find(sample), "/sys/fs/cgroup/unified");
}

TEST(Mounts, HybridWithCgroup2Last) {
    const char *sample =
        "cgroup /sys/fs/cgroup/cpu,cpuacct cgroup rw,cpu,cpuacct 0 0\n"
        "cgroup /sys/fs/cgroup/pids cgroup rw,pids 0 0\n"
        "cgroup2 /sys/fs/cgroup/unified cgroup2 rw,relatime 0 0\n";
    EXPECT_EQ(find(sample), "/sys/fs/cgroup/unified");
}

TEST(Mounts, Unified) {
    const char *sample =
        "proc /proc proc rw,nosuid,nodev,noexec,relatime 0 0\n"
        "cgroup2 /sys/fs/cgroup cgroup2 rw,nosuid,nodev,noexec,relatime,nsdelegate 0 0\n"
        "/dev/sda1 / ext4 rw,relatime 0 0\n";
    EXPECT_EQ(find(sample), "/sys/fs/cgroup");
}

TEST(Mounts, MatchesTheTypeNotTheSource) {
    const char *sample =
        "cgroup2 /not/this tmpfs rw 0 0\n"
        "none /mnt/cg2 cgroup2 rw 0 0\n";
    EXPECT_EQ(find(sample), "/mnt/cg2");
}

TEST(Mounts, NoCgroup2) {
    const char *sample =
        "sysfs /sys sysfs rw 0 0\n"
        "tmpfs /sys/fs/cgroup tmpfs ro,mode=755 0 0\n"
        "cgroup /sys/fs/cgroup/memory cgroup rw,memory 0 0\n"
        "\n"
        "short line\n";
    EXPECT_EQ(find(sample), std::nullopt);
    EXPECT_EQ(find(""), std::nullopt);
}

// The kernel writes a space in a mount point as \040 (also \011, \012, \134);
// the path handed back is used to open the directory, so it must be decoded.
TEST(Mounts, OctalEscapesInMountPointAreDecoded) {
    EXPECT_EQ(find("cgroup2 /mnt/my\\040cgroup cgroup2 rw 0 0\n"), "/mnt/my cgroup");
}

}  // namespace
}  // namespace portwatch
