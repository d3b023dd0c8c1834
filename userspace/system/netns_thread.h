// SPDX-License-Identifier: Apache-2.0
// Work that must happen inside another network namespace: /proc/sys/net and a new
// netlink socket both belong to the namespace of the *thread* that uses or creates them.
#pragma once

#include <functional>
#include <string>

#include "base/result.h"

namespace portwatch {

// Runs `body` on a short-lived thread that joined the namespace `netns_fd`
// (setns(CLONE_NEWNET)) and waits for it; the calling thread never changes namespace.
// In the caller's own namespace, `body` runs at once: no thread, no privilege needed.
// Fails, saying why, if `body` could not run.
Status run_in_netns(int netns_fd, const std::function<void()> &body);

// "what: strerror(errno)".
std::string errno_text(const std::string &what);

}  // namespace portwatch
