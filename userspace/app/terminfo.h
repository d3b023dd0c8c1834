// SPDX-License-Identifier: Apache-2.0
#pragma once

namespace portwatch {

// Whether curses finds a terminfo entry for $TERM on `fd`. Asked before `top` loads the
// programs, because initscr() exits the process by itself where there is none (a static
// binary on a host, or in an image, without a terminfo directory).
bool terminfo_describes(int fd);

}  // namespace portwatch
