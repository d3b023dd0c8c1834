// SPDX-License-Identifier: Apache-2.0
// A real NAT topology for kernel tests, as every Kubernetes or Docker node has it: "pod" netns
// routed through a "node" netns that forwards and translates (nft or iptables rules the test
// applies) to a "server" netns. Every netns is named (/run/netns/pw-nat-<pid>-<n>, as
// `ip netns add` makes it) so that other processes (portwatch, ip, nft, conntrack) reach it;
// all are deleted when the topology is destroyed.
//
//   pod P  eth0 198.18.P.2/24  fd00:18:P::2/64 ── veth ── pod<P>  198.18.P.1  fd00:18:P::1   node
//   server eth0 198.19.0.2/24  fd00:19::2/64   ── veth ── out     198.19.0.1  fd00:19::1     node
//
// The server listens on TCP kServerTcpPort (closing a connection when the client closes it)
// and answers every datagram to UDP kServerUdpPort with the same bytes; it runs on a thread of
// the test process joined to the server netns, as the pods' sockets do: portwatch sees them as
// the test's. The oracles are the kernel's own: the node's conntrack table and statistics
// through the `conntrack` tool, and getsockname() of each pod socket.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "events/event.h"
#include "kernel_said.h"

namespace portwatch::test {

// What a program run to its end said.
struct Ran {
    int exit_code = -1;
    std::string out, err;
};
// Runs `argv` (argv[0] found in PATH) with `input` on stdin, in the netns of `netns_fd` (-1: the
// caller's), and waits for it.
Ran run_program(const std::vector<std::string> &argv, const std::string &input = "",
                int netns_fd = -1);

// A named network namespace with lo up, deleted when destroyed.
class NamedNetns {
  public:
    explicit NamedNetns(std::string name);
    ~NamedNetns();
    NamedNetns(const NamedNetns &) = delete;
    NamedNetns &operator=(const NamedNetns &) = delete;

    const std::string &name() const { return name_; }
    int fd() const { return fd_; }
    std::uint32_t inode() const { return inode_; }  // as readlink /proc/PID/ns/net says it
    // Runs `body` on a new thread joined to this netns, and waits for it.
    void run(const std::function<void()> &body) const;
    // Runs a program inside, as `ip netns exec NAME` would.
    Ran exec(const std::vector<std::string> &argv, const std::string &input = "") const;
    // Writes a sysctl of this netns (path under /proc/sys).
    void sysctl(const std::string &path, const std::string &value) const;

  private:
    std::string name_;
    int fd_ = -1;
    std::uint32_t inode_ = 0;
};

// One conntrack entry as `conntrack -L -o extended` prints it.
struct ConntrackEntry {
    Proto proto = Proto::tcp;
    std::string state;  // TCP's ("ESTABLISHED", "TIME_WAIT", ...); "" for UDP
    bool unreplied = false;
    Endpoint original_src, original_dst, reply_src, reply_dst;
    // The translated source: where the reply goes back to.
    Endpoint nat() const { return reply_dst; }
};
// Parses `conntrack -L -o extended` (or -E) lines; nullopt for a line that is no entry.
std::optional<ConntrackEntry> parse_conntrack_line(const std::string &line);

// conntrack -S summed over CPUs.
struct ConntrackStats {
    std::uint64_t insert_failed = 0, drop = 0, clash_resolve = 0;
};

// A pod socket's outcome.
struct PodSocket {
    int fd = -1;  // still open (held connections, UDP sockets), or -1 once closed
    // getsockname() after connect or sendto (an unconnected UDP socket's address: the pod's)
    Endpoint local;
    bool connected = false;  // TCP: the handshake completed; UDP: the answer came back
    int error = 0;           // the connect's errno (SO_ERROR), 0 also for a timeout
};

// An nft ruleset for the node: `family` table pw_nat, masquerading `proto` on the outside
// interface, `to` its range (" to :40000-40009", or "" for none).
std::string masquerade_ruleset(const std::string &family, const std::string &proto,
                               const std::string &to = " to :40000-40009");
// How many of `socks` connected.
int connected(const std::vector<PodSocket> &socks);

class NatTopology {
  public:
    static constexpr std::uint16_t kServerTcpPort = 80;
    static constexpr std::uint16_t kServerUdpPort = 53;
    static constexpr const char *kOutside = "out";  // the node's interface towards the server

    explicit NatTopology(int pods = 1);
    ~NatTopology();
    NatTopology(const NatTopology &) = delete;
    NatTopology &operator=(const NatTopology &) = delete;

    const NamedNetns &node() const { return *node_; }
    const NamedNetns &server() const { return *server_; }
    const NamedNetns &pod(int p) const { return *pods_.at(p - 1); }  // pods count from 1
    int pods() const { return static_cast<int>(pods_.size()); }

    static IpAddress pod_address(int p, Family family);    // 198.18.P.2, fd00:18:P::2
    static IpAddress server_address(Family family);        // 198.19.0.2, fd00:19::2
    static IpAddress node_outside_address(Family family);  // 198.19.0.1, fd00:19::1
    static Endpoint server_endpoint(Family family, Proto proto);

    // Rules in the node: an nft ruleset (`nft -f -`), iptables-nft or iptables-legacy
    // commands (arguments after the program name, one command a string, split at spaces);
    // each ADD_FAILUREs with the tool's stderr when it fails. `v6` selects ip6tables.
    bool nft(const std::string &ruleset) const;
    bool iptables(const std::vector<std::string> &commands, bool legacy = false,
                  bool v6 = false) const;
    // One more address on the node's outside interface ("198.19.0.10", "fd00:19::10").
    void add_outside_address(const std::string &address) const;

    // From pod `p`, on a thread joined to its netns: `count` TCP connections to the server,
    // one after the other, each given `timeout` to connect; kept open (closed by the
    // topology's destructor or close_held()); one that did not connect is closed at once.
    // `source_port`: the i-th socket binds source_port + i first.
    std::vector<PodSocket> hold_tcp(int p, int count, std::chrono::milliseconds timeout,
                                    Family family = Family::ipv4, std::uint16_t source_port = 0);
    // The same, each closed as soon as it connected (the server closes its end then: both
    // sides' FINs pass the node, which keeps the entry in TIME_WAIT).
    std::vector<PodSocket> short_tcp(int p, int count, std::chrono::milliseconds timeout,
                                     Family family = Family::ipv4);
    // A DNS-like burst: `count` fresh UDP sockets each send one datagram to the server's UDP
    // port; connected = its answer came back within `timeout`. Kept open (close_held()).
    std::vector<PodSocket> udp_burst(int p, int count, std::chrono::milliseconds timeout,
                                     Family family = Family::ipv4);
    void close_held();

    // The node's conntrack table (`conntrack -L -f ipv4|ipv6 -o extended`) and statistics.
    std::vector<ConntrackEntry> conntrack(Family family = Family::ipv4) const;
    ConntrackStats conntrack_stats() const;

  private:
    void build_links();
    void start_server();
    void stop_server();

    std::string prefix_;
    std::unique_ptr<NamedNetns> node_, server_;
    std::vector<std::unique_ptr<NamedNetns>> pods_;
    std::vector<int> held_;
    int server_stop_[2] = {-1, -1};
    std::unique_ptr<std::thread> server_thread_;
};

// `conntrack -E -o extended` in a netns, running while this object lives: the event lines
// (e.g. " [NEW] ipv4 2 tcp 6 120 SYN_SENT src=... [UNREPLIED] src=... dport=40003").
class ConntrackEvents {
  public:
    explicit ConntrackEvents(const NamedNetns &netns);
    ~ConntrackEvents();
    ConntrackEvents(const ConntrackEvents &) = delete;
    ConntrackEvents &operator=(const ConntrackEvents &) = delete;
    // The next line, or "" after `timeout`.
    std::string next_line(std::chrono::milliseconds timeout);

  private:
    pid_t pid_ = -1;
    int out_ = -1;
    std::string buffer_;
};

std::string to_string(const ConntrackEntry &entry);

}  // namespace portwatch::test
