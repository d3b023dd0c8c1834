// SPDX-License-Identifier: Apache-2.0
// What reading a big node's NAT ruleset costs: a kube-proxy (iptables-nft mode) ruleset of N
// services (8 nat rules each, as kube-proxy writes them for a service with two endpoints) is
// loaded into a throwaway network namespace, then read_nat_ruleset() reads it; prints the
// tools' output sizes and the time to parse them, the time of each read, and this process's peak
// RSS. Root; not run by ctest.
//
//   build/tests/nat_ruleset_read [SERVICES] [READS]   (defaults 5000, 3)
#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "system/nat_ruleset.h"

namespace {

using namespace portwatch;

std::string kube_proxy_rules(int services) {
    std::string chains, rules;
    char line[512];
    for (int i = 0; i < services; i++) {
        char svc[32], sep_a[32], sep_b[32], ip[32];
        std::snprintf(svc, sizeof svc, "KUBE-SVC-%012X", i);
        std::snprintf(sep_a, sizeof sep_a, "KUBE-SEP-A%011X", i);
        std::snprintf(sep_b, sizeof sep_b, "KUBE-SEP-B%011X", i);
        std::snprintf(ip, sizeof ip, "10.96.%d.%d", i / 250, i % 250 + 1);
        chains +=
            std::string(":") + svc + " - [0:0]\n:" + sep_a + " - [0:0]\n:" + sep_b + " - [0:0]\n";
        std::snprintf(line, sizeof line,
                      "-A KUBE-SERVICES -d %s/32 -p tcp -m comment --comment \"ns%d/svc:http "
                      "cluster IP\" -m tcp --dport 80 -j %s\n"
                      "-A %s ! -s 10.244.0.0/16 -d %s/32 -p tcp -m tcp --dport 80 -j "
                      "KUBE-MARK-MASQ\n",
                      ip, i, svc, svc, ip);
        rules += line;
        std::snprintf(line, sizeof line,
                      "-A %s -m statistic --mode random --probability 0.50000000000 -j %s\n"
                      "-A %s -j %s\n",
                      svc, sep_a, svc, sep_b);
        rules += line;
        for (const char *sep : {sep_a, sep_b}) {
            const char *pod = sep == sep_a ? "10.244.1.5" : "10.244.2.5";
            std::snprintf(line, sizeof line,
                          "-A %s -s %s/32 -j KUBE-MARK-MASQ\n"
                          "-A %s -p tcp -m tcp -j DNAT --to-destination %s:8080\n",
                          sep, pod, sep, pod);
            rules += line;
        }
    }
    return "*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n"
           ":POSTROUTING ACCEPT [0:0]\n:KUBE-MARK-MASQ - [0:0]\n:KUBE-POSTROUTING - [0:0]\n"
           ":KUBE-SERVICES - [0:0]\n" +
           chains + rules +
           "-A POSTROUTING -j KUBE-POSTROUTING\n"
           "-A KUBE-MARK-MASQ -j MARK --set-xmark 0x4000/0x4000\n"
           "-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN\n"
           "-A KUBE-POSTROUTING -j MARK --set-xmark 0x4000/0x0\n"
           "-A KUBE-POSTROUTING -j MASQUERADE --random-fully\nCOMMIT\n";
}

bool shell(const std::string &command) {
    return std::system(command.c_str()) == 0;
}

std::string output_of(const std::string &command) {
    std::string output;
    FILE *pipe = popen(command.c_str(), "r");
    char chunk[65536];
    for (std::size_t got; pipe && (got = std::fread(chunk, 1, sizeof chunk, pipe)) > 0;)
        output.append(chunk, got);
    if (pipe) pclose(pipe);
    return output;
}

template <typename Parse>
void time_parse(const char *what, const std::string &text, Parse parse) {
    auto start = std::chrono::steady_clock::now();
    Result<std::vector<NatRule>> rules = parse(text);
    auto took = std::chrono::duration_cast<std::chrono::milliseconds>(
        std::chrono::steady_clock::now() - start);
    std::printf(
        "%s: %zu bytes, parsed in %lld ms (%s)\n", what, text.size(),
        static_cast<long long>(took.count()),
        rules ? (std::to_string(rules->size()) + " NAT rules").c_str() : rules.error().c_str());
}

long peak_rss_kib() {
    rusage usage{};
    getrusage(RUSAGE_SELF, &usage);
    return usage.ru_maxrss;
}

}  // namespace

int main(int argc, char **argv) {
    int services = argc > 1 ? std::atoi(argv[1]) : 5000;
    int reads = argc > 2 ? std::atoi(argv[2]) : 3;
    std::string netns = "portwatch-nat-bench-" + std::to_string(getpid());
    std::string in_netns = "ip netns exec " + netns + " ";
    if (!shell("ip netns add " + netns)) return 1;
    FILE *restore = popen((in_netns + "iptables-nft-restore").c_str(), "w");
    std::string rules = kube_proxy_rules(services);
    bool loaded = restore && std::fwrite(rules.data(), 1, rules.size(), restore) == rules.size();
    loaded = restore && pclose(restore) == 0 && loaded;
    int fd = open(("/run/netns/" + netns).c_str(), O_RDONLY | O_CLOEXEC);
    if (loaded && fd >= 0) {
        std::printf("%d services, %d nat rules\n", services, services * 8 + 5);
        std::printf("peak RSS before reading: %ld KiB\n", peak_rss_kib());
        for (int i = 0; i < reads; i++) {
            auto start = std::chrono::steady_clock::now();
            Result<NatRuleset> ruleset = read_nat_ruleset(fd, std::chrono::seconds(60));
            auto took = std::chrono::duration_cast<std::chrono::milliseconds>(
                std::chrono::steady_clock::now() - start);
            if (!ruleset) {
                std::printf("read failed: %s\n", ruleset.error().c_str());
                break;
            }
            std::printf("read %d: %lld ms, %zu NAT rules, peak RSS %ld KiB\n", i + 1,
                        static_cast<long long>(took.count()), ruleset->rules.size(),
                        peak_rss_kib());
            if (i == 0)
                for (const NatSource &source : ruleset->sources)
                    std::printf("  %s\n", describe(source).c_str());
        }
        std::fflush(stdout);
        time_parse("nft -j list ruleset", output_of(in_netns + "nft -j list ruleset"),
                   [](const std::string &text) { return nat_rules_from_nft_json(text); });
        time_parse("iptables-nft-save -t nat", output_of(in_netns + "iptables-nft-save -t nat"),
                   [](const std::string &text) {
                       return nat_rules_from_iptables_save(text, Family::ipv4);
                   });
    } else {
        std::fprintf(stderr, "nat_ruleset_read: cannot load the ruleset into %s\n", netns.c_str());
    }
    if (fd >= 0) close(fd);
    shell("ip netns del " + netns);
    return loaded && fd >= 0 ? 0 : 1;
}
