// SPDX-License-Identifier: Apache-2.0
// Support for kernel tests: load the real BPF programs, run socket code in a
// fresh network namespace, and collect the events that namespace produced.
#pragma once

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "capture/capture.h"
#include "enrich/enricher.h"
#include "events/event.h"

namespace portwatch::test {

// Root and BPF are required. Outside CI a test without them is skipped with the
// reason; under CI=true that is a failure: CI runs as root and must prove it.
bool running_in_ci();

// The hook set the suite runs with: PORTWATCH_HOOKS (auto, fexit, tracepoint), as the
// portwatch binary the tests start reads it too.
HookChoice hooks_under_test();

// A test of something only newer kernels have: on an older kernel it skips with
// missing_feature()'s reason, which scripts/vmtest.py accepts on a kernel older than `since`
// only; on a kernel at least that new it is a failure.
bool kernel_at_least(int major, int minor);
std::string missing_feature(const std::string &feature, int major, int minor);
#define SKIP_UNLESS_KERNEL_HAS(has_it, feature, major, minor)                        \
    do {                                                                             \
        if (has_it) break;                                                           \
        ASSERT_FALSE(kernel_at_least(major, minor))                                  \
            << feature << " fails on a kernel that has it (" #major "." #minor "+)"; \
        GTEST_SKIP() << missing_feature(feature, major, minor);                      \
    } while (0)

// A test that needs root but not the BPF programs: skipped without root, with `why`, and
// failed under CI=true.
class RootTest : public ::testing::Test {
  protected:
    explicit RootTest(const char *why) : why_(why) {}
    void SetUp() override;

  private:
    const char *why_;
};

// Loads and attaches the real programs in SetUp (with config()), or skips/fails.
class KernelTest : public ::testing::Test {
  protected:
    void SetUp() override;
    virtual CaptureConfig config() const { return {}; }
    std::unique_ptr<Capture> capture;
};

// A new network namespace with lo up and the given sysctls (path under
// /proc/sys, value) written in it. It lives as long as this object.
using Sysctls = std::vector<std::pair<std::string, std::string>>;
class Netns {
  public:
    explicit Netns(const Sysctls &sysctls = {});
    ~Netns();
    Netns(const Netns &) = delete;
    Netns &operator=(const Netns &) = delete;

    std::uint32_t inode() const { return inode_; }
    int fd() const { return fd_; }
    // Runs `body` on a new thread that has joined this namespace (netns is per thread).
    void run(const std::function<void()> &body) const;

  private:
    int fd_ = -1;
    std::uint32_t inode_ = 0;
};

// A cgroup made for a test under the cgroup2 mount, parents included, at `path` below its
// root (e.g. "/portwatch-test.slice/docker-<id>.scope"). Removed with the parents it made
// when destroyed, after moving whatever is still inside to the root cgroup.
class TestCgroup {
  public:
    explicit TestCgroup(const std::string &path);
    ~TestCgroup() { remove(); }
    TestCgroup(const TestCgroup &) = delete;
    TestCgroup &operator=(const TestCgroup &) = delete;

    const std::string &path() const { return path_; }
    std::uint64_t id() const;  // the inode of its directory: what BPF reports as cgroup id
    void add(pid_t pid) const;
    void remove();

    static std::string mount();  // where cgroup2 is mounted ("" and a failure if nowhere)
    static void move_to_root(pid_t pid);

  private:
    std::string mount_;
    std::string path_;
    std::vector<std::string> made_;  // absolute directories, outermost first
};

// Socket helpers (abort the test thread's assertions via gtest macros).
int make_socket(Family family, Proto proto);
sockaddr_storage loopback(Family family, std::uint16_t port, socklen_t *length);
std::uint16_t local_port_of(int fd);
std::uint32_t current_tid();
// This process's cgroup v2 path (the "0::" line of /proc/self/cgroup), read without the code
// under test.
std::string own_cgroup_path();

// The next line `fd` gives (read in chunks into `buffer`, which keeps what follows it), or ""
// after EOF or `timeout`.
std::string read_line(int fd, std::string &buffer, std::chrono::milliseconds timeout);

// The real `portwatch` binary (PORTWATCH_BINARY) run with `args`, its stdout and stderr
// read through pipes; in the test's netns unless `netns` is given. Killed (SIGKILL) if
// still running when destroyed. `program` runs another binary the same way.
class Monitor {
  public:
    explicit Monitor(std::vector<std::string> args, const Netns *netns = nullptr,
                     std::string program = PORTWATCH_BINARY);
    ~Monitor();
    Monitor(const Monitor &) = delete;
    Monitor &operator=(const Monitor &) = delete;

    // Next stdout line, or "" after EOF or timeout.
    std::string next_line(std::chrono::milliseconds timeout = std::chrono::seconds(10));
    std::string all_stderr();
    void signal(int sig);
    int wait_exit_code();
    // The exit code, or nullopt while it still runs after `timeout`.
    std::optional<int> wait_exit_code_for(std::chrono::milliseconds timeout);
    // The read end of its standard output: a test may resize the pipe, or leave it unread.
    int stdout_fd() const { return out_; }

  private:
    pid_t pid_ = -1;
    int out_ = -1, err_ = -1;
    bool reaped_ = false;
    std::string buffer_;
};

// A copy of the portwatch binary any user can run (the build tree may be under /root, which
// nobody can reach), removed when destroyed; and the setpriv arguments that run it as nobody
// with no capabilities.
class BinaryForNobody {
  public:
    BinaryForNobody();
    ~BinaryForNobody();
    BinaryForNobody(const BinaryForNobody &) = delete;
    BinaryForNobody &operator=(const BinaryForNobody &) = delete;

    const std::string &path() const { return path_; }
    std::vector<std::string> setpriv_args(const std::vector<std::string> &args) const;

  private:
    std::string dir_, path_;
};

// Socket helpers on the loopback address of `family`; they return what the call returned.
int bind_to(int fd, Family family, std::uint16_t port);
int connect_to(int fd, Family family, std::uint16_t port);
int listener_on(Family family, std::uint16_t port);  // bound and listening (EXPECTs both)

// Collects every event of one netns from a Capture, with the owners of releases joined in
// as the monitor joins them (Enricher; no model, no cgroup paths).
class EventLog {
  public:
    explicit EventLog(Capture &capture)
        : capture_(capture), enricher_(CaptureConfig{}.max_tracked_sockets) {}

    // Polls until `done` holds for this netns's events or `timeout` passes, then
    // keeps polling for `settle` so that unexpected extra events are seen too.
    std::vector<Event> collect(std::uint32_t netns,
                               const std::function<bool(const std::vector<Event> &)> &done,
                               std::chrono::milliseconds timeout = std::chrono::seconds(5),
                               std::chrono::milliseconds settle = std::chrono::milliseconds(300));

  private:
    Capture &capture_;
    Enricher enricher_;
    std::vector<Event> all_;
};

// Filters over a list of events.
std::vector<AllocateEvent> allocations(const std::vector<Event> &events, bool failed = false);
std::vector<ReleaseEvent> releases(const std::vector<Event> &events);

// Done-predicates for EventLog::collect.
std::function<bool(const std::vector<Event> &)> at_least(std::size_t allocated,
                                                         std::size_t failed = 0,
                                                         std::size_t released = 0);

}  // namespace portwatch::test
