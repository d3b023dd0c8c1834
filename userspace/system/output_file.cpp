#include "system/output_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

namespace portwatch {

std::string append_stdout_to(const std::string &path) {
    int fd = open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (fd < 0) return path + ": " + std::strerror(errno);
    std::fflush(stdout);
    // dup2 swaps descriptor 1 in one step: no line can land between two files.
    bool swapped = dup2(fd, STDOUT_FILENO) == STDOUT_FILENO;
    int saved_errno = errno;
    if (fd != STDOUT_FILENO) close(fd);  // open() gave 1 itself if stdout was closed
    return swapped ? "" : path + ": " + std::strerror(saved_errno);
}

}  // namespace portwatch
