// SPDX-License-Identifier: Apache-2.0
#include "app/container_filter.h"

#include <cstdio>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

#include "system/container_cgroups.h"
#include "system/mounts.h"

namespace portwatch {
namespace {

std::string joined(const std::vector<std::string> &ids) {
    std::string text;
    for (const std::string &id : ids) text += (text.empty() ? "" : " and ") + id;
    return text;
}

}  // namespace

int resolve_containers(Filters &filters) {
    if (filters.containers.empty()) return 0;
    std::ifstream proc_mounts("/proc/mounts");
    std::optional<std::string> mount = find_cgroup2_mount(proc_mounts);
    if (!mount) {
        std::fprintf(stderr,
                     "portwatch: --container: no cgroup v2 file system is mounted "
                     "(no cgroup2 in /proc/mounts)\n");
        return 1;
    }
    Result<std::vector<std::string>> paths = cgroup_paths_under(*mount);
    if (!paths) {
        std::fprintf(stderr, "portwatch: --container: %s\n", paths.error().c_str());
        return 1;
    }
    for (const std::string &prefix : filters.containers) {
        ContainersMatching found = containers_matching(*paths, prefix);
        if (found.ids.empty()) {
            std::fprintf(stderr,
                         "portwatch: --container %s: no container's cgroup under %s has an id "
                         "starting with it\n",
                         prefix.c_str(), mount->c_str());
            return 1;
        }
        if (found.ids.size() > 1) {
            std::fprintf(
                stderr,
                "portwatch: --container %s is ambiguous: it starts the ids of %s (give more "
                "digits)\n",
                prefix.c_str(), joined(found.ids).c_str());
            return 2;
        }
        filters.container_cgroups.insert(filters.container_cgroups.end(), found.paths.begin(),
                                         found.paths.end());
    }
    return 0;
}

}  // namespace portwatch
