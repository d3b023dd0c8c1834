// SPDX-License-Identifier: Apache-2.0
// The TIME_WAIT sockets the model counts, by due time, with their cookies. PortModel's own:
// it counts the ports they hold (time_wait.cpp).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>

#include <absl/container/flat_hash_set.h>

#include "model/cookie_sets.h"
#include "model/held_socket.h"

namespace portwatch {

class TimeWaitTable {
  public:
    void add(const TimeWaitEntry &entry);
    bool contains(std::uint64_t cookie) const { return cookies_.contains(cookie); }
    // The first entry due by `now_ns`, taken out; none when none is due.
    std::optional<TimeWaitEntry> take_due(std::uint64_t now_ns);
    // The cookies of the netns's entries added before `settled_before`.
    CookieSet added_before(std::uint32_t netns, std::uint64_t settled_before) const;
    // Takes out the netns's entries that the tables read now replace: every one an earlier
    // reading made, and those events added before `settled_before`; tells `removed` of each,
    // and returns the cookies of the ones kept (events the tables may not show yet).
    CookieSet take_replaced(std::uint32_t netns, std::uint64_t settled_before,
                            const std::function<void(const TimeWaitEntry &)> &removed);
    // Gives a storm's memory back once it is over.
    void shrink_if_mostly_empty();

  private:
    std::multimap<std::uint64_t, TimeWaitEntry> by_expiry_;
    absl::flat_hash_set<std::uint64_t> cookies_;  // the cookies in by_expiry_
};

}  // namespace portwatch
