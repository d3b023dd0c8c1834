// SPDX-License-Identifier: Apache-2.0
// What a cgroup v2 path says about the container a process runs in. Pure: text in, names out.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace portwatch {

struct Container {
    std::string runtime;  // "docker", "containerd", "cri-o", "podman" or "kubepods"
    std::string id;       // 64 lowercase hex digits

    bool operator==(const Container &) const = default;
};

// The container a cgroup path shows, if any, as the runtimes name their cgroups:
//   systemd driver   .../docker-<id>.scope, cri-containerd-<id>.scope, crio-<id>.scope,
//                    libpod-<id>.scope (the same names without .scope under cgroupfs)
//   cgroupfs driver  /docker/<id>; /kubepods/[<qos>/]pod<uid>/<id> ("kubepods": the path does
//                    not name the runtime)
// A runtime's helper cgroups (crio-conmon-<id>, libpod-conmon-<id>) are not containers. With
// containers nested (a container in a container), the innermost is the one.
std::optional<Container> container_of(std::string_view cgroup_path);

// The 12-digit form `docker ps` and `crictl ps` show.
std::string_view short_container_id(std::string_view id);

// The cgroup v2 path in the text of /proc/PID/cgroup (the "0::" line), if it has one.
std::optional<std::string> cgroup2_path_in(std::string_view proc_pid_cgroup);

// `absolute` (a path as readlink shows it) made relative to the cgroup2 mount at `mount`:
// "/" for the mount itself; std::nullopt when it is not under `mount`.
std::optional<std::string> path_under_mount(std::string_view absolute, std::string_view mount);

}  // namespace portwatch
