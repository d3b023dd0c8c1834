#include "metrics_server.h"

#include <signal.h>
#include <time.h>

#include <cerrno>
#include <chrono>
#include <cstring>

#include <httplib.h>

namespace portwatch {
namespace {

constexpr int kServerThreads = 2;  // a scrape every few seconds; httplib's default is 8+
constexpr std::int64_t kStaleAfterNs = 10'000'000'000;  // the loop publishes every second
constexpr const char *kExpositionType = "text/plain; version=0.0.4; charset=utf-8";

std::int64_t monotonic_ns() {
    timespec now{};
    clock_gettime(CLOCK_MONOTONIC, &now);
    return std::int64_t(now.tv_sec) * 1'000'000'000 + now.tv_nsec;
}

// The server threads must not take SIGINT/SIGTERM: the monitor loop waits for them.
class SignalsBlocked {
  public:
    SignalsBlocked() {
        sigset_t stop;
        sigemptyset(&stop);
        sigaddset(&stop, SIGINT);
        sigaddset(&stop, SIGTERM);
        pthread_sigmask(SIG_BLOCK, &stop, &saved_);
    }
    ~SignalsBlocked() { pthread_sigmask(SIG_SETMASK, &saved_, nullptr); }

  private:
    sigset_t saved_;
};

}  // namespace

MetricsServer::MetricsServer(const ListenAddress &address)
    : bound_(address), server_(std::make_unique<httplib::Server>()) {
    server_->new_task_queue = [] { return new httplib::ThreadPool(kServerThreads); };
    route();
    if (address.port == 0) {
        int port = server_->bind_to_any_port(address.host);
        if (port > 0) bound_.port = static_cast<std::uint16_t>(port);
    } else if (server_->bind_to_port(address.host, address.port)) {
        bound_.port = address.port;
    } else {
        bound_.port = 0;
    }
    if (bound_.port == 0)
        throw MetricsServerError("cannot listen on " + address.text() +
                                 " for --metrics-listen: " + std::strerror(errno));
    {
        SignalsBlocked blocked;
        thread_ = std::thread([this] {
            server_->listen_after_bind();
            serving_ended_ = true;
        });
    }
    // httplib's stop() does nothing before the accept loop runs: a destructor that came
    // first (the programs failed to load) would wait for that thread forever.
    while (!server_->is_running() && !serving_ended_)
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    if (serving_ended_) {
        thread_.join();
        throw MetricsServerError("cannot serve on " + bound_.text() + " for --metrics-listen");
    }
}

MetricsServer::~MetricsServer() {
    server_->stop();
    if (thread_.joinable()) thread_.join();
}

void MetricsServer::publish(std::string exposition) {
    std::lock_guard lock(mutex_);
    published_.exposition = std::move(exposition);
    published_.at_ns = monotonic_ns();
}

MetricsServer::Published MetricsServer::latest() const {
    std::lock_guard lock(mutex_);
    return published_;
}

void MetricsServer::route() {
    server_->Get("/metrics", [this](const httplib::Request &, httplib::Response &response) {
        Published latest = this->latest();
        if (latest.at_ns == 0) {
            response.status = 503;
            response.set_content("portwatch is starting\n", "text/plain");
            return;
        }
        response.set_content(std::move(latest.exposition), kExpositionType);
    });
    server_->Get("/healthz", [this](const httplib::Request &, httplib::Response &response) {
        std::int64_t at_ns = this->latest().at_ns;
        std::int64_t age_ns = monotonic_ns() - at_ns;
        bool healthy = at_ns != 0 && age_ns < kStaleAfterNs;
        response.status = healthy ? 200 : 503;
        response.set_content(healthy      ? "ok\n"
                             : at_ns == 0 ? "starting\n"
                                          : "stale: the monitor loop has not published for " +
                                                std::to_string(age_ns / 1'000'000'000) + " s\n",
                             "text/plain");
    });
}

}  // namespace portwatch
