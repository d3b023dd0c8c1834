// SPDX-License-Identifier: Apache-2.0
#include "system/socket_tables.h"

#include "events/containers.h"
#include "system/cgroup_id_lookup.h"
#include "system/netns_thread.h"
#include "system/sock_diag_answer.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <string_view>

namespace portwatch {
namespace {

// More than the 32 KiB netlink_dump() ever fills at once, so no message is cut (MSG_TRUNC
// is checked all the same).
constexpr std::size_t kReceiveBytes = 64 * 1024;

struct Table {
    std::uint8_t family;    // AF_INET or AF_INET6
    std::uint8_t protocol;  // IPPROTO_TCP or IPPROTO_UDP
    const char *name;
};

// A dual-stack (IPv4-mapped) socket is an AF_INET6 socket: it is listed by the IPv6 tables.
constexpr Table kTables[] = {{AF_INET, IPPROTO_TCP, "tcp/ipv4"},
                             {AF_INET6, IPPROTO_TCP, "tcp/ipv6"},
                             {AF_INET, IPPROTO_UDP, "udp/ipv4"},
                             {AF_INET6, IPPROTO_UDP, "udp/ipv6"}};

struct DumpRequest {
    nlmsghdr header;
    inet_diag_req_v2 body;
};
static_assert(sizeof(DumpRequest) == NLMSG_LENGTH(sizeof(inet_diag_req_v2)));

// inet_diag lists the sockets of the netlink socket's own namespace (sock_net()), so it is
// created inside the namespace. Its user namespace stays the caller's, in which idiag_uid
// is given.
Result<int> diag_socket_inside(int netns_fd) {
    int fd = -1;
    std::string socket_error;
    Status ran = run_in_netns(netns_fd, [&] {
        fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
        if (fd < 0) socket_error = errno_text("sock_diag socket");
    });
    if (!ran) return Failure{ran.error()};
    if (fd < 0) return Failure{socket_error};
    return fd;
}

Status request_dump(int fd, const Table &table, std::uint32_t seq) {
    DumpRequest request{};
    request.header.nlmsg_len = sizeof(request);
    request.header.nlmsg_type = SOCK_DIAG_BY_FAMILY;
    request.header.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
    request.header.nlmsg_seq = seq;
    request.body.sdiag_family = table.family;
    request.body.sdiag_protocol = table.protocol;
    request.body.idiag_states = ~0u;  // every state (one bit per TCP state)
    sockaddr_nl kernel{};
    kernel.nl_family = AF_NETLINK;
    ssize_t sent = sendto(fd, &request, sizeof(request), 0, reinterpret_cast<sockaddr *>(&kernel),
                          sizeof(kernel));
    if (sent == static_cast<ssize_t>(sizeof(request))) return {};
    return Failure{errno_text(std::string("sock_diag ") + table.name + " request")};
}

// Sends the request for one table and reads its answer, in as many parts as it comes: the
// sockets of each part go to `take` before the next is read.
Status dump_table(int fd, const Table &table, DumpAnswer &dump, const TakeSocket &take) {
    if (Status requested = request_dump(fd, table, dump.seq); !requested) return requested;
    std::vector<char> buffer(kReceiveBytes);
    Result<DumpProgress> progress = DumpProgress::more;
    while (*progress == DumpProgress::more) {
        ssize_t length = recv(fd, buffer.data(), buffer.size(), MSG_TRUNC);
        if (length < 0 && errno == EINTR) continue;
        if (length < 0)
            return Failure{errno_text(std::string("sock_diag ") + table.name + " receive")};
        if (static_cast<std::size_t>(length) > buffer.size())
            return Failure{"sock_diag: message larger than the receive buffer"};
        progress = take_datagram({buffer.data(), std::size_t(length)}, dump);
        if (!progress) return Failure{progress.error()};
        for (KernelSocket &socket : dump.sockets) take(std::move(socket));
        dump.sockets.clear();
    }
    return {};
}

bool is_number(std::string_view name) {
    return !name.empty() &&
           std::all_of(name.begin(), name.end(), [](unsigned char c) { return std::isdigit(c); });
}

template <typename Number>
std::optional<Number> number_in(std::string_view text) {
    Number value{};
    auto [end, failure] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (failure != std::errc() || end == text.data()) return std::nullopt;
    return value;
}

// N of a `socket:[N]` link, the only kind of fd that is a socket.
std::optional<std::uint64_t> socket_inode(int fd_directory, const char *name) {
    char target[64];
    ssize_t length = readlinkat(fd_directory, name, target, sizeof(target));
    if (length <= 0 || static_cast<std::size_t>(length) >= sizeof(target)) return std::nullopt;
    std::string_view link(target, length);
    constexpr std::string_view kPrefix = "socket:[";
    if (!link.starts_with(kPrefix) || !link.ends_with(']')) return std::nullopt;
    return number_in<std::uint64_t>(link.substr(kPrefix.size()));
}

// Up to 64 KiB: /proc/PID/cgroup lists every hierarchy of a hybrid host, a few KiB at most.
std::optional<std::string> read_small_file(int directory, const std::string &path) {
    constexpr std::size_t kMaxBytes = 64 * 1024;
    int fd = openat(directory, path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return std::nullopt;
    std::string text;
    char chunk[4096];
    ssize_t length;
    while (text.size() < kMaxBytes && (length = read(fd, chunk, sizeof(chunk))) > 0)
        text.append(chunk, length);
    close(fd);
    if (length < 0) return std::nullopt;
    return text;
}

// The real uid: the first of the four numbers of status's "Uid:" line.
std::optional<std::uint32_t> real_uid(std::string_view status) {
    constexpr std::string_view kUid = "\nUid:";
    auto at = status.find(kUid);
    if (at == std::string_view::npos) return std::nullopt;
    std::string_view rest = status.substr(at + kUid.size());
    rest.remove_prefix(std::min(rest.find_first_not_of(" \t"), rest.size()));
    return number_in<std::uint32_t>(rest);
}

// Its cgroup v2 path, and the id when `cgroup2_mount` is known ("" if not).
void add_cgroup(TaskInfo &task, int proc, const std::string &pid,
                const std::string &cgroup2_mount) {
    auto text = read_small_file(proc, pid + "/cgroup");
    auto path = text ? cgroup2_path_in(*text) : std::nullopt;
    if (!path) return;
    if (!cgroup2_mount.empty()) task.cgroup_id = cgroup_id_at(cgroup2_mount, *path);
    task.cgroup_path = std::move(*path);
}

// The process behind /proc/`pid`, or std::nullopt if it has gone.
std::optional<TaskInfo> task_of(int proc, const std::string &pid,
                                const std::string &cgroup2_mount) {
    auto comm = read_small_file(proc, pid + "/comm");
    auto status = read_small_file(proc, pid + "/status");
    if (!comm || !status) return std::nullopt;
    auto uid = real_uid(*status);
    auto number = number_in<std::uint32_t>(pid);
    if (!uid || !number) return std::nullopt;
    if (!comm->empty() && comm->back() == '\n') comm->pop_back();
    TaskInfo task;
    task.pid = task.tid = *number;
    task.uid = *uid;
    task.comm = std::move(*comm);
    add_cgroup(task, proc, pid, cgroup2_mount);
    return task;
}

// What socket_owners() is reading, and what it calls meanwhile.
struct OwnersPass {
    static constexpr std::size_t kFdsBetweenCalls = 1024;
    std::string cgroup2_mount;
    const std::function<void()> &meanwhile;
    std::size_t fds = 0;

    void count_fd() {
        if (meanwhile && ++fds % kFdsBetweenCalls == 0) meanwhile();
    }
};

void add_sockets_of(int proc, const std::string &pid, OwnersPass &pass, SocketOwners &owners) {
    int fd_directory = openat(proc, (pid + "/fd").c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd_directory < 0) return;  // gone, or not ours to see
    DIR *fds = fdopendir(fd_directory);
    if (!fds) {
        close(fd_directory);
        return;
    }
    std::shared_ptr<TaskInfo> owner;  // read once, at its first socket
    while (dirent *entry = readdir(fds)) {
        if (!is_number(entry->d_name)) continue;
        pass.count_fd();
        auto inode = socket_inode(fd_directory, entry->d_name);
        if (!inode) continue;
        if (!owner) {
            std::optional<TaskInfo> task = task_of(proc, pid, pass.cgroup2_mount);
            if (!task) break;
            owner = std::make_shared<TaskInfo>(std::move(*task));
        }
        owners.add(*inode, owner);
    }
    closedir(fds);
}

}  // namespace

Result<std::vector<KernelSocket>> dump_sockets(int netns_fd, std::uint32_t netns_inode,
                                               const KeepSocket &keep) {
    std::vector<KernelSocket> sockets;
    Status read = read_sockets(netns_fd, netns_inode, [&](KernelSocket socket) {
        if (!keep || keep(socket)) sockets.push_back(std::move(socket));
    });
    if (!read) return Failure{read.error()};
    return sockets;
}

Status read_sockets(int netns_fd, std::uint32_t netns_inode, const TakeSocket &take) {
    Result<int> fd = diag_socket_inside(netns_fd);
    if (!fd) return Failure{fd.error()};
    std::vector<KernelSocket> datagram;  // one datagram's sockets at a time
    std::uint32_t seq = 0;
    Status dumped;
    for (const Table &table : kTables) {
        Proto proto = table.protocol == IPPROTO_TCP ? Proto::tcp : Proto::udp;
        DumpAnswer answer{++seq, proto, netns_inode, datagram};
        dumped = dump_table(*fd, table, answer, take);
        if (!dumped) break;
    }
    close(*fd);
    return dumped;
}

Result<SocketOwners> socket_owners(const std::function<void()> &meanwhile) {
    SocketOwners owners;
    DIR *proc = opendir("/proc");
    if (!proc) return Failure{errno_text("/proc")};
    OwnersPass pass{read_cgroup2_mount().value_or(""), meanwhile};
    while (dirent *entry = readdir(proc))
        if (is_number(entry->d_name)) add_sockets_of(dirfd(proc), entry->d_name, pass, owners);
    closedir(proc);
    owners.sort();
    return owners;
}

std::vector<KernelSocket> with_owners(std::vector<KernelSocket> sockets,
                                      const SocketOwners &owners) {
    for (KernelSocket &socket : sockets)
        if (socket.inode != 0) socket.owner = owners.owner_of(socket.inode);
    return sockets;
}

std::shared_ptr<TaskInfo> SocketOwners::owner_of(std::uint64_t inode) const {
    auto found = std::lower_bound(
        sockets_.begin(), sockets_.end(), inode,
        [](const Socket &socket, std::uint64_t wanted) { return socket.inode < wanted; });
    if (found == sockets_.end() || found->inode != inode) return nullptr;
    return processes_[found->process];
}

void SocketOwners::add(std::uint64_t inode, const std::shared_ptr<TaskInfo> &process) {
    if (processes_.empty() || processes_.back() != process) processes_.push_back(process);
    sockets_.push_back({inode, std::uint32_t(processes_.size() - 1)});
}

void SocketOwners::sort() {
    // Of the processes sharing a socket (inherited across fork()), the first found: their
    // indices grow in the order they were read. (No stable_sort: its buffer would be a copy.)
    std::sort(sockets_.begin(), sockets_.end(), [](const Socket &a, const Socket &b) {
        return a.inode != b.inode ? a.inode < b.inode : a.process < b.process;
    });
    auto duplicates =
        std::unique(sockets_.begin(), sockets_.end(),
                    [](const Socket &a, const Socket &b) { return a.inode == b.inode; });
    sockets_.erase(duplicates, sockets_.end());
}

}  // namespace portwatch
