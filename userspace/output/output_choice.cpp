// SPDX-License-Identifier: Apache-2.0
#include "output/output_choice.h"

#include <variant>

namespace portwatch {

std::string_view name_of(EventLines lines) {
    switch (lines) {
        case EventLines::all:
            return "all";
        case EventLines::failures:
            return "failures";
        case EventLines::none:
            return "none";
    }
    return "?";
}

bool shows(EventLines lines, const Event &event) {
    if (lines == EventLines::all) return true;
    const auto *allocation = std::get_if<AllocateEvent>(&event);
    return lines == EventLines::failures && allocation && allocation->failed();
}

}  // namespace portwatch
