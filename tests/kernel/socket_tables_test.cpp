// SPDX-License-Identifier: Apache-2.0
// dump_sockets and socket_owners against a fresh namespace that holds known sockets, checked
// against what the sockets say of themselves (getsockname, SO_COOKIE, fstat).
#include <arpa/inet.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <fstream>
#include <thread>

#include "kernel_support.h"
#include "model/port_model.h"
#include "system/cgroup_id_lookup.h"
#include "system/netns_config.h"
#include "system/socket_tables.h"

#ifndef SO_COOKIE
#define SO_COOKIE 57
#endif

namespace portwatch::test {
namespace {

constexpr std::uint16_t kListenerPort = 7000;
// Without reuse a TIME_WAIT socket stays one (the test reads it back).
const Sysctls kNoTwReuse = {{"net/ipv4/tcp_tw_reuse", "0"}};

// Needs root but not the BPF programs.
class SocketTablesTest : public RootTest {
  protected:
    SocketTablesTest()
        : RootTest("socket table tests need root (unshare, setns, /proc/PID/fd of others)") {}
};

std::uint64_t cookie_of(int fd) {
    std::uint64_t cookie = 0;
    socklen_t length = sizeof(cookie);
    EXPECT_EQ(getsockopt(fd, SOL_SOCKET, SO_COOKIE, &cookie, &length), 0) << std::strerror(errno);
    return cookie;
}

std::uint64_t inode_of(int fd) {
    struct stat st {};
    EXPECT_EQ(fstat(fd, &st), 0);
    return st.st_ino;
}

std::uint32_t netns_inode_of(const char *path) {
    struct stat st {};
    EXPECT_EQ(stat(path, &st), 0) << path;
    return static_cast<std::uint32_t>(st.st_ino);
}

std::string own_comm() {
    std::ifstream file("/proc/self/comm");
    std::string comm;
    std::getline(file, comm);
    return comm;
}

IpAddress ip(Family family, const char *text) {
    IpAddress address;
    address.family = family;
    EXPECT_EQ(inet_pton(family == Family::ipv4 ? AF_INET : AF_INET6, text, address.bytes.data()),
              1);
    return address;
}

int accept_one(int listener) {
    int fd = accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
    EXPECT_GE(fd, 0) << std::strerror(errno);
    return fd;
}

int connected_client(Family family) {
    int fd = make_socket(family, Proto::tcp);
    EXPECT_EQ(connect_to(fd, family, kListenerPort), 0) << std::strerror(errno);
    return fd;
}

// The sockets a test leaves in its namespace; the live ones are closed on destruction.
struct TestSockets {
    int listener = -1;
    int client = -1;
    int accepted = -1;
    int udp6 = -1;
    std::uint16_t time_wait_port = 0;
    std::uint64_t time_wait_cookie = 0;

    ~TestSockets() {
        for (int fd : {listener, client, accepted, udp6})
            if (fd >= 0) close(fd);
    }
};

// The client closes first (the active close), so once the server has closed too it is the
// client's end that waits in TIME_WAIT.
void leave_a_time_wait(TestSockets &sockets) {
    int client = connected_client(Family::ipv4);
    int server = accept_one(sockets.listener);
    sockets.time_wait_port = local_port_of(client);
    sockets.time_wait_cookie = cookie_of(client);
    close(client);
    char byte;
    EXPECT_EQ(read(server, &byte, 1), 0);  // the client's FIN
    close(server);
}

// Runs inside the namespace.
void make_test_sockets(TestSockets &sockets) {
    sockets.listener = listener_on(Family::ipv4, kListenerPort);
    sockets.client = connected_client(Family::ipv4);
    sockets.accepted = accept_one(sockets.listener);
    sockets.udp6 = make_socket(Family::ipv6, Proto::udp);
    EXPECT_EQ(bind_to(sockets.udp6, Family::ipv6, 0), 0) << std::strerror(errno);
    leave_a_time_wait(sockets);
}

bool closing(const KernelSocket &socket) {
    return socket.sock.proto == Proto::tcp && socket.state != kTcpListen &&
           socket.state != kTcpEstablished && socket.state != kTcpTimeWait;
}

// The loopback hands the last segments of a close over in softirq context, which may still
// be running when close() returns: dumps until no socket is half closed (or 2 s passed).
std::vector<KernelSocket> settled_dump(int netns_fd, std::uint32_t netns_inode) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
    while (true) {
        Result<std::vector<KernelSocket>> sockets = dump_sockets(netns_fd, netns_inode);
        EXPECT_TRUE(sockets) << sockets.error();
        if (!sockets) return {};
        if (std::none_of(sockets->begin(), sockets->end(), closing) ||
            std::chrono::steady_clock::now() > deadline)
            return *sockets;
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
}

// The dump of `netns`, found by its inode as the agent would find it.
std::vector<KernelSocket> dump_of(const Netns &netns, NetnsConfigReader &reader) {
    Result<int> fd = reader.handle(netns.inode());
    EXPECT_TRUE(fd) << fd.error();
    if (!fd) return {};
    EXPECT_GE(*fd, 0);
    return settled_dump(*fd, netns.inode());
}

const KernelSocket *find(const std::vector<KernelSocket> &sockets, Proto proto,
                         std::uint16_t local_port, std::uint16_t remote_port) {
    auto found = std::find_if(sockets.begin(), sockets.end(), [&](const KernelSocket &socket) {
        return socket.sock.proto == proto && socket.sock.local_port == local_port &&
               socket.sock.remote_port == remote_port;
    });
    return found == sockets.end() ? nullptr : &*found;
}

// What every socket of the dump shares, and what a live one says of itself.
void expect_live(const KernelSocket &socket, int fd, std::uint32_t netns_inode) {
    EXPECT_EQ(socket.sock.netns, netns_inode);
    EXPECT_EQ(socket.sock.cookie, cookie_of(fd));
    EXPECT_EQ(socket.inode, inode_of(fd));
    EXPECT_EQ(socket.uid, geteuid());
    EXPECT_EQ(socket.time_wait_left_ms, 0u);
}

TEST_F(SocketTablesTest, DumpListsExactlyTheNamespacesSockets) {
    Netns netns(kNoTwReuse);
    TestSockets made;
    netns.run([&] { make_test_sockets(made); });
    std::uint32_t own_netns_before = netns_inode_of("/proc/thread-self/ns/net");

    NetnsConfigReader reader;
    std::vector<KernelSocket> sockets = dump_of(netns, reader);
    EXPECT_EQ(netns_inode_of("/proc/thread-self/ns/net"), own_netns_before);
    ASSERT_EQ(sockets.size(), 5u);

    std::uint16_t client_port = local_port_of(made.client);
    const KernelSocket *listener = find(sockets, Proto::tcp, kListenerPort, 0);
    const KernelSocket *client = find(sockets, Proto::tcp, client_port, kListenerPort);
    const KernelSocket *accepted = find(sockets, Proto::tcp, kListenerPort, client_port);
    const KernelSocket *time_wait = find(sockets, Proto::tcp, made.time_wait_port, kListenerPort);
    const KernelSocket *udp6 = find(sockets, Proto::udp, local_port_of(made.udp6), 0);
    ASSERT_TRUE(listener && client && accepted && time_wait && udp6);

    EXPECT_EQ(listener->state, kTcpListen);
    EXPECT_EQ(listener->sock.family, Family::ipv4);
    EXPECT_EQ(listener->sock.local_addr, ip(Family::ipv4, "127.0.0.1"));
    expect_live(*listener, made.listener, netns.inode());
    EXPECT_EQ(client->state, kTcpEstablished);
    EXPECT_EQ(client->sock.remote_addr, ip(Family::ipv4, "127.0.0.1"));
    expect_live(*client, made.client, netns.inode());
    EXPECT_EQ(accepted->state, kTcpEstablished);
    expect_live(*accepted, made.accepted, netns.inode());
    EXPECT_EQ(udp6->state, kTcpClose);  // unconnected
    EXPECT_EQ(udp6->sock.family, Family::ipv6);
    EXPECT_EQ(udp6->sock.local_addr, ip(Family::ipv6, "::1"));
    expect_live(*udp6, made.udp6, netns.inode());

    EXPECT_EQ(time_wait->state, kTcpTimeWait);
    EXPECT_GT(time_wait->time_wait_left_ms, 0u);
    EXPECT_LE(time_wait->time_wait_left_ms, 60000u);
    EXPECT_EQ(time_wait->inode, 0u);
    EXPECT_EQ(time_wait->sock.cookie, made.time_wait_cookie);  // inet_twsk_alloc() keeps it
    EXPECT_NE(time_wait->sock.cookie, 0u);
}

// inet_diag lists a TCP table's listeners before its other sockets: a pass's row filter sees
// the listener first and leaves its accepted socket out, and nothing else.
TEST_F(SocketTablesTest, APassLeavesOutTheAcceptedSockets) {
    Netns netns(kNoTwReuse);
    TestSockets made;
    netns.run([&] { make_test_sockets(made); });
    PortModel model(ModelSettings{},
                    [](std::uint32_t, std::uint32_t) { return NetnsPortConfig{}; });
    TableRowFilter needed(model);
    NetnsConfigReader reader;
    Result<int> fd = reader.handle(netns.inode());
    ASSERT_TRUE(fd) << fd.error();

    Result<std::vector<KernelSocket>> sockets = dump_sockets(
        *fd, netns.inode(), [&needed](const KernelSocket &socket) { return needed.keep(socket); });
    ASSERT_TRUE(sockets) << sockets.error();
    std::uint16_t client_port = local_port_of(made.client);
    EXPECT_FALSE(find(*sockets, Proto::tcp, kListenerPort, client_port)) << "the accepted one";
    EXPECT_TRUE(find(*sockets, Proto::tcp, kListenerPort, 0));
    EXPECT_TRUE(find(*sockets, Proto::tcp, client_port, kListenerPort));
    EXPECT_TRUE(find(*sockets, Proto::tcp, made.time_wait_port, kListenerPort));
    EXPECT_TRUE(find(*sockets, Proto::udp, local_port_of(made.udp6), 0));
}

TEST_F(SocketTablesTest, AMappedIpv4SocketStaysIpv6) {
    Netns netns;
    int listener = -1, client = -1;
    netns.run([&] {
        listener = listener_on(Family::ipv4, kListenerPort);
        client = make_socket(Family::ipv6, Proto::tcp);
        sockaddr_in6 mapped{};
        mapped.sin6_family = AF_INET6;
        mapped.sin6_port = htons(kListenerPort);
        inet_pton(AF_INET6, "::ffff:127.0.0.1", &mapped.sin6_addr);
        EXPECT_EQ(connect(client, reinterpret_cast<sockaddr *>(&mapped), sizeof(mapped)), 0);
    });

    NetnsConfigReader reader;
    std::vector<KernelSocket> sockets = dump_of(netns, reader);
    const KernelSocket *found = find(sockets, Proto::tcp, local_port_of(client), kListenerPort);
    ASSERT_TRUE(found);
    EXPECT_EQ(found->sock.family, Family::ipv6);
    EXPECT_EQ(found->sock.local_addr, ip(Family::ipv6, "::ffff:127.0.0.1"));
    EXPECT_EQ(found->sock.remote_addr, ip(Family::ipv6, "::ffff:127.0.0.1"));
    EXPECT_EQ(found->sock.cookie, cookie_of(client));
    close(client);
    close(listener);
}

TEST_F(SocketTablesTest, OwnersAreTheProcessesHoldingTheSockets) {
    Netns netns(kNoTwReuse);
    TestSockets made;
    netns.run([&] { make_test_sockets(made); });

    Result<SocketOwners> read_owners = socket_owners();
    EXPECT_TRUE(read_owners.error().empty()) << read_owners.error();
    ASSERT_TRUE(read_owners);
    const SocketOwners &owners = *read_owners;
    std::shared_ptr<TaskInfo> owner = owners.owner_of(inode_of(made.listener));
    ASSERT_TRUE(owner);
    auto pid = static_cast<std::uint32_t>(getpid());
    EXPECT_EQ(owner->pid, pid);
    EXPECT_EQ(owner->tid, pid);
    EXPECT_EQ(owner->uid, getuid());
    std::string own_cgroup = own_cgroup_path();
    EXPECT_EQ(owner->cgroup_path, own_cgroup);
    EXPECT_EQ(owner->cgroup_id, cgroup_id_at(TestCgroup::mount(), own_cgroup));
    EXPECT_NE(owner->cgroup_id, 0u);
    EXPECT_EQ(owner->comm, own_comm());

    NetnsConfigReader reader;
    for (const KernelSocket &socket : with_owners(dump_of(netns, reader), owners)) {
        if (socket.state == kTcpTimeWait) {
            EXPECT_FALSE(socket.owner);
        } else {
            ASSERT_TRUE(socket.owner) << "socket inode " << socket.inode;
            EXPECT_EQ(socket.owner->pid, pid);
        }
    }
}

TEST_F(SocketTablesTest, AllNamespacesHasTheHostsAndOneWithOnlyAThreadInside) {
    Netns netns;
    NetnsConfigReader reader;
    std::vector<std::uint32_t> seen;
    netns.run([&] { seen = reader.all_namespaces(); });

    EXPECT_TRUE(std::is_sorted(seen.begin(), seen.end()));
    EXPECT_EQ(std::adjacent_find(seen.begin(), seen.end()), seen.end());
    auto has = [&](std::uint32_t inode) {
        return std::find(seen.begin(), seen.end(), inode) != seen.end();
    };
    EXPECT_TRUE(has(netns_inode_of("/proc/self/ns/net")));
    EXPECT_TRUE(has(netns.inode()));
}

TEST_F(SocketTablesTest, DumpOfTheHostsNamespaceSucceeds) {
    std::uint32_t host = netns_inode_of("/proc/self/ns/net");
    NetnsConfigReader reader;
    Result<int> fd = reader.handle(host, static_cast<std::uint32_t>(getpid()));
    ASSERT_TRUE(fd) << fd.error();
    ASSERT_GE(*fd, 0);
    EXPECT_TRUE(fd.error().empty());
    Result<int> cached = reader.handle(host);
    ASSERT_TRUE(cached) << cached.error();
    EXPECT_EQ(*cached, *fd);  // cached

    Result<std::vector<KernelSocket>> sockets = dump_sockets(*fd, host);
    ASSERT_TRUE(sockets) << sockets.error();
    EXPECT_TRUE(sockets.error().empty());
    for (const KernelSocket &socket : *sockets) {
        EXPECT_EQ(socket.sock.netns, host);
        EXPECT_NE(socket.sock.cookie, 0u);
    }
}

TEST_F(SocketTablesTest, HandleOfAnUnknownNamespaceIsAFailureWithAReason) {
    NetnsConfigReader reader;
    Result<int> fd = reader.handle(1);
    EXPECT_FALSE(fd);
    EXPECT_FALSE(fd.error().empty());
    EXPECT_EQ(reader.cached(), 0u);
}

}  // namespace
}  // namespace portwatch::test
