// SPDX-License-Identifier: Apache-2.0
#include "events/cgroup_path.h"

#include <utility>

namespace portwatch {

CgroupPath::CgroupPath(std::string path)
    : path_(std::move(path)), container_(container_of(path_)) {}

}  // namespace portwatch
