// SPDX-License-Identifier: Apache-2.0
// The answer to a sock_diag dump request, as datagrams come: each message checked to lie
// within its datagram and to be as long as its type needs before a byte of it is read.
// Pure: bytes in, sockets out.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "events/kernel_socket.h"
#include "base/result.h"

namespace portwatch {

enum class DumpProgress { more, done };

// Whether a dump keeps a socket, asked of each as it is read, in the order the kernel lists them.
using KeepSocket = std::function<bool(const KernelSocket &)>;

// One table's answer being read: the request's seq (messages of other seqs are skipped),
// what the table holds, where its sockets go, and which (none given: all).
struct DumpAnswer {
    std::uint32_t seq;
    Proto proto;
    std::uint32_t netns_inode;
    std::vector<KernelSocket> &sockets;
    KeepSocket keep = {};
};

// Takes one received datagram: `more` until NLMSG_DONE (`done`); a failure, saying why, for
// an error the kernel sent or a malformed message.
Result<DumpProgress> take_datagram(std::span<const char> datagram, DumpAnswer &answer);

}  // namespace portwatch
