// SPDX-License-Identifier: Apache-2.0
// ctnetlink's messages (linux/netfilter/nfnetlink_conntrack.h), read with libmnl: a conntrack
// entry's source NAT mapping, and a CPU's conntrack statistics. Pure: bytes in, values out;
// every attribute is checked for its type and length (mnl_attr_validate()) before it is read.
#pragma once

#include <linux/netlink.h>

#include <cstdint>
#include <optional>

#include "base/result.h"
#include "events/nat_mapping.h"

namespace portwatch {

// What a conntrack message says of its entry, if it is one whose source was translated
// (IPS_SRC_NAT: masquerade, snat) and of TCP or UDP; std::nullopt for any other entry. A
// failure names what is malformed. `netns` is copied into the mapping.
Result<std::optional<NatMapping>> nat_mapping_of(const nlmsghdr *message, std::uint32_t netns);

// The counters of one CPU (one message of an IPCTNL_MSG_CT_GET_STATS_CPU dump) that say a
// new entry could not be inserted: for NAT, no free tuple was left (__nf_conntrack_confirm()).
struct ConntrackStats {
    std::uint64_t insert_failed = 0;
    std::uint64_t drop = 0;
    ConntrackStats &operator+=(const ConntrackStats &other) {
        insert_failed += other.insert_failed;
        drop += other.drop;
        return *this;
    }
};
Result<ConntrackStats> conntrack_stats_of(const nlmsghdr *message);

}  // namespace portwatch
