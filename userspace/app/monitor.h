// SPDX-License-Identifier: Apache-2.0
#pragma once

#include "app/options.h"

namespace portwatch {

// `portwatch monitor`: lines (text or JSON) on stdout, and Prometheus metrics with
// --metrics-listen, until --duration or SIGINT/SIGTERM; then a final report and stats.
// Returns the process exit code. Throws CaptureError, MetricsServerError.
int run_monitor(const MonitorOptions &options);

}  // namespace portwatch
