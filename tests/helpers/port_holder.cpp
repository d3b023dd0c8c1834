// SPDX-License-Identifier: Apache-2.0
// The program `monitor -- CMD` tests run (tests/kernel/command_test.cpp): takes ports as a
// program would, writes what the kernel gave it, and holds them a while.
//   port_holder FILE HOLD_MS [EXTRA_UDP]
// binds a UDP socket to 127.0.0.1:0, listens on a TCP socket bound to 127.0.0.1:0, connects
// to that listener, then writes "PID UDP_PORT LISTEN_PORT CONNECT_PORT" (from getsockname())
// to FILE (whole: written beside it and renamed), holds the sockets HOLD_MS and exits.
// EXTRA_UDP more UDP sockets are bound to port 0 first, as many as the range gives: they fill
// a narrow ip_local_port_range.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>

namespace {

sockaddr_in loopback(std::uint16_t port) {
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(port);
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return address;
}

std::uint16_t port_of(int fd) {
    sockaddr_in address{};
    socklen_t length = sizeof address;
    if (getsockname(fd, reinterpret_cast<sockaddr *>(&address), &length) != 0) return 0;
    return ntohs(address.sin_port);
}

int bound(int type) {
    int fd = socket(AF_INET, type, 0);
    sockaddr_in address = loopback(0);
    if (fd < 0 || bind(fd, reinterpret_cast<sockaddr *>(&address), sizeof address) != 0) {
        std::perror("port_holder: bind");
        std::exit(1);
    }
    return fd;
}

}  // namespace

int main(int argc, char **argv) {
    if (argc != 3 && argc != 4) {
        std::fprintf(stderr, "usage: port_holder FILE HOLD_MS [EXTRA_UDP]\n");
        return 2;
    }
    for (int i = 0, extra = argc == 4 ? std::atoi(argv[3]) : 0; i < extra; ++i) {
        int fd = socket(AF_INET, SOCK_DGRAM, 0);
        sockaddr_in address = loopback(0);
        if (bind(fd, reinterpret_cast<sockaddr *>(&address), sizeof address) != 0) break;
    }
    int udp = bound(SOCK_DGRAM);
    int listener = bound(SOCK_STREAM);
    if (listen(listener, 4) != 0) return 1;
    int client = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in server = loopback(port_of(listener));
    if (connect(client, reinterpret_cast<sockaddr *>(&server), sizeof server) != 0) {
        std::perror("port_holder: connect");
        return 1;
    }
    std::string file = argv[1], partial = file + ".partial";
    FILE *out = std::fopen(partial.c_str(), "w");
    if (!out) return 1;
    std::fprintf(out, "%d %u %u %u\n", getpid(), port_of(udp), port_of(listener), port_of(client));
    std::fclose(out);
    std::rename(partial.c_str(), file.c_str());
    std::this_thread::sleep_for(std::chrono::milliseconds(std::atoi(argv[2])));
    return 0;
}
