// SPDX-License-Identifier: Apache-2.0
// Names of enums and errnos as they appear in the JSON contract.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "events/event.h"

namespace portwatch {

std::string_view name_of(How how);
std::string_view name_of(Syscall syscall);
std::string_view name_of(Proto proto);
std::string_view name_of(Family family);
std::string_view name_of(ReleaseReason reason);

// "EADDRINUSE" for 98; "E123" for an errno the C library has no name for.
std::string errno_name(int error);

std::optional<Proto> parse_proto(std::string_view text);
std::optional<Family> parse_family(std::string_view text);  // "4" / "6" / "ipv4" / "ipv6"

}  // namespace portwatch
