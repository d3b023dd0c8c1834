// SPDX-License-Identifier: Apache-2.0
#include "model/causes.h"

#include <algorithm>
#include <cmath>

#include "base/printable_text.h"

namespace portwatch {
namespace {

Cause started(CauseKind kind, double share) {
    Cause cause;
    cause.kind = kind;
    cause.share = share;
    return cause;
}

double ratio(double part, double whole) {
    return whole > 0 ? part / whole : 0;
}

std::string percent(double fraction) {
    return format_text("%.0f%%", fraction * 100);
}

// "curl[1234]", or "(owner unknown)"
std::string who_text(const CauseProcess &process) {
    return process.pid ? printable(process.comm) + "[" + std::to_string(process.pid) + "]"
                       : std::string("(owner unknown)");
}

// "curl[1234] 8, nginx[88] 2" (at most three)
std::string processes_text(const std::vector<CauseProcess> &processes) {
    std::string text;
    std::size_t shown = 0;
    for (const auto &process : processes) {
        if (shown++ == 3) {
            text += ", ...";
            break;
        }
        text += format_text("%s%s %zu", text.empty() ? "" : ", ", who_text(process).c_str(),
                            process.ports);
    }
    return text;
}

std::string tw_reuse_text(const CauseFacts &facts) {
    int value = facts.config.tw_reuse;
    if (value == 1) return "net.ipv4.tcp_tw_reuse is already 1 here";
    std::string now = format_text("this netns has %d", value);
    if (value == 2)
        now += facts.loopback_destination ? "" : ", which covers loopback destinations only";
    return "or set net.ipv4.tcp_tw_reuse=1 (connect() then reuses a TIME_WAIT port once it is 1 s "
           "old; " +
           now + "; 2 covers loopback only)";
}

std::string closed_first_text(const CauseFacts &facts) {
    std::uint64_t total = facts.closed_here_first + facts.closed_otherwise;
    if (total == 0) return "";
    return format_text(
        "; the side that closes first keeps the TIME_WAIT and this host closed %llu of the last "
        "minute's %llu connections: let the peer close first where the protocol allows",
        (unsigned long long)facts.closed_here_first, (unsigned long long)total);
}

Cause time_wait(const CauseFacts &facts, double range) {
    Cause cause = started(CauseKind::time_wait, ratio(double(facts.time_wait_counted), range));
    cause.figures = {
        {"ports", double(facts.time_wait_counted)},
        {"share_of_in_use", ratio(double(facts.time_wait_counted), double(facts.in_use)), false},
        {"closed_here_first", double(facts.closed_here_first)},
        {"closed_by_peer", double(facts.closed_otherwise)},
        {"tcp_tw_reuse", double(facts.config.tw_reuse)}};
    if (facts.kind == ScopeKind::destination)
        cause.advice =
            "reuse connections (HTTP keep-alive, connection pools) instead of one per "
            "request, " +
            tw_reuse_text(facts) + closed_first_text(facts);
    else
        cause.advice = format_text(
                           "bind(0) and listen() never take a TIME_WAIT port, whatever "
                           "net.ipv4.tcp_tw_reuse (this netns has %d): reuse connections "
                           "(HTTP keep-alive, connection pools) so that fewer close",
                           facts.config.tw_reuse) +
                       closed_first_text(facts);
    return cause;
}

Cause bind_before_connect(const CauseFacts &facts, double range) {
    Cause cause =
        started(CauseKind::bind_before_connect, ratio(double(facts.bind_zero_ports), range));
    cause.figures = {{"ports", double(facts.bind_zero_ports)},
                     {"seen_connected", double(facts.bind_zero_connected)}};
    cause.processes = facts.bind_zero_processes;
    cause.advice =
        "set IP_BIND_ADDRESS_NO_PORT on the socket before bind() (the port is then "
        "chosen at connect(), per destination), or do not bind() before connect(): a "
        "socket bound to port 0 holds its port for every destination and for "
        "bind(0)/listen() (" +
        processes_text(facts.bind_zero_processes) + ")";
    return cause;
}

std::string port_list(const std::vector<std::uint16_t> &ports) {
    std::string text;
    for (std::uint16_t port : ports) text += (text.empty() ? "" : ",") + std::to_string(port);
    return text;
}

Cause bind_held_in_range(const CauseFacts &facts, double range) {
    Cause cause = started(CauseKind::bind_held_in_range, ratio(double(facts.bound_ports), range));
    cause.figures = {{"ports", double(facts.bound_ports)},
                     {"listeners", double(facts.bound_listeners)}};
    cause.processes = facts.bound_processes;
    cause.ports = facts.bound_examples;
    const char *taken_from = facts.kind == ScopeKind::udp    ? "every UDP autobind"
                             : facts.kind == ScopeKind::bind ? "bind(0) and listen()"
                                                             : "every destination's connect()";
    cause.advice = format_text(
        "move these listeners and fixed binds out of net.ipv4.ip_local_port_range (%u-%u), or "
        "add their ports to net.ipv4.ip_local_reserved_ports (e.g. %s): each one's port is "
        "taken from %s (%s)",
        facts.config.range.low, facts.config.range.high, port_list(facts.bound_examples).c_str(),
        taken_from, processes_text(facts.bound_processes).c_str());
    return cause;
}

Cause reserved_ports(const CauseFacts &facts, double range) {
    std::size_t reserved = facts.config.reserved_in_range();
    Cause cause = started(CauseKind::reserved_ports, ratio(double(reserved), range));
    cause.figures = {{"reserved", double(reserved)}, {"range_size", range}};
    cause.advice = format_text(
        "net.ipv4.ip_local_reserved_ports takes %zu of the %.0f ports of "
        "net.ipv4.ip_local_port_range (%u-%u) out of every automatic choice: unreserve the ones "
        "nothing listens on, or widen the range",
        reserved, range, facts.config.range.low, facts.config.range.high);
    return cause;
}

Cause one_destination(const CauseFacts &facts, double range) {
    Cause cause = started(CauseKind::one_destination, ratio(double(facts.connections), range));
    double of_netns = ratio(double(facts.connections), double(facts.netns_connect_ports));
    cause.figures = {{"connections", double(facts.connections)},
                     {"netns_connect_ports", double(facts.netns_connect_ports)},
                     {"destination_share", of_netns, false},
                     {"destinations", double(facts.destinations)}};
    cause.advice = format_text(
        "%s of this netns's connect() ports go to this destination and capacity is per (source "
        "address, destination address, destination port): spread the connections over more "
        "destination addresses or ports (more backends, several A records) or add source "
        "addresses",
        percent(of_netns).c_str());
    return cause;
}

Cause holder(const CauseFacts &facts, double range) {
    const CauseProcess &top = *facts.holder;
    Cause cause = started(CauseKind::holder, ratio(double(top.ports), range));
    cause.figures = {{"ports", double(top.ports)},
                     {"held_s_median", std::round(facts.holder_median_s * 10) / 10, false},
                     {"held_s_oldest", std::round(facts.holder_oldest_s * 10) / 10, false},
                     {"releases_last_minute", double(facts.releases_last_minute)}};
    cause.processes = {top};
    std::string who = who_text(top);
    bool leak = facts.holder_median_s >= kLeakHeldS && facts.releases_last_minute == 0;
    if (leak)
        cause.advice = format_text(
            "%s has held %zu ports for a median of %.0f s (the oldest %.0f s) and none came back "
            "in the last minute: a socket leak, sockets that are never closed; look for them "
            "with ss -tunap and ls -l /proc/%u/fd",
            who.c_str(), top.ports, facts.holder_median_s, facts.holder_oldest_s, top.pid);
    else
        cause.advice = format_text(
            "%s holds %zu ports, for a median of %.0f s so far: cap its connection pool or "
            "concurrency, or spread its connections over more destinations or source addresses; "
            "ports held long and never released would be a socket leak",
            who.c_str(), top.ports, facts.holder_median_s);
    return cause;
}

std::string range_text(const PortRange &range) {
    return format_text("%u %u", range.low, range.high);
}

// The residual: the part of the range in use that the largest other cause occupying ports
// does not explain, times the part of the capacity needed for the next hour that is missing.
// A range too narrow for legitimate load spread over many processes and destinations leads;
// behind a dominant cause (TIME_WAIT, a leak) it is that cause that needs fixing first.
Cause narrow_range(const CauseFacts &facts, double range, const RangeNeed &need,
                   double largest_occupant) {
    double missing = ratio(double(need.widen), double(facts.capacity + need.widen));
    double residual = std::max(0.0, ratio(double(facts.in_use), range) - largest_occupant);
    Cause cause = started(CauseKind::narrow_range, residual * missing);
    cause.figures = {{"range_size", range},
                     {"capacity", double(facts.capacity)},
                     {"allocation_rate", std::round(facts.allocation_rate * 1000) / 1000, false},
                     {"needed_next_hour", std::ceil(need.needed)},
                     {"widen_by", double(need.widen)}};
    if (need.enough)
        cause.advice = format_text(
            "widen net.ipv4.ip_local_port_range (now '%s', %.0f ports) by at least %zu ports to "
            "hold the next hour at the current rate below the warning ratio, e.g. to '%s'",
            range_text(facts.config.range).c_str(), range, need.widen,
            range_text(need.suggested).c_str());
    else
        cause.advice = format_text(
            "net.ipv4.ip_local_port_range (now '%s') would need %zu more ports for the next hour "
            "at the current rate, more than the widest range ('%u %u') gives: widen it and "
            "remove the other causes",
            range_text(facts.config.range).c_str(), need.widen, kWidestLow, kWidestHigh);
    return cause;
}

}  // namespace

std::string_view name_of(CauseKind kind) {
    return name_in(kCauseKindNames, kind);
}

// In use an hour from now: live ports grow at their part of the fill rate; TIME_WAIT ports
// do not grow past their steady state, the allocation rate times 60 s.
RangeNeed range_need(const CauseFacts &facts) {
    RangeNeed need;
    double in_use = double(facts.in_use);
    double time_wait = double(std::min(facts.time_wait_counted, facts.in_use));
    double fill = facts.eta_seconds && *facts.eta_seconds > 0 && facts.capacity > facts.in_use
                      ? (double(facts.capacity) - in_use) / *facts.eta_seconds
                      : 0;
    double live_part = in_use > 0 ? (in_use - time_wait) / in_use : 1;
    need.needed = (in_use - time_wait) + fill * live_part * kForecastS;
    if (time_wait > 0) need.needed += std::max(time_wait, facts.allocation_rate * kTimeWaitS);
    double target = std::ceil(need.needed / (facts.warn_ratio > 0 ? facts.warn_ratio : 1));
    if (target > double(facts.capacity)) need.widen = std::size_t(target) - facts.capacity;

    need.suggested = facts.config.range;
    std::size_t left = need.widen;
    std::size_t up = std::min<std::size_t>(left, kWidestHigh - need.suggested.high);
    need.suggested.high = std::uint16_t(need.suggested.high + up);
    left -= up;
    std::size_t down = std::min<std::size_t>(
        left, need.suggested.low > kWidestLow ? need.suggested.low - kWidestLow : 0);
    need.suggested.low = std::uint16_t(need.suggested.low - down);
    left -= down;
    need.enough = left == 0;
    return need;
}

std::vector<Cause> analyse_causes(const CauseFacts &facts) {
    double range = double(facts.config.range.size());
    std::vector<Cause> causes;
    if (range <= 0) return causes;
    bool tcp = facts.kind != ScopeKind::udp;
    if (tcp) causes.push_back(time_wait(facts, range));
    if (tcp) causes.push_back(bind_before_connect(facts, range));
    causes.push_back(bind_held_in_range(facts, range));
    causes.push_back(reserved_ports(facts, range));
    if (facts.kind == ScopeKind::destination) causes.push_back(one_destination(facts, range));
    if (facts.holder) causes.push_back(holder(facts, range));
    // what occupies ports of the scope (reserved ports and, for a destination, bind()-held
    // ones take capacity away instead)
    double largest_occupant = 0;
    for (const Cause &cause : causes) {
        bool occupies =
            cause.kind != CauseKind::reserved_ports &&
            (cause.kind != CauseKind::bind_held_in_range || facts.kind != ScopeKind::destination);
        if (occupies) largest_occupant = std::max(largest_occupant, cause.share);
    }
    causes.push_back(narrow_range(facts, range, range_need(facts), largest_occupant));
    std::erase_if(causes, [](const Cause &cause) { return cause.share < kMinCauseShare; });
    std::stable_sort(causes.begin(), causes.end(), [](const Cause &a, const Cause &b) {
        return a.share != b.share ? a.share > b.share : a.kind < b.kind;
    });
    return causes;
}

namespace {

constexpr std::size_t kWidestNatRange = kWidestHigh - kWidestLow + 1;

Cause nat_port_range(const NatCauseFacts &facts) {
    Cause cause = started(CauseKind::nat_port_range,
                          1 - ratio(double(facts.capacity), double(kWidestNatRange)));
    cause.figures = {{"capacity", double(facts.capacity)}, {"widest", double(kWidestNatRange)}};
    std::string rule = facts.rule.empty() ? "the NAT rule" : printable(facts.rule);
    cause.advice = format_text(
        "%s hands out only %zu source ports towards each destination: widen its port range "
        "(nft `masquerade to :1024-65535`, iptables `--to-ports 1024-65535`) or drop it (the "
        "kernel then uses 1024-65535)",
        rule.c_str(), facts.capacity);
    return cause;
}

Cause nat_shared_address(const NatCauseFacts &facts) {
    std::size_t own = facts.holder ? facts.holder->ports : 0;
    Cause cause =
        started(CauseKind::nat_shared_address,
                ratio(double(facts.in_use - std::min(own, facts.in_use)), double(facts.capacity)));
    cause.figures = {{"clients", double(facts.clients)},
                     {"nat_addresses", double(facts.nat_addresses)}};
    cause.advice = format_text(
        "%zu clients share this translated address towards this destination (%zu address%s in "
        "all): give the NAT more addresses (nft `snat to A-B`, iptables `--to-source A-B`; a "
        "client keeps one address per destination, so this spreads clients, not one client's "
        "connections), or let the busiest reach it without NAT",
        facts.clients, facts.nat_addresses, facts.nat_addresses == 1 ? "" : "es");
    return cause;
}

Cause nat_holder(const NatCauseFacts &facts) {
    const CauseProcess &top = *facts.holder;
    Cause cause = started(CauseKind::holder, ratio(double(top.ports), double(facts.capacity)));
    cause.figures = {{"ports", double(top.ports)},
                     {"held_s_oldest", std::round(facts.holder_oldest_s * 10) / 10, false}};
    cause.processes = {top};
    cause.advice = format_text(
        "%s holds %zu of the NAT's ports towards this destination, the oldest for %.0f s: each "
        "of its connections holds one as long as conntrack keeps the entry (idle ESTABLISHED "
        "entries for nf_conntrack_tcp_timeout_established, 5 days by default): pool or close "
        "idle connections",
        who_text(top).c_str(), top.ports, facts.holder_oldest_s);
    return cause;
}

}  // namespace

std::vector<Cause> analyse_nat_causes(const NatCauseFacts &facts) {
    std::vector<Cause> causes;
    if (facts.capacity == 0) return causes;
    if (facts.capacity < kWidestNatRange) causes.push_back(nat_port_range(facts));
    if (facts.clients > 1) causes.push_back(nat_shared_address(facts));
    if (facts.holder) causes.push_back(nat_holder(facts));
    std::erase_if(causes, [](const Cause &cause) { return cause.share < kMinCauseShare; });
    // the rule's range first: it is what the others fill
    std::stable_sort(causes.begin(), causes.end(), [](const Cause &a, const Cause &b) {
        bool a_range = a.kind == CauseKind::nat_port_range;
        bool b_range = b.kind == CauseKind::nat_port_range;
        if (a_range != b_range) return a_range;
        return a.share != b.share ? a.share > b.share : a.kind < b.kind;
    });
    return causes;
}

}  // namespace portwatch
