// SPDX-License-Identifier: Apache-2.0
#pragma once

#include "app/options.h"

namespace portwatch {

// `portwatch top`: the live terminal view, redrawn each second, until `q`, SIGINT or
// SIGTERM; the terminal is restored whichever ends it. Needs a terminal on stdin and
// stdout. Returns the process exit code. Throws CaptureError.
int run_top(const MonitorOptions &options);

}  // namespace portwatch
