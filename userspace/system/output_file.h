// `monitor --output FILE`: standard output appended to a file, reopened on SIGHUP so that
// logrotate can move the file away and have the next line go to a new one.
#pragma once

#include <string>

namespace portwatch {

// Flushes stdout, then points file descriptor 1 at `path` (appended to; created 0640 if
// missing; a cut last line is ended first). Returns "" on success, else why; standard output
// is then left as it was.
std::string append_stdout_to(const std::string &path);

}  // namespace portwatch
