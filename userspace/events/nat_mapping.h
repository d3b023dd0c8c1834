// SPDX-License-Identifier: Apache-2.0
// A source NAT mapping as the kernel's conntrack table holds it: a connection's tuple as its
// client sent it, and the tuple the translating netns answers to, whose destination is the
// source address and port the NAT handed out (nf_nat_core.c, get_unique_tuple()).
#pragma once

#include <cstdint>
#include <utility>

#include "events/event.h"

namespace portwatch {

struct NatTuple {
    IpAddress source;
    std::uint16_t source_port = 0;
    IpAddress destination;
    std::uint16_t destination_port = 0;
    bool operator==(const NatTuple &) const = default;
};

struct NatMapping {
    std::uint32_t netns = 0;  // the namespace that translates
    // conntrack's CTA_ID: a 32-bit hash (nf_ct_get_id()), not unique: a table of 100,000
    // entries holds a pair or so with the same one. The reply tuple is unique in the netns.
    std::uint32_t id = 0;
    Proto proto = Proto::tcp;
    NatTuple original;  // as the client sent it
    // As the server answers: its source is the destination after any DNAT (a Service's
    // backend), its destination the translated source address and the NAT's port.
    NatTuple reply;

    const IpAddress &nat_address() const { return reply.destination; }
    std::uint16_t nat_port() const { return reply.destination_port; }
    bool operator==(const NatMapping &) const = default;
};

// A mapping's identity: its netns, protocol and reply tuple, which conntrack keeps unique
// (the NAT's very job is to find a reply tuple no live entry has).
struct NatKey {
    std::uint32_t netns = 0;
    Proto proto = Proto::tcp;
    NatTuple reply;

    explicit NatKey(const NatMapping &mapping)
        : netns(mapping.netns), proto(mapping.proto), reply(mapping.reply) {}
    bool operator==(const NatKey &) const = default;
    template <typename H>
    friend H AbslHashValue(H hash, const NatKey &key) {
        return H::combine(std::move(hash), key.netns, key.proto, key.reply.source.family,
                          key.reply.source.bytes, key.reply.source_port,
                          key.reply.destination.bytes, key.reply.destination_port);
    }
};

enum class NatChange { added, removed };

// A mapping conntrack announced (NEW, DESTROY), as the monitor received it at boot_ns.
struct NatEvent {
    std::uint64_t boot_ns = 0;
    NatChange change = NatChange::added;
    NatMapping mapping;
};

}  // namespace portwatch
