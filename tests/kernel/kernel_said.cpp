// SPDX-License-Identifier: Apache-2.0
#include "kernel_said.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "kernel_support.h"

#ifndef SO_COOKIE
#define SO_COOKIE 57 /* asm-generic/socket.h, kernel 4.13 */
#endif

namespace portwatch::test {

Endpoint endpoint_of(const sockaddr_storage &storage) {
    Endpoint endpoint;
    if (storage.ss_family == AF_INET) {
        const auto &sin = reinterpret_cast<const sockaddr_in &>(storage);
        endpoint.addr.family = Family::ipv4;
        std::memcpy(endpoint.addr.bytes.data(), &sin.sin_addr, 4);
        endpoint.port = ntohs(sin.sin_port);
    } else {
        const auto &sin6 = reinterpret_cast<const sockaddr_in6 &>(storage);
        endpoint.addr.family = Family::ipv6;
        std::memcpy(endpoint.addr.bytes.data(), &sin6.sin6_addr, 16);
        endpoint.port = ntohs(sin6.sin6_port);
    }
    return endpoint;
}

Endpoint sockname_of(int fd) {
    sockaddr_storage storage{};
    socklen_t length = sizeof(storage);
    EXPECT_EQ(getsockname(fd, reinterpret_cast<sockaddr *>(&storage), &length), 0)
        << std::strerror(errno);
    return endpoint_of(storage);
}

std::string to_string(const Endpoint &endpoint) {
    char text[INET6_ADDRSTRLEN] = "?";
    bool v4 = endpoint.addr.family == Family::ipv4;
    inet_ntop(v4 ? AF_INET : AF_INET6, endpoint.addr.bytes.data(), text, sizeof(text));
    return (v4 ? std::string(text) : "[" + std::string(text) + "]") + ":" +
           std::to_string(endpoint.port);
}

Endpoint loopback_endpoint(Family family, std::uint16_t port) {
    Endpoint endpoint{{family, {}}, port};
    if (family == Family::ipv4) {
        in_addr_t address = htonl(INADDR_LOOPBACK);
        std::memcpy(endpoint.addr.bytes.data(), &address, 4);
    } else {
        std::memcpy(endpoint.addr.bytes.data(), &in6addr_loopback, 16);
    }
    return endpoint;
}

std::uint64_t boottime_ns() {
    timespec now{};
    clock_gettime(CLOCK_BOOTTIME, &now);
    return std::uint64_t(now.tv_sec) * 1'000'000'000u + std::uint64_t(now.tv_nsec);
}

Window timed(const std::function<void()> &step) {
    Window window;
    window.from_ns = boottime_ns();
    step();
    window.to_ns = boottime_ns();
    return window;
}

namespace {

std::optional<Endpoint> peername_of(int fd) {
    sockaddr_storage storage{};
    socklen_t length = sizeof(storage);
    if (getpeername(fd, reinterpret_cast<sockaddr *>(&storage), &length) == 0)
        return endpoint_of(storage);
    EXPECT_EQ(errno, ENOTCONN) << "getpeername: " << std::strerror(errno);
    return std::nullopt;
}

template <typename T>
T socket_option(int fd, int option) {
    T value{};
    socklen_t length = sizeof(value);
    EXPECT_EQ(getsockopt(fd, SOL_SOCKET, option, &value, &length), 0)
        << "getsockopt " << option << ": " << std::strerror(errno);
    return value;
}

std::string thread_comm() {
    char name[16] = {};
    EXPECT_EQ(prctl(PR_GET_NAME, name), 0) << std::strerror(errno);
    return name;
}

std::uint64_t inode_of(const std::string &path) {
    struct stat st {};
    EXPECT_EQ(stat(path.c_str(), &st), 0) << path << ": " << std::strerror(errno);
    return st.st_ino;
}

void expect_same_socket(const SocketInfo &sock, const KernelSaid &said) {
    EXPECT_EQ(sock.cookie, said.cookie);
    EXPECT_EQ(sock.netns, said.netns);
    EXPECT_EQ(sock.family, said.family);
    EXPECT_EQ(sock.proto, said.proto);
    if (said.local_addr_unknown)
        EXPECT_EQ(sock.local_port, said.local.port) << "local port: the event's, getsockname()'s";
    else
        EXPECT_EQ(to_string({sock.local_addr, sock.local_port}), to_string(said.local))
            << "local: the event's, getsockname()'s";
    if (said.remote)
        EXPECT_EQ(to_string({sock.remote_addr, sock.remote_port}), to_string(*said.remote))
            << "remote: the event's, getpeername()'s or the destination given";
    else
        EXPECT_FALSE(sock.has_remote())
            << "remote " << to_string({sock.remote_addr, sock.remote_port});
}

void expect_same_task(const TaskInfo &task, const KernelSaid &said) {
    EXPECT_EQ(task.pid, said.pid);
    EXPECT_EQ(task.tid, said.tid);
    EXPECT_EQ(task.uid, said.uid);
    EXPECT_EQ(task.comm, said.comm);
    EXPECT_EQ(task.cgroup_id, said.cgroup_id);
}

}  // namespace

KernelSaid said_by_kernel(int fd, How how, Syscall syscall, const std::function<int()> &allocate) {
    KernelSaid said;
    said.how = how;
    said.syscall = syscall;
    int rc = -1;
    said.allocated = timed([&] { rc = allocate(); });
    EXPECT_EQ(rc, 0) << "the allocating call: " << std::strerror(errno);
    said.family = socket_option<int>(fd, SO_DOMAIN) == AF_INET ? Family::ipv4 : Family::ipv6;
    said.proto = socket_option<int>(fd, SO_PROTOCOL) == IPPROTO_TCP ? Proto::tcp : Proto::udp;
    said.cookie = socket_option<std::uint64_t>(fd, SO_COOKIE);
    said.netns = static_cast<std::uint32_t>(inode_of("/proc/thread-self/ns/net"));
    said.local = sockname_of(fd);
    said.remote = peername_of(fd);
    said.pid = static_cast<std::uint32_t>(getpid());
    said.tid = current_tid();
    said.uid = static_cast<std::uint32_t>(getuid());
    said.comm = thread_comm();
    said.cgroup_id = inode_of(TestCgroup::mount() + own_cgroup_path());
    return said;
}

void expect_allocation(const AllocateEvent &event, const KernelSaid &said) {
    SCOPED_TRACE("allocation of " + to_string(said.local));
    EXPECT_EQ(event.how, said.how);
    EXPECT_EQ(event.syscall, said.syscall);
    EXPECT_EQ(event.error, 0);
    expect_same_socket(event.sock, said);
    expect_same_task(event.task, said);
    EXPECT_TRUE(said.allocated.contains(event.boot_ns))
        << event.boot_ns << " outside the call [" << said.allocated.from_ns << ", "
        << said.allocated.to_ns << "]";
}

void expect_release(const ReleaseEvent &event, const KernelSaid &said, ReleaseReason reason) {
    SCOPED_TRACE("release of " + to_string(said.local));
    ASSERT_NE(said.released.to_ns, 0u) << "the test did not time the release";
    EXPECT_EQ(event.reason, reason);
    expect_same_socket(event.sock, said);
    ASSERT_TRUE(event.owner_known);
    expect_same_task(event.owner, said);
    EXPECT_EQ(event.how, said.how);
    EXPECT_TRUE(said.released.contains(event.boot_ns))
        << event.boot_ns << " outside the release [" << said.released.from_ns << ", "
        << said.released.to_ns << "]";
    std::uint64_t shortest = said.released.from_ns > said.allocated.to_ns
                                 ? said.released.from_ns - said.allocated.to_ns
                                 : 0;
    std::uint64_t longest = said.released.to_ns - said.allocated.from_ns;
    EXPECT_GE(event.held_ns, shortest);
    EXPECT_LE(event.held_ns, longest);
}

}  // namespace portwatch::test
