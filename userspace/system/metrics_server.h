// SPDX-License-Identifier: Apache-2.0
// The Prometheus endpoint: /metrics serves the exposition the monitor loop last
// published, /healthz says whether the agent is doing its job. libmicrohttpd serves both
// from one event-driven thread that only ever reads the latest publication, so no client
// can hold a worker: idle and slow connections are closed, oldest first, when more
// arrive, and no request body is read.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

#include "system/listen_address.h"

namespace portwatch {

class MetricsServerError : public std::runtime_error {
  public:
    using std::runtime_error::runtime_error;
};

struct ServerLimits {
    unsigned timeout_s = 10;            // a connection silent this long is closed
    std::size_t connections_kept = 64;  // above this, the least recently active idle one goes
    unsigned connections_max = 1024;    // accepted at once; the unit's LimitNOFILE is above it
    std::int64_t stale_after_ns = 10'000'000'000;  // the loop publishes every second
};

class MetricsServer {
  public:
    // Reasons to be unhealthy that the loop, being stuck, cannot publish (its output blocked):
    // asked on each /healthz, from the serving thread.
    using LiveCheck = std::function<std::vector<std::string>()>;

    // Listens at once (throws MetricsServerError when it cannot) and serves in the background.
    explicit MetricsServer(const ListenAddress &address, LiveCheck live_check = {},
                           ServerLimits limits = {});
    ~MetricsServer();
    MetricsServer(const MetricsServer &) = delete;
    MetricsServer &operator=(const MetricsServer &) = delete;

    ListenAddress bound() const { return bound_; }
    // `problems`: the agent's own reasons to be unhealthy now, one sentence each.
    void publish(std::string exposition, std::vector<std::string> problems);

    // What the serving thread reads; public for its callbacks.
    struct Published {
        std::string exposition;
        std::vector<std::string> problems;
        std::int64_t at_ns = 0;  // CLOCK_MONOTONIC; 0 before the first publish
    };
    Published latest() const;
    const ServerLimits &limits() const { return limits_; }
    std::vector<std::string> live_problems() const {
        return live_check_ ? live_check_() : std::vector<std::string>{};
    }

    class Connections;  // the open connections, by last activity

  private:
    ListenAddress bound_;
    ServerLimits limits_;
    LiveCheck live_check_;
    mutable std::mutex mutex_;
    Published published_;
    std::unique_ptr<Connections> connections_;
    struct Daemon;
    std::unique_ptr<Daemon> daemon_;  // last: it stops serving before the rest goes
};

}  // namespace portwatch
