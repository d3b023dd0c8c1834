// SPDX-License-Identifier: Apache-2.0
#include "model/port_model.h"

#include <algorithm>
#include <utility>
#include <variant>

namespace portwatch {
namespace {

// The errors the product table names for a full range; anything else (ENETUNREACH, EACCES
// from a cgroup hook, EINVAL...) is a failure of that process, not of the range.
bool is_exhaustion(const AllocateEvent &event) {
    constexpr int kEaddrinuse = 98, kEaddrnotavail = 99, kEagain = 11;
    if (event.sock.proto == Proto::udp) return event.error == kEagain || event.error == kEaddrinuse;
    if (event.how == How::connect_autobind || event.how == How::sendto_autobind)
        return event.error == kEaddrnotavail;
    return event.error == kEaddrinuse;
}

}  // namespace

PortModel::PortModel(ModelSettings settings, ConfigSource config_source)
    : settings_(settings), config_source_(std::move(config_source)) {}

PortModel::ConfigSource PortModel::fixed_range(PortRange range) {
    return [range](std::uint32_t, std::uint32_t) {
        NetnsPortConfig config;
        config.range = range;
        return config;
    };
}

std::vector<Warning> PortModel::apply(const Event &event) {
    std::uint64_t now = std::visit([](const auto &e) { return e.boot_ns; }, event);
    if (!interval_started_) {
        interval_start_ns_ = now;
        interval_started_ = true;
    }
    std::vector<Warning> warnings;
    expire_time_wait(now, warnings);
    housekeeping(now);
    std::vector<Warning> more;
    if (const auto *allocation = std::get_if<AllocateEvent>(&event))
        more = allocation->failed() ? on_failure(*allocation) : on_allocate(*allocation);
    else
        more = on_release(std::get<ReleaseEvent>(event));
    warnings.insert(warnings.end(), more.begin(), more.end());
    return warnings;
}

NetnsState &PortModel::netns_state(std::uint32_t netns, std::uint32_t pid_hint) {
    auto found = netns_.find(netns);
    if (found != netns_.end()) return found->second;
    NetnsState &state = netns_[netns];
    state.config = config_source_(netns, pid_hint);
    return state;
}

ScopeState &PortModel::scope_state(const ScopeKey &key, Proto proto) {
    ScopeState &state = scopes_[key];
    state.proto = proto;
    return state;
}

void PortModel::hold(const HeldSocket &held, const TaskInfo &owner) {
    ScopeKey scope = held.scope();
    hold(held, scope.kind, scope_state(scope, held.sock.proto), owner);
}

void PortModel::hold(const HeldSocket &held, ScopeKind kind, ScopeState &state,
                     const TaskInfo &owner) {
    NetnsState &ns = netns_state(held.sock.netns, held.pid);
    state.held++;
    state.held_by_pid[held.pid]++;
    processes_.note(owner, held.sock.netns);
    processes_.count_port(held, +1);
    ns.hold_port(kind, held.sock.proto, held.sock.local_port, +1);
    sockets_[held.sock.cookie] = held;
    nat_clients_.add(held);
}

// Undoes hold() except for the port itself, which a TIME_WAIT socket may keep.
void PortModel::forget(const HeldSocket &held) {
    forget(held, scope_state(held.scope(), held.sock.proto));
}

void PortModel::forget(const HeldSocket &held, ScopeState &state) {
    if (state.held) state.held--;
    if (auto pid = state.held_by_pid.find(held.pid); pid != state.held_by_pid.end())
        if (--pid->second == 0) state.held_by_pid.erase(pid);
    processes_.count_port(held, -1);
    nat_clients_.remove(held);
}

// A socket the tables showed before its allocation event was read: the event knows better
// who and how.
void PortModel::drop_table_entry(std::uint64_t cookie, std::uint32_t netns) {
    auto known = sockets_.find(cookie);
    if (known == sockets_.end() || !known->second.from_table) return;
    forget(known->second);
    netns_state(netns, 0).hold_port(known->second.scope_kind(), known->second.sock.proto,
                                    known->second.sock.local_port, -1);
    sockets_.erase(known);
}

std::vector<Warning> PortModel::on_allocate(const AllocateEvent &event) {
    std::vector<Warning> warnings;
    netns_state(event.sock.netns, event.task.pid);
    ScopeKey key = scope_of(event.sock, event.how);
    ScopeState &state = scope_state(key, event.sock.proto);
    ProcessUsage &usage = processes_.note(event.task, event.sock.netns);
    usage.allocations++;
    usage.last_active_ns = event.boot_ns;
    // Without a cookie its release cannot be matched: counted as an allocation, not as held.
    std::uint64_t cookie = event.sock.cookie;
    drop_table_entry(cookie, event.sock.netns);
    if (cookie != 0 && !sockets_.contains(cookie))
        hold({event.sock, event.how, event.task.pid, event.boot_ns}, key.kind, state, event.task);
    count_allocation(state, event.boot_ns);
    record_sample(state, key, event.boot_ns);
    if (auto warning = evaluate(key, state, event.boot_ns)) warnings.push_back(*warning);
    evaluate_bind_scope(key, event.sock.proto, event.boot_ns, warnings);
    return warnings;
}

std::vector<Warning> PortModel::on_failure(const AllocateEvent &event) {
    netns_state(event.sock.netns, event.task.pid);
    ProcessUsage &usage = processes_.note(event.task, event.sock.netns);
    usage.failures++;
    usage.last_active_ns = event.boot_ns;
    auto key = failure_scope(event);
    if (!key || !is_exhaustion(event)) return {};
    if (!scopes_.contains(*key)) {
        // no allocation towards it was ever seen: warn, but keep no scope that nothing
        // would ever bring back to ok
        ScopeState passing;
        passing.proto = event.sock.proto;
        passing.level = WarningLevel::critical;
        return {Warning{event.boot_ns, WarningLevel::critical,
                        usage_with_causes(*key, passing, event.boot_ns), event}};
    }
    ScopeState &state = scope_state(*key, event.sock.proto);
    bool already = state.level == WarningLevel::critical && state.failure_reported;
    state.level = WarningLevel::critical;
    if (already) return {};
    state.failure_reported = true;
    return {Warning{event.boot_ns, WarningLevel::critical,
                    usage_with_causes(*key, state, event.boot_ns), event}};
}

std::vector<Warning> PortModel::on_release(const ReleaseEvent &event) {
    std::vector<Warning> warnings;
    history_.note_release(event.sock.cookie, event.boot_ns);
    // twice the grace: a pass applies events newer than the table it then reconciles
    std::uint64_t kept_ns = 2 * settings_.reconcile_grace_ns;
    history_.forget_releases_before(event.boot_ns - std::min(event.boot_ns, kept_ns));
    auto found = sockets_.find(event.sock.cookie);
    if (found == sockets_.end()) return warnings;  // allocated before we saw it
    HeldSocket held = found->second;
    sockets_.erase(found);
    if (ProcessUsage *owner = processes_.find(held.pid)) owner->last_active_ns = event.boot_ns;
    ScopeKey scope = held.scope();
    ScopeState &state = scope_state(scope, held.sock.proto);
    forget(held, state);
    note_released(held, event.boot_ns);
    // The tables may have shown this TIME_WAIT socket before its events were read (the
    // baseline runs while the first events wait in the ring buffer): that entry stays.
    bool known_waiting = time_wait_.contains(held.sock.cookie);
    if (event.time_wait() && held.sock.proto == Proto::tcp && !known_waiting)
        add_time_wait(scope, held.sock.proto, held.sock.local_port, held.sock.cookie, event.boot_ns,
                      event.boot_ns + settings_.time_wait_ns + settings_.time_wait_timer_lag_ns,
                      false);
    else
        netns_state(held.sock.netns, 0)
            .hold_port(scope.kind, held.sock.proto, held.sock.local_port, -1);
    count_release(state, event);
    record_sample(state, scope, event.boot_ns);
    if (auto warning = evaluate(scope, state, event.boot_ns)) warnings.push_back(*warning);
    evaluate_bind_scope(scope, held.sock.proto, event.boot_ns, warnings);
    return warnings;
}

std::vector<Warning> PortModel::take_warnings() {
    return std::exchange(pending_warnings_, {});
}

void PortModel::housekeeping(std::uint64_t now_ns) {
    if (now_ns < last_housekeeping_ns_ + settings_.rate_window_ns / 6) return;
    last_housekeeping_ns_ = now_ns;
    std::uint64_t settled_before = now_ns - std::min(now_ns, settings_.reconcile_grace_ns);
    history_.forget_releases_before(settled_before);
    for (auto &[netns, ns] : netns_) ns.forget_bind_ports_released(now_ns, settings_.time_wait_ns);
    processes_.forget_idle(now_ns, settings_.process_idle_ns);
    forget_idle(now_ns);
    shrink_if_mostly_empty(sockets_);
    time_wait_.shrink_if_mostly_empty();
}

std::vector<std::uint32_t> PortModel::namespaces() const {
    std::vector<std::uint32_t> out;
    for (const auto &[netns, state] : netns_) out.push_back(netns);
    return out;
}

}  // namespace portwatch
