// SPDX-License-Identifier: Apache-2.0
#include "system/output_file.h"

#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <utility>

namespace portwatch {

namespace {

// A run stopped by a full disk can leave its last line cut: the next line must not be
// glued to it, or both are lost to every parser.
Status end_partial_line(int fd, const std::string &path) {
    off_t size = lseek(fd, 0, SEEK_END);
    if (size <= 0) return {};
    char last = 0;
    if (pread(fd, &last, 1, size - 1) != 1) return {};  // not readable back: a pipe, a tty
    if (last == '\n' || write(fd, "\n", 1) == 1) return {};
    return Failure{path + ": " + std::strerror(errno)};
}

}  // namespace

Status append_stdout_to(const std::string &path) {
    int fd = open(path.c_str(), O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (fd < 0 && errno == EACCES) fd = open(path.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
    if (fd < 0) return Failure{path + ": " + std::strerror(errno)};
    if (Status ended = end_partial_line(fd, path); !ended) {
        close(fd);
        return ended;
    }
    std::fflush(stdout);
    // dup2 swaps descriptor 1 in one step: no line can land between two files.
    bool swapped = dup2(fd, STDOUT_FILENO) == STDOUT_FILENO;
    int saved_errno = errno;
    if (fd != STDOUT_FILENO) close(fd);  // open() gave 1 itself if stdout was closed
    if (!swapped) return Failure{path + ": " + std::strerror(saved_errno)};
    return {};
}

LineOutput::LineOutput(std::string name, std::function<bool()> stopping,
                       std::chrono::milliseconds grace)
    : name_(std::move(name)), stopping_(std::move(stopping)), grace_(grace) {
    cookie_io_functions_t io{};
    io.write = &LineOutput::on_write;
    stream_ = fopencookie(this, "w", io);
    if (!stream_)
        throw std::runtime_error("cannot make the output stream: " +
                                 std::string(std::strerror(errno)));
    std::setvbuf(stream_, nullptr, _IOFBF, 1 << 20);
}

LineOutput::~LineOutput() {
    std::fclose(stream_);
}

ssize_t LineOutput::on_write(void *self, const char *data, std::size_t size) {
    auto &output = *static_cast<LineOutput *>(self);
    output.partial_.append(data, size);
    std::size_t end = output.partial_.rfind('\n');
    if (end != std::string::npos) {
        output.write_lines(std::string_view(output.partial_).substr(0, end + 1));
        output.partial_.erase(0, end + 1);
    }
    return static_cast<ssize_t>(size);  // always all: what did not go out is counted, not retried
}

namespace {

std::int64_t steady_ns() {
    return std::chrono::steady_clock::now().time_since_epoch() / std::chrono::nanoseconds(1);
}

}  // namespace

std::chrono::nanoseconds LineOutput::blocked_for() const {
    std::int64_t since = writing_since_ns_.load(std::memory_order_relaxed);
    return std::chrono::nanoseconds(since == 0 ? 0 : steady_ns() - since);
}

void LineOutput::write_lines(std::string_view lines) {
    for (std::size_t written = 0; written < lines.size();) {
        writing_since_ns_.store(steady_ns(), std::memory_order_relaxed);
        ssize_t n = gave_up_ ? -1 : write_some(lines.substr(written));
        writing_since_ns_.store(0, std::memory_order_relaxed);
        if (n > 0) {
            written += std::size_t(n);
        } else if (gave_up_ || n == 0 || errno != EINTR) {
            lost(lines, written, n == 0 ? ENOSPC : errno);
            return;
        }
    }
    if (failing_with_ != 0)
        std::fprintf(stderr, "portwatch: writing to %s again; %llu lines could not be written\n",
                     name_.c_str(), static_cast<unsigned long long>(lines_lost_));
    failing_with_ = 0;
}

// One write(2). A stop interrupts it (EINTR, or the count written so far), and the writes
// after it wait only within the grace.
ssize_t LineOutput::write_some(std::string_view data) {
    if (stopping_ && stopping_()) return write_within_grace(data);
    return ::write(STDOUT_FILENO, data.data(), data.size());
}

// Waits for room until the grace is over, then writes at most PIPE_BUF bytes: a pipe that polls
// writable takes that many without blocking. An output with room now is written whenever the
// grace is over: the stop's last pass may outlast it on a busy host (1M sockets: ~15-40 s),
// and a file always has room.
ssize_t LineOutput::write_within_grace(std::string_view data) {
    std::int64_t now = steady_ns();
    if (give_up_at_ns_ == 0) give_up_at_ns_ = now + std::chrono::nanoseconds(grace_).count();
    std::int64_t left_ms = (give_up_at_ns_ - now + 999'999) / 1'000'000;
    pollfd out{STDOUT_FILENO, POLLOUT, 0};
    int ready = poll(&out, 1, int(std::max<std::int64_t>(left_ms, 0)));
    if (ready < 0) return -1;  // EINTR: the caller asks again, within what is left
    if (ready == 0) {
        gave_up_ = true;
        return -1;
    }
    return ::write(STDOUT_FILENO, data.data(), std::min<std::size_t>(data.size(), PIPE_BUF));
}

// `written` bytes of `lines` went out before `error`: keep the whole lines among them, cut
// the rest away (O_APPEND, one writer: the file ends where the cut line began), count the others.
void LineOutput::lost(std::string_view lines, std::size_t written, int error) {
    std::size_t kept = written == 0 ? 0 : lines.rfind('\n', written - 1) + 1;  // npos + 1 == 0
    struct stat file {};
    if (kept < written && fstat(STDOUT_FILENO, &file) == 0 && S_ISREG(file.st_mode) &&
        ftruncate(STDOUT_FILENO, file.st_size - off_t(written - kept)) != 0)
        std::fprintf(stderr, "portwatch: cannot cut a partial line off %s: %s\n", name_.c_str(),
                     std::strerror(errno));
    lines_lost_ += std::count(lines.begin() + kept, lines.end(), '\n');
    bytes_lost_ += lines.size() - kept;
    if (gave_up_) return;  // the stop is under way: its caller says what was lost, once
    reader_gone_ = reader_gone_ || error == EPIPE;
    if (failing_with_ != error)
        std::fprintf(stderr,
                     "portwatch: cannot write to %s: %s; tracing goes on, the lines not written "
                     "are counted (output_lines_lost in stats)\n",
                     name_.c_str(), std::strerror(error));
    failing_with_ = error;
}

}  // namespace portwatch
