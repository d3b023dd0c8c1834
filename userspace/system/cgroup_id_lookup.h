// SPDX-License-Identifier: Apache-2.0
// Cgroup v2 ids (what bpf_get_current_cgroup_id() gives: the inode number of the cgroup's
// directory on the cgroup2 file system) back to cgroup paths.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

#include "events/event.h"
#include "base/lru_cache.h"

namespace portwatch {

// Where cgroup2 is mounted, from /proc/mounts (hosts differ: /sys/fs/cgroup, or
// /sys/fs/cgroup/unified in the hybrid layout); std::nullopt if it is not.
std::optional<std::string> read_cgroup2_mount();

// The id of the cgroup at `path` (relative to the cgroup2 root) under `mount`; 0 if unknown.
std::uint64_t cgroup_id_at(const std::string &mount, const std::string &path);

// The paths are those of the caller's cgroup namespace (the host's, for a node agent).
// Needs CAP_DAC_READ_SEARCH for the fast way (open_by_handle_at); without it, or where the
// kernel refuses cgroup file handles, the cgroup2 tree is searched instead.
// Not thread-safe.
class CgroupIdLookup {
  public:
    static constexpr std::size_t kDefaultMaxCached = 4096;

    // Resolves under the cgroup2 file system mounted at `mount`; with none, nothing resolves.
    explicit CgroupIdLookup(std::optional<std::string> mount,
                         std::size_t max_cached = kDefaultMaxCached);
    ~CgroupIdLookup();
    CgroupIdLookup(const CgroupIdLookup &) = delete;
    CgroupIdLookup &operator=(const CgroupIdLookup &) = delete;

    // The path of the cgroup `cgroup_id` relative to the cgroup2 root, "/" for the root; ""
    // when unknown: id 0, the cgroup is gone, or there is no cgroup2 mount. Answers (misses
    // included) are cached: cgroup v2 never renames a cgroup nor reuses an id.
    std::string path_of(std::uint64_t cgroup_id);
    // Fills in the cgroup_path of the event's process (an allocation's, a known owner's).
    void annotate(Event &event);

    std::size_t cached() const { return cache_.size(); }

  private:
    enum class Lookup { found, gone, unsupported };

    std::string resolve(std::uint64_t cgroup_id);
    Lookup by_handle(std::uint64_t cgroup_id, std::string &path) const;
    std::optional<std::string> by_search(std::uint64_t cgroup_id) const;
    std::optional<std::string> relative_if_same(const std::string &absolute,
                                                std::uint64_t cgroup_id) const;

    std::string mount_;
    int mount_fd_ = -1;
    bool handles_work_ = true;
    LruCache<std::uint64_t, std::string> cache_;
};

}  // namespace portwatch
