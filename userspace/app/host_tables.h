// SPDX-License-Identifier: Apache-2.0
// What the subcommands read from this host: the port model from the kernel's socket tables
// (`monitor`: the baseline and every reconciliation; `snapshot`: one pass, no tracing).
#pragma once

#include <ctime>
#include <functional>
#include <string>

#include "app/options.h"
#include "model/port_model.h"
#include "system/netns_config.h"

namespace portwatch {

// A model whose netns settings come from `netns_reader`; a namespace that cannot be read
// (gone, or no handle on it) is assumed to have the host's settings.
PortModel make_port_model(const MonitorOptions &options, NetnsConfigReader &netns_reader);

// Brings the model in line with the socket tables of every namespace it knows or can find
// (only --netns's, if given). `drain_events`, if given, applies the events the ring buffer
// holds by then: it is called while /proc and each table are read (every few thousand
// descriptors and rows), before each table's dump and once every table has been read.
// Returns the wall time it took, in ms.
double reconcile_with_tables(PortModel &model, NetnsConfigReader &netns_reader,
                             const Filters &filters,
                             const std::function<void()> &drain_events = {});

}  // namespace portwatch
