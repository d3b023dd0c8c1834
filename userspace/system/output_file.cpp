#include "system/output_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

namespace portwatch {

namespace {

// A run stopped by a full disk can leave its last line cut: the next line must not be
// glued to it, or both are lost to every parser.
std::string end_partial_line(int fd, const std::string &path) {
    off_t size = lseek(fd, 0, SEEK_END);
    if (size <= 0) return "";
    char last = 0;
    if (pread(fd, &last, 1, size - 1) != 1) return "";  // not readable back: a pipe, a tty
    if (last == '\n' || write(fd, "\n", 1) == 1) return "";
    return path + ": " + std::strerror(errno);
}

}  // namespace

std::string append_stdout_to(const std::string &path) {
    int fd = open(path.c_str(), O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (fd < 0 && errno == EACCES) fd = open(path.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
    if (fd < 0) return path + ": " + std::strerror(errno);
    if (std::string error = end_partial_line(fd, path); !error.empty()) {
        close(fd);
        return error;
    }
    std::fflush(stdout);
    // dup2 swaps descriptor 1 in one step: no line can land between two files.
    bool swapped = dup2(fd, STDOUT_FILENO) == STDOUT_FILENO;
    int saved_errno = errno;
    if (fd != STDOUT_FILENO) close(fd);  // open() gave 1 itself if stdout was closed
    return swapped ? "" : path + ": " + std::strerror(saved_errno);
}

}  // namespace portwatch
