// SPDX-License-Identifier: Apache-2.0
// The tracing loop `monitor` and `top` share: attach, take the baseline from the socket
// tables, then feed every event to the model and the reporter, reconcile and report every
// --report-interval, and refresh the live views once a second, until --duration, SIGINT,
// SIGTERM or a view asks to stop. Then a last poll, a final report and stats.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "app/fail_on.h"
#include "app/options.h"
#include "app/wall_clock.h"
#include "model/port_model.h"
#include "model/run_summary.h"
#include "output/reporter.h"
#include "agent/stats.h"

namespace portwatch {

class LineOutput;

// Something refreshed once a second from the live model: the metrics endpoint, top's screen.
class LiveView {
  public:
    virtual ~LiveView() = default;
    virtual void started(const ReadyInfo &) {}  // the programs are attached
    virtual void event(const Event &) {}
    virtual void warning(const Warning &) {}
    virtual void refresh(const Report &current, const StatsSnapshot &stats) = 0;
    // Asked every loop turn (100 ms): true ends the run as SIGINT does.
    virtual bool wants_stop() { return false; }
};

// CLOCK_REALTIME and CLOCK_BOOTTIME, read now.
ClockReading system_clocks();

// The command of `monitor -- CMD`: started once `ready` is written, it ends the run when it
// exits; the stop signals sent to portwatch go to it instead.
struct RunCommand {
    std::function<void()> start;
    std::function<bool()> exited;  // asked every loop turn (100 ms)
    std::function<void(int)> forward;
};

struct LiveRun {
    MonitorOptions options;
    Reporter *reporter = nullptr;
    std::vector<LiveView *> views;
    std::string metrics_address;         // for the ready line
    const LineOutput *output = nullptr;  // where the reporter writes; none for top
    Clocks clocks = system_clocks;
    std::optional<RunCommand> command;
    RunFacts *facts = nullptr;             // if given, what --fail-on asks about is added up there
    RunSummaryBuilder *summary = nullptr;  // if given, fed every event
    std::function<void()> before_final_stats;  // written after the final report
};

// SIGINT and SIGTERM stop run_live() (after a final report); SIGHUP reopens --output, or
// stops it too without one. Called first thing, so that no signal finds the default action.
void install_signal_handlers(bool output_file);

// With a command (`monitor -- CMD`), those signals are the command's: run_live() forwards
// them, except the ones the terminal sent (CMD, in our process group, had them already).
// Whether SIGINT or SIGTERM (or SIGHUP without --output) asked the run to stop.
bool stop_requested();

// Returns the process exit code. Throws CaptureError.
int run_live(const LiveRun &run);

}  // namespace portwatch
