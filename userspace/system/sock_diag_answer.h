// The answer to a sock_diag dump request, as datagrams come: each message checked to lie
// within its datagram and to be as long as its type needs before a byte of it is read.
// Pure: bytes in, sockets out.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "events/kernel_socket.h"
#include "system/result.h"

namespace portwatch {

enum class DumpProgress { more, done };

// One table's answer being read: the request's seq (messages of other seqs are skipped),
// what the table holds, and where its sockets go.
struct DumpAnswer {
    std::uint32_t seq;
    Proto proto;
    std::uint32_t netns_inode;
    std::vector<KernelSocket> &sockets;
};

// Takes one received datagram: `more` until NLMSG_DONE (`done`); a failure, saying why, for
// an error the kernel sent or a malformed message.
Result<DumpProgress> take_datagram(std::span<const char> datagram, DumpAnswer &answer);

}  // namespace portwatch
