// SPDX-License-Identifier: Apache-2.0
// The client sockets a NAT mapping's original tuple may name, by their source address and
// port: how a mapping in the node's netns finds the process in a pod's netns behind it.
// PortModel's own; kept only once the model has seen a NAT mapping.
#pragma once

#include <cstdint>
#include <optional>

#include <absl/container/flat_hash_map.h>

#include "events/event.h"
#include "model/held_socket.h"

namespace portwatch {

class NatClients {
  public:
    bool active() const { return active_; }
    void activate() { active_ = true; }

    void add(const HeldSocket &held);
    void remove(const HeldSocket &held);
    // The cookie of the socket with this source; a socket bound to the wildcard address on
    // that port if none (an unconnected UDP socket's datagrams leave from the pod's address).
    std::optional<std::uint64_t> find(Proto proto, const IpAddress &source,
                                      std::uint16_t port) const;

  private:
    struct Source {
        Proto proto;
        IpAddress address;
        std::uint16_t port;
        bool operator==(const Source &) const = default;
        template <typename H>
        friend H AbslHashValue(H hash, const Source &source) {
            return H::combine(std::move(hash), source.proto, source.address.family,
                              source.address.bytes, source.port);
        }
    };
    static Source source_of(const HeldSocket &held);

    bool active_ = false;
    absl::flat_hash_map<Source, std::uint64_t> by_source_;  // the cookie
};

}  // namespace portwatch
