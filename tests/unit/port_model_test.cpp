// SPDX-License-Identifier: Apache-2.0
#include "model/port_model.h"

#include <gtest/gtest.h>

#include <map>

#include "output/json_format.h"
#include "output/text_lines.h"
#include "sample_events.h"

namespace portwatch {
namespace {

using testing::ipv4;
using testing::kContainerId;
using testing::kDockerCgroup;
using testing::task;
using testing::time_base;

constexpr std::uint32_t kNetns = 4026532001u;
constexpr std::uint64_t kSecond = 1'000'000'000;
constexpr std::uint16_t kDestinationPort = 443;

// A netns with a 10-port range; settings can be changed between reports.
struct Host {
    std::map<std::uint32_t, NetnsPortConfig> configs;
    int reads = 0;

    Host() { configs[kNetns] = config(40000, 40009); }

    static NetnsPortConfig config(std::uint16_t low, std::uint16_t high,
                                  std::vector<std::uint16_t> reserved = {}, int tw_reuse = 0) {
        NetnsPortConfig c;
        c.range = {low, high};
        c.reserved = std::move(reserved);
        c.tw_reuse = tw_reuse;
        return c;
    }

    PortModel::ConfigSource source() {
        return [this](std::uint32_t netns, std::uint32_t) {
            reads++;
            return configs[netns];
        };
    }
};

// Builds events with an increasing clock.
struct Events {
    std::uint64_t now = 100 * kSecond;
    std::uint64_t next_cookie = 1;

    AllocateEvent allocation(How how, Proto proto, std::uint16_t port, std::uint32_t pid = 1234,
                             IpAddress remote = ipv4(192, 0, 2, 1)) {
        AllocateEvent e;
        e.boot_ns = now;
        e.sock.cookie = next_cookie++;
        e.sock.netns = kNetns;
        e.sock.proto = proto;
        e.sock.family = Family::ipv4;
        e.sock.local_addr = ipv4(10, 0, 0, 1);
        e.sock.local_port = port;
        if (how == How::connect_autobind) {
            e.sock.remote_addr = remote;
            e.sock.remote_port = kDestinationPort;
        }
        e.task = task(pid == 1234 ? "curl" : "wget");
        e.task.pid = e.task.tid = pid;
        e.how = how;
        e.syscall = how == How::connect_autobind ? Syscall::connect : Syscall::bind;
        return e;
    }
    AllocateEvent connect(std::uint16_t port, std::uint32_t pid = 1234) {
        return allocation(How::connect_autobind, Proto::tcp, port, pid);
    }
    AllocateEvent failed_connect() {
        AllocateEvent e = connect(0);
        e.sock.local_addr = IpAddress{};  // the kernel reset it
        e.error = 99;                     // EADDRNOTAVAIL
        return e;
    }
    ReleaseEvent release(const AllocateEvent &allocation, ReleaseReason reason) {
        ReleaseEvent e;
        e.boot_ns = now;
        e.sock = allocation.sock;
        e.owner = allocation.task;
        e.how = allocation.how;
        e.reason = reason;
        return e;
    }
};

class PortModelTest : public ::testing::Test {
  protected:
    Host host;
    Events events;
    PortModel model{ModelSettings{}, host.source()};
    std::vector<Warning> warnings;

    void apply(const Event &event) {
        auto more = model.apply(event);
        warnings.insert(warnings.end(), more.begin(), more.end());
    }
    // connect()s each closed here first: its port goes to TIME_WAIT
    void connect_and_close(int count) {
        for (int i = 0; i < count; i++) {
            AllocateEvent made = events.connect(std::uint16_t(40000 + i));
            apply(made);
            apply(events.release(made, ReleaseReason::time_wait));
        }
    }
    std::vector<AllocateEvent> connects(int count, std::uint16_t first_port = 40000) {
        std::vector<AllocateEvent> made;
        for (int i = 0; i < count; i++) {
            made.push_back(events.connect(std::uint16_t(first_port + i)));
            apply(made.back());
        }
        return made;
    }
    // The scope as it is now (current(): no new report interval).
    ScopeUsage scope(ScopeKind kind) {
        Report report = model.current(events.now);
        for (const auto &ns : report.netns)
            for (const auto &usage : ns.scopes)
                if (usage.key.kind == kind) return usage;
        ADD_FAILURE() << "no " << name_of(kind) << " scope in the report";
        return {};
    }
    // A scope's TIME_WAIT ports now; 0 when it has nothing left to show (and is left out).
    std::size_t time_wait_now(ScopeKind kind) {
        Report report = model.current(events.now);
        for (const auto &ns : report.netns)
            for (const auto &usage : ns.scopes)
                if (usage.key.kind == kind) return usage.time_wait;
        return 0;
    }
    // The level changes of one kind of scope (connects fill the bind scope too: every TCP
    // port counts against bind(0)).
    std::vector<WarningLevel> levels(ScopeKind kind = ScopeKind::destination) const {
        std::vector<WarningLevel> out;
        for (const auto &warning : warnings)
            if (warning.usage.key.kind == kind) out.push_back(warning.level);
        return out;
    }
    static std::vector<Warning> of_kind(const std::vector<Warning> &all, ScopeKind kind) {
        std::vector<Warning> out;
        for (const auto &warning : all)
            if (warning.usage.key.kind == kind) out.push_back(warning);
        return out;
    }
};

TEST_F(PortModelTest, DestinationCapacityIsTheRangeMinusReservedAndBindHeldPorts) {
    host.configs[kNetns] = Host::config(40000, 40009, {40002, 50000});
    apply(events.allocation(How::bind, Proto::tcp, 40005));  // inside the range: taken
    apply(events.allocation(How::bind, Proto::tcp, 8080));   // outside: irrelevant
    apply(events.connect(40001));
    ScopeUsage usage = scope(ScopeKind::destination);
    EXPECT_EQ(usage.capacity, 8u);  // 10 - reserved 40002 - bound 40005
    EXPECT_EQ(usage.in_use, 1u);
    EXPECT_DOUBLE_EQ(usage.utilization, 1.0 / 8.0);
    EXPECT_EQ(usage.key.remote_port, kDestinationPort);
    EXPECT_EQ(to_string(usage.key.local_addr), "10.0.0.1");
}

TEST_F(PortModelTest, BindScopeCountsEveryTcpPortInsideTheRange) {
    host.configs[kNetns] = Host::config(40000, 40009, {40006});
    apply(events.allocation(How::bind_ephemeral, Proto::tcp, 40003));
    apply(events.allocation(How::listen_autobind, Proto::tcp, 40004));
    apply(events.allocation(How::bind, Proto::tcp, 8080));   // outside the range
    apply(events.allocation(How::bind, Proto::tcp, 40006));  // reserved: not in the range's count
    apply(events.connect(40001));  // connect()-held ports block bind(0) too
    ScopeUsage usage = scope(ScopeKind::bind);
    EXPECT_EQ(usage.in_use, 3u);
    EXPECT_EQ(usage.capacity, 9u);
    EXPECT_EQ(scope(ScopeKind::destination).capacity, 7u)
        << "minus reserved 40006 and the bind-held 40003, 40004; the connect port is in use";
}

TEST_F(PortModelTest, UdpIsItsOwnScope) {
    apply(events.allocation(How::sendto_autobind, Proto::udp, 40001));
    apply(events.allocation(How::bind_ephemeral, Proto::udp, 40002));
    apply(events.allocation(How::bind_ephemeral, Proto::tcp, 40003));
    EXPECT_EQ(scope(ScopeKind::udp).in_use, 2u);
    EXPECT_EQ(scope(ScopeKind::bind).in_use, 1u);
}

TEST_F(PortModelTest, ARangeChangedAtRunTimeIsFollowedAtTheNextReport) {
    apply(events.allocation(How::bind, Proto::tcp, 40005));
    apply(events.connect(40001));
    EXPECT_EQ(scope(ScopeKind::destination).capacity, 9u);
    host.configs[kNetns] = Host::config(41000, 41099);  // 40005 now outside the range
    model.report(events.now);
    EXPECT_EQ(scope(ScopeKind::destination).capacity, 100u);
    EXPECT_EQ(scope(ScopeKind::bind).in_use, 0u);
}

TEST_F(PortModelTest, TimeWaitHoldsTheDestinationPortForSixtySecondsWithoutTwReuse) {
    auto made = connects(2);
    apply(events.release(made[0], ReleaseReason::time_wait));
    apply(events.release(made[1], ReleaseReason::tcp_closed));
    ScopeUsage usage = scope(ScopeKind::destination);
    EXPECT_EQ(usage.in_use, 1u);
    EXPECT_EQ(usage.time_wait, 1u);
    events.now += 60 * kSecond;
    EXPECT_EQ(scope(ScopeKind::destination).time_wait, 1u) << "the timer wheel fires late";
    events.now += 1 * kSecond;
    EXPECT_EQ(time_wait_now(ScopeKind::destination), 0u);
}

TEST_F(PortModelTest, TimeWaitOnLoopbackIsReusableWithTheDefaultTwReuse) {
    host.configs[kNetns] = Host::config(40000, 40009, {}, 2);
    AllocateEvent loopback =
        events.allocation(How::connect_autobind, Proto::tcp, 40000, 1234, ipv4(127, 0, 0, 1));
    apply(loopback);
    apply(events.release(loopback, ReleaseReason::time_wait));
    ScopeUsage usage = scope(ScopeKind::destination);
    EXPECT_EQ(usage.time_wait, 1u);
    EXPECT_EQ(usage.in_use, 0u) << "tcp_tw_reuse=2 reuses TIME_WAIT towards loopback";

    AllocateEvent remote = events.connect(40001);  // 192.0.2.1: not loopback
    apply(remote);
    apply(events.release(remote, ReleaseReason::time_wait));
    Report report = model.report(events.now);
    const ScopeUsage *towards_remote = nullptr;
    for (const auto &candidate : report.netns[0].scopes)
        if (candidate.key.remote_addr == ipv4(192, 0, 2, 1)) towards_remote = &candidate;
    ASSERT_NE(towards_remote, nullptr);
    EXPECT_EQ(towards_remote->in_use, 1u) << "not loopback: TIME_WAIT counts";
}

TEST_F(PortModelTest, WarningsRiseAndFallWithHysteresis) {
    auto made = connects(8);  // 8/10: warning
    EXPECT_EQ(levels(), (std::vector{WarningLevel::warning}));
    apply(events.release(made[7], ReleaseReason::tcp_closed));  // 7/10 = 0.70 < 0.75: ok
    EXPECT_EQ(levels(), (std::vector{WarningLevel::warning, WarningLevel::ok}));

    warnings.clear();
    connects(1, 40007);  // 8/10 again: warning
    EXPECT_EQ(levels(), (std::vector{WarningLevel::warning}));
    AllocateEvent last = events.connect(40008);
    apply(last);
    apply(events.connect(40009));  // 10/10: critical
    EXPECT_EQ(levels().back(), WarningLevel::critical);
    apply(events.release(last, ReleaseReason::tcp_closed));  // 0.90 >= 0.95 - 0.05: stays
    EXPECT_EQ(levels().back(), WarningLevel::critical);
    warnings.clear();
    apply(events.release(made[0], ReleaseReason::tcp_closed));  // 0.80: warning
    EXPECT_EQ(levels(), (std::vector{WarningLevel::warning}));
}

TEST_F(PortModelTest, AFailureIsCriticalAtOnceAndNamesTheProcess) {
    connects(1);
    ASSERT_TRUE(warnings.empty());
    apply(events.failed_connect());
    ASSERT_EQ(warnings.size(), 1u);
    const Warning &warning = warnings[0];
    EXPECT_EQ(warning.level, WarningLevel::critical);
    ASSERT_TRUE(warning.failure.has_value());
    EXPECT_EQ(warning.failure->task.pid, 1234u);
    EXPECT_EQ(warning.usage.key.kind, ScopeKind::destination);
    EXPECT_EQ(to_string(warning.usage.key.local_addr), "10.0.0.1") << "the known scope";
    apply(events.failed_connect());
    EXPECT_EQ(warnings.size(), 1u) << "already critical for a failure";
}

TEST_F(PortModelTest, AnExplicitPortConflictIsNotExhaustion) {
    AllocateEvent conflict = events.allocation(How::bind, Proto::tcp, 8080);
    conflict.error = 98;
    apply(conflict);
    EXPECT_TRUE(warnings.empty());
    Report report = model.report(events.now);
    ASSERT_EQ(report.processes.size(), 1u);
    EXPECT_EQ(report.processes[0].failures, 1u);
}

TEST_F(PortModelTest, EtaFollowsTheFillRate) {
    host.configs[kNetns] = Host::config(40000, 40099);  // 100 ports
    for (int i = 0; i < 10; i++) {
        apply(events.connect(std::uint16_t(40000 + i)));
        events.now += kSecond;
    }
    ScopeUsage usage = scope(ScopeKind::destination);
    ASSERT_TRUE(usage.eta_seconds.has_value());
    EXPECT_NEAR(*usage.eta_seconds, 90.0, 90.0 * 0.15);  // 90 free at ~1 port/s
    EXPECT_NEAR(usage.allocation_rate, 1.0, 0.15);
}

TEST_F(PortModelTest, AYoungScopeFillingFastHasAnEta) {
    host.configs[kNetns] = Host::config(40000, 40099);  // 100 ports
    for (int i = 0; i < 80; i++) {                      // 80 ports in 0.8 s: a warning
        apply(events.connect(std::uint16_t(40000 + i)));
        events.now += kSecond / 100;
    }
    auto destination = of_kind(warnings, ScopeKind::destination);
    ASSERT_EQ(destination.size(), 1u);
    ASSERT_TRUE(destination[0].usage.eta_seconds.has_value()) << "the first second needs it most";
    EXPECT_NEAR(*destination[0].usage.eta_seconds, 0.2, 0.2 * 0.15);  // 20 free at 100/s
}

TEST_F(PortModelTest, NoEtaWhenNotFilling) {
    auto made = connects(3);
    events.now += 5 * kSecond;
    for (const auto &allocation : made)
        apply(events.release(allocation, ReleaseReason::tcp_closed));
    EXPECT_FALSE(scope(ScopeKind::destination).eta_seconds.has_value());
}

TEST_F(PortModelTest, ReportsProcessesByPortsHeldAndResetsTheInterval) {
    apply(events.connect(40000, 1));
    apply(events.connect(40001, 2));
    apply(events.connect(40002, 2));
    apply(events.allocation(How::bind, Proto::udp, 5353, 2));
    events.now += 2 * kSecond;
    Report report = model.report(events.now);
    ASSERT_EQ(report.processes.size(), 2u);
    const ProcessUsage &top = report.processes[0];
    EXPECT_EQ(top.pid, 2u);
    EXPECT_EQ(top.held_total(), 3u);
    EXPECT_EQ((top.held.at({Proto::tcp, How::connect_autobind})), 2u);
    EXPECT_EQ((top.held.at({Proto::udp, How::bind})), 1u);
    EXPECT_EQ(top.allocations, 3u);
    EXPECT_NEAR(top.allocation_rate, 1.5, 1e-9);  // 3 in the 2 s interval

    events.now += kSecond;
    report = model.report(events.now);
    EXPECT_EQ(report.processes[0].allocations, 0u) << "a new interval";
    EXPECT_EQ(report.processes[0].held_total(), 3u) << "held ports stay";
}

TEST_F(PortModelTest, TopProcessesAreTheBiggestHolders) {
    apply(events.connect(40000, 1));
    apply(events.connect(40001, 2));
    apply(events.connect(40002, 2));
    ScopeUsage usage = scope(ScopeKind::destination);
    ASSERT_EQ(usage.top_processes.size(), 2u);
    EXPECT_EQ(usage.top_processes[0].pid, 2u);
    EXPECT_EQ(usage.top_processes[0].ports, 2u);
}

TEST_F(PortModelTest, AReleaseOfAnUnseenSocketChangesNothing) {
    connects(1);
    AllocateEvent stranger = events.connect(40005);
    apply(events.release(stranger, ReleaseReason::tcp_closed));
    EXPECT_EQ(scope(ScopeKind::destination).in_use, 1u);
    EXPECT_EQ(model.tracked_sockets(), 1u);
}

TEST_F(PortModelTest, ReadsEachNetnsOnceUntilTheReport) {
    connects(5);
    EXPECT_EQ(host.reads, 1);
    model.report(events.now);
    EXPECT_EQ(host.reads, 2);
}

KernelSocket table_socket(std::uint64_t cookie, Proto proto, std::uint8_t state,
                          std::uint16_t local_port, std::uint16_t remote_port = 0,
                          std::uint32_t owner_pid = 0) {
    KernelSocket socket;
    socket.sock.cookie = cookie;
    socket.sock.netns = kNetns;
    socket.sock.proto = proto;
    socket.sock.family = Family::ipv4;
    socket.sock.local_addr = ipv4(10, 0, 0, 1);
    socket.sock.local_port = local_port;
    if (remote_port) {
        socket.sock.remote_addr = ipv4(192, 0, 2, 1);
        socket.sock.remote_port = remote_port;
    }
    socket.state = state;
    if (owner_pid) {
        socket.owner = std::make_shared<TaskInfo>(task("nginx"));
        socket.owner->pid = owner_pid;
    }
    return socket;
}

TEST_F(PortModelTest, TheTablesGiveTheBaseline) {
    std::vector<KernelSocket> table = {
        table_socket(101, Proto::tcp, kTcpListen, 40005, 0, 77),         // bind-held, in range
        table_socket(102, Proto::tcp, kTcpEstablished, 40001, 443, 77),  // a connect()
        table_socket(103, Proto::tcp, kTcpEstablished, 40005, 50000),    // accepted: no port
        table_socket(104, Proto::tcp, kTcpTimeWait, 40002, 443),         // client TIME_WAIT
        table_socket(105, Proto::udp, kTcpClose, 40003, 0, 78),
    };
    table[3].time_wait_left_ms = 5000;
    model.reconcile(kNetns, table, events.now);

    const ReconcileTotals &totals = model.reconcile_totals();
    EXPECT_EQ(totals.added, 3u);
    EXPECT_EQ(totals.time_wait, 1u);
    ScopeUsage destination = scope(ScopeKind::destination);
    EXPECT_EQ(destination.in_use, 2u);  // the live connect and the TIME_WAIT (tw_reuse 0)
    EXPECT_EQ(destination.time_wait, 1u);
    EXPECT_EQ(destination.capacity, 9u);  // 40005 is held by the listener
    // bind(0) skips every TCP port held: the listener's, the client's, the TIME_WAIT one
    EXPECT_EQ(scope(ScopeKind::bind).in_use, 3u);
    EXPECT_EQ(scope(ScopeKind::udp).in_use, 1u);
    Report report = model.report(events.now);
    ASSERT_FALSE(report.processes.empty());
    EXPECT_EQ(report.processes[0].pid, 77u);
    EXPECT_EQ(report.processes[0].held_total(), 2u);

    events.now += 6 * kSecond;  // the TIME_WAIT the tables reported expires, 1 s late
    EXPECT_EQ(scope(ScopeKind::destination).time_wait, 0u);
}

// The kernel fires a 60 s timer up to a timer-wheel bucket late, and sock_diag shows the
// socket meanwhile with 0 ms left: it still holds its port, and the report right after the
// tables were read must say so (the soak found every destination ~1 s of TIME_WAIT short).
// Two readings 1.5 s apart, with no event between (the load has stopped): the second says
// the overdue socket is still there, and the report right after it counts it, whatever due
// time the first reading gave it (the 25-minute soak was ~15 ports short per destination).
TEST_F(PortModelTest, ALaterReadingReplacesAnEarlierOnesTimeWaitEntries) {
    KernelSocket overdue = table_socket(104, Proto::tcp, kTcpTimeWait, 40002, 443);
    overdue.time_wait_left_ms = 0;
    model.reconcile(kNetns, {overdue}, events.now);
    events.now += 1'500'000'000;
    model.reconcile(kNetns, {overdue}, events.now);
    events.now += 10'000'000;
    EXPECT_EQ(time_wait_now(ScopeKind::destination), 1u);
}

TEST_F(PortModelTest, ATimeWaitSocketPastItsDueTimeIsCountedWhileTheTablesShowIt) {
    KernelSocket overdue = table_socket(104, Proto::tcp, kTcpTimeWait, 40002, 443);
    overdue.time_wait_left_ms = 0;
    model.reconcile(kNetns, {overdue}, events.now);
    events.now += 10'000'000;  // the report is made a few ms after the reading
    EXPECT_EQ(scope(ScopeKind::destination).time_wait, 1u);
    events.now += 1 * kSecond;
    EXPECT_EQ(time_wait_now(ScopeKind::destination), 0u) << "and not for ever";
}

// A server that closes first leaves its accepted sockets in TIME_WAIT on its own port.
std::vector<KernelSocket> server_time_wait(std::uint16_t server_port, int count) {
    std::vector<KernelSocket> table;
    for (int i = 0; i < count; i++) {
        table.push_back(table_socket(1000 + std::uint64_t(i), Proto::tcp, kTcpTimeWait, server_port,
                                     std::uint16_t(50000 + i)));
        table.back().time_wait_left_ms = 30'000;
    }
    return table;
}

std::size_t destination_scopes(const Report &report) {
    std::size_t count = 0;
    for (const auto &ns : report.netns)
        for (const auto &usage : ns.scopes) count += usage.key.kind == ScopeKind::destination;
    return count;
}

TEST_F(PortModelTest, TimeWaitOnAListenersPortOutsideTheRangeCountsNothing) {
    AllocateEvent listener = events.allocation(How::bind, Proto::tcp, 8080);
    apply(listener);
    apply(events.release(listener, ReleaseReason::socket_closed));
    model.reconcile(kNetns, server_time_wait(8080, 500), events.now);
    Report report = model.report(events.now);
    EXPECT_EQ(destination_scopes(report), 0u);
    ScopeUsage bind = scope(ScopeKind::bind);
    EXPECT_EQ(bind.time_wait, 0u) << "500 sockets, one port, outside the range";
    EXPECT_EQ(bind.in_use, 0u);
}

TEST_F(PortModelTest, TimeWaitOnAClosedListenersPortInTheRangeIsOnePortOfTheBindScope) {
    AllocateEvent listener = events.allocation(How::listen_autobind, Proto::tcp, 40005);
    apply(listener);
    apply(events.release(listener, ReleaseReason::socket_closed));
    model.reconcile(kNetns, server_time_wait(40005, 200), events.now);
    EXPECT_EQ(destination_scopes(model.report(events.now)), 0u)
        << "accepted sockets are no connect() sockets towards their clients";
    ScopeUsage bind = scope(ScopeKind::bind);
    EXPECT_EQ(bind.in_use, 1u);
    EXPECT_EQ(bind.time_wait, 1u);
    EXPECT_EQ(model.reconcile_totals().time_wait, 200u);
}

// `snapshot`'s case: no event showed the listener, which is gone with its process; the
// tables alone show 200 sockets on one port of the range, each towards a client's port.
TEST_F(PortModelTest, ManyTimeWaitSocketsOnOnePortTowardsManyPortsAreAServersNotConnects) {
    model.reconcile(kNetns, server_time_wait(40005, 200), events.now);
    EXPECT_EQ(destination_scopes(model.report(events.now)), 0u)
        << "no phantom scopes towards the clients' ports";
    ScopeUsage bind = scope(ScopeKind::bind);
    EXPECT_EQ(bind.in_use, 1u);
    EXPECT_EQ(bind.time_wait, 1u);
}

// The other reading of a shared local port: connect()s towards one service on several hosts.
TEST_F(PortModelTest, ConnectsSharingALocalPortTowardsOneServicePortStayDestinations) {
    std::vector<KernelSocket> table;
    for (std::uint8_t host = 1; host <= 3; host++) {
        table.push_back(table_socket(host, Proto::tcp, kTcpTimeWait, 40005, 443));
        table.back().sock.remote_addr = ipv4(192, 0, 2, host);
        table.back().time_wait_left_ms = 30'000;
    }
    model.reconcile(kNetns, table, events.now);
    EXPECT_EQ(destination_scopes(model.report(events.now)), 3u);
}

// The soak's client: one local port towards 50 services of one host, each connection closed
// by the client first. Its connects, not a gone server's: services listen below the ranges
// clients choose their ports from.
TEST_F(PortModelTest, ABusyClientsConnectsTowardsManyServicePortsStayDestinations) {
    std::vector<KernelSocket> table;
    for (std::uint16_t service = 20000; service < 20050; service++) {
        table.push_back(table_socket(service, Proto::tcp, kTcpTimeWait, 40005, service));
        table.back().time_wait_left_ms = 30'000;
    }
    model.reconcile(kNetns, table, events.now);
    Report report = model.report(events.now);
    EXPECT_EQ(destination_scopes(report), 50u);
    for (const auto &ns : report.netns)
        for (const auto &usage : ns.scopes) {
            EXPECT_EQ(usage.time_wait, 1u) << "one port in TIME_WAIT in each";
            EXPECT_NE(usage.key.kind, ScopeKind::bind) << "no server's port";
        }
}

TEST_F(PortModelTest, AListenerTheTablesShowedThenLostStillOwnsItsPort) {
    model.reconcile(kNetns, {table_socket(101, Proto::tcp, kTcpListen, 40005, 0, 77)}, events.now);
    events.now += 10 * kSecond;
    model.reconcile(kNetns, server_time_wait(40005, 20), events.now);
    EXPECT_EQ(destination_scopes(model.report(events.now)), 0u);
    EXPECT_EQ(scope(ScopeKind::bind).time_wait, 1u);
}

TEST_F(PortModelTest, TheBindScopeCountsEachTimeWaitPortInTheRangeOnce) {
    auto made = connects(3);
    for (const auto &allocation : made) apply(events.release(allocation, ReleaseReason::time_wait));
    // the same local port towards another destination: a second TIME_WAIT socket on 40000
    AllocateEvent again =
        events.allocation(How::connect_autobind, Proto::tcp, 40000, 1234, ipv4(192, 0, 2, 9));
    apply(again);
    apply(events.release(again, ReleaseReason::time_wait));
    ScopeUsage bind = scope(ScopeKind::bind);
    EXPECT_EQ(bind.time_wait, 3u);
    EXPECT_EQ(bind.in_use, 3u);
    events.now += 61 * kSecond;
    for (const auto &ns : model.report(events.now).netns)
        for (const auto &usage : ns.scopes)
            EXPECT_NE(usage.key.kind, ScopeKind::bind) << "expired: the bind scope is quiet";
}

TEST_F(PortModelTest, ReconcilingDropsWhatIsGoneButNotWhatIsNew) {
    AllocateEvent old_one = events.connect(40000);
    apply(old_one);
    events.now += 5 * kSecond;
    AllocateEvent new_one = events.connect(40001);
    apply(new_one);
    // read before new_one's socket existed; old_one's socket has gone without an event
    model.reconcile(kNetns, {}, events.now - kSecond);
    EXPECT_EQ(model.reconcile_totals().removed, 1u);
    EXPECT_EQ(model.tracked_sockets(), 1u);
    EXPECT_EQ(scope(ScopeKind::destination).in_use, 1u);
}

TEST_F(PortModelTest, ReconcilingDoesNotBringBackARecentRelease) {
    AllocateEvent allocation = events.connect(40000);
    apply(allocation);
    events.now += kSecond;
    apply(events.release(allocation, ReleaseReason::tcp_closed));
    // tables read just before the release still list the socket
    model.reconcile(kNetns,
                    {table_socket(allocation.sock.cookie, Proto::tcp, kTcpEstablished, 40000, 443)},
                    events.now - 1);
    EXPECT_EQ(model.reconcile_totals().added, 0u);
    EXPECT_EQ(scope(ScopeKind::destination).in_use, 0u);
}

TEST_F(PortModelTest, ARecentReleaseOutlivesTheNewerEventsAPassApplies) {
    AllocateEvent allocation = events.connect(40000);
    apply(allocation);
    events.now += kSecond;
    apply(events.release(allocation, ReleaseReason::tcp_closed));
    std::uint64_t read_at = events.now - 1;  // the tables still list the socket
    // drained between the table's rows: a release newer than the grace after it
    AllocateEvent later = events.connect(40001);
    apply(later);
    events.now += 2 * kSecond + kSecond / 2;
    apply(events.release(later, ReleaseReason::tcp_closed));
    model.reconcile(kNetns,
                    {table_socket(allocation.sock.cookie, Proto::tcp, kTcpEstablished, 40000, 443)},
                    read_at);
    EXPECT_EQ(model.reconcile_totals().added, 0u);
}

TEST_F(PortModelTest, AReleaseOlderThanTheGraceDoesNotHideWhatTheTablesList) {
    AllocateEvent allocation = events.connect(40000);
    apply(allocation);
    events.now += kSecond;
    apply(events.release(allocation, ReleaseReason::tcp_closed));
    events.now += 3 * kSecond;
    model.reconcile(kNetns,
                    {table_socket(allocation.sock.cookie, Proto::tcp, kTcpEstablished, 40000, 443)},
                    events.now);
    EXPECT_EQ(model.reconcile_totals().added, 1u);
    EXPECT_EQ(scope(ScopeKind::destination).in_use, 1u);
}

TEST_F(PortModelTest, ReconcilingKeepsAFreshTimeWaitTheTablesMissed) {
    AllocateEvent allocation = events.connect(40000);
    apply(allocation);
    events.now += 5 * kSecond;
    apply(events.release(allocation, ReleaseReason::time_wait));
    model.reconcile(kNetns, {}, events.now - 1);  // read before the hand-off to TIME_WAIT
    EXPECT_EQ(scope(ScopeKind::destination).time_wait, 1u);
    events.now += 10 * kSecond;
    model.reconcile(kNetns, {}, events.now);  // settled: the tables are right, it is gone
    EXPECT_EQ(scope(ScopeKind::destination).time_wait, 0u);
    EXPECT_EQ(model.reconcile_totals().time_wait, 1u);
}

TEST_F(PortModelTest, ANetnsWithNothingLeftIsForgotten) {
    AllocateEvent allocation = events.connect(40000);
    apply(allocation);
    apply(events.release(allocation, ReleaseReason::tcp_closed));
    model.report(events.now);
    EXPECT_EQ(model.namespaces().size(), 1u) << "allocated within the rate window";
    events.now += 61 * kSecond;
    model.report(events.now);
    EXPECT_TRUE(model.namespaces().empty());
    apply(events.connect(40001));  // seen again: read again
    EXPECT_EQ(model.namespaces().size(), 1u);
    EXPECT_EQ(host.reads, 4);
}

TEST_F(PortModelTest, OnlyExhaustionErrorsRaiseWarnings) {
    connects(1);
    AllocateEvent unreachable = events.failed_connect();
    unreachable.error = 101;  // ENETUNREACH: the route, not the range
    apply(unreachable);
    AllocateEvent refused_by_policy = events.allocation(How::bind_ephemeral, Proto::tcp, 0);
    refused_by_policy.error = 1;  // EPERM from a cgroup hook
    apply(refused_by_policy);
    EXPECT_TRUE(warnings.empty());
    EXPECT_EQ(model.report(events.now).processes[0].failures, 2u);
}

TEST_F(PortModelTest, Ipv4MappedConnectsShareTheIpv4Destination) {
    apply(events.connect(40000));
    AllocateEvent mapped = events.connect(40001);
    mapped.sock.family = Family::ipv6;
    for (auto *addr : {&mapped.sock.local_addr, &mapped.sock.remote_addr}) {
        IpAddress v4 = *addr;
        addr->family = Family::ipv6;
        addr->bytes = {};
        addr->bytes[10] = addr->bytes[11] = 0xff;
        std::copy(v4.bytes.begin(), v4.bytes.begin() + 4, addr->bytes.begin() + 12);
    }
    apply(mapped);
    EXPECT_EQ(scope(ScopeKind::destination).in_use, 2u);
}

TEST_F(PortModelTest, BindAndUdpScopesIgnoreTheFamily) {
    AllocateEvent v6 = events.allocation(How::bind_ephemeral, Proto::tcp, 40001);
    v6.sock.family = Family::ipv6;
    apply(v6);
    apply(events.allocation(How::bind_ephemeral, Proto::tcp, 40002));
    Report report = model.report(events.now);
    ASSERT_EQ(report.netns[0].scopes.size(), 1u);
    EXPECT_EQ(report.netns[0].scopes[0].in_use, 2u);
}

TEST_F(PortModelTest, AFailureTowardsAnUnseenDestinationWarnsWithoutKeepingAScope) {
    apply(events.failed_connect());
    ASSERT_EQ(warnings.size(), 1u);
    EXPECT_EQ(warnings[0].level, WarningLevel::critical);
    EXPECT_TRUE(model.report(events.now).netns[0].scopes.empty());
}

TEST_F(PortModelTest, ReconcilingReEvaluatesTheLevels) {
    auto made = connects(10);
    ASSERT_EQ(levels().back(), WarningLevel::critical);
    events.now += 5 * kSecond;
    model.reconcile(kNetns, {}, events.now);  // they all went without events
    auto changed = of_kind(model.take_warnings(), ScopeKind::destination);
    ASSERT_EQ(changed.size(), 1u);
    EXPECT_EQ(changed[0].level, WarningLevel::ok);
    EXPECT_TRUE(model.take_warnings().empty()) << "taken once";
}

TEST_F(PortModelTest, TimeWaitExpiringAtReportTimeIsAWarningToo) {
    auto made = connects(8);
    for (const auto &allocation : made) apply(events.release(allocation, ReleaseReason::time_wait));
    ASSERT_EQ(levels(), (std::vector{WarningLevel::warning}));
    EXPECT_EQ(levels(ScopeKind::bind), (std::vector{WarningLevel::warning}))
        << "the same ports count against bind(0)";
    events.now += 61 * kSecond;
    model.report(events.now);
    std::vector<Warning> expired = model.take_warnings();
    auto changed = of_kind(expired, ScopeKind::destination);
    ASSERT_EQ(changed.size(), 1u);
    EXPECT_EQ(changed[0].level, WarningLevel::ok);
    auto bind = of_kind(expired, ScopeKind::bind);
    ASSERT_EQ(bind.size(), 1u) << "the bind scope falls when the TIME_WAIT expires";
    EXPECT_EQ(bind[0].level, WarningLevel::ok);
}

TEST_F(PortModelTest, TheTablesMoveAPortToTheProcessThatHoldsItNow) {
    // nginx: the process that bound the listener exits when it daemonizes
    AllocateEvent listener = events.allocation(How::bind, Proto::tcp, 40005, 100);
    apply(listener);
    events.now += 5 * kSecond;
    KernelSocket now_held =
        table_socket(listener.sock.cookie, Proto::tcp, kTcpListen, 40005, 0, 101);
    model.reconcile(kNetns, {now_held}, events.now);

    Report report = model.report(events.now);
    ASSERT_EQ(report.processes.size(), 2u);
    EXPECT_EQ(report.processes[0].pid, 101u);
    EXPECT_EQ(report.processes[0].comm, "nginx");
    EXPECT_EQ(report.processes[0].held_total(), 1u);
    EXPECT_EQ(report.processes[1].pid, 100u) << "it allocated in this interval";
    EXPECT_EQ(report.processes[1].held_total(), 0u) << "but holds nothing now";
    auto bind = scope(ScopeKind::bind);
    ASSERT_EQ(bind.top_processes.size(), 1u);
    EXPECT_EQ(bind.top_processes[0].pid, 101u);

    ReleaseEvent release = events.release(listener, ReleaseReason::socket_closed);
    ASSERT_TRUE(model.attribute(release));
    EXPECT_EQ(release.owner.pid, 101u) << "the release names the last owner";
    EXPECT_EQ(release.owner.comm, "nginx");
}

TEST_F(PortModelTest, ReusePortSocketsOnOnePortAreOnePortHeld) {
    std::vector<AllocateEvent> sockets;
    for (int i = 0; i < 3; i++) {
        sockets.push_back(events.allocation(How::bind, Proto::udp, 40001));
        apply(sockets.back());
    }
    Report report = model.current(events.now);
    ASSERT_EQ(report.processes.size(), 1u);
    EXPECT_EQ(report.processes[0].held_total(), 1u) << "three SO_REUSEPORT sockets, one port";
    ScopeUsage udp = scope(ScopeKind::udp);
    EXPECT_EQ(udp.in_use, 1u);
    ASSERT_EQ(udp.top_processes.size(), 1u);
    EXPECT_EQ(udp.top_processes[0].ports, 1u);
    apply(events.release(sockets[0], ReleaseReason::socket_closed));
    EXPECT_EQ(model.current(events.now).processes[0].held_total(), 1u);
    apply(events.release(sockets[1], ReleaseReason::socket_closed));
    apply(events.release(sockets[2], ReleaseReason::socket_closed));
    EXPECT_EQ(model.current(events.now).processes[0].held_total(), 0u);
}

TEST_F(PortModelTest, TheBindScopesTopProcessesHoldPortsOfTheRange) {
    apply(events.allocation(How::bind, Proto::tcp, 8080, 2));  // outside the range
    connects(3);                                               // curl, inside
    ScopeUsage bind = scope(ScopeKind::bind);
    EXPECT_EQ(bind.in_use, 3u);
    ASSERT_EQ(bind.top_processes.size(), 1u) << "8080 takes nothing from the range";
    EXPECT_EQ(bind.top_processes[0].pid, 1234u);
    EXPECT_EQ(bind.top_processes[0].ports, 3u);
}

TEST_F(PortModelTest, AnOwnerNobodyCouldNameIsNullInReportsAsInReleases) {
    model.reconcile(kNetns, {table_socket(101, Proto::udp, kTcpClose, 40003)}, events.now);
    Report report = model.current(events.now);
    Json json = to_json(report, time_base());
    ASSERT_EQ(json["processes"].size(), 1u);
    EXPECT_TRUE(json["processes"][0]["pid"].is_null());
    EXPECT_TRUE(json["processes"][0]["comm"].is_null());
    Json top = json["netns"][0]["scopes"][0]["top_processes"];
    ASSERT_EQ(top.size(), 1u);
    EXPECT_TRUE(top[0]["pid"].is_null());
    EXPECT_TRUE(top[0]["comm"].is_null());
    EXPECT_NE(text_report(report, time_base()).find("\n-        -                4026532001  "),
              std::string::npos)
        << text_report(report, time_base());
}

TEST_F(PortModelTest, AReleaseNobodyReportedIsNotOurs) {
    AllocateEvent connect = events.connect(40000);
    apply(connect);
    ReleaseEvent ours = events.release(connect, ReleaseReason::tcp_closed);
    ours.owner_known = false;  // a connect()'s release: the kernel keeps no owner
    ours.owner = {};
    events.now += 3 * kSecond;
    ours.boot_ns = events.now;
    ASSERT_TRUE(model.attribute(ours));
    EXPECT_EQ(ours.owner.pid, 1234u);
    EXPECT_EQ(ours.how, How::connect_autobind);
    EXPECT_EQ(ours.held_ns, 3 * kSecond);

    // a socket of another netns whose state changes another sockops user asked for
    ReleaseEvent stranger = events.release(events.connect(40001), ReleaseReason::tcp_closed);
    stranger.owner_known = false;
    EXPECT_FALSE(model.attribute(stranger));
}

TEST_F(PortModelTest, AnEventReplacesWhatTheTablesGuessed) {
    model.reconcile(kNetns, {table_socket(7, Proto::tcp, kTcpEstablished, 40001, 443)}, events.now);
    AllocateEvent late = events.connect(40001);  // its event was still in the ring buffer
    late.sock.cookie = 7;
    apply(late);
    Report report = model.report(events.now);
    ASSERT_EQ(report.processes.size(), 1u) << "no ownerless pid 0 left";
    EXPECT_EQ(report.processes[0].pid, 1234u);
    EXPECT_EQ(scope(ScopeKind::destination).in_use, 1u);
}

TEST_F(PortModelTest, ProcessesKeepTheirCgroup) {
    AllocateEvent contained = events.connect(40000);
    contained.task.cgroup_path = kDockerCgroup;
    apply(contained);
    // An owner found in the tables whose cgroup could not be read does not unlearn it.
    KernelSocket listener = table_socket(500, Proto::tcp, kTcpListen, 8080, 0, 1234);
    listener.owner->cgroup_id = 0;
    listener.owner->cgroup_path = "";
    KernelSocket connected = table_socket(contained.sock.cookie, Proto::tcp, kTcpEstablished, 40000,
                                          kDestinationPort, 1234);
    events.now += 3 * kSecond;
    model.reconcile(kNetns, {listener, connected}, events.now);

    Report report = model.report(events.now);
    ASSERT_EQ(report.processes.size(), 1u);
    EXPECT_EQ(report.processes[0].held_total(), 2u);
    EXPECT_EQ(report.processes[0].cgroup_id, 7777u);
    EXPECT_EQ(report.processes[0].cgroup_path, kDockerCgroup);
    Json process = to_json(report, time_base())["processes"][0];
    EXPECT_EQ(process["cgroup_id"], 7777u);
    EXPECT_EQ(process["cgroup"], kDockerCgroup);
    EXPECT_EQ(process["container_id"], kContainerId);
    EXPECT_EQ(process["container_runtime"], "docker");
    EXPECT_NE(text_report(report, time_base()).find(" container=4a37f6d3bf5d\n"),
              std::string::npos);
}

TEST_F(PortModelTest, ProcessesWithoutCgroupHaveNulls) {
    apply(events.connect(40000));
    Json process = to_json(model.report(events.now), time_base())["processes"][0];
    for (const char *key : {"cgroup", "container_id", "container_runtime"})
        EXPECT_TRUE(process.contains(key) && process[key].is_null()) << key;
}

TEST_F(PortModelTest, FilteredOutSocketsAreNotAddedButStillDecideWhatIsGone) {
    AllocateEvent ours = events.connect(40000);
    apply(ours);
    events.now += 5 * kSecond;
    std::vector<KernelSocket> table = {
        table_socket(ours.sock.cookie, Proto::tcp, kTcpEstablished, 40000, 443),
        table_socket(900, Proto::tcp, kTcpEstablished, 40001, 443, 99)};  // another process
    model.reconcile(kNetns, table, events.now,
                    [](const KernelSocket &s) { return s.owner && s.owner->pid == 1234; });
    EXPECT_EQ(model.reconcile_totals().removed, 0u) << "ours is in the table, owner or not";
    EXPECT_EQ(model.reconcile_totals().added, 0u);
    EXPECT_EQ(scope(ScopeKind::destination).in_use, 1u);
}

TEST_F(PortModelTest, TablesReadBeforeTheEventsDoNotCountTimeWaitTwice) {
    // the baseline saw the TIME_WAIT socket; its allocate and release events come after
    KernelSocket waiting = table_socket(7, Proto::tcp, kTcpTimeWait, 40001, 443);
    waiting.time_wait_left_ms = 59'000;
    model.reconcile(kNetns, {waiting}, events.now);
    AllocateEvent late = events.connect(40001);
    late.sock.cookie = 7;
    apply(late);
    apply(events.release(late, ReleaseReason::time_wait));
    ScopeUsage usage = scope(ScopeKind::destination);
    EXPECT_EQ(usage.time_wait, 1u);
    EXPECT_EQ(usage.in_use, 1u);
    EXPECT_EQ(scope(ScopeKind::bind).in_use, 1u) << "one port, held once";
}

// The rows TableRowFilter lets through, in the table's order, as a pass reads them.
std::vector<KernelSocket> rows_kept(const PortModel &model,
                                    const std::vector<KernelSocket> &table) {
    TableRowFilter filter(model);
    std::vector<KernelSocket> kept;
    for (const KernelSocket &row : table)
        if (filter.keep(row)) kept.push_back(row);
    return kept;
}

std::vector<std::uint64_t> cookies_in(const std::vector<KernelSocket> &rows) {
    std::vector<std::uint64_t> cookies;
    for (const KernelSocket &row : rows) cookies.push_back(row.sock.cookie);
    return cookies;
}

// A pass keeps only the rows TableRowFilter lets through as a table is read: the model must
// come out of reconcile() as it would from the whole table, the sockets it holds on a
// listener's port included (left out, they would be dropped as gone).
TEST_F(PortModelTest, TheRowsAPassLeavesOutChangeNothing) {
    PortModel whole{ModelSettings{}, host.source()};  // the same events, then the whole table
    auto both = [&](const Event &event) {
        apply(event);
        whole.apply(event);
    };
    AllocateEvent reuse_port = events.allocation(How::bind, Proto::tcp, 40005);  // not listening
    both(reuse_port);
    AllocateEvent closed_first = events.allocation(How::bind, Proto::tcp, 40005);
    both(closed_first);
    both(events.release(closed_first, ReleaseReason::time_wait));
    events.now += 5 * kSecond;
    std::uint64_t reuse = reuse_port.sock.cookie, waiting = closed_first.sock.cookie;
    std::vector<KernelSocket> table = {
        table_socket(200, Proto::tcp, kTcpEstablished, 40005, 50000, 77),  // before its listener
        table_socket(101, Proto::tcp, kTcpListen, 40005, 0, 77),
        table_socket(201, Proto::tcp, kTcpEstablished, 40005, 50001, 77),  // accepted
        table_socket(202, Proto::tcp, kTcpTimeWait, 40005, 50002),         // accepted, closed
        table_socket(reuse, Proto::tcp, kTcpClose, 40005, 0, 1234),
        table_socket(waiting, Proto::tcp, kTcpTimeWait, 40005, 50003),
        table_socket(102, Proto::tcp, kTcpEstablished, 40001, 443, 77),  // a connect()
        table_socket(203, Proto::tcp, kTcpTimeWait, 40002, 443),         // a connect(), closed
        table_socket(103, Proto::udp, kTcpClose, 40005, 0, 78),          // UDP: its own ports
    };
    table[3].time_wait_left_ms = table[5].time_wait_left_ms = table[7].time_wait_left_ms = 30'000;

    std::vector<KernelSocket> kept = rows_kept(model, table);
    EXPECT_EQ(cookies_in(kept),
              (std::vector<std::uint64_t>{200, 101, reuse, waiting, 102, 203, 103}));
    model.reconcile(kNetns, kept, events.now);
    whole.reconcile(kNetns, table, events.now);

    const ReconcileTotals &got = model.reconcile_totals(), &want = whole.reconcile_totals();
    EXPECT_EQ(got.added, want.added);
    EXPECT_EQ(got.removed, want.removed);
    EXPECT_EQ(got.time_wait, want.time_wait);
    EXPECT_EQ(want.removed, 0u) << "the socket not yet listening is still held";
    EXPECT_EQ(model.tracked_sockets(), whole.tracked_sockets());
    EXPECT_EQ(to_json(model.report(events.now), time_base()),
              to_json(whole.report(events.now), time_base()));
}

TEST_F(PortModelTest, TheRowFilterKeepsEveryRowOfATableWithoutListeners) {
    std::vector<KernelSocket> table = {
        table_socket(102, Proto::tcp, kTcpEstablished, 40001, 443),
        table_socket(103, Proto::udp, kTcpClose, 40001),
        table_socket(104, Proto::tcp, kTcpTimeWait, 40002, 443),
    };
    EXPECT_EQ(rows_kept(model, table).size(), table.size());
}

// The rows of `table`, taken one by one as a pass reads them.
TableReading reading_of(const PortModel &model, const std::vector<KernelSocket> &table) {
    TableReading reading(model);
    for (const KernelSocket &row : table) reading.take(row);
    return reading;
}

// A pass that takes its table row by row (TableReading) holds only the rows reconcile() has
// something to do with, and leaves the model as the whole table does: the first pass, then
// a second one whose rows mostly list what the model holds already.
TEST_F(PortModelTest, ATableTakenRowByRowHoldsOnlyTheRowsThatTellTheModelSomething) {
    PortModel whole{ModelSettings{}, host.source()};  // the same tables, whole
    std::vector<KernelSocket> table = {
        table_socket(101, Proto::tcp, kTcpListen, 40005, 0, 77),
        table_socket(201, Proto::tcp, kTcpEstablished, 40005, 50001, 77),  // accepted
        table_socket(102, Proto::tcp, kTcpEstablished, 40001, 443, 77),    // a connect()
        table_socket(103, Proto::udp, kTcpClose, 40003, 0, 78),
        table_socket(104, Proto::tcp, kTcpTimeWait, 40002, 443),
        table_socket(105, Proto::tcp, kTcpClose, 40004, 0, 77),  // bound, not yet listening
        table_socket(106, Proto::tcp, kTcpEstablished, 40006, 443, 77),
    };
    table[4].time_wait_left_ms = 30'000;
    TableReading first = reading_of(model, table);
    EXPECT_EQ(first.rows_held(), table.size() - 1) << "all but the accepted socket";
    model.reconcile(kNetns, std::move(first), events.now);
    whole.reconcile(kNetns, table, events.now);
    EXPECT_EQ(model.tracked_sockets(), 5u);

    events.now += kSecond;
    std::vector<KernelSocket> again = table;
    again[3].owner = std::make_shared<TaskInfo>(task("nginx"));
    again[3].owner->pid = 79;                                                 // another owner
    again[5] = table_socket(105, Proto::tcp, kTcpListen, 40004, 0, 77);       // listening now
    again.push_back(table_socket(107, Proto::udp, kTcpClose, 40007, 0, 78));  // new
    TableReading second = reading_of(model, again);
    // 103 (its owner), 104 (TIME_WAIT: not a socket the model holds), 105 (listening), 107
    EXPECT_EQ(second.rows_held(), 4u);
    // Released after its row was read: a row left out is one reconcile() would have skipped.
    AllocateEvent connected;
    connected.sock = table[6].sock;
    connected.how = How::connect_autobind;
    for (PortModel *each : {&model, &whole})
        each->apply(events.release(connected, ReleaseReason::tcp_closed));
    model.reconcile(kNetns, std::move(second), events.now);
    whole.reconcile(kNetns, again, events.now);

    const ReconcileTotals &got = model.reconcile_totals(), &want = whole.reconcile_totals();
    EXPECT_EQ(got.added, want.added);
    EXPECT_EQ(got.removed, want.removed);
    EXPECT_EQ(got.time_wait, want.time_wait);
    EXPECT_EQ(model.tracked_sockets(), whole.tracked_sockets());
    EXPECT_EQ(to_json(model.report(events.now), time_base()),
              to_json(whole.report(events.now), time_base()));
}

TEST(SortedCookies, ContainsWhatWasAddedOnceSorted) {
    SortedCookies cookies;
    for (std::uint64_t cookie : {42u, 7u, 1000u, 7u, 3u}) cookies.add(cookie);
    cookies.sort();
    for (std::uint64_t cookie : {3u, 7u, 42u, 1000u}) EXPECT_TRUE(cookies.contains(cookie));
    for (std::uint64_t cookie : {0u, 4u, 999u, 1001u}) EXPECT_FALSE(cookies.contains(cookie));
    EXPECT_FALSE(SortedCookies{}.contains(0));
}

TEST(NextLevel, HysteresisTable) {
    ModelSettings s;  // warn 0.80, critical 0.95, hysteresis 0.05
    using L = WarningLevel;
    struct Case {
        L from;
        double utilization;
        L to;
    } cases[] = {
        {L::ok, 0.79, L::ok},
        {L::ok, 0.80, L::warning},
        {L::ok, 0.95, L::critical},
        {L::warning, 0.76, L::warning},
        {L::warning, 0.74, L::ok},
        {L::warning, 0.96, L::critical},
        {L::critical, 0.91, L::critical},
        {L::critical, 0.89, L::warning},
        {L::critical, 0.50, L::ok},
    };
    for (const auto &c : cases)
        EXPECT_EQ(next_level(c.from, c.utilization, s), c.to)
            << name_of(c.from) << " at " << c.utilization;
}

// Causes from synthetic events: each scenario makes one cause the largest.
const Cause *cause_in(const ScopeUsage &usage, CauseKind kind) {
    for (const Cause &cause : usage.causes)
        if (cause.kind == kind) return &cause;
    return nullptr;
}

double figure_of(const Cause &cause, const std::string &name) {
    for (const Figure &f : cause.figures)
        if (name == f.name) return f.value;
    ADD_FAILURE() << "no figure " << name;
    return -1;
}

TEST_F(PortModelTest, TimeWaitIsTheCauseWhenClosedConnectionsFillADestination) {
    connect_and_close(8);
    auto destination = of_kind(warnings, ScopeKind::destination);
    ASSERT_EQ(destination.size(), 1u);
    const ScopeUsage &usage = destination[0].usage;
    // raised by the eighth connect(), before its release: 7 TIME_WAIT, 1 live
    ASSERT_FALSE(usage.causes.empty());
    EXPECT_EQ(usage.causes[0].kind, CauseKind::time_wait);
    EXPECT_DOUBLE_EQ(usage.causes[0].share, 0.7);
    EXPECT_EQ(figure_of(usage.causes[0], "ports"), 7);
    EXPECT_EQ(figure_of(usage.causes[0], "closed_here_first"), 7);
    ASSERT_NE(cause_in(usage, CauseKind::one_destination), nullptr);
    EXPECT_DOUBLE_EQ(cause_in(usage, CauseKind::one_destination)->share, 0.1);
    // the report a moment later has all eight
    ScopeUsage now = scope(ScopeKind::destination);
    EXPECT_DOUBLE_EQ(now.causes[0].share, 0.8);
    EXPECT_EQ(cause_in(now, CauseKind::one_destination), nullptr) << "no live connection";
    EXPECT_EQ(figure_of(now.causes[0], "closed_here_first"), 8);
    EXPECT_EQ(figure_of(now.causes[0], "closed_by_peer"), 0);
}

TEST_F(PortModelTest, BindBeforeConnectIsTheCauseWhenBoundSocketsFillTheBindScope) {
    std::vector<KernelSocket> table;
    for (int i = 0; i < 8; i++) {
        AllocateEvent bound = events.allocation(How::bind_ephemeral, Proto::tcp,
                                                std::uint16_t(40000 + i), i < 6 ? 1234 : 55);
        apply(bound);
        table.push_back(table_socket(bound.sock.cookie, Proto::tcp, kTcpEstablished,
                                     bound.sock.local_port, 443, bound.task.pid));
    }
    auto bind = of_kind(warnings, ScopeKind::bind);
    ASSERT_EQ(bind.size(), 1u);
    const ScopeUsage &usage = bind[0].usage;
    ASSERT_FALSE(usage.causes.empty());
    const Cause &cause = usage.causes[0];
    EXPECT_EQ(cause.kind, CauseKind::bind_before_connect);
    EXPECT_DOUBLE_EQ(cause.share, 0.8);
    EXPECT_EQ(figure_of(cause, "seen_connected"), 0) << "the tables have not been read";
    ASSERT_EQ(cause.processes.size(), 2u);
    EXPECT_EQ(cause.processes[0].pid, 1234u);
    EXPECT_EQ(cause.processes[0].ports, 6u);
    EXPECT_EQ(cause.processes[1].pid, 55u);
    const Cause *holder = cause_in(usage, CauseKind::holder);
    ASSERT_NE(holder, nullptr);
    EXPECT_DOUBLE_EQ(holder->share, 0.6);

    events.now += 3 * kSecond;
    model.reconcile(kNetns, table, events.now);
    ScopeUsage later = scope(ScopeKind::bind);
    ASSERT_FALSE(later.causes.empty());
    EXPECT_EQ(figure_of(later.causes[0], "seen_connected"), 8) << "the tables show them connected";
}

TEST_F(PortModelTest, ABindZeroListenerIsBindHeldNotBindBeforeConnect) {
    std::vector<KernelSocket> table;
    for (int i = 0; i < 8; i++) {
        AllocateEvent bound =
            events.allocation(How::bind_ephemeral, Proto::tcp, std::uint16_t(40000 + i));
        apply(bound);
        table.push_back(table_socket(bound.sock.cookie, Proto::tcp, kTcpListen,
                                     bound.sock.local_port, 0, 1234));
    }
    events.now += 3 * kSecond;
    model.reconcile(kNetns, table, events.now);
    ScopeUsage usage = scope(ScopeKind::bind);
    ASSERT_FALSE(usage.causes.empty());
    EXPECT_EQ(usage.causes[0].kind, CauseKind::bind_held_in_range);
    EXPECT_EQ(figure_of(usage.causes[0], "listeners"), 8);
    EXPECT_EQ(cause_in(usage, CauseKind::bind_before_connect), nullptr);
}

TEST_F(PortModelTest, BindHeldPortsInTheRangeAreTheCauseForEveryDestination) {
    for (int i = 0; i < 6; i++)
        apply(events.allocation(How::bind, Proto::tcp, std::uint16_t(40000 + i), 77));
    connects(4, 40006);  // 4 of the 4 left
    auto destination = of_kind(warnings, ScopeKind::destination);
    ASSERT_FALSE(destination.empty());
    const ScopeUsage &usage = destination.back().usage;
    EXPECT_EQ(usage.capacity, 4u);
    ASSERT_FALSE(usage.causes.empty());
    const Cause &cause = usage.causes[0];
    EXPECT_EQ(cause.kind, CauseKind::bind_held_in_range);
    EXPECT_DOUBLE_EQ(cause.share, 0.6);
    EXPECT_EQ(figure_of(cause, "ports"), 6);
    EXPECT_EQ(cause.ports, (std::vector<std::uint16_t>{40000, 40001, 40002, 40003, 40004}));
    ASSERT_EQ(cause.processes.size(), 1u);
    EXPECT_EQ(cause.processes[0].pid, 77u);
    ASSERT_NE(cause_in(usage, CauseKind::one_destination), nullptr);
    EXPECT_DOUBLE_EQ(cause_in(usage, CauseKind::one_destination)->share, 0.4);
}

TEST_F(PortModelTest, ReservedPortsAreTheCauseWhenTheyTakeMostOfTheRange) {
    host.configs[kNetns] = Host::config(
        40000, 40019,
        {40000, 40001, 40002, 40003, 40004, 40005, 40006, 40007, 40008, 40009, 40010, 40011});
    connects(7, 40012);
    auto destination = of_kind(warnings, ScopeKind::destination);
    ASSERT_FALSE(destination.empty());
    const ScopeUsage &usage = destination.back().usage;
    ASSERT_FALSE(usage.causes.empty());
    EXPECT_EQ(usage.causes[0].kind, CauseKind::reserved_ports);
    EXPECT_DOUBLE_EQ(usage.causes[0].share, 0.6);
    EXPECT_EQ(figure_of(usage.causes[0], "reserved"), 12);
}

TEST_F(PortModelTest, AHolderOfUdpPortsForLongIsALeak) {
    for (int i = 0; i < 8; i++)
        apply(events.allocation(How::sendto_autobind, Proto::udp, std::uint16_t(40000 + i), 4321));
    AllocateEvent gone = events.allocation(How::sendto_autobind, Proto::udp, 40008, 4321);
    apply(gone);
    apply(events.release(gone, ReleaseReason::socket_closed));  // ten minutes ago: not counted
    events.now += 600 * kSecond;
    ScopeUsage usage = scope(ScopeKind::udp);
    ASSERT_FALSE(usage.causes.empty());
    const Cause &cause = usage.causes[0];
    EXPECT_EQ(cause.kind, CauseKind::holder);
    EXPECT_DOUBLE_EQ(cause.share, 0.8);
    EXPECT_EQ(figure_of(cause, "held_s_median"), 600);
    EXPECT_EQ(figure_of(cause, "releases_last_minute"), 0);
    EXPECT_NE(cause.advice.find("socket leak"), std::string::npos) << cause.advice;
}

TEST_F(PortModelTest, NarrowRangeLeadsWhenManySmallHoldersFillIt) {
    host.configs[kNetns] = Host::config(40000, 40019);
    for (int i = 0; i < 16; i++) {
        apply(events.allocation(How::sendto_autobind, Proto::udp, std::uint16_t(40000 + i),
                                std::uint32_t(100 + i)));
        events.now += kSecond / 4;
    }
    auto udp = of_kind(warnings, ScopeKind::udp);
    ASSERT_FALSE(udp.empty());
    const ScopeUsage &usage = udp.back().usage;
    ASSERT_EQ(usage.causes.size(), 1u) << "each process holds 5 %: no holder";
    EXPECT_EQ(usage.causes[0].kind, CauseKind::narrow_range);
    EXPECT_GT(figure_of(usage.causes[0], "widen_by"), 10000);
}

TEST_F(PortModelTest, AnOkScopeHasNoCauses) {
    connects(2);
    EXPECT_TRUE(scope(ScopeKind::destination).causes.empty());
}

TEST_F(PortModelTest, GoldenWarningTextWithCauses) {
    connect_and_close(8);
    auto destination = of_kind(warnings, ScopeKind::destination);
    ASSERT_EQ(destination.size(), 1u);
    EXPECT_EQ(text_line(destination[0], time_base()),
              "# 10:01:35.123456 warning tcp 10.0.0.1->192.0.2.1:443 netns 4026532001: 8/10 in use "
              "(80.0%), 7 TIME_WAIT, eta -; top: curl[1234] 1; why: time_wait 70% of the range "
              "(also one_destination 10%, holder 10%); do: reuse connections (HTTP keep-alive, "
              "connection pools) instead of one per request, or set net.ipv4.tcp_tw_reuse=1 "
              "(connect() then reuses a TIME_WAIT port once it is 1 s old; this netns has 0; 2 "
              "covers loopback only); the side that closes first keeps the TIME_WAIT and this host "
              "closed 7 of the last minute's 7 connections: let the peer close first where the "
              "protocol allows\n");
}

TEST_F(PortModelTest, ReportScopesAtWarningCarryCausesAndTheOthersDoNot) {
    host.configs[kNetns] = Host::config(40000, 40019);
    for (int i = 0; i < 16; i++)
        apply(events.allocation(How::bind_ephemeral, Proto::tcp, std::uint16_t(40000 + i)));
    apply(events.connect(40016, 99));
    events.now += 10 * kSecond;
    Json report = to_json(model.report(events.now), time_base());
    const Json &scopes = report["netns"][0]["scopes"];
    ASSERT_EQ(scopes.size(), 2u);
    EXPECT_EQ(scopes[0]["scope"], "bind");
    EXPECT_EQ(scopes[0]["level"], "warning");
    ASSERT_TRUE(scopes[0].contains("causes"));
    EXPECT_EQ(scopes[0]["causes"][0]["cause"], "bind_before_connect");
    EXPECT_EQ(scopes[0]["causes"][0]["share"], 0.8);
    EXPECT_EQ(scopes[0]["causes"][0]["ports"], 16);
    EXPECT_EQ(scopes[0]["causes"][0]["processes"][0]["pid"], 1234);
    EXPECT_EQ(scopes[1]["scope"], "destination");
    EXPECT_FALSE(scopes[1].contains("causes")) << "ok: as before";
    // and in text, a row per cause under the scope's
    std::string text = text_report(model.current(events.now), time_base());
    EXPECT_NE(text.find("\n            why: bind_before_connect 80.0% of the range (ports 16, "
                        "seen_connected 0): set IP_BIND_ADDRESS_NO_PORT"),
              std::string::npos)
        << text;
}

TEST_F(PortModelTest, GoldenWarningJson) {
    connects(8);
    auto destination = of_kind(warnings, ScopeKind::destination);
    ASSERT_EQ(destination.size(), 1u);
    std::string line = json_line(to_json(destination[0], time_base()));
    EXPECT_EQ(line,
              "{\"type\":\"warning\",\"ts\":\"2026-11-21T10:01:35.123456Z\",\"level\":\"warning\","
              "\"reason\":\"utilization\",\"scope\":\"destination\",\"netns\":4026532001,\"proto\":"
              "\"tcp\",\"local_addr\":\"10.0.0.1\",\"remote_addr\":\"192.0.2.1\",\"remote_port\":44"
              "3,\"in_use\":8,\"capacity\":10,\"utilization\":0.8,\"time_wait\":0,\"allocation_rate"
              "\":8.0,\"eta_seconds\":null,\"top_processes\":[{\"pid\":1234,\"comm\":\"curl\",\"por"
              "ts\":8,\"cgroup\":null,\"container_id\":null,\"container_runtime\":null}],\"causes\""
              ":[{\"cause\":\"one_destination\",\"share\":0.8,\"connections\":8,\"netns_connect_por"
              "ts\":8,\"destination_share\":1.0,\"destinations\":1,\"advice\":\"100% of this "
              "netns's connect() ports go to this destination and capacity is per (source address, "
              "destination address, destination port): spread the connections over more "
              "destination addresses or ports (more backends, several A records) or add source "
              "addresses\"},{\"cause\":\"holder\",\"share\":0.8,\"ports\":8,\"held_s_median\":0.0,"
              "\"held_s_oldest\":0.0,\"releases_last_minute\":0,\"processes\":[{\"pid\":1234,\"comm"
              "\":\"curl\",\"ports\":8}],\"advice\":\"curl[1234] holds 8 ports, for a median of 0 "
              "s so far: cap its connection pool or concurrency, or spread its connections over "
              "more destinations or source addresses; ports held long and never released would be "
              "a socket leak\"}]}\n");
}

TEST_F(PortModelTest, AReportLeavesOutAScopeThatHeldNothingAndDidNothingInItsInterval) {
    AllocateEvent one_shot = events.connect(40000);
    apply(one_shot);
    apply(events.release(one_shot, ReleaseReason::tcp_closed));
    events.now += 10 * kSecond;
    EXPECT_EQ(destination_scopes(model.report(events.now)), 1u) << "allocated in the interval";
    events.now += 10 * kSecond;
    EXPECT_EQ(destination_scopes(model.report(events.now)), 0u);
    EXPECT_EQ(destination_scopes(model.current(events.now)), 1u)
        << "the live views keep the rate window's scopes";
}

std::vector<std::uint32_t> pids_of(const Report &report) {
    std::vector<std::uint32_t> pids;
    for (const ProcessUsage &usage : report.processes) pids.push_back(usage.pid);
    return pids;
}

// --report-interval 0: no report ever ends an interval, and each short-lived process that
// once made a connection would be kept (and shown) for ever.
TEST_F(PortModelTest, WithoutReportsAProcessHoldingNothingIsForgottenOnceIdle) {
    for (std::uint32_t pid = 100; pid < 110; pid++) {
        AllocateEvent made = events.connect(std::uint16_t(40000 + pid - 100), pid);
        apply(made);
        apply(events.release(made, ReleaseReason::tcp_closed));
    }
    EXPECT_EQ(model.current(events.now).processes.size(), 10u) << "active a moment ago";
    events.now += ModelSettings{}.process_idle_ns + kSecond;
    apply(events.connect(40000, 7));
    EXPECT_EQ(pids_of(model.current(events.now)), std::vector<std::uint32_t>{7});
}

TEST_F(PortModelTest, AProcessHoldingAPortIsKeptHoweverLongItIsIdle) {
    apply(events.connect(40000, 7));
    events.now += 10 * ModelSettings{}.process_idle_ns;
    apply(events.connect(40001, 8));
    EXPECT_EQ(pids_of(model.current(events.now)), (std::vector<std::uint32_t>{7, 8}));
}

using Cookies = std::vector<std::uint64_t>;

TEST_F(PortModelTest, ASocketTwoPassesInARowDoNotListIsTakenOnceAsGone) {
    AllocateEvent kept = events.allocation(How::bind_ephemeral, Proto::udp, 40000);
    AllocateEvent closed = events.allocation(How::bind_ephemeral, Proto::udp, 40001);
    apply(kept);
    apply(closed);
    std::vector<KernelSocket> table{table_socket(kept.sock.cookie, Proto::udp, 7, 40000)};
    events.now += 10 * kSecond;  // past the grace: the tables are right
    model.reconcile(kNetns, table, events.now);
    EXPECT_EQ(model.take_gone_cookies(), Cookies{}) << "one pass's dump proves nothing";
    events.now += kSecond;
    model.reconcile(kNetns, table, events.now);
    EXPECT_EQ(model.take_gone_cookies(), Cookies{closed.sock.cookie});
    events.now += kSecond;
    model.reconcile(kNetns, table, events.now);
    EXPECT_EQ(model.take_gone_cookies(), Cookies{});
}

// A netlink dump resumes each hash chain by position (udp_dump()): a socket closed ahead of
// that position between two reads makes the next read skip a live one.
TEST_F(PortModelTest, ASocketOneDumpSkippedKeepsItsKernelEntry) {
    AllocateEvent skipped = events.allocation(How::bind_ephemeral, Proto::udp, 40000);
    apply(skipped);
    events.now += 10 * kSecond;
    model.reconcile(kNetns, {}, events.now);
    events.now += kSecond;
    model.reconcile(kNetns, {table_socket(skipped.sock.cookie, Proto::udp, 7, 40000)}, events.now);
    EXPECT_EQ(model.take_gone_cookies(), Cookies{});
    EXPECT_TRUE(model.holds_socket(skipped.sock.cookie)) << "the tables list it again";
}

// The kernel hashes a bound port before bind() returns and its record is sent, and /proc was
// read before the table: a row with no owner may be a call still in flight. After a netns's
// first pass such a row waits for the next one (MonitorCliTest.AStormDuringReconciliation...
// saw it as a holder with no pid, now and then, under qemu).
TEST_F(PortModelTest, AnOwnerlessRowNoEventShowedIsTakenWhenTheNextPassListsItAgain) {
    model.reconcile(kNetns, {}, events.now);  // the netns's first pass
    KernelSocket unowned = table_socket(77, Proto::udp, 7, 40000);
    events.now += kSecond;
    model.reconcile(kNetns, {unowned}, events.now);
    EXPECT_FALSE(model.holds_socket(77)) << "its call may still be running";
    events.now += kSecond;
    model.reconcile(kNetns, {unowned}, events.now);
    EXPECT_TRUE(model.holds_socket(77)) << "two passes list it: its owner is gone";
}

TEST_F(PortModelTest, AnOwnerlessRowWhoseEventFollowsIsHeldByTheEventsProcess) {
    model.reconcile(kNetns, {}, events.now);
    AllocateEvent bound = events.allocation(How::bind_ephemeral, Proto::udp, 40000);
    KernelSocket unowned = table_socket(bound.sock.cookie, Proto::udp, 7, 40000);
    events.now += kSecond;
    model.reconcile(kNetns, {unowned}, events.now);
    bound.boot_ns = events.now + 1000;  // the record sent when bind() returned
    apply(bound);
    events.now += kSecond;
    model.reconcile(kNetns, {unowned}, events.now);
    Report report = model.report(events.now);
    ASSERT_EQ(report.processes.size(), 1u);
    EXPECT_EQ(report.processes[0].pid, bound.task.pid);
}

TEST_F(PortModelTest, AFirstPassTakesOwnerlessRowsAtOnce) {
    model.reconcile(kNetns, {table_socket(77, Proto::udp, 7, 40000)}, events.now);
    EXPECT_TRUE(model.holds_socket(77)) << "a snapshot or the baseline has no later pass";
}

TEST_F(PortModelTest, GoldenReportText) {
    connects(2);
    apply(events.allocation(How::bind, Proto::tcp, 8080, 2));
    events.now += 10 * kSecond;
    std::string text = text_report(model.report(events.now), time_base());
    EXPECT_EQ(text,
              "# report 10:01:45.123456 (interval 10.0s)\n"
              "NETNS       RANGE       RSV  PROTO SCOPE                                          "
              "IN_USE     CAP    UTIL     TW   RATE/s     ETA LEVEL\n"
              "4026532001  40000-40009 0    tcp   10.0.0.1->192.0.2.1:443                        "
              "     2      10   20.0%      0      0.2     80s ok\n"
              "4026532001  40000-40009 0    tcp   bind                                           "
              "     2      10   20.0%      0      0.1     80s ok\n"
              "PID      COMM             NETNS         HELD  ALLOC  FAIL   RATE/s BY KIND\n"
              "1234     curl             4026532001       2      2     0      0.2 "
              "tcp/connect_autobind 2\n"
              "2        wget             4026532001       1      1     0      0.1 tcp/bind 1\n");
}

}  // namespace
}  // namespace portwatch
