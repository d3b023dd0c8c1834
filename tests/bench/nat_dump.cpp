// SPDX-License-Identifier: Apache-2.0
// What one pass's read of a network namespace's conntrack table costs: dump_nat_mappings() (the
// monitor's ctnetlink dump, as every report pass runs it) on the namespace at NETNS_PATH, DUMPS
// times; prints one JSON line with the mappings found, the time of each dump and per mapping,
// and this process's peak RSS (VmHWM). Root; not run by ctest (scripts/bench-nat.py runs it).
//
//   build/tests/nat_dump NETNS_PATH [DUMPS]   (e.g. /run/netns/NAME; DUMPS default 5)
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "system/conntrack_table.h"

namespace {

// VmHWM, not getrusage()'s ru_maxrss: exec keeps the maximum of the image it replaced (the
// script that started this one).
long peak_rss_kib() {
    std::ifstream status("/proc/self/status");
    for (std::string line; std::getline(status, line);)
        if (line.rfind("VmHWM:", 0) == 0) return std::atol(line.c_str() + 6);
    return -1;
}

std::string milliseconds_list(const std::vector<double> &values) {
    std::string text;
    for (double value : values) {
        char one[32];
        std::snprintf(one, sizeof one, "%s%.2f", text.empty() ? "" : ",", value);
        text += one;
    }
    return "[" + text + "]";
}

}  // namespace

int main(int argc, char **argv) {
    if (argc < 2 || argc > 3) {
        std::fprintf(stderr, "usage: nat_dump NETNS_PATH [DUMPS]\n");
        return 2;
    }
    int dumps = argc > 2 ? std::atoi(argv[2]) : 5;
    if (dumps <= 0) {
        std::fprintf(stderr, "nat_dump: DUMPS must be a positive number\n");
        return 2;
    }
    int fd = open(argv[1], O_RDONLY | O_CLOEXEC);
    struct stat netns {};
    if (fd < 0 || fstat(fd, &netns) != 0) {
        std::perror(argv[1]);
        return 2;
    }
    std::vector<double> took_ms;
    std::size_t mappings = 0;
    long rss_before = peak_rss_kib();
    for (int i = 0; i < dumps; i++) {
        auto start = std::chrono::steady_clock::now();
        portwatch::Result<std::vector<portwatch::NatMapping>> table =
            portwatch::dump_nat_mappings(fd, std::uint32_t(netns.st_ino));
        std::chrono::duration<double, std::milli> took = std::chrono::steady_clock::now() - start;
        if (!table) {
            std::fprintf(stderr, "nat_dump: %s\n", table.error().c_str());
            return 1;
        }
        mappings = table->size();
        took_ms.push_back(took.count());
    }
    close(fd);
    std::vector<double> sorted = took_ms;
    std::sort(sorted.begin(), sorted.end());
    double median = sorted[sorted.size() / 2];
    std::printf(
        "{\"mappings\":%zu,\"dumps_ms\":%s,\"median_ms\":%.2f,\"min_ms\":%.2f,"
        "\"us_per_mapping\":%.3f,\"peak_rss_kib_before\":%ld,\"peak_rss_kib\":%ld}\n",
        mappings, milliseconds_list(took_ms).c_str(), median, sorted.front(),
        mappings ? 1000 * median / double(mappings) : 0.0, rss_before, peak_rss_kib());
    return 0;
}
