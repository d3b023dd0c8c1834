// SPDX-License-Identifier: Apache-2.0
// socket_farm: holds a large number of live loopback TCP sockets for the portwatch baseline
// benchmark (scripts/bench-baseline.py), so that the agent starts on a "busy host".
//
// N sockets (default 100000) are spread over W forked worker processes, W chosen so that each
// worker stays under kMaxSocketsPerWorker descriptors (one process may not hold more than the
// RLIMIT_NOFILE hard limit, and raising that needs CAP_SYS_RESOURCE). Each worker makes its own
// listeners on 127.0.0.1 (port 0: the kernel picks the port) and then connected pairs: a client
// socket, whose connect() picks its local port from the ephemeral range (connect autobind), and
// the accepted socket on the listener's port. The clients are spread round-robin over the
// listeners, so no single destination (127.0.0.1 -> 127.0.0.1:port) comes near the ~55,000
// four-tuples the port range allows. About half of the sockets are connect()-allocated ports.
// Every socket count is exact: listeners + 2 * pairs = N.
//
// When every worker has its sockets, with --ready-file one JSON line is written to that file
// (atomically, by rename), and then the same line goes to standard output (flushed):
//   {"sockets":N,"workers":W,"listeners":L,"clients":C,"setup_s":T,"pid":P}
// Then everything is held until SIGINT or SIGTERM, after which the workers close their sockets
// and the program exits 0. An error prints one line on standard error and exits 1 (2 for usage).
//
// Usage: socket_farm [--sockets N] [--new-netns] [--ready-file PATH]
//   --sockets N        how many TCP sockets to hold (4 <= N <= 2000000; default 100000)
//   --new-netns        first move into a fresh network namespace (needs CAP_SYS_ADMIN), bring
//                      its loopback up and set its net.ipv4.ip_local_port_range to
//                      "10000 65001" (ends of different parity, as the kernel prefers); the
//                      workers are forked afterwards and share it. Without it the caller's
//                      namespace and port range are used as they are.
//   --ready-file PATH  write the JSON line to PATH once all sockets are up

#include <arpa/inet.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

namespace {

constexpr std::uint64_t kDefaultSockets = 100000;
constexpr std::uint64_t kMaxSockets = 2000000;
constexpr std::uint64_t kMinSockets = 4;  // two listeners and one pair
// Descriptors per worker: well under the 20,000 hard limit of the benchmark machines, with room
// for the few descriptors a process has anyway.
constexpr std::uint64_t kMaxSocketsPerWorker = 18000;
constexpr std::uint64_t kSpareFds = 64;
constexpr std::uint64_t kListenersPerWorker = 2;  // one more when needed to make N exact
constexpr int kSignalCheckEvery = 256;            // pairs between checks for SIGINT/SIGTERM
constexpr const char *kPortRange = "10000 65001";

struct Options {
    std::uint64_t sockets = kDefaultSockets;
    bool new_netns = false;
    std::string ready_file;
};

// One line on stderr, then exit.
[[noreturn]] void fail(const std::string &message, int status = 1) {
    std::fprintf(stderr, "socket_farm: %s\n", message.c_str());
    std::exit(status);
}

std::string errno_text(const char *what) {
    return std::string(what) + ": " + std::strerror(errno);
}

[[noreturn]] void usage(const std::string &why) {
    fail(why + " (usage: socket_farm [--sockets N] [--new-netns] [--ready-file PATH])", 2);
}

Options parse_args(int argc, char **argv) {
    Options options;
    for (int i = 1; i < argc; i++) {
        std::string_view arg = argv[i];
        auto value = [&]() -> const char * {
            if (i + 1 >= argc) usage("missing value after " + std::string(arg));
            return argv[++i];
        };
        if (arg == "--sockets") {
            const char *text = value();
            char *end = nullptr;
            errno = 0;
            unsigned long long n = std::strtoull(text, &end, 10);
            if (errno != 0 || end == text || *end != '\0' || text[0] == '-' || n < kMinSockets ||
                n > kMaxSockets)
                usage("--sockets must be an integer in [" + std::to_string(kMinSockets) + ", " +
                      std::to_string(kMaxSockets) + "]");
            options.sockets = n;
        } else if (arg == "--new-netns") {
            options.new_netns = true;
        } else if (arg == "--ready-file") {
            options.ready_file = value();
            if (options.ready_file.empty()) usage("--ready-file needs a path");
        } else if (arg == "-h" || arg == "--help") {
            usage("help");
        } else {
            usage("unknown argument: " + std::string(arg));
        }
    }
    return options;
}

// A fresh network namespace for this process, loopback up, a wide ephemeral port range.
void enter_new_netns() {
    if (unshare(CLONE_NEWNET) != 0) fail(errno_text("unshare(CLONE_NEWNET)"));
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) fail(errno_text("socket (ioctl)"));
    ifreq request{};
    std::strncpy(request.ifr_name, "lo", IFNAMSIZ - 1);
    if (ioctl(fd, SIOCGIFFLAGS, &request) != 0) fail(errno_text("SIOCGIFFLAGS lo"));
    request.ifr_flags |= IFF_UP;
    if (ioctl(fd, SIOCSIFFLAGS, &request) != 0) fail(errno_text("SIOCSIFFLAGS lo"));
    close(fd);

    // /proc/sys/net shows the namespace of the process that opens it: this new one.
    const char *path = "/proc/sys/net/ipv4/ip_local_port_range";
    int range = open(path, O_WRONLY | O_CLOEXEC);
    if (range < 0) fail(errno_text(path));
    std::size_t length = std::strlen(kPortRange);
    if (write(range, kPortRange, length) != static_cast<ssize_t>(length))
        fail(errno_text("writing ip_local_port_range"));
    close(range);
}

std::uint64_t fd_hard_limit() {
    rlimit limit{};
    if (getrlimit(RLIMIT_NOFILE, &limit) != 0) fail(errno_text("getrlimit(RLIMIT_NOFILE)"));
    return limit.rlim_max == RLIM_INFINITY ? kMaxSocketsPerWorker + kSpareFds : limit.rlim_max;
}

struct Plan {
    std::uint64_t sockets;  // this worker's share of N
    std::uint64_t listeners;
    std::uint64_t pairs;
};

Plan plan_for(std::uint64_t sockets) {
    std::uint64_t listeners = std::min(sockets, kListenersPerWorker);
    if ((sockets - listeners) % 2 != 0) listeners++;
    return {sockets, listeners, (sockets - listeners) / 2};
}

// ---- worker ------------------------------------------------------------------------------------

class Worker {
  public:
    Worker(int index, Plan plan, int report_fd)
        : index_(index), plan_(plan), report_fd_(report_fd) {}

    [[noreturn]] void run(const sigset_t &stop_signals) {
        // Die with the parent, also if it is gone already.
        if (prctl(PR_SET_PDEATHSIG, SIGTERM) != 0) report_and_exit(errno_text("prctl"));
        if (getppid() == 1) report_and_exit("parent exited during start-up");
        raise_fd_limit();
        fds_.reserve(plan_.sockets);
        if (!set_up(stop_signals)) close_all_and_exit(0);  // told to stop during set-up
        report("ok");
        int signal = 0;
        while (sigwait(&stop_signals, &signal) != 0) {
        }
        close_all_and_exit(0);
    }

  private:
    void raise_fd_limit() {
        rlimit limit{};
        if (getrlimit(RLIMIT_NOFILE, &limit) != 0) report_and_exit(errno_text("getrlimit"));
        if (limit.rlim_max != RLIM_INFINITY && limit.rlim_max < plan_.sockets + kSpareFds)
            report_and_exit("RLIMIT_NOFILE hard limit " + std::to_string(limit.rlim_max) +
                            " is too low for " + std::to_string(plan_.sockets) + " sockets");
        limit.rlim_cur = limit.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &limit) != 0) report_and_exit(errno_text("setrlimit"));
    }

    int tcp_socket(const char *what) {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0) report_and_exit(errno_text(what));
        fds_.push_back(fd);
        return fd;
    }

    sockaddr_in make_listener() {
        int fd = tcp_socket("socket (listener)");
        sockaddr_in addr{};
        addr.sin_family = AF_INET;
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (bind(fd, reinterpret_cast<sockaddr *>(&addr), sizeof(addr)) != 0)
            report_and_exit(errno_text("bind (listener)"));
        if (listen(fd, SOMAXCONN) != 0) report_and_exit(errno_text("listen"));
        socklen_t len = sizeof(addr);
        if (getsockname(fd, reinterpret_cast<sockaddr *>(&addr), &len) != 0)
            report_and_exit(errno_text("getsockname (listener)"));
        listener_fds_.push_back(fd);
        return addr;
    }

    // Listeners, then the pairs: a blocking connect() (on loopback the handshake completes within
    // it, and the queue never holds more than one connection) and the matching accept().
    // Returns false if SIGINT or SIGTERM arrived meanwhile.
    bool set_up(const sigset_t &stop_signals) {
        std::vector<sockaddr_in> servers;
        for (std::uint64_t i = 0; i < plan_.listeners; i++) servers.push_back(make_listener());
        for (std::uint64_t pair = 0; pair < plan_.pairs; pair++) {
            if (pair % kSignalCheckEvery == 0 && stop_requested(stop_signals)) return false;
            std::size_t which = pair % servers.size();
            int client = tcp_socket("socket (client)");
            if (connect(client, reinterpret_cast<const sockaddr *>(&servers[which]),
                        sizeof(servers[which])) != 0)
                report_and_exit(errno_text("connect") + " after " + std::to_string(pair) +
                                " connections (ephemeral ports exhausted?)");
            int accepted = accept4(listener_fds_[which], nullptr, nullptr, SOCK_CLOEXEC);
            if (accepted < 0) report_and_exit(errno_text("accept"));
            fds_.push_back(accepted);
        }
        return true;
    }

    static bool stop_requested(const sigset_t &stop_signals) {
        sigset_t pending;
        if (sigpending(&pending) != 0) return false;
        for (int signal : {SIGINT, SIGTERM})
            if (sigismember(&stop_signals, signal) == 1 && sigismember(&pending, signal) == 1)
                return true;
        return false;
    }

    void report(const std::string &line) {
        std::string text = line.substr(0, 500) + "\n";
        // A short pipe write (< PIPE_BUF) is atomic. If it fails the parent is gone and there is
        // no one to tell.
        ssize_t written = write(report_fd_, text.data(), text.size());
        (void)written;
    }

    [[noreturn]] void report_and_exit(const std::string &message) {
        report("worker " + std::to_string(index_) + ": " + message);
        close_all_and_exit(1);
    }

    // An abortive close (RST, SO_LINGER 0): no TIME_WAIT left behind. Tens of thousands of
    // them leaving the kernel's hash tables made the next test's table dump skip live sockets
    // (a dump resumes each chain by position: inet_diag_dump_icsk()). A socket that refuses
    // the option is closed plainly.
    [[noreturn]] void close_all_and_exit(int status) {
        static constexpr linger kAbort{1, 0};
        for (int fd : fds_) {
            setsockopt(fd, SOL_SOCKET, SO_LINGER, &kAbort, sizeof kAbort);
            close(fd);
        }
        close(report_fd_);
        std::_Exit(status);
    }

    int index_;
    Plan plan_;
    int report_fd_;
    std::vector<int> fds_;  // every socket, listeners included
    std::vector<int> listener_fds_;
};

// ---- parent ------------------------------------------------------------------------------------

struct Child {
    pid_t pid = -1;
    int report_fd = -1;  // read end of the worker's pipe; -1 once its line is in
    std::string line;
};

void stop_children(std::vector<Child> &children) {
    for (const Child &child : children)
        if (child.pid > 0) kill(child.pid, SIGTERM);
}

// Waits for every child; true if all exited 0.
bool reap_children(std::vector<Child> &children) {
    bool all_ok = true;
    for (Child &child : children) {
        if (child.pid <= 0) continue;
        int status = 0;
        while (waitpid(child.pid, &status, 0) < 0) {
            if (errno != EINTR) {
                all_ok = false;
                break;
            }
        }
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) all_ok = false;
        child.pid = -1;
    }
    return all_ok;
}

[[noreturn]] void abort_farm(std::vector<Child> &children, const std::string &message) {
    stop_children(children);
    reap_children(children);
    fail(message);
}

// Reads the workers' one-line reports. Returns the first error line, "" if every worker is
// ready; a SIGINT/SIGTERM meanwhile is an error too.
std::string wait_until_ready(std::vector<Child> &children, int signal_fd) {
    std::size_t waiting = children.size();
    while (waiting > 0) {
        std::vector<pollfd> fds;
        std::vector<Child *> owners;
        fds.push_back({signal_fd, POLLIN, 0});
        owners.push_back(nullptr);
        for (Child &child : children) {
            if (child.report_fd < 0) continue;
            fds.push_back({child.report_fd, POLLIN, 0});
            owners.push_back(&child);
        }
        if (poll(fds.data(), fds.size(), -1) < 0) {
            if (errno == EINTR) continue;
            return errno_text("poll");
        }
        if (fds[0].revents != 0) return "interrupted before all sockets were up";
        for (std::size_t i = 1; i < fds.size(); i++) {
            if (fds[i].revents == 0) continue;
            Child &child = *owners[i];
            char buffer[512];
            ssize_t n = read(child.report_fd, buffer, sizeof(buffer));
            if (n < 0 && errno == EINTR) continue;
            if (n > 0) {
                child.line.append(buffer, static_cast<std::size_t>(n));
                if (child.line.find('\n') == std::string::npos) continue;
                child.line.erase(child.line.find('\n'));
            } else if (child.line.empty()) {
                child.line = "a worker exited without a report";
            }
            close(child.report_fd);
            child.report_fd = -1;
            waiting--;
            if (child.line != "ok") return child.line;
        }
    }
    return "";
}

bool write_ready_file(const std::string &path, const std::string &line) {
    std::string temporary = path + ".tmp";
    FILE *out = std::fopen(temporary.c_str(), "w");
    if (out == nullptr) return false;
    std::fputs(line.c_str(), out);
    bool ok = std::ferror(out) == 0;
    if (std::fclose(out) != 0 || !ok) return false;
    return std::rename(temporary.c_str(), path.c_str()) == 0;
}

}  // namespace

int main(int argc, char **argv) {
    Options options = parse_args(argc, argv);
    using Clock = std::chrono::steady_clock;
    const auto start = Clock::now();

    // SIGINT/SIGTERM are taken synchronously (signalfd here, sigwait in the workers). Default
    // dispositions first: a background job of a non-interactive shell starts with SIGINT ignored.
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    if (sigprocmask(SIG_BLOCK, &stop_signals, nullptr) != 0) fail(errno_text("sigprocmask"));
    signal(SIGPIPE, SIG_IGN);

    if (options.new_netns) enter_new_netns();

    const std::uint64_t hard = fd_hard_limit();
    if (hard <= kSpareFds + kMinSockets)
        fail("RLIMIT_NOFILE hard limit " + std::to_string(hard) + " is too low");
    const std::uint64_t per_worker = std::min(kMaxSocketsPerWorker, hard - kSpareFds);
    const std::uint64_t workers = (options.sockets + per_worker - 1) / per_worker;
    if (options.sockets < workers * kMinSockets)
        fail("too few sockets for " + std::to_string(workers) + " workers");

    int signal_fd = signalfd(-1, &stop_signals, SFD_CLOEXEC);
    if (signal_fd < 0) fail(errno_text("signalfd"));

    std::vector<Child> children;
    std::uint64_t listeners = 0, clients = 0;
    std::fflush(nullptr);  // nothing buffered may be written twice by the children
    for (std::uint64_t i = 0; i < workers; i++) {
        // Even shares; the first workers take the remainder.
        std::uint64_t share = options.sockets / workers + (i < options.sockets % workers ? 1 : 0);
        Plan plan = plan_for(share);
        listeners += plan.listeners;
        clients += plan.pairs;
        int pipe_fds[2];
        if (pipe2(pipe_fds, O_CLOEXEC) != 0) abort_farm(children, errno_text("pipe2"));
        pid_t pid = fork();
        if (pid < 0) abort_farm(children, errno_text("fork"));
        if (pid == 0) {
            close(pipe_fds[0]);
            close(signal_fd);
            for (const Child &child : children) close(child.report_fd);
            Worker(static_cast<int>(i), plan, pipe_fds[1]).run(stop_signals);
        }
        close(pipe_fds[1]);
        children.push_back({pid, pipe_fds[0], ""});
    }

    std::string error = wait_until_ready(children, signal_fd);
    if (!error.empty()) abort_farm(children, error);

    const double setup_s = std::chrono::duration<double>(Clock::now() - start).count();
    char line[256];
    std::snprintf(line, sizeof(line),
                  "{\"sockets\":%llu,\"workers\":%llu,\"listeners\":%llu,\"clients\":%llu,"
                  "\"setup_s\":%.3f,\"pid\":%d}\n",
                  static_cast<unsigned long long>(options.sockets),
                  static_cast<unsigned long long>(workers),
                  static_cast<unsigned long long>(listeners),
                  static_cast<unsigned long long>(clients), setup_s, static_cast<int>(getpid()));
    if (!options.ready_file.empty() && !write_ready_file(options.ready_file, line))
        abort_farm(children, errno_text(("writing " + options.ready_file).c_str()));
    if (std::fputs(line, stdout) < 0 || std::fflush(stdout) != 0)
        abort_farm(children, errno_text("writing standard output"));

    // Hold until told to stop, or until a worker dies on its own (which is an error).
    while (true) {
        pollfd fd{signal_fd, POLLIN, 0};
        int ready = poll(&fd, 1, 1000);
        if (ready < 0 && errno != EINTR) abort_farm(children, errno_text("poll"));
        if (ready > 0) break;
        for (Child &child : children) {
            int status = 0;
            if (waitpid(child.pid, &status, WNOHANG) == child.pid) {
                child.pid = -1;
                abort_farm(children, "a worker exited while holding its sockets");
            }
        }
    }
    stop_children(children);
    if (!reap_children(children)) fail("a worker failed while closing its sockets");
    return 0;
}
