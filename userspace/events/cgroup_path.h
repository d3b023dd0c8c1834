// SPDX-License-Identifier: Apache-2.0
// A process's cgroup v2 path and the container it shows, worked out once, when the path is
// set: what reads it afterwards (the model, every output line) reads the container and never
// parses the path again.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "events/containers.h"

namespace portwatch {

class CgroupPath {
  public:
    CgroupPath() = default;
    CgroupPath(std::string path);  // NOLINT: implicit, a path is a CgroupPath
    CgroupPath(const char *path) : CgroupPath(std::string(path)) {}       // NOLINT: as above
    CgroupPath(std::string_view path) : CgroupPath(std::string(path)) {}  // NOLINT: as above

    // Relative to the cgroup2 root ("/": the root), raw bytes; "" when unknown.
    const std::string &text() const { return path_; }
    operator const std::string &() const { return path_; }  // NOLINT: reads as the path
    bool empty() const { return path_.empty(); }
    // The container the path shows (container_of()), if any.
    const std::optional<Container> &container() const { return container_; }

    friend bool operator==(const CgroupPath &path, std::string_view text) {
        return path.path_ == text;
    }

  private:
    std::string path_;
    std::optional<Container> container_;
};

}  // namespace portwatch
