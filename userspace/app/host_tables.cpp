// SPDX-License-Identifier: Apache-2.0
#include "app/host_tables.h"

#include <malloc.h>

#include <algorithm>
#include <ctime>
#include <iterator>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "system/cgroup_dir.h"
#include "system/host_info.h"
#include "system/socket_tables.h"

namespace portwatch {
namespace {

// ~10 ms of a dump (0.53 s per 100,000 sockets, /proc included): a 1 MiB ring buffer holds
// ~75 ms of a 50,000-connections-a-second storm (272 bytes of records a connection).
constexpr std::size_t kRowsBetweenDrains = 2000;

bool table_socket_passes(const Filters &filters, const KernelSocket &socket) {
    if (filters.proto && socket.sock.proto != *filters.proto) return false;
    if (filters.family && socket.sock.family != *filters.family) return false;
    if (!filters.ports.empty() &&
        std::none_of(filters.ports.begin(), filters.ports.end(), [&](const LocalPortRange &range) {
            return range.contains(socket.sock.local_port);
        }))
        return false;
    // --uid: the holder's real uid, as the kernel side reads the caller's; a socket no process
    // holds (TIME_WAIT) by the uid sock_diag gives (its creator's).
    std::uint32_t uid = socket.owner ? socket.owner->uid : socket.uid;
    if (!filters.uids.empty() &&
        std::find(filters.uids.begin(), filters.uids.end(), uid) == filters.uids.end())
        return false;
    if (filters.pids.empty() && !filters.comm && filters.cgroups.empty() &&
        filters.container_cgroups.empty())
        return true;
    if (!socket.owner) return false;
    if (!filters.container_cgroups.empty() &&
        std::none_of(filters.container_cgroups.begin(), filters.container_cgroups.end(),
                     [&](const std::string &cgroup) {
                         return cgroup_is_within(socket.owner->cgroup_path.text(), cgroup);
                     }))
        return false;
    if (!filters.pids.empty() && std::find(filters.pids.begin(), filters.pids.end(),
                                           socket.owner->pid) == filters.pids.end())
        return false;
    for (const std::string &cgroup : filters.cgroups)
        if (!cgroup_is_within(socket.owner->cgroup_path.text(), cgroup)) return false;
    return !filters.comm || socket.owner->comm == *filters.comm;
}

struct Table {
    TableReading rows;
    std::int64_t read_at;
};

// The rows of one netns's table the model needs, with their owners; std::nullopt if the netns
// is gone or its table cannot be read (no privilege to enter the namespace): the model then
// keeps what the events say of that namespace (`check` names the reason).
std::optional<Table> read_table(PortModel &model, NetnsConfigReader &netns_reader,
                                std::uint32_t netns, const SocketOwners &owners,
                                const std::function<void()> &drain_events) {
    Result<int> fd = netns_reader.handle(netns);
    if (!fd) return std::nullopt;  // gone since: its sockets went with it
    // Only the rows the model needs (TableReading): a busy server's accepted sockets are most
    // of them, and after the first pass, the sockets the model already holds as listed.
    // It asks the model what it holds: what the queued events say, first.
    if (drain_events) drain_events();
    TableReading table(model);
    std::int64_t read_at = clock_ns(CLOCK_BOOTTIME);
    // A busy host's table takes longer than a connect storm takes to fill the ring
    // buffer: it is read during the dump too, as the rows read so far leave the model
    // right (the model is asked again for each row; reconcile() spares what events
    // showed during the dump, and skips the rows of sockets released meanwhile).
    std::size_t rows = 0;
    Status read = read_sockets(*fd, netns, [&](KernelSocket socket) {
        if (drain_events && ++rows % kRowsBetweenDrains == 0) drain_events();
        // TIME_WAIT sockets have no inode
        if (socket.inode != 0) socket.owner = owners.owner_of(socket.inode);
        table.take(std::move(socket));
    });
    if (!read) return std::nullopt;
    return Table{std::move(table), read_at};
}

void read_tables_into(PortModel &model, NetnsConfigReader &netns_reader, const Filters &filters,
                      const std::function<void()> &drain_events) {
    std::set<std::uint32_t> namespaces;
    if (filters.netns) {
        namespaces.insert(*filters.netns);
    } else {
        for (std::uint32_t netns : netns_reader.all_namespaces()) namespaces.insert(netns);
        for (std::uint32_t netns : model.namespaces()) namespaces.insert(netns);
    }
    // Without /proc the tables are still read: their sockets then have no owner, as those of
    // processes that exited since, and --pid/--comm match none of them.
    Result<SocketOwners> read_owners = socket_owners(drain_events);
    SocketOwners owners = std::move(read_owners).value_or(SocketOwners{});
    // One table at a time, into the model as soon as it is read: a pass that held every
    // table at once peaked at ~550 B per tracked socket (issue 32, defect 12).
    for (auto netns = namespaces.begin(); netns != namespaces.end(); ++netns) {
        std::optional<Table> table = read_table(model, netns_reader, *netns, owners, drain_events);
        if (!table) continue;
        if (std::next(netns) == namespaces.end()) owners = {};  // before the model grows
        // A socket made after /proc was read is in the table with no owner: its event, queued
        // meanwhile, names it, and must reach the model before the table is compared.
        if (drain_events) drain_events();
        model.reconcile(
            *netns, std::move(table->rows), std::uint64_t(table->read_at),
            [&](const KernelSocket &socket) { return table_socket_passes(filters, socket); });
    }
}

}  // namespace

double reconcile_with_tables(PortModel &model, NetnsConfigReader &netns_reader,
                             const Filters &filters, const std::function<void()> &drain_events) {
    std::int64_t started = clock_ns(CLOCK_MONOTONIC);
    read_tables_into(model, netns_reader, filters, drain_events);
    // A pass reads every socket and fd on the host, then frees it: without this glibc keeps
    // those pages (measured: ~350 B of RSS per tracked socket, scripts/bench-baseline.py).
    malloc_trim(0);
    return double(clock_ns(CLOCK_MONOTONIC) - started) / 1e6;
}

PortModel make_port_model(const MonitorOptions &options, NetnsConfigReader &netns_reader) {
    // Unreadable sysctls (no /proc/sys): the kernel's defaults, as NetnsPortConfig{} holds.
    NetnsPortConfig host_config = netns_reader.read_current().value_or(NetnsPortConfig{});
    ModelSettings settings;
    settings.warn_ratio = options.warn_ratio;
    settings.critical_ratio = options.critical_ratio;
    settings.process_idle_ns =
        std::max<std::uint64_t>(settings.process_idle_ns, 2 * options.report_interval.count());
    const Filters &filters = options.filters;
    settings.nat_clients_only = !filters.pids.empty() || !filters.uids.empty() ||
                                !filters.ports.empty() || filters.comm || !filters.cgroups.empty() ||
                                !filters.container_cgroups.empty() || filters.proto ||
                                filters.family;
    return PortModel(settings,
                     [&netns_reader, host_config](std::uint32_t netns, std::uint32_t pid_hint) {
                         // Documented above: an unreadable namespace has the host's settings.
                         return netns_reader.read(netns, pid_hint).value_or(host_config);
                     });
}

}  // namespace portwatch
