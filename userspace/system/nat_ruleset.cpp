// SPDX-License-Identifier: Apache-2.0
#include "system/nat_ruleset.h"

#include <fcntl.h>
#include <linux/nsfs.h>
#include <poll.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <sstream>
#include <thread>

#include "base/unique_fd.h"
#include "system/netns_thread.h"

namespace portwatch {
namespace {

using Clock = std::chrono::steady_clock;

// Beyond this a tool's output is not read: no real ruleset is that large.
constexpr std::size_t kMaxOutput = std::size_t(256) << 20;
// How much of a failed tool's stderr a message quotes.
constexpr std::size_t kMaxQuoted = 300;

struct Tool {
    const char *name;
    std::vector<std::string> args;
    enum Kind { nft, iptables_save } kind;
    Family family;                  // of an iptables-save
    const char *legacy_table_list;  // /proc/net file naming a legacy tool's tables, or null
};

const std::vector<Tool> &tools() {
    static const std::vector<Tool> kTools = {
        {"nft", {"-j", "-t", "list", "ruleset"}, Tool::nft, Family::ipv4, nullptr},
        {"iptables-legacy-save",
         {"-t", "nat"},
         Tool::iptables_save,
         Family::ipv4,
         "ip_tables_names"},
        {"ip6tables-legacy-save",
         {"-t", "nat"},
         Tool::iptables_save,
         Family::ipv6,
         "ip6_tables_names"},
        {"iptables-nft-save", {"-t", "nat"}, Tool::iptables_save, Family::ipv4, nullptr},
        {"ip6tables-nft-save", {"-t", "nat"}, Tool::iptables_save, Family::ipv6, nullptr}};
    return kTools;
}

// As a shell finds a command (absolute directories only: root runs no ./nft), then the sbin
// directories a non-root PATH often lacks.
std::optional<std::string> find_tool(const std::string &name) {
    std::vector<std::string> dirs;
    const char *path = std::getenv("PATH");
    std::stringstream list(path ? path : "");
    for (std::string dir; std::getline(list, dir, ':');)
        if (dir.starts_with('/')) dirs.push_back(dir);
    dirs.insert(dirs.end(), {"/usr/sbin", "/sbin"});
    for (const std::string &dir : dirs) {
        std::string candidate = dir + "/" + name;
        struct stat info {};
        if (stat(candidate.c_str(), &info) == 0 && S_ISREG(info.st_mode) &&
            access(candidate.c_str(), X_OK) == 0)
            return candidate;
    }
    return std::nullopt;
}

bool is_current_netns(int netns_fd) {
    struct stat target {
    }, current{};
    return fstat(netns_fd, &target) == 0 && stat("/proc/thread-self/ns/net", &current) == 0 &&
           target.st_ino == current.st_ino && target.st_dev == current.st_dev;
}

struct ToolOutput {
    std::string out, err;
};

// In the child, between fork and exec (async-signal-safe calls only): tells the parent which
// step failed and why, and ends.
[[noreturn]] void report_failure(int report_fd, int step) {
    int report[2] = {step, errno};
    ssize_t written = write(report_fd, report, sizeof report);
    (void)written;
    _exit(127);
}

struct ChildFds {
    int netns = -1;  // -1: stay in this namespace
    int in = -1, out = -1, err = -1, report = -1;
};

[[noreturn]] void become_tool(const ChildFds &fds, char *const *argv, char *const *env) {
    std::signal(SIGPIPE, SIG_DFL);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    if (fds.netns >= 0 && setns(fds.netns, CLONE_NEWNET) != 0) report_failure(fds.report, 0);
    if (dup2(fds.in, 0) < 0 || dup2(fds.out, 1) < 0 || dup2(fds.err, 2) < 0)
        report_failure(fds.report, 1);
    // The tool inherits none of the agent's descriptors, even one opened without O_CLOEXEC.
    // Before 5.11 the kernel has no CLOSE_RANGE_CLOEXEC: every other one is closed at once
    // (the report pipe is close-on-exec already, and says whether execve() failed).
    if (close_range(3, ~0U, CLOSE_RANGE_CLOEXEC) != 0) {
        if (fds.report > 3) close_range(3, unsigned(fds.report) - 1, 0);
        close_range(unsigned(fds.report) + 1, ~0U, 0);
    }
    execve(argv[0], argv, env);
    report_failure(fds.report, 2);
}

// A tool's stderr as one line of a message, cut short.
std::string one_line(std::string err) {
    while (!err.empty() && (err.back() == '\n' || err.back() == ' ')) err.pop_back();
    for (char &c : err)
        if (c == '\n') c = ' ';
    if (err.size() > kMaxQuoted) err = err.substr(0, kMaxQuoted) + "...";
    return err;
}

// Reads the child's stdout and stderr to their end, or until the deadline.
Status drain(int out_fd, int err_fd, Clock::time_point deadline, const std::string &timed_out,
             ToolOutput &output) {
    pollfd fds[2] = {{out_fd, POLLIN, 0}, {err_fd, POLLIN, 0}};
    std::string *buffers[2] = {&output.out, &output.err};
    int open_fds = 2;
    while (open_fds > 0) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
        if (left.count() <= 0) return Failure{timed_out};
        int ready = poll(fds, 2, int(left.count()) + 1);
        if (ready < 0 && errno != EINTR) return Failure{errno_text("poll")};
        for (int i = 0; i < 2; i++) {
            if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
            char chunk[65536];
            ssize_t got = read(fds[i].fd, chunk, sizeof chunk);
            if (got < 0 && errno == EINTR) continue;
            if (got <= 0) {
                fds[i].fd = -1;
                open_fds--;
                continue;
            }
            buffers[i]->append(chunk, std::size_t(got));
            if (buffers[i]->size() > kMaxOutput)
                return Failure{"printed more than " + std::to_string(kMaxOutput >> 20) + " MiB"};
        }
    }
    return {};
}

// The exit status once the child ends, or the deadline passes (then it is killed).
Result<int> reap(pid_t pid, Clock::time_point deadline, const std::string &timed_out,
                 bool kill_now) {
    int status = 0;
    if (!kill_now) {
        while (Clock::now() < deadline) {
            pid_t reaped = waitpid(pid, &status, WNOHANG);
            if (reaped == pid) return status;
            if (reaped < 0 && errno != EINTR) return Failure{errno_text("waitpid")};
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
        }
    }
    kill(pid, SIGKILL);
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    return Failure{timed_out};
}

std::string failure_of_step(int step, int error, const std::string &path) {
    const char *steps[] = {"cannot join the network namespace (setns)",
                           "cannot set up its standard streams", path.c_str()};
    return std::string(steps[step < 0 || step > 2 ? 2 : step]) + ": " + std::strerror(error);
}

std::vector<char *> pointers(std::vector<std::string> &texts) {
    std::vector<char *> result;
    for (std::string &text : texts) result.push_back(text.data());
    result.push_back(nullptr);
    return result;
}

struct RunningTool {
    pid_t pid;
    UniqueFd out, err;  // the read ends of its stdout and stderr
};

// Forks a child that joins the namespace and execs `path args...` with a fixed environment
// (C messages) and stdin from /dev/null. Returns once the exec took place: a close-on-exec
// pipe carries the child's errno back otherwise.
Result<RunningTool> start_tool(int netns_fd, const std::string &path,
                               const std::vector<std::string> &args) {
    std::vector<std::string> argv_texts = {path};
    argv_texts.insert(argv_texts.end(), args.begin(), args.end());
    std::vector<std::string> env_texts = {"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C"};
    std::vector<char *> argv = pointers(argv_texts), env = pointers(env_texts);
    int out[2], err[2], report[2];
    UniqueFd null_in(open("/dev/null", O_RDONLY | O_CLOEXEC));
    if (null_in.get() < 0) return Failure{errno_text("/dev/null")};
    if (pipe2(out, O_CLOEXEC) != 0) return Failure{errno_text("pipe")};
    UniqueFd out_read(out[0]), out_write(out[1]);
    if (pipe2(err, O_CLOEXEC) != 0) return Failure{errno_text("pipe")};
    UniqueFd err_read(err[0]), err_write(err[1]);
    if (pipe2(report, O_CLOEXEC) != 0) return Failure{errno_text("pipe")};
    UniqueFd report_read(report[0]), report_write(report[1]);
    ChildFds fds{is_current_netns(netns_fd) ? -1 : netns_fd, null_in.get(), out[1], err[1],
                 report[1]};
    pid_t pid = fork();
    if (pid < 0) return Failure{errno_text("fork")};
    if (pid == 0) become_tool(fds, argv.data(), env.data());
    report_write = UniqueFd();
    int failure[2];
    ssize_t got;
    do got = read(report_read.get(), failure, sizeof failure);
    while (got < 0 && errno == EINTR);
    if (got == sizeof failure) {
        int status = 0;
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
        }
        return Failure{failure_of_step(failure[0], failure[1], path)};
    }
    return RunningTool{pid, std::move(out_read), std::move(err_read)};
}

// What the tool printed, or why it did not run or end well: not started, timed out, killed,
// or a non-zero exit status (with what it said on stderr).
Result<ToolOutput> run_tool(int netns_fd, const std::string &path,
                            const std::vector<std::string> &args,
                            std::chrono::milliseconds time_limit) {
    Clock::time_point deadline = Clock::now() + time_limit;
    Result<RunningTool> tool = start_tool(netns_fd, path, args);
    if (!tool) return Failure{tool.error()};
    std::string timed_out = "timed out after " + std::to_string(time_limit.count()) + " ms";
    ToolOutput output;
    Status drained = drain(tool->out.get(), tool->err.get(), deadline, timed_out, output);
    Result<int> status = reap(tool->pid, deadline, timed_out, !drained.ok());
    if (!drained) return Failure{drained.error()};
    if (!status) return Failure{status.error()};
    std::string said = one_line(output.err);
    if (said.empty()) said = "nothing on stderr";
    if (WIFSIGNALED(*status))
        return Failure{"killed by signal " + std::to_string(WTERMSIG(*status)) + ": " + said};
    if (WEXITSTATUS(*status) != 0)
        return Failure{"exit status " + std::to_string(WEXITSTATUS(*status)) + ": " + said};
    return output;
}

// Whether the namespace has a legacy nat table, from the list the legacy tables' module
// keeps per namespace (/proc/net/ip_tables_names). No such file: the module is not loaded.
Result<bool> has_legacy_nat_table(int netns_fd, const std::string &list) {
    Result<bool> has = false;
    Status ran = run_in_netns(netns_fd, [&] {
        std::string path = "/proc/thread-self/net/" + list;
        UniqueFd file(open(path.c_str(), O_RDONLY | O_CLOEXEC));
        if (file.get() < 0) {
            if (errno != ENOENT) has = Failure{errno_text(path)};
            return;
        }
        std::string names;
        char chunk[4096];
        for (ssize_t got; (got = read(file.get(), chunk, sizeof chunk)) > 0;)
            names.append(chunk, std::size_t(got));
        std::istringstream lines(names);
        for (std::string name; std::getline(lines, name);)
            if (name == "nat") has = true;
    });
    if (!ran) return Failure{ran.error()};
    return has;
}

// iptables-save's rules name the tool read ("iptables -t nat ..." -> "iptables-nft -t nat ...").
void name_the_tool(std::vector<NatRule> &rules, const std::string &save_tool) {
    std::string tool = save_tool.substr(0, save_tool.size() - std::strlen("-save"));
    for (NatRule &rule : rules) rule.where = tool + rule.where.substr(rule.where.find(' '));
}

Result<std::vector<NatRule>> parse(const Tool &tool, const std::string &output, NatSource &source) {
    if (tool.kind == Tool::nft) return nat_rules_from_nft_json(output, &source.xt_nat_rules);
    Result<std::vector<NatRule>> rules = nat_rules_from_iptables_save(output, tool.family);
    if (rules) name_the_tool(*rules, tool.name);
    return rules;
}

NatSource failed(NatSource source, const std::string &why) {
    source.state = NatSourceState::failed;
    source.message = why;
    return source;
}

NatSource read_source(int netns_fd, const Tool &tool, std::chrono::milliseconds time_limit,
                      std::vector<NatRule> &rules) {
    NatSource source{.tool = tool.name, .state = NatSourceState::missing};
    std::optional<std::string> path = find_tool(tool.name);
    if (!path) return source;
    source.path = *path;
    if (tool.legacy_table_list) {
        Result<bool> has_table = has_legacy_nat_table(netns_fd, tool.legacy_table_list);
        if (!has_table) return failed(source, has_table.error());
        if (!*has_table) {
            source.state = NatSourceState::no_table;
            return source;
        }
    }
    Result<ToolOutput> output = run_tool(netns_fd, *path, tool.args, time_limit);
    if (!output) return failed(source, output.error());
    Result<std::vector<NatRule>> parsed = parse(tool, output->out, source);
    if (!parsed) return failed(source, parsed.error());
    source.state = NatSourceState::read;
    source.message = one_line(output->err);
    source.rules = parsed->size();
    rules.insert(rules.end(), parsed->begin(), parsed->end());
    return source;
}

}  // namespace

Result<NatRuleset> read_nat_ruleset(int netns_fd, std::chrono::milliseconds time_limit) {
    int type = ioctl(netns_fd, NS_GET_NSTYPE);
    if (type < 0) return Failure{errno_text("netns fd " + std::to_string(netns_fd))};
    if (type != CLONE_NEWNET)
        return Failure{"fd " + std::to_string(netns_fd) + " is not a network namespace"};
    NatRuleset ruleset;
    for (const Tool &tool : tools())
        ruleset.sources.push_back(read_source(netns_fd, tool, time_limit, ruleset.rules));
    return ruleset;
}

std::string describe(const NatSource &source) {
    std::string line = source.tool + ": ";
    switch (source.state) {
        case NatSourceState::read:
            line += "read (" + source.path + "), " + std::to_string(source.rules) + " NAT rule" +
                    (source.rules == 1 ? "" : "s");
            if (source.xt_nat_rules)
                line += ", and " + std::to_string(source.xt_nat_rules) +
                        " iptables-nft NAT rule(s) as xt targets (iptables-nft-save's to read)";
            if (!source.message.empty()) line += "; it said: " + source.message;
            return line;
        case NatSourceState::missing:
            return line + "not installed";
        case NatSourceState::no_table:
            return line + "no legacy nat table in the namespace (not run: it would make one)";
        case NatSourceState::failed:
            return line + "failed: " + source.message;
    }
    return line;
}

}  // namespace portwatch
