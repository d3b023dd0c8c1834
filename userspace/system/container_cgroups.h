// SPDX-License-Identifier: Apache-2.0
// --container: the cgroups of the container whose id starts with what the user typed, found by
// walking the cgroup2 mount and reading each directory's path as the runtimes name them
// (container_of()).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"

namespace portwatch {

// The containers a prefix of an id names, and their cgroups.
struct ContainersMatching {
    std::vector<std::string> ids;    // each distinct id found, sorted
    std::vector<std::string> paths;  // their topmost cgroups (none below another), sorted
};

// Pure: of `paths` (cgroup v2 paths from the root), those whose container's id starts with
// `prefix`, keeping only the topmost of each (a container's sub-cgroups are below it, and the
// in-kernel filter takes descendants anyway).
ContainersMatching containers_matching(const std::vector<std::string> &paths,
                                       std::string_view prefix);

// Every cgroup below the cgroup2 mount at `mount`, as paths from its root ("/a/b").
Result<std::vector<std::string>> cgroup_paths_under(const std::string &mount);

}  // namespace portwatch
