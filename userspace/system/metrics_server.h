// The Prometheus endpoint: /metrics serves the exposition the monitor loop last
// published, /healthz says whether that loop is still publishing. cpp-httplib runs
// it on its own threads; they only ever read the latest published text.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>

#include "core/options.h"

namespace httplib {
class Server;
}

namespace portwatch {

class MetricsServerError : public std::runtime_error {
  public:
    using std::runtime_error::runtime_error;
};

class MetricsServer {
  public:
    // Binds at once (throws MetricsServerError when it cannot) and serves in the background.
    explicit MetricsServer(const ListenAddress &address);
    ~MetricsServer();
    MetricsServer(const MetricsServer &) = delete;
    MetricsServer &operator=(const MetricsServer &) = delete;

    ListenAddress bound() const { return bound_; }
    void publish(std::string exposition);

  private:
    struct Published {
        std::string exposition;
        std::int64_t at_ns = 0;  // CLOCK_MONOTONIC; 0 before the first publish
    };
    Published latest() const;
    void route();

    ListenAddress bound_;
    std::unique_ptr<httplib::Server> server_;
    std::thread thread_;
    std::atomic<bool> serving_ended_{false};
    mutable std::mutex mutex_;
    Published published_;
};

}  // namespace portwatch
