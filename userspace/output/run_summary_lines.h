// SPDX-License-Identifier: Apache-2.0
// The summary at the end of `monitor -- CMD` (model/run_summary.h) as the output writes it:
// one JSON `summary` line (docs/json.md), or a short text block of `#` lines.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "model/run_summary.h"

namespace portwatch {

struct SummaryContext {
    std::int64_t realtime_ns = 0;
    std::vector<std::string> command;
    std::optional<int> exit_code;  // none: the run ended before the command did
};

std::string summary_json_line(const RunSummary &summary, const SummaryContext &context);
std::string summary_text_block(const RunSummary &summary, const SummaryContext &context);

}  // namespace portwatch
