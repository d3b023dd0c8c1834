// SPDX-License-Identifier: Apache-2.0
// What the user chose to see: the format and which event lines. Plain enums, so the command
// line can name them without the model and the formatters.
#pragma once

#include <string_view>

#include "base/enum_names.h"
#include "events/event.h"

namespace portwatch {

enum class OutputFormat { text, json };

// Which allocate/allocate_failed/release lines are written (--events). Warnings, reports
// and stats are written in every mode, and the model sees every event whatever is printed.
enum class EventLines { all, failures, none };
inline constexpr EnumName<EventLines> kEventLinesNames[] = {
    {EventLines::all, "all"}, {EventLines::failures, "failures"}, {EventLines::none, "none"}};

std::string_view name_of(EventLines lines);
bool shows(EventLines lines, const Event &event);

}  // namespace portwatch
