// SPDX-License-Identifier: Apache-2.0
// TIME_WAIT: a closed TCP socket keeps its port until its timer fires; the model keeps an
// entry per such socket (TimeWaitTable), from a release event or from the socket tables,
// until then, and counts its port meanwhile.
#include "model/port_model.h"

namespace portwatch {

// The TIME_WAIT socket holds the port on (in the bind table too), until it expires.
void PortModel::add_time_wait(const ScopeKey &scope, Proto proto, std::uint16_t port,
                              std::uint64_t cookie, std::uint64_t added_ns,
                              std::uint64_t expires_ns, bool from_table) {
    scope_state(scope, proto).time_wait++;
    NetnsState &ns = netns_state(scope.netns, 0);
    ns.tcp_time_wait.add(port, +1, ns.config);
    time_wait_.add(TimeWaitEntry{expires_ns, scope, port, cookie, added_ns, from_table});
}

// Undoes add_time_wait()'s counts and frees the port the entry held.
void PortModel::release_time_wait_port(const TimeWaitEntry &entry) {
    ScopeState &state = scopes_[entry.scope];
    if (state.time_wait) state.time_wait--;
    NetnsState &ns = netns_[entry.scope.netns];
    ns.tcp_time_wait.add(entry.port, -1, ns.config);
    ns.hold_port(entry.scope.kind, state.proto, entry.port, -1);
}

void PortModel::expire_time_wait(std::uint64_t now_ns, std::vector<Warning> &warnings) {
    while (std::optional<TimeWaitEntry> entry = time_wait_.take_due(now_ns)) {
        release_time_wait_port(*entry);
        ScopeState &state = scopes_[entry->scope];
        record_sample(state, entry->scope, entry->expires_ns);
        if (auto warning = evaluate(entry->scope, state, entry->expires_ns))
            warnings.push_back(*warning);
        evaluate_bind_scope(entry->scope, state.proto, entry->expires_ns, warnings);
    }
}

CookieSet PortModel::drop_time_wait_of(std::uint32_t netns, std::uint64_t settled_before) {
    return time_wait_.take_replaced(netns, settled_before, [this](const TimeWaitEntry &entry) {
        release_time_wait_port(entry);
    });
}

}  // namespace portwatch
