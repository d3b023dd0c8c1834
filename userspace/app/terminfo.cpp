// SPDX-License-Identifier: Apache-2.0
#include "app/terminfo.h"

// term.h defines macros named like common words (lines, columns): kept out of top.cpp.
#include <curses.h>
#include <term.h>

namespace portwatch {

bool terminfo_describes(int fd) {
    int status = 0;
    if (setupterm(nullptr, fd, &status) != OK) return false;
    del_curterm(cur_term);
    return true;
}

}  // namespace portwatch
