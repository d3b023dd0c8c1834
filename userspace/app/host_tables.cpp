// SPDX-License-Identifier: Apache-2.0
#include "app/host_tables.h"

#include <malloc.h>

#include <algorithm>
#include <ctime>
#include <set>
#include <string>
#include <vector>

#include "system/host_info.h"
#include "system/socket_tables.h"

namespace portwatch {
namespace {

bool table_socket_passes(const Filters &filters, const KernelSocket &socket) {
    if (filters.proto && socket.sock.proto != *filters.proto) return false;
    if (filters.family && socket.sock.family != *filters.family) return false;
    if (!filters.pid && !filters.comm) return true;
    if (!socket.owner) return false;
    if (filters.pid && socket.owner->pid != *filters.pid) return false;
    return !filters.comm || socket.owner->comm == *filters.comm;
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
    Result<SocketOwners> read_owners = socket_owners();
    SocketOwners owners = std::move(read_owners).value_or(SocketOwners{});
    struct Table {
        std::uint32_t netns;
        std::vector<KernelSocket> sockets;
        std::int64_t read_at;
    };
    std::vector<Table> tables;
    for (std::uint32_t netns : namespaces) {
        Result<int> fd = netns_reader.handle(netns);
        if (!fd) continue;  // gone since: its sockets went with it
        // Only the rows the model needs: a busy server's accepted sockets are most of them.
        // The filter asks the model what it holds: what the queued events say, first.
        if (drain_events) drain_events();
        TableRowFilter needed(model);
        std::int64_t read_at = clock_ns(CLOCK_BOOTTIME);
        // A table that cannot be read (no privilege to enter the namespace) is left out: the
        // model keeps what the events say of that namespace (`check` names the reason).
        Result<std::vector<KernelSocket>> table = dump_sockets(
            *fd, netns, [&needed](const KernelSocket &socket) { return needed.keep(socket); });
        if (!table) continue;
        tables.push_back({netns, with_owners(std::move(table).value(), owners), read_at});
    }
    // A socket made after /proc was read is in a table with no owner: its event, queued
    // meanwhile, names it, and must reach the model before the tables are compared.
    if (drain_events) drain_events();
    for (const Table &table : tables)
        model.reconcile(
            table.netns, table.sockets, std::uint64_t(table.read_at),
            [&](const KernelSocket &socket) { return table_socket_passes(filters, socket); });
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
    return PortModel(settings,
                     [&netns_reader, host_config](std::uint32_t netns, std::uint32_t pid_hint) {
                         // Documented above: an unreadable namespace has the host's settings.
                         return netns_reader.read(netns, pid_hint).value_or(host_config);
                     });
}

}  // namespace portwatch
