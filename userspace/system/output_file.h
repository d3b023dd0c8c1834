// SPDX-License-Identifier: Apache-2.0
// `monitor --output FILE`: standard output appended to a file, reopened on SIGHUP so that
// logrotate can move the file away and have the next line go to a new one.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <string>
#include <string_view>

#include "base/result.h"

namespace portwatch {

// Flushes stdout, then points file descriptor 1 at `path` (appended to; created 0640 if
// missing; a cut last line is ended first). On failure standard output is left as it was.
Status append_stdout_to(const std::string &path);

// The monitor's output stream: lines to descriptor 1 (stdout, or the --output file), whole
// ones only. A line that does not fit (a full disk, a quota) is dropped and counted, a cut one
// is truncated away, and the agent goes on tracing: the file always ends with a whole line.
// stderr says when writing stops and when it resumes, naming `name`.
//
// Once `stopping` says the agent is asked to stop (SIGINT, SIGTERM), a write that finds no room
// waits for the reader for `grace` in all, from the first such write; then the output is given
// up: that line and every later one are counted as lost without being tried.
class LineOutput {
  public:
    static constexpr std::chrono::seconds kStopGrace{5};

    explicit LineOutput(std::string name, std::function<bool()> stopping = {},
                        std::chrono::milliseconds grace = kStopGrace);
    ~LineOutput();
    LineOutput(const LineOutput &) = delete;
    LineOutput &operator=(const LineOutput &) = delete;

    std::FILE *stream() const { return stream_; }
    const std::string &name() const { return name_; }
    std::uint64_t lines_lost() const { return lines_lost_; }
    std::uint64_t bytes_lost() const { return bytes_lost_; }  // of the lines lost
    // True once the reader took nothing for the grace after a stop.
    bool gave_up() const { return gave_up_; }
    // True once a write found no reader (EPIPE): there is nobody left to write for.
    bool reader_gone() const { return reader_gone_; }
    // How long the write under way has waited (a pipe nobody reads, a stuck disk); 0 when
    // none is. Safe from any thread: the metrics server asks while the loop is stuck.
    std::chrono::nanoseconds blocked_for() const;

  private:
    static ssize_t on_write(void *self, const char *data, std::size_t size);
    void write_lines(std::string_view lines);
    ssize_t write_some(std::string_view data);
    ssize_t write_within_grace(std::string_view data);
    void lost(std::string_view lines, std::size_t written, int error);

    std::string name_;
    std::string partial_;  // the start of a line stdio handed over without its end
    std::FILE *stream_ = nullptr;
    std::function<bool()> stopping_;
    std::chrono::milliseconds grace_;
    std::int64_t give_up_at_ns_ = 0;  // steady_clock; 0 until a write after the stop
    std::uint64_t lines_lost_ = 0;
    std::uint64_t bytes_lost_ = 0;
    int failing_with_ = 0;  // the errno of the failure in progress; 0 while lines go out
    bool reader_gone_ = false;
    bool gave_up_ = false;
    std::atomic<std::int64_t> writing_since_ns_ = 0;  // steady_clock; 0 while not writing
};

}  // namespace portwatch
