// SPDX-License-Identifier: Apache-2.0
// `portwatch monitor --metrics-listen` end to end: the exposition counts exactly the
// sockets a test made in its own netns, passes `promtool check metrics`, and a real
// Prometheus server scraping the agent gets the series.
#include <bpf/bpf.h>
#include <httplib.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "events/containers.h"
#include "kernel_support.h"

namespace portwatch::test {
namespace {

using Json = nlohmann::json;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

const Sysctls kNarrowRange{{"net/ipv4/ip_local_port_range", "40000 40009"}};
constexpr const char *kPromtool = "/usr/bin/promtool";
constexpr const char *kPrometheus = "/usr/bin/prometheus";

// The value of the sample line that starts with `series` ("name{labels}"), if present.
std::optional<double> sample(const std::string &exposition, const std::string &series) {
    std::istringstream lines(exposition);
    for (std::string line; std::getline(lines, line);)
        if (line.rfind(series + " ", 0) == 0) return std::stod(line.substr(series.size() + 1));
    return std::nullopt;
}

struct HttpReply {
    int status = 0;
    std::string body;
};

HttpReply http_get(const std::string &host, int port, const std::string &path) {
    httplib::Client client(host, port);
    client.set_connection_timeout(2);
    auto result = client.Get(path.c_str());
    if (!result) return {};
    return {result->status, result->body};
}

// Polls until `ready` holds for the reply or `timeout` passes; returns the last reply.
template <typename Ready>
HttpReply poll_get(const std::string &host, int port, const std::string &path, Ready ready,
                   std::chrono::seconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    HttpReply reply;
    while (std::chrono::steady_clock::now() < deadline) {
        reply = http_get(host, port, path);
        if (ready(reply)) break;
        std::this_thread::sleep_for(250ms);
    }
    return reply;
}

int run_promtool_on(const std::string &exposition, std::string &output) {
    fs::path file = fs::temp_directory_path() / ("portwatch-metrics-" + std::to_string(getpid()));
    std::ofstream(file) << exposition;
    std::string command = std::string(kPromtool) + " check metrics < " + file.string() + " 2>&1";
    FILE *pipe = popen(command.c_str(), "r");
    char buffer[4096];
    while (pipe && std::fgets(buffer, sizeof(buffer), pipe)) output += buffer;
    int status = pipe ? pclose(pipe) : -1;
    fs::remove(file);
    return status;
}

// TCP bind(0) twice and UDP bind(0) once, held open; then a bind() to the first TCP
// port again, which fails with EADDRINUSE. Returns the fds and the ports getsockname() gave.
struct Allocated {
    std::vector<int> fds;
    std::vector<std::uint16_t> tcp_ports;
    std::uint16_t udp_port = 0;
};

Allocated allocate_and_fail_once(const Netns &netns) {
    Allocated allocated;
    netns.run([&] {
        for (int i = 0; i < 2; ++i) {
            int fd = make_socket(Family::ipv4, Proto::tcp);
            EXPECT_EQ(bind_to(fd, Family::ipv4, 0), 0);
            allocated.fds.push_back(fd);
            allocated.tcp_ports.push_back(local_port_of(fd));
        }
        int udp = make_socket(Family::ipv4, Proto::udp);
        EXPECT_EQ(bind_to(udp, Family::ipv4, 0), 0);
        allocated.fds.push_back(udp);
        allocated.udp_port = local_port_of(udp);
        int clash = make_socket(Family::ipv4, Proto::tcp);
        EXPECT_EQ(bind_to(clash, Family::ipv4, allocated.tcp_ports[0]), -1);
        EXPECT_EQ(errno, EADDRINUSE);
        close(clash);
    });
    return allocated;
}

std::vector<std::string> metrics_monitor_args(std::uint32_t netns, const std::string &listen,
                                              const std::vector<std::string> &more) {
    std::vector<std::string> args = {
        "monitor",          "--json", "--netns",           std::to_string(netns),
        "--metrics-listen", listen,   "--report-interval", "0"};
    args.insert(args.end(), more.begin(), more.end());
    return args;
}

// The monitor, filtered to one netns, serving metrics on a free loopback port; `more`: its
// other flags.
struct MetricsMonitor {
    explicit MetricsMonitor(std::uint32_t netns, const Netns *in = nullptr,
                            const std::string &listen = "0",
                            const std::vector<std::string> &more = {"--stats-interval", "0"})
        : monitor(metrics_monitor_args(netns, listen, more), in) {
        std::string line = monitor.next_line();
        EXPECT_FALSE(line.empty()) << monitor.all_stderr();
        if (line.empty()) return;
        Json ready = Json::parse(line);
        EXPECT_EQ(ready["type"], "ready");
        std::string address = ready["metrics"];
        port = std::stoi(address.substr(address.rfind(':') + 1));
        pid = ready["pid"];
        // The first publication comes before `ready`: a probe right after it is answered.
        auto first_publication = [&] {
            HttpReply health = poll_get(
                "127.0.0.1", port, "/healthz", [](const HttpReply &) { return true; }, 5s);
            EXPECT_EQ(health.status, 200) << health.body;
        };
        in ? in->run(first_publication) : first_publication();
    }

    Monitor monitor;
    int port = 0;
    pid_t pid = 0;
};

// The status of one GET on a new connection, or 0 when no whole reply came within `limit`.
int status_within(int port, const std::string &path, std::chrono::milliseconds limit) {
    httplib::Client client("127.0.0.1", port);
    client.set_connection_timeout(limit);
    client.set_read_timeout(limit);
    auto started = std::chrono::steady_clock::now();
    auto result = client.Get(path.c_str());
    if (!result || std::chrono::steady_clock::now() - started > limit) return 0;
    return result->status;
}

int connect_to_port(int port) {
    int fd = make_socket(Family::ipv4, Proto::tcp);
    EXPECT_EQ(connect_to(fd, Family::ipv4, static_cast<std::uint16_t>(port)), 0);
    return fd;
}

long rss_kb_of(pid_t pid) {
    std::ifstream status("/proc/" + std::to_string(pid) + "/status");
    for (std::string line; std::getline(status, line);)
        if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
    return -1;
}

// Sends `request` and then up to `body_bytes` of zeros, as fast as the server takes them,
// and returns the status line of the reply (the server may close before the body is sent).
std::string reply_to_request_with_body(int port, const std::string &request,
                                       std::size_t body_bytes) {
    int fd = connect_to_port(port);
    send(fd, request.data(), request.size(), MSG_NOSIGNAL);
    std::vector<char> zeros(1 << 20);
    for (std::size_t sent = 0; sent < body_bytes;) {
        ssize_t n = send(fd, zeros.data(), std::min(zeros.size(), body_bytes - sent), MSG_NOSIGNAL);
        if (n <= 0) break;
        sent += std::size_t(n);
    }
    shutdown(fd, SHUT_WR);
    timeval limit{5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof(limit));
    std::string reply;
    char buffer[4096];
    for (ssize_t n; (n = recv(fd, buffer, sizeof(buffer), 0)) > 0;) reply.append(buffer, n);
    close(fd);
    return reply.substr(0, reply.find("\r\n"));
}

using MetricsTest = KernelTest;

TEST_F(MetricsTest, ExpositionCountsTheNetnsSocketsAndPassesPromtool) {
    capture.reset();
    Netns netns(kNarrowRange);
    MetricsMonitor agent(netns.inode());
    ASSERT_GT(agent.port, 0);
    Allocated allocated = allocate_and_fail_once(netns);

    const std::string failures =
        "portwatch_allocation_failures_total{how=\"bind\",proto=\"tcp\",errno=\"EADDRINUSE\"}";
    HttpReply reply = poll_get(
        "127.0.0.1", agent.port, "/metrics",
        [&](const HttpReply &r) { return sample(r.body, failures).has_value(); }, 10s);
    ASSERT_EQ(reply.status, 200);
    const std::string &text = reply.body;
    EXPECT_EQ(sample(text, failures), 1);
    EXPECT_EQ(sample(text,
                     "portwatch_allocations_total{how=\"bind_ephemeral\",proto=\"tcp\","
                     "family=\"ipv4\"}"),
              2);
    EXPECT_EQ(sample(text,
                     "portwatch_allocations_total{how=\"bind_ephemeral\",proto=\"udp\","
                     "family=\"ipv4\"}"),
              1);
    std::string ns = std::to_string(netns.inode());
    EXPECT_EQ(sample(text, "portwatch_scope_ports_in_use{netns=\"" + ns +
                               "\",scope=\"bind\",proto=\"tcp\"}"),
              2);
    EXPECT_EQ(sample(text, "portwatch_scope_ports_in_use{netns=\"" + ns +
                               "\",scope=\"udp\",proto=\"udp\"}"),
              1);
    EXPECT_EQ(sample(text, "portwatch_scope_ports_capacity{netns=\"" + ns +
                               "\",scope=\"udp\",proto=\"udp\"}"),
              10);
    std::ifstream self_cgroup("/proc/self/cgroup");
    std::string cgroup =
        cgroup2_path_in(std::string(std::istreambuf_iterator<char>(self_cgroup), {})).value_or("");
    EXPECT_EQ(sample(text, "portwatch_process_ports_held{pid=\"" + std::to_string(getpid()) +
                               "\",comm=\"kernel_tests\",netns=\"" + ns + "\",cgroup=\"" + cgroup +
                               "\",container_id=\"\",container_runtime=\"\"}"),
              3)
        << text;
    EXPECT_EQ(sample(text, "portwatch_events_lost_total{type=\"allocate\"}"), 0);

    std::string promtool_output;
    EXPECT_EQ(run_promtool_on(text, promtool_output), 0) << promtool_output << text;

    HttpReply health = http_get("127.0.0.1", agent.port, "/healthz");
    EXPECT_EQ(health.status, 200);
    EXPECT_EQ(health.body, "ok\n");
    EXPECT_EQ(http_get("127.0.0.1", agent.port, "/nothing").status, 404);

    for (int fd : allocated.fds) close(fd);
    agent.monitor.signal(SIGTERM);
    EXPECT_EQ(agent.monitor.wait_exit_code(), 0);
}

// Any local process can connect: 500 that say nothing and 50 that send a byte a second of a
// request they never finish must neither starve the probe and the scrape nor stop tracing.
TEST_F(MetricsTest, IdleAndSlowClientsNeitherStarveTheProbesNorStopTheTracing) {
    capture.reset();
    Netns netns;
    MetricsMonitor agent(netns.inode());
    ASSERT_GT(agent.port, 0);
    std::vector<int> flood;
    for (int i = 0; i < 500; ++i) flood.push_back(connect_to_port(agent.port));
    std::vector<int> slow;
    for (int i = 0; i < 50; ++i) {
        slow.push_back(connect_to_port(agent.port));
        send(slow.back(), "GET /metrics HTTP/1.1\r\n", 24, MSG_NOSIGNAL);
    }
    std::set<std::uint16_t> allocated;
    std::vector<int> held;
    // Longer than the server's 10 s timeout, which each byte of the slow clients restarts.
    for (int second = 0; second < 13; ++second) {
        for (int fd : slow) send(fd, "X", 1, MSG_NOSIGNAL);
        EXPECT_EQ(status_within(agent.port, "/healthz", 1000ms), 200) << "second " << second;
        EXPECT_EQ(status_within(agent.port, "/metrics", 2000ms), 200) << "second " << second;
        netns.run([&] {
            held.push_back(make_socket(Family::ipv4, Proto::tcp));
            EXPECT_EQ(bind_to(held.back(), Family::ipv4, 0), 0);
            allocated.insert(local_port_of(held.back()));
        });
        std::this_thread::sleep_for(1s);
    }
    std::set<std::uint16_t> reported;
    for (std::string line;
         reported.size() < allocated.size() && !(line = agent.monitor.next_line()).empty();) {
        Json event = Json::parse(line);
        if (event["type"] == "allocate") reported.insert(event["local_port"].get<std::uint16_t>());
    }
    EXPECT_EQ(reported, allocated);
    for (int fd : flood) close(fd);
    for (int fd : slow) close(fd);
    for (int fd : held) close(fd);
    agent.monitor.signal(SIGTERM);
    EXPECT_EQ(agent.monitor.wait_exit_code(), 0);
}

// The endpoints take no body: one is refused from its headers, before a byte of it is read.
TEST_F(MetricsTest, RequestBodiesAreRefusedUnread) {
    capture.reset();
    Netns netns;
    MetricsMonitor agent(netns.inode());
    ASSERT_GT(agent.port, 0);
    long rss_before = rss_kb_of(agent.pid);
    constexpr std::size_t k256MB = 256u << 20;
    EXPECT_EQ(reply_to_request_with_body(
                  agent.port,
                  "POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 268435456\r\n\r\n", k256MB),
              "HTTP/1.1 405 Method Not Allowed");
    EXPECT_EQ(reply_to_request_with_body(
                  agent.port,
                  "GET /metrics HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n", k256MB),
              "HTTP/1.1 413 Content Too Large");
    EXPECT_EQ(reply_to_request_with_body(
                  agent.port, "GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n", 5),
              "HTTP/1.1 413 Content Too Large");
    EXPECT_LT(rss_kb_of(agent.pid) - rss_before, 5 * 1024);
    EXPECT_EQ(status_within(agent.port, "/healthz", 1000ms), 200);
    agent.monitor.signal(SIGTERM);
    EXPECT_EQ(agent.monitor.wait_exit_code(), 0);
}

// Standard output a pipe nobody reads: the loop waits on its write, the programs go on, the
// events that do not fit the ring buffer are counted as lost, /healthz says why meanwhile,
// and the stats line says how many once the pipe is read again.
TEST_F(MetricsTest, AnOutputNobodyReadsLosesEventsCountedAndTheProbeSaysWhy) {
    capture.reset();
    Netns netns;
    MetricsMonitor agent(netns.inode(), nullptr, "0",
                         {"--stats-interval", "1", "--ringbuf-mb", "1"});
    ASSERT_GT(agent.port, 0);
    constexpr int kSockets = 40000;  // 80,000 events: far more than the pipe and 1 MiB hold
    auto started = std::chrono::steady_clock::now();
    netns.run([&] {
        for (int i = 0; i < kSockets; ++i) {
            int fd = make_socket(Family::ipv4, Proto::udp);
            ASSERT_EQ(bind_to(fd, Family::ipv4, 0), 0);
            close(fd);
        }
    });
    auto storm = std::chrono::steady_clock::now() - started;
    EXPECT_LT(storm, 30s) << "the programs must not wait for the output";
    HttpReply health = poll_get(
        "127.0.0.1", agent.port, "/healthz", [](const HttpReply &r) { return r.status == 503; },
        5s);
    EXPECT_EQ(health.status, 503);
    EXPECT_EQ(health.body.rfind("output blocked: standard output has taken nothing for ", 0), 0)
        << health.body;
    EXPECT_EQ(status_within(agent.port, "/metrics", 2000ms), 200);

    std::atomic<std::uint64_t> lost = 0, allocations = 0, allocations_lost = 0;
    std::thread reader([&] {  // reads on to the end: the rest of the ring buffer comes too
        for (std::string line; !(line = agent.monitor.next_line()).empty();) {
            Json event = Json::parse(line);
            if (event["type"] == "allocate") ++allocations;
            if (event["type"] != "stats") continue;
            lost = event["lost_total"].get<std::uint64_t>();
            allocations_lost = event["events"]["allocate"]["lost"].get<std::uint64_t>();
        }
    });
    for (auto until = std::chrono::steady_clock::now() + 10s;
         lost == 0 && std::chrono::steady_clock::now() < until;)
        std::this_thread::sleep_for(100ms);
    EXPECT_GT(lost, 0u) << "a stats line once the pipe is read again";
    HttpReply recovered = poll_get(
        "127.0.0.1", agent.port, "/healthz", [](const HttpReply &r) { return r.status == 200; },
        10s);
    EXPECT_EQ(recovered.status, 200) << recovered.body;
    agent.monitor.signal(SIGTERM);
    reader.join();
    EXPECT_EQ(agent.monitor.wait_exit_code(), 0);
    EXPECT_EQ(allocations + allocations_lost, std::uint64_t(kSockets))
        << "each allocation written or counted lost";
}

// The ids of the sock_ops cgroup links on this host.
std::set<__u32> sockops_links() {
    std::set<__u32> ids;
    for (__u32 id = 0; bpf_link_get_next_id(id, &id) == 0;) {
        int fd = bpf_link_get_fd_by_id(id);
        if (fd < 0) continue;  // gone meanwhile
        bpf_link_info info{};
        __u32 length = sizeof(info);
        if (bpf_obj_get_info_by_fd(fd, &info, &length) == 0 && info.type == BPF_LINK_TYPE_CGROUP &&
            info.cgroup.attach_type == BPF_CGROUP_SOCK_OPS)
            ids.insert(id);
        close(fd);
    }
    return ids;
}

// Another root process can detach the agent's cgroup links (bpftool link detach); it then
// misses every connect(), so it must say so where the orchestrator looks.
TEST_F(MetricsTest, HealthzNamesTheProgramsSomethingElseDetached) {
    capture.reset();
    Netns netns;
    std::set<__u32> before = sockops_links();
    MetricsMonitor agent(netns.inode());
    ASSERT_GT(agent.port, 0);
    std::vector<__u32> agents;
    for (__u32 id : sockops_links())
        if (!before.contains(id)) agents.push_back(id);
    ASSERT_EQ(agents.size(), 1u);
    int link = bpf_link_get_fd_by_id(agents[0]);
    ASSERT_GE(link, 0);
    ASSERT_EQ(bpf_link_detach(link), 0) << std::strerror(errno);
    close(link);
    HttpReply health = poll_get(
        "127.0.0.1", agent.port, "/healthz", [](const HttpReply &r) { return r.status == 503; },
        5s);
    EXPECT_EQ(health.status, 503);
    EXPECT_EQ(health.body.substr(0, health.body.find('@')),
              "programs detached by another process: sockops");
    agent.monitor.signal(SIGTERM);
    EXPECT_EQ(agent.monitor.wait_exit_code(), 0);
}

TEST_F(MetricsTest, APortInUseStopsTheMonitorWithOneLine) {
    capture.reset();
    int holder = make_socket(Family::ipv4, Proto::tcp);
    ASSERT_EQ(bind_to(holder, Family::ipv4, 0), 0);
    ASSERT_EQ(listen(holder, 1), 0);
    std::string taken = "127.0.0.1:" + std::to_string(local_port_of(holder));

    Monitor monitor({"monitor", "--json", "--metrics-listen", taken});
    EXPECT_EQ(monitor.next_line(), "");  // no ready line
    EXPECT_EQ(monitor.wait_exit_code(), 1);
    EXPECT_EQ(monitor.all_stderr(), "portwatch: cannot listen on " + taken +
                                        " for --metrics-listen: Address already in use\n");
    close(holder);
}

// The endpoint is up before the programs load; when they cannot, it must not keep the
// process alive.
TEST_F(MetricsTest, WithoutPrivilegesTheMonitorExitsAndSaysWhy) {
    capture.reset();
    BinaryForNobody binary;
    Monitor monitor(binary.setpriv_args({"monitor", "--metrics-listen", "0"}), nullptr,
                    "/usr/bin/setpriv");
    EXPECT_EQ(monitor.next_line(std::chrono::seconds(20)), "");  // EOF, no ready line
    EXPECT_EQ(monitor.wait_exit_code(), 1);
    EXPECT_NE(monitor.all_stderr().find("Operation not permitted"), std::string::npos);
}

// Every query of deploy/grafana/portwatch-dashboard.json (panel targets), with Grafana's
// variables given values Prometheus takes, by panel title.
std::vector<std::pair<std::string, std::string>> dashboard_queries() {
    std::ifstream file(std::string(PORTWATCH_SOURCE_DIR) +
                       "/deploy/grafana/portwatch-dashboard.json");
    Json board = Json::parse(file);
    std::vector<std::pair<std::string, std::string>> queries;
    for (const Json &panel : board["panels"])
        for (const Json &target : panel.value("targets", Json::array())) {
            std::string expr = target["expr"];
            for (auto [from, to] :
                 {std::pair{"$__rate_interval", "1m"}, {"$instance", ".*"}, {"$netns", ".*"}})
                for (auto at = expr.find(from); at != std::string::npos; at = expr.find(from))
                    expr.replace(at, std::string(from).size(), to);
            queries.emplace_back(panel["title"], expr);
        }
    return queries;
}

// A real Prometheus server and the agent share one netns (loopback); the sockets counted
// are made in another.
TEST_F(MetricsTest, PrometheusScrapesTheSeries) {
    capture.reset();
    ASSERT_TRUE(fs::exists(kPrometheus)) << "install-deps.sh installs Debian's prometheus";
    Netns scraping, work;
    MetricsMonitor agent(work.inode(), &scraping, "127.0.0.1:9464");
    ASSERT_EQ(agent.port, 9464);

    fs::path dir = fs::temp_directory_path() / ("portwatch-prometheus-" + std::to_string(getpid()));
    fs::create_directories(dir);
    std::ofstream(dir / "prometheus.yml") << "global:\n  scrape_interval: 1s\n"
                                             "scrape_configs:\n  - job_name: portwatch\n"
                                             "    static_configs:\n"
                                             "      - targets: ['127.0.0.1:9464']\n";
    Monitor prometheus({"--config.file=" + (dir / "prometheus.yml").string(),
                        "--storage.tsdb.path=" + (dir / "data").string(),
                        "--web.listen-address=127.0.0.1:9090", "--log.level=warn"},
                       &scraping, kPrometheus);

    Allocated allocated = allocate_and_fail_once(work);
    auto query = [&](const std::string &promql) {
        std::optional<double> value;
        scraping.run([&] {
            HttpReply reply = poll_get(
                "127.0.0.1", 9090,
                "/api/v1/query?query=" + httplib::detail::encode_query_param(promql),
                [](const HttpReply &r) {
                    return r.status == 200 && !Json::parse(r.body)["data"]["result"].empty();
                },
                40s);
            if (reply.status != 200) return;
            Json result = Json::parse(reply.body)["data"]["result"];
            if (!result.empty()) value = std::stod(result[0]["value"][1].get<std::string>());
        });
        return value;
    };
    EXPECT_EQ(query("up{job=\"portwatch\"} == 1"), 1);
    EXPECT_EQ(query("portwatch_allocation_failures_total{errno=\"EADDRINUSE\"} > 0"), 1);
    EXPECT_EQ(query("sum(portwatch_allocations_total{how=\"bind_ephemeral\"}) >= 3"), 3);
    EXPECT_EQ(query("portwatch_scope_ports_in_use{scope=\"udp\",netns=\"" +
                    std::to_string(work.inode()) + "\"}"),
              1);

    // The dashboard on this data: every query is answered, and every panel has data but
    // those this scenario has none for (no TCP connect, nothing filling, a full view).
    const std::set<std::string> empty_here = {"TIME_WAIT ports of the fullest destinations",
                                              "Time to exhaustion", "Agents with a partial view"};
    for (const auto &[title, expr] : dashboard_queries()) {
        if (empty_here.contains(title)) continue;
        EXPECT_TRUE(query(expr).has_value()) << title << ": " << expr;
    }

    for (int fd : allocated.fds) close(fd);
    prometheus.signal(SIGTERM);
    prometheus.wait_exit_code();
    agent.monitor.signal(SIGTERM);
    EXPECT_EQ(agent.monitor.wait_exit_code(), 0);
    fs::remove_all(dir);
}

}  // namespace
}  // namespace portwatch::test
