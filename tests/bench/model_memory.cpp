// SPDX-License-Identifier: Apache-2.0
// The model's heap per tracked socket (issue 15's target: <= 200 B), with no kernel and no
// allocator slack: a socket table of N live connections, then one of N TIME_WAIT sockets, fed to
// a PortModel; glibc's count of bytes in use before and after. RSS, which adds what the
// allocator keeps, is scripts/bench-baseline.py's.
//
//   build/tests/model_memory [N]   (default 50000)
#include <malloc.h>

#include <cstdio>
#include <cstdlib>
#include <vector>

#include "model/port_model.h"

namespace {

using namespace portwatch;

std::size_t heap_in_use() {
    struct mallinfo2 info = mallinfo2();
    return info.uordblks + info.hblkhd;  // large tables come from mmap
}

KernelSocket table_socket(int i, std::uint8_t state) {
    KernelSocket socket;
    socket.sock.cookie = 1000 + i;
    socket.sock.netns = 7;
    socket.sock.local_addr.bytes = {10, 0, 0, 1};
    socket.sock.local_port = static_cast<std::uint16_t>(32768 + i % 28000);
    socket.sock.remote_addr.bytes = {10, 0, 1, static_cast<std::uint8_t>(i % 16)};
    socket.sock.remote_port = static_cast<std::uint16_t>(5000 + i % 16);
    socket.state = state;
    if (state == kTcpTimeWait) {
        socket.time_wait_left_ms = 50'000;
        return socket;
    }
    socket.inode = 100000 + i;
    auto owner = std::make_shared<TaskInfo>();
    owner->pid = 100 + i % 6;
    owner->comm = "client";
    owner->cgroup_path = "/system.slice/client.service";
    socket.owner = owner;
    return socket;
}

double bytes_per_socket(int count, std::uint8_t state) {
    PortModel model(ModelSettings{}, PortModel::fixed_range({32768, 60999}));
    std::vector<KernelSocket> table;
    for (int i = 0; i < count; i++) table.push_back(table_socket(i, state));
    std::size_t before = heap_in_use();
    model.reconcile(7, table, 1'000'000'000);
    return double(heap_in_use() - before) / count;
}

}  // namespace

int main(int argc, char **argv) {
    int count = argc > 1 ? std::atoi(argv[1]) : 50000;
    if (count <= 0) {
        std::fprintf(stderr, "usage: model_memory [N > 0]\n");
        return 2;
    }
    std::printf("model heap per live socket:      %6.0f B (%d from one table)\n",
                bytes_per_socket(count, kTcpEstablished), count);
    std::printf("model heap per TIME_WAIT socket: %6.0f B (%d from one table)\n",
                bytes_per_socket(count, kTcpTimeWait), count);
}
