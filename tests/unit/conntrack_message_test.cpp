// SPDX-License-Identifier: Apache-2.0
// ctnetlink messages as the kernel writes them (ctnetlink_fill_info(),
// ctnetlink_ct_stat_cpu_fill_info()), built with libmnl, read back by the decoder.
#include "system/conntrack_message.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <libmnl/libmnl.h>
#include <linux/netfilter/nf_conntrack_common.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_conntrack.h>
#include <netinet/in.h>

#include <vector>

#include "sample_events.h"

namespace portwatch {
namespace {

using testing::ipv4;

struct Tuple {
    IpAddress source;
    std::uint16_t source_port;
    IpAddress destination;
    std::uint16_t destination_port;
};

class Message {
  public:
    explicit Message(std::uint16_t type = IPCTNL_MSG_CT_NEW) : buffer_(8192) {
        header_ = mnl_nlmsg_put_header(buffer_.data());
        header_->nlmsg_type = (NFNL_SUBSYS_CTNETLINK << 8) | type;
        auto *family =
            static_cast<nfgenmsg *>(mnl_nlmsg_put_extra_header(header_, sizeof(nfgenmsg)));
        family->nfgen_family = AF_INET;
        family->version = NFNETLINK_V0;
    }

    Message &tuple(std::uint16_t type, const Tuple &tuple, std::uint8_t protocol = IPPROTO_TCP) {
        nlattr *outer = mnl_attr_nest_start(header_, type);
        nlattr *ip = mnl_attr_nest_start(header_, CTA_TUPLE_IP);
        bool v4 = tuple.source.family == Family::ipv4;
        mnl_attr_put(header_, v4 ? CTA_IP_V4_SRC : CTA_IP_V6_SRC, v4 ? 4 : 16,
                     tuple.source.bytes.data());
        mnl_attr_put(header_, v4 ? CTA_IP_V4_DST : CTA_IP_V6_DST, v4 ? 4 : 16,
                     tuple.destination.bytes.data());
        mnl_attr_nest_end(header_, ip);
        nlattr *proto = mnl_attr_nest_start(header_, CTA_TUPLE_PROTO);
        mnl_attr_put_u8(header_, CTA_PROTO_NUM, protocol);
        mnl_attr_put_u16(header_, CTA_PROTO_SRC_PORT, htons(tuple.source_port));
        mnl_attr_put_u16(header_, CTA_PROTO_DST_PORT, htons(tuple.destination_port));
        mnl_attr_nest_end(header_, proto);
        mnl_attr_nest_end(header_, outer);
        return *this;
    }
    Message &u32(std::uint16_t type, std::uint32_t value) {
        mnl_attr_put_u32(header_, type, htonl(value));
        return *this;
    }
    const nlmsghdr *get() const { return header_; }
    nlmsghdr *get() { return header_; }

  private:
    std::vector<char> buffer_;
    nlmsghdr *header_;
};

const Tuple kOriginal{ipv4(198, 18, 1, 2), 42710, ipv4(198, 19, 0, 2), 80};
const Tuple kReply{ipv4(198, 19, 0, 2), 80, ipv4(198, 19, 0, 1), 40001};

Message translated_entry(std::uint32_t status = IPS_SRC_NAT | IPS_CONFIRMED) {
    Message message;
    message.tuple(CTA_TUPLE_ORIG, kOriginal).tuple(CTA_TUPLE_REPLY, kReply);
    message.u32(CTA_STATUS, status).u32(CTA_ID, 0xdeadbeef);
    return message;
}

TEST(ConntrackMessage, ASourceNatEntryIsItsMapping) {
    Message message = translated_entry();
    Result<std::optional<NatMapping>> read = nat_mapping_of(message.get(), 77);
    ASSERT_TRUE(read) << read.error();
    ASSERT_TRUE(read->has_value());
    const NatMapping &mapping = **read;
    EXPECT_EQ(mapping.netns, 77u);
    EXPECT_EQ(mapping.id, 0xdeadbeefu);
    EXPECT_EQ(mapping.proto, Proto::tcp);
    EXPECT_EQ(mapping.original, (NatTuple{kOriginal.source, 42710, kOriginal.destination, 80}));
    EXPECT_EQ(mapping.nat_address(), ipv4(198, 19, 0, 1));
    EXPECT_EQ(mapping.nat_port(), 40001);
    EXPECT_EQ(mapping.reply.source_port, 80);
}

TEST(ConntrackMessage, AnEntryWithoutSourceNatIsNone) {
    Message message = translated_entry(IPS_CONFIRMED | IPS_DST_NAT);
    Result<std::optional<NatMapping>> read = nat_mapping_of(message.get(), 77);
    ASSERT_TRUE(read) << read.error();
    EXPECT_FALSE(read->has_value());
}

TEST(ConntrackMessage, IcmpIsNone) {
    Message message;
    message.tuple(CTA_TUPLE_ORIG, kOriginal, IPPROTO_ICMP)
        .tuple(CTA_TUPLE_REPLY, kReply, IPPROTO_ICMP)
        .u32(CTA_STATUS, IPS_SRC_NAT)
        .u32(CTA_ID, 1);
    Result<std::optional<NatMapping>> read = nat_mapping_of(message.get(), 77);
    ASSERT_TRUE(read) << read.error();
    EXPECT_FALSE(read->has_value());
}

TEST(ConntrackMessage, IPv6UdpIsRead) {
    IpAddress pod, server, node;
    pod.family = server.family = node.family = Family::ipv6;
    pod.bytes = {0xfd, 0, 0, 0x18, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2};
    server.bytes = {0xfd, 0, 0, 0x19, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2};
    node.bytes = {0xfd, 0, 0, 0x19, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
    Message message;
    message.tuple(CTA_TUPLE_ORIG, {pod, 5353, server, 53}, IPPROTO_UDP)
        .tuple(CTA_TUPLE_REPLY, {server, 53, node, 1030}, IPPROTO_UDP)
        .u32(CTA_STATUS, IPS_SRC_NAT)
        .u32(CTA_ID, 9);
    Result<std::optional<NatMapping>> read = nat_mapping_of(message.get(), 77);
    ASSERT_TRUE(read) << read.error();
    ASSERT_TRUE(read->has_value());
    EXPECT_EQ((*read)->proto, Proto::udp);
    EXPECT_EQ((*read)->nat_address(), node);
    EXPECT_EQ((*read)->nat_port(), 1030);
    EXPECT_EQ((*read)->original.source, pod);
}

TEST(ConntrackMessage, AnEntryWithoutItsReplyTupleIsMalformed) {
    Message message;
    message.tuple(CTA_TUPLE_ORIG, kOriginal).u32(CTA_STATUS, IPS_SRC_NAT).u32(CTA_ID, 1);
    EXPECT_FALSE(nat_mapping_of(message.get(), 77));
}

TEST(ConntrackMessage, AnAttributeLongerThanItsMessageIsMalformed) {
    Message message = translated_entry();
    message.get()->nlmsg_len -= 8;  // the last attribute (CTA_ID) now overruns the message
    auto *last = reinterpret_cast<nlattr *>(reinterpret_cast<char *>(message.get()) +
                                            message.get()->nlmsg_len - 4);
    last->nla_len = 8;
    last->nla_type = CTA_ID;
    EXPECT_FALSE(nat_mapping_of(message.get(), 77));
}

TEST(ConntrackMessage, AStatusOfTheWrongSizeIsMalformed) {
    Message message;
    message.tuple(CTA_TUPLE_ORIG, kOriginal).tuple(CTA_TUPLE_REPLY, kReply);
    mnl_attr_put_u16(message.get(), CTA_STATUS, 1);
    message.u32(CTA_ID, 1);
    EXPECT_FALSE(nat_mapping_of(message.get(), 77));
}

TEST(ConntrackMessage, ACpusStatisticsAreItsInsertFailuresAndDrops) {
    Message message(IPCTNL_MSG_CT_GET_STATS_CPU);
    message.u32(CTA_STATS_INSERT_FAILED, 6).u32(CTA_STATS_DROP, 7).u32(CTA_STATS_FOUND, 100);
    Result<ConntrackStats> stats = conntrack_stats_of(message.get());
    ASSERT_TRUE(stats) << stats.error();
    EXPECT_EQ(stats->insert_failed, 6u);
    EXPECT_EQ(stats->drop, 7u);
}

}  // namespace
}  // namespace portwatch
