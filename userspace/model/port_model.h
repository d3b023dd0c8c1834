// SPDX-License-Identifier: Apache-2.0
// The ports in use as the kernel's allocator sees them: who holds which port, in which
// allocation scope, how full each scope is, how fast it fills and when it runs out.
// Fed with events (each carries its own time); no clock, no kernel: the netns settings
// come from an injected source.
//
// Scopes (README.md "What it answers", docs/json.md):
//   destination  TCP connect() autobind, per (netns, source IP, destination IP, port):
//                the range minus reserved ports minus bind()-held ports in it;
//                TIME_WAIT counts unless the netns's tcp_tw_reuse lets connect() reuse it.
//   bind         TCP bind(0) / listen() autobind, per netns: the range minus reserved ports,
//                shared with every bind()-held port.
//   udp          UDP autobind and bind, per netns, exclusive.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include <absl/container/flat_hash_map.h>
#include <absl/container/flat_hash_set.h>
#include <absl/container/node_hash_map.h>

#include "events/event.h"
#include "events/kernel_socket.h"
#include "events/nat_mapping.h"
#include "model/causes.h"
#include "model/cookie_sets.h"
#include "model/held_socket.h"
#include "model/nat_clients.h"
#include "model/nat_rules.h"
#include "model/netns_ports.h"
#include "model/netns_state.h"
#include "model/process_accounts.h"
#include "model/reconcile_history.h"
#include "model/scope_key.h"
#include "model/scope_state.h"
#include "model/time_wait_table.h"
#include "agent/stats.h"

namespace portwatch {

// What a table says of its TCP ports beyond each socket's row.
struct TablePorts {
    PortSet listening;  // a listener holds them
    // No listener, but so many sockets towards so many remote ports that they were accepted
    // from one that is gone (its server closed them first): reconcile.cpp, served_ports().
    PortSet served;
};

class TableReading;

struct ScopeUsage {
    ScopeKey key;
    Proto proto = Proto::tcp;
    std::size_t in_use = 0;     // what the allocator cannot hand out, TIME_WAIT included if counted
    std::size_t time_wait = 0;  // TIME_WAIT ports in this scope (counted or not)
    std::size_t capacity = 0;
    double utilization = 0;             // in_use / capacity (1 when capacity is 0)
    double allocation_rate = 0;         // allocations per second over the rate window
    std::optional<double> eta_seconds;  // at the current fill rate; none when not filling
    std::vector<TopProcess> top_processes;
    WarningLevel level = WarningLevel::ok;
    std::vector<Cause> causes;  // at level warning or above: why it is filling (causes.h)
};

struct Warning {
    std::uint64_t boot_ns = 0;
    WarningLevel level = WarningLevel::ok;
    ScopeUsage usage;
    std::optional<AllocateEvent> failure;  // the failed allocation that raised it
    // nat scopes: the packets its netns's NAT dropped for want of a free port (conntrack's
    // insert_failed) that raised it
    std::uint64_t nat_drops = 0;
};

// What a bounded report leaves out of a section (bound_report()), summed up in one row.
struct ScopesLeftOut {
    std::size_t count = 0;
    std::size_t in_use = 0;
    std::size_t time_wait = 0;
    double utilization = 0;  // the fullest of them
    WarningLevel level = WarningLevel::ok;
};

struct ProcessesLeftOut {
    std::size_t count = 0;
    std::size_t ports_held = 0;
    std::uint64_t allocations = 0;
    std::uint64_t failures = 0;
};

struct NetnsReport {
    std::uint32_t netns = 0;
    NetnsPortConfig config;
    std::vector<ScopeUsage> scopes;  // fullest first
    ScopesLeftOut scopes_left_out;
    std::uint64_t nat_drops = 0;  // NetnsState's
};

struct Report {
    std::uint64_t boot_ns = 0;
    double interval_s = 0;
    std::vector<NetnsReport> netns;
    std::vector<ProcessUsage> processes;  // most ports held first
    ProcessesLeftOut processes_left_out;
};

struct ModelSettings {
    double warn_ratio = 0.80;
    double critical_ratio = 0.95;
    double hysteresis = 0.05;  // a level is left only this far below its threshold
    std::size_t top_n = 5;
    std::uint64_t rate_window_ns = 60'000'000'000;
    std::uint64_t time_wait_ns = 60'000'000'000;  // TCP_TIMEWAIT_LEN
    // A TIME_WAIT socket keeps its port until its timer fires, and the timer wheel fires a
    // 60 s timer up to one bucket late (kernel/time/timer.c, calc_wheel_index(): 2.048 s at
    // HZ=250, Debian's; 4.096 s at HZ=1000); sock_diag shows it meanwhile with 0 ms left.
    // Each TIME_WAIT port is counted this much past its due time: half a bucket at HZ=250.
    std::uint64_t time_wait_timer_lag_ns = 1'000'000'000;
    // Events may still be on their way when the tables are read: sockets allocated or
    // released this recently are left as the events say.
    std::uint64_t reconcile_grace_ns = 2'000'000'000;
    // A process that holds nothing is forgotten once it has done nothing this long, reports
    // or not (--report-interval 0 makes none): the agent cannot see it exit, and pids come
    // and go by the million. Longer than a report interval, so a report shows every process
    // active in it (make_port_model()).
    std::uint64_t process_idle_ns = 60'000'000'000;
    // The monitor's filters choose processes: a NAT mapping whose client socket the model
    // does not hold is not theirs, and is left out.
    bool nat_clients_only = false;
    // A NAT scope its netns's drops made critical stays so this long after the last drop,
    // whatever its count says: the drops prove it full (its range may be narrower than known).
    std::uint64_t nat_drop_hold_ns = 10'000'000'000;
};

class PortModel {
  public:
    // The settings of a netns; pid_hint is a process seen in it.
    using ConfigSource =
        std::function<NetnsPortConfig(std::uint32_t netns, std::uint32_t pid_hint)>;

    PortModel(ModelSettings settings, ConfigSource config_source);
    // Every netns with this range and nothing reserved: for tests and benchmarks.
    static ConfigSource fixed_range(PortRange range);

    // Applies one event (its boot_ns is "now") and returns the warnings whose level changed.
    std::vector<Warning> apply(const Event &event);
    // The state at `now`; starts a new report interval. Re-reads every netns's settings.
    Report report(std::uint64_t now_boot_ns);
    // The same picture without starting a new interval or re-reading the settings: for
    // views refreshed more often than the report (metrics, top).
    Report current(std::uint64_t now_boot_ns);

    // Makes one netns's picture match its socket tables, read at `read_at_ns`: adds the
    // sockets no event showed (the baseline at start; ports allocated while events were
    // lost), drops the ones that are gone, and replaces its TIME_WAIT entries.
    // `admit` says which sockets the user wants counted (the monitor's filters); what is
    // gone is decided on the whole table.
    void reconcile(std::uint32_t netns, const std::vector<KernelSocket> &table,
                   std::uint64_t read_at_ns,
                   const std::function<bool(const KernelSocket &)> &admit = {});
    // The same, from a table taken row by row as it was read: its rows are freed as they are
    // applied.
    void reconcile(std::uint32_t netns, TableReading &&table, std::uint64_t read_at_ns,
                   const std::function<bool(const KernelSocket &)> &admit = {});
    // Whether the model holds the row's socket as the row lists it (the same owner; a TCP
    // socket already known as listening, or connected): reconcile() would change nothing.
    bool holds_as_listed(const KernelSocket &row) const;
    // Level changes found outside apply() (reconcile, TIME_WAIT expiry at report time).
    std::vector<Warning> take_warnings();

    // Completes a release with what the model knows of its socket: the process holding it
    // now (which reconciliation may have moved since the allocation) and, when the event
    // knew no owner, how and since when. False for a release of a socket the model never
    // held with no owner of its own: not one this monitor reported (another sockops user
    // asked for that socket's state changes).
    bool attribute(ReleaseEvent &release) const;

    // NAT (nat.cpp): the mappings of the netns that translate, from their conntrack tables.
    // The port range a mapping was drawn from (its rule's, else the kernel's default): the
    // capacity of its scope. Asked when a scope is new, and again at each report().
    using NatRangeSource = std::function<NatPortRange(const NatMapping &)>;
    void set_nat_range_source(NatRangeSource source) { nat_range_source_ = std::move(source); }
    std::vector<Warning> apply(const NatEvent &event);
    // Makes one netns's mappings match its conntrack table, read at `read_at_ns`: adds those
    // no event showed, drops those gone (the events of both may have been lost).
    void reconcile_nat(std::uint32_t netns, const std::vector<NatMapping> &table,
                       std::uint64_t read_at_ns);
    // The netns's NAT dropped `drops` more packets for want of a free tuple since the last
    // call: its fullest NAT scope goes critical.
    std::vector<Warning> count_nat_drops(std::uint32_t netns, std::uint64_t drops,
                                         std::uint64_t now_ns);
    std::size_t nat_mappings() const { return nat_mappings_.size(); }

    std::size_t tracked_sockets() const { return sockets_.size(); }
    // Whether the model holds the socket with this cookie: live, or in TIME_WAIT.
    bool holds_socket(std::uint64_t cookie) const {
        return sockets_.contains(cookie) || time_wait_.contains(cookie);
    }
    std::vector<std::uint32_t> namespaces() const;
    const ReconcileTotals &reconcile_totals() const { return reconcile_totals_; }
    // The cookies of the sockets that two passes in a row over their netns's tables did not
    // list (their releases were missed), since the last call: the kernel's held_ports may
    // still hold them. One pass is not enough (ReconcileHistory).
    std::vector<std::uint64_t> take_gone_cookies() { return history_.take_gone_cookies(); }
    bool missed_once(const SocketInfo &sock) const { return history_.missed_once(sock); }

  private:
    // Events (port_model.cpp)
    NetnsState &netns_state(std::uint32_t netns, std::uint32_t pid_hint);
    ScopeState &scope_state(const ScopeKey &key, Proto proto);
    void hold(const HeldSocket &held, const TaskInfo &owner);
    void forget(const HeldSocket &held);
    // The same, with held's scope and its state already looked up (the per-event path).
    void hold(const HeldSocket &held, ScopeKind kind, ScopeState &state, const TaskInfo &owner);
    void forget(const HeldSocket &held, ScopeState &state);
    void drop_table_entry(std::uint64_t cookie, std::uint32_t netns);
    std::vector<Warning> on_allocate(const AllocateEvent &event);
    std::vector<Warning> on_failure(const AllocateEvent &event);
    std::vector<Warning> on_release(const ReleaseEvent &event);
    void housekeeping(std::uint64_t now_ns);

    // Scope usage: rate, ETA, levels (scope_usage.cpp)
    std::optional<ScopeKey> failure_scope(const AllocateEvent &failure);
    // The fullest of the scopes `matches` accepts (in scopes_), or null.
    const ScopeKey *fullest_scope(const std::function<bool(const ScopeKey &)> &matches) const;
    std::size_t in_use(const ScopeKey &key, const ScopeState &state) const;
    std::size_t time_wait_of(const ScopeKey &key, const ScopeState &state) const;
    std::size_t capacity(const ScopeKey &key) const;
    double utilization(const ScopeKey &key, const ScopeState &state) const;
    bool time_wait_counts(const ScopeKey &key) const;
    void count_allocation(ScopeState &state, std::uint64_t now_ns);
    void count_release(ScopeState &state, const ReleaseEvent &event);
    void record_sample(ScopeState &state, const ScopeKey &key, std::uint64_t now_ns);
    ScopeUsage usage_of(const ScopeKey &key, const ScopeState &state, std::uint64_t now_ns) const;
    // The usage with its causes when its level is warning or above.
    ScopeUsage usage_with_causes(const ScopeKey &key, const ScopeState &state,
                                 std::uint64_t now_ns) const;
    std::optional<Warning> evaluate(const ScopeKey &key, ScopeState &state, std::uint64_t now_ns);
    void evaluate_netns(std::uint32_t netns, std::uint64_t now_ns);
    void evaluate_bind_scope(const ScopeKey &changed, Proto proto, std::uint64_t now_ns,
                             std::vector<Warning> &warnings);

    // TIME_WAIT (time_wait.cpp)
    void add_time_wait(const ScopeKey &scope, Proto proto, std::uint16_t port, std::uint64_t cookie,
                       std::uint64_t added_ns, std::uint64_t expires_ns, bool from_table);
    void release_time_wait_port(const TimeWaitEntry &entry);
    void expire_time_wait(std::uint64_t now_ns, std::vector<Warning> &warnings);
    // Drops the netns's TIME_WAIT entries that the tables read now replace
    // (TimeWaitTable::take_replaced()); returns the cookies of the ones kept.
    CookieSet drop_time_wait_of(std::uint32_t netns, std::uint64_t settled_before);

    // Reconciliation with the socket tables (reconcile.cpp)
    void note_released(const HeldSocket &held, std::uint64_t now_ns);
    std::optional<HeldSocket> from_table(const KernelSocket &socket, const TablePorts &ports,
                                         std::uint64_t read_at_ns) const;
    void drop_gone_sockets(std::uint32_t netns, const SortedCookies &live,
                           std::uint64_t settled_before, std::uint64_t read_at_ns);
    bool update_known_socket(const KernelSocket &socket);
    void add_table_socket(std::uint32_t netns, const KernelSocket &socket, const TablePorts &ports,
                          std::uint64_t read_at_ns, const CookieSet &old_waiting);

    // Per-process accounting (process_usage.cpp; the accounts: process_accounts.cpp)
    void move_owner(HeldSocket &held, const TaskInfo &owner);
    std::vector<TopProcess> top_processes(const ScopeKey &key, const ScopeState &state) const;

    // NAT (nat.cpp)
    // Its scope is its key's (nat.cpp, nat_scope_of()).
    struct NatHeld {
        std::uint32_t pid = 0;  // the client's process, 0 when it did not join
        std::uint64_t since_ns = 0;
        IpAddress client;  // the original source address
    };
    std::optional<Warning> add_nat(const NatMapping &mapping, std::uint64_t now_ns);
    std::optional<Warning> remove_nat(const NatKey &key, std::uint64_t now_ns);
    std::uint32_t nat_client(const NatMapping &mapping);
    std::size_t nat_capacity(const ScopeKey &key) const;
    NatCauseFacts nat_facts(const ScopeUsage &usage, std::uint64_t now_ns) const;

    // Reports (report_builder.cpp) and their causes (cause_facts.cpp)
    Report build_report(std::uint64_t now_boot_ns, std::uint64_t active_since_s);
    void add_scope_usages(Report &report, std::uint64_t now_boot_ns,
                          std::uint64_t active_since_s) const;
    void add_process_usages(Report &report) const;
    CauseFacts scope_facts(const ScopeUsage &usage) const;
    // Sets the causes of the usages at level warning or above (each with its scope's state).
    void attach_causes(const std::vector<std::pair<ScopeUsage *, const ScopeState *>> &usages,
                       std::uint64_t now_ns) const;
    bool quiet(const ScopeKey &key, const ScopeState &state, std::uint64_t since_s) const;
    void forget_idle(std::uint64_t now_ns);

    ModelSettings settings_;
    ConfigSource config_source_;
    // By cookie. A node each: a flat table's 88 B slots are half empty after it doubles
    // (~185 B a socket at 500,000) and it holds both tables while it grows; a node costs
    // ~105-115 B (96 B and a pointer slot) at any size.
    absl::node_hash_map<std::uint64_t, HeldSocket> sockets_;
    TimeWaitTable time_wait_;
    std::map<ScopeKey, ScopeState> scopes_;
    std::map<std::uint32_t, NetnsState> netns_;
    ProcessAccounts processes_;
    ReconcileTotals reconcile_totals_;
    ReconcileHistory history_;  // what the passes remember between them (reconcile.cpp)
    std::vector<Warning> pending_warnings_;
    absl::flat_hash_map<NatKey, NatHeld> nat_mappings_;
    NatRangeSource nat_range_source_;
    NatClients nat_clients_;  // filled once a NAT mapping was seen
    std::uint64_t last_housekeeping_ns_ = 0;
    std::uint64_t interval_start_ns_ = 0;
    bool interval_started_ = false;
};

// The rows of one netns's table that reconcile() needs, told row by row as sock_diag lists
// them, so that a pass holds no others (issue 15: a pass holds every table at once). Left out:
// a TCP socket on a port a listener listed before it holds (a server's accepted connections,
// most sockets of a busy host), which holds no port of its own and which reconcile() ignores
// all the same (from_table()); unless the model holds it, or it would be dropped as gone,
// or the last pass missed it (its held_ports entry must not be deleted as gone).
// sock_diag lists each TCP table's listeners first; a socket listed before its listener (on
// a port only an IPv6 listener holds) is kept, and ignored as before. The model is asked as
// the row is read (the caller applies the queued events first): a socket it learns of only
// from an event queued during the dump is younger than reconcile_grace_ns, and kept. One per
// table.
class TableRowFilter {
  public:
    explicit TableRowFilter(const PortModel &model) : model_(model) {}
    bool keep(const KernelSocket &socket);

  private:
    const PortModel &model_;
    PortSet listening_;  // the TCP listeners' ports seen so far
};

// One netns's socket table as reconcile() takes it, row by row as sock_diag lists them, so
// that a pass never holds a whole table (issue 32, defect 12: the rows held while the model
// grew, or beside a full one, made a pass's peak 1.67-2.6x the model's memory). Of each row
// TableRowFilter keeps, it notes what reconcile() needs of the whole table before any row
// (the cookies listed, the listeners' ports, each port's peers), and holds the row itself
// only when reconcile() has something to do with it: not for a socket the model holds as the
// row lists it (holds_as_listed(): most rows of every pass after the first). Such a socket
// that the model drops before reconcile() was released meanwhile (on_release()), and its row
// would have been skipped as released. reconcile() frees the rows as it applies them.
class TableReading {
  public:
    // The rows `model` needs, as above: the model is asked as each row is taken (the
    // caller applies the queued events first).
    explicit TableReading(const PortModel &model);
    // Every row of `table`, as given (a table read whole).
    explicit TableReading(std::vector<KernelSocket> table);

    void take(KernelSocket socket);
    std::size_t rows_held() const { return rows_.size(); }

  private:
    friend class PortModel;
    void note(const KernelSocket &socket);
    // Sorts peers_ first.
    PortSet served_ports();

    const PortModel *model_ = nullptr;  // null: every row is held
    std::optional<TableRowFilter> filter_;
    PortSet listening_;  // the TCP listeners' ports
    // the cookies listed: TCP in TIME_WAIT, and the rest (most)
    CookieSet waiting_;
    SortedCookies live_;
    // Each connected TCP socket's local port << 16 | remote port: 4 B a row, where a map of
    // each local port's remote ports took ~7 MB for a 28,000-port range.
    std::deque<std::uint32_t> peers_;
    // A deque frees its blocks as reconcile() takes the rows; a vector would keep them all,
    // and double as it grows (holding both copies meanwhile).
    std::deque<KernelSocket> rows_;
};

WarningLevel next_level(WarningLevel current, double utilization, const ModelSettings &settings);
std::string_view name_of(ScopeKind kind);
std::string_view name_of(WarningLevel level);

}  // namespace portwatch
