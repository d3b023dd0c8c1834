// SPDX-License-Identifier: Apache-2.0
#include "kernel_support.h"

#include <arpa/inet.h>
#include <net/if.h>
#include <sched.h>
#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fcntl.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "system/cgroup_id_lookup.h"

namespace portwatch::test {

bool running_in_ci() {
    const char *ci = std::getenv("CI");
    return ci && std::string(ci) == "true";
}

bool kernel_at_least(int major, int minor) {
    utsname names{};
    int running_major = 0, running_minor = 0;
    if (uname(&names) != 0 ||
        std::sscanf(names.release, "%d.%d", &running_major, &running_minor) != 2)
        return false;
    return running_major > major || (running_major == major && running_minor >= minor);
}

std::string missing_feature(const std::string &feature, int major, int minor) {
    utsname names{};
    uname(&names);
    return "kernel feature missing: " + feature + " (kernel " + std::to_string(major) + "." +
           std::to_string(minor) + "); this kernel is " + names.release;
}

HookChoice hooks_under_test() {
    const char *hooks = std::getenv("PORTWATCH_HOOKS");
    std::optional<HookChoice> choice = value_named(kHookChoiceNames, hooks ? hooks : "auto");
    if (!choice) throw std::invalid_argument(std::string("PORTWATCH_HOOKS: no hook set ") + hooks);
    return *choice;
}

void RootTest::SetUp() {
    if (geteuid() == 0) return;
    if (running_in_ci()) FAIL() << why_;
    GTEST_SKIP() << why_;
}

void KernelTest::SetUp() {
    std::string reason;
    if (geteuid() != 0) {
        reason = "kernel tests need root (CAP_BPF, CAP_SYS_ADMIN, CAP_NET_ADMIN)";
    } else {
        try {
            CaptureConfig wanted = config();
            wanted.hooks = hooks_under_test();
            capture = std::make_unique<Capture>(wanted);
        } catch (const CaptureError &error) {
            reason = std::string("cannot load portwatch's BPF programs: ") + error.what();
        }
    }
    if (reason.empty()) return;
    if (running_in_ci()) FAIL() << reason;
    GTEST_SKIP() << reason;
}

namespace {

void bring_up_loopback() {
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    ifreq request{};
    std::strncpy(request.ifr_name, "lo", IFNAMSIZ - 1);
    ioctl(fd, SIOCGIFFLAGS, &request);
    request.ifr_flags |= IFF_UP;
    int rc = ioctl(fd, SIOCSIFFLAGS, &request);
    close(fd);
    ASSERT_EQ(rc, 0) << "cannot bring up lo: " << std::strerror(errno);
}

void write_sysctl(const std::string &path, const std::string &value) {
    std::ofstream file("/proc/sys/" + path);
    file << value;
    file.close();
    ASSERT_TRUE(file.good()) << "cannot write " << value << " to /proc/sys/" << path;
}

std::uint32_t thread_netns_inode() {
    struct stat st {};
    if (stat("/proc/thread-self/ns/net", &st) != 0) return 0;
    return static_cast<std::uint32_t>(st.st_ino);
}

}  // namespace

Netns::Netns(const Sysctls &sysctls) {
    std::thread creator([&] {
        // unshare moves only this thread; the fd keeps the namespace alive after it ends
        if (unshare(CLONE_NEWNET) != 0) {
            ADD_FAILURE() << "unshare(CLONE_NEWNET): " << std::strerror(errno);
            return;
        }
        fd_ = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
        inode_ = thread_netns_inode();
        bring_up_loopback();
        for (const auto &[path, value] : sysctls) write_sysctl(path, value);
    });
    creator.join();
}

Netns::~Netns() {
    if (fd_ >= 0) close(fd_);
}

void Netns::run(const std::function<void()> &body) const {
    std::thread worker([&] {
        if (setns(fd_, CLONE_NEWNET) != 0) {
            ADD_FAILURE() << "setns: " << std::strerror(errno);
            return;
        }
        body();
    });
    worker.join();
}

namespace {

void write_pid(const std::string &procs_file, pid_t pid) {
    std::ofstream file(procs_file);
    file << pid;
    file.close();
    EXPECT_TRUE(file.good()) << "cannot move " << pid << " to " << procs_file << ": "
                             << std::strerror(errno);
}

// rmdir fails with EBUSY until the last process inside has been reaped.
bool remove_directory_soon(const std::string &directory) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
    while (rmdir(directory.c_str()) != 0) {
        if (errno != EBUSY || std::chrono::steady_clock::now() > deadline) return false;
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return true;
}

}  // namespace

TestCgroup::TestCgroup(const std::string &path) : mount_(mount()), path_(path) {
    if (mount_.empty()) return;
    std::istringstream components(path);
    std::string directory = mount_, component;
    while (std::getline(components, component, '/')) {
        if (component.empty()) continue;
        directory += "/" + component;
        if (mkdir(directory.c_str(), 0755) == 0)
            made_.push_back(directory);
        else if (errno != EEXIST)
            ADD_FAILURE() << "mkdir " << directory << ": " << std::strerror(errno);
    }
}

std::uint64_t TestCgroup::id() const {
    return cgroup_id_at(mount_, path_);
}

void TestCgroup::add(pid_t pid) const {
    write_pid(mount_ + path_ + "/cgroup.procs", pid);
}

void TestCgroup::remove() {
    for (auto directory = made_.rbegin(); directory != made_.rend(); ++directory) {
        std::ifstream procs(*directory + "/cgroup.procs");
        for (pid_t pid; procs >> pid;) move_to_root(pid);
        EXPECT_TRUE(remove_directory_soon(*directory))
            << "rmdir " << *directory << ": " << std::strerror(errno);
    }
    made_.clear();
}

std::string TestCgroup::mount() {
    auto mount = read_cgroup2_mount();
    if (!mount) ADD_FAILURE() << "cgroup2 is not mounted";
    return mount.value_or("");
}

void TestCgroup::move_to_root(pid_t pid) {
    write_pid(mount() + "/cgroup.procs", pid);
}

int make_socket(Family family, Proto proto) {
    int fd = socket(family == Family::ipv4 ? AF_INET : AF_INET6,
                    (proto == Proto::tcp ? SOCK_STREAM : SOCK_DGRAM) | SOCK_CLOEXEC, 0);
    EXPECT_GE(fd, 0) << std::strerror(errno);
    return fd;
}

sockaddr_storage loopback(Family family, std::uint16_t port, socklen_t *length) {
    sockaddr_storage storage{};
    if (family == Family::ipv4) {
        auto *sin = reinterpret_cast<sockaddr_in *>(&storage);
        sin->sin_family = AF_INET;
        sin->sin_port = htons(port);
        sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        *length = sizeof(*sin);
    } else {
        auto *sin6 = reinterpret_cast<sockaddr_in6 *>(&storage);
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons(port);
        sin6->sin6_addr = in6addr_loopback;
        *length = sizeof(*sin6);
    }
    return storage;
}

std::uint16_t local_port_of(int fd) {
    sockaddr_storage storage{};
    socklen_t length = sizeof(storage);
    EXPECT_EQ(getsockname(fd, reinterpret_cast<sockaddr *>(&storage), &length), 0);
    if (storage.ss_family == AF_INET)
        return ntohs(reinterpret_cast<sockaddr_in *>(&storage)->sin_port);
    return ntohs(reinterpret_cast<sockaddr_in6 *>(&storage)->sin6_port);
}

std::string own_cgroup_path() {
    std::ifstream file("/proc/self/cgroup");
    for (std::string line; std::getline(file, line);)
        if (line.rfind("0::", 0) == 0) return line.substr(3);
    ADD_FAILURE() << "no cgroup v2 line in /proc/self/cgroup";
    return "";
}

std::uint32_t current_tid() {
    return static_cast<std::uint32_t>(syscall(SYS_gettid));
}

std::vector<Event> EventLog::collect(std::uint32_t netns,
                                     const std::function<bool(const std::vector<Event> &)> &done,
                                     std::chrono::milliseconds timeout,
                                     std::chrono::milliseconds settle) {
    auto of_netns = [&] {
        std::vector<Event> mine;
        for (const Event &event : all_) {
            const SocketInfo &sock =
                std::visit([](const auto &e) -> const SocketInfo & { return e.sock; }, event);
            if (sock.netns == netns) mine.push_back(event);
        }
        return mine;
    };
    auto keep = [this](Event &event) {
        enricher_.enrich(event);
        all_.push_back(event);
    };
    auto deadline = std::chrono::steady_clock::now() + timeout;
    auto poll = [&] {
        // io_uring's task work interrupts it (EINTR): a poll of 0 records, not a failure.
        Result<int> polled = capture_.poll(50, keep);
        EXPECT_TRUE(polled) << polled.error();
    };
    while (!done(of_netns()) && std::chrono::steady_clock::now() < deadline) poll();
    auto settled = std::chrono::steady_clock::now() + settle;
    while (std::chrono::steady_clock::now() < settled) poll();
    return of_netns();
}

std::vector<AllocateEvent> allocations(const std::vector<Event> &events, bool failed) {
    std::vector<AllocateEvent> out;
    for (const Event &event : events)
        if (const auto *a = std::get_if<AllocateEvent>(&event); a && a->failed() == failed)
            out.push_back(*a);
    return out;
}

std::vector<ReleaseEvent> releases(const std::vector<Event> &events) {
    std::vector<ReleaseEvent> out;
    for (const Event &event : events)
        if (const auto *r = std::get_if<ReleaseEvent>(&event)) out.push_back(*r);
    return out;
}

std::function<bool(const std::vector<Event> &)> at_least(std::size_t allocated, std::size_t failed,
                                                         std::size_t released) {
    return [=](const std::vector<Event> &events) {
        return allocations(events).size() >= allocated &&
               allocations(events, true).size() >= failed && releases(events).size() >= released;
    };
}

Monitor::Monitor(std::vector<std::string> args, const Netns *netns, std::string program) {
    int out[2], err[2];
    EXPECT_EQ(pipe(out), 0);
    EXPECT_EQ(pipe(err), 0);
    pid_ = fork();
    if (pid_ == 0) {
        dup2(out[1], STDOUT_FILENO);
        dup2(err[1], STDERR_FILENO);
        if (netns && setns(netns->fd(), CLONE_NEWNET) != 0) _exit(126);
        std::vector<char *> argv{program.data()};
        for (auto &arg : args) argv.push_back(arg.data());
        argv.push_back(nullptr);
        execv(program.c_str(), argv.data());
        _exit(127);
    }
    close(out[1]);
    close(err[1]);
    out_ = out[0];
    err_ = err[0];
}

BinaryForNobody::BinaryForNobody() {
    char dir[] = "/tmp/portwatch-nobody-XXXXXX";
    EXPECT_NE(mkdtemp(dir), nullptr);
    dir_ = dir;
    path_ = dir_ + "/portwatch";
    EXPECT_EQ(chmod(dir, 0755), 0);
    EXPECT_EQ(std::system(("cp " + std::string(PORTWATCH_BINARY) + " " + path_).c_str()), 0);
}

BinaryForNobody::~BinaryForNobody() {
    std::system(("rm -rf " + dir_).c_str());
}

std::vector<std::string> BinaryForNobody::setpriv_args(const std::vector<std::string> &args) const {
    std::vector<std::string> all{"--reuid=65534", "--regid=65534", "--clear-groups",
                                 "--inh-caps=-all", path_};
    all.insert(all.end(), args.begin(), args.end());
    return all;
}

Monitor::~Monitor() {
    if (pid_ > 0 && !reaped_) {
        kill(pid_, SIGKILL);
        waitpid(pid_, nullptr, 0);
    }
    close(out_);
    close(err_);
}

std::string read_line(int fd, std::string &buffer, std::chrono::milliseconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (true) {
        if (auto newline = buffer.find('\n'); newline != std::string::npos) {
            std::string line = buffer.substr(0, newline);
            buffer.erase(0, newline + 1);
            return line;
        }
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            deadline - std::chrono::steady_clock::now());
        pollfd pfd{fd, POLLIN, 0};
        if (left.count() <= 0 || poll(&pfd, 1, static_cast<int>(left.count())) <= 0) return "";
        char chunk[4096];
        ssize_t n = read(fd, chunk, sizeof(chunk));
        if (n <= 0) return "";
        buffer.append(chunk, n);
    }
}

std::string Monitor::next_line(std::chrono::milliseconds timeout) {
    return read_line(out_, buffer_, timeout);
}

std::string Monitor::all_stderr() {
    std::string text;
    char chunk[4096];
    ssize_t n;
    while ((n = read(err_, chunk, sizeof(chunk))) > 0) text.append(chunk, n);
    return text;
}

void Monitor::signal(int sig) {
    kill(pid_, sig);
}

namespace {

int exit_code_of(int status) {
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

}  // namespace

int Monitor::wait_exit_code() {
    int status = 0;
    waitpid(pid_, &status, 0);
    reaped_ = true;
    return exit_code_of(status);
}

std::optional<int> Monitor::wait_exit_code_for(std::chrono::milliseconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    do {
        int status = 0;
        if (waitpid(pid_, &status, WNOHANG) == pid_) {
            reaped_ = true;
            return exit_code_of(status);
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    } while (std::chrono::steady_clock::now() < deadline);
    return std::nullopt;
}

int bind_to(int fd, Family family, std::uint16_t port) {
    socklen_t length;
    sockaddr_storage addr = loopback(family, port, &length);
    return bind(fd, reinterpret_cast<sockaddr *>(&addr), length);
}

int connect_to(int fd, Family family, std::uint16_t port) {
    socklen_t length;
    sockaddr_storage addr = loopback(family, port, &length);
    return connect(fd, reinterpret_cast<sockaddr *>(&addr), length);
}

int listener_on(Family family, std::uint16_t port) {
    int fd = make_socket(family, Proto::tcp);
    EXPECT_EQ(bind_to(fd, family, port), 0) << std::strerror(errno);
    EXPECT_EQ(listen(fd, 64), 0);
    return fd;
}

}  // namespace portwatch::test
