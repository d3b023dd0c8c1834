// SPDX-License-Identifier: Apache-2.0
// --container: the prefixes the user gave, resolved to their containers' cgroups at start.
#pragma once

#include "events/filters.h"

namespace portwatch {

// Fills filters.container_cgroups from filters.containers. 0 when each prefix names exactly
// one container; else, after one line on stderr, the exit code: 1 when none is found (or
// cgroup v2 cannot be read), 2 when a prefix names two containers or more.
int resolve_containers(Filters &filters);

}  // namespace portwatch
