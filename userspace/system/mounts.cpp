// SPDX-License-Identifier: Apache-2.0
#include "system/mounts.h"

#include <sstream>

namespace portwatch {
namespace {

// /proc/mounts writes space, tab, newline and backslash as \NNN octal (fs/proc_namespace.c,
// mangle()).
std::string unescape_mount_field(const std::string &field) {
    std::string out;
    for (std::size_t i = 0; i < field.size(); i++) {
        auto is_octal = [&](std::size_t k) { return field[k] >= '0' && field[k] <= '7'; };
        if (field[i] == '\\' && i + 3 < field.size() && is_octal(i + 1) && is_octal(i + 2) &&
            is_octal(i + 3)) {
            out += static_cast<char>(std::stoi(field.substr(i + 1, 3), nullptr, 8));
            i += 3;
        } else {
            out += field[i];
        }
    }
    return out;
}

}  // namespace

std::optional<std::string> find_cgroup2_mount(std::istream &proc_mounts) {
    std::string line;
    while (std::getline(proc_mounts, line)) {
        std::istringstream fields(line);
        std::string source, target, fstype;
        if (fields >> source >> target >> fstype && fstype == "cgroup2")
            return unescape_mount_field(target);
    }
    return std::nullopt;
}

}  // namespace portwatch
