// SPDX-License-Identifier: Apache-2.0
// What `portwatch --version`, the ready line and `check` say the agent is. The version is
// CMake's project(VERSION) (the one source), the revision git's at build time.
#pragma once

#include <string>

namespace portwatch {

inline constexpr const char *kPortwatchVersion = PORTWATCH_VERSION;

// `git describe` of the tree it was built from ("unknown" outside a checkout).
const char *git_revision();

// "portwatch 0.2.0 (revision 1a2b3c4d5e6f, BPF ABI 2)".
std::string version_text();

}  // namespace portwatch
