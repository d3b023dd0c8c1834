// SPDX-License-Identifier: Apache-2.0
#include <gtest/gtest.h>

#include <string>

#include "events/containers.h"

namespace portwatch {
namespace {

const std::string kId = "4a37f6d3bf5dcb638ef7247564bea98d9724a0ba2eb0c6dd64efc5404c360646";
const std::string kOtherId = "efa5de50375594ab628826e2c013e7ed0dd8dacfd43762d80afaf0e373dee37c";
// kubelet's systemd driver writes the pod uid with '_' for '-'; cgroupfs keeps the dashes.
const std::string kPodSlice = "kubepods-burstable-pod3f79c32a_9750_4036_9c1a_195ffd74a2eb.slice";
const std::string kPodDir = "pod3f79c32a-9750-4036-9c1a-195ffd74a2eb";

struct PathCase {
    std::string path;
    std::optional<Container> expected;
};

TEST(Containers, RecognizesEachRuntimesCgroupNames) {
    const PathCase cases[] = {
        // docker
        {"/system.slice/docker-" + kId + ".scope", Container{"docker", kId}},
        {"/docker/" + kId, Container{"docker", kId}},
        // Kubernetes, systemd driver
        {"/kubepods.slice/kubepods-burstable.slice/" + kPodSlice + "/cri-containerd-" + kId +
             ".scope",
         Container{"containerd", kId}},
        {"/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod3f79c32a_9750_4036_"
         "9c1a_195ffd74a2eb.slice/crio-" +
             kId + ".scope",
         Container{"cri-o", kId}},
        {"/kubepods.slice/kubepods-pod3f79c32a_9750_4036_9c1a_195ffd74a2eb.slice/docker-" + kId +
             ".scope",
         Container{"docker", kId}},  // guaranteed QoS: no QoS slice
        // Kubernetes, cgroupfs driver: the runtime is not in the path
        {"/kubepods/besteffort/" + kPodDir + "/" + kId, Container{"kubepods", kId}},
        {"/kubepods/burstable/" + kPodDir + "/" + kId, Container{"kubepods", kId}},
        {"/kubepods/" + kPodDir + "/" + kId, Container{"kubepods", kId}},
        {"/kubepods/burstable/" + kPodDir + "/crio-" + kId, Container{"cri-o", kId}},
        // podman, rootful and rootless
        {"/machine.slice/libpod-" + kId + ".scope", Container{"podman", kId}},
        {"/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-" + kId + ".scope",
         Container{"podman", kId}},
        {"/libpod_parent/libpod-" + kId, Container{"podman", kId}},
        // a cgroup a container made inside its own (systemd as the container's init)
        {"/system.slice/docker-" + kId + ".scope/init.scope", Container{"docker", kId}},
        // a container in a container (kind): the innermost
        {"/system.slice/docker-" + kOtherId + ".scope/kubelet.slice/kubelet-kubepods.slice/" +
             kPodSlice + "/cri-containerd-" + kId + ".scope",
         Container{"containerd", kId}},
    };
    for (const auto &[path, expected] : cases) EXPECT_EQ(container_of(path), expected) << path;
}

TEST(Containers, HostAndHelperCgroupsAreNoContainer) {
    const std::string cases[] = {
        "/",
        "",
        "/init.scope",
        "/user.slice/user-1000.slice/session-3.scope",
        "/user.slice/user-1000.slice/user@1000.service/app.slice/dbus.service",
        "/system.slice/docker.service",
        "/system.slice/containerd.service",
        "/system.slice/crio.service",
        "/kubepods.slice/kubepods-burstable.slice/" + kPodSlice,
        "/kubepods.slice/kubepods-burstable.slice/" + kPodSlice + "/crio-conmon-" + kId + ".scope",
        "/kubepods/burstable/" + kPodDir + "/crio-conmon-" + kId,
        "/machine.slice/libpod-conmon-" + kId + ".scope",
        "/kubepods/burstable/" + kPodDir,
        "/system.slice/" + kId,  // a bare id nowhere a runtime puts one
        "/system.slice/docker-" + kId.substr(0, 63) + ".scope",  // one digit short
        "/system.slice/docker-" + kId + "0.scope",               // one digit long
        "/system.slice/docker-4A37F6D3BF5DCB638EF7247564BEA98D9724A0BA2EB0C6DD64EFC5404C360646"
        ".scope",  // runtimes write lowercase
        "/system.slice/docker-" + kId + ".scope.bak",
        "/system.slice/docker-\xff" + kId.substr(1) + ".scope",
    };
    for (const auto &path : cases) EXPECT_EQ(container_of(path), std::nullopt) << path;
}

TEST(Containers, ShortIdIsTheFirstTwelveDigits) {
    EXPECT_EQ(short_container_id(kId), "4a37f6d3bf5d");
    EXPECT_EQ(short_container_id("abc"), "abc");
}

TEST(Containers, Cgroup2PathFromProcPidCgroup) {
    EXPECT_EQ(cgroup2_path_in("0::/system.slice/docker-" + kId + ".scope\n"),
              "/system.slice/docker-" + kId + ".scope");
    // hybrid layout: v1 hierarchies first
    EXPECT_EQ(cgroup2_path_in("9:name=systemd:/user.slice\n4:memory:/x\n1:cpu:/\n0::/\n"), "/");
    EXPECT_EQ(cgroup2_path_in("0::/a b\n"), "/a b");
    EXPECT_EQ(cgroup2_path_in("0::/no-newline"), "/no-newline");
    EXPECT_EQ(cgroup2_path_in("4:memory:/x\n1:cpu:/\n"), std::nullopt);  // v1 only
    EXPECT_EQ(cgroup2_path_in("10::/not-v2\n"), std::nullopt);
    EXPECT_EQ(cgroup2_path_in(""), std::nullopt);
}

TEST(Containers, PathUnderMount) {
    const std::string mount = "/sys/fs/cgroup/unified";
    EXPECT_EQ(path_under_mount(mount, mount), "/");
    EXPECT_EQ(path_under_mount(mount + "/a/b.scope", mount), "/a/b.scope");
    EXPECT_EQ(path_under_mount(mount + "/a", mount + "/"), "/a");
    EXPECT_EQ(path_under_mount("/sys/fs/cgroup/unifiedx/a", mount), std::nullopt);
    EXPECT_EQ(path_under_mount("/sys/fs/cgroup", mount), std::nullopt);
    EXPECT_EQ(path_under_mount("/a/b", "/"), "/a/b");
    EXPECT_EQ(path_under_mount("/", "/"), "/");
}

}  // namespace
}  // namespace portwatch
