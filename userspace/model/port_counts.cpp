// SPDX-License-Identifier: Apache-2.0
#include "model/netns_state.h"

#include <algorithm>

namespace portwatch {

void PortCounts::add(std::uint16_t port, int delta, const NetnsPortConfig &config) {
    std::uint32_t &count = holders[port];
    bool was_held = count > 0;
    count = delta > 0 ? count + 1 : (count > 0 ? count - 1 : 0);
    bool is_held = count > 0;
    if (!is_held) holders.erase(port);
    if (was_held != is_held && config.is_ephemeral(port)) ephemeral += is_held ? 1 : -1;
}

void PortCounts::recount(const NetnsPortConfig &config) {
    ephemeral = std::count_if(holders.begin(), holders.end(),
                              [&](const auto &entry) { return config.is_ephemeral(entry.first); });
}

}  // namespace portwatch
