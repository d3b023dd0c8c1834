// Aligned columns for people: one line per event, `#` lines for ready and stats.
#pragma once

#include <string>

#include "event.h"
#include "port_model.h"
#include "stats.h"
#include "text.h"

namespace portwatch {

std::string text_header();
std::string text_line(const Event &event, const TimeBase &time);
std::string text_line(const ReadyInfo &ready);
std::string text_line(const StatsSnapshot &stats);
std::string text_line(const Warning &warning, const TimeBase &time);
// A compact table: one line per scope, one per process.
std::string text_report(const Report &report, const TimeBase &time);

}  // namespace portwatch
