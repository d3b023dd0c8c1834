// SPDX-License-Identifier: Apache-2.0
// What portwatch reads from /proc and /sys as text, on any bytes: /proc/mounts, a
// /proc/PID/cgroup, a cgroup path (container names), and the net sysctls.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <sstream>
#include <string>

#include "events/containers.h"
#include "system/mounts.h"
#include "model/netns_ports.h"
#include "fuzz_input.h"

using namespace portwatch;

namespace {

bool lowercase_hex(std::string_view id) {
    return std::all_of(id.begin(), id.end(),
                       [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *data, std::size_t size) {
    fuzz::FuzzInput input(data, size);
    std::istringstream mounts{std::string(input.text())};
    if (auto mount = find_cgroup2_mount(mounts)) fuzz::require(!mount->empty());

    std::string_view proc_cgroup = input.text();
    if (auto path = cgroup2_path_in(proc_cgroup)) {
        if (auto container = container_of(*path)) {
            fuzz::require(container->id.size() == 64 && lowercase_hex(container->id));
            fuzz::require(short_container_id(container->id).size() == 12);
        }
        if (auto relative = path_under_mount(*path, input.text()))
            fuzz::require(!relative->empty() && relative->front() == '/');
    }

    if (auto range = parse_port_range(input.text())) fuzz::require(range->low <= range->high);
    if (auto reserved = parse_reserved_ports(input.text()))
        fuzz::require(std::adjacent_find(reserved->begin(), reserved->end(),
                                         std::greater_equal<>()) == reserved->end());
    if (auto reuse = parse_tw_reuse(input.text())) fuzz::require(*reuse >= 0 && *reuse <= 2);
    return 0;
}
