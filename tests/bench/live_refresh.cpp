// SPDX-License-Identifier: Apache-2.0
// What the once-a-second refresh of the live views costs on a busy host: PortModel::current()
// plus render_prometheus() (the metrics endpoint) or render_top() (portwatch top), for a model
// holding `sockets` connect()-allocated ports spread over `destinations` destination scopes
// and 200 processes, built from synthetic events. Run as in docs/performance.md.
#include <benchmark/benchmark.h>

#include <cstdint>

#include "output/metrics.h"
#include "model/port_model.h"
#include "output/top_screen.h"

namespace portwatch {
namespace {

constexpr std::uint32_t kNetns = 4026531840u;
constexpr std::uint32_t kProcesses = 200;

IpAddress ipv4(std::uint32_t host_order) {
    IpAddress addr;
    for (int i = 0; i < 4; ++i) addr.bytes[i] = std::uint8_t(host_order >> (24 - 8 * i));
    return addr;
}

AllocateEvent connect_event(std::uint64_t cookie, std::uint32_t destination, std::uint16_t port) {
    AllocateEvent event;
    event.boot_ns = 1'000'000'000 + cookie * 1000;
    event.sock.cookie = cookie;
    event.sock.netns = kNetns;
    event.sock.local_addr = ipv4(0x0a000001);
    event.sock.local_port = port;
    event.sock.remote_addr = ipv4(0xc0a80000 + destination);
    event.sock.remote_port = 443;
    event.task.pid = 1000 + std::uint32_t(cookie % kProcesses);
    event.task.comm = "worker";
    event.task.cgroup_path = "/system.slice/worker.service";
    event.how = How::connect_autobind;
    event.syscall = Syscall::connect;
    event.ephemeral = true;
    return event;
}

// `sockets` ports: each destination scope gets sockets / destinations of them.
PortModel busy_model(std::int64_t sockets, std::int64_t destinations) {
    PortModel model(ModelSettings{}, PortModel::fixed_range({10000, 60999}));
    for (std::int64_t i = 0; i < sockets; ++i)
        model.apply(connect_event(std::uint64_t(i) + 1, std::uint32_t(i % destinations),
                                  std::uint16_t(10000 + (i / destinations) % 50000)));
    return model;
}

const std::uint64_t kNowNs = 3'600'000'000'000;

void BM_MetricsRefresh(benchmark::State &state) {
    PortModel model = busy_model(state.range(0), state.range(1));
    EventCounters counters;
    StatsSnapshot stats;
    std::size_t bytes = 0;
    for (auto _ : state) {
        Report current = model.current(kNowNs);
        MetricsInput input{"0.1.0", "6.18", &current, &stats, &counters, 10, "tracepoint"};
        std::string text = render_prometheus(input);
        bytes = text.size();
        benchmark::DoNotOptimize(text.data());
    }
    state.counters["exposition_bytes"] = double(bytes);
}

void BM_TopRefresh(benchmark::State &state) {
    PortModel model = busy_model(state.range(0), state.range(1));
    StatsSnapshot stats;
    RecentFailures failures;
    for (auto _ : state) {
        Report current = model.current(kNowNs);
        TopInput input{&current, &stats, &failures, TimeBase{}, 0};
        auto lines = render_top(input, 50, 200);
        benchmark::DoNotOptimize(lines.data());
    }
}

// {sockets, destinations}: a quiet host, a busy proxy, a proxy with many upstreams.
void Sizes(benchmark::internal::Benchmark *bench) {
    bench->Args({1'000, 10})->Args({100'000, 100})->Args({100'000, 10'000});
    bench->Unit(benchmark::kMillisecond);
}

BENCHMARK(BM_MetricsRefresh)->Apply(Sizes);
BENCHMARK(BM_TopRefresh)->Apply(Sizes);

}  // namespace
}  // namespace portwatch

BENCHMARK_MAIN();
