#include "monitor.h"

#include <sys/utsname.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <ctime>

#include "capture/capture.h"
#include "core/reporter.h"
#include "core/version.h"

namespace portwatch {
namespace {

volatile std::sig_atomic_t g_stop_signal = 0;

void on_stop_signal(int signal) {
    g_stop_signal = signal;
}

// No SA_RESTART: the signal must interrupt epoll_wait so the loop sees it.
void install_stop_handlers() {
    struct sigaction action {};
    action.sa_handler = on_stop_signal;
    sigemptyset(&action.sa_mask);
    sigaction(SIGINT, &action, nullptr);
    sigaction(SIGTERM, &action, nullptr);
    std::signal(SIGPIPE, SIG_IGN);  // a closed stdout shows as a write error instead
}

std::int64_t clock_ns(clockid_t clock) {
    timespec ts{};
    clock_gettime(clock, &ts);
    return std::int64_t(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

std::string kernel_release() {
    utsname names{};
    return uname(&names) == 0 ? names.release : "unknown";
}

class MonitorLoop {
  public:
    MonitorLoop(const MonitorOptions &options, Capture &capture, Reporter &reporter)
        : options_(options),
          capture_(capture),
          reporter_(reporter),
          started_ns_(clock_ns(CLOCK_MONOTONIC)),
          next_stats_ns_(started_ns_ + interval_ns()) {}

    int run() {
        auto deliver = [this](const Event &event) { reporter_.event(event); };
        while (!g_stop_signal && !duration_over()) {
            capture_.poll(kPollMs, deliver);
            reporter_.flush();
            if (std::ferror(stdout)) {
                std::fprintf(stderr, "portwatch: cannot write to standard output; stopping\n");
                return 1;
            }
            maybe_report_stats();
        }
        capture_.poll(0, deliver);  // whatever is still in the ring buffer
        reporter_.stats(snapshot(true));
        reporter_.flush();
        return 0;
    }

  private:
    static constexpr int kPollMs = 100;

    std::int64_t interval_ns() const {
        return options_.stats_interval_s > 0 ? std::int64_t(options_.stats_interval_s * 1e9) : 0;
    }

    bool duration_over() const {
        return options_.duration_s > 0 &&
               clock_ns(CLOCK_MONOTONIC) - started_ns_ >= std::int64_t(options_.duration_s * 1e9);
    }

    void maybe_report_stats() {
        if (interval_ns() == 0 || clock_ns(CLOCK_MONOTONIC) < next_stats_ns_) return;
        next_stats_ns_ += interval_ns();
        reporter_.stats(snapshot(false));
        reporter_.flush();
    }

    StatsSnapshot snapshot(bool final) const {
        StatsSnapshot stats;
        stats.realtime_ns = clock_ns(CLOCK_REALTIME);
        stats.uptime_s = (clock_ns(CLOCK_MONOTONIC) - started_ns_) / 1e9;
        stats.kernel = capture_.counters();
        stats.decoded = capture_.decoded();
        stats.decode_errors = capture_.decode_errors();
        stats.owners_forgotten = capture_.owners_forgotten();
        stats.final = final;
        return stats;
    }

    const MonitorOptions &options_;
    Capture &capture_;
    Reporter &reporter_;
    std::int64_t started_ns_;
    std::int64_t next_stats_ns_;
};

}  // namespace

int run_monitor(const MonitorOptions &options) {
    install_stop_handlers();
    CaptureConfig config{options.filters, options.ringbuf_mb, options.max_tracked_sockets};
    Capture capture(config);

    static char output_buffer[1 << 20];
    std::setvbuf(stdout, output_buffer, _IOFBF, sizeof(output_buffer));
    TimeBase time{clock_ns(CLOCK_REALTIME) - clock_ns(CLOCK_BOOTTIME)};
    auto reporter = make_reporter(options.format, stdout, time);

    ReadyInfo ready;
    ready.realtime_ns = clock_ns(CLOCK_REALTIME);
    ready.version = kPortwatchVersion;
    ready.kernel_release = kernel_release();
    ready.hooks = capture.hooks();
    ready.agent_pid = static_cast<std::uint32_t>(getpid());
    reporter->ready(ready);
    reporter->flush();

    return MonitorLoop(options, capture, *reporter).run();
}

}  // namespace portwatch
