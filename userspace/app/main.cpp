// SPDX-License-Identifier: Apache-2.0
// portwatch: parse the command line, run the subcommand, turn every failure
// into one line on stderr and a non-zero exit.
#include <cstdio>
#include <exception>

#include "app/check.h"
#include "app/container_filter.h"
#include "app/monitor.h"
#include "app/snapshot.h"
#include "app/top.h"
#include "capture/capture.h"
#include "app/options.h"
#include "system/metrics_server.h"

int main(int argc, char **argv) {
    using namespace portwatch;
    CommandLine command = parse_command_line(argc, argv);
    if (command.action == CommandLine::Action::exit) {
        std::fputs(command.output.c_str(), command.exit_code == 0 ? stdout : stderr);
        return command.exit_code;
    }
    if (int failed = resolve_containers(command.monitor.filters)) return failed;
    try {
        if (command.action == CommandLine::Action::snapshot) return run_snapshot(command.monitor);
        if (command.action == CommandLine::Action::check) return run_check(command.monitor);
        if (command.action == CommandLine::Action::top) return run_top(command.monitor);
        return run_monitor(command.monitor);
    } catch (const CaptureError &error) {
        std::fprintf(stderr, "portwatch: %s\n", error.what());
    } catch (const MetricsServerError &error) {
        std::fprintf(stderr, "portwatch: %s\n", error.what());
    } catch (const std::exception &error) {
        std::fprintf(stderr, "portwatch: unexpected error: %s\n", error.what());
    }
    return 1;
}
