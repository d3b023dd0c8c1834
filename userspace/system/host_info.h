// SPDX-License-Identifier: Apache-2.0
// This host's clocks and kernel release, as plain values.
#pragma once

#include <ctime>
#include <cstdint>
#include <string>

namespace portwatch {

std::int64_t clock_ns(clockid_t clock);

std::string kernel_release();  // uname -r, or "unknown"

}  // namespace portwatch
