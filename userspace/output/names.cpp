// SPDX-License-Identifier: Apache-2.0
#include "output/names.h"

#include <cstring>

namespace portwatch {

std::string_view name_of(How how) {
    switch (how) {
        case How::bind:
            return "bind";
        case How::bind_ephemeral:
            return "bind_ephemeral";
        case How::listen_autobind:
            return "listen_autobind";
        case How::connect_autobind:
            return "connect_autobind";
        case How::sendto_autobind:
            return "sendto_autobind";
    }
    return "unknown";
}

std::string_view name_of(Syscall syscall) {
    switch (syscall) {
        case Syscall::bind:
            return "bind";
        case Syscall::listen:
            return "listen";
        case Syscall::connect:
            return "connect";
        case Syscall::sendto:
            return "sendto";
        case Syscall::sendmsg:
            return "sendmsg";
        case Syscall::sendmmsg:
            return "sendmmsg";
    }
    return "unknown";
}

std::string_view name_of(Proto proto) {
    return proto == Proto::tcp ? "tcp" : "udp";
}

std::string_view name_of(Family family) {
    return family == Family::ipv4 ? "ipv4" : "ipv6";
}

std::string_view name_of(ReleaseReason reason) {
    switch (reason) {
        case ReleaseReason::socket_closed:
            return "socket_closed";
        case ReleaseReason::tcp_closed:
            return "tcp_closed";
        case ReleaseReason::time_wait:
            return "time_wait";
        case ReleaseReason::disconnect:
            return "disconnect";
    }
    return "unknown";
}

std::string errno_name(int error) {
    if (const char *name = strerrorname_np(error)) return name;
    return "E" + std::to_string(error);
}

std::optional<Proto> parse_proto(std::string_view text) {
    if (text == "tcp") return Proto::tcp;
    if (text == "udp") return Proto::udp;
    return std::nullopt;
}

std::optional<Family> parse_family(std::string_view text) {
    if (text == "4" || text == "ipv4") return Family::ipv4;
    if (text == "6" || text == "ipv6") return Family::ipv6;
    return std::nullopt;
}

}  // namespace portwatch
