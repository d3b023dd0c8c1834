// SPDX-License-Identifier: Apache-2.0
// The capabilities this process has, as the Reach the socket-table passes depend on.
#pragma once

#include "agent/reach.h"

namespace portwatch {

// every_netns and every_owner from the effective capability set (libcap); every_cgroup is the
// capture's to say (Capture::sees_every_cgroup()).
Reach current_reach();

// Prints reach_limits(reach) on stderr, one "portwatch: " line each.
void print_reach_limits(const Reach &reach);

}  // namespace portwatch
