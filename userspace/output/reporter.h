// SPDX-License-Identifier: Apache-2.0
// Where decoded events go. Capture hands events over; a reporter formats and
// writes them. Output is buffered and flushed once per batch, not per line.
#pragma once

#include <cstdio>
#include <memory>
#include <string_view>

#include "events/event.h"
#include "model/port_model.h"
#include "agent/stats.h"
#include "output/output_choice.h"
#include "output/ready.h"
#include "output/value_text.h"

namespace portwatch {

class Reporter {
  public:
    virtual ~Reporter() = default;
    virtual void ready(const ReadyInfo &ready) = 0;
    virtual void event(const Event &event) = 0;
    virtual void stats(const StatsSnapshot &stats) = 0;
    virtual void warning(const Warning &warning) = 0;
    virtual void report(const Report &report) = 0;
    virtual void flush() = 0;
    // The offset for the lines from now on: the wall clock may have been stepped.
    virtual void set_time_base(TimeBase) {}
};

std::unique_ptr<Reporter> make_reporter(OutputFormat format, std::FILE *out, TimeBase time,
                                        EventLines lines = EventLines::all);

}  // namespace portwatch
