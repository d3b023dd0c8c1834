// SPDX-License-Identifier: Apache-2.0
#include "output/output_choice.h"

#include <variant>

namespace portwatch {

std::string_view name_of(EventLines lines) {
    return name_in(kEventLinesNames, lines);
}

bool shows(EventLines lines, const Event &event) {
    if (lines == EventLines::all) return true;
    const auto *allocation = std::get_if<AllocateEvent>(&event);
    return lines == EventLines::failures && allocation && allocation->failed();
}

}  // namespace portwatch
