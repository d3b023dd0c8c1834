// SPDX-License-Identifier: Apache-2.0
// Sets of cookies and ports, as a reconciliation pass collects them of a table.
#pragma once

#include <algorithm>
#include <cstdint>
#include <deque>

#include <absl/container/flat_hash_set.h>

namespace portwatch {

// What a reconciliation pass collects of a table, for membership only: a hash set costs a
// pass's peak ~10 bytes per socket where std::set spent ~48.
using CookieSet = absl::flat_hash_set<std::uint64_t>;
using PortSet = absl::flat_hash_set<std::uint16_t>;

// The cookies a table lists, for membership once the whole table is in: sorted, 8 B each,
// in blocks (a hash set spent 9-19 B a cookie as it grew: ~10 MB of a pass's peak at 500,000
// sockets).
class SortedCookies {
  public:
    void add(std::uint64_t cookie) { cookies_.push_back(cookie); }
    // Once every cookie is added, before contains().
    void sort() { std::sort(cookies_.begin(), cookies_.end()); }
    bool contains(std::uint64_t cookie) const {
        return std::binary_search(cookies_.begin(), cookies_.end(), cookie);
    }

  private:
    std::deque<std::uint64_t> cookies_;
};

// Open-addressing tables keep their peak size: gives a storm's back once it is over.
template <class Table>
void shrink_if_mostly_empty(Table &table) {
    if (table.capacity() > 4096 && table.size() < table.capacity() / 8) table.rehash(0);
}

}  // namespace portwatch
