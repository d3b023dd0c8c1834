// SPDX-License-Identifier: Apache-2.0
// A map that keeps at most `capacity` entries: when full, adding one drops the entry used
// least recently. For what is looked up by id on a host with churn (cgroups come and go).
#pragma once

#include <algorithm>
#include <cstddef>
#include <list>
#include <unordered_map>
#include <utility>

namespace portwatch {

template <typename Key, typename Value>
class LruCache {
  public:
    explicit LruCache(std::size_t capacity) : capacity_(std::max<std::size_t>(capacity, 1)) {}

    // The value for `key`, which becomes the most recently used; nullptr if absent.
    const Value *find(const Key &key) {
        auto found = index_.find(key);
        if (found == index_.end()) return nullptr;
        entries_.splice(entries_.begin(), entries_, found->second);
        return &found->second->second;
    }

    // Adds or replaces the value for `key`, as the most recently used.
    void put(const Key &key, Value value) {
        if (auto found = index_.find(key); found != index_.end()) {
            found->second->second = std::move(value);
            entries_.splice(entries_.begin(), entries_, found->second);
            return;
        }
        if (entries_.size() == capacity_) {
            index_.erase(entries_.back().first);
            entries_.pop_back();
        }
        entries_.emplace_front(key, std::move(value));
        index_[key] = entries_.begin();
    }

    std::size_t size() const { return entries_.size(); }
    std::size_t capacity() const { return capacity_; }

  private:
    using Entry = std::pair<Key, Value>;
    std::size_t capacity_;
    std::list<Entry> entries_;  // most recently used first
    std::unordered_map<Key, typename std::list<Entry>::iterator> index_;
};

}  // namespace portwatch
