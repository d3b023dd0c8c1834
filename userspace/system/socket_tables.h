// SPDX-License-Identifier: Apache-2.0
// The kernel's socket tables of one network namespace (sock_diag), and the processes that
// hold those sockets (/proc/*/fd).
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "events/event.h"
#include "events/kernel_socket.h"
#include "base/result.h"
#include "system/sock_diag_answer.h"

namespace portwatch {

// Socket inode -> a process with an fd on that socket (the first found, for a socket shared by
// several). Sorted pairs, 16 B a socket of the host: the hash map of shared pointers it
// replaces took ~50 B, ~50 MiB of a pass's peak on a host of 1M sockets. In blocks: a vector
// held ~1.5 times that while it doubled.
class SocketOwners {
  public:
    // The process holding the socket with this inode; null if none is known.
    std::shared_ptr<TaskInfo> owner_of(std::uint64_t inode) const;

    // While /proc is read, process after process: a socket `process` holds.
    void add(std::uint64_t inode, const std::shared_ptr<TaskInfo> &process);
    // Once every process is in: sorted, each inode once, with the first process added for it.
    void sort();

  private:
    struct Socket {
        std::uint64_t inode;
        std::uint32_t process;  // an index in processes_
    };

    std::deque<Socket> sockets_;
    std::vector<std::shared_ptr<TaskInfo>> processes_;
};

// Every TCP socket (in any state, TIME_WAIT included) and every UDP socket, IPv4 and IPv6,
// of the namespace `netns_fd` refers to; `netns_inode` (its inode) is copied into each.
// `keep`, if given, is asked of each socket as it is read, in this order: TCP over IPv4,
// TCP over IPv6, UDP over IPv4, UDP over IPv6, each TCP table's listeners first (inet_diag's
// order); the sockets it refuses are left out. A failure says briefly why. Needs
// CAP_SYS_ADMIN (setns); the calling thread stays in its namespace.
Result<std::vector<KernelSocket>> dump_sockets(int netns_fd, std::uint32_t netns_inode,
                                               const KeepSocket &keep = {});

// Where read_sockets() hands each socket.
using TakeSocket = std::function<void(KernelSocket)>;

// The same sockets, in the same order, each handed to `take` as it is read (a datagram's at
// a time): what `take` does not keep is not held (a whole table of a busy host's sockets
// was ~100 B of a pass's peak per socket). A failure, saying briefly why, may come after
// some sockets were taken.
Status read_sockets(int netns_fd, std::uint32_t netns_inode, const TakeSocket &take);

// The owners of the sockets every process holds (the first process found for a socket
// shared by several), from /proc/*/fd, with their cgroup (/proc/PID/cgroup). A failure if
// /proc cannot be read. `meanwhile`, if given, is called every few thousand descriptors:
// on a busy host this takes longer than a connect storm takes to fill the ring buffer.
Result<SocketOwners> socket_owners(const std::function<void()> &meanwhile = {});

// `sockets` with `owner` set, for those `owners` knows (TIME_WAIT sockets have no inode).
std::vector<KernelSocket> with_owners(std::vector<KernelSocket> sockets,
                                      const SocketOwners &owners);

}  // namespace portwatch
