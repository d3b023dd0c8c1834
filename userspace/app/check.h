// SPDX-License-Identifier: Apache-2.0
// `portwatch check`: what this kernel and these privileges allow, which hooks `monitor`
// would use, and a non-zero exit with the reason when it cannot run.
#pragma once

#include "app/options.h"

namespace portwatch {

int run_check(const MonitorOptions &options);

}  // namespace portwatch
