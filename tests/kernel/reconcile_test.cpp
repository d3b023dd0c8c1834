// SPDX-License-Identifier: Apache-2.0
// The monitor's passes over the socket tables, with the real programs: the baseline on a busy
// host, while the programs already report (the ring buffer must be read during it, as on later
// passes).
#include <bpf/bpf.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>

#include "kernel_support.h"
#include "portwatch_abi.h"

namespace portwatch::test {
namespace {

using Json = nlohmann::json;

std::size_t bpf_link_count() {
    std::size_t count = 0;
    for (std::uint32_t id = 0; bpf_link_get_next_id(id, &id) == 0;) count++;
    return count;
}

// Waits until `count` links have been attached, at most 30 s.
bool links_attached(std::size_t count) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (std::chrono::steady_clock::now() < deadline) {
        if (bpf_link_count() >= count) return true;
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    return false;
}

// Loopback connections, kPerSecond of them, each closed at once with a reset (SO_LINGER 0:
// no TIME_WAIT, so the ports never run out), from `go` until `stop`. Paced: as fast as one
// thread can (~50,000 a second here) would also test how well two cores share themselves.
constexpr int kPerSecond = 20'000;

class ConnectStorm {
  public:
    explicit ConnectStorm(const Netns &netns)
        : thread_([this, &netns] { netns.run([this] { run(); }); }) {
        while (!listening_) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    ~ConnectStorm() { stop(); }

    void start() { go_ = true; }
    void stop() {
        go_ = stop_ = true;
        if (thread_.joinable()) thread_.join();
    }
    int connects() const { return connects_; }

  private:
    void run() {
        int listener = listener_on(Family::ipv4, 0);  // made before the monitor: in its baseline
        std::uint16_t port = local_port_of(listener);
        listening_ = true;
        while (!go_) std::this_thread::sleep_for(std::chrono::milliseconds(1));
        linger reset{1, 0};
        auto started = std::chrono::steady_clock::now();
        while (!stop_) {
            if (connects_ % 100 == 0) wait_for_the_pace(started);
            int client = make_socket(Family::ipv4, Proto::tcp);
            ASSERT_EQ(connect_to(client, Family::ipv4, port), 0) << std::strerror(errno);
            connects_++;
            int accepted = accept(listener, nullptr, nullptr);
            ASSERT_GE(accepted, 0);
            setsockopt(client, SOL_SOCKET, SO_LINGER, &reset, sizeof(reset));
            close(client);
            close(accepted);
        }
        close(listener);
    }

    void wait_for_the_pace(std::chrono::steady_clock::time_point started) const {
        std::this_thread::sleep_until(
            started + std::chrono::microseconds(1'000'000LL * connects_.load() / kPerSecond));
    }

    std::atomic<bool> listening_ = false, go_ = false, stop_ = false;
    std::atomic<int> connects_ = 0;
    std::thread thread_;
};

// What one connection of the storm takes in the ring buffer: its allocation and its release,
// each behind the ring buffer's 8-byte header and rounded up to 8 bytes (ringbuf.c).
constexpr std::uint64_t ring_bytes(std::size_t record) {
    return 8 + (record + 7) / 8 * 8;
}
constexpr std::uint64_t kRingBytesPerConnection =
    ring_bytes(sizeof(pw_allocate_record)) + ring_bytes(sizeof(pw_release_record));
constexpr std::uint64_t kRingBytes = 1 << 20;  // --ringbuf-mb 1

class ReconcileTest : public KernelTest {};

// 80,000 live sockets make a baseline of ~700 ms on this VM; a connect storm meanwhile fills
// a 1 MiB ring buffer (~3,800 connections' records) in ~200 ms. Before the baseline drained the
// ring buffer, the records past it were lost. Under TCG (scripts/vmtest.py) the baseline took
// ~15 s and the storm ~450 connections a second, 1.8 times what the ring buffer holds: the
// test checks that it overflowed, or a monitor that never read during the baseline would pass.
TEST_F(ReconcileTest, AConnectStormDuringABusyHostsBaselineLosesNothing) {
    std::size_t monitors_links = capture->hooks().size();  // one link a hook
    capture.reset();  // this process's own programs would halve the storm
    Monitor farm({"--sockets", "80000", "--new-netns"}, nullptr, SOCKET_FARM_BINARY);
    std::string farm_line = farm.next_line(std::chrono::seconds(120));  // ~30 s under TCG
    ASSERT_FALSE(farm_line.empty()) << farm.all_stderr();
    ASSERT_EQ(Json::parse(farm_line)["sockets"], 80000);

    Netns netns;
    ConnectStorm storm(netns);
    std::size_t links_before = bpf_link_count();
    Monitor monitor({"monitor", "--json", "--ringbuf-mb", "1", "--events", "none",
                     "--stats-interval", "0", "--report-interval", "0", "--report-top", "0"});
    ASSERT_TRUE(links_attached(links_before + monitors_links));
    storm.start();  // every connection from now on is seen by the monitor's programs
    std::string ready = monitor.next_line(std::chrono::seconds(120));  // ~15 s under TCG
    ASSERT_FALSE(ready.empty()) << monitor.all_stderr();
    ASSERT_EQ(Json::parse(ready)["type"], "ready");
    int before_ready = storm.connects();  // the baseline is over at `ready`
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    storm.stop();
    monitor.signal(SIGINT);

    Json report, stats;
    for (std::string line = monitor.next_line(); !line.empty(); line = monitor.next_line()) {
        Json object = Json::parse(line);
        if (object["type"] == "report") report = object;
        if (object["type"] == "stats") stats = object;
    }
    EXPECT_EQ(monitor.wait_exit_code(), 0);
    farm.signal(SIGTERM);
    EXPECT_EQ(farm.wait_exit_code(), 0);
    ASSERT_FALSE(stats.is_null());
    EXPECT_EQ(stats["lost_total"], 0) << stats.dump();
    ASSERT_FALSE(report.is_null());
    Json allocations;
    for (const Json &process : report["processes"])
        if (process["pid"] == getpid()) allocations = process["allocations"];
    EXPECT_EQ(allocations, storm.connects()) << "every connect of the storm seen";
    // Without it the test proves nothing: a monitor that read nothing during the baseline
    // must have lost at least what did not fit.
    EXPECT_GE(std::uint64_t(before_ready) * kRingBytesPerConnection, kRingBytes * 5 / 4)
        << before_ready << " connects before `ready`, baseline "
        << stats["reconciliation"]["baseline_ms"] << " ms: too few to overflow the ring buffer";
}

}  // namespace
}  // namespace portwatch::test
