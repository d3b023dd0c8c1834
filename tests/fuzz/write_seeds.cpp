// SPDX-License-Identifier: Apache-2.0
// Writes the checked-in seed corpora (corpus/<harness>/): well-formed inputs of each kind, so
// every run starts past the checks a random input fails. Run again when the ABI changes:
//   build/tests/fuzz/write_seeds tests/fuzz/corpus
#include <arpa/inet.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "events/abi.h"

namespace {

using Bytes = std::vector<std::uint8_t>;
namespace fs = std::filesystem;

template <typename Plain>
void append(Bytes &out, const Plain &value) {
    const auto *bytes = reinterpret_cast<const std::uint8_t *>(&value);
    out.insert(out.end(), bytes, bytes + sizeof(value));
}

void append_piece(Bytes &out, const Bytes &piece, bool wide) {
    if (wide) out.push_back(std::uint8_t(piece.size() >> 8));
    out.push_back(std::uint8_t(piece.size() & 0xff));
    out.insert(out.end(), piece.begin(), piece.end());
}

void append_text(Bytes &out, const std::string &text) {
    append_piece(out, Bytes(text.begin(), text.end()), false);
}

pw_socket socket_of(std::uint8_t proto, std::uint8_t family, std::uint16_t port,
                    std::uint64_t cookie) {
    pw_socket sock{};
    sock.cookie = cookie;
    sock.netns = 4026531840u;
    sock.proto = proto;
    sock.family = family;
    sock.local_port = port;
    if (family == AF_INET) {
        inet_pton(AF_INET, "10.0.0.1", sock.local_addr);
        inet_pton(AF_INET, "192.168.1.2", sock.remote_addr);
    } else {
        inet_pton(AF_INET6, "2001:db8::1", sock.local_addr);
        inet_pton(AF_INET6, "2001:db8::2", sock.remote_addr);
    }
    sock.remote_port = 443;
    return sock;
}

pw_task task_of(const char *comm) {
    pw_task task{};
    task.cgroup_id = 7777;
    task.pid = 1234;
    task.tid = 1240;
    task.uid = 1000;
    std::strncpy(task.comm, comm, sizeof(task.comm));
    return task;
}

pw_record_header header_of(std::uint16_t type, std::uint32_t size, std::uint64_t boot_ns) {
    pw_record_header header{};
    header.version = PW_ABI_VERSION;
    header.type = type;
    header.size = size;
    header.boot_ns = boot_ns;
    return header;
}

Bytes allocate(std::uint8_t how, std::uint8_t syscall, std::uint16_t port, std::int32_t error,
               const char *comm) {
    pw_allocate_record r{};
    r.hdr = header_of(error ? PW_RECORD_ALLOCATE_FAILED : PW_RECORD_ALLOCATE, sizeof(r),
                      5'000'000'000ull + port);
    r.sock = socket_of(IPPROTO_TCP, AF_INET, port, 1000u + port);
    r.task = task_of(comm);
    r.error = error;
    r.how = how;
    r.syscall = syscall;
    r.ephemeral = 1;
    Bytes out;
    append(out, r);
    return out;
}

Bytes release(std::uint16_t port, std::uint8_t reason) {
    pw_release_record r{};
    r.hdr = header_of(PW_RECORD_RELEASE, sizeof(r), 9'000'000'000ull);
    r.held.allocated_boot_ns = 5'000'000'000ull + port;
    r.held.sock = socket_of(IPPROTO_TCP, AF_INET, port, 1000u + port);
    r.held.owner = task_of("nginx");
    r.held.how = PW_HOW_CONNECT_AUTOBIND;
    r.reason = reason;
    Bytes out;
    append(out, r);
    return out;
}

Bytes diag_message(std::uint32_t seq, std::uint8_t family, std::uint16_t port, std::uint8_t state) {
    nlmsghdr header{};
    header.nlmsg_len = NLMSG_LENGTH(sizeof(inet_diag_msg));
    header.nlmsg_type = SOCK_DIAG_BY_FAMILY;
    header.nlmsg_seq = seq;
    inet_diag_msg message{};
    message.idiag_family = family;
    message.idiag_state = state;
    message.id.idiag_sport = htons(port);
    message.id.idiag_dport = htons(443);
    message.id.idiag_cookie[0] = port;
    message.idiag_inode = 5000u + port;
    message.idiag_expires = 30000;
    Bytes out;
    append(out, header);
    append(out, message);
    return out;
}

Bytes diag_done(std::uint32_t seq, int result) {
    nlmsghdr header{};
    header.nlmsg_len = NLMSG_LENGTH(sizeof(int));
    header.nlmsg_type = NLMSG_DONE;
    header.nlmsg_seq = seq;
    Bytes out;
    append(out, header);
    append(out, result);
    return out;
}

void write(const fs::path &dir, const std::string &name, const Bytes &bytes) {
    fs::create_directories(dir);
    std::ofstream(dir / name, std::ios::binary)
        .write(reinterpret_cast<const char *>(bytes.data()), std::streamsize(bytes.size()));
}

void decoder_seeds(const fs::path &dir) {
    write(dir, "allocate", allocate(PW_HOW_CONNECT_AUTOBIND, PW_SYSCALL_CONNECT, 40001, 0, "curl"));
    write(dir, "allocate_failed",
          allocate(PW_HOW_BIND_EPHEMERAL, PW_SYSCALL_BIND, 0, EADDRINUSE, "redis-server"));
    write(dir, "release", release(40001, PW_RELEASE_TIME_WAIT));
}

// Records as the output harness takes them, each with a cgroup path.
void output_seeds(const fs::path &dir) {
    Bytes storm;
    for (std::uint16_t port = 40000; port < 40010; ++port) {
        append_piece(storm, allocate(PW_HOW_CONNECT_AUTOBIND, PW_SYSCALL_CONNECT, port, 0, "curl"),
                     true);
        append_text(storm, "/system.slice/docker-" + std::string(64, 'a') + ".scope");
    }
    append_piece(
        storm,
        allocate(PW_HOW_CONNECT_AUTOBIND, PW_SYSCALL_CONNECT, 0, EADDRNOTAVAIL, "\x1b]0;pwned\x07"),
        true);
    append_text(storm, "/evil\xe2\x80\xae\xc2\x9b");
    append_piece(storm, release(40003, PW_RELEASE_SOCKET_CLOSED), true);
    append_text(storm, "/");
    write(dir, "storm", storm);
}

void sock_diag_seeds(const fs::path &dir) {
    Bytes datagram = diag_message(1, AF_INET, 40001, 1);  // ESTABLISHED
    Bytes second = diag_message(1, AF_INET6, 40002, 6);   // TIME_WAIT
    datagram.insert(datagram.end(), second.begin(), second.end());
    Bytes done = diag_done(1, 0);
    Bytes input{0};  // TCP
    append_piece(input, datagram, true);
    append_piece(input, done, true);
    write(dir, "two_sockets_then_done", input);
    Bytes failed{1};
    append_piece(failed, diag_done(1, -EINTR), true);
    write(dir, "dump_interrupted", failed);
}

void proc_text_seeds(const fs::path &dir) {
    Bytes input;
    append_text(input, "cgroup2 /sys/fs/cgroup cgroup2 rw,nosuid,nodev,noexec 0 0\n");
    append_text(input, "0::/kubepods/burstable/pod1234/" + std::string(64, 'b') + "\n");
    append_text(input, "/");
    append_text(input, "32768\t60999\n");
    append_text(input, "8080,9000-9010\n");
    append_text(input, "2\n");
    write(dir, "host", input);
}

}  // namespace

int main(int argc, char **argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: write_seeds CORPUS_DIR\n");
        return 2;
    }
    fs::path corpus = argv[1];
    decoder_seeds(corpus / "decoder");
    output_seeds(corpus / "output");
    sock_diag_seeds(corpus / "sock_diag");
    proc_text_seeds(corpus / "proc_text");
    return 0;
}
