// SPDX-License-Identifier: Apache-2.0
// --container's resolution: which cgroups of a tree a prefix of a container id names.
#include "system/container_cgroups.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace portwatch {
namespace {

const std::string kA = "a1b2" + std::string(60, '0');
const std::string kB = "a1b3" + std::string(60, '1');
const std::string kPodUid = "pod12345678-aaaa-bbbb-cccc-1234567890ab";

const std::vector<std::string> kTree{
    "/",
    "/system.slice",
    "/system.slice/docker-" + kA + ".scope",
    "/system.slice/docker-" + kA + ".scope/init",    // a sub-cgroup of the same container
    "/system.slice/libpod-conmon-" + kB + ".scope",  // podman's helper: no container
    "/kubepods/besteffort/" + kPodUid + "/" + kB,
    "/user.slice",
};

TEST(ContainersMatching, APrefixNamesTheContainersTopmostCgroup) {
    ContainersMatching found = containers_matching(kTree, "a1b2");
    EXPECT_EQ(found.ids, std::vector<std::string>{kA});
    EXPECT_EQ(found.paths, std::vector<std::string>{"/system.slice/docker-" + kA + ".scope"});
    ContainersMatching full = containers_matching(kTree, kB);
    EXPECT_EQ(full.ids, std::vector<std::string>{kB});
    EXPECT_EQ(full.paths, std::vector<std::string>{"/kubepods/besteffort/" + kPodUid + "/" + kB});
}

TEST(ContainersMatching, ASharedPrefixNamesBothAndAnUnknownOneNone) {
    ContainersMatching both = containers_matching(kTree, "a1b");
    EXPECT_EQ(both.ids, (std::vector<std::string>{kA, kB}));
    EXPECT_EQ(containers_matching(kTree, "ffff").ids, std::vector<std::string>{});
    EXPECT_EQ(containers_matching({}, "a1b2").paths, std::vector<std::string>{});
}

}  // namespace
}  // namespace portwatch
