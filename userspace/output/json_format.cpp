#include "output/json_format.h"

#include <cmath>

#include "enrich/containers.h"
#include "output/names.h"

namespace portwatch {
namespace {

// value to `digits` decimals, so that JSON shows 0.7, not 0.7000000000000001
double rounded(double value, int digits) {
    double scale = std::pow(10.0, digits);
    return std::round(value * scale) / scale;
}

Json json_address(const IpAddress &addr) {
    return to_string(addr);
}

// `key` as valid UTF-8, and `<key>_hex` with the exact bytes when that changed anything.
void add_raw_text(Json &out, const std::string &key, const std::string &raw) {
    SafeText safe = utf8_or_escaped(raw);
    out[key] = safe.text;
    if (safe.altered) out[key + "_hex"] = hex_bytes(raw);
}

void add_comm(Json &out, const std::string &raw) {
    add_raw_text(out, "comm", raw);
}

// pid 0: a socket the tables showed whose owner no /proc fd table named (as a release's
// unknown owner, null).
void add_owner(Json &out, std::uint32_t pid, const std::string &comm) {
    if (pid == 0) {
        out["pid"] = nullptr;
        out["comm"] = nullptr;
        return;
    }
    out["pid"] = pid;
    add_comm(out, comm);
}

// The cgroup path (null when unknown) and the container it shows (null when none).
void add_cgroup(Json &out, const CgroupPath &path) {
    if (path.empty())
        out["cgroup"] = nullptr;
    else
        add_raw_text(out, "cgroup", path);
    const std::optional<Container> &container = path.container();
    out["container_id"] = container ? Json(container->id) : Json(nullptr);
    out["container_runtime"] = container ? Json(container->runtime) : Json(nullptr);
}

void add_task(Json &out, const TaskInfo &task, bool with_tid) {
    out["pid"] = task.pid;
    if (with_tid) out["tid"] = task.tid;
    add_comm(out, task.comm);
    out["uid"] = task.uid;
    out["cgroup_id"] = task.cgroup_id;
    add_cgroup(out, task.cgroup_path);
}

void add_socket(Json &out, const SocketInfo &sock) {
    out["proto"] = name_of(sock.proto);
    out["family"] = name_of(sock.family);
    out["netns"] = sock.netns;
    out["local_addr"] = json_address(sock.local_addr);
    out["local_port"] = sock.local_port;
    out["remote_addr"] = sock.has_remote() ? json_address(sock.remote_addr) : Json(nullptr);
    out["remote_port"] = sock.has_remote() ? Json(sock.remote_port) : Json(nullptr);
    out["sock_cookie"] = sock.cookie;
}

Json header(std::string_view type, std::int64_t realtime_ns) {
    Json out;
    out["type"] = type;
    out["ts"] = rfc3339_utc(realtime_ns);
    return out;
}

Json allocate_json(const AllocateEvent &event, const TimeBase &time) {
    Json out =
        header(event.failed() ? "allocate_failed" : "allocate", time.realtime(event.boot_ns));
    out["how"] = name_of(event.how);
    out["syscall"] = name_of(event.syscall);
    add_socket(out, event.sock);
    add_task(out, event.task, true);
    out["ephemeral"] = event.ephemeral;
    if (event.failed()) {
        out["errno"] = event.error;
        out["error"] = errno_name(event.error);
    }
    return out;
}

Json release_json(const ReleaseEvent &event, const TimeBase &time) {
    Json out = header("release", time.realtime(event.boot_ns));
    out["how"] = event.owner_known ? Json(name_of(event.how)) : Json(nullptr);
    add_socket(out, event.sock);
    if (event.owner_known) {
        add_task(out, event.owner, false);
        out["held_ms"] = static_cast<double>(event.held_ns / 1000) / 1000.0;
    } else {
        for (const char *key : {"pid", "comm", "uid", "cgroup_id", "cgroup", "container_id",
                                "container_runtime", "held_ms"})
            out[key] = nullptr;
    }
    out["reason"] = name_of(event.reason);
    out["time_wait"] = event.time_wait();
    return out;
}

Json per_how(const CounterTotals::Matrix &matrix, std::size_t type) {
    Json out = Json::object();
    for (std::size_t how = PW_HOW_BIND; how < PW_HOW_COUNT; how++)
        out[std::string(name_of(static_cast<How>(how - PW_HOW_BIND)))] = matrix[type][how];
    return out;
}

std::uint64_t row_total(const CounterTotals::Matrix &matrix, std::size_t type) {
    std::uint64_t total = 0;
    for (std::uint64_t n : matrix[type]) total += n;
    return total;
}

}  // namespace

Json to_json(const Event &event, const TimeBase &time) {
    if (const auto *allocate = std::get_if<AllocateEvent>(&event))
        return allocate_json(*allocate, time);
    return release_json(std::get<ReleaseEvent>(event), time);
}

Json to_json(const ReadyInfo &ready) {
    Json out = header("ready", ready.realtime_ns);
    out["version"] = ready.version;
    out["kernel"] = ready.kernel_release;
    out["abi_version"] = PW_ABI_VERSION;
    out["pid"] = ready.agent_pid;
    out["hooks"] = ready.hooks;
    out["hook_set"] = ready.hook_set;
    out["hook_set_reason"] = ready.hook_set_reason;
    out["events"] = ready.events;
    out["metrics"] = ready.metrics_address.empty() ? Json(nullptr) : Json(ready.metrics_address);
    out["reach"] = {{"every_netns", ready.reach.every_netns},
                    {"every_owner", ready.reach.every_owner},
                    {"every_cgroup", ready.reach.every_cgroup}};
    return out;
}

Json to_json(const StatsSnapshot &stats) {
    static constexpr std::pair<const char *, std::size_t> kinds[] = {
        {"allocate", PW_RECORD_ALLOCATE},
        {"allocate_failed", PW_RECORD_ALLOCATE_FAILED},
        {"release", PW_RECORD_RELEASE},
    };
    Json out = header("stats", stats.realtime_ns);
    out["final"] = stats.final;
    out["uptime_s"] = stats.uptime_s;
    Json events = Json::object();
    for (const auto &[name, type] : kinds) {
        events[name] = {{"seen", row_total(stats.kernel.emitted, type)},
                        {"lost", row_total(stats.kernel.lost, type)},
                        {"seen_by_how", per_how(stats.kernel.emitted, type)},
                        {"lost_by_how", per_how(stats.kernel.lost, type)}};
    }
    out["events"] = std::move(events);
    out["lost_total"] = stats.kernel.lost_total();
    if (!stats.counters_error.empty()) out["counters_error"] = stats.counters_error;
    out["untracked"] = stats.kernel.untracked;
    out["pending_overflow"] = stats.kernel.pending_overflow;
    out["decoded"] = stats.decoded;
    out["decode_errors"] = stats.decode_errors;
    out["owners_forgotten"] = stats.owners_forgotten;
    out["output_lines_lost"] = stats.output_lines_lost;
    out["tracked_sockets"] = stats.tracked_sockets;
    out["reconciliation"] = {{"runs", stats.reconcile.runs},
                             {"added", stats.reconcile.added},
                             {"removed", stats.reconcile.removed},
                             {"time_wait", stats.reconcile.time_wait},
                             {"baseline_ms", rounded(stats.reconcile.baseline_ms, 1)},
                             {"last_ms", rounded(stats.reconcile.last_ms, 1)}};
    return out;
}

namespace {

Json top_processes_json(const std::vector<TopProcess> &top) {
    Json out = Json::array();
    for (const auto &process : top) {
        Json entry;
        add_owner(entry, process.pid, process.comm);
        entry["ports"] = process.ports;
        add_cgroup(entry, process.cgroup_path);
        out.push_back(std::move(entry));
    }
    return out;
}

void add_scope(Json &out, const ScopeUsage &usage) {
    const ScopeKey &key = usage.key;
    bool destination = key.kind == ScopeKind::destination;
    out["scope"] = name_of(key.kind);
    out["netns"] = key.netns;
    out["proto"] = name_of(usage.proto);
    out["local_addr"] = destination ? json_address(key.local_addr) : Json(nullptr);
    out["remote_addr"] = destination ? json_address(key.remote_addr) : Json(nullptr);
    out["remote_port"] = destination ? Json(key.remote_port) : Json(nullptr);
    out["in_use"] = usage.in_use;
    out["capacity"] = usage.capacity;
    out["utilization"] = rounded(usage.utilization, 4);
    out["time_wait"] = usage.time_wait;
    out["allocation_rate"] = rounded(usage.allocation_rate, 3);
    out["eta_seconds"] = usage.eta_seconds ? Json(rounded(*usage.eta_seconds, 1)) : Json(nullptr);
    out["top_processes"] = top_processes_json(usage.top_processes);
}

// Figures are whole numbers or fractions (4 decimals).
Json causes_json(const std::vector<Cause> &causes) {
    Json out = Json::array();
    for (const Cause &cause : causes) {
        Json entry;
        entry["cause"] = name_of(cause.kind);
        entry["share"] = rounded(cause.share, 4);
        for (const Figure &figure : cause.figures)
            entry[figure.name] = figure.whole ? Json(std::int64_t(std::llround(figure.value)))
                                              : Json(rounded(figure.value, 4));
        if (!cause.processes.empty()) {
            Json processes = Json::array();
            for (const CauseProcess &process : cause.processes) {
                Json who;
                add_owner(who, process.pid, process.comm);
                who["ports"] = process.ports;
                processes.push_back(std::move(who));
            }
            entry["processes"] = std::move(processes);
        }
        if (!cause.ports.empty()) entry["ports_in_range"] = cause.ports;
        entry["advice"] = cause.advice;
        out.push_back(std::move(entry));
    }
    return out;
}

Json failure_json(const AllocateEvent &failure) {
    Json out;
    out["pid"] = failure.task.pid;
    out["tid"] = failure.task.tid;
    add_comm(out, failure.task.comm);
    add_cgroup(out, failure.task.cgroup_path);
    out["how"] = name_of(failure.how);
    out["syscall"] = name_of(failure.syscall);
    out["errno"] = failure.error;
    out["error"] = errno_name(failure.error);
    return out;
}

Json left_out_json(const ScopesLeftOut &rest) {
    return {{"count", rest.count},
            {"in_use", rest.in_use},
            {"time_wait", rest.time_wait},
            {"utilization", rounded(rest.utilization, 4)},
            {"level", name_of(rest.level)}};
}

Json left_out_json(const ProcessesLeftOut &rest) {
    return {{"count", rest.count},
            {"ports_held_total", rest.ports_held},
            {"allocations", rest.allocations},
            {"failures", rest.failures}};
}

Json process_json(const ProcessUsage &usage) {
    Json out;
    add_owner(out, usage.pid, usage.comm);
    out["cgroup_id"] = usage.cgroup_id;
    add_cgroup(out, usage.cgroup_path);
    out["netns"] = usage.netns;
    Json held = {{"tcp", Json::object()}, {"udp", Json::object()}};
    for (const auto &[kind, count] : usage.held)
        if (count)
            held[std::string(name_of(kind.first))][std::string(name_of(kind.second))] = count;
    out["ports_held"] = std::move(held);
    out["ports_held_total"] = usage.held_total();
    out["allocations"] = usage.allocations;
    out["failures"] = usage.failures;
    out["allocation_rate"] = rounded(usage.allocation_rate, 3);
    return out;
}

}  // namespace

Json to_json(const Warning &warning, const TimeBase &time) {
    Json out = header("warning", time.realtime(warning.boot_ns));
    out["level"] = name_of(warning.level);
    out["reason"] = warning.failure ? "allocate_failed" : "utilization";
    add_scope(out, warning.usage);
    if (warning.failure) out["failed"] = failure_json(*warning.failure);
    out["causes"] = causes_json(warning.usage.causes);
    return out;
}

Json to_json(const Report &report, const TimeBase &time) {
    Json out = header("report", time.realtime(report.boot_ns));
    out["interval_s"] = rounded(report.interval_s, 3);
    Json namespaces = Json::array();
    for (const auto &ns : report.netns) {
        Json entry;
        entry["netns"] = ns.netns;
        entry["port_range"] = {{"low", ns.config.range.low}, {"high", ns.config.range.high}};
        entry["reserved"] = ns.config.reserved_in_range();
        entry["tcp_tw_reuse"] = ns.config.tw_reuse;
        Json scopes = Json::array();
        for (const auto &usage : ns.scopes) {
            Json scope;
            add_scope(scope, usage);
            scope["level"] = name_of(usage.level);
            if (usage.level >= WarningLevel::warning) scope["causes"] = causes_json(usage.causes);
            scopes.push_back(std::move(scope));
        }
        entry["scopes"] = std::move(scopes);
        entry["scopes_left_out"] = left_out_json(ns.scopes_left_out);
        namespaces.push_back(std::move(entry));
    }
    out["netns"] = std::move(namespaces);
    Json processes = Json::array();
    for (const auto &usage : report.processes) processes.push_back(process_json(usage));
    out["processes"] = std::move(processes);
    out["processes_left_out"] = left_out_json(report.processes_left_out);
    return out;
}

std::string json_line(const Json &object) {
    // comm is already valid UTF-8; `replace` is the belt to those braces.
    return object.dump(-1, ' ', false, Json::error_handler_t::replace) + "\n";
}

}  // namespace portwatch
