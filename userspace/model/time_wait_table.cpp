// SPDX-License-Identifier: Apache-2.0
#include "model/time_wait_table.h"

namespace portwatch {

void TimeWaitTable::add(const TimeWaitEntry &entry) {
    by_expiry_.emplace(entry.expires_ns, entry);
    cookies_.insert(entry.cookie);
}

std::optional<TimeWaitEntry> TimeWaitTable::take_due(std::uint64_t now_ns) {
    if (by_expiry_.empty() || by_expiry_.begin()->first > now_ns) return std::nullopt;
    TimeWaitEntry entry = by_expiry_.begin()->second;
    by_expiry_.erase(by_expiry_.begin());
    cookies_.erase(entry.cookie);
    return entry;
}

CookieSet TimeWaitTable::added_before(std::uint32_t netns, std::uint64_t settled_before) const {
    CookieSet cookies;
    for (const auto &[expiry, entry] : by_expiry_)
        if (entry.scope.netns == netns && entry.added_ns < settled_before)
            cookies.insert(entry.cookie);
    return cookies;
}

CookieSet TimeWaitTable::take_replaced(std::uint32_t netns, std::uint64_t settled_before,
                                       const std::function<void(const TimeWaitEntry &)> &removed) {
    CookieSet kept;
    for (auto it = by_expiry_.begin(); it != by_expiry_.end();) {
        const TimeWaitEntry &entry = it->second;
        if (entry.scope.netns != netns) {
            ++it;
            continue;
        }
        // An earlier reading's entry is never kept: this reading says whether the socket is
        // still there (kept, it could expire by its old due time while the table shows it).
        if (entry.added_ns >= settled_before && !entry.from_table) {
            kept.insert(entry.cookie);
            ++it;
            continue;
        }
        removed(entry);
        cookies_.erase(entry.cookie);
        it = by_expiry_.erase(it);
    }
    return kept;
}

void TimeWaitTable::shrink_if_mostly_empty() {
    portwatch::shrink_if_mostly_empty(cookies_);
}

}  // namespace portwatch
