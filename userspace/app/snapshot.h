// SPDX-License-Identifier: Apache-2.0
// `portwatch snapshot`: the ports in use now, per netns, scope and process, from the
// kernel's socket tables; no BPF.
#pragma once

#include "app/options.h"

namespace portwatch {

int run_snapshot(const MonitorOptions &options);

}  // namespace portwatch
