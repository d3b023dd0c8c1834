// SPDX-License-Identifier: Apache-2.0
// connect_storm: a bounded loopback TCP connect load generator for the portwatch benchmark.
//
// A listener on 127.0.0.1:0 (this process) with an accept thread that accepts and closes; the
// main thread loops socket(), blocking connect(), getsockname() to learn the local port the
// kernel picked (connect autobind), close(). At the end it prints one JSON line:
//   {"connections":N,"failures":F,"seconds":T,"rate":R,"pid":P,"cpu_user_s":U,"cpu_sys_s":S}
// (cpu_*: this process's CPU time, both threads; in-kernel work done on its behalf, such as BPF
// programs attached to the socket paths it exercises, counts as sys.)
//
// Usage: connect_storm (--seconds S | --count N) [--ports-file PATH] [--max-seconds M]
//                      [--new-netns]
//   --seconds S      run for S seconds (0 < S <= 3600)
//   --count N        stop after N successful connections (or after --max-seconds, default 60)
//   --ports-file P   write every local port obtained, one per line, in order (written at the end,
//                    so the file I/O does not slow the loop)
//   --new-netns      first move into a fresh network namespace (needs CAP_SYS_ADMIN) and bring
//                    its loopback up: every run then starts from the same empty TCP state, not
//                    from the TIME_WAIT sockets earlier runs left in the caller's namespace
//
// Only loopback is used. A connect() that fails with EADDRNOTAVAIL (ephemeral ports exhausted,
// e.g. all in TIME_WAIT younger than tcp_tw_reuse_delay), EINTR or another transient error is
// retried on a fresh socket, up to kMaxAttempts times per connection; each failed attempt is
// counted in "failures". If one connection cannot be made in kMaxAttempts attempts the run stops
// early and the exit code is 1.

#include <arpa/inet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace {

constexpr int kMaxAttempts = 200;          // per connection
constexpr double kMaxRunSeconds = 3600.0;  // hard bound for any argument combination
constexpr auto kRetryPause = std::chrono::milliseconds(1);

struct Options {
    double seconds = 0;       // 0: not given
    std::uint64_t count = 0;  // 0: not given
    double max_seconds = 60;  // bound for --count runs
    std::string ports_file;
    bool new_netns = false;
};

[[noreturn]] void usage(const char *why) {
    std::fprintf(stderr,
                 "connect_storm: %s\n"
                 "usage: connect_storm (--seconds S | --count N) [--ports-file PATH] "
                 "[--max-seconds M] [--new-netns]\n",
                 why);
    std::exit(2);
}

double parse_seconds(const char *text) {
    char *end = nullptr;
    errno = 0;
    double value = std::strtod(text, &end);
    if (errno != 0 || end == text || *end != '\0' || !(value > 0) || value > kMaxRunSeconds)
        usage("seconds must be a number in (0, 3600]");
    return value;
}

Options parse_args(int argc, char **argv) {
    Options options;
    for (int i = 1; i < argc; i++) {
        std::string_view arg = argv[i];
        auto value = [&]() -> const char * {
            if (i + 1 >= argc) usage("missing value after an option");
            return argv[++i];
        };
        if (arg == "--seconds") {
            options.seconds = parse_seconds(value());
        } else if (arg == "--max-seconds") {
            options.max_seconds = parse_seconds(value());
        } else if (arg == "--count") {
            const char *text = value();
            char *end = nullptr;
            errno = 0;
            unsigned long long n = std::strtoull(text, &end, 10);
            if (errno != 0 || end == text || *end != '\0' || n == 0 || text[0] == '-')
                usage("--count must be a positive integer");
            options.count = n;
        } else if (arg == "--ports-file") {
            options.ports_file = value();
        } else if (arg == "--new-netns") {
            options.new_netns = true;
        } else if (arg == "-h" || arg == "--help") {
            usage("help");
        } else {
            usage(("unknown argument: " + std::string(arg)).c_str());
        }
    }
    if ((options.seconds > 0) == (options.count > 0))
        usage("give exactly one of --seconds and --count");
    return options;
}

[[noreturn]] void die(const char *what) {
    std::fprintf(stderr, "connect_storm: %s: %s\n", what, std::strerror(errno));
    std::exit(1);
}

// A fresh network namespace for this process (before any thread exists), with loopback up.
void enter_new_netns() {
    if (unshare(CLONE_NEWNET) != 0) die("unshare(CLONE_NEWNET)");
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) die("socket (ioctl)");
    ifreq request{};
    std::strncpy(request.ifr_name, "lo", IFNAMSIZ - 1);
    if (ioctl(fd, SIOCGIFFLAGS, &request) != 0) die("SIOCGIFFLAGS lo");
    request.ifr_flags |= IFF_UP;
    if (ioctl(fd, SIOCSIFFLAGS, &request) != 0) die("SIOCSIFFLAGS lo");
    close(fd);
}

// Listener on 127.0.0.1, port 0: the kernel picks the port.
int make_listener(sockaddr_in &addr) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) die("socket (listener)");
    addr = {};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    if (bind(fd, reinterpret_cast<sockaddr *>(&addr), sizeof(addr)) != 0) die("bind (listener)");
    if (listen(fd, SOMAXCONN) != 0) die("listen");
    socklen_t len = sizeof(addr);
    if (getsockname(fd, reinterpret_cast<sockaddr *>(&addr), &len) != 0)
        die("getsockname (listener)");
    return fd;
}

void accept_loop(int listen_fd, const std::atomic<bool> &stop) {
    while (true) {
        int fd = accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
        if (fd >= 0) {
            close(fd);
            continue;
        }
        if (stop.load(std::memory_order_relaxed)) return;  // shutdown() woke us
        if (errno == EINTR || errno == ECONNABORTED || errno == EMFILE || errno == ENFILE ||
            errno == ENOBUFS || errno == ENOMEM) {
            if (errno != EINTR && errno != ECONNABORTED) std::this_thread::sleep_for(kRetryPause);
            continue;
        }
        std::fprintf(stderr, "connect_storm: accept: %s\n", std::strerror(errno));
        return;
    }
}

bool transient(int error) {
    switch (error) {
        case EADDRNOTAVAIL:  // no free ephemeral port (yet)
        case EINTR:
        case EAGAIN:
        case ECONNREFUSED:  // accept queue overflow answered with RST (tcp_abort_on_overflow)
        case ETIMEDOUT:
        case ECONNRESET:
        case ENOBUFS:
        case ENOMEM:
        case EMFILE:
        case ENFILE:
            return true;
        default:
            return false;
    }
}

// One connection: returns the local port (host order), or -1 after kMaxAttempts failures.
int connect_once(const sockaddr_in &server, std::uint64_t &failures) {
    for (int attempt = 0; attempt < kMaxAttempts; attempt++) {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            if (!transient(errno)) die("socket");
            failures++;
            std::this_thread::sleep_for(kRetryPause);
            continue;
        }
        if (connect(fd, reinterpret_cast<const sockaddr *>(&server), sizeof(server)) != 0) {
            int error = errno;
            close(fd);
            if (!transient(error)) {
                errno = error;
                die("connect");
            }
            failures++;
            if (error != EINTR) std::this_thread::sleep_for(kRetryPause);
            continue;
        }
        sockaddr_in local{};
        socklen_t len = sizeof(local);
        if (getsockname(fd, reinterpret_cast<sockaddr *>(&local), &len) != 0) die("getsockname");
        close(fd);
        return ntohs(local.sin_port);
    }
    return -1;
}

bool write_ports(const std::string &path, const std::vector<std::uint16_t> &ports) {
    FILE *out = std::fopen(path.c_str(), "w");
    if (out == nullptr) return false;
    for (std::uint16_t port : ports) std::fprintf(out, "%u\n", static_cast<unsigned>(port));
    bool ok = std::ferror(out) == 0;
    return std::fclose(out) == 0 && ok;
}

}  // namespace

int main(int argc, char **argv) {
    Options options = parse_args(argc, argv);
    if (options.new_netns) enter_new_netns();
    using Clock = std::chrono::steady_clock;

    sockaddr_in server{};
    int listen_fd = make_listener(server);
    std::atomic<bool> stop{false};
    std::thread acceptor(accept_loop, listen_fd, std::cref(stop));

    const double limit_s = options.count > 0 ? options.max_seconds : options.seconds;
    const bool keep_ports = !options.ports_file.empty();
    std::vector<std::uint16_t> ports;
    if (keep_ports) ports.reserve(options.count > 0 ? options.count : 1u << 20);

    std::uint64_t connections = 0, failures = 0;
    bool gave_up = false;
    const auto start = Clock::now();
    const auto deadline =
        start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(limit_s));
    while (Clock::now() < deadline && (options.count == 0 || connections < options.count)) {
        int port = connect_once(server, failures);
        if (port < 0) {
            gave_up = true;
            break;
        }
        connections++;
        if (keep_ports) ports.push_back(static_cast<std::uint16_t>(port));
    }
    const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();

    stop.store(true, std::memory_order_relaxed);
    shutdown(listen_fd, SHUT_RDWR);  // wakes the blocked accept()
    acceptor.join();
    close(listen_fd);

    int status = 0;
    if (gave_up) {
        std::fprintf(stderr, "connect_storm: gave up after %d failed attempts on one connection\n",
                     kMaxAttempts);
        status = 1;
    }
    if (keep_ports && !write_ports(options.ports_file, ports)) {
        std::fprintf(stderr, "connect_storm: cannot write %s: %s\n", options.ports_file.c_str(),
                     std::strerror(errno));
        status = 1;
    }
    const double rate = elapsed > 0 ? connections / elapsed : 0.0;
    rusage usage{};
    getrusage(RUSAGE_SELF, &usage);
    auto secs = [](const timeval &tv) { return tv.tv_sec + tv.tv_usec / 1e6; };
    std::printf("{\"connections\":%" PRIu64 ",\"failures\":%" PRIu64
                ",\"seconds\":%.6f,\"rate\":%.1f,\"pid\":%d,\"cpu_user_s\":%.3f,"
                "\"cpu_sys_s\":%.3f}\n",
                connections, failures, elapsed, rate, static_cast<int>(getpid()),
                secs(usage.ru_utime), secs(usage.ru_stime));
    std::fflush(stdout);
    return status;
}
