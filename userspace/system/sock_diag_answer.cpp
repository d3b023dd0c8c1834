// SPDX-License-Identifier: Apache-2.0
#include "system/sock_diag_answer.h"

#include <arpa/inet.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstring>
#include <string>

namespace portwatch {
namespace {

IpAddress address(Family family, const __be32 (&words)[4]) {
    IpAddress ip;
    ip.family = family;
    std::memcpy(ip.bytes.data(), words, family == Family::ipv4 ? 4 : 16);
    return ip;
}

// sock_diag_save_cookie() stores sock_gen_cookie()'s u64 as cookie[0] = low 32 bits,
// cookie[1] = high 32 bits, each in host order.
std::uint64_t cookie(const inet_diag_sockid &id) {
    return static_cast<std::uint64_t>(id.idiag_cookie[1]) << 32 | id.idiag_cookie[0];
}

KernelSocket decode(const inet_diag_msg &message, Proto proto, std::uint32_t netns_inode) {
    KernelSocket socket;
    SocketInfo &sock = socket.sock;
    sock.cookie = cookie(message.id);
    sock.netns = netns_inode;
    sock.proto = proto;
    sock.family = message.idiag_family == AF_INET6 ? Family::ipv6 : Family::ipv4;
    sock.local_addr = address(sock.family, message.id.idiag_src);
    sock.local_port = ntohs(message.id.idiag_sport);
    sock.remote_addr = address(sock.family, message.id.idiag_dst);
    sock.remote_port = ntohs(message.id.idiag_dport);
    socket.state = message.idiag_state;
    socket.inode = message.idiag_inode;
    socket.uid = message.idiag_uid;
    if (message.idiag_state == kTcpTimeWait) socket.time_wait_left_ms = message.idiag_expires;
    return socket;
}

// The error a netlink answer carries as -errno; any other value is named as it is (negating
// INT_MIN would overflow).
std::string negative_errno_text(int negative) {
    if (negative < 0 && negative > -4096) return std::strerror(-negative);
    return "error " + std::to_string(negative);
}

// A dump ends with NLMSG_DONE, whose payload is an int: 0 or the -errno that ended the dump
// early (netlink_dump_done()).
Result<DumpProgress> end_of_dump(const char *payload, std::size_t length) {
    int result = 0;
    if (length >= sizeof(result)) std::memcpy(&result, payload, sizeof(result));
    if (result >= 0) return DumpProgress::done;
    return Failure{"sock_diag dump: " + negative_errno_text(result)};
}

Result<DumpProgress> error_message(const char *payload, std::size_t length) {
    nlmsgerr failure{};
    if (length < sizeof(failure)) return Failure{"sock_diag: truncated error message"};
    std::memcpy(&failure, payload, sizeof(failure));
    if (failure.error == 0) return DumpProgress::done;  // an acknowledgement
    return Failure{"sock_diag: " + negative_errno_text(failure.error)};
}

Result<DumpProgress> take_message(const nlmsghdr &header, const char *payload, std::size_t length,
                                  DumpAnswer &dump) {
    if (header.nlmsg_type == NLMSG_DONE) return end_of_dump(payload, length);
    if (header.nlmsg_type == NLMSG_ERROR) return error_message(payload, length);
    if (header.nlmsg_type != SOCK_DIAG_BY_FAMILY) return DumpProgress::more;
    inet_diag_msg message;
    if (length < sizeof(message)) return Failure{"sock_diag: truncated socket message"};
    std::memcpy(&message, payload, sizeof(message));
    if (message.idiag_family != AF_INET && message.idiag_family != AF_INET6)
        return DumpProgress::more;
    KernelSocket socket = decode(message, dump.proto, dump.netns_inode);
    if (!dump.keep || dump.keep(socket)) dump.sockets.push_back(std::move(socket));
    return DumpProgress::more;
}

}  // namespace

Result<DumpProgress> take_datagram(std::span<const char> datagram, DumpAnswer &dump) {
    const char *data = datagram.data();
    std::size_t length = datagram.size();
    while (length >= NLMSG_HDRLEN) {
        nlmsghdr header;
        std::memcpy(&header, data, sizeof(header));
        if (header.nlmsg_len < NLMSG_HDRLEN || header.nlmsg_len > length)
            return Failure{"sock_diag: malformed message"};
        if (header.nlmsg_seq == dump.seq) {
            Result<DumpProgress> progress =
                take_message(header, data + NLMSG_HDRLEN, header.nlmsg_len - NLMSG_HDRLEN, dump);
            if (!progress || *progress != DumpProgress::more) return progress;
        }
        std::size_t step = std::min<std::size_t>(NLMSG_ALIGN(header.nlmsg_len), length);
        data += step;
        length -= step;
    }
    return DumpProgress::more;
}

}  // namespace portwatch
