// SPDX-License-Identifier: Apache-2.0
// The wall clock the live loop writes by. Event times come from the kernel as CLOCK_BOOTTIME,
// stats lines read CLOCK_REALTIME: the offset between the two is taken again every loop turn,
// so that both agree after the wall clock is stepped (NTP, `date -s`). The clocks are injected.
#pragma once

#include <cstdint>
#include <functional>

#include "output/reporter.h"
#include "output/value_text.h"

namespace portwatch {

struct ClockReading {
    std::int64_t realtime_ns = 0;
    std::int64_t boottime_ns = 0;
};

using Clocks = std::function<ClockReading()>;

// Reads the clocks and hands the reporter this moment's offset. Returns the reading.
inline ClockReading follow_wall_clock(const Clocks &clocks, Reporter &reporter) {
    ClockReading now = clocks();
    reporter.set_time_base(TimeBase::between(now.realtime_ns, now.boottime_ns));
    return now;
}

}  // namespace portwatch
