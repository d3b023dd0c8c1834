#include "model/port_model.h"

#include <algorithm>
#include <utility>
#include <variant>

namespace portwatch {
namespace {

constexpr std::uint64_t kSecondNs = 1'000'000'000;
// A fill rate needs samples this far apart; a scope filling in its first second needs an ETA
// most of all.
constexpr double kMinFillSpanS = 0.1;

// ::ffff:a.b.c.d is a.b.c.d to the port allocator: both families share one table.
IpAddress unmapped(const IpAddress &addr) {
    bool mapped = addr.family == Family::ipv6 &&
                  std::all_of(addr.bytes.begin(), addr.bytes.begin() + 10,
                              [](std::uint8_t b) { return b == 0; }) &&
                  addr.bytes[10] == 0xff && addr.bytes[11] == 0xff;
    if (!mapped) return addr;
    IpAddress v4;
    std::copy(addr.bytes.begin() + 12, addr.bytes.end(), v4.bytes.begin());
    return v4;
}

bool is_loopback(const IpAddress &addr) {
    IpAddress plain = unmapped(addr);
    if (plain.family == Family::ipv4) return plain.bytes[0] == 127;
    static constexpr std::array<std::uint8_t, 16> kLoopback6{0, 0, 0, 0, 0, 0, 0, 0,
                                                             0, 0, 0, 0, 0, 0, 0, 1};
    return plain.bytes == kLoopback6;
}

}  // namespace

std::size_t ProcessUsage::held_total() const {
    std::size_t total = 0;
    for (const auto &[kind, count] : held) total += count;
    return total;
}

WarningLevel next_level(WarningLevel current, double utilization, const ModelSettings &settings) {
    WarningLevel target = utilization >= settings.critical_ratio ? WarningLevel::critical
                          : utilization >= settings.warn_ratio   ? WarningLevel::warning
                                                                 : WarningLevel::ok;
    if (target >= current) return target;
    if (current == WarningLevel::critical &&
        utilization >= settings.critical_ratio - settings.hysteresis)
        return WarningLevel::critical;
    if (utilization >= settings.warn_ratio - settings.hysteresis) return WarningLevel::warning;
    return target;
}

std::string_view name_of(ScopeKind kind) {
    switch (kind) {
        case ScopeKind::destination:
            return "destination";
        case ScopeKind::bind:
            return "bind";
        case ScopeKind::udp:
            return "udp";
    }
    return "?";
}

std::string_view name_of(WarningLevel level) {
    switch (level) {
        case WarningLevel::ok:
            return "ok";
        case WarningLevel::warning:
            return "warning";
        case WarningLevel::critical:
            return "critical";
    }
    return "?";
}

PortModel::PortModel(ModelSettings settings, ConfigSource config_source)
    : settings_(settings), config_source_(std::move(config_source)) {}

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

PortModel::NetnsState &PortModel::netns_state(std::uint32_t netns, std::uint32_t pid_hint) {
    auto found = netns_.find(netns);
    if (found != netns_.end()) return found->second;
    NetnsState &state = netns_[netns];
    state.config = config_source_(netns, pid_hint);
    return state;
}

// bind and udp scopes are one per netns, whatever the family (one port table).
ScopeKey PortModel::scope_of(const SocketInfo &sock, How how) const {
    ScopeKey key;
    key.netns = sock.netns;
    if (sock.proto == Proto::udp) {
        key.kind = ScopeKind::udp;
    } else if (how == How::connect_autobind || how == How::sendto_autobind) {
        key.kind = ScopeKind::destination;
        key.local_addr = unmapped(sock.local_addr);
        key.remote_addr = unmapped(sock.remote_addr);
        key.remote_port = sock.remote_port;
    } else {
        key.kind = ScopeKind::bind;
    }
    return key;
}

// A failed connect() has no source address any more (the kernel reset it); it belongs
// to the fullest known scope towards that destination.
std::optional<ScopeKey> PortModel::failure_scope(const AllocateEvent &failure) {
    if (failure.how == How::bind)
        return std::nullopt;  // one port taken: a conflict, not exhaustion
    ScopeKey key = scope_of(failure.sock, failure.how);
    if (key.kind != ScopeKind::destination) return key;
    const ScopeKey *best = nullptr;
    double best_utilization = -1;
    for (const auto &[candidate, state] : scopes_) {
        if (candidate.kind != ScopeKind::destination || candidate.netns != key.netns ||
            candidate.remote_addr != key.remote_addr || candidate.remote_port != key.remote_port)
            continue;
        std::size_t cap = capacity(candidate);
        double utilization = cap ? double(in_use(candidate, state)) / double(cap) : 1.0;
        if (utilization > best_utilization) {
            best = &candidate;
            best_utilization = utilization;
        }
    }
    return best ? *best : key;
}

PortModel::ScopeState &PortModel::scope_state(const ScopeKey &key, Proto proto) {
    ScopeState &state = scopes_[key];
    state.proto = proto;
    return state;
}

void PortModel::PortCounts::add(std::uint16_t port, int delta, const NetnsPortConfig &config) {
    std::size_t &count = holders[port];
    bool was_held = count > 0;
    count = delta > 0 ? count + 1 : (count > 0 ? count - 1 : 0);
    bool is_held = count > 0;
    if (!is_held) holders.erase(port);
    if (was_held != is_held && config.is_ephemeral(port)) ephemeral += is_held ? 1 : -1;
}

void PortModel::PortCounts::recount(const NetnsPortConfig &config) {
    ephemeral = std::count_if(holders.begin(), holders.end(),
                              [&](const auto &entry) { return config.is_ephemeral(entry.first); });
}

// inet_csk_find_open_port() (bind(0), listen()) skips a port any TCP socket holds;
// __inet_hash_connect() skips the ones bind()-style sockets hold.
void PortModel::hold_port(NetnsState &ns, const ScopeKey &scope, Proto proto, std::uint16_t port,
                          int delta) {
    if (proto == Proto::udp) {
        ns.udp.add(port, delta, ns.config);
        return;
    }
    ns.tcp_any.add(port, delta, ns.config);
    if (scope.kind != ScopeKind::destination) ns.tcp_bind.add(port, delta, ns.config);
}

ProcessUsage &PortModel::process(const TaskInfo &task, std::uint32_t netns) {
    ProcessUsage &usage = processes_[task.pid];
    usage.pid = task.pid;
    usage.comm = task.comm;
    usage.uid = task.uid;
    // A socket-table owner may know no cgroup: it does not unlearn what an event said.
    if (task.cgroup_id) usage.cgroup_id = task.cgroup_id;
    if (!task.cgroup_path.empty()) usage.cgroup_path = task.cgroup_path;
    usage.netns = netns;
    return usage;
}

void PortModel::hold(const HeldSocket &held, const TaskInfo &owner) {
    NetnsState &ns = netns_state(held.sock.netns, held.pid);
    ScopeState &state = scope_state(held.scope, held.sock.proto);
    state.held++;
    state.held_by_pid[held.pid]++;
    process(owner, held.sock.netns);
    count_process_port(held, +1);
    hold_port(ns, held.scope, held.sock.proto, held.sock.local_port, +1);
    sockets_[held.sock.cookie] = held;
}

// Undoes hold() except for the port itself, which a TIME_WAIT socket may keep.
void PortModel::forget(const HeldSocket &held) {
    ScopeState &state = scope_state(held.scope, held.sock.proto);
    if (state.held) state.held--;
    if (auto pid = state.held_by_pid.find(held.pid); pid != state.held_by_pid.end())
        if (--pid->second == 0) state.held_by_pid.erase(pid);
    count_process_port(held, -1);
}

// SO_REUSEPORT sockets share a port: a process holds it once, as the kernel counts it.
void PortModel::count_process_port(const HeldSocket &held, int delta) {
    ProcessPort key{held.sock.netns, held.sock.proto, held.pid, held.sock.local_port, held.how};
    std::size_t &sockets = process_ports_[key];
    bool was_held = sockets > 0;
    sockets = delta > 0 ? sockets + 1 : sockets - std::min<std::size_t>(sockets, 1);
    bool is_held = sockets > 0;
    if (!is_held) process_ports_.erase(key);
    auto owner = processes_.find(held.pid);
    if (was_held == is_held || owner == processes_.end()) return;
    std::size_t &ports = owner->second.held[{held.sock.proto, held.how}];
    ports = is_held ? ports + 1 : ports - std::min<std::size_t>(ports, 1);
}

// A process that exited after handing its socket on (nginx's daemonizing parent, an fd
// passed over a Unix socket) holds nothing: the tables name who holds it now.
void PortModel::move_owner(HeldSocket &held, const TaskInfo &owner) {
    forget(held);
    held.pid = owner.pid;
    ScopeState &state = scope_state(held.scope, held.sock.proto);
    state.held++;
    state.held_by_pid[held.pid]++;
    process(owner, held.sock.netns);
    count_process_port(held, +1);
}

bool PortModel::attribute(ReleaseEvent &release) const {
    auto found = sockets_.find(release.sock.cookie);
    if (found == sockets_.end()) return release.owner_known;
    const HeldSocket &held = found->second;
    if (!release.owner_known) {
        release.owner_known = true;
        release.how = held.how;
        release.held_ns = release.boot_ns > held.since_ns ? release.boot_ns - held.since_ns : 0;
    }
    if (release.owner.pid != held.pid) {
        auto owner = processes_.find(held.pid);
        release.owner = TaskInfo{};
        release.owner.pid = release.owner.tid = held.pid;
        if (owner != processes_.end()) {
            release.owner.uid = owner->second.uid;
            release.owner.comm = owner->second.comm;
            release.owner.cgroup_id = owner->second.cgroup_id;
            release.owner.cgroup_path = owner->second.cgroup_path;
        }
    }
    return true;
}

std::vector<Warning> PortModel::on_allocate(const AllocateEvent &event) {
    std::vector<Warning> warnings;
    netns_state(event.sock.netns, event.task.pid);
    ScopeKey key = scope_of(event.sock, event.how);
    ScopeState &state = scope_state(key, event.sock.proto);
    process(event.task, event.sock.netns).allocations++;
    // Without a cookie its release cannot be matched: counted as an allocation, not as held.
    std::uint64_t cookie = event.sock.cookie;
    if (auto known = sockets_.find(cookie); known != sockets_.end() && known->second.from_table) {
        forget(known->second);  // the event knows better who and how
        hold_port(netns_state(event.sock.netns, 0), known->second.scope, known->second.sock.proto,
                  known->second.sock.local_port, -1);
        sockets_.erase(known);
    }
    if (cookie != 0 && !sockets_.contains(cookie))
        hold({event.sock, event.how, key, event.task.pid, event.boot_ns}, event.task);
    std::uint64_t second = event.boot_ns / kSecondNs;
    if (state.allocations.empty() || state.allocations.back().first != second)
        state.allocations.emplace_back(second, 0);
    state.allocations.back().second++;
    record_sample(state, key, event.boot_ns);
    if (auto warning = evaluate(key, state, event.boot_ns)) warnings.push_back(*warning);
    evaluate_bind_scope(key, event.sock.proto, event.boot_ns, warnings);
    return warnings;
}

// The errors the product table names for a full range; anything else (ENETUNREACH, EACCES
// from a cgroup hook, EINVAL...) is a failure of that process, not of the range.
static bool is_exhaustion(const AllocateEvent &event) {
    constexpr int kEaddrinuse = 98, kEaddrnotavail = 99, kEagain = 11;
    if (event.sock.proto == Proto::udp) return event.error == kEagain || event.error == kEaddrinuse;
    if (event.how == How::connect_autobind || event.how == How::sendto_autobind)
        return event.error == kEaddrnotavail;
    return event.error == kEaddrinuse;
}

std::vector<Warning> PortModel::on_failure(const AllocateEvent &event) {
    netns_state(event.sock.netns, event.task.pid);
    process(event.task, event.sock.netns).failures++;
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
    Warning warning;
    warning.boot_ns = event.boot_ns;
    warning.level = WarningLevel::critical;
    warning.usage = usage_with_causes(*key, state, event.boot_ns);
    warning.failure = event;
    return {warning};
}

std::vector<Warning> PortModel::on_release(const ReleaseEvent &event) {
    std::vector<Warning> warnings;
    recently_released_[event.sock.cookie] = event.boot_ns;
    auto found = sockets_.find(event.sock.cookie);
    if (found == sockets_.end()) return warnings;  // allocated before we saw it
    HeldSocket held = found->second;
    sockets_.erase(found);
    forget(held);
    note_released(held, event.boot_ns);
    // The tables may have shown this TIME_WAIT socket before its events were read (the
    // baseline runs while the first events wait in the ring buffer): that entry stays.
    bool known_waiting = time_wait_cookies_.contains(held.sock.cookie);
    if (event.time_wait() && held.sock.proto == Proto::tcp && !known_waiting)
        add_time_wait(
            held.scope, held.sock.proto, held.sock.local_port, held.sock.cookie, event.boot_ns,
            event.boot_ns + settings_.time_wait_ns + settings_.time_wait_timer_lag_ns, false);
    else
        hold_port(netns_state(held.sock.netns, 0), held.scope, held.sock.proto,
                  held.sock.local_port, -1);
    ScopeState &state = scope_state(held.scope, held.sock.proto);
    count_release(state, event);
    record_sample(state, held.scope, event.boot_ns);
    if (auto warning = evaluate(held.scope, state, event.boot_ns)) warnings.push_back(*warning);
    evaluate_bind_scope(held.scope, held.sock.proto, event.boot_ns, warnings);
    return warnings;
}

// Every TCP port counts against bind(0)/listen(), whatever scope it was allocated in.
void PortModel::evaluate_bind_scope(const ScopeKey &changed, Proto proto, std::uint64_t now_ns,
                                    std::vector<Warning> &warnings) {
    if (proto != Proto::tcp || changed.kind == ScopeKind::bind) return;
    ScopeKey key;
    key.kind = ScopeKind::bind;
    key.netns = changed.netns;
    ScopeState &state = scope_state(key, Proto::tcp);
    record_sample(state, key, now_ns);
    if (auto warning = evaluate(key, state, now_ns)) warnings.push_back(*warning);
}

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
    hold_port(ns, entry.scope, state.proto, entry.port, -1);
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

bool PortModel::time_wait_counts(const ScopeKey &key) const {
    if (key.kind != ScopeKind::destination) return true;
    auto ns = netns_.find(key.netns);
    int tw_reuse = ns == netns_.end() ? 2 : ns->second.config.tw_reuse;
    if (tw_reuse == 1) return false;
    return !(tw_reuse == 2 && is_loopback(key.remote_addr));
}

std::size_t PortModel::in_use(const ScopeKey &key, const ScopeState &state) const {
    auto ns = netns_.find(key.netns);
    if (ns == netns_.end()) return state.held;
    switch (key.kind) {
        case ScopeKind::destination:
            return state.held + (time_wait_counts(key) ? state.time_wait : 0);
        case ScopeKind::bind:
            return ns->second.tcp_any.ephemeral;
        case ScopeKind::udp:
            return ns->second.udp.ephemeral;
    }
    return state.held;
}

// bind(0)/listen() skip every TCP port in TIME_WAIT, whichever scope's socket it was: the
// bind scope counts each such port in the range once.
std::size_t PortModel::time_wait_of(const ScopeKey &key, const ScopeState &state) const {
    if (key.kind != ScopeKind::bind) return state.time_wait;
    auto ns = netns_.find(key.netns);
    return ns == netns_.end() ? 0 : ns->second.tcp_time_wait.ephemeral;
}

std::size_t PortModel::capacity(const ScopeKey &key) const {
    auto ns = netns_.find(key.netns);
    if (ns == netns_.end()) return 0;
    std::size_t capacity = ns->second.config.capacity();
    if (key.kind != ScopeKind::destination) return capacity;
    std::size_t bound = ns->second.tcp_bind.ephemeral;
    return capacity > bound ? capacity - bound : 0;
}

void PortModel::record_sample(ScopeState &state, const ScopeKey &key, std::uint64_t now_ns) {
    std::size_t value = in_use(key, state);
    // one sample per second, but the first one stays as it was: the fill rate of a young
    // scope is measured from it
    if (state.in_use_samples.size() > 1 &&
        state.in_use_samples.back().first / kSecondNs == now_ns / kSecondNs)
        state.in_use_samples.back().second = value;
    else
        state.in_use_samples.emplace_back(now_ns, value);
    while (state.in_use_samples.size() > 1 &&
           state.in_use_samples.front().first + settings_.rate_window_ns < now_ns)
        state.in_use_samples.pop_front();
    std::uint64_t now_s = now_ns / kSecondNs;
    std::uint64_t window_s = settings_.rate_window_ns / kSecondNs;
    while (!state.allocations.empty() && state.allocations.front().first + window_s < now_s)
        state.allocations.pop_front();
    while (!state.releases.empty() && state.releases.front().second + window_s < now_s)
        state.releases.pop_front();
}

void PortModel::count_release(ScopeState &state, const ReleaseEvent &event) {
    std::uint64_t second = event.boot_ns / kSecondNs;
    if (state.releases.empty() || state.releases.back().second != second)
        state.releases.push_back({second, 0, 0, 0});
    ScopeState::Releases &now = state.releases.back();
    bool tcp = event.sock.proto == Proto::tcp;
    if (tcp && event.time_wait())
        now.time_wait++;
    else if (tcp && event.reason == ReleaseReason::tcp_closed)
        now.closed++;
    else
        now.other++;
}

ScopeUsage PortModel::usage_of(const ScopeKey &key, const ScopeState &state,
                               std::uint64_t now_ns) const {
    ScopeUsage usage;
    usage.key = key;
    usage.proto = state.proto;
    usage.in_use = in_use(key, state);
    usage.time_wait = time_wait_of(key, state);
    usage.capacity = capacity(key);
    usage.utilization = usage.capacity ? double(usage.in_use) / double(usage.capacity) : 1.0;
    usage.level = state.level;

    std::uint64_t allocations = 0;
    for (const auto &[second, count] : state.allocations) allocations += count;
    std::uint64_t now_s = now_ns / kSecondNs;
    if (!state.allocations.empty() && now_s >= state.allocations.front().first) {
        double span_s = double(now_s - state.allocations.front().first + 1);
        usage.allocation_rate = double(allocations) / span_s;
    }
    if (!state.in_use_samples.empty() && now_ns > state.in_use_samples.front().first) {
        const auto &[first_ns, first_value] = state.in_use_samples.front();
        double span_s = double(now_ns - first_ns) / 1e9;
        double fill_per_s =
            span_s >= kMinFillSpanS ? (double(usage.in_use) - double(first_value)) / span_s : 0;
        if (fill_per_s > 0 && usage.capacity >= usage.in_use)
            usage.eta_seconds = double(usage.capacity - usage.in_use) / fill_per_s;
    }
    usage.top_processes =
        top_processes(key.kind == ScopeKind::destination ? state.held_by_pid : range_holders(key));
    return usage;
}

ScopeUsage PortModel::usage_with_causes(const ScopeKey &key, const ScopeState &state,
                                        std::uint64_t now_ns) const {
    ScopeUsage usage = usage_of(key, state, now_ns);
    attach_causes({{&usage, &state}}, now_ns);
    return usage;
}

namespace {

// pid -> ports, as CauseProcess, most ports first (ties: lowest pid), at most `top`.
std::vector<CauseProcess> ranked_processes(
    const std::map<std::uint32_t, std::set<std::uint16_t>> &ports_by_pid,
    const std::map<std::uint32_t, ProcessUsage> &processes, std::size_t top) {
    std::vector<CauseProcess> out;
    for (const auto &[pid, ports] : ports_by_pid) {
        auto known = processes.find(pid);
        out.push_back({pid, known != processes.end() ? known->second.comm : "", ports.size()});
    }
    std::sort(out.begin(), out.end(), [](const CauseProcess &a, const CauseProcess &b) {
        return a.ports != b.ports ? a.ports > b.ports : a.pid < b.pid;
    });
    if (out.size() > top) out.resize(top);
    return out;
}

constexpr std::size_t kExamplePorts = 5;

struct PortsByPid {
    std::set<std::uint16_t> ports;
    std::map<std::uint32_t, std::set<std::uint16_t>> by_pid;

    void add(std::uint32_t pid, std::uint16_t port) {
        ports.insert(port);
        by_pid[pid].insert(port);
    }
};

struct ReleaseTotals {
    std::uint64_t time_wait = 0, closed = 0, all = 0;

    // A scope's releases of the last `window_s` seconds before `now_s` (its record is pruned
    // only when it changes).
    template <typename Seconds>
    void add(const Seconds &releases, std::uint64_t now_s, std::uint64_t window_s) {
        for (const auto &second : releases) {
            if (second.second + window_s < now_s) continue;
            time_wait += second.time_wait;
            closed += second.closed;
            all += second.time_wait + second.closed + second.other;
        }
    }
};

// What every scope of one netns shares: its bind()-held ports of the range, its
// destinations' connections, its releases.
struct NetnsTally {
    PortsByPid bind_zero;  // TCP sockets bound to port 0, not listening
    std::set<std::uint16_t> connected;
    PortsByPid tcp_bound, udp_bound;  // listeners and explicit binds
    std::set<std::uint16_t> listeners;
    std::size_t connect_ports = 0, destinations = 0;
    ReleaseTotals tcp_releases, udp_releases;
};

// The ports a holder has held in a scope, and for how long.
struct HolderAges {
    std::uint32_t pid = 0;
    std::vector<double> ages_s;
};

}  // namespace

// What causes.h needs for each scope at warning or above in `usages` (a level change, a
// report, a refresh of metrics or top): one pass over the scopes and one over the sockets,
// whatever the number of scopes.
void PortModel::attach_causes(
    const std::vector<std::pair<ScopeUsage *, const ScopeState *>> &usages,
    std::uint64_t now_ns) const {
    std::map<std::uint32_t, NetnsTally> tallies;
    std::map<ScopeKey, HolderAges> holders;
    for (const auto &[usage, state] : usages) {
        if (usage->level < WarningLevel::warning) continue;
        tallies[usage->key.netns];
        if (!usage->top_processes.empty())
            holders[usage->key].pid = usage->top_processes.front().pid;
    }
    if (tallies.empty()) return;
    std::uint64_t now_s = now_ns / kSecondNs;
    std::uint64_t window_s = settings_.rate_window_ns / kSecondNs;

    for (const auto &[key, state] : scopes_) {
        auto tally = tallies.find(key.netns);
        if (tally == tallies.end()) continue;
        (state.proto == Proto::udp ? tally->second.udp_releases : tally->second.tcp_releases)
            .add(state.releases, now_s, window_s);
        if (key.kind == ScopeKind::destination && state.held) {
            tally->second.connect_ports += state.held;
            tally->second.destinations++;
        }
    }
    for (const auto &entry : sockets_) {
        const HeldSocket &held = entry.second;
        auto tally_of = tallies.find(held.sock.netns);
        if (tally_of == tallies.end()) continue;
        NetnsTally &tally = tally_of->second;
        auto ns = netns_.find(held.sock.netns);
        bool in_range = ns != netns_.end() && ns->second.config.is_ephemeral(held.sock.local_port);
        bool udp = held.sock.proto == Proto::udp;
        ScopeKey range_scope;
        range_scope.kind = udp ? ScopeKind::udp : ScopeKind::bind;
        range_scope.netns = held.sock.netns;
        auto note_age = [&](const ScopeKey &scope) {
            auto holder = holders.find(scope);
            if (holder != holders.end() && holder->second.pid == held.pid)
                holder->second.ages_s.push_back(
                    double(now_ns > held.since_ns ? now_ns - held.since_ns : 0) / 1e9);
        };
        if (held.scope.kind == ScopeKind::destination) note_age(held.scope);
        if (in_range) note_age(range_scope);
        if (held.scope.kind == ScopeKind::destination || !in_range) continue;
        std::uint16_t port = held.sock.local_port;
        if (!udp && held.how == How::bind_ephemeral && !held.listening) {
            tally.bind_zero.add(held.pid, port);
            if (held.connected) tally.connected.insert(port);
        } else if (!udp || held.how == How::bind) {
            (udp ? tally.udp_bound : tally.tcp_bound).add(held.pid, port);
            if (!udp && (held.listening || held.how == How::listen_autobind))
                tally.listeners.insert(port);
        }
    }
    // a port both kinds hold (SO_REUSEPORT) is the fixed bind's
    for (auto &[netns, tally] : tallies)
        for (std::uint16_t port : tally.tcp_bound.ports) {
            tally.bind_zero.ports.erase(port);
            tally.connected.erase(port);
        }

    for (const auto &[usage, state] : usages) {
        if (usage->level < WarningLevel::warning) continue;
        const ScopeKey &key = usage->key;
        const NetnsTally &tally = tallies.at(key.netns);
        CauseFacts facts;
        facts.kind = key.kind;
        facts.loopback_destination =
            key.kind == ScopeKind::destination && is_loopback(key.remote_addr);
        if (auto ns = netns_.find(key.netns); ns != netns_.end()) facts.config = ns->second.config;
        facts.warn_ratio = settings_.warn_ratio;
        facts.in_use = usage->in_use;
        facts.capacity = usage->capacity;
        facts.time_wait = usage->time_wait;
        bool counted = key.kind == ScopeKind::bind ||
                       (key.kind == ScopeKind::destination && time_wait_counts(key));
        facts.time_wait_counted = counted ? usage->time_wait : 0;
        facts.allocation_rate = usage->allocation_rate;
        facts.eta_seconds = usage->eta_seconds;

        ReleaseTotals releases =
            key.kind == ScopeKind::udp ? tally.udp_releases : tally.tcp_releases;
        if (key.kind == ScopeKind::destination) {  // its own
            releases = {};
            releases.add(state->releases, now_s, window_s);
            facts.connections = state->held;
            facts.netns_connect_ports = tally.connect_ports;
            facts.destinations = tally.destinations;
        }
        facts.closed_here_first = releases.time_wait;
        facts.closed_otherwise = releases.closed;
        facts.releases_last_minute = releases.all;

        if (key.kind != ScopeKind::udp) {
            facts.bind_zero_ports = tally.bind_zero.ports.size();
            facts.bind_zero_connected = tally.connected.size();
            facts.bind_zero_processes =
                ranked_processes(tally.bind_zero.by_pid, processes_, settings_.top_n);
        }
        const PortsByPid &bound = key.kind == ScopeKind::udp ? tally.udp_bound : tally.tcp_bound;
        facts.bound_ports = bound.ports.size();
        facts.bound_listeners = key.kind == ScopeKind::udp ? 0 : tally.listeners.size();
        facts.bound_processes = ranked_processes(bound.by_pid, processes_, settings_.top_n);
        for (std::uint16_t port : bound.ports) {
            if (facts.bound_examples.size() == kExamplePorts) break;
            facts.bound_examples.push_back(port);
        }

        if (!usage->top_processes.empty()) {
            const TopProcess &top = usage->top_processes.front();
            facts.holder = CauseProcess{top.pid, top.comm, top.ports};
            std::vector<double> ages = holders.at(key).ages_s;
            if (!ages.empty()) {
                std::sort(ages.begin(), ages.end());
                facts.holder_oldest_s = ages.back();
                facts.holder_median_s = ages[ages.size() / 2];
            }
        }
        usage->causes = analyse_causes(facts);
    }
}

// The bind and UDP scopes fill with every port of the range their protocol holds, whoever
// allocated it: their holders are the processes with the most such ports.
std::unordered_map<std::uint32_t, std::size_t> PortModel::range_holders(const ScopeKey &key) const {
    std::unordered_map<std::uint32_t, std::size_t> ports_by_pid;
    auto ns = netns_.find(key.netns);
    if (ns == netns_.end()) return ports_by_pid;
    Proto proto = key.kind == ScopeKind::udp ? Proto::udp : Proto::tcp;
    const ProcessPort *previous = nullptr;
    for (auto it = process_ports_.lower_bound(ProcessPort{key.netns, proto});
         it != process_ports_.end() && it->first.netns == key.netns && it->first.proto == proto;
         ++it) {
        const ProcessPort &held = it->first;
        bool counted = previous && previous->pid == held.pid && previous->port == held.port;
        if (!counted && ns->second.config.is_ephemeral(held.port)) ports_by_pid[held.pid]++;
        previous = &held;
    }
    return ports_by_pid;
}

std::vector<TopProcess> PortModel::top_processes(
    const std::unordered_map<std::uint32_t, std::size_t> &ports_by_pid) const {
    std::vector<TopProcess> top;
    for (const auto &[pid, ports] : ports_by_pid) {
        auto owner = processes_.find(pid);
        bool known = owner != processes_.end();
        top.push_back({pid, known ? owner->second.comm : std::string(), ports,
                       known ? owner->second.cgroup_path : std::string()});
    }
    std::sort(top.begin(), top.end(), [](const TopProcess &a, const TopProcess &b) {
        return a.ports != b.ports ? a.ports > b.ports : a.pid < b.pid;
    });
    if (top.size() > settings_.top_n) top.resize(settings_.top_n);
    return top;
}

std::optional<Warning> PortModel::evaluate(const ScopeKey &key, ScopeState &state,
                                           std::uint64_t now_ns) {
    std::size_t cap = capacity(key);
    double utilization = cap ? double(in_use(key, state)) / double(cap) : 1.0;
    WarningLevel level = next_level(state.level, utilization, settings_);
    if (level == state.level) return std::nullopt;
    state.level = level;
    if (level != WarningLevel::critical) state.failure_reported = false;
    Warning warning;
    warning.boot_ns = now_ns;
    warning.level = level;
    warning.usage = usage_with_causes(key, state, now_ns);
    return warning;
}

void PortModel::note_released(const HeldSocket &held, std::uint64_t now_ns) {
    if (held.sock.proto == Proto::tcp && held.scope.kind == ScopeKind::bind)
        netns_state(held.sock.netns, 0).bind_ports_released[held.sock.local_port] = now_ns;
}

// __inet_hash_connect() never hands out a port a bind()-style socket holds, so a socket
// on one (accepted from a listener since closed, in TIME_WAIT or not) is no connect()
// autobind: it shares that bind bucket, which stays as long as any socket on it.
bool PortModel::bind_style_port(std::uint32_t netns, std::uint16_t port,
                                std::uint64_t now_ns) const {
    auto ns = netns_.find(netns);
    if (ns == netns_.end()) return false;
    if (ns->second.tcp_bind.holders.contains(port)) return true;
    auto released = ns->second.bind_ports_released.find(port);
    return released != ns->second.bind_ports_released.end() &&
           released->second + settings_.time_wait_ns >= now_ns;
}

// What a socket in the tables holds, as far as they tell: a listener, or a port in the
// range (a connect() autobind, or a bind(0) we cannot tell from it), or a fixed port.
// An accepted socket shares its listener's port and holds none of its own.
std::optional<PortModel::HeldSocket> PortModel::from_table(const KernelSocket &socket,
                                                           const std::set<std::uint16_t> &listening,
                                                           std::uint64_t read_at_ns) const {
    const SocketInfo &sock = socket.sock;
    if (sock.local_port == 0 || sock.cookie == 0) return std::nullopt;
    How how = How::bind;
    if (sock.proto == Proto::tcp && socket.state != kTcpListen) {
        if (listening.contains(sock.local_port)) return std::nullopt;
        auto ns = netns_.find(sock.netns);
        bool ephemeral = ns != netns_.end() && ns->second.config.is_ephemeral(sock.local_port);
        if (ephemeral && sock.has_remote() &&
            !bind_style_port(sock.netns, sock.local_port, read_at_ns))
            how = How::connect_autobind;
    }
    std::uint32_t pid = socket.owner ? socket.owner->pid : 0;
    return HeldSocket{sock, how, scope_of(sock, how), pid, 0};
}

std::set<std::uint64_t> PortModel::drop_time_wait_of(std::uint32_t netns,
                                                     std::uint64_t settled_before) {
    std::set<std::uint64_t> kept;
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

std::vector<Warning> PortModel::take_warnings() {
    return std::exchange(pending_warnings_, {});
}

void PortModel::evaluate_netns(std::uint32_t netns, std::uint64_t now_ns) {
    for (auto &[key, state] : scopes_) {
        if (key.netns != netns) continue;
        record_sample(state, key, now_ns);
        if (auto warning = evaluate(key, state, now_ns)) pending_warnings_.push_back(*warning);
    }
}

void PortModel::housekeeping(std::uint64_t now_ns) {
    if (now_ns < last_housekeeping_ns_ + settings_.rate_window_ns / 6) return;
    last_housekeeping_ns_ = now_ns;
    std::uint64_t settled_before = now_ns - std::min(now_ns, settings_.reconcile_grace_ns);
    std::erase_if(recently_released_,
                  [&](const auto &entry) { return entry.second < settled_before; });
    for (auto &[netns, ns] : netns_)
        std::erase_if(ns.bind_ports_released, [&](const auto &entry) {
            return entry.second + settings_.time_wait_ns < now_ns;
        });
    forget_idle(now_ns);
}

void PortModel::reconcile(std::uint32_t netns, const std::vector<KernelSocket> &table,
                          std::uint64_t read_at_ns,
                          const std::function<bool(const KernelSocket &)> &admit) {
    reconcile_totals_.runs++;
    netns_state(netns, 0);
    std::uint64_t settled_before =
        read_at_ns > settings_.reconcile_grace_ns ? read_at_ns - settings_.reconcile_grace_ns : 0;
    std::erase_if(recently_released_,
                  [&](const auto &entry) { return entry.second < settled_before; });
    std::set<std::uint16_t> listening;
    std::set<std::uint64_t> live, waiting;
    for (const auto &socket : table) {
        if (socket.sock.proto == Proto::tcp && socket.state == kTcpListen)
            listening.insert(socket.sock.local_port);
        (socket.state == kTcpTimeWait && socket.sock.proto == Proto::tcp ? waiting : live)
            .insert(socket.sock.cookie);
    }

    for (auto it = sockets_.begin(); it != sockets_.end();) {
        const HeldSocket &held = it->second;
        bool gone =
            held.sock.netns == netns && !live.contains(it->first) && held.since_ns < settled_before;
        if (!gone) {
            ++it;
            continue;
        }
        forget(held);
        note_released(held, read_at_ns);
        hold_port(netns_[netns], held.scope, held.sock.proto, held.sock.local_port, -1);
        it = sockets_.erase(it);
        reconcile_totals_.removed++;
    }

    std::set<std::uint64_t> old_waiting;
    for (const auto &[expiry, entry] : time_wait_)
        if (entry.scope.netns == netns && entry.added_ns < settled_before)
            old_waiting.insert(entry.cookie);
    std::set<std::uint64_t> kept_waiting = drop_time_wait_of(netns, settled_before);
    for (const auto &socket : table) {
        std::uint64_t cookie = socket.sock.cookie;
        auto known = sockets_.find(cookie);
        if (known != sockets_.end() && socket.owner && socket.owner->pid != known->second.pid)
            move_owner(known->second, *socket.owner);
        if (known != sockets_.end() && socket.sock.proto == Proto::tcp) {
            // a bind(0) the events showed: the tables say what it was for
            if (socket.state == kTcpListen)
                known->second.listening = true;
            else if (socket.sock.has_remote())
                known->second.connected = true;
        }
        if (known != sockets_.end() || recently_released_.contains(cookie) ||
            kept_waiting.contains(cookie) || (admit && !admit(socket)))
            continue;
        auto held = from_table(socket, listening, read_at_ns);
        if (!held) continue;
        if (socket.state == kTcpTimeWait && socket.sock.proto == Proto::tcp) {
            std::uint64_t left_ns = std::uint64_t(socket.time_wait_left_ms) * 1'000'000;
            add_time_wait(held->scope, Proto::tcp, socket.sock.local_port, cookie, read_at_ns,
                          read_at_ns + left_ns + settings_.time_wait_timer_lag_ns, true);
            hold_port(netns_[netns], held->scope, Proto::tcp, socket.sock.local_port, +1);
            if (!old_waiting.contains(cookie)) reconcile_totals_.time_wait++;
            continue;
        }
        held->since_ns = read_at_ns;
        held->from_table = true;
        held->listening = socket.sock.proto == Proto::tcp && socket.state == kTcpListen;
        held->connected = !held->listening && socket.sock.has_remote();
        TaskInfo owner = socket.owner.value_or(TaskInfo{});
        hold(*held, owner);
        reconcile_totals_.added++;
    }
    for (std::uint64_t cookie : old_waiting)
        if (!waiting.contains(cookie)) reconcile_totals_.time_wait++;
    evaluate_netns(netns, read_at_ns);
}

std::vector<std::uint32_t> PortModel::namespaces() const {
    std::vector<std::uint32_t> out;
    for (const auto &[netns, state] : netns_) out.push_back(netns);
    return out;
}

Report PortModel::report(std::uint64_t now_boot_ns) {
    for (auto &[netns, state] : netns_) {
        state.config = config_source_(netns, 0);
        for (PortCounts *counts :
             {&state.tcp_any, &state.tcp_bind, &state.udp, &state.tcp_time_wait})
            counts->recount(state.config);
    }
    // A scope that held nothing and did nothing in the interval is left out of it.
    Report report =
        build_report(now_boot_ns, interval_started_ ? interval_start_ns_ / kSecondNs : 0);
    for (auto it = processes_.begin(); it != processes_.end();) {
        ProcessUsage &usage = it->second;
        usage.allocations = usage.failures = 0;
        it = usage.held_total() ? std::next(it) : processes_.erase(it);
    }
    interval_start_ns_ = now_boot_ns;
    interval_started_ = true;
    forget_idle(now_boot_ns);
    return report;
}

Report PortModel::current(std::uint64_t now_boot_ns) {
    return build_report(now_boot_ns, 0);
}

Report PortModel::build_report(std::uint64_t now_boot_ns, std::uint64_t active_since_s) {
    expire_time_wait(now_boot_ns, pending_warnings_);
    Report report;
    report.boot_ns = now_boot_ns;
    report.interval_s = interval_started_ && now_boot_ns > interval_start_ns_
                            ? double(now_boot_ns - interval_start_ns_) / 1e9
                            : 0;
    for (const auto &[netns, state] : netns_) report.netns.push_back({netns, state.config, {}, {}});
    for (const auto &[key, state] : scopes_) {
        if (quiet(key, state, active_since_s)) continue;
        for (auto &ns : report.netns)
            if (ns.netns == key.netns) ns.scopes.push_back(usage_of(key, state, now_boot_ns));
    }
    std::vector<std::pair<ScopeUsage *, const ScopeState *>> warned;
    for (auto &ns : report.netns)
        for (auto &usage : ns.scopes)
            if (usage.level >= WarningLevel::warning)
                warned.emplace_back(&usage, &scopes_.at(usage.key));
    attach_causes(warned, now_boot_ns);
    for (auto &ns : report.netns)
        std::stable_sort(
            ns.scopes.begin(), ns.scopes.end(),
            [](const ScopeUsage &a, const ScopeUsage &b) { return a.utilization > b.utilization; });
    for (const auto &[pid, usage] : processes_) {
        if (!usage.held_total() && !usage.allocations && !usage.failures) continue;
        report.processes.push_back(usage);
        report.processes.back().allocation_rate =
            report.interval_s > 0 ? double(usage.allocations) / report.interval_s : 0;
    }
    std::stable_sort(report.processes.begin(), report.processes.end(),
                     [](const ProcessUsage &a, const ProcessUsage &b) {
                         return a.held_total() > b.held_total();
                     });
    return report;
}

// A scope with nothing held, nothing in TIME_WAIT and no allocation in the rate window is
// dropped, and a netns left without scopes or processes with it (a container that is gone):
// on a host with churn, nothing else would ever shrink these maps.
// Nothing to show: no port counted, no TIME_WAIT, level ok, no allocation since `since_s`.
bool PortModel::quiet(const ScopeKey &key, const ScopeState &state, std::uint64_t since_s) const {
    bool allocated = !state.allocations.empty() && state.allocations.back().first >= since_s;
    return in_use(key, state) == 0 && time_wait_of(key, state) == 0 &&
           state.level == WarningLevel::ok && !allocated;
}

void PortModel::forget_idle(std::uint64_t now_ns) {
    std::uint64_t window_start_s =
        (now_ns - std::min(now_ns, settings_.rate_window_ns)) / kSecondNs;
    std::erase_if(scopes_, [&](const auto &entry) {
        return entry.second.held == 0 && quiet(entry.first, entry.second, window_start_s);
    });
    std::set<std::uint32_t> busy;
    for (const auto &[key, state] : scopes_) busy.insert(key.netns);
    for (const auto &[pid, usage] : processes_) busy.insert(usage.netns);
    std::erase_if(netns_, [&](const auto &entry) {
        const NetnsState &ns = entry.second;
        return !busy.contains(entry.first) && ns.tcp_any.holders.empty() && ns.udp.holders.empty();
    });
}

}  // namespace portwatch
