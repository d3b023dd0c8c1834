// SPDX-License-Identifier: Apache-2.0
// A network namespace's source NAT rules, read with the tools that wrote them: `nft -j -t list
// ruleset` (terse: without named sets' elements, which no rule read here needs) and
// iptables-save -t nat (legacy and nft, IPv4 and IPv6), each run inside the namespace. Every
// source says what became of it: read, not installed, no legacy table, or why it failed.
// Cost on a kube-proxy node of 40,000 nat rules (tests/bench/nat_ruleset_read.cpp): ~4 s, most
// of it nft's and iptables-nft-save's own (nft peaks at ~380 MB); read it seldom.
#pragma once

#include <chrono>
#include <cstddef>
#include <string>
#include <vector>

#include "base/result.h"
#include "model/nat_rules.h"

namespace portwatch {

enum class NatSourceState {
    read,      // ran, and its output parsed
    missing,   // the tool is not installed (not in PATH, /usr/sbin, /sbin)
    no_table,  // legacy iptables: the namespace has no legacy nat table (the tool not run:
               // iptables-legacy-save would create an empty one, hooks and all)
    failed,    // did not start, exited non-zero, timed out, or printed what does not parse
};

struct NatSource {
    std::string tool{};  // "nft", "iptables-legacy-save", ...
    NatSourceState state = NatSourceState::missing;
    std::string path{};     // the executable run, when found
    std::string message{};  // failed: why ("nft: exit status 1: Operation not permitted");
                            // read: what it said on stderr, if anything (a warning)
    std::size_t rules = 0;
    // nft: the iptables-nft MASQUERADE and SNAT rules it shows without their options (xt
    // targets), which the iptables-nft-save sources read.
    std::size_t xt_nat_rules = 0;

    bool operator==(const NatSource &) const = default;
};

struct NatRuleset {
    // In the order of `sources`: nft, iptables-legacy-save, ip6tables-legacy-save,
    // iptables-nft-save, ip6tables-nft-save. A rule's `where` names the tool it came from
    // ("iptables-nft -t nat POSTROUTING rule 2").
    std::vector<NatRule> rules;
    std::vector<NatSource> sources;  // all five, always
};

// Runs each installed tool inside the network namespace `netns_fd` (a child that joins it
// with setns() and execs the tool; its stdout and stderr read through pipes; killed after
// `time_limit`) and parses what it printed. Fails only when `netns_fd` is not a network
// namespace; what happened to each tool is in `sources`.
Result<NatRuleset> read_nat_ruleset(
    int netns_fd, std::chrono::milliseconds time_limit = std::chrono::seconds(10));

// One line per source: "nft: read, 3 rules", "iptables-legacy-save: not installed", ...
std::string describe(const NatSource &source);

}  // namespace portwatch
