// SPDX-License-Identifier: Apache-2.0
// The NDJSON contract (docs/json.md): one object per line, `type` and `ts` first.
#pragma once

#include <nlohmann/json.hpp>

#include "events/event.h"
#include "model/port_model.h"
#include "agent/stats.h"
#include "output/ready.h"
#include "output/value_text.h"

namespace portwatch {

using Json = nlohmann::ordered_json;

Json to_json(const Event &event, const TimeBase &time);
// The line of json_line(to_json(event, time)), written without building the tree: the one
// line per event is the monitor's hot path. append_json_line adds it to `out` (a buffer the
// caller reuses: no allocation per line).
std::string json_line(const Event &event, const TimeBase &time);
void append_json_line(std::string &out, const Event &event, const TimeBase &time);
Json to_json(const ReadyInfo &ready);
Json to_json(const StatsSnapshot &stats);
Json to_json(const Warning &warning, const TimeBase &time);
Json to_json(const Report &report, const TimeBase &time);

// One line, newline included. Never throws on odd bytes: comm is escaped first.
std::string json_line(const Json &object);

}  // namespace portwatch
