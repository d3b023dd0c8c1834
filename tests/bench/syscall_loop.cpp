// SPDX-License-Identifier: Apache-2.0
// syscall_loop: a syscall that allocates no port (getppid()), in a loop, for the VM
// benchmark (scripts/bench-vm.py): its rate with a hook set attached, over its rate with
// nothing attached, is what that set costs unrelated work. Prints one JSON line:
//   {"calls":N,"seconds":T,"rate":R}
//
// Usage: syscall_loop --seconds S   (0 < S <= 3600)
#include <sys/syscall.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>

int main(int argc, char **argv) {
    double seconds = 0;
    if (argc == 3 && std::strcmp(argv[1], "--seconds") == 0) seconds = std::atof(argv[2]);
    if (!(seconds > 0 && seconds <= 3600)) {
        std::fprintf(stderr, "usage: syscall_loop --seconds S (0 < S <= 3600)\n");
        return 2;
    }
    using Clock = std::chrono::steady_clock;
    auto start = Clock::now();
    auto deadline = start + std::chrono::duration<double>(seconds);
    unsigned long long calls = 0;
    while (Clock::now() < deadline) {
        for (int i = 0; i < 1000; i++) syscall(SYS_getppid);  // not glibc's cached getppid()
        calls += 1000;
    }
    double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
    std::printf("{\"calls\":%llu,\"seconds\":%.3f,\"rate\":%.1f}\n", calls, elapsed,
                calls / elapsed);
    return 0;
}
