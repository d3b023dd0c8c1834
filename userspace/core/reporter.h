// Where decoded events go. Capture hands events over; a reporter formats and
// writes them. Output is buffered and flushed once per batch, not per line.
#pragma once

#include <cstdio>
#include <memory>
#include <string_view>

#include "event.h"
#include "port_model.h"
#include "stats.h"
#include "text.h"

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
};

enum class OutputFormat { text, json };

// Which allocate/allocate_failed/release lines are written (--events). Warnings, reports
// and stats are written in every mode, and the model sees every event whatever is printed.
enum class EventLines { all, failures, none };
inline constexpr EventLines kEventLines[] = {EventLines::all, EventLines::failures,
                                             EventLines::none};

std::string_view name_of(EventLines lines);
bool shows(EventLines lines, const Event &event);

std::unique_ptr<Reporter> make_reporter(OutputFormat format, std::FILE *out, TimeBase time,
                                        EventLines lines = EventLines::all);

}  // namespace portwatch
