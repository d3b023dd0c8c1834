// SPDX-License-Identifier: Apache-2.0
// The NAT rules' parsers on any bytes (as nft's JSON, as iptables-save's and ip6tables-save's
// text), and the range looked up in what they return. Seeds: the real captured outputs of
// tests/unit/nat_rules/.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>
#include <vector>

#include "fuzz_input.h"
#include "model/nat_rules.h"

using namespace portwatch;

namespace {

bool ordered(const IpAddress &first, const IpAddress &last) {
    std::size_t length = first.family == Family::ipv4 ? 4 : 16;
    return first.family == last.family &&
           std::memcmp(first.bytes.data(), last.bytes.data(), length) <= 0;
}

void check(const std::vector<NatRule> &rules, std::optional<Family> family) {
    for (const NatRule &rule : rules) {
        if (family) fuzz::require(rule.family == family);
        if (rule.ports) fuzz::require(rule.ports->low <= rule.ports->high);
        if (rule.addresses) {
            fuzz::require(ordered(rule.addresses->first, rule.addresses->second));
            if (rule.family) fuzz::require(rule.addresses->first.family == *rule.family);
        }
        fuzz::require(!rule.where.empty());
    }
    // Whatever the rules, the range holds the translated port when a rule gave it, and is the
    // kernel's default otherwise.
    IpAddress translated;
    translated.bytes = {198, 19, 0, 1};
    for (std::uint16_t port : {std::uint16_t(80), std::uint16_t(600), std::uint16_t(40003)}) {
        NatPortRange range = nat_port_range(rules, Proto::tcp, translated, port, port);
        if (range.from_rule)
            fuzz::require(range.range.contains(port) && !range.where.empty());
        else
            fuzz::require(range.range == default_nat_port_range(port) && range.where.empty());
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *data, std::size_t size) {
    std::string_view text(reinterpret_cast<const char *>(data), size);
    std::size_t xt_nat_rules = 0;
    Result<std::vector<NatRule>> nft = nat_rules_from_nft_json(text, &xt_nat_rules);
    if (nft)
        check(*nft, std::nullopt);
    else
        fuzz::require(!nft.error().empty());
    for (Family family : {Family::ipv4, Family::ipv6}) {
        Result<std::vector<NatRule>> save = nat_rules_from_iptables_save(text, family);
        if (save)
            check(*save, family);
        else
            fuzz::require(!save.error().empty());
    }
    return 0;
}
