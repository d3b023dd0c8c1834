// SPDX-License-Identifier: Apache-2.0
// The monitor's work per event, without the kernel: the JSON line (append_json_line) and
// the model (PortModel::apply), on the events a loopback connect() storm sends (one
// connect()-allocated port, then its release; four in five releases at TCP close, one in
// five to TIME_WAIT, as scripts/bench-cost.py's storm). Issue 15's target is the monitor's
// whole CPU per event, measured by bench-cost.py; this shows which stage a change moved.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <string>

#include "model/port_model.h"
#include "output/json_format.h"

namespace portwatch {
namespace {

constexpr std::uint32_t kNetns = 4026532174u;
constexpr std::uint64_t kNsPerConnection = 20'000;  // 50k connections a second
const TimeBase kTime{1'795'000'000'000'000'000};

IpAddress loopback() {
    IpAddress addr;
    addr.bytes[0] = 127;
    addr.bytes[3] = 1;
    return addr;
}

TaskInfo storm_task() {
    TaskInfo task;
    task.pid = task.tid = 8472;
    task.comm = "connect_storm";
    task.cgroup_path = "/system.slice/storm.service";
    task.cgroup_id = 4242;
    return task;
}

SocketInfo storm_socket(std::uint64_t n) {
    SocketInfo sock;
    sock.cookie = 1000 + n;
    sock.netns = kNetns;
    sock.local_addr = sock.remote_addr = loopback();
    sock.local_port = std::uint16_t(32768 + n % 28000);
    sock.remote_port = 41461;
    return sock;
}

// Connection n's events, written over the same two events (as the decoder refills its own).
struct StormEvents {
    AllocateEvent connect;
    ReleaseEvent close;  // as PortOwners hands it on: the owner joined by cookie

    StormEvents() {
        connect.task = close.owner = storm_task();
        connect.how = close.how = How::connect_autobind;
        connect.syscall = Syscall::connect;
        connect.ephemeral = true;
        close.held_ns = kNsPerConnection / 2;
    }
    void set(std::uint64_t n) {
        connect.boot_ns = 1'000'000'000 + n * kNsPerConnection;
        close.boot_ns = connect.boot_ns + kNsPerConnection / 2;
        connect.sock = close.sock = storm_socket(n);
        close.reason = n % 5 == 0 ? ReleaseReason::time_wait : ReleaseReason::tcp_closed;
    }
};

void BM_JsonLine(benchmark::State &state) {
    StormEvents storm;
    storm.set(7);
    const Event event = state.range(0) ? Event(storm.close) : Event(storm.connect);
    std::string line;
    for (auto _ : state) {
        line.clear();
        append_json_line(line, event, kTime);
        benchmark::DoNotOptimize(line.data());
    }
    state.SetLabel(state.range(0) ? "release" : "allocate");
}
BENCHMARK(BM_JsonLine)->Arg(0)->Arg(1);

// Per iteration: one connection's two events.
void BM_ModelConnectAndClose(benchmark::State &state) {
    PortModel model(ModelSettings{}, PortModel::fixed_range({32768, 60999}));
    StormEvents storm;
    std::uint64_t n = 0;
    for (auto _ : state) {
        storm.set(n++);
        benchmark::DoNotOptimize(model.apply(storm.connect));
        benchmark::DoNotOptimize(model.apply(storm.close));
    }
    state.counters["events"] = benchmark::Counter(2.0 * double(n), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_ModelConnectAndClose);

}  // namespace
}  // namespace portwatch

BENCHMARK_MAIN();
