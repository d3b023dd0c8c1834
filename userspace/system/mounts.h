// SPDX-License-Identifier: Apache-2.0
// Reading /proc/mounts-formatted text: where cgroup v2 is mounted. The layout
// differs between hosts (unified, hybrid at /sys/fs/cgroup/unified, ...).
#pragma once

#include <istream>
#include <optional>
#include <string>

namespace portwatch {

std::optional<std::string> find_cgroup2_mount(std::istream &proc_mounts);

}  // namespace portwatch
