// SPDX-License-Identifier: Apache-2.0
// Why a scope is filling: from what the model knows of one scope, its netns's sockets and
// its settings, the causes that apply, ranked by how much of the range they explain, each
// with its evidence in figures and one line of advice naming the sysctl or socket option.
// Pure: no kernel, no clock (ages are given), no model; PortModel gathers the facts.
//
// Every share is a fraction of the netns's ip_local_port_range (its size, reserved ports
// included), so that what takes ports away (reserved ports, bind()-held ports) and what
// occupies them (TIME_WAIT, connections) are measured alike and can be ranked together.
// narrow_range explains what the largest of the others leaves unexplained (causes.cpp).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/enum_names.h"
#include "model/netns_ports.h"

namespace portwatch {

// nat: the source ports a netns's NAT (masquerade, snat) hands out towards one destination
// from one translated address (nf_nat_core.c, get_unique_tuple()).
enum class ScopeKind { destination, bind, udp, nat };
inline constexpr EnumName<ScopeKind> kScopeKindNames[] = {{ScopeKind::destination, "destination"},
                                                          {ScopeKind::bind, "bind"},
                                                          {ScopeKind::udp, "udp"},
                                                          {ScopeKind::nat, "nat"}};
// Whether the scope is one source address towards one destination (named by its addresses).
inline bool per_destination(ScopeKind kind) {
    return kind == ScopeKind::destination || kind == ScopeKind::nat;
}

// In the order ties are ranked.
enum class CauseKind {
    time_wait,
    bind_before_connect,
    bind_held_in_range,
    reserved_ports,
    one_destination,
    holder,
    narrow_range,
    nat_port_range,
    nat_shared_address,
};
inline constexpr EnumName<CauseKind> kCauseKindNames[] = {
    {CauseKind::time_wait, "time_wait"},
    {CauseKind::bind_before_connect, "bind_before_connect"},
    {CauseKind::bind_held_in_range, "bind_held_in_range"},
    {CauseKind::reserved_ports, "reserved_ports"},
    {CauseKind::one_destination, "one_destination"},
    {CauseKind::holder, "holder"},
    {CauseKind::narrow_range, "narrow_range"},
    {CauseKind::nat_port_range, "nat_port_range"},
    {CauseKind::nat_shared_address, "nat_shared_address"},
};
std::string_view name_of(CauseKind kind);

// A cause is listed when it explains at least this share of the range.
inline constexpr double kMinCauseShare = 0.10;
// A holder whose ports have been held this long (median) and that gave none back in the
// last minute is called a leak.
inline constexpr double kLeakHeldS = 300;
// narrow_range: how far ahead the range must hold the current rate.
inline constexpr double kForecastS = 3600;
// TCP_TIMEWAIT_LEN: a TIME_WAIT port comes back after this.
inline constexpr double kTimeWaitS = 60;
// The widest range the kernel accepts for automatic choices ends here; 1024 is where
// privileged ports end.
inline constexpr std::uint16_t kWidestLow = 1024;
inline constexpr std::uint16_t kWidestHigh = 65535;

struct Figure {
    const char *name = "";
    double value = 0;
    bool whole = true;  // printed as an integer
};

struct CauseProcess {
    std::uint32_t pid = 0;  // 0: an owner nobody could name
    std::string comm;
    std::size_t ports = 0;
};

struct Cause {
    CauseKind kind = CauseKind::time_wait;
    double share = 0;                     // of the range's ports
    std::vector<Figure> figures;          // the evidence
    std::vector<CauseProcess> processes;  // who (bind_before_connect, bind_held_in_range, holder)
    std::vector<std::uint16_t> ports;     // bind_held_in_range: a few of them, lowest first
    std::string advice;                   // one line
};

// What the analysis needs to know about one scope at level warning or above.
struct CauseFacts {
    ScopeKind kind = ScopeKind::destination;
    bool loopback_destination = false;
    NetnsPortConfig config;
    double warn_ratio = 0.80;

    std::size_t in_use = 0;
    std::size_t capacity = 0;
    std::size_t time_wait_counted = 0;  // TIME_WAIT ports in in_use
    std::size_t time_wait = 0;          // TIME_WAIT ports of the scope, counted or not
    double allocation_rate = 0;         // per second, last minute
    std::optional<double> eta_seconds;

    // TCP releases in the last minute (destination: this scope's; bind: the netns's):
    // into TIME_WAIT (this host closed first), or closed (the peer closed first, or a reset).
    std::uint64_t closed_here_first = 0;
    std::uint64_t closed_otherwise = 0;

    // Ports of the range held by sockets that bound port 0 and are not listening (TCP;
    // destination and bind scopes): bind() before connect(). `connected`: how many of
    // them the socket tables have shown connected so far.
    std::size_t bind_zero_ports = 0;
    std::size_t bind_zero_connected = 0;
    std::vector<CauseProcess> bind_zero_processes;
    // Ports of the range held by listeners and explicit binds (of the scope's protocol).
    std::size_t bound_ports = 0;
    std::size_t bound_listeners = 0;
    std::vector<std::uint16_t> bound_examples;  // lowest first, a few
    std::vector<CauseProcess> bound_processes;

    // destination: its live connections, and every destination's of the netns.
    std::size_t connections = 0;
    std::size_t netns_connect_ports = 0;
    std::size_t destinations = 0;

    // The process holding most of the scope, how long its ports there have been held, and
    // how many ports the scope (its protocol, for bind and udp) gave back in the last minute.
    std::optional<CauseProcess> holder;
    double holder_oldest_s = 0;
    double holder_median_s = 0;
    std::uint64_t releases_last_minute = 0;
};

// The causes of at least kMinCauseShare, largest share first (ties: CauseKind order).
std::vector<Cause> analyse_causes(const CauseFacts &facts);

// What the analysis needs to know about one NAT scope at level warning or above. Shares are
// fractions of the scope's capacity: its range is the NAT rule's, not the netns's.
struct NatCauseFacts {
    std::size_t in_use = 0;
    std::size_t capacity = 0;
    std::string rule;               // the rule whose range it draws from ("": the kernel's default)
    std::size_t clients = 0;        // distinct original source addresses among its mappings
    std::size_t nat_addresses = 0;  // translated addresses towards this destination in the netns
    std::optional<CauseProcess> holder;  // the client process with most of its mappings
    double holder_oldest_s = 0;          // how long the holder's oldest mapping has lived
};

// nat_port_range (a rule narrower than 1024-65535: its share is what it takes from the widest
// range, and it comes first, as what the others fill), then nat_shared_address (several
// clients behind one translated address) and holder, largest share of the capacity first.
std::vector<Cause> analyse_nat_causes(const NatCauseFacts &facts);

// ports = ceil(needed / warn_ratio) - capacity, at least 0: how much wider the range must be
// for the scope to stay below the warn ratio for kForecastS at the current rate.
struct RangeNeed {
    double needed = 0;      // ports in use kForecastS from now
    std::size_t widen = 0;  // ports to add
    PortRange suggested;    // the range widened by `widen`, upwards first
    bool enough = true;     // false: not even the widest range holds it
};
RangeNeed range_need(const CauseFacts &facts);

}  // namespace portwatch
