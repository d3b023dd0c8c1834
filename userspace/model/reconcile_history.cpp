// SPDX-License-Identifier: Apache-2.0
#include "model/reconcile_history.h"

namespace portwatch {

void ReconcileHistory::note_release(std::uint64_t cookie, std::uint64_t boot_ns) {
    recently_released_.push_back({cookie, boot_ns});
}

void ReconcileHistory::forget_releases_before(std::uint64_t settled_before) {
    while (!recently_released_.empty() && recently_released_.front().boot_ns < settled_before)
        recently_released_.pop_front();
}

// Built from the smaller of the two.
CookieSet ReconcileHistory::released_cookies_for(
    const std::deque<KernelSocket> &rows,
    const std::function<bool(std::uint64_t cookie)> &model_holds) const {
    CookieSet released;
    if (recently_released_.size() <= rows.size()) {
        for (const RecentRelease &release : recently_released_) released.insert(release.cookie);
        return released;
    }
    CookieSet unknown;
    for (const auto &socket : rows)
        if (!model_holds(socket.sock.cookie)) unknown.insert(socket.sock.cookie);
    for (const RecentRelease &release : recently_released_)
        if (unknown.contains(release.cookie)) released.insert(release.cookie);
    return released;
}

ReconcileHistory::PassStart ReconcileHistory::begin_pass(std::uint32_t netns,
                                                         const SortedCookies &live) {
    PassStart pass;
    // a row of one of these now is no call in flight
    pass.known_before = std::exchange(unowned_once_[netns], {});
    auto missing = missing_once_.find(netns);
    if (missing != missing_once_.end()) {
        pass.known_before.insert(missing->second.begin(), missing->second.end());
        for (std::uint64_t cookie : missing->second)
            if (!live.contains(cookie)) gone_cookies_.push_back(cookie);
        missing_once_.erase(missing);
    }
    pass.first = tables_read_.insert(netns).second;
    return pass;
}

void ReconcileHistory::note_dropped(std::uint32_t netns, std::uint64_t cookie) {
    missing_once_[netns].insert(cookie);
}

bool ReconcileHistory::missed_once(const SocketInfo &sock) const {
    auto missing = missing_once_.find(sock.netns);
    return missing != missing_once_.end() && missing->second.contains(sock.cookie);
}

bool ReconcileHistory::owner_may_be_in_flight(std::uint32_t netns, const KernelSocket &socket,
                                              const PassStart &pass) {
    if (pass.first || socket.owner || socket.state == kTcpTimeWait) return false;
    if (pass.known_before.contains(socket.sock.cookie)) return false;
    unowned_once_[netns].insert(socket.sock.cookie);
    return true;
}

}  // namespace portwatch
