// SPDX-License-Identifier: Apache-2.0
// `portwatch top` in a real terminal: tmux runs it, send-keys types, capture-pane reads the
// screen. It shows the test netns's sockets and failure, quits on `q` (or ^C) and leaves
// the terminal as it found it.
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <regex>
#include <string>
#include <thread>

#include "kernel_support.h"

namespace portwatch::test {
namespace {

using namespace std::chrono_literals;

const Sysctls kNarrowRange{{"net/ipv4/ip_local_port_range", "40000 40009"}};

std::string shell(const std::string &command) {
    std::string output;
    FILE *pipe = popen((command + " 2>&1").c_str(), "r");
    char buffer[4096];
    while (pipe && std::fgets(buffer, sizeof(buffer), pipe)) output += buffer;
    if (pipe) pclose(pipe);
    return output;
}

// A tmux server of the test's own (-L), one 150x40 window running `command`, and after it
// the exit code and the terminal modes that top must have restored.
class TmuxSession {
  public:
    explicit TmuxSession(const std::string &command)
        : tmux_("/usr/bin/tmux -L portwatch-test-" + std::to_string(getpid())) {
        std::string script = command +
                             "; echo exit=$?; stty -a | tr ' ;' '\\n\\n' | grep -xE -- "
                             "'-?(icanon|echo)' | tr '\\n' ' '; echo; sleep 60";
        shell(tmux_ + " new-session -d -s top -x 150 -y 40 \"" + script + "\"");
    }
    ~TmuxSession() { shell(tmux_ + " kill-server"); }

    std::string screen() const { return shell(tmux_ + " capture-pane -p -t top"); }
    void keys(const std::string &keys) const { shell(tmux_ + " send-keys -t top " + keys); }

    // Polls the screen until it matches `pattern`; returns the last screen.
    std::string wait_for(const std::regex &pattern, std::chrono::seconds timeout = 15s) const {
        auto deadline = std::chrono::steady_clock::now() + timeout;
        std::string text;
        while (std::chrono::steady_clock::now() < deadline) {
            text = screen();
            if (std::regex_search(text, pattern)) break;
            std::this_thread::sleep_for(200ms);
        }
        return text;
    }

  private:
    std::string tmux_;
};

// Two TCP ports from bind(0), held; then bind() to the first again: EADDRINUSE.
std::vector<int> hold_two_and_fail_once(const Netns &netns) {
    std::vector<int> fds;
    netns.run([&] {
        for (int i = 0; i < 2; ++i) {
            fds.push_back(make_socket(Family::ipv4, Proto::tcp));
            EXPECT_EQ(bind_to(fds.back(), Family::ipv4, 0), 0);
        }
        int clash = make_socket(Family::ipv4, Proto::tcp);
        EXPECT_EQ(bind_to(clash, Family::ipv4, local_port_of(fds[0])), -1);
        EXPECT_EQ(errno, EADDRINUSE);
        close(clash);
    });
    return fds;
}

const std::regex kRestored("exit=0\\s+icanon echo");
// The whole first screen: under qemu a capture can come while curses is still drawing it.
const std::regex kFullScreen(
    "SCOPES CLOSEST TO EXHAUSTION[\\s\\S]*PROCESSES HOLDING MOST PORTS[\\s\\S]*RECENT FAILURES");

using TopTest = KernelTest;

TEST_F(TopTest, ShowsScopesProcessesAndFailuresAndQuitsOnQ) {
    capture.reset();
    Netns netns(kNarrowRange);
    std::string ns = std::to_string(netns.inode());
    TmuxSession tmux(std::string(PORTWATCH_BINARY) + " top --netns " + ns);
    std::string screen = tmux.wait_for(kFullScreen);
    ASSERT_TRUE(std::regex_search(screen, kFullScreen)) << screen;

    std::vector<int> fds = hold_two_and_fail_once(netns);
    std::string pid = std::to_string(getpid());
    // The bind scope: 2 of 10 in use; the test process holding both; the failed bind.
    // (a young scope has an ETA from its first second: the fill since its first sample)
    std::regex scope("ok +20\\.0% +2 +10 +0 +[0-9.]+ +(-|[0-9]+s) +" + ns + " +tcp +bind");
    std::regex process(pid + " +kernel_tests +" + ns + " +2 +2 +0 ");
    std::regex failure("[0-9:]{8} +" + pid + " +kernel_tests +EADDRINUSE +bind +bind +" + ns +
                       " +127\\.0\\.0\\.1:[0-9]+ -> -");
    screen = tmux.wait_for(failure);
    EXPECT_TRUE(std::regex_search(screen, scope)) << screen;
    EXPECT_TRUE(std::regex_search(screen, process)) << screen;
    EXPECT_TRUE(std::regex_search(screen, failure)) << screen;

    tmux.keys("q");
    screen = tmux.wait_for(kRestored);
    EXPECT_TRUE(std::regex_search(screen, kRestored)) << screen;
    EXPECT_EQ(screen.find("SCOPES"), std::string::npos) << "the view must be gone:\n" << screen;
    for (int fd : fds) close(fd);
}

TEST_F(TopTest, ControlCAlsoRestoresTheTerminal) {
    capture.reset();
    TmuxSession tmux(std::string(PORTWATCH_BINARY) + " top");
    std::string screen = tmux.wait_for(kFullScreen);
    ASSERT_TRUE(std::regex_search(screen, kFullScreen)) << screen;
    tmux.keys("C-c");
    screen = tmux.wait_for(kRestored);
    EXPECT_TRUE(std::regex_search(screen, kRestored)) << screen;
}

TEST_F(TopTest, WithoutATerminalItSaysWhatToUseInstead) {
    capture.reset();
    Monitor top({"top"});
    EXPECT_EQ(top.wait_exit_code(), 2);
    EXPECT_EQ(top.all_stderr(),
              "portwatch: top needs a terminal; for a pipe or a file use `portwatch monitor "
              "--json` or `portwatch snapshot`\n");
}

}  // namespace
}  // namespace portwatch::test
