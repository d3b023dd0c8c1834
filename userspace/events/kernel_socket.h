// SPDX-License-Identifier: Apache-2.0
// One socket as the kernel's socket tables (sock_diag) list it: what the agent reads at
// start (the baseline) and periodically (reconciliation), independent of events.
#pragma once

#include <cstdint>
#include <memory>

#include "events/event.h"

namespace portwatch {

// TCP states as include/net/tcp_states.h numbers them (sock_diag's idiag_state).
enum TcpState : std::uint8_t {
    kTcpEstablished = 1,
    kTcpSynSent = 2,
    kTcpSynRecv = 3,
    kTcpFinWait1 = 4,
    kTcpFinWait2 = 5,
    kTcpTimeWait = 6,
    kTcpClose = 7,
    kTcpCloseWait = 8,
    kTcpLastAck = 9,
    kTcpListen = 10,
    kTcpClosing = 11,
};

struct KernelSocket {
    SocketInfo sock;          // cookie: idiag_cookie, the same as BPF's socket cookie
    std::uint8_t state = 0;   // TcpState; UDP: 7 unconnected, 1 connected
    std::uint64_t inode = 0;  // 0 for TIME_WAIT and SYN_RECV (request) sockets
    std::uint32_t uid = 0;
    std::uint32_t time_wait_left_ms = 0;  // TIME_WAIT: idiag_expires
    // A process holding it (from /proc/*/fd), if any: one per process, shared by its sockets (a
    // pass holds every socket of the host at once; a copy each was ~200 B of its peak per socket).
    std::shared_ptr<TaskInfo> owner;
};

}  // namespace portwatch
