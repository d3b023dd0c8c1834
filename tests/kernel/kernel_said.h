// SPDX-License-Identifier: Apache-2.0
// The oracle of the allocation tests: what the kernel said about a socket through the socket
// API (getsockname(), getpeername(), SO_COOKIE, SO_DOMAIN, SO_PROTOCOL), who asked (the
// calling thread's pid, tid, uid, comm, cgroup and netns, as the kernel reports them to it)
// and when (CLOCK_BOOTTIME around the calls, bpf_ktime_get_boot_ns()'s clock). None of it is
// read through portwatch's code. A test records a socket with said_by_kernel() and compares
// an event with it in one line:
//
//     KernelSaid said = said_by_kernel(fd, How::bind, Syscall::bind,
//                                      [&] { return bind_to(fd, family, 0); });
//     said.released = timed([&] { close(fd); });
//     ...
//     expect_allocation(allocated[0], said);
//     expect_release(released[0], said, ReleaseReason::socket_closed);
#pragma once

#include <sys/socket.h>

#include <gtest/gtest.h>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "events/event.h"

namespace portwatch::test {

struct Endpoint {
    IpAddress addr;
    std::uint16_t port = 0;
    bool operator==(const Endpoint &) const = default;
};
std::string to_string(const Endpoint &endpoint);
Endpoint loopback_endpoint(Family family, std::uint16_t port);
Endpoint endpoint_of(const sockaddr_storage &storage);
Endpoint sockname_of(int fd);  // getsockname(), EXPECTed to succeed

// A stretch of CLOCK_BOOTTIME, in ns.
struct Window {
    std::uint64_t from_ns = 0, to_ns = 0;
    bool contains(std::uint64_t ns) const { return from_ns <= ns && ns <= to_ns; }
};
std::uint64_t boottime_ns();
Window timed(const std::function<void()> &step);

struct KernelSaid {
    How how = How::bind;
    Syscall syscall = Syscall::bind;
    Family family = Family::ipv4;
    Proto proto = Proto::tcp;
    std::uint64_t cookie = 0;  // SO_COOKIE
    std::uint32_t netns = 0;   // the calling thread's, from /proc/thread-self/ns/net
    Endpoint local;            // getsockname() right after the allocation
    // Set by a test where getsockname() cannot say the address the allocation had (the kernel
    // reset it before the call returned): only the port is compared.
    bool local_addr_unknown = false;
    // getpeername() right after the allocation, or the destination a sendto() was given
    // (set by the test); nullopt: the socket has no remote.
    std::optional<Endpoint> remote;
    std::uint32_t pid = 0, tid = 0, uid = 0;
    std::string comm;  // PR_GET_NAME of the calling thread
    std::uint64_t cgroup_id = 0;
    Window allocated;  // around the call that allocated
    Window released;   // around the call(s) that released: the test sets it with timed()
};

// Runs `allocate` on `fd` (it must return 0), timed, then reads what the kernel says about
// the socket and the calling thread. Call it on the thread that allocates.
KernelSaid said_by_kernel(int fd, How how, Syscall syscall, const std::function<int()> &allocate);

// An allocate event against what the kernel said: every field.
void expect_allocation(const AllocateEvent &event, const KernelSaid &said);
// A release event against the same: the socket, its owner, how it was allocated, `reason`,
// and held_ns within what the test's clock allows around the allocation and the release.
void expect_release(const ReleaseEvent &event, const KernelSaid &said, ReleaseReason reason);

// The one event of `events` about the socket `said` describes (by its cookie); nullopt, and a
// failure, when there is none or more than one.
template <typename Event>
std::optional<Event> only_event_of(const std::vector<Event> &events, const KernelSaid &said) {
    std::optional<Event> found;
    int count = 0;
    for (const Event &event : events)
        if (event.sock.cookie == said.cookie) {
            found = event;
            count++;
        }
    if (count == 1) return found;
    ADD_FAILURE() << count << " events about " << to_string(said.local) << ", cookie "
                  << said.cookie;
    return std::nullopt;
}

}  // namespace portwatch::test
