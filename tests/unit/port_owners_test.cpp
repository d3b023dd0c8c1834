// SPDX-License-Identifier: Apache-2.0
#include "enrich/port_owners.h"

#include <gtest/gtest.h>

#include "sample_events.h"

namespace portwatch {
namespace {

using testing::connect_allocate;
using testing::failed_bind;
using testing::ipv6_release;
using testing::kBootNs;

// The release the kernel sends for a connect()-allocated TCP port: socket only.
ReleaseEvent anonymous_release(std::uint64_t cookie, std::uint64_t boot_ns) {
    ReleaseEvent release = ipv6_release(ReleaseReason::time_wait);
    release.sock.cookie = cookie;
    release.boot_ns = boot_ns;
    release.owner_known = false;
    release.owner = {};
    release.held_ns = 0;
    return release;
}

AllocateEvent allocation(std::uint64_t cookie, std::string comm = "curl") {
    AllocateEvent event = connect_allocate(std::move(comm));
    event.sock.cookie = cookie;
    return event;
}

ReleaseEvent completed(PortOwners &owners, ReleaseEvent release) {
    Event event = release;
    owners.apply(event);
    return std::get<ReleaseEvent>(event);
}

void remember(PortOwners &owners, AllocateEvent allocation) {
    Event event = allocation;
    owners.apply(event);
}

TEST(PortOwners, CompletesAReleaseFromItsAllocation) {
    PortOwners owners(8);
    remember(owners, allocation(5, "curl"));
    ReleaseEvent release = completed(owners, anonymous_release(5, kBootNs + 1'500'000));
    EXPECT_TRUE(release.owner_known);
    EXPECT_EQ(release.owner.comm, "curl");
    EXPECT_EQ(release.owner.pid, 1234u);
    EXPECT_EQ(release.how, How::connect_autobind);
    EXPECT_EQ(release.held_ns, 1'500'000u);
    EXPECT_EQ(owners.size(), 0u) << "a released socket is forgotten";
}

TEST(PortOwners, KeepsWhatTheKernelAlreadyKnewButForgetsTheSocket) {
    PortOwners owners(8);
    remember(owners, allocation(5, "curl"));
    ReleaseEvent from_kernel = ipv6_release(ReleaseReason::socket_closed);  // owner nginx
    from_kernel.sock.cookie = 5;
    ReleaseEvent release = completed(owners, from_kernel);
    EXPECT_EQ(release.owner.comm, "nginx");
    EXPECT_EQ(release.how, How::bind);
    EXPECT_EQ(owners.size(), 0u);
}

TEST(PortOwners, AnUnseenAllocationStaysUnknown) {
    PortOwners owners(8);
    remember(owners, allocation(5));
    ReleaseEvent release = completed(owners, anonymous_release(6, kBootNs));
    EXPECT_FALSE(release.owner_known);
    EXPECT_EQ(owners.size(), 1u);
}

TEST(PortOwners, IgnoresFailuresAndSocketsWithoutCookie) {
    PortOwners owners(8);
    AllocateEvent failure = failed_bind(EADDRINUSE);
    remember(owners, failure);
    remember(owners, allocation(0));
    EXPECT_EQ(owners.size(), 0u);
    EXPECT_FALSE(completed(owners, anonymous_release(failure.sock.cookie, kBootNs)).owner_known);
}

TEST(PortOwners, ASocketThatAllocatesAgainHasItsNewOwner) {
    PortOwners owners(8);
    remember(owners, allocation(5, "first"));
    remember(owners, allocation(5, "second"));
    EXPECT_EQ(owners.size(), 1u);
    EXPECT_EQ(completed(owners, anonymous_release(5, kBootNs)).owner.comm, "second");
}

TEST(PortOwners, ForgetsTheOldestWhenFullAndCountsIt) {
    PortOwners owners(2);
    remember(owners, allocation(1, "one"));
    remember(owners, allocation(2, "two"));
    remember(owners, allocation(3, "three"));
    EXPECT_EQ(owners.size(), 2u);
    EXPECT_EQ(owners.evicted(), 1u);
    EXPECT_FALSE(completed(owners, anonymous_release(1, kBootNs)).owner_known);
    EXPECT_EQ(completed(owners, anonymous_release(2, kBootNs)).owner.comm, "two");
    EXPECT_EQ(completed(owners, anonymous_release(3, kBootNs)).owner.comm, "three");
}

TEST(PortOwners, ReleasedSocketsDoNotCountAsEvictions) {
    PortOwners owners(2);
    for (std::uint64_t cookie = 1; cookie <= 1000; cookie++) {
        remember(owners, allocation(cookie));
        completed(owners, anonymous_release(cookie, kBootNs));
    }
    remember(owners, allocation(2000, "live"));
    remember(owners, allocation(2001, "live too"));
    EXPECT_EQ(owners.evicted(), 0u);
    EXPECT_EQ(owners.size(), 2u);
    EXPECT_EQ(completed(owners, anonymous_release(2000, kBootNs)).owner.comm, "live");
}

}  // namespace
}  // namespace portwatch
