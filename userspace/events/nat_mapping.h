// SPDX-License-Identifier: Apache-2.0
// A source NAT mapping as the kernel's conntrack table holds it: a connection's tuple as its
// client sent it, and the tuple the translating netns answers to, whose destination is the
// source address and port the NAT handed out (nf_nat_core.c, get_unique_tuple()).
#pragma once

#include <cstdint>

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
    std::uint32_t id = 0;     // conntrack's CTA_ID: unique among the namespace's live entries
    Proto proto = Proto::tcp;
    NatTuple original;  // as the client sent it
    // As the server answers: its source is the destination after any DNAT (a Service's
    // backend), its destination the translated source address and the NAT's port.
    NatTuple reply;

    const IpAddress &nat_address() const { return reply.destination; }
    std::uint16_t nat_port() const { return reply.destination_port; }
    bool operator==(const NatMapping &) const = default;
};

enum class NatChange { added, removed };

// A mapping conntrack announced (NEW, DESTROY), as the monitor received it at boot_ns.
struct NatEvent {
    std::uint64_t boot_ns = 0;
    NatChange change = NatChange::added;
    NatMapping mapping;
};

}  // namespace portwatch
