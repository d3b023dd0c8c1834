#include "text_format.h"

#include <cstdio>

#include "names.h"

namespace portwatch {
namespace {

constexpr const char *kRowFormat =
    "%-15s %-15s %-16s %-8s %-5s %-7s %-7s %-16s %-10s %-26s %-26s %s\n";

std::string row(const std::string &time, std::string_view event, std::string_view how,
                std::string_view syscall, const SocketInfo &sock, const TaskInfo *task,
                const std::string &detail) {
    std::string proto =
        std::string(name_of(sock.proto)) + (sock.family == Family::ipv4 ? "4" : "6");
    std::string remote = sock.has_remote() ? endpoint(sock.remote_addr, sock.remote_port) : "-";
    char buffer[512];
    std::snprintf(buffer, sizeof(buffer), kRowFormat, time.c_str(), std::string(event).c_str(),
                  std::string(how).c_str(), std::string(syscall).c_str(), proto.c_str(),
                  task ? std::to_string(task->pid).c_str() : "-",
                  task ? std::to_string(task->tid).c_str() : "-",
                  task ? printable(task->comm).c_str() : "-", std::to_string(sock.netns).c_str(),
                  endpoint(sock.local_addr, sock.local_port).c_str(), remote.c_str(),
                  detail.c_str());
    return buffer;
}

std::string clock_time(std::int64_t realtime_ns) {
    return rfc3339_utc(realtime_ns).substr(11, 15);  // HH:MM:SS.uuuuuu
}

std::string allocate_line(const AllocateEvent &event, const TimeBase &time) {
    std::string detail =
        event.failed() ? errno_name(event.error) : (event.ephemeral ? "ephemeral" : "");
    return row(clock_time(time.realtime(event.boot_ns)), event.failed() ? "FAILED" : "allocate",
               name_of(event.how), name_of(event.syscall), event.sock, &event.task, detail);
}

std::string release_line(const ReleaseEvent &event, const TimeBase &time) {
    std::string reason(name_of(event.reason));
    char held[64];
    if (event.owner_known)
        std::snprintf(held, sizeof(held), "held %.3fms %s", event.held_ns / 1e6, reason.c_str());
    else
        std::snprintf(held, sizeof(held), "owner unknown %s", reason.c_str());
    return row(clock_time(time.realtime(event.boot_ns)), "release",
               event.owner_known ? name_of(event.how) : "-", "-", event.sock,
               event.owner_known ? &event.owner : nullptr, held);
}

}  // namespace

std::string text_header() {
    char buffer[256];
    std::snprintf(buffer, sizeof(buffer), kRowFormat, "TIME", "EVENT", "HOW", "SYSCALL", "PROTO",
                  "PID", "TID", "COMM", "NETNS", "LOCAL", "REMOTE", "DETAIL");
    return buffer;
}

std::string text_line(const Event &event, const TimeBase &time) {
    if (const auto *allocate = std::get_if<AllocateEvent>(&event))
        return allocate_line(*allocate, time);
    return release_line(std::get<ReleaseEvent>(event), time);
}

std::string text_line(const ReadyInfo &ready) {
    std::string hooks;
    for (const auto &hook : ready.hooks) hooks += (hooks.empty() ? "" : ", ") + hook;
    return "# portwatch " + ready.version + " ready (kernel " + ready.kernel_release +
           "); hooks: " + hooks + "\n";
}

std::string text_line(const StatsSnapshot &stats) {
    auto total = [](const CounterTotals::Matrix &m, std::size_t type) {
        std::uint64_t n = 0;
        for (auto v : m[type]) n += v;
        return n;
    };
    char buffer[512];
    std::snprintf(buffer, sizeof(buffer),
                  "# stats%s: allocate %llu, failed %llu, release %llu; lost %llu; untracked %llu; "
                  "decode errors %llu\n",
                  stats.final ? " (final)" : "",
                  (unsigned long long)total(stats.kernel.emitted, PW_RECORD_ALLOCATE),
                  (unsigned long long)total(stats.kernel.emitted, PW_RECORD_ALLOCATE_FAILED),
                  (unsigned long long)total(stats.kernel.emitted, PW_RECORD_RELEASE),
                  (unsigned long long)stats.kernel.lost_total(),
                  (unsigned long long)stats.kernel.untracked,
                  (unsigned long long)stats.decode_errors);
    return buffer;
}

}  // namespace portwatch
