// SPDX-License-Identifier: Apache-2.0
// The command of `monitor -- CMD`: started in its cgroup before it runs a single instruction
// of its own (the child joins the cgroup, then execs), as the invoking user under sudo, and
// waited for. Exit codes as the shell gives them.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "base/result.h"

namespace portwatch {

// The shell's exit codes for a command that never ran (POSIX 2.8.2).
inline constexpr int kExitCommandNotFound = 127;
inline constexpr int kExitCommandNotExecutable = 126;

// Who the command runs as: the user sudo was called by, with that user's groups.
struct CommandUser {
    uid_t uid;
    gid_t gid;
    std::vector<gid_t> groups;
};

// SUDO_UID/SUDO_GID's user when we run as root under sudo; std::nullopt otherwise (the command
// then runs as we do). Fails when the variables are set but do not name a user.
Result<std::optional<CommandUser>> sudo_user();

// What a failed start means for the exit code and the one line that says it.
struct StartFailure {
    int exit_code;
    std::string message;  // without "portwatch: "
};

// The exit code the shell gives for a wait status: the code, or 128 + the signal.
int exit_code_of(int wait_status);

class ChildProcess {
  public:
    // Forks; the child writes itself into `cgroup_procs` (a cgroup.procs file), takes `user`'s
    // identity, and execs `argv` (found in PATH as execvp does). Returns once the exec took
    // place or failed: a close-on-exec pipe carries the child's errno back.
    static std::variant<ChildProcess, StartFailure> start(const std::vector<std::string> &argv,
                                                          const std::string &cgroup_procs,
                                                          const std::optional<CommandUser> &user);

    pid_t pid() const { return pid_; }

    // Reaps the child if it has exited (no wait): its exit code, else std::nullopt.
    std::optional<int> exited();

    // Sends the child a signal, unless it was reaped already.
    void forward(int signal) const;

  private:
    explicit ChildProcess(pid_t pid) : pid_(pid) {}
    pid_t pid_;
    std::optional<int> exit_code_;
};

}  // namespace portwatch
