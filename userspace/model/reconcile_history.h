// SPDX-License-Identifier: Apache-2.0
// What reconciliation passes remember between them: per netns, the sockets the last pass
// dropped as gone or left out for want of an owner, and whether a pass ran yet; and the
// releases the events showed lately. With them a pass tells a socket gone, or one whose
// call is still running, from one that a dump missed or an event released meanwhile.
// PortModel's own.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <utility>
#include <vector>

#include <absl/container/flat_hash_map.h>
#include <absl/container/flat_hash_set.h>

#include "events/event.h"
#include "events/kernel_socket.h"
#include "model/cookie_sets.h"

namespace portwatch {

class ReconcileHistory {
  public:
    // What the netns's earlier passes tell this one (begin_pass()).
    struct PassStart {
        bool first = false;
        // the cookies the previous pass left out with no owner, or dropped as gone
        CookieSet known_before;
    };

    // Releases
    void note_release(std::uint64_t cookie, std::uint64_t boot_ns);
    void forget_releases_before(std::uint64_t settled_before);
    // The recent releases' cookies, at least those of the rows `model_holds` does not name.
    CookieSet released_cookies_for(
        const std::deque<KernelSocket> &rows,
        const std::function<bool(std::uint64_t cookie)> &model_holds) const;

    // Passes. Once a pass, with the cookies its table lists, before any note_dropped():
    // the cookies the previous pass dropped as gone that `live` does not list either go to
    // take_gone_cookies().
    PassStart begin_pass(std::uint32_t netns, const SortedCookies &live);
    // The pass dropped the socket as gone: the next pass confirms it, or takes it back.
    void note_dropped(std::uint32_t netns, std::uint64_t cookie);
    bool missed_once(const SocketInfo &sock) const;
    std::vector<std::uint64_t> take_gone_cookies() { return std::exchange(gone_cookies_, {}); }
    // A live row with no owner, unknown to the model, that the netns's previous pass did not
    // list: noted, and left for the next pass.
    bool owner_may_be_in_flight(std::uint32_t netns, const KernelSocket &socket,
                                const PassStart &pass);

  private:
    struct RecentRelease {
        std::uint64_t cookie;
        std::uint64_t boot_ns;
    };

    // Releases of the last reconcile_grace_ns, in the order their events came (near enough
    // their times'): appended per release, a sequential write where a hash table's insert
    // missed the cache on every connection of a storm (perf: ~10 % of the monitor's CPU).
    // Only a pass asks, once a table (released_cookies_for()).
    std::deque<RecentRelease> recently_released_;
    // By netns: the cookies its last pass dropped as gone. A dump can miss a live socket: a
    // netlink dump resumes a hash chain by position (udp_dump(), inet_diag_dump_icsk()), and
    // a socket closed before that position meanwhile shifts the next one past it. The model
    // takes such a socket back at the next pass; held_ports, once it is deleted there, would
    // never report its release. So a cookie leaves held_ports only once two passes missed it.
    absl::flat_hash_map<std::uint32_t, CookieSet> missing_once_;
    // A row with no owner that no event showed may be a socket whose call is still running:
    // the kernel hashes a port before the syscall returns (and the record is sent), and /proc
    // was read before the table. After a netns's first pass, such a row is taken only when
    // the next pass lists it again (and no event named it meanwhile).
    absl::flat_hash_map<std::uint32_t, CookieSet> unowned_once_;
    absl::flat_hash_set<std::uint32_t> tables_read_;
    std::vector<std::uint64_t> gone_cookies_;  // until take_gone_cookies()
};

}  // namespace portwatch
