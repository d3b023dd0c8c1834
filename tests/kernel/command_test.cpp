// SPDX-License-Identifier: Apache-2.0
// `portwatch monitor -- CMD`, the real binary: the command and everything it starts are
// followed (a daemon that takes its ports after its parent exited included), nobody else is,
// and portwatch exits with the command's status.
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "kernel_support.h"

namespace portwatch::test {
namespace {

using Json = nlohmann::json;

class CommandTest : public RootTest {
  protected:
    CommandTest() : RootTest("monitor -- CMD loads the BPF programs and makes a cgroup") {}
};

// What port_holder (tests/helpers) wrote: its pid and the ports getsockname() gave it.
struct HeldPorts {
    pid_t pid = 0;
    std::uint16_t udp = 0, listen = 0, connect = 0;
};

std::optional<HeldPorts> read_held_ports(const std::string &path) {
    std::ifstream file(path);
    HeldPorts held;
    if (!(file >> held.pid >> held.udp >> held.listen >> held.connect)) return std::nullopt;
    return held;
}

// Every JSON line of the monitor until its stdout ends.
std::vector<Json> lines_until_exit(Monitor &monitor) {
    std::vector<Json> lines;
    for (std::string line = monitor.next_line(); !line.empty(); line = monitor.next_line())
        lines.push_back(Json::parse(line));
    return lines;
}

// (proto, local port) of the allocate lines about `netns`.
std::set<std::pair<std::string, int>> allocations_in(const std::vector<Json> &lines,
                                                     std::uint32_t netns) {
    std::set<std::pair<std::string, int>> ports;
    for (const Json &line : lines)
        if (line["type"] == "allocate" && line["netns"] == netns)
            ports.insert({line["proto"].get<std::string>(), line["local_port"].get<int>()});
    return ports;
}

void wait_until_gone(pid_t pid) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (kill(pid, 0) == 0 && std::chrono::steady_clock::now() < deadline)
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
}

// The cgroup a run left in place, from its stderr line; "" if it said none.
std::string cgroup_left_in(const std::string &stderr_text) {
    std::smatch match;
    static const std::regex left(R"(still run in (\S+); left running)");
    return std::regex_search(stderr_text, match, left) ? match[1].str() : "";
}

// `monitor --json` without periodic lines, then `args`: CMD after "--" unless they start with
// flags (which then give their own "--").
std::vector<std::string> monitor_json(std::vector<std::string> args) {
    std::vector<std::string> all{"monitor",           "--json", "--stats-interval", "0",
                                 "--report-interval", "0"};
    if (args.empty() || !args.front().starts_with("--")) all.push_back("--");
    all.insert(all.end(), args.begin(), args.end());
    return all;
}

// The daemon's parent exits at once; the daemon binds and connects 0.3 s later, and still
// holds its ports when CMD exits (at 1 s, with 7). A process outside the cgroup binds in the
// same namespace meanwhile.
TEST_F(CommandTest, DaemonStartedByTheCommandIsFollowedAndNobodyElse) {
    Netns netns;
    std::string file = "/tmp/portwatch-command-test-" + std::to_string(getpid());
    std::filesystem::remove(file);
    std::string daemon = "(sleep 0.3; exec " + std::string(PORT_HOLDER_BINARY) + " " + file +
                         " 2500) >/dev/null 2>&1 &";
    Monitor monitor(monitor_json({"sh", "-c", "sh -c '" + daemon + "'; sleep 1; exit 7"}), &netns);
    ASSERT_EQ(Json::parse(monitor.next_line())["type"], "ready");
    std::uint16_t unrelated = 0;
    int unrelated_fd = -1;
    netns.run([&] {
        unrelated_fd = make_socket(Family::ipv4, Proto::udp);
        ASSERT_EQ(bind_to(unrelated_fd, Family::ipv4, 0), 0);
        unrelated = local_port_of(unrelated_fd);
    });

    std::vector<Json> lines = lines_until_exit(monitor);
    EXPECT_EQ(monitor.wait_exit_code(), 7);
    std::string errors = monitor.all_stderr();
    close(unrelated_fd);

    std::optional<HeldPorts> held = read_held_ports(file);
    ASSERT_TRUE(held) << "port_holder wrote nothing; stderr: " << errors;
    std::set<std::pair<std::string, int>> expected{
        {"udp", held->udp}, {"tcp", held->listen}, {"tcp", held->connect}};
    EXPECT_EQ(allocations_in(lines, netns.inode()), expected);
    EXPECT_FALSE(allocations_in(lines, netns.inode()).contains({"udp", unrelated}));

    // The leak report: the daemon's three ports, still held when the command exited.
    const Json *summary = nullptr;
    for (const Json &line : lines)
        if (line["type"] == "summary") summary = &line;
    ASSERT_NE(summary, nullptr);
    EXPECT_EQ((*summary)["exit_code"], 7);
    std::set<std::pair<std::string, int>> still_held;
    for (const Json &entry : (*summary)["still_held"]) {
        EXPECT_EQ(entry["pid"], held->pid);
        still_held.insert({entry["proto"].get<std::string>(), entry["local_port"].get<int>()});
    }
    EXPECT_EQ(still_held, expected);

    // The daemon outlived the command: its cgroup stays, said in one line.
    std::string cgroup = cgroup_left_in(errors);
    EXPECT_FALSE(cgroup.empty()) << errors;
    wait_until_gone(held->pid);
    if (!cgroup.empty()) {
        EXPECT_TRUE(std::filesystem::remove(cgroup)) << cgroup;
    }
    std::filesystem::remove(file);
}

struct ExitCase {
    std::vector<std::string> command;
    int exit_code;
    std::string stderr_has;
};

TEST_F(CommandTest, ExitsWithTheCommandsStatus) {
    const ExitCase cases[] = {
        {{"true"}, 0, ""},
        {{"sh", "-c", "exit 7"}, 7, ""},
        {{"portwatch-no-such-command"},
         127,
         "portwatch: portwatch-no-such-command: command not found"},
        {{"/etc/passwd"}, 126, "portwatch: /etc/passwd: Permission denied"},
        {{"sh", "-c", "kill -9 $$"}, 128 + SIGKILL, ""},
    };
    for (const ExitCase &run : cases) {
        Monitor monitor(monitor_json(run.command));
        std::vector<Json> lines = lines_until_exit(monitor);
        EXPECT_EQ(monitor.wait_exit_code(), run.exit_code) << run.command.front();
        std::string errors = monitor.all_stderr();
        if (!run.stderr_has.empty()) {
            EXPECT_NE(errors.find(run.stderr_has), std::string::npos) << errors;
        }
        ASSERT_FALSE(lines.empty());
        EXPECT_EQ(lines.back()["type"], "stats");  // the final stats, as after --duration
        EXPECT_EQ(lines.back()["final"], true);
        EXPECT_TRUE(cgroup_left_in(errors).empty()) << errors;
    }
}

// SIGTERM to portwatch goes to the command; portwatch ends when it does, with its status.
TEST_F(CommandTest, ForwardsSigtermToTheCommand) {
    Monitor monitor(monitor_json({"sleep", "30"}));
    ASSERT_EQ(Json::parse(monitor.next_line())["type"], "ready");
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    monitor.signal(SIGTERM);
    std::optional<int> code = monitor.wait_exit_code_for(std::chrono::seconds(10));
    ASSERT_TRUE(code);
    EXPECT_EQ(*code, 128 + SIGTERM);
}

// Sets an environment variable for the scope of a test (the monitor inherits it).
class ScopedEnv {
  public:
    ScopedEnv(const char *name, const std::string &value) : name_(name) {
        setenv(name, value.c_str(), 1);
    }
    ~ScopedEnv() { unsetenv(name_); }
    ScopedEnv(const ScopedEnv &) = delete;
    ScopedEnv &operator=(const ScopedEnv &) = delete;

  private:
    const char *name_;
};

std::set<std::string> words_of(const std::string &line) {
    std::set<std::string> words;
    std::istringstream in(line);
    for (std::string word; in >> word;) words.insert(word);
    return words;
}

// Root with SUDO_UID/SUDO_GID, as sudo leaves them: the command runs as the user sudo was
// called by, with that user's groups (what `id` says inside it, against the group database).
TEST_F(CommandTest, UnderSudoTheCommandRunsAsTheCallingUser) {
    const struct passwd *nobody = getpwnam("nobody");
    ASSERT_NE(nobody, nullptr);
    uid_t uid = nobody->pw_uid;
    gid_t gid = nobody->pw_gid;
    int count = 64;
    std::vector<gid_t> groups(count);
    ASSERT_GE(getgrouplist("nobody", gid, groups.data(), &count), 0);
    std::set<std::string> expected_groups;
    for (int i = 0; i < count; i++) expected_groups.insert(std::to_string(groups[i]));

    char dir[] = "/tmp/portwatch-sudo-XXXXXX";
    ASSERT_NE(mkdtemp(dir), nullptr);
    ASSERT_EQ(chmod(dir, 0777), 0);
    std::string said = std::string(dir) + "/id";
    {
        ScopedEnv sudo_uid("SUDO_UID", std::to_string(uid));
        ScopedEnv sudo_gid("SUDO_GID", std::to_string(gid));
        Monitor monitor(monitor_json({"sh", "-c", "{ id -u; id -g; id -G; } > " + said}));
        lines_until_exit(monitor);
        EXPECT_EQ(monitor.wait_exit_code(), 0) << monitor.all_stderr();
    }
    std::ifstream file(said);
    std::string uid_line, gid_line, groups_line;
    ASSERT_TRUE(std::getline(file, uid_line) && std::getline(file, gid_line) &&
                std::getline(file, groups_line));
    EXPECT_EQ(uid_line, std::to_string(uid));
    EXPECT_EQ(gid_line, std::to_string(gid));
    EXPECT_EQ(words_of(groups_line), expected_groups);
    std::filesystem::remove_all(dir);
}

// port_holder's UDP sockets in a netns of 10 ephemeral ports: with `extra_udp` 9 they take
// all 10 (critical), with 1 two (ok). Returns the exit code and stderr.
std::pair<int, std::string> run_filling(int extra_udp, const std::string &file) {
    Netns netns(Sysctls{{"net/ipv4/ip_local_port_range", "40000 40009"}});
    Monitor monitor(monitor_json({"--fail-on", "critical", "--", PORT_HOLDER_BINARY, file, "300",
                                  std::to_string(extra_udp)}),
                    &netns);
    lines_until_exit(monitor);
    int code = monitor.wait_exit_code();
    return {code, monitor.all_stderr()};
}

TEST_F(CommandTest, FailOnCriticalExitsThreeWhenAScopeFills) {
    std::string file = "/tmp/portwatch-fail-on-test-" + std::to_string(getpid());
    auto [code, errors] = run_filling(9, file);
    EXPECT_EQ(code, 3) << errors;
    EXPECT_NE(errors.find("portwatch: --fail-on critical: a scope reached critical; " +
                          std::string(PORT_HOLDER_BINARY) + " exited with 0"),
              std::string::npos)
        << errors;
    std::filesystem::remove(file);
}

TEST_F(CommandTest, FailOnCriticalExitsWithTheCommandsStatusWhenNoScopeFills) {
    std::string file = "/tmp/portwatch-fail-on-test-" + std::to_string(getpid());
    auto [code, errors] = run_filling(1, file);
    EXPECT_EQ(code, 0) << errors;
    EXPECT_EQ(errors.find("--fail-on"), std::string::npos) << errors;
    ASSERT_TRUE(read_held_ports(file)) << "port_holder did not run: " << errors;
    std::filesystem::remove(file);
}

// Every cgroup2 mount point in /proc/mounts.
std::vector<std::string> cgroup2_mounts() {
    std::vector<std::string> mounts;
    std::ifstream proc_mounts("/proc/mounts");
    for (std::string source, target, type, rest; proc_mounts >> source >> target >> type;) {
        if (type == "cgroup2") mounts.push_back(target);
        std::getline(proc_mounts, rest);
    }
    return mounts;
}

// portwatch monitor -- true in a mount namespace of its own without cgroup2: exit 1, one line.
TEST_F(CommandTest, NoCgroup2MountIsOneLineAndExitOne) {
    std::vector<std::string> mounts = cgroup2_mounts();
    ASSERT_FALSE(mounts.empty()) << "this host has no cgroup2 mount to take away";
    int err[2];
    ASSERT_EQ(pipe(err), 0);
    pid_t child = fork();
    if (child == 0) {
        dup2(err[1], STDERR_FILENO);
        int null = open("/dev/null", O_WRONLY);
        dup2(null, STDOUT_FILENO);
        if (unshare(CLONE_NEWNS) != 0 || mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr))
            _exit(120);
        for (const std::string &target : mounts)
            if (umount2(target.c_str(), MNT_DETACH) != 0) _exit(121);
        execl(PORTWATCH_BINARY, PORTWATCH_BINARY, "monitor", "--", "true", nullptr);
        _exit(122);
    }
    close(err[1]);
    std::string errors;
    char chunk[512];
    for (ssize_t n; (n = read(err[0], chunk, sizeof chunk)) > 0;) errors.append(chunk, n);
    close(err[0]);
    int status = 0;
    ASSERT_EQ(waitpid(child, &status, 0), child);
    ASSERT_TRUE(WIFEXITED(status));
    EXPECT_EQ(WEXITSTATUS(status), 1) << errors;
    EXPECT_EQ(errors,
              "portwatch: cannot run true: no cgroup v2 file system is mounted (no cgroup2 in "
              "/proc/mounts)\n");
}

TEST_F(CommandTest, DoubleDashWithoutCommandIsBadInput) {
    Monitor monitor({"monitor", "--"});
    EXPECT_EQ(monitor.wait_exit_code(), 2);
    std::string errors = monitor.all_stderr();
    EXPECT_EQ(std::count(errors.begin(), errors.end(), '\n'), 1) << errors;
}

}  // namespace
}  // namespace portwatch::test
