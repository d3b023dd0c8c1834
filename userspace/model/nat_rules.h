// SPDX-License-Identifier: Apache-2.0
// The source NAT rules of a network namespace (SNAT and MASQUERADE, from nftables and from
// iptables, legacy or nft), as far as they say which ports a translation may be given: the
// rule's port range, else the kernel's default. Parsed from the tools' own text (`nft -j list
// ruleset`, `iptables-save -t nat`); no kernel, no clock.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/result.h"
#include "events/event.h"
#include "model/netns_ports.h"

namespace portwatch {

// One SNAT or MASQUERADE rule, as the kernel applies it. Matches on what the mapping does not
// say (source addresses, marks, destination) are not kept: a rule is what *could* have made a
// mapping.
struct NatRule {
    std::optional<Family> family{};  // none: both (an inet table, an unnarrowed rule)
    std::optional<Proto> proto{};    // none: any transport
    bool masquerade = false;         // else SNAT to `addresses`
    std::optional<std::pair<IpAddress, IpAddress>> addresses{};  // first..last, inclusive
    std::optional<PortRange> ports{};                            // `to :a-b`, `--to-ports a-b`
    bool random = false, fully_random = false, persistent = false;
    std::string out_interface{};         // oifname / -o as written ("eth+", "eth*"); "" = any
    bool out_interface_negated = false;  // `oifname != X`, `! -o X`
    // Where it was read, for messages: "nft table ip t chain post handle 2",
    // "iptables -t nat POSTROUTING rule 3".
    std::string where{};

    bool operator==(const NatRule &) const = default;
};

// `nft -j list ruleset`: the `masquerade` and `snat` statements of ip, ip6 and inet tables,
// in the order listed. Statements that are not source NAT are skipped, and so are `xt`
// expressions (iptables-nft rules, whose options only iptables-nft-save shows): how many
// rules had an xt MASQUERADE or SNAT target goes to `xt_nat_rules` if given. Fails on text
// that is not nft's JSON, and on a source NAT statement it cannot read (an address map),
// naming the rule.
Result<std::vector<NatRule>> nat_rules_from_nft_json(std::string_view json,
                                                     std::size_t *xt_nat_rules = nullptr);

// `iptables-save -t nat` (`family` ipv4) or `ip6tables-save -t nat` (ipv6), legacy or nft:
// the `-j MASQUERADE` and `-j SNAT` rules of the nat table, in order, whatever chain holds
// them (KUBE-POSTROUTING is reached by a jump). Fails on a table without COMMIT (truncated
// text), and on a NAT target whose options it cannot read, naming the line.
Result<std::vector<NatRule>> nat_rules_from_iptables_save(std::string_view text, Family family);

// The range the kernel draws from when the rule gives none, by the original source port:
// 1-511 below 512, 600-1023 below 1024, else 1024-65535 (nf_nat_l4proto_unique_tuple(); not
// ip_local_port_range).
PortRange default_nat_port_range(std::uint16_t original_port);

// The port range a mapping was drawn from: that of the first rule, in order, that could have
// made it (its family, its proto, the translated address within its addresses if it has any,
// the translated port within its range: the rule's, else the default for `original_port`);
// else the default for `original_port`, with from_rule false.
struct NatPortRange {
    PortRange range;
    bool from_rule = false;
    std::string where;  // the rule's, when from_rule
};
NatPortRange nat_port_range(const std::vector<NatRule> &rules, Proto proto,
                            const IpAddress &translated_addr, std::uint16_t original_port,
                            std::uint16_t translated_port);

// "1.2.3.4", "2001:db8::1" (inet_pton's forms) in `family`, or either when none is given.
std::optional<IpAddress> parse_ip_address(std::string_view text,
                                          std::optional<Family> family = std::nullopt);

}  // namespace portwatch
