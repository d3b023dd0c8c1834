// SPDX-License-Identifier: Apache-2.0
// Reconciliation: the kernel's socket tables, read at start and periodically, correct what
// the events built (sockets allocated before the start or while events were lost, sockets
// gone, owners changed, TIME_WAIT).
#include "model/port_model.h"

#include <algorithm>
#include <optional>
#include <utility>

namespace portwatch {

namespace {

bool is_tcp_listener(const KernelSocket &socket) {
    return socket.sock.proto == Proto::tcp && socket.state == kTcpListen;
}

bool is_tcp_time_wait(const KernelSocket &socket) {
    return socket.sock.proto == Proto::tcp && socket.state == kTcpTimeWait;
}

// A TCP socket that shares a port one of `listening` holds (an accepted one, mostly): it
// holds no port of its own.
bool shares_a_listeners_port(const KernelSocket &socket, const PortSet &listening) {
    return socket.sock.proto == Proto::tcp && socket.state != kTcpListen &&
           listening.contains(socket.sock.local_port);
}

// The tables alone cannot tell a server's accepted sockets whose listener is gone (closed
// first by the server, they stay in TIME_WAIT on its port) from connect()s that share a
// local port: __inet_hash_connect() gives one port to connections towards different
// destinations. A server's peers are clients: their ports are of the ranges clients choose
// from, nearly each its own (nine in ten: clients behind different addresses may pick the
// same one). A client's peers are services, which listen on ports below those ranges (the
// soak's client: one local port towards 50 services of one host). So a local port that at
// least kServedSockets sockets share is taken as a server's when nearly each is towards a
// client's port of its own. What stays ambiguous: docs/limits.md.
constexpr std::size_t kServedSockets = 3;

// Where the ranges clients choose from begin: Linux's default is 32768-60999; Windows',
// macOS's and the BSDs' 49152-65535. A host's own range says nothing of its peers'.
constexpr std::uint16_t kClientPortsFrom = 32768;

// What the connected TCP sockets on one local port are towards.
struct PeersOfAPort {
    std::size_t sockets = 0;
    std::size_t towards_client_ports = 0;
    std::size_t remote_ports = 0;  // distinct

    bool nearly_all(std::size_t count) const { return count * 10 >= sockets * 9; }
    bool are_a_servers_clients() const {
        return sockets >= kServedSockets && nearly_all(remote_ports) &&
               nearly_all(towards_client_ports);
    }
};

// Gives a container's memory back (clear() may keep a table's capacity).
template <typename Container>
void free_all(Container &container) {
    container = Container();
}

}  // namespace

TableReading::TableReading(const PortModel &model) : model_(&model) {
    filter_.emplace(model);
}

TableReading::TableReading(std::vector<KernelSocket> table) {
    for (KernelSocket &socket : table) take(std::move(socket));
}

void TableReading::take(KernelSocket socket) {
    if (filter_ && !filter_->keep(socket)) return;
    note(socket);
    if (model_ && model_->holds_as_listed(socket)) return;
    rows_.push_back(std::move(socket));
}

void TableReading::note(const KernelSocket &socket) {
    if (is_tcp_listener(socket)) listening_.insert(socket.sock.local_port);
    if (is_tcp_time_wait(socket))
        waiting_.insert(socket.sock.cookie);
    else
        live_.add(socket.sock.cookie);
    if (socket.sock.proto != Proto::tcp || socket.state == kTcpListen || !socket.sock.has_remote())
        return;
    peers_.push_back(std::uint32_t(socket.sock.local_port) << 16 | socket.sock.remote_port);
}

PortSet TableReading::served_ports() {
    std::sort(peers_.begin(), peers_.end());
    PortSet served;
    // one local port's run at a time, its remote ports in order
    for (auto run = peers_.begin(); run != peers_.end();) {
        std::uint16_t local_port = *run >> 16;
        PeersOfAPort peers;
        std::optional<std::uint16_t> previous_remote;
        for (; run != peers_.end() && (*run >> 16) == local_port; ++run) {
            auto remote_port = std::uint16_t(*run & 0xffff);
            peers.sockets++;
            peers.towards_client_ports += remote_port >= kClientPortsFrom;
            peers.remote_ports += remote_port != previous_remote;
            previous_remote = remote_port;
        }
        if (peers.are_a_servers_clients()) served.insert(local_port);
    }
    return served;
}

void PortModel::reconcile(std::uint32_t netns, const std::vector<KernelSocket> &table,
                          std::uint64_t read_at_ns,
                          const std::function<bool(const KernelSocket &)> &admit) {
    reconcile(netns, TableReading(table), read_at_ns, admit);
}

void PortModel::reconcile(std::uint32_t netns, TableReading &&table, std::uint64_t read_at_ns,
                          const std::function<bool(const KernelSocket &)> &admit) {
    reconcile_totals_.runs++;
    netns_state(netns, 0);
    std::uint64_t settled_before =
        read_at_ns > settings_.reconcile_grace_ns ? read_at_ns - settings_.reconcile_grace_ns : 0;
    history_.forget_releases_before(settled_before);
    TablePorts ports{std::move(table.listening_), table.served_ports()};
    free_all(table.peers_);
    table.live_.sort();
    ReconcileHistory::PassStart pass = history_.begin_pass(netns, table.live_);
    drop_gone_sockets(netns, table.live_, settled_before, read_at_ns);
    free_all(table.live_);  // before the model grows

    CookieSet old_waiting = time_wait_.added_before(netns, settled_before);
    CookieSet kept_waiting = drop_time_wait_of(netns, settled_before);
    // the loop only adds to sockets_: a row unknown in it was unknown before it
    CookieSet released = history_.released_cookies_for(
        table.rows_, [this](std::uint64_t cookie) { return sockets_.contains(cookie); });
    for (; !table.rows_.empty(); table.rows_.pop_front()) {
        const KernelSocket &socket = table.rows_.front();
        std::uint64_t cookie = socket.sock.cookie;
        if (update_known_socket(socket) || released.contains(cookie) ||
            kept_waiting.contains(cookie) || (admit && !admit(socket)) ||
            history_.owner_may_be_in_flight(netns, socket, pass))
            continue;
        add_table_socket(netns, socket, ports, read_at_ns, old_waiting);
    }
    for (std::uint64_t cookie : old_waiting)
        if (!table.waiting_.contains(cookie)) reconcile_totals_.time_wait++;
    evaluate_netns(netns, read_at_ns);
}

// Drops the netns's sockets the tables no longer list, unless an event showed them too
// recently for the tables to tell.
void PortModel::drop_gone_sockets(std::uint32_t netns, const SortedCookies &live,
                                  std::uint64_t settled_before, std::uint64_t read_at_ns) {
    for (auto it = sockets_.begin(); it != sockets_.end();) {
        const HeldSocket &held = it->second;
        bool gone =
            held.sock.netns == netns && !live.contains(it->first) && held.since_ns < settled_before;
        if (!gone) {
            ++it;
            continue;
        }
        forget(held);
        note_released(held, read_at_ns);
        netns_[netns].hold_port(held.scope_kind(), held.sock.proto, held.sock.local_port, -1);
        history_.note_dropped(netns, it->first);
        sockets_.erase(it++);  // absl's erase(iterator) returns nothing
        reconcile_totals_.removed++;
    }
}

// What the tables say of a socket the model holds: who holds it now, and for a TCP socket
// (a bind(0) the events showed) what it is for. False when the model does not hold it.
bool PortModel::update_known_socket(const KernelSocket &socket) {
    auto known = sockets_.find(socket.sock.cookie);
    if (known == sockets_.end()) return false;
    if (socket.owner && socket.owner->pid != known->second.pid)
        move_owner(known->second, *socket.owner);
    if (socket.sock.proto == Proto::tcp) {
        if (socket.state == kTcpListen)
            known->second.listening = true;
        else if (socket.sock.has_remote())
            known->second.connected = true;
    }
    return true;
}

bool PortModel::holds_as_listed(const KernelSocket &row) const {
    auto known = sockets_.find(row.sock.cookie);
    if (known == sockets_.end()) return false;
    const HeldSocket &held = known->second;
    if (row.owner && row.owner->pid != held.pid) return false;
    if (row.sock.proto != Proto::tcp) return true;
    if (row.state == kTcpListen) return held.listening;
    return !row.sock.has_remote() || held.connected;
}

// A socket no event showed: a TIME_WAIT entry, or a port held since the tables were read.
void PortModel::add_table_socket(std::uint32_t netns, const KernelSocket &socket,
                                 const TablePorts &ports, std::uint64_t read_at_ns,
                                 const CookieSet &old_waiting) {
    auto held = from_table(socket, ports, read_at_ns);
    if (!held) return;
    std::uint64_t cookie = socket.sock.cookie;
    if (is_tcp_time_wait(socket)) {
        std::uint64_t left_ns = std::uint64_t(socket.time_wait_left_ms) * 1'000'000;
        add_time_wait(held->scope(), Proto::tcp, socket.sock.local_port, cookie, read_at_ns,
                      read_at_ns + left_ns + settings_.time_wait_timer_lag_ns, true);
        netns_[netns].hold_port(held->scope_kind(), Proto::tcp, socket.sock.local_port, +1);
        if (!old_waiting.contains(cookie)) reconcile_totals_.time_wait++;
        return;
    }
    held->since_ns = read_at_ns;
    held->from_table = true;
    held->listening = socket.sock.proto == Proto::tcp && socket.state == kTcpListen;
    held->connected = !held->listening && socket.sock.has_remote();
    TaskInfo owner = socket.owner ? *socket.owner : TaskInfo{};
    hold(*held, owner);
    reconcile_totals_.added++;
}

// What a socket in the tables holds, as far as they tell: a listener, or a port in the
// range (a connect() autobind, or a bind(0) we cannot tell from it), or a fixed port.
// An accepted socket shares its listener's port and holds none of its own; once that
// listener is gone, the port is a bind()-style one its accepted sockets keep.
std::optional<HeldSocket> PortModel::from_table(const KernelSocket &socket, const TablePorts &ports,
                                                std::uint64_t read_at_ns) const {
    const SocketInfo &sock = socket.sock;
    if (sock.local_port == 0 || sock.cookie == 0) return std::nullopt;
    if (shares_a_listeners_port(socket, ports.listening)) return std::nullopt;
    How how = How::bind;
    if (sock.proto == Proto::tcp && socket.state != kTcpListen) {
        auto ns = netns_.find(sock.netns);
        bool ephemeral = ns != netns_.end() && ns->second.config.is_ephemeral(sock.local_port);
        if (ephemeral && sock.has_remote() && !ports.served.contains(sock.local_port) &&
            !ns->second.bind_style_port(sock.local_port, read_at_ns, settings_.time_wait_ns))
            how = How::connect_autobind;
    }
    std::uint32_t pid = socket.owner ? socket.owner->pid : 0;
    return HeldSocket{sock, how, pid, 0};
}

bool TableRowFilter::keep(const KernelSocket &socket) {
    if (is_tcp_listener(socket)) listening_.insert(socket.sock.local_port);
    return !shares_a_listeners_port(socket, listening_) ||
           model_.holds_socket(socket.sock.cookie) || model_.missed_once(socket.sock);
}

void PortModel::note_released(const HeldSocket &held, std::uint64_t now_ns) {
    if (held.sock.proto == Proto::tcp && held.scope_kind() == ScopeKind::bind)
        netns_state(held.sock.netns, 0).bind_ports_released[held.sock.local_port] = now_ns;
}

}  // namespace portwatch
