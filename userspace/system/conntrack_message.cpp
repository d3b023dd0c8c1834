// SPDX-License-Identifier: Apache-2.0
#include "system/conntrack_message.h"

#include <arpa/inet.h>
#include <libmnl/libmnl.h>
#include <linux/netfilter/nf_conntrack_common.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_conntrack.h>
#include <netinet/in.h>

#include <array>
#include <cstring>
#include <string>

namespace portwatch {
namespace {

// The attributes of one nest (or message), by type; each checked against `types` (MNL_TYPE_*
// by attribute type, MNL_TYPE_UNSPEC: not read) as it is taken.
template <std::size_t N>
struct Attributes {
    const std::array<mnl_attr_data_type, N> &types;
    std::array<const nlattr *, N> at{};
    bool malformed = false;

    static int take(const nlattr *attr, void *data) {
        auto *self = static_cast<Attributes *>(data);
        std::uint16_t type = mnl_attr_get_type(attr);
        if (type >= N || self->types[type] == MNL_TYPE_UNSPEC) return MNL_CB_OK;
        if (mnl_attr_validate(attr, self->types[type]) < 0) {
            self->malformed = true;
            return MNL_CB_ERROR;
        }
        self->at[type] = attr;
        return MNL_CB_OK;
    }
};

constexpr std::array<mnl_attr_data_type, CTA_MAX + 1> kEntryTypes = [] {
    std::array<mnl_attr_data_type, CTA_MAX + 1> types{};
    types[CTA_TUPLE_ORIG] = MNL_TYPE_NESTED;
    types[CTA_TUPLE_REPLY] = MNL_TYPE_NESTED;
    types[CTA_STATUS] = MNL_TYPE_U32;
    types[CTA_ID] = MNL_TYPE_U32;
    return types;
}();

constexpr std::array<mnl_attr_data_type, CTA_TUPLE_MAX + 1> kTupleTypes = [] {
    std::array<mnl_attr_data_type, CTA_TUPLE_MAX + 1> types{};
    types[CTA_TUPLE_IP] = MNL_TYPE_NESTED;
    types[CTA_TUPLE_PROTO] = MNL_TYPE_NESTED;
    return types;
}();

constexpr std::array<mnl_attr_data_type, CTA_IP_MAX + 1> kIpTypes = [] {
    std::array<mnl_attr_data_type, CTA_IP_MAX + 1> types{};
    types[CTA_IP_V4_SRC] = MNL_TYPE_U32;
    types[CTA_IP_V4_DST] = MNL_TYPE_U32;
    types[CTA_IP_V6_SRC] = MNL_TYPE_BINARY;
    types[CTA_IP_V6_DST] = MNL_TYPE_BINARY;
    return types;
}();

constexpr std::array<mnl_attr_data_type, CTA_PROTO_MAX + 1> kProtoTypes = [] {
    std::array<mnl_attr_data_type, CTA_PROTO_MAX + 1> types{};
    types[CTA_PROTO_NUM] = MNL_TYPE_U8;
    types[CTA_PROTO_SRC_PORT] = MNL_TYPE_U16;
    types[CTA_PROTO_DST_PORT] = MNL_TYPE_U16;
    return types;
}();

constexpr std::array<mnl_attr_data_type, CTA_STATS_MAX + 1> kStatsTypes = [] {
    std::array<mnl_attr_data_type, CTA_STATS_MAX + 1> types{};
    types[CTA_STATS_INSERT_FAILED] = MNL_TYPE_U32;
    types[CTA_STATS_DROP] = MNL_TYPE_U32;
    return types;
}();

template <std::size_t N>
Result<Attributes<N>> parse_message(const nlmsghdr *message,
                                    const std::array<mnl_attr_data_type, N> &types) {
    Attributes<N> attributes{types};
    if (message->nlmsg_len < mnl_nlmsg_size(sizeof(nfgenmsg)))
        return Failure{"a conntrack message too short for its header"};
    if (mnl_attr_parse(message, sizeof(nfgenmsg), Attributes<N>::take, &attributes) < 0 ||
        attributes.malformed)
        return Failure{"a malformed conntrack message"};
    return attributes;
}

template <std::size_t N>
Result<Attributes<N>> parse_nest(const nlattr *nest,
                                 const std::array<mnl_attr_data_type, N> &types) {
    Attributes<N> attributes{types};
    if (mnl_attr_parse_nested(nest, Attributes<N>::take, &attributes) < 0 || attributes.malformed)
        return Failure{"a malformed conntrack tuple"};
    return attributes;
}

// An address attribute: IPv4 as a u32 in network order, IPv6 as 16 bytes.
std::optional<IpAddress> address_of(const nlattr *v4, const nlattr *v6) {
    IpAddress address;
    if (v4) {
        address.family = Family::ipv4;
        std::uint32_t value = mnl_attr_get_u32(v4);
        std::memcpy(address.bytes.data(), &value, 4);
        return address;
    }
    if (v6 && mnl_attr_get_payload_len(v6) == 16) {
        address.family = Family::ipv6;
        std::memcpy(address.bytes.data(), mnl_attr_get_payload(v6), 16);
        return address;
    }
    return std::nullopt;
}

struct ParsedTuple {
    NatTuple tuple;
    std::uint8_t protocol = 0;
};

Result<ParsedTuple> tuple_of(const nlattr *nest) {
    Result<Attributes<CTA_TUPLE_MAX + 1>> tuple = parse_nest(nest, kTupleTypes);
    if (!tuple) return Failure{tuple.error()};
    if (!tuple->at[CTA_TUPLE_IP] || !tuple->at[CTA_TUPLE_PROTO])
        return Failure{"a conntrack tuple without its addresses or protocol"};
    Result<Attributes<CTA_IP_MAX + 1>> ip = parse_nest(tuple->at[CTA_TUPLE_IP], kIpTypes);
    if (!ip) return Failure{ip.error()};
    Result<Attributes<CTA_PROTO_MAX + 1>> proto =
        parse_nest(tuple->at[CTA_TUPLE_PROTO], kProtoTypes);
    if (!proto) return Failure{proto.error()};
    std::optional<IpAddress> source = address_of(ip->at[CTA_IP_V4_SRC], ip->at[CTA_IP_V6_SRC]);
    std::optional<IpAddress> destination = address_of(ip->at[CTA_IP_V4_DST], ip->at[CTA_IP_V6_DST]);
    if (!source || !destination || !proto->at[CTA_PROTO_NUM])
        return Failure{"a conntrack tuple without an address or its protocol number"};
    ParsedTuple parsed;
    parsed.protocol = mnl_attr_get_u8(proto->at[CTA_PROTO_NUM]);
    parsed.tuple.source = *source;
    parsed.tuple.destination = *destination;
    if (proto->at[CTA_PROTO_SRC_PORT])
        parsed.tuple.source_port = ntohs(mnl_attr_get_u16(proto->at[CTA_PROTO_SRC_PORT]));
    if (proto->at[CTA_PROTO_DST_PORT])
        parsed.tuple.destination_port = ntohs(mnl_attr_get_u16(proto->at[CTA_PROTO_DST_PORT]));
    return parsed;
}

}  // namespace

Result<std::optional<NatMapping>> nat_mapping_of(const nlmsghdr *message, std::uint32_t netns) {
    Result<Attributes<CTA_MAX + 1>> entry = parse_message(message, kEntryTypes);
    if (!entry) return Failure{entry.error()};
    const auto &at = entry->at;
    if (!at[CTA_TUPLE_ORIG] || !at[CTA_TUPLE_REPLY] || !at[CTA_ID])
        return Failure{"a conntrack entry without its tuples or id"};
    // a DESTROY event carries its status since Linux 2.6.27; an entry without one is no NAT's
    if (!at[CTA_STATUS] || !(ntohl(mnl_attr_get_u32(at[CTA_STATUS])) & IPS_SRC_NAT))
        return std::optional<NatMapping>{};
    Result<ParsedTuple> original = tuple_of(at[CTA_TUPLE_ORIG]);
    if (!original) return Failure{original.error()};
    Result<ParsedTuple> reply = tuple_of(at[CTA_TUPLE_REPLY]);
    if (!reply) return Failure{reply.error()};
    if (original->protocol != IPPROTO_TCP && original->protocol != IPPROTO_UDP)
        return std::optional<NatMapping>{};
    NatMapping mapping;
    mapping.netns = netns;
    mapping.id = ntohl(mnl_attr_get_u32(at[CTA_ID]));
    mapping.proto = original->protocol == IPPROTO_TCP ? Proto::tcp : Proto::udp;
    mapping.original = original->tuple;
    mapping.reply = reply->tuple;
    return std::optional<NatMapping>{mapping};
}

Result<ConntrackStats> conntrack_stats_of(const nlmsghdr *message) {
    Result<Attributes<CTA_STATS_MAX + 1>> stats = parse_message(message, kStatsTypes);
    if (!stats) return Failure{stats.error()};
    ConntrackStats counted;
    if (const nlattr *value = stats->at[CTA_STATS_INSERT_FAILED])
        counted.insert_failed = ntohl(mnl_attr_get_u32(value));
    if (const nlattr *value = stats->at[CTA_STATS_DROP])
        counted.drop = ntohl(mnl_attr_get_u32(value));
    return counted;
}

}  // namespace portwatch
