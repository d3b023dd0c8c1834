// Aligned columns for people: one line per event, `#` lines for ready and stats.
#pragma once

#include <string>

#include "event.h"
#include "stats.h"
#include "text.h"

namespace portwatch {

std::string text_header();
std::string text_line(const Event &event, const TimeBase &time);
std::string text_line(const ReadyInfo &ready);
std::string text_line(const StatsSnapshot &stats);

}  // namespace portwatch
