// SPDX-License-Identifier: Apache-2.0
#include "system/child_process.h"

#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <string_view>

namespace portwatch {
namespace {

std::optional<unsigned long> id_in_environment(const char *name) {
    const char *text = std::getenv(name);
    if (!text || !*text) return std::nullopt;
    char *end = nullptr;
    errno = 0;
    unsigned long value = std::strtoul(text, &end, 10);
    if (errno || *end) return std::nullopt;
    return value;
}

// The user's groups as login gives them (initgroups()): computed before fork, as
// getpwuid() and getgrouplist() are not async-signal-safe.
Result<std::vector<gid_t>> groups_of(uid_t uid, gid_t gid) {
    struct passwd *user = getpwuid(uid);
    if (!user) return Failure{"SUDO_UID " + std::to_string(uid) + " names no user"};
    int count = 64;
    std::vector<gid_t> groups(count);
    while (getgrouplist(user->pw_name, gid, groups.data(), &count) < 0) groups.resize(count);
    groups.resize(count);
    return groups;
}

// In the child: tells the parent which step failed and why, and ends.
[[noreturn]] void report_failure(int report_fd, int step) {
    int report[2] = {step, errno};
    ssize_t written = write(report_fd, report, sizeof report);
    (void)written;
    _exit(kExitCommandNotFound);
}

// In the child, between fork and exec: only async-signal-safe calls. The parent's SIGPIPE
// is ignored and its handlers are replaced by the default at exec; the ignored disposition
// and the mask would be inherited.
[[noreturn]] void become_command(char *const *argv, const std::string &cgroup_procs,
                                 const std::optional<CommandUser> &user, int report_fd) {
    auto fail = [report_fd](int step) { report_failure(report_fd, step); };
    std::signal(SIGPIPE, SIG_DFL);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    int procs = open(cgroup_procs.c_str(), O_WRONLY | O_CLOEXEC);
    if (procs < 0 || write(procs, "0", 1) != 1) fail(0);
    close(procs);
    if (user && (setgroups(user->groups.size(), user->groups.data()) != 0 ||
                 setgid(user->gid) != 0 || setuid(user->uid) != 0))
        fail(1);
    execvp(argv[0], argv);
    report_failure(report_fd, 2);
}

StartFailure failure_of(int step, int error, const std::string &command,
                        const std::string &cgroup_procs) {
    if (step == 0)
        return {1, "cannot move the command into its cgroup (" + cgroup_procs +
                       "): " + std::strerror(error)};
    if (step == 1)
        return {1, "cannot take the sudo user's identity: " + std::string(std::strerror(error))};
    // As the shells: "not found" for a name searched in PATH, the reason for a path.
    if (error == ENOENT && command.find('/') == std::string::npos)
        return {kExitCommandNotFound, command + ": command not found"};
    return {error == ENOENT ? kExitCommandNotFound : kExitCommandNotExecutable,
            command + ": " + std::strerror(error)};
}

}  // namespace

Result<std::optional<CommandUser>> sudo_user() {
    std::optional<unsigned long> uid = id_in_environment("SUDO_UID");
    std::optional<unsigned long> gid = id_in_environment("SUDO_GID");
    if (geteuid() != 0 || !uid || !gid) return std::optional<CommandUser>();
    Result<std::vector<gid_t>> groups = groups_of(uid_t(*uid), gid_t(*gid));
    if (!groups) return Failure{groups.error()};
    return std::optional<CommandUser>(CommandUser{uid_t(*uid), gid_t(*gid), *groups});
}

int exit_code_of(int wait_status) {
    if (WIFSIGNALED(wait_status)) return 128 + WTERMSIG(wait_status);
    return WEXITSTATUS(wait_status);
}

std::variant<ChildProcess, StartFailure> ChildProcess::start(
    const std::vector<std::string> &argv, const std::string &cgroup_procs,
    const std::optional<CommandUser> &user) {
    std::vector<char *> args;
    for (const std::string &arg : argv) args.push_back(const_cast<char *>(arg.c_str()));
    args.push_back(nullptr);
    int report[2];
    if (pipe2(report, O_CLOEXEC) != 0)
        return StartFailure{1, std::string("cannot make a pipe: ") + std::strerror(errno)};
    pid_t pid = fork();
    if (pid < 0) {
        int error = errno;
        close(report[0]);
        close(report[1]);
        return StartFailure{1, std::string("cannot fork: ") + std::strerror(error)};
    }
    if (pid == 0) become_command(args.data(), cgroup_procs, user, report[1]);
    close(report[1]);
    int failure[2];
    ssize_t got;
    do got = read(report[0], failure, sizeof failure);
    while (got < 0 && errno == EINTR);
    close(report[0]);
    if (got != sizeof failure) return ChildProcess(pid);  // EOF: the exec closed the pipe
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    return failure_of(failure[0], failure[1], argv.front(), cgroup_procs);
}

std::optional<int> ChildProcess::exited() {
    if (exit_code_) return exit_code_;
    int status = 0;
    pid_t reaped = waitpid(pid_, &status, WNOHANG);
    if (reaped == pid_) exit_code_ = exit_code_of(status);
    return exit_code_;
}

void ChildProcess::forward(int signal) const {
    if (!exit_code_) kill(pid_, signal);
}

}  // namespace portwatch
