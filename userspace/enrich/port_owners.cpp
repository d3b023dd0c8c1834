// SPDX-License-Identifier: Apache-2.0
#include "enrich/port_owners.h"

#include <utility>
#include <variant>

namespace portwatch {

PortOwners::PortOwners(std::size_t capacity) : capacity_(capacity == 0 ? 1 : capacity) {}

void PortOwners::apply(Event &event) {
    if (auto *allocation = std::get_if<AllocateEvent>(&event))
        remember(*allocation);
    else
        complete(std::get<ReleaseEvent>(event));
}

void PortOwners::remember(const AllocateEvent &allocation) {
    std::uint64_t cookie = allocation.sock.cookie;
    if (allocation.failed() || cookie == 0) return;
    if (!owners_.contains(cookie)) {
        make_room();
        arrival_order_.push_back(cookie);
    }
    owners_[cookie] = Owner{allocation.task, allocation.how, allocation.boot_ns};
}

void PortOwners::complete(ReleaseEvent &release) {
    auto found = owners_.find(release.sock.cookie);
    if (found == owners_.end()) return;
    if (!release.owner_known) {
        Owner &owner = found->second;  // erased below: its task is moved, not copied
        release.owner_known = true;
        release.owner = std::move(owner.task);
        release.how = owner.how;
        release.held_ns = release.boot_ns > owner.allocated_boot_ns
                              ? release.boot_ns - owner.allocated_boot_ns
                              : 0;
    }
    owners_.erase(found);
}

void PortOwners::make_room() {
    while (owners_.size() >= capacity_ && !arrival_order_.empty()) {
        std::uint64_t oldest = arrival_order_.front();
        arrival_order_.pop_front();
        if (owners_.erase(oldest)) evicted_++;
    }
    // Released cookies stay in arrival_order_ until they reach the front; do not let
    // them pile up on a host that churns through sockets.
    if (arrival_order_.size() > 2 * capacity_) {
        std::deque<std::uint64_t> live;
        for (std::uint64_t cookie : arrival_order_)
            if (owners_.contains(cookie)) live.push_back(cookie);
        arrival_order_.swap(live);
    }
}

}  // namespace portwatch
