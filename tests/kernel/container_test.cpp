// SPDX-License-Identifier: Apache-2.0
// Container attribution end to end: a process in a docker-named cgroup and one in the root
// cgroup each bind a port in a network namespace of their own; the real `portwatch monitor`
// and `portwatch snapshot` name the cgroup of each, and the container of the first only.
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "kernel_support.h"
#include "system/cgroup_id_lookup.h"

namespace portwatch::test {
namespace {

using Json = nlohmann::json;

const std::string kId = "efa5de50375594ab628826e2c013e7ed0dd8dacfd43762d80afaf0e373dee37c";
constexpr const char *kChildComm = "pw-cgroup-test";

struct BoundPort {
    std::uint32_t netns = 0;
    std::uint16_t port = 0;
};

// The child's side: only system calls, as befits a child forked from a threaded process.
BoundPort bind_in_own_netns() {
    prctl(PR_SET_NAME, kChildComm);
    BoundPort bound;
    struct stat st {};
    if (unshare(CLONE_NEWNET) != 0 || stat("/proc/self/ns/net", &st) != 0) return bound;
    int fd = socket(AF_INET, SOCK_DGRAM, 0);  // left open: _exit() closes it, the release
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    socklen_t length = sizeof(addr);
    if (bind(fd, reinterpret_cast<sockaddr *>(&addr), sizeof(addr)) != 0 ||
        getsockname(fd, reinterpret_cast<sockaddr *>(&addr), &length) != 0)
        return bound;
    bound.netns = static_cast<std::uint32_t>(st.st_ino);
    bound.port = ntohs(addr.sin_port);
    return bound;
}

// A child process that waits, so that it can be moved to a cgroup first; then binds a UDP
// port in a network namespace of its own and holds it until told to exit. Commands go over a
// socket pair: a child that died early makes send() fail instead of raising SIGPIPE.
class PortHolder {
  public:
    PortHolder() {
        EXPECT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, channel_), 0);
        pid_ = fork();
        if (pid_ == 0) serve(channel_[1]);
        close(channel_[1]);
    }
    ~PortHolder() {
        exit_and_wait();
        close(channel_[0]);
    }
    PortHolder(const PortHolder &) = delete;
    PortHolder &operator=(const PortHolder &) = delete;

    pid_t pid() const { return pid_; }

    BoundPort bind_port() {
        BoundPort bound;
        EXPECT_EQ(send(channel_[0], "b", 1, MSG_NOSIGNAL), 1);
        EXPECT_EQ(recv(channel_[0], &bound, sizeof(bound), MSG_WAITALL), ssize_t(sizeof(bound)));
        return bound;
    }

    void exit_and_wait() {
        if (reaped_) return;
        send(channel_[0], "x", 1, MSG_NOSIGNAL);
        waitpid(pid_, nullptr, 0);
        reaped_ = true;
    }

  private:
    [[noreturn]] static void serve(int channel) {
        char command = 0;
        if (read(channel, &command, 1) == 1 && command == 'b') {
            BoundPort bound = bind_in_own_netns();
            if (write(channel, &bound, sizeof(bound)) == sizeof(bound))
                (void)!read(channel, &command, 1);  // until told to exit
        }
        _exit(0);
    }

    pid_t pid_ = -1;
    int channel_[2] = {-1, -1};
    bool reaped_ = false;
};

const Json *process_of(const Json &report, pid_t pid) {
    for (const Json &process : report["processes"])
        if (process["pid"] == pid) return &process;
    return nullptr;
}

// Every JSON line of `monitor` until `done` holds or the output ends.
std::vector<Json> lines_until(Monitor &monitor, const std::function<bool(const Json &)> &done) {
    std::vector<Json> lines;
    for (std::string line = monitor.next_line(); !line.empty(); line = monitor.next_line()) {
        lines.push_back(Json::parse(line));
        if (done(lines.back())) break;
    }
    return lines;
}

const Json *event_of(const std::vector<Json> &lines, const std::string &type,
                     const BoundPort &bound) {
    for (const Json &line : lines)
        if (line["type"] == type && line["netns"] == bound.netns &&
            line["local_port"] == bound.port)
            return &line;
    return nullptr;
}

class ContainerAttributionTest : public KernelTest {
  protected:
    // Unique per run: another checkout's tests may run at the same time.
    const std::string container_path =
        "/portwatch-test-" + std::to_string(getpid()) + ".slice/docker-" + kId + ".scope";
};

TEST_F(ContainerAttributionTest, MonitorNamesTheCgroupAndTheContainer) {
    TestCgroup container(container_path);
    ASSERT_NE(container.id(), 0u);
    PortHolder contained, on_host;
    container.add(contained.pid());
    TestCgroup::move_to_root(on_host.pid());

    Monitor monitor({"monitor", "--json", "--stats-interval", "0", "--report-interval", "0",
                     "--comm", kChildComm});
    ASSERT_EQ(Json::parse(monitor.next_line())["type"], "ready");
    BoundPort in_container = contained.bind_port();
    BoundPort in_host = on_host.bind_port();
    ASSERT_NE(in_container.port, 0);
    ASSERT_NE(in_host.port, 0);
    contained.exit_and_wait();  // the releases
    on_host.exit_and_wait();
    int releases = 0;
    std::vector<Json> events = lines_until(
        monitor, [&](const Json &line) { return (releases += line["type"] == "release") == 2; });
    monitor.signal(SIGINT);
    std::vector<Json> rest = lines_until(monitor, [](const Json &) { return false; });
    EXPECT_EQ(monitor.wait_exit_code(), 0) << monitor.all_stderr();

    for (const char *type : {"allocate", "release"}) {
        SCOPED_TRACE(type);
        const Json *contained_event = event_of(events, type, in_container);
        ASSERT_TRUE(contained_event);
        EXPECT_EQ((*contained_event)["pid"], contained.pid());
        EXPECT_EQ((*contained_event)["cgroup_id"], container.id());
        EXPECT_EQ((*contained_event)["cgroup"], container.path());
        EXPECT_EQ((*contained_event)["container_id"], kId);
        EXPECT_EQ((*contained_event)["container_runtime"], "docker");

        const Json *host_event = event_of(events, type, in_host);
        ASSERT_TRUE(host_event);
        EXPECT_EQ((*host_event)["pid"], on_host.pid());
        EXPECT_EQ((*host_event)["cgroup_id"], cgroup_id_at(TestCgroup::mount(), "/"));
        EXPECT_EQ((*host_event)["cgroup"], "/");
        EXPECT_TRUE((*host_event)["container_id"].is_null());
        EXPECT_TRUE((*host_event)["container_runtime"].is_null());
    }

    ASSERT_FALSE(rest.empty());
    const Json *report = nullptr;
    for (const Json &line : rest)
        if (line["type"] == "report") report = &line;
    ASSERT_TRUE(report);
    const Json *contained_process = process_of(*report, contained.pid());
    ASSERT_TRUE(contained_process) << report->dump();
    EXPECT_EQ((*contained_process)["cgroup"], container.path());
    EXPECT_EQ((*contained_process)["container_id"], kId);
    const Json *host_process = process_of(*report, on_host.pid());
    ASSERT_TRUE(host_process) << report->dump();
    EXPECT_EQ((*host_process)["cgroup"], "/");
    EXPECT_TRUE((*host_process)["container_id"].is_null());
}

TEST_F(ContainerAttributionTest, SnapshotNamesTheContainerOfEachOwner) {
    TestCgroup container(container_path);
    PortHolder contained, on_host;
    container.add(contained.pid());
    TestCgroup::move_to_root(on_host.pid());
    ASSERT_NE(contained.bind_port().port, 0);
    ASSERT_NE(on_host.bind_port().port, 0);

    Monitor snapshot({"snapshot", "--json", "--comm", kChildComm});
    std::vector<Json> lines =
        lines_until(snapshot, [](const Json &line) { return line["type"] == "report"; });
    EXPECT_EQ(snapshot.wait_exit_code(), 0) << snapshot.all_stderr();
    ASSERT_FALSE(lines.empty());
    const Json &report = lines.back();
    ASSERT_EQ(report["type"], "report");
    const Json *contained_process = process_of(report, contained.pid());
    ASSERT_TRUE(contained_process) << report.dump();
    EXPECT_EQ((*contained_process)["cgroup_id"], container.id());
    EXPECT_EQ((*contained_process)["cgroup"], container.path());
    EXPECT_EQ((*contained_process)["container_id"], kId);
    EXPECT_EQ((*contained_process)["container_runtime"], "docker");
    const Json *host_process = process_of(report, on_host.pid());
    ASSERT_TRUE(host_process) << report.dump();
    EXPECT_EQ((*host_process)["cgroup"], "/");
    EXPECT_TRUE((*host_process)["container_id"].is_null());
}

}  // namespace
}  // namespace portwatch::test
