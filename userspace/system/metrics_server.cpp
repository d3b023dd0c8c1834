// SPDX-License-Identifier: Apache-2.0
#include "system/metrics_server.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <list>
#include <utility>

#include "base/unique_fd.h"

namespace portwatch {
namespace {

constexpr const char *kExpositionType = "text/plain; version=0.0.4; charset=utf-8";
constexpr std::size_t kConnectionMemory = 16 * 1024;      // request line and headers, no more
constexpr std::int64_t kBusyForAtMostNs = 2'000'000'000;  // a response to a reader that stalls

std::int64_t monotonic_ns() {
    timespec now{};
    clock_gettime(CLOCK_MONOTONIC, &now);
    return std::int64_t(now.tv_sec) * 1'000'000'000 + now.tv_nsec;
}

// The serving thread must not take the signals the monitor loop waits for.
class SignalsBlocked {
  public:
    SignalsBlocked() {
        sigset_t stop;
        sigemptyset(&stop);
        for (int signal : {SIGINT, SIGTERM, SIGHUP}) sigaddset(&stop, signal);
        pthread_sigmask(SIG_BLOCK, &stop, &saved_);
    }
    ~SignalsBlocked() { pthread_sigmask(SIG_SETMASK, &saved_, nullptr); }

  private:
    sigset_t saved_;
};

// A listening TCP socket on `address`; its port when 0 was asked. Our own, not
// libmicrohttpd's, for an error that names the address and says why.
int listen_on(ListenAddress &address) {
    sockaddr_storage storage{};
    socklen_t length = 0;
    auto *v4 = reinterpret_cast<sockaddr_in *>(&storage);
    auto *v6 = reinterpret_cast<sockaddr_in6 *>(&storage);
    if (inet_pton(AF_INET, address.host.c_str(), &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons(address.port);
        length = sizeof(*v4);
    } else if (inet_pton(AF_INET6, address.host.c_str(), &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons(address.port);
        length = sizeof(*v6);
    } else {
        throw MetricsServerError("--metrics-listen " + address.text() + ": not a numeric address");
    }
    auto fail = [&] {
        return MetricsServerError("cannot listen on " + address.text() +
                                  " for --metrics-listen: " + std::strerror(errno));
    };
    UniqueFd fd(socket(storage.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (fd.get() < 0) throw fail();
    int on = 1;
    setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));  // a restart after a crash
    if (storage.ss_family == AF_INET6)
        setsockopt(fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof(on));
    if (bind(fd.get(), reinterpret_cast<sockaddr *>(&storage), length) != 0) throw fail();
    if (listen(fd.get(), SOMAXCONN) != 0) throw fail();
    if (getsockname(fd.get(), reinterpret_cast<sockaddr *>(&storage), &length) != 0) throw fail();
    address.port = ntohs(storage.ss_family == AF_INET ? v4->sin_port : v6->sin6_port);
    return fd.release();
}

}  // namespace

// Every open connection, least recently active first. Only the serving thread touches it
// (libmicrohttpd calls every callback there), so it needs no lock. libmicrohttpd's own
// timeout restarts on every byte, so a client sending one byte every few seconds would
// stay forever; and it refuses new connections at its limit, which would shut out the
// probe. So each new connection first closes, oldest first, the idle ones above
// `connections_kept` and every one that has not begun or ended a request for longer than the
// timeout.
class MetricsServer::Connections {
  public:
    explicit Connections(const ServerLimits &limits) : limits_(limits) {}

    void opened(MHD_Connection *connection, void **context) {
        const MHD_ConnectionInfo *info =
            MHD_get_connection_info(connection, MHD_CONNECTION_INFO_CONNECTION_FD);
        std::int64_t now = monotonic_ns();
        auto &open =
            by_activity_.emplace_back(Open{info ? info->connect_fd : -1, now, false, false, {}});
        open.self = std::prev(by_activity_.end());
        *context = &open;
        close_surplus(now);
    }

    void closed(void *context) {
        auto *open = static_cast<Open *>(context);
        if (open->closing) --closing_;
        by_activity_.erase(open->self);
    }

    void request_started(MHD_Connection *connection) { touch(connection, true); }
    void request_ended(MHD_Connection *connection) { touch(connection, false); }

  private:
    struct Open {
        int fd;
        std::int64_t active_ns;  // connected, or a request began or ended
        bool busy = false;       // a request is being answered
        bool closing = false;    // shut down; libmicrohttpd closes it on its next turn
        std::list<Open>::iterator self;
    };

    void touch(MHD_Connection *connection, bool busy) {
        const MHD_ConnectionInfo *info =
            MHD_get_connection_info(connection, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
        if (!info || !info->socket_context) return;
        auto *open = static_cast<Open *>(info->socket_context);
        open->busy = busy;
        open->active_ns = monotonic_ns();
        by_activity_.splice(by_activity_.end(), by_activity_, open->self);
    }

    void close_surplus(std::int64_t now) {
        std::int64_t silent_since = now - std::int64_t(limits_.timeout_s) * 1'000'000'000;
        for (Open &open : by_activity_) {
            bool surplus = by_activity_.size() - closing_ > limits_.connections_kept;
            if (!surplus && open.active_ns >= silent_since) break;
            bool answering = open.busy && open.active_ns > now - kBusyForAtMostNs;
            if (open.closing || answering || open.fd < 0) continue;
            // Not close(): the fd stays libmicrohttpd's, which sees the end of the stream.
            shutdown(open.fd, SHUT_RDWR);
            open.closing = true;
            ++closing_;
        }
    }

    const ServerLimits &limits_;
    std::list<Open> by_activity_;
    std::size_t closing_ = 0;
};

namespace {

MHD_Result reply(MHD_Connection *connection, unsigned status, const std::string &body,
                 const char *type = "text/plain; charset=utf-8") {
    MHD_Response *response = MHD_create_response_from_buffer(
        body.size(), const_cast<char *>(body.data()), MHD_RESPMEM_MUST_COPY);
    if (!response) return MHD_NO;
    MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
        MHD_add_response_header(response, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
    MHD_Result queued = MHD_queue_response(connection, status, response);
    MHD_destroy_response(response);
    return queued;
}

bool has_body(MHD_Connection *connection) {
    const char *length =
        MHD_lookup_connection_value(connection, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    return (length && std::strcmp(length, "0") != 0) ||
           MHD_lookup_connection_value(connection, MHD_HEADER_KIND,
                                       MHD_HTTP_HEADER_TRANSFER_ENCODING);
}

std::string health_body(const MetricsServer &server, bool &healthy) {
    healthy = false;
    MetricsServer::Published published = server.latest();
    if (published.at_ns == 0) return "starting\n";
    std::int64_t age_ns = monotonic_ns() - published.at_ns;
    std::string body;
    for (const std::string &problem : server.live_problems()) body += problem + "\n";
    if (age_ns >= server.limits().stale_after_ns)
        body += "stale: the monitor loop has not read the ring buffer for " +
                std::to_string(age_ns / 1'000'000'000) + " s (is its output blocked?)\n";
    for (const std::string &problem : published.problems) body += problem + "\n";
    healthy = body.empty();
    return healthy ? "ok\n" : body;
}

// Every request is answered on its first call, from its headers alone: a body is never
// read, so no client can make the agent buffer one.
MHD_Result on_request(void *server_ptr, MHD_Connection *connection, const char *url,
                      const char *method, const char *, const char *, std::size_t *, void **) {
    auto &server = *static_cast<MetricsServer *>(server_ptr);
    if (std::strcmp(method, MHD_HTTP_METHOD_GET) != 0 &&
        std::strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
        return reply(connection, MHD_HTTP_METHOD_NOT_ALLOWED, "only GET and HEAD\n");
    if (has_body(connection))
        return reply(connection, MHD_HTTP_CONTENT_TOO_LARGE, "no request body is accepted\n");
    if (std::strcmp(url, "/metrics") == 0) {
        MetricsServer::Published latest = server.latest();
        if (latest.at_ns == 0)
            return reply(connection, MHD_HTTP_SERVICE_UNAVAILABLE, "portwatch is starting\n");
        return reply(connection, MHD_HTTP_OK, latest.exposition, kExpositionType);
    }
    if (std::strcmp(url, "/healthz") == 0) {
        bool healthy = false;
        std::string body = health_body(server, healthy);
        return reply(connection, healthy ? MHD_HTTP_OK : MHD_HTTP_SERVICE_UNAVAILABLE, body);
    }
    return reply(connection, MHD_HTTP_NOT_FOUND, "portwatch serves /metrics and /healthz\n");
}

}  // namespace

struct MetricsServer::Daemon {
    MHD_Daemon *mhd = nullptr;
    ~Daemon() {
        if (mhd) MHD_stop_daemon(mhd);  // joins the thread, closes every socket
    }
};

MetricsServer::MetricsServer(const ListenAddress &address, LiveCheck live_check,
                             ServerLimits limits)
    : bound_(address),
      limits_(limits),
      live_check_(std::move(live_check)),
      connections_(std::make_unique<Connections>(limits_)),
      daemon_(std::make_unique<Daemon>()) {
    UniqueFd listener(listen_on(bound_));
    auto on_connection = [](void *connections, MHD_Connection *connection, void **context,
                            MHD_ConnectionNotificationCode code) {
        auto &open = *static_cast<Connections *>(connections);
        if (code == MHD_CONNECTION_NOTIFY_STARTED) open.opened(connection, context);
        if (code == MHD_CONNECTION_NOTIFY_CLOSED && *context) open.closed(*context);
    };
    auto on_completed = [](void *connections, MHD_Connection *connection, void **,
                           MHD_RequestTerminationCode) {
        static_cast<Connections *>(connections)->request_ended(connection);
    };
    auto on_request_started = [](void *connections, const char *, MHD_Connection *connection) {
        static_cast<Connections *>(connections)->request_started(connection);
        return static_cast<void *>(nullptr);
    };
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL;
    if (address.host.find(':') != std::string::npos) flags |= MHD_USE_IPv6;
    SignalsBlocked blocked;
    daemon_->mhd = MHD_start_daemon(
        flags, 0, nullptr, nullptr, &on_request, this, MHD_OPTION_LISTEN_SOCKET, listener.get(),
        MHD_OPTION_CONNECTION_TIMEOUT, limits_.timeout_s, MHD_OPTION_CONNECTION_LIMIT,
        limits_.connections_max, MHD_OPTION_CONNECTION_MEMORY_LIMIT, kConnectionMemory,
        MHD_OPTION_NOTIFY_CONNECTION, +on_connection, connections_.get(),
        MHD_OPTION_NOTIFY_COMPLETED, +on_completed, connections_.get(), MHD_OPTION_URI_LOG_CALLBACK,
        +on_request_started, connections_.get(), MHD_OPTION_END);
    if (!daemon_->mhd)
        throw MetricsServerError("cannot serve on " + bound_.text() +
                                 " for --metrics-listen: libmicrohttpd did not start (" +
                                 std::strerror(errno) + ")");
    listener.release();  // libmicrohttpd's now
}

MetricsServer::~MetricsServer() = default;

void MetricsServer::publish(std::string exposition, std::vector<std::string> problems) {
    std::lock_guard lock(mutex_);
    published_.exposition = std::move(exposition);
    published_.problems = std::move(problems);
    published_.at_ns = monotonic_ns();
}

MetricsServer::Published MetricsServer::latest() const {
    std::lock_guard lock(mutex_);
    return published_;
}

}  // namespace portwatch
