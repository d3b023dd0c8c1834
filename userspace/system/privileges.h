// The capabilities this process has, as the Reach the socket-table passes depend on.
#pragma once

#include "core/reach.h"

namespace portwatch {

Reach current_reach();  // from the effective capability set (libcap)

// Prints reach_limits(current_reach()) on stderr, one "portwatch: " line each.
void print_reach_limits();

}  // namespace portwatch
