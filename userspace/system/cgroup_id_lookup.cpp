// SPDX-License-Identifier: Apache-2.0
#include "system/cgroup_id_lookup.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstring>
#include <fstream>

#include "events/containers.h"
#include "enrich/enricher.h"
#include "system/mounts.h"

namespace portwatch {
namespace {

// include/linux/exportfs.h: the handle type kernfs (and so cgroup2) exports, its 8 bytes the
// node's 64-bit id, which is also the cgroup id.
constexpr int kFileIdKernfs = 0xfe;
constexpr int kMaxSearchDepth = 64;  // deeper than any real cgroup tree; bounds the open fds

std::optional<std::uint64_t> inode_at(const std::string &path) {
    struct stat st {};
    if (stat(path.c_str(), &st) != 0) return std::nullopt;
    return st.st_ino;
}

std::optional<std::string> fd_target(int fd) {
    std::string link = "/proc/self/fd/" + std::to_string(fd);
    std::string target(PATH_MAX, '\0');
    ssize_t length = readlink(link.c_str(), target.data(), target.size());
    if (length <= 0 || static_cast<std::size_t>(length) >= target.size()) return std::nullopt;
    target.resize(length);
    return target;
}

// Depth first through the directories under `directory_fd` (the cgroup at `path`).
std::optional<std::string> search_below(int directory_fd, const std::string &path,
                                        std::uint64_t cgroup_id, int depth) {
    if (depth > kMaxSearchDepth) return std::nullopt;
    DIR *directory = fdopendir(directory_fd);
    if (!directory) {
        close(directory_fd);
        return std::nullopt;
    }
    std::optional<std::string> found;
    while (dirent *entry = readdir(directory)) {
        std::string_view name = entry->d_name;
        if (entry->d_type != DT_DIR || name == "." || name == "..") continue;
        std::string child = (path == "/" ? "" : path) + "/" + entry->d_name;
        if (entry->d_ino == cgroup_id) {  // kernfs gives each entry its node id as d_ino
            found = child;
            break;
        }
        int child_fd = openat(dirfd(directory), entry->d_name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (child_fd >= 0) found = search_below(child_fd, child, cgroup_id, depth + 1);
        if (found) break;
    }
    closedir(directory);
    return found;
}

}  // namespace

std::optional<std::string> read_cgroup2_mount() {
    std::ifstream mounts("/proc/mounts");
    return find_cgroup2_mount(mounts);
}

std::uint64_t cgroup_id_at(const std::string &mount, const std::string &path) {
    return inode_at(mount + (path == "/" ? "" : path)).value_or(0);
}

CgroupIdLookup::CgroupIdLookup(std::optional<std::string> mount, std::size_t max_cached)
    : mount_(mount.value_or("")), cache_(max_cached) {
    if (mount) mount_fd_ = open(mount->c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
}

CgroupIdLookup::~CgroupIdLookup() {
    if (mount_fd_ >= 0) close(mount_fd_);
}

std::string CgroupIdLookup::path_of(std::uint64_t cgroup_id) {
    if (cgroup_id == 0 || mount_fd_ < 0) return "";
    if (const std::string *known = cache_.find(cgroup_id)) return *known;
    std::string path = resolve(cgroup_id);
    cache_.put(cgroup_id, path);
    return path;
}

void CgroupIdLookup::annotate(Event &event) {
    fill_cgroup_paths(event, [this](std::uint64_t cgroup_id) { return path_of(cgroup_id); });
}

std::string CgroupIdLookup::resolve(std::uint64_t cgroup_id) {
    std::string path;
    if (handles_work_) {
        Lookup lookup = by_handle(cgroup_id, path);
        if (lookup != Lookup::unsupported) return path;
        handles_work_ = false;  // EPERM or EOPNOTSUPP will not change: search from now on
    }
    return by_search(cgroup_id).value_or("");
}

CgroupIdLookup::Lookup CgroupIdLookup::by_handle(std::uint64_t cgroup_id, std::string &path) const {
    alignas(file_handle) unsigned char buffer[sizeof(file_handle) + sizeof(cgroup_id)] = {};
    auto *handle = reinterpret_cast<file_handle *>(buffer);
    handle->handle_bytes = sizeof(cgroup_id);
    handle->handle_type = kFileIdKernfs;
    std::memcpy(handle->f_handle, &cgroup_id, sizeof(cgroup_id));
    int fd = open_by_handle_at(mount_fd_, handle, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return errno == ESTALE || errno == ENOENT ? Lookup::gone : Lookup::unsupported;
    std::optional<std::string> target = fd_target(fd);
    close(fd);
    std::optional<std::string> relative;
    if (target) relative = relative_if_same(*target, cgroup_id);
    if (!relative) return Lookup::gone;
    path = std::move(*relative);
    return Lookup::found;
}

std::optional<std::string> CgroupIdLookup::by_search(std::uint64_t cgroup_id) const {
    if (inode_at(mount_) == cgroup_id) return "/";
    int root = openat(mount_fd_, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (root < 0) return std::nullopt;
    return search_below(root, "/", cgroup_id, 0);
}

// The cgroup may have gone between opening and reading the link ("... (deleted)"): the path is
// taken only if it still leads to the same cgroup.
std::optional<std::string> CgroupIdLookup::relative_if_same(const std::string &absolute,
                                                         std::uint64_t cgroup_id) const {
    if (inode_at(absolute) != cgroup_id) return std::nullopt;
    return path_under_mount(absolute, mount_);
}

}  // namespace portwatch
