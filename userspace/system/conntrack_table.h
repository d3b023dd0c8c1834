// SPDX-License-Identifier: Apache-2.0
// A network namespace's conntrack table through ctnetlink (libmnl): its source NAT mappings,
// dumped whole or announced as conntrack adds and destroys them, and its statistics. Each
// socket is made inside the namespace (a netlink socket belongs to the namespace of the
// thread that creates it); the caller's thread stays in its own. Needs CAP_NET_ADMIN and,
// for another namespace, CAP_SYS_ADMIN (setns).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "base/result.h"
#include "base/unique_fd.h"
#include "events/nat_mapping.h"
#include "system/conntrack_message.h"

namespace portwatch {

// Whether the kernel has conntrack at all (built in or loaded): without it nothing is
// translated, and a ctnetlink request would load the module (and conntrack with it).
bool conntrack_loaded();

// Every source NAT mapping of the namespace `netns_fd` refers to; `netns` (its inode) is
// copied into each. A failure says briefly why.
Result<std::vector<NatMapping>> dump_nat_mappings(int netns_fd, std::uint32_t netns);

// The namespace's conntrack statistics, summed over its CPUs.
Result<ConntrackStats> read_conntrack_stats(int netns_fd);

// conntrack's NEW and DESTROY events of one namespace, for its source NAT mappings.
class ConntrackEvents {
  public:
    static Result<ConntrackEvents> open(int netns_fd, std::uint32_t netns);

    struct Pending {
        std::vector<std::pair<NatChange, NatMapping>> changes;
        // The socket's buffer overflowed (ENOBUFS): events were lost; dump the table again.
        bool overflowed = false;
        std::size_t malformed = 0;  // messages that could not be read, skipped
    };
    // What arrived since the last call, without waiting. A failure says why the socket
    // cannot be read any more.
    Result<Pending> take_pending();

    int fd() const { return fd_.get(); }
    std::uint32_t netns() const { return netns_; }

  private:
    ConntrackEvents(UniqueFd fd, std::uint32_t netns);

    UniqueFd fd_;
    std::uint32_t netns_;
    std::vector<char> buffer_;  // one datagram; kept: every watched netns is read every poll
};

}  // namespace portwatch
