// SPDX-License-Identifier: Apache-2.0
#include "nat_topology.h"

#include "kernel_support.h"

#include <algorithm>
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>
#include <thread>

namespace portwatch::test {

namespace {

// Spawns argv with stdin, stdout and stderr on pipes, in the netns of `netns_fd` if >= 0.
// Everything the child does between fork and exec is a plain system call.
pid_t spawn(const std::vector<std::string> &argv, int netns_fd, int *in, int *out, int *err) {
    std::vector<std::string> copy = argv;
    std::vector<char *> args;
    for (auto &arg : copy) args.push_back(arg.data());
    args.push_back(nullptr);
    int in_pipe[2], out_pipe[2], err_pipe[2];
    if (pipe2(in_pipe, O_CLOEXEC) || pipe2(out_pipe, O_CLOEXEC) || pipe2(err_pipe, O_CLOEXEC)) {
        ADD_FAILURE() << "pipe2: " << std::strerror(errno);
        return -1;
    }
    pid_t pid = fork();
    if (pid == 0) {
        dup2(in_pipe[0], STDIN_FILENO);
        dup2(out_pipe[1], STDOUT_FILENO);
        dup2(err_pipe[1], STDERR_FILENO);
        if (netns_fd >= 0 && setns(netns_fd, CLONE_NEWNET) != 0) _exit(126);
        execvp(args[0], args.data());
        _exit(127);
    }
    close(in_pipe[0]);
    close(out_pipe[1]);
    close(err_pipe[1]);
    *in = in_pipe[1];
    *out = out_pipe[0];
    *err = err_pipe[0];
    return pid;
}

void read_both(int out, int err, std::string *out_text, std::string *err_text) {
    pollfd fds[2] = {{out, POLLIN, 0}, {err, POLLIN, 0}};
    std::string *texts[2] = {out_text, err_text};
    int open = 2;
    while (open > 0 && poll(fds, 2, -1) > 0) {
        for (int i = 0; i < 2; i++) {
            if (fds[i].fd < 0 || !fds[i].revents) continue;
            char chunk[4096];
            ssize_t n = read(fds[i].fd, chunk, sizeof(chunk));
            if (n > 0) {
                texts[i]->append(chunk, n);
            } else {
                fds[i].fd = -1;
                open--;
            }
        }
    }
}

std::string joined(const std::vector<std::string> &argv) {
    std::string text;
    for (const auto &arg : argv) text += (text.empty() ? "" : " ") + arg;
    return text;
}

std::vector<std::string> words(const std::string &text) {
    std::istringstream stream(text);
    std::vector<std::string> out;
    for (std::string word; stream >> word;) out.push_back(word);
    return out;
}

// Runs argv and ADD_FAILUREs with what it said unless it exits 0.
bool run_ok(const std::vector<std::string> &argv, const std::string &input = "",
            int netns_fd = -1) {
    Ran ran = run_program(argv, input, netns_fd);
    if (ran.exit_code == 0) return true;
    ADD_FAILURE() << joined(argv) << " exited with " << ran.exit_code << ": " << ran.err
                  << (input.empty() ? "" : "\ninput:\n" + input);
    return false;
}

std::uint32_t inode_of(int fd) {
    struct stat st {};
    EXPECT_EQ(fstat(fd, &st), 0) << std::strerror(errno);
    return static_cast<std::uint32_t>(st.st_ino);
}

IpAddress parse_address(const std::string &text) {
    IpAddress address;
    if (inet_pton(AF_INET, text.c_str(), address.bytes.data()) == 1) return address;
    address.family = Family::ipv6;
    EXPECT_EQ(inet_pton(AF_INET6, text.c_str(), address.bytes.data()), 1) << text;
    return address;
}

sockaddr_storage sockaddr_of(const Endpoint &endpoint, socklen_t *length) {
    sockaddr_storage storage{};
    if (endpoint.addr.family == Family::ipv4) {
        auto *sin = reinterpret_cast<sockaddr_in *>(&storage);
        sin->sin_family = AF_INET;
        sin->sin_port = htons(endpoint.port);
        std::memcpy(&sin->sin_addr, endpoint.addr.bytes.data(), 4);
        *length = sizeof(*sin);
    } else {
        auto *sin6 = reinterpret_cast<sockaddr_in6 *>(&storage);
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons(endpoint.port);
        std::memcpy(&sin6->sin6_addr, endpoint.addr.bytes.data(), 16);
        *length = sizeof(*sin6);
    }
    return storage;
}

int new_socket(Family family, int type) {
    int fd =
        socket(family == Family::ipv4 ? AF_INET : AF_INET6, type | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    EXPECT_GE(fd, 0) << std::strerror(errno);
    return fd;
}

std::chrono::milliseconds left_until(std::chrono::steady_clock::time_point deadline) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    return std::max(left, std::chrono::milliseconds(0));
}

bool wait_for(int fd, short events, std::chrono::milliseconds timeout) {
    pollfd pfd{fd, events, 0};
    return poll(&pfd, 1, static_cast<int>(timeout.count())) > 0;
}

// A non-blocking connect given `timeout` to complete.
PodSocket connect_within(Family family, const Endpoint &to, std::uint16_t source_port,
                         std::chrono::milliseconds timeout) {
    PodSocket sock;
    sock.fd = new_socket(family, SOCK_STREAM);
    if (source_port) {
        socklen_t length;
        Endpoint any{{family, {}}, source_port};
        sockaddr_storage from = sockaddr_of(any, &length);
        EXPECT_EQ(bind(sock.fd, reinterpret_cast<sockaddr *>(&from), length), 0)
            << "bind to port " << source_port << ": " << std::strerror(errno);
    }
    socklen_t length;
    sockaddr_storage addr = sockaddr_of(to, &length);
    int rc = connect(sock.fd, reinterpret_cast<sockaddr *>(&addr), length);
    EXPECT_TRUE(rc == 0 || errno == EINPROGRESS) << "connect: " << std::strerror(errno);
    sock.local = sockname_of(sock.fd);
    if (wait_for(sock.fd, POLLOUT, timeout)) {
        socklen_t size = sizeof(sock.error);
        getsockopt(sock.fd, SOL_SOCKET, SO_ERROR, &sock.error, &size);
        sock.connected = sock.error == 0;
    }
    return sock;
}

// Half-closes, waits for the server's FIN (it closes when it reads the end), then closes: both
// FINs and the last ACK have passed the node.
void close_gracefully(int fd, std::chrono::milliseconds timeout) {
    shutdown(fd, SHUT_WR);
    auto deadline = std::chrono::steady_clock::now() + timeout;
    char byte;
    while (wait_for(fd, POLLIN, left_until(deadline)) && read(fd, &byte, 1) > 0) {
    }
    close(fd);
}

std::string family_flag(Family family) {
    return family == Family::ipv4 ? "ipv4" : "ipv6";
}

}  // namespace

Ran run_program(const std::vector<std::string> &argv, const std::string &input, int netns_fd) {
    Ran ran;
    int in, out, err;
    pid_t pid = spawn(argv, netns_fd, &in, &out, &err);
    if (pid < 0) return ran;
    // Inputs are rulesets of a few lines: far below the pipe's buffer.
    if (!input.empty() && write(in, input.data(), input.size()) != ssize_t(input.size()))
        ADD_FAILURE() << "cannot write the input of " << argv[0];
    close(in);
    read_both(out, err, &ran.out, &ran.err);
    close(out);
    close(err);
    int status = 0;
    waitpid(pid, &status, 0);
    ran.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    if (ran.exit_code == 127) ran.err += argv[0] + std::string(": cannot be run (installed?)");
    return ran;
}

// ---- NamedNetns ----------------------------------------------------------------------------

NamedNetns::NamedNetns(std::string name) : name_(std::move(name)) {
    if (!run_ok({"ip", "netns", "add", name_})) return;
    fd_ = open(("/run/netns/" + name_).c_str(), O_RDONLY | O_CLOEXEC);
    EXPECT_GE(fd_, 0) << "/run/netns/" << name_ << ": " << std::strerror(errno);
    if (fd_ >= 0) inode_ = inode_of(fd_);
    run_ok({"ip", "-n", name_, "link", "set", "lo", "up"});
}

NamedNetns::~NamedNetns() {
    if (fd_ < 0) return;
    close(fd_);
    run_ok({"ip", "netns", "delete", name_});
}

void NamedNetns::run(const std::function<void()> &body) const {
    std::thread worker([&] {
        if (setns(fd_, CLONE_NEWNET) != 0) {
            ADD_FAILURE() << "setns " << name_ << ": " << std::strerror(errno);
            return;
        }
        body();
    });
    worker.join();
}

Ran NamedNetns::exec(const std::vector<std::string> &argv, const std::string &input) const {
    return run_program(argv, input, fd_);
}

void NamedNetns::sysctl(const std::string &path, const std::string &value) const {
    run([&] {
        std::ofstream file("/proc/sys/" + path);
        file << value;
        file.close();
        EXPECT_TRUE(file.good()) << "cannot write " << value << " to /proc/sys/" << path << " in "
                                 << name_;
    });
}

// ---- conntrack's output ---------------------------------------------------------------------

std::optional<ConntrackEntry> parse_conntrack_line(const std::string &line) {
    ConntrackEntry entry;
    bool have_proto = false;
    std::map<std::string, int> seen;  // how many times each key came: 1 original, 2 reply
    for (const std::string &word : words(line)) {
        auto equals = word.find('=');
        if (equals == std::string::npos) {
            if (word == "[UNREPLIED]") entry.unreplied = true;
            if (word == "tcp" || word == "udp") {
                entry.proto = word == "tcp" ? Proto::tcp : Proto::udp;
                have_proto = true;
            } else if (have_proto && entry.state.empty() && seen.empty() && word[0] >= 'A' &&
                       word[0] <= 'Z') {
                entry.state = word;
            }
            continue;
        }
        std::string key = word.substr(0, equals), value = word.substr(equals + 1);
        int time = ++seen[key];
        if (time > 2) continue;
        Endpoint &src = time == 1 ? entry.original_src : entry.reply_src;
        Endpoint &dst = time == 1 ? entry.original_dst : entry.reply_dst;
        if (key == "src") src.addr = parse_address(value);
        if (key == "dst") dst.addr = parse_address(value);
        if (key == "sport") src.port = static_cast<std::uint16_t>(std::stoi(value));
        if (key == "dport") dst.port = static_cast<std::uint16_t>(std::stoi(value));
    }
    if (!have_proto || seen["dport"] < 2) return std::nullopt;
    return entry;
}

std::string to_string(const ConntrackEntry &entry) {
    return std::string(entry.proto == Proto::tcp ? "tcp " : "udp ") +
           (entry.state.empty() ? "" : entry.state + " ") + to_string(entry.original_src) + " -> " +
           to_string(entry.original_dst) + " as " + to_string(entry.nat()) +
           (entry.unreplied ? " unreplied" : "");
}

// ---- the topology ---------------------------------------------------------------------------

namespace {

std::atomic<int> topologies{0};

std::string pod_interface(int p) {
    return "pod" + std::to_string(p);
}

std::string subnet_address(Family family, const std::string &v4, const std::string &v6) {
    return family == Family::ipv4 ? v4 : v6;
}

// A veth whose carrier came up drops every packet until the link watch has run for it
// (dev_activate() after linkwatch_do_dev()), which it does up to a second later
// (linkwatch_fire_event(): a virtual device's change is never urgent); by then it is
// IFF_RUNNING.
void wait_running(const NamedNetns &netns, const std::vector<std::string> &devices) {
    netns.run([&] {
        int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
        for (const std::string &device : devices) {
            ifreq request{};
            std::strncpy(request.ifr_name, device.c_str(), IFNAMSIZ - 1);
            while (ioctl(fd, SIOCGIFFLAGS, &request) == 0 && !(request.ifr_flags & IFF_RUNNING) &&
                   std::chrono::steady_clock::now() < deadline)
                std::this_thread::sleep_for(std::chrono::milliseconds(10));
            EXPECT_TRUE(request.ifr_flags & IFF_RUNNING)
                << device << " in " << netns.name() << " is not running after 5 s";
        }
        close(fd);
    });
}

}  // namespace

IpAddress NatTopology::pod_address(int p, Family family) {
    return parse_address(subnet_address(family, "198.18." + std::to_string(p) + ".2",
                                        "fd00:18:" + std::to_string(p) + "::2"));
}

IpAddress NatTopology::server_address(Family family) {
    return parse_address(subnet_address(family, "198.19.0.2", "fd00:19::2"));
}

IpAddress NatTopology::node_outside_address(Family family) {
    return parse_address(subnet_address(family, "198.19.0.1", "fd00:19::1"));
}

Endpoint NatTopology::server_endpoint(Family family, Proto proto) {
    return {server_address(family), proto == Proto::tcp ? kServerTcpPort : kServerUdpPort};
}

NatTopology::NatTopology(int pods)
    : prefix_("pw-nat-" + std::to_string(getpid()) + "-" + std::to_string(topologies++)) {
    node_ = std::make_unique<NamedNetns>(prefix_ + "-node");
    server_ = std::make_unique<NamedNetns>(prefix_ + "-server");
    for (int p = 1; p <= pods; p++)
        pods_.push_back(std::make_unique<NamedNetns>(prefix_ + "-pod" + std::to_string(p)));
    node_->sysctl("net/ipv4/ip_forward", "1");
    node_->sysctl("net/ipv6/conf/all/forwarding", "1");
    build_links();
    for (int p = 1; p <= pods; p++) {
        wait_running(pod(p), {"eth0"});
        wait_running(*node_, {pod_interface(p)});
    }
    wait_running(*node_, {kOutside});
    wait_running(*server_, {"eth0"});
    start_server();
}

NatTopology::~NatTopology() {
    close_held();
    stop_server();
}

// One `ip -batch` per netns: a few processes instead of one per address and route.
void NatTopology::build_links() {
    std::string links = "link add " + std::string(kOutside) + " netns " + node_->name() +
                        " type veth peer name eth0 netns " + server_->name() + "\n";
    std::string node =
        "addr add 198.19.0.1/24 dev out\naddr add fd00:19::1/64 dev out nodad\n"
        "link set out up\n";
    for (int p = 1; p <= pods(); p++) {
        std::string n = std::to_string(p), dev = pod_interface(p);
        links += "link add " + dev + " netns " + node_->name() +
                 " type veth peer name eth0 netns " + pod(p).name() + "\n";
        node += "addr add 198.18." + n + ".1/24 dev " + dev + "\naddr add fd00:18:" + n +
                "::1/64 dev " + dev + " nodad\nlink set " + dev + " up\n";
    }
    run_ok({"ip", "-batch", "-"}, links);
    run_ok({"ip", "-n", node_->name(), "-batch", "-"}, node);
    run_ok({"ip", "-n", server_->name(), "-batch", "-"},
           "addr add 198.19.0.2/24 dev eth0\naddr add fd00:19::2/64 dev eth0 nodad\n"
           "link set eth0 up\n");
    for (int p = 1; p <= pods(); p++) {
        std::string n = std::to_string(p);
        run_ok({"ip", "-n", pod(p).name(), "-batch", "-"},
               "addr add 198.18." + n + ".2/24 dev eth0\naddr add fd00:18:" + n +
                   "::2/64 dev eth0 nodad\nlink set eth0 up\nroute add default via 198.18." + n +
                   ".1\nroute add ::/0 via fd00:18:" + n + "::1\n");
    }
}

void NatTopology::start_server() {
    int tcp = -1, udp = -1;
    server_->run([&] {
        tcp = new_socket(Family::ipv6, SOCK_STREAM);
        udp = new_socket(Family::ipv6, SOCK_DGRAM);
        int off = 0, on = 1;
        for (int fd : {tcp, udp}) {
            setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof(off));  // and IPv4
            setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
        }
        socklen_t length;
        sockaddr_storage any = sockaddr_of({{Family::ipv6, {}}, kServerTcpPort}, &length);
        EXPECT_EQ(bind(tcp, reinterpret_cast<sockaddr *>(&any), length), 0) << std::strerror(errno);
        EXPECT_EQ(listen(tcp, 4096), 0) << std::strerror(errno);
        any = sockaddr_of({{Family::ipv6, {}}, kServerUdpPort}, &length);
        EXPECT_EQ(bind(udp, reinterpret_cast<sockaddr *>(&any), length), 0) << std::strerror(errno);
    });
    EXPECT_EQ(pipe2(server_stop_, O_CLOEXEC), 0);
    server_thread_ = std::make_unique<std::thread>([this, tcp, udp] {
        // fds[0] the stop pipe, [1] the listener, [2] the UDP socket, then the accepted ones
        std::vector<pollfd> fds{{server_stop_[0], POLLIN, 0}, {tcp, POLLIN, 0}, {udp, POLLIN, 0}};
        while (poll(fds.data(), fds.size(), -1) >= 0 && !fds[0].revents) {
            if (fds[1].revents) {
                for (int fd;
                     (fd = accept4(tcp, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0;)
                    fds.push_back({fd, POLLIN, 0});
            }
            if (fds[2].revents) {
                char datagram[512];
                sockaddr_storage from{};
                socklen_t length = sizeof(from);
                ssize_t n;
                while ((n = recvfrom(udp, datagram, sizeof(datagram), 0,
                                     reinterpret_cast<sockaddr *>(&from), &length)) >= 0) {
                    sendto(udp, datagram, n, 0, reinterpret_cast<sockaddr *>(&from), length);
                    length = sizeof(from);
                }
            }
            for (std::size_t i = 3; i < fds.size(); i++) {
                if (!fds[i].revents) continue;
                char chunk[512];
                if (read(fds[i].fd, chunk, sizeof(chunk)) > 0) continue;
                close(fds[i].fd);  // the client closed: so does the server
                fds[i] = fds.back();
                fds.pop_back();
                i--;
            }
        }
        for (std::size_t i = 1; i < fds.size(); i++) close(fds[i].fd);
    });
}

void NatTopology::stop_server() {
    if (!server_thread_) return;
    char stop = 1;
    EXPECT_EQ(write(server_stop_[1], &stop, 1), 1);
    server_thread_->join();
    server_thread_.reset();
    close(server_stop_[0]);
    close(server_stop_[1]);
}

bool NatTopology::nft(const std::string &ruleset) const {
    return run_ok({"nft", "-f", "-"}, ruleset, node_->fd());
}

bool NatTopology::iptables(const std::vector<std::string> &commands, bool legacy, bool v6) const {
    std::string program =
        std::string(v6 ? "ip6tables" : "iptables") + (legacy ? "-legacy" : "-nft");
    bool ok = true;
    for (const std::string &command : commands) {
        std::vector<std::string> argv = words(command);
        argv.insert(argv.begin(), program);
        ok = run_ok(argv, "", node_->fd()) && ok;
    }
    return ok;
}

void NatTopology::add_outside_address(const std::string &address) const {
    bool v6 = address.find(':') != std::string::npos;
    run_ok({"ip", "-n", node_->name(), "addr", "add", address + (v6 ? "/64" : "/24"), "dev",
            kOutside});
}

std::vector<PodSocket> NatTopology::hold_tcp(int p, int count, std::chrono::milliseconds timeout,
                                             Family family, std::uint16_t source_port) {
    std::vector<PodSocket> socks;
    pod(p).run([&] {
        for (int i = 0; i < count; i++) {
            PodSocket sock = connect_within(family, server_endpoint(family, Proto::tcp),
                                            source_port ? source_port + i : 0, timeout);
            if (!sock.connected) {  // its SYN retries would go on failing in later steps
                close(sock.fd);
                sock.fd = -1;
            }
            if (sock.fd >= 0) held_.push_back(sock.fd);
            socks.push_back(sock);
        }
    });
    return socks;
}

std::vector<PodSocket> NatTopology::short_tcp(int p, int count, std::chrono::milliseconds timeout,
                                              Family family) {
    std::vector<PodSocket> socks;
    pod(p).run([&] {
        for (int i = 0; i < count; i++) {
            PodSocket sock =
                connect_within(family, server_endpoint(family, Proto::tcp), 0, timeout);
            if (sock.connected)
                close_gracefully(sock.fd, timeout);
            else
                close(sock.fd);
            sock.fd = -1;
            socks.push_back(sock);
        }
    });
    return socks;
}

std::vector<PodSocket> NatTopology::udp_burst(int p, int count, std::chrono::milliseconds timeout,
                                              Family family) {
    std::vector<PodSocket> socks;
    pod(p).run([&] {
        socklen_t length;
        sockaddr_storage to = sockaddr_of(server_endpoint(family, Proto::udp), &length);
        for (int i = 0; i < count; i++) {
            PodSocket sock;
            sock.fd = new_socket(family, SOCK_DGRAM);
            std::string query = "query " + std::to_string(i);
            if (sendto(sock.fd, query.data(), query.size(), 0, reinterpret_cast<sockaddr *>(&to),
                       length) < 0)
                sock.error = errno;
            sock.local = sockname_of(sock.fd);
            sock.local.addr = pod_address(p, family);  // unconnected: getsockname() says "any"
            held_.push_back(sock.fd);
            socks.push_back(sock);
        }
        auto deadline = std::chrono::steady_clock::now() + timeout;
        std::size_t waiting = socks.size();
        while (waiting > 0 && left_until(deadline).count() > 0) {
            std::vector<pollfd> fds;
            for (const PodSocket &sock : socks)
                if (!sock.connected) fds.push_back({sock.fd, POLLIN, 0});
            if (poll(fds.data(), fds.size(), static_cast<int>(left_until(deadline).count())) <= 0)
                break;
            for (PodSocket &sock : socks) {
                char answer[512];
                if (!sock.connected && recv(sock.fd, answer, sizeof(answer), 0) > 0) {
                    sock.connected = true;
                    waiting--;
                }
            }
        }
    });
    return socks;
}

void NatTopology::close_held() {
    for (int fd : held_) close(fd);
    held_.clear();
}

std::vector<ConntrackEntry> NatTopology::conntrack(Family family) const {
    Ran ran = node_->exec({"conntrack", "-L", "-f", family_flag(family), "-o", "extended"});
    EXPECT_EQ(ran.exit_code, 0) << "conntrack -L: " << ran.err;
    std::vector<ConntrackEntry> entries;
    std::istringstream lines(ran.out);
    for (std::string line; std::getline(lines, line);)
        if (auto entry = parse_conntrack_line(line)) entries.push_back(*entry);
    return entries;
}

ConntrackStats NatTopology::conntrack_stats() const {
    Ran ran = node_->exec({"conntrack", "-S"});
    EXPECT_EQ(ran.exit_code, 0) << "conntrack -S: " << ran.err;
    ConntrackStats stats;
    for (const std::string &word : words(ran.out)) {
        auto equals = word.find('=');
        if (equals == std::string::npos) continue;
        std::string key = word.substr(0, equals);
        std::uint64_t value = std::stoull(word.substr(equals + 1));
        if (key == "insert_failed") stats.insert_failed += value;
        if (key == "drop") stats.drop += value;
        if (key == "clash_resolve") stats.clash_resolve += value;
    }
    return stats;
}

// ---- conntrack -E ---------------------------------------------------------------------------

namespace {

// conntrack -E has subscribed once it holds a NETLINK_NETFILTER (12) socket with groups.
bool subscribed(pid_t pid) {
    std::ifstream table("/proc/" + std::to_string(pid) + "/net/netlink");
    std::string line;
    std::getline(table, line);  // sk Eth Pid Groups ...
    while (std::getline(table, line)) {
        std::vector<std::string> fields = words(line);
        if (fields.size() > 3 && fields[1] == "12" && fields[3] != "00000000") return true;
    }
    return false;
}

}  // namespace

ConntrackEvents::ConntrackEvents(const NamedNetns &netns) {
    int in, err;
    pid_ = spawn({"conntrack", "-E", "-o", "extended"}, netns.fd(), &in, &out_, &err);
    close(in);
    close(err);
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (pid_ > 0 && !subscribed(pid_) && std::chrono::steady_clock::now() < deadline)
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    EXPECT_TRUE(pid_ > 0 && subscribed(pid_)) << "conntrack -E did not subscribe within 5 s";
}

ConntrackEvents::~ConntrackEvents() {
    if (pid_ > 0) {
        kill(pid_, SIGKILL);
        waitpid(pid_, nullptr, 0);
    }
    if (out_ >= 0) close(out_);
}

std::string ConntrackEvents::next_line(std::chrono::milliseconds timeout) {
    return read_line(out_, buffer_, timeout);
}

std::string masquerade_ruleset(const std::string &family, const std::string &proto,
                               const std::string &to) {
    return "table " + family +
           " pw_nat {\n chain post {\n  type nat hook postrouting priority 100;\n"
           "  oifname \"" +
           NatTopology::kOutside + "\" meta l4proto " + proto + " masquerade" + to + "\n }\n}\n";
}

int connected(const std::vector<PodSocket> &socks) {
    return static_cast<int>(
        std::count_if(socks.begin(), socks.end(), [](const PodSocket &s) { return s.connected; }));
}

}  // namespace portwatch::test
