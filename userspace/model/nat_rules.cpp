// SPDX-License-Identifier: Apache-2.0
#include "model/nat_rules.h"

#include <arpa/inet.h>

#include <algorithm>
#include <charconv>
#include <cstring>
#include <map>
#include <nlohmann/json.hpp>

namespace portwatch {
namespace {

using Json = nlohmann::json;

// ---- shared ------------------------------------------------------------------------------

// Which of the two transports a rule's matches still allow; neither: it cannot translate a
// TCP or UDP connection.
struct Transports {
    bool tcp = true, udp = true;

    void only(bool keep_tcp, bool keep_udp) {
        tcp = tcp && keep_tcp;
        udp = udp && keep_udp;
    }
    bool any() const { return tcp || udp; }
    std::optional<Proto> proto() const {
        if (tcp && udp) return std::nullopt;
        return tcp ? Proto::tcp : Proto::udp;
    }
};

std::size_t address_length(Family family) {
    return family == Family::ipv4 ? 4 : 16;
}

int compare_addresses(const IpAddress &a, const IpAddress &b) {
    return std::memcmp(a.bytes.data(), b.bytes.data(), address_length(a.family));
}

bool address_within(const IpAddress &addr, const std::pair<IpAddress, IpAddress> &range) {
    return addr.family == range.first.family && compare_addresses(addr, range.first) >= 0 &&
           compare_addresses(addr, range.second) <= 0;
}

std::optional<std::uint16_t> parse_port(std::string_view text) {
    unsigned value = 0;
    auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (error != std::errc() || end != text.data() + text.size() || value > 65535)
        return std::nullopt;
    return std::uint16_t(value);
}

// The kernel swaps a range given backwards (nf_nat_l4proto_unique_tuple()).
PortRange port_range(std::uint16_t first, std::uint16_t last) {
    return {std::min(first, last), std::max(first, last)};
}

// "a" or "a-b".
std::optional<PortRange> parse_port_range_text(std::string_view text) {
    std::size_t dash = text.find('-');
    std::optional<std::uint16_t> first = parse_port(text.substr(0, dash));
    if (dash == std::string_view::npos) {
        if (!first) return std::nullopt;
        return port_range(*first, *first);
    }
    std::optional<std::uint16_t> last = parse_port(text.substr(dash + 1));
    if (!first || !last) return std::nullopt;
    return port_range(*first, *last);
}

Result<std::pair<IpAddress, IpAddress>> address_range(const IpAddress &first,
                                                      const IpAddress &last) {
    if (first.family != last.family || compare_addresses(first, last) > 0)
        return Failure{"an address range that ends before it starts"};
    return std::pair{first, last};
}

// ---- nft JSON ----------------------------------------------------------------------------

// What the matches before a NAT statement say about the packets it translates.
struct MatchContext {
    std::optional<Family> family;
    bool impossible = false;  // matches on two families, or on another transport
    Transports transports;
    std::string out_interface;
    bool out_interface_negated = false;

    void narrow_family(Family wanted) {
        if (family && *family != wanted) impossible = true;
        family = wanted;
    }
};

std::string text_of(const Json &value) {
    return value.is_string() ? value.get<std::string>() : value.dump();
}

// A transport as nft writes it: a name, or the protocol number.
std::optional<Proto> proto_named(const Json &value) {
    if (value == "tcp" || value == 6) return Proto::tcp;
    if (value == "udp" || value == 17) return Proto::udp;
    return std::nullopt;
}

// `meta l4proto tcp`, `meta l4proto { tcp, udp }`, `ip protocol udp`.
void narrow_transports(MatchContext &context, const Json &right) {
    bool tcp = false, udp = false;
    auto note = [&](const Json &item) {
        std::optional<Proto> proto = proto_named(item);
        if (proto) (*proto == Proto::tcp ? tcp : udp) = true;
    };
    if (right.is_object() && right.contains("set") && right["set"].is_array()) {
        for (const Json &item : right["set"]) note(item);
    } else if ((right.is_string() && !right.get<std::string>().starts_with('@')) ||
               right.is_number()) {
        note(right);  // not a named set (`meta l4proto @protos`), whose elements are not read
    } else {
        return;  // an expression this reader does not evaluate: no narrowing
    }
    context.transports.only(tcp, udp);
}

// Protocols of a payload match that mean "not TCP, not UDP" (the match depends on them).
bool is_other_transport(const std::string &protocol) {
    static const char *const kOthers[] = {"sctp", "dccp", "udplite", "icmp", "icmpv6",
                                          "igmp", "esp",  "ah",      "comp"};
    return std::any_of(std::begin(kOthers), std::end(kOthers),
                       [&](const char *name) { return protocol == name; });
}

void read_meta_match(MatchContext &context, const std::string &key, bool equal, const Json &right) {
    if (key == "l4proto" && equal) narrow_transports(context, right);
    if (key == "nfproto" && equal) {
        if (right == "ipv4") context.narrow_family(Family::ipv4);
        if (right == "ipv6") context.narrow_family(Family::ipv6);
    }
    if (key == "oifname" || key == "oif") {
        context.out_interface = text_of(right);
        context.out_interface_negated = !equal;
    }
}

// A payload match depends on its protocol whatever the operator (nft adds the dependency:
// `ip daddr != 10.0.0.0/8` matches IPv4 packets only, `tcp dport != 80` TCP ones only).
void read_payload_match(MatchContext &context, const std::string &protocol,
                        const std::string &field, bool equal, const Json &right) {
    if (protocol == "ip") context.narrow_family(Family::ipv4);
    if (protocol == "ip6") context.narrow_family(Family::ipv6);
    if (protocol == "tcp") context.transports.only(true, false);
    if (protocol == "udp") context.transports.only(false, true);
    if (is_other_transport(protocol)) context.transports.only(false, false);
    bool transport_field =
        (protocol == "ip" && field == "protocol") || (protocol == "ip6" && field == "nexthdr");
    if (transport_field && equal) narrow_transports(context, right);
}

void read_match(MatchContext &context, const Json &match) {
    if (!match.is_object()) return;
    const Json &left = match.value("left", Json());
    const Json &right = match.value("right", Json());
    std::string op = match.value("op", "==");
    bool equal = op == "==" || op == "in";
    if (left.is_object() && left.contains("meta") && left["meta"].is_object()) {
        read_meta_match(context, left["meta"].value("key", ""), equal, right);
    } else if (left.is_object() && left.contains("payload") && left["payload"].is_object()) {
        const Json &payload = left["payload"];
        read_payload_match(context, payload.value("protocol", ""), payload.value("field", ""),
                           equal, right);
    }
}

Result<PortRange> nft_port(const Json &port) {
    if (port.is_number_unsigned() && port.get<std::uint64_t>() <= 65535) {
        auto single = port.get<std::uint16_t>();
        return port_range(single, single);
    }
    if (port.is_object() && port.contains("range") && port["range"].is_array() &&
        port["range"].size() == 2) {
        const Json &first = port["range"][0], &last = port["range"][1];
        if (first.is_number_unsigned() && last.is_number_unsigned() &&
            first.get<std::uint64_t>() <= 65535 && last.get<std::uint64_t>() <= 65535)
            return port_range(first.get<std::uint16_t>(), last.get<std::uint16_t>());
    }
    return Failure{"a port that is not a number or a range: " + port.dump()};
}

Result<IpAddress> nft_address(const Json &value, std::optional<Family> family) {
    std::optional<IpAddress> addr;
    if (value.is_string()) addr = parse_ip_address(value.get<std::string>(), family);
    if (!addr) return Failure{"not an address: " + value.dump()};
    return *addr;
}

// A prefix's first and last address: `snat ip prefix to 10.0.0.0/30`.
Result<std::pair<IpAddress, IpAddress>> nft_prefix(const Json &prefix,
                                                   std::optional<Family> family) {
    Result<IpAddress> first = nft_address(prefix.value("addr", Json()), family);
    if (!first) return Failure{first.error()};
    const Json &length = prefix.value("len", Json());
    std::size_t bits = address_length(first->family) * 8;
    if (!length.is_number_unsigned() || length.get<std::size_t>() > bits)
        return Failure{"a prefix without a valid length: " + prefix.dump()};
    IpAddress last = *first;
    for (std::size_t bit = length.get<std::size_t>(); bit < bits; bit++) {
        first->bytes[bit / 8] &= std::uint8_t(~(0x80u >> (bit % 8)));
        last.bytes[bit / 8] |= std::uint8_t(0x80u >> (bit % 8));
    }
    return address_range(*first, last);
}

Result<std::pair<IpAddress, IpAddress>> nft_addresses(const Json &addr,
                                                      std::optional<Family> family) {
    if (addr.is_string()) {
        Result<IpAddress> single = nft_address(addr, family);
        if (!single) return Failure{single.error()};
        return std::pair{*single, *single};
    }
    if (addr.is_object() && addr.contains("range") && addr["range"].is_array() &&
        addr["range"].size() == 2) {
        Result<IpAddress> first = nft_address(addr["range"][0], family);
        Result<IpAddress> last = nft_address(addr["range"][1], family);
        if (!first) return Failure{first.error()};
        if (!last) return Failure{last.error()};
        return address_range(*first, *last);
    }
    if (addr.is_object() && addr.contains("prefix") && addr["prefix"].is_object())
        return nft_prefix(addr["prefix"], family);
    return Failure{"an address that is not an address, a range or a prefix: " + addr.dump()};
}

Status read_nft_flags(NatRule &rule, const Json &flags) {
    std::vector<Json> names;
    if (flags.is_string()) names.push_back(flags);
    if (flags.is_array()) names.assign(flags.begin(), flags.end());
    if (names.empty()) return Failure{"flags that are not names: " + flags.dump()};
    for (const Json &name : names) {
        if (name == "random") rule.random = true;
        if (name == "fully-random") rule.fully_random = true;
        if (name == "persistent") rule.persistent = true;
    }
    return {};
}

std::optional<Family> family_named(const Json &name) {
    if (name == "ip") return Family::ipv4;
    if (name == "ip6") return Family::ipv6;
    return std::nullopt;
}

// The `masquerade` or `snat` statement's own fields, over what the matches said.
Status read_nat_statement(NatRule &rule, MatchContext &context, const Json &statement) {
    if (statement.is_null()) return {};  // a bare `masquerade`
    if (!statement.is_object()) return Failure{"not an object: " + statement.dump()};
    if (statement.contains("family")) {
        std::optional<Family> family = family_named(statement["family"]);
        if (!family) return Failure{"an unknown family: " + statement["family"].dump()};
        context.narrow_family(*family);
    }
    if (statement.contains("addr")) {
        Result<std::pair<IpAddress, IpAddress>> addresses =
            nft_addresses(statement["addr"], context.family);
        if (!addresses) return Failure{addresses.error()};
        rule.addresses = *addresses;
        context.narrow_family(addresses->first.family);
    }
    if (statement.contains("port")) {
        Result<PortRange> ports = nft_port(statement["port"]);
        if (!ports) return Failure{ports.error()};
        rule.ports = *ports;
    }
    if (statement.contains("flags")) return read_nft_flags(rule, statement["flags"]);
    return {};
}

struct NftTable {
    std::optional<Family> family;  // none: inet
    std::string name;              // "ip", "ip6", "inet"
};

// Only these families' tables translate IP packets' sources.
std::optional<NftTable> nft_table_family(const std::string &family) {
    if (family == "ip") return NftTable{Family::ipv4, family};
    if (family == "ip6") return NftTable{Family::ipv6, family};
    if (family == "inet") return NftTable{std::nullopt, family};
    return std::nullopt;
}

std::string nft_where(const Json &rule, const std::string &family) {
    std::string where = "nft table " + family + " " + rule.value("table", "?") + " chain " +
                        rule.value("chain", "?");
    if (rule.contains("handle")) where += " handle " + text_of(rule["handle"]);
    return where;
}

// A rule's NAT rule, if its statements translate sources: the matches before the first
// `masquerade` or `snat` narrow it; whatever follows a NAT statement never runs for it.
Result<std::optional<NatRule>> nft_rule(const Json &rule) {
    std::optional<NftTable> table = nft_table_family(rule.value("family", ""));
    if (!table) return std::optional<NatRule>();
    std::string where = nft_where(rule, table->name);
    const Json &statements = rule.value("expr", Json());
    if (!statements.is_array()) return Failure{where + ": no statement list (\"expr\")"};
    MatchContext context;
    context.family = table->family;
    for (const Json &statement : statements) {
        if (!statement.is_object() || statement.size() != 1)
            return Failure{where +
                           ": a statement that is not a one-key object: " + statement.dump()};
        auto entry = statement.begin();
        const std::string &kind = entry.key();
        const Json &body = entry.value();
        if (kind == "match") read_match(context, body);
        if (kind != "masquerade" && kind != "snat") continue;
        NatRule nat{.masquerade = kind == "masquerade", .where = where};
        if (Status read = read_nat_statement(nat, context, body); !read)
            return Failure{where + ": cannot read its " + kind + " statement: " + read.error()};
        if (context.impossible || !context.transports.any()) return std::optional<NatRule>();
        nat.family = context.family;
        nat.proto = context.transports.proto();
        nat.out_interface = context.out_interface;
        nat.out_interface_negated = context.out_interface_negated;
        return std::optional<NatRule>(std::move(nat));
    }
    return std::optional<NatRule>();
}

// The statements of a {"rule": {..., "expr": [...]}} element, or null.
const Json *statements_of(const Json &wrapper) {
    auto rule = wrapper.find("rule");
    if (rule == wrapper.end() || !rule->is_object()) return nullptr;
    auto statements = rule->find("expr");
    return statements == rule->end() ? nullptr : &*statements;
}

bool is_statement(const Json &statement, const char *kind) {
    return statement.is_object() && statement.contains(kind);
}

// An iptables-nft MASQUERADE or SNAT target, which nft shows without its options.
bool is_xt_nat_target(const Json &statement) {
    if (!is_statement(statement, "xt") || !statement["xt"].is_object()) return false;
    const Json &xt = statement["xt"];
    return xt.value("type", "") == "target" &&
           (xt.value("name", "") == "MASQUERADE" || xt.value("name", "") == "SNAT");
}

// While parsing, drops each element of the "nftables" list (depth 2) but the rules with a
// NAT statement (a kube-proxy node's ruleset is tens of MB of JSON, and its tree would be
// ten times that), counting the iptables-nft NAT rules among those dropped.
Json::parser_callback_t keep_nat_rules_only(std::size_t &xt_nat_rules) {
    return [&xt_nat_rules](int depth, Json::parse_event_t event, Json &parsed) {
        if (event != Json::parse_event_t::object_end || depth != 2) return true;
        const Json *statements = statements_of(parsed);
        if (!statements) return false;
        if (!statements->is_array()) return true;  // kept, to fail on it
        auto nat = [](const Json &statement) {
            return is_statement(statement, "masquerade") || is_statement(statement, "snat");
        };
        xt_nat_rules += std::any_of(statements->begin(), statements->end(), is_xt_nat_target);
        return std::any_of(statements->begin(), statements->end(), nat);
    };
}

Result<std::vector<NatRule>> read_nft_json(std::string_view json, std::size_t *xt_nat_rules) {
    std::size_t xt_count = 0;
    Json document = Json::parse(json, keep_nat_rules_only(xt_count), /*allow_exceptions=*/false);
    if (xt_nat_rules) *xt_nat_rules = xt_count;
    if (document.is_discarded()) return Failure{"nft -j: not JSON (truncated?)"};
    if (!document.is_object() || !document.contains("nftables") || !document["nftables"].is_array())
        return Failure{"nft -j: no \"nftables\" list: not nft's JSON"};
    std::vector<NatRule> rules;
    for (const Json &object : document["nftables"]) {
        if (!object.is_object() || !object.contains("rule")) continue;
        Result<std::optional<NatRule>> rule = nft_rule(object["rule"]);
        if (!rule) return Failure{rule.error()};
        if (*rule) rules.push_back(std::move(**rule));
    }
    return rules;
}

// ---- iptables-save -----------------------------------------------------------------------

// Splits a line as iptables-save quotes it: blanks separate words; "..." keeps blanks, and a
// backslash in it escapes the next character.
Result<std::vector<std::string>> save_words(std::string_view line) {
    std::vector<std::string> words;
    std::string word;
    bool in_word = false, quoted = false;
    for (std::size_t i = 0; i < line.size(); i++) {
        char c = line[i];
        if (quoted && c == '\\' && i + 1 < line.size()) {
            word += line[++i];
        } else if (c == '"') {
            quoted = !quoted;
            in_word = true;
        } else if (!quoted && (c == ' ' || c == '\t')) {
            if (in_word) words.push_back(std::move(word));
            word.clear();
            in_word = false;
        } else {
            word += c;
            in_word = true;
        }
    }
    if (quoted) return Failure{"a quote that does not end"};
    if (in_word) words.push_back(std::move(word));
    return words;
}

// The options that take exactly one word, whatever it looks like.
bool takes_one_word(const std::string &option) {
    static const char *const kOptions[] = {
        "-p", "--protocol",     "-s", "--source",        "-d",       "--destination",
        "-i", "--in-interface", "-o", "--out-interface", "-j",       "--jump",
        "-g", "--goto",         "-m", "--match",         "--comment"};
    return std::any_of(std::begin(kOptions), std::end(kOptions),
                       [&](const char *name) { return option == name; });
}

// What one `-A CHAIN ...` rule says, as far as a NAT rule needs it.
struct SaveRule {
    Transports transports;
    std::string out_interface;
    bool out_interface_negated = false;
    std::string target;
    std::vector<std::string> target_words;  // the words after `-j TARGET`
};

void read_save_protocol(SaveRule &rule, const std::string &name, bool negated) {
    bool tcp = name == "tcp" || name == "6", udp = name == "udp" || name == "17";
    if (name == "all" || name == "0") return;
    if (negated)
        rule.transports.only(!tcp, !udp);
    else
        rule.transports.only(tcp, udp);
}

Result<SaveRule> read_save_rule(const std::vector<std::string> &words) {
    SaveRule rule;
    bool negated = false;
    for (std::size_t i = 2; i < words.size(); i++) {  // after "-A CHAIN"
        const std::string &word = words[i];
        if (word == "!") {
            negated = true;
            continue;
        }
        if (takes_one_word(word) && i + 1 >= words.size())
            return Failure{"option " + word + " without its value"};
        if (word == "-p" || word == "--protocol") read_save_protocol(rule, words[i + 1], negated);
        if (word == "-o" || word == "--out-interface") {
            rule.out_interface = words[i + 1];
            rule.out_interface_negated = negated;
        }
        if (word == "-j" || word == "--jump") {
            rule.target = words[i + 1];
            rule.target_words.assign(words.begin() + i + 2, words.end());
            return rule;
        }
        if (takes_one_word(word)) i++;
        negated = false;
    }
    return rule;
}

// `--to-source` of SNAT: "A", "A-B", "A:p", "A-B:p-q"; IPv6 as "[A-B]:p-q" when ports follow.
Status read_to_source(NatRule &rule, std::string_view spec, Family family) {
    std::string_view addresses = spec, ports;
    if (family == Family::ipv6 && spec.starts_with('[')) {
        std::size_t close = spec.find(']');
        if (close == std::string_view::npos) return Failure{"a '[' without its ']'"};
        addresses = spec.substr(1, close - 1);
        std::string_view rest = spec.substr(close + 1);
        if (!rest.empty() && !rest.starts_with(':')) return Failure{"text after ']'"};
        if (!rest.empty()) ports = rest.substr(1);
    } else if (family == Family::ipv4 && spec.find(':') != std::string_view::npos) {
        addresses = spec.substr(0, spec.find(':'));
        ports = spec.substr(spec.find(':') + 1);
    }
    if (!addresses.empty()) {
        std::size_t dash = addresses.find('-');
        std::optional<IpAddress> first = parse_ip_address(addresses.substr(0, dash), family);
        std::optional<IpAddress> last = dash == std::string_view::npos
                                            ? first
                                            : parse_ip_address(addresses.substr(dash + 1), family);
        if (!first || !last) return Failure{"not an address or an address range"};
        Result<std::pair<IpAddress, IpAddress>> range = address_range(*first, *last);
        if (!range) return Failure{range.error()};
        rule.addresses = *range;
    }
    if (!ports.empty()) {
        rule.ports = parse_port_range_text(ports);
        if (!rule.ports) return Failure{"not a port or a port range"};
    }
    return {};
}

Status read_target_options(NatRule &rule, const std::vector<std::string> &words, Family family) {
    for (std::size_t i = 0; i < words.size(); i++) {
        const std::string &word = words[i];
        if (word == "--random") rule.random = true;
        if (word == "--random-fully") rule.fully_random = true;
        if (word == "--persistent") rule.persistent = true;
        bool to_ports = word == "--to-ports" && rule.masquerade;
        bool to_source = word == "--to-source" && !rule.masquerade;
        if (!to_ports && !to_source) continue;
        if (i + 1 >= words.size()) return Failure{word + " without its value"};
        const std::string &spec = words[++i];
        if (to_ports) {
            rule.ports = parse_port_range_text(spec);
            if (!rule.ports) return Failure{"--to-ports " + spec + ": not a port or a range"};
        } else if (Status read = read_to_source(rule, spec, family); !read) {
            return Failure{"--to-source " + spec + ": " + read.error()};
        }
    }
    return {};
}

// One `-A` line of the nat table: its NAT rule if it is a MASQUERADE or SNAT one.
Result<std::optional<NatRule>> save_rule(const std::vector<std::string> &words, Family family,
                                         std::string where) {
    Result<SaveRule> rule = read_save_rule(words);
    if (!rule) return Failure{rule.error()};
    if (rule->target != "MASQUERADE" && rule->target != "SNAT") return std::optional<NatRule>();
    NatRule nat{.family = family,
                .proto = rule->transports.proto(),
                .masquerade = rule->target == "MASQUERADE",
                .out_interface = rule->out_interface,
                .out_interface_negated = rule->out_interface_negated,
                .where = std::move(where)};
    if (Status read = read_target_options(nat, rule->target_words, family); !read)
        return Failure{read.error()};
    if (!rule->transports.any()) return std::optional<NatRule>();
    return std::optional<NatRule>(std::move(nat));
}

// Reads iptables-save's text line by line: "*table", ":CHAIN POLICY [p:b]", "-A CHAIN ...",
// "COMMIT", and "#" comments.
class SaveReader {
  public:
    explicit SaveReader(Family family)
        : family_(family), tool_(family == Family::ipv4 ? "iptables" : "ip6tables") {}

    Status line(std::string_view text) {
        line_number_++;
        while (!text.empty() && (text.back() == '\r' || text.back() == ' ')) text.remove_suffix(1);
        if (text.empty() || text.starts_with('#')) return {};
        if (text.starts_with('*')) return start_table(text.substr(1));
        if (text == "COMMIT") return commit();
        if (table_.empty()) return failure("a line outside a table: " + std::string(text));
        if (text.starts_with(':')) return {};
        if (text.starts_with("-A ")) return append(text);
        return failure("not iptables-save's format: " + std::string(text));
    }

    Status end() const {
        if (!table_.empty())
            return Failure{tool_ + "-save: table " + table_ +
                           " has no COMMIT: the text ends early (truncated?)"};
        return {};
    }

    std::vector<NatRule> rules;

  private:
    Status failure(const std::string &what) const {
        return Failure{tool_ + "-save line " + std::to_string(line_number_) + ": " + what};
    }

    Status start_table(std::string_view name) {
        if (!table_.empty()) return failure("table " + table_ + " has no COMMIT");
        table_ = name;
        return {};
    }

    Status commit() {
        if (table_.empty()) return failure("COMMIT outside a table");
        table_.clear();
        return {};
    }

    Status append(std::string_view text) {
        Result<std::vector<std::string>> words = save_words(text);
        if (!words) return failure(words.error());
        if (words->size() < 2) return failure("-A without a chain");
        const std::string &chain = (*words)[1];
        int number = ++rule_numbers_[table_ + " " + chain];  // as `-L CHAIN --line-numbers`
        if (table_ != "nat") return {};
        std::string where = tool_ + " -t nat " + chain + " rule " + std::to_string(number);
        Result<std::optional<NatRule>> rule = save_rule(*words, family_, where);
        if (!rule) return failure(chain + " rule " + std::to_string(number) + ": " + rule.error());
        if (*rule) rules.push_back(std::move(**rule));
        return {};
    }

    Family family_;
    std::string tool_;
    std::string table_;  // "" outside a table
    int line_number_ = 0;
    std::map<std::string, int> rule_numbers_;
};

}  // namespace

std::optional<IpAddress> parse_ip_address(std::string_view text, std::optional<Family> family) {
    std::string terminated(text);
    IpAddress addr;
    if (family != Family::ipv6 && inet_pton(AF_INET, terminated.c_str(), addr.bytes.data()) == 1) {
        addr.family = Family::ipv4;
        return addr;
    }
    if (family != Family::ipv4 && inet_pton(AF_INET6, terminated.c_str(), addr.bytes.data()) == 1) {
        addr.family = Family::ipv6;
        return addr;
    }
    return std::nullopt;
}

Result<std::vector<NatRule>> nat_rules_from_nft_json(std::string_view json,
                                                     std::size_t *xt_nat_rules) {
    try {
        return read_nft_json(json, xt_nat_rules);
    } catch (const Json::exception &error) {
        // What nlohmann throws when a member has another type than asked (`value("op", "==")`
        // of a number): text that is JSON but not nft's.
        return Failure{std::string("nft -j: not nft's JSON: ") + error.what()};
    }
}

Result<std::vector<NatRule>> nat_rules_from_iptables_save(std::string_view text, Family family) {
    SaveReader reader(family);
    while (!text.empty()) {
        std::size_t end = text.find('\n');
        if (Status read = reader.line(text.substr(0, end)); !read) return Failure{read.error()};
        text.remove_prefix(end == std::string_view::npos ? text.size() : end + 1);
    }
    if (Status ended = reader.end(); !ended) return Failure{ended.error()};
    return std::move(reader.rules);
}

PortRange default_nat_port_range(std::uint16_t original_port) {
    // Privileged onto privileged, and 512-1023 kept apart (nf_nat_l4proto_unique_tuple()).
    if (original_port < 512) return {1, 511};
    if (original_port < 1024) return {600, 1023};
    return {1024, 65535};
}

NatPortRange nat_port_range(const std::vector<NatRule> &rules, Proto proto,
                            const IpAddress &translated_addr, std::uint16_t original_port,
                            std::uint16_t translated_port) {
    PortRange fallback = default_nat_port_range(original_port);
    for (const NatRule &rule : rules) {
        if (rule.family && *rule.family != translated_addr.family) continue;
        if (rule.proto && *rule.proto != proto) continue;
        if (rule.addresses && !address_within(translated_addr, *rule.addresses)) continue;
        PortRange range = rule.ports.value_or(fallback);
        if (!range.contains(translated_port)) continue;
        return {range, true, rule.where};
    }
    return {fallback, false, ""};
}

}  // namespace portwatch
