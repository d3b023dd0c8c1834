#pragma once

#include "core/options.h"

namespace portwatch {

// `portwatch monitor`: runs until --duration or SIGINT/SIGTERM, then flushes a
// final stats line. Returns the process exit code. Throws CaptureError.
int run_monitor(const MonitorOptions &options);

}  // namespace portwatch
