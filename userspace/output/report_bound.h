// SPDX-License-Identifier: Apache-2.0
// A report a busy host can print: per netns the fullest scopes and the processes holding
// most, the rest summed up in one row per section. Scopes at warning or above always stay.
#pragma once

#include <cstddef>

namespace portwatch {

struct Report;

constexpr std::size_t kDefaultReportTop = 20;

// Keeps `top` scopes per netns and `top` processes per netns (0: no bound).
void bound_report(Report &report, std::size_t top);

}  // namespace portwatch
