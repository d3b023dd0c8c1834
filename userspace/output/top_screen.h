// SPDX-License-Identifier: Apache-2.0
// What `portwatch top` shows, as lines for a terminal of a given size: the scopes closest to
// exhaustion, the processes holding most ports, the most recent failed allocations. Pure:
// the terminal itself (curses) is the app's.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <string>
#include <vector>

#include "events/event.h"
#include "model/port_model.h"
#include "agent/stats.h"
#include "output/value_text.h"

namespace portwatch {

// The last `capacity` failed allocations, newest first.
class RecentFailures {
  public:
    explicit RecentFailures(std::size_t capacity = 100) : capacity_(capacity) {}
    void add(const AllocateEvent &failure);
    const std::deque<AllocateEvent> &newest_first() const { return failures_; }

  private:
    std::size_t capacity_;
    std::deque<AllocateEvent> failures_;
};

struct ScreenLine {
    enum class Style { normal, title, heading, warning, critical };
    std::string text;
    Style style = Style::normal;
};

struct TopInput {
    const Report *current = nullptr;
    const StatsSnapshot *stats = nullptr;
    const RecentFailures *failures = nullptr;
    TimeBase time;
    std::int64_t now_realtime_ns = 0;
};

// At most `rows` lines, none longer than `cols` bytes (cut at a character boundary).
std::vector<ScreenLine> render_top(const TopInput &input, std::size_t rows, std::size_t cols);

}  // namespace portwatch
