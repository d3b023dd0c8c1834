#include "mounts.h"

#include <sstream>

namespace portwatch {

std::optional<std::string> find_cgroup2_mount(std::istream &proc_mounts) {
    std::string line;
    while (std::getline(proc_mounts, line)) {
        std::istringstream fields(line);
        std::string source, target, fstype;
        if (fields >> source >> target >> fstype && fstype == "cgroup2") return target;
    }
    return std::nullopt;
}

}  // namespace portwatch
