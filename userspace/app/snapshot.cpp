// SPDX-License-Identifier: Apache-2.0
#include "app/snapshot.h"

#include <cstdio>

#include "app/host_tables.h"
#include "app/nat_watch.h"
#include "output/report_bound.h"
#include "output/reporter.h"
#include "system/privileges.h"
#include "system/host_info.h"

namespace portwatch {

int run_snapshot(const MonitorOptions &options) {
    print_reach_limits(current_reach());
    NetnsConfigReader netns_reader;
    PortModel model = make_port_model(options, netns_reader);
    reconcile_with_tables(model, netns_reader, options.filters);
    NatWatch(model, netns_reader, options.filters.netns).pass(clock_ns(CLOCK_BOOTTIME));
    TimeBase time{clock_ns(CLOCK_REALTIME) - clock_ns(CLOCK_BOOTTIME)};
    auto reporter = make_reporter(options.format, stdout, time);
    Report report = model.report(clock_ns(CLOCK_BOOTTIME));
    bound_report(report, options.report_top);
    for (const Warning &warning : model.take_warnings()) reporter->warning(warning);
    reporter->report(report);
    reporter->flush();
    return std::ferror(stdout) ? 1 : 0;
}

}  // namespace portwatch
