// SPDX-License-Identifier: Apache-2.0
#include "system/container_cgroups.h"

#include <algorithm>
#include <filesystem>
#include <optional>
#include <set>
#include <system_error>

#include "events/containers.h"
#include "system/cgroup_dir.h"

namespace portwatch {

ContainersMatching containers_matching(const std::vector<std::string> &paths,
                                       std::string_view prefix) {
    std::set<std::string> ids;
    std::vector<std::string> matched;
    for (const std::string &path : paths) {
        std::optional<Container> container = container_of(path);
        if (!container || !container->id.starts_with(prefix)) continue;
        ids.insert(container->id);
        matched.push_back(path);
    }
    std::sort(matched.begin(), matched.end());
    ContainersMatching result{{ids.begin(), ids.end()}, {}};
    for (const std::string &path : matched)
        if (result.paths.empty() || !cgroup_is_within(path, result.paths.back()))
            result.paths.push_back(path);
    return result;
}

Result<std::vector<std::string>> cgroup_paths_under(const std::string &mount) {
    namespace fs = std::filesystem;
    std::error_code error;
    fs::recursive_directory_iterator walk(mount, fs::directory_options::skip_permission_denied,
                                          error);
    std::vector<std::string> paths;
    for (; !error && walk != fs::recursive_directory_iterator(); walk.increment(error)) {
        // a cgroup's files are not cgroups; a cgroup removed meanwhile is skipped
        std::error_code kind;
        if (!walk->is_directory(kind) || walk->is_symlink(kind)) {
            walk.disable_recursion_pending();
            continue;
        }
        std::optional<std::string> path = path_under_mount(walk->path().string(), mount);
        if (path) paths.push_back(*path);
    }
    if (error) return Failure{"cannot read the cgroup tree at " + mount + ": " + error.message()};
    return paths;
}

}  // namespace portwatch
