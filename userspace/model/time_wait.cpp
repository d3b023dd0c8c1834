// SPDX-License-Identifier: Apache-2.0
// TIME_WAIT: a closed TCP socket keeps its port until its timer fires; the model keeps an
// entry per such socket, from a release event or from the socket tables, until then.
#include "model/port_model.h"

namespace portwatch {

// The TIME_WAIT socket holds the port on (in the bind table too), until it expires.
void PortModel::add_time_wait(const ScopeKey &scope, Proto proto, std::uint16_t port,
                              std::uint64_t cookie, std::uint64_t added_ns,
                              std::uint64_t expires_ns, bool from_table) {
    scope_state(scope, proto).time_wait++;
    NetnsState &ns = netns_state(scope.netns, 0);
    ns.tcp_time_wait.add(port, +1, ns.config);
    time_wait_.emplace(expires_ns,
                       TimeWaitEntry{expires_ns, scope, port, cookie, added_ns, from_table});
    time_wait_cookies_.insert(cookie);
}

// Undoes add_time_wait() and frees the port the entry held.
void PortModel::remove_time_wait(const TimeWaitEntry &entry) {
    ScopeState &state = scopes_[entry.scope];
    if (state.time_wait) state.time_wait--;
    NetnsState &ns = netns_[entry.scope.netns];
    ns.tcp_time_wait.add(entry.port, -1, ns.config);
    hold_port(ns, entry.scope.kind, state.proto, entry.port, -1);
    time_wait_cookies_.erase(entry.cookie);
}

void PortModel::expire_time_wait(std::uint64_t now_ns, std::vector<Warning> &warnings) {
    while (!time_wait_.empty() && time_wait_.begin()->first <= now_ns) {
        TimeWaitEntry entry = time_wait_.begin()->second;
        time_wait_.erase(time_wait_.begin());
        remove_time_wait(entry);
        ScopeState &state = scopes_[entry.scope];
        record_sample(state, entry.scope, entry.expires_ns);
        if (auto warning = evaluate(entry.scope, state, entry.expires_ns))
            warnings.push_back(*warning);
        evaluate_bind_scope(entry.scope, state.proto, entry.expires_ns, warnings);
    }
}

CookieSet PortModel::time_wait_before(std::uint32_t netns, std::uint64_t settled_before) const {
    CookieSet cookies;
    for (const auto &[expiry, entry] : time_wait_)
        if (entry.scope.netns == netns && entry.added_ns < settled_before)
            cookies.insert(entry.cookie);
    return cookies;
}

CookieSet PortModel::drop_time_wait_of(std::uint32_t netns, std::uint64_t settled_before) {
    CookieSet kept;
    for (auto it = time_wait_.begin(); it != time_wait_.end();) {
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
        remove_time_wait(entry);
        it = time_wait_.erase(it);
    }
    return kept;
}

}  // namespace portwatch
