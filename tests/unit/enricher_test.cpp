// SPDX-License-Identifier: Apache-2.0
#include "enrich/enricher.h"

#include <gtest/gtest.h>

#include <map>

#include "sample_events.h"

namespace portwatch {
namespace {

using testing::connect_allocate;
using testing::ipv6_release;
using testing::kContainerId;
using testing::kDockerCgroup;

constexpr std::uint64_t kCgroupId = 42;

Enricher::CgroupResolver docker_paths(int &lookups) {
    return [&lookups](std::uint64_t id) -> std::string {
        lookups++;
        return id == kCgroupId ? kDockerCgroup : "";
    };
}

TEST(Enricher, FillsTheCgroupPathAndItsContainerOnce) {
    int lookups = 0;
    Enricher enricher(16, {}, docker_paths(lookups));
    AllocateEvent allocation = connect_allocate();
    allocation.task.cgroup_id = kCgroupId;
    allocation.task.cgroup_path = "";
    Event event = allocation;
    ASSERT_TRUE(enricher.enrich(event));
    const CgroupPath &path = std::get<AllocateEvent>(event).task.cgroup_path;
    EXPECT_EQ(path, kDockerCgroup);
    ASSERT_TRUE(path.container().has_value());
    EXPECT_EQ(path.container()->id, kContainerId);
    EXPECT_EQ(path.container()->runtime, "docker");
    EXPECT_EQ(lookups, 1);

    ASSERT_TRUE(enricher.enrich(event));  // a path already known is not looked up again
    EXPECT_EQ(lookups, 1);
}

TEST(Enricher, JoinsTheOwnerOfAReleaseTheKernelSentNoneFor) {
    int lookups = 0;
    Enricher enricher(16, {}, docker_paths(lookups));
    AllocateEvent allocation = connect_allocate("curl");
    allocation.sock.cookie = 7;
    allocation.task.cgroup_id = kCgroupId;
    allocation.task.cgroup_path = "";
    Event allocated = allocation;
    ASSERT_TRUE(enricher.enrich(allocated));

    ReleaseEvent release = ipv6_release(ReleaseReason::time_wait);
    release.sock.cookie = 7;
    release.owner_known = false;
    release.owner = {};
    Event released = release;
    ASSERT_TRUE(enricher.enrich(released));
    const ReleaseEvent &joined = std::get<ReleaseEvent>(released);
    EXPECT_TRUE(joined.owner_known);
    EXPECT_EQ(joined.owner.comm, "curl");
    EXPECT_EQ(joined.owner.cgroup_path, kDockerCgroup);
    ASSERT_TRUE(joined.owner.cgroup_path.container().has_value());
}

TEST(Enricher, DropsWhatTheModelDisowns) {
    Enricher enricher(16, [](ReleaseEvent &) { return false; });
    Event release = ipv6_release(ReleaseReason::socket_closed);
    EXPECT_FALSE(enricher.enrich(release));
    Event allocation = connect_allocate();
    EXPECT_TRUE(enricher.enrich(allocation));
}

TEST(Enricher, AReleaseWithoutOwnerGetsNoCgroupPath) {
    int lookups = 0;
    Enricher enricher(16, {}, docker_paths(lookups));
    ReleaseEvent release = ipv6_release(ReleaseReason::socket_closed);
    release.owner_known = false;
    release.owner = {};
    release.owner.cgroup_id = kCgroupId;
    Event event = release;
    ASSERT_TRUE(enricher.enrich(event));
    EXPECT_EQ(std::get<ReleaseEvent>(event).owner.cgroup_path, "");
    EXPECT_EQ(lookups, 0);
}

TEST(CgroupPath, APathWithoutContainerHasNone) {
    CgroupPath path = "/system.slice/sshd.service";
    EXPECT_FALSE(path.container().has_value());
    EXPECT_EQ(path.text(), "/system.slice/sshd.service");
    EXPECT_FALSE(CgroupPath().container().has_value());
}

}  // namespace
}  // namespace portwatch
