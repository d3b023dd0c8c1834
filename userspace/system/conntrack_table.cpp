// SPDX-License-Identifier: Apache-2.0
#include "system/conntrack_table.h"

#include <libmnl/libmnl.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_conntrack.h>
#include <sys/socket.h>
#include <poll.h>
#include <sys/stat.h>

#include <cerrno>
#include <functional>
#include <vector>

#include "system/netns_thread.h"

namespace portwatch {
namespace {

// A dump datagram holds many messages; ctnetlink fills up to the reader's buffer size.
constexpr std::size_t kReceiveBuffer = 64 * 1024;
// The events socket's buffer: a connect storm through the NAT sends two events a connection.
constexpr int kEventsBuffer = 8 * 1024 * 1024;

Result<UniqueFd> netfilter_socket_in(int netns_fd, unsigned groups) {
    UniqueFd made;
    std::string failed;
    Status ran = run_in_netns(netns_fd, [&] {
        made = UniqueFd(
            socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, NETLINK_NETFILTER));
        if (made.get() < 0) {
            failed = errno_text("socket(NETLINK_NETFILTER)");
            return;
        }
        sockaddr_nl address{};
        address.nl_family = AF_NETLINK;
        address.nl_groups = groups;
        if (bind(made.get(), reinterpret_cast<sockaddr *>(&address), sizeof address) != 0)
            failed = errno_text("bind(ctnetlink)");
    });
    if (!ran) return Failure{ran.error()};
    if (!failed.empty()) return Failure{failed};
    return made;
}

// Sends one ctnetlink dump request of `type` and hands each message of the answer to `take`.
Status dump(int netns_fd, std::uint16_t type, const std::function<Status(const nlmsghdr *)> &take) {
    Result<UniqueFd> socket = netfilter_socket_in(netns_fd, 0);
    if (!socket) return Failure{socket.error()};
    std::vector<char> buffer(kReceiveBuffer);
    nlmsghdr *request = mnl_nlmsg_put_header(buffer.data());
    request->nlmsg_type = (NFNL_SUBSYS_CTNETLINK << 8) | type;
    request->nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
    request->nlmsg_seq = 1;
    auto *family = static_cast<nfgenmsg *>(mnl_nlmsg_put_extra_header(request, sizeof(nfgenmsg)));
    family->nfgen_family = AF_UNSPEC;  // every family's entries
    family->version = NFNETLINK_V0;
    sockaddr_nl kernel{};
    kernel.nl_family = AF_NETLINK;
    if (sendto(socket->get(), request, request->nlmsg_len, 0, reinterpret_cast<sockaddr *>(&kernel),
               sizeof kernel) < 0)
        return Failure{errno_text("ctnetlink request")};

    struct Reading {
        const std::function<Status(const nlmsghdr *)> &take;
        Status status;
    } reading{take, {}};
    auto each = [](const nlmsghdr *message, void *data) {
        auto *reading = static_cast<Reading *>(data);
        reading->status = reading->take(message);
        return reading->status ? MNL_CB_OK : MNL_CB_ERROR;
    };
    for (;;) {
        pollfd ready{socket->get(), POLLIN, 0};
        if (poll(&ready, 1, 5000) <= 0) return Failure{"ctnetlink: no answer in 5 s"};
        ssize_t received = recv(socket->get(), buffer.data(), buffer.size(), 0);
        if (received < 0) return Failure{errno_text("ctnetlink dump")};
        int result = mnl_cb_run(buffer.data(), std::size_t(received), 1, 0, each, &reading);
        if (!reading.status) return reading.status;
        if (result < 0) return Failure{errno_text("ctnetlink dump")};
        if (result == MNL_CB_STOP) return {};
    }
}

}  // namespace

bool conntrack_loaded() {
    struct stat module {};
    return stat("/sys/module/nf_conntrack", &module) == 0;
}

Result<std::vector<NatMapping>> dump_nat_mappings(int netns_fd, std::uint32_t netns) {
    std::vector<NatMapping> mappings;
    Status dumped = dump(netns_fd, IPCTNL_MSG_CT_GET, [&](const nlmsghdr *message) -> Status {
        Result<std::optional<NatMapping>> mapping = nat_mapping_of(message, netns);
        if (!mapping) return Failure{mapping.error()};
        if (*mapping) mappings.push_back(**mapping);
        return {};
    });
    if (!dumped) return Failure{dumped.error()};
    return mappings;
}

Result<ConntrackStats> read_conntrack_stats(int netns_fd) {
    ConntrackStats total;
    Status dumped =
        dump(netns_fd, IPCTNL_MSG_CT_GET_STATS_CPU, [&](const nlmsghdr *message) -> Status {
            Result<ConntrackStats> cpu = conntrack_stats_of(message);
            if (!cpu) return Failure{cpu.error()};
            total += *cpu;
            return {};
        });
    if (!dumped) return Failure{dumped.error()};
    return total;
}

Result<ConntrackEvents> ConntrackEvents::open(int netns_fd, std::uint32_t netns) {
    unsigned groups = 1u << (NFNLGRP_CONNTRACK_NEW - 1) | 1u << (NFNLGRP_CONNTRACK_DESTROY - 1);
    Result<UniqueFd> socket = netfilter_socket_in(netns_fd, groups);
    if (!socket) return Failure{socket.error()};
    // SO_RCVBUFFORCE passes net.core.rmem_max (root only); SO_RCVBUF is capped by it
    if (setsockopt(socket->get(), SOL_SOCKET, SO_RCVBUFFORCE, &kEventsBuffer,
                   sizeof kEventsBuffer) != 0 &&
        setsockopt(socket->get(), SOL_SOCKET, SO_RCVBUF, &kEventsBuffer, sizeof kEventsBuffer) != 0)
        return Failure{errno_text("SO_RCVBUF of the conntrack events socket")};
    return ConntrackEvents(std::move(*socket), netns);
}

ConntrackEvents::ConntrackEvents(UniqueFd fd, std::uint32_t netns)
    : fd_(std::move(fd)), netns_(netns), buffer_(kReceiveBuffer) {}

Result<ConntrackEvents::Pending> ConntrackEvents::take_pending() {
    Pending pending;
    struct Reading {
        Pending &pending;
        std::uint32_t netns;
    } reading{pending, netns_};
    auto each = [](const nlmsghdr *message, void *data) {
        auto *reading = static_cast<Reading *>(data);
        Result<std::optional<NatMapping>> mapping = nat_mapping_of(message, reading->netns);
        if (!mapping) {
            reading->pending.malformed++;
            return MNL_CB_OK;
        }
        if (!*mapping) return MNL_CB_OK;
        bool destroyed = (message->nlmsg_type & 0xff) == IPCTNL_MSG_CT_DELETE;
        reading->pending.changes.emplace_back(destroyed ? NatChange::removed : NatChange::added,
                                              **mapping);
        return MNL_CB_OK;
    };
    for (;;) {
        ssize_t received = recv(fd_.get(), buffer_.data(), buffer_.size(), 0);
        if (received < 0 && errno == ENOBUFS) {
            pending.overflowed = true;
            continue;
        }
        if (received < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return pending;
        if (received < 0) return Failure{errno_text("conntrack events")};
        if (mnl_cb_run(buffer_.data(), std::size_t(received), 0, 0, each, &reading) < 0)
            pending.malformed++;
    }
}

}  // namespace portwatch
