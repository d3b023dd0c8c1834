// SPDX-License-Identifier: Apache-2.0
// Aligned columns for people: one line per event, `#` lines for ready and stats.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "events/event.h"
#include "model/port_model.h"
#include "agent/stats.h"
#include "output/ready.h"
#include "output/value_text.h"

namespace portwatch {

std::string text_header();
std::string text_line(const Event &event, const TimeBase &time);
std::string text_line(const ReadyInfo &ready);
std::string text_line(const StatsSnapshot &stats);
std::string text_line(const Warning &warning, const TimeBase &time);
// A compact table: one line per scope, one per process.
std::string text_report(const Report &report, const TimeBase &time);

// Pieces the report and `top` share.
std::string clock_time(std::int64_t realtime_ns);  // HH:MM:SS.uuuuuu
std::string scope_name(const ScopeUsage &usage);   // "bind", "10.0.0.1->192.168.1.2:443"
std::string eta_text(const std::optional<double> &eta_seconds);  // "90s", "-"

}  // namespace portwatch
