// SPDX-License-Identifier: Apache-2.0
#include "output/json_format.h"

#include <array>
#include <charconv>
#include <cmath>
#include <concepts>
#include <cstring>

#include "events/containers.h"
#include "output/names.h"

namespace portwatch {
namespace {

// value to `digits` decimals, so that JSON shows 0.7, not 0.7000000000000001
double rounded(double value, int digits) {
    double scale = std::pow(10.0, digits);
    return std::round(value * scale) / scale;
}

// The fields of an object, set one by one in contract order, go either into a tree (the rare
// lines: reports, warnings, stats) or straight out as text (the line per event, the hot path:
// nlohmann's tree costs a dozen allocations per line). The helpers below take either.
class JsonTreeFields {
  public:
    explicit JsonTreeFields(Json &json) : json_(json) {}
    template <class Value>
    void set(std::string_view key, Value &&value) {
        json_[std::string(key)] = std::forward<Value>(value);
    }
    void set_null(std::string_view key) { json_[std::string(key)] = nullptr; }

  private:
    Json &json_;
};

// Writes the bytes nlohmann's dump() writes for the same object (a unit test holds them equal).
// The text is staged in a buffer of its own, appended to `out` when full and at the end: the
// line per event is ~30 short pieces, and std::string::append() is a call and a capacity check
// each (perf: a sixth of the monitor's time went to them).
class JsonTextFields {
  public:
    explicit JsonTextFields(std::string &out) : out_(out) { put('{'); }
    ~JsonTextFields() {
        put('}');
        flush();
    }
    JsonTextFields(const JsonTextFields &) = delete;
    JsonTextFields &operator=(const JsonTextFields &) = delete;

    // `text` must be valid UTF-8 (utf8_or_escaped makes raw bytes so): dump()'s error handler
    // is never needed, and multi-byte characters pass as they are (ensure_ascii off).
    void set(std::string_view key, std::string_view text) {
        start(key);
        put_string(text);
    }
    void set(std::string_view key, const char *text) { set(key, std::string_view(text)); }
    void set(std::string_view key, const std::string &text) { set(key, std::string_view(text)); }
    void set(std::string_view key, bool value) {
        start(key);
        put(value ? std::string_view("true") : std::string_view("false"));
    }
    void set(std::string_view key, std::integral auto value) {
        start(key);
        char digits[24];
        put({digits, std::to_chars(digits, digits + sizeof digits, value).ptr});
    }
    // Finite values only (every double an event carries is).
    void set(std::string_view key, double value) {
        start(key);
        char digits[64];
        put({digits, nlohmann::detail::to_chars(digits, digits + sizeof digits, value)});
    }
    void set_null(std::string_view key) {
        start(key);
        put("null");
    }

  private:
    [[gnu::always_inline]] void put(char c) {
        if (used_ == sizeof staged_) flush();
        staged_[used_++] = c;
    }
    [[gnu::always_inline]] void put(std::string_view text) {
        if (text.size() > sizeof staged_ - used_) {
            flush();
            if (text.size() > sizeof staged_) {
                out_.append(text);
                return;
            }
        }
        std::memcpy(staged_ + used_, text.data(), text.size());
        used_ += text.size();
    }
    void flush() {
        out_.append(staged_, used_);
        used_ = 0;
    }
    // Keys are this file's ASCII literals: nothing to escape.
    [[gnu::always_inline]] void start(std::string_view key) {
        if (!first_) put(',');
        first_ = false;
        put('"');
        put(key);
        put("\":");
    }
    // As nlohmann's serializer escapes: the two-character forms where JSON has them, \u00xx
    // (lower-case hex) for the other control characters, nothing else. Runs of plain bytes
    // are copied whole.
    void put_string(std::string_view text) {
        put('"');
        std::size_t plain_from = 0;
        for (std::size_t i = 0; i < text.size(); i++) {
            auto byte = static_cast<unsigned char>(text[i]);
            if (!kNeedsEscape[byte]) continue;
            put(text.substr(plain_from, i - plain_from));
            put_escaped(byte);
            plain_from = i + 1;
        }
        put(text.substr(plain_from));
        put('"');
    }
    void put_escaped(unsigned char byte) {
        static constexpr std::pair<char, const char *> short_forms[] = {
            {'"', "\\\""}, {'\\', "\\\\"}, {'\b', "\\b"}, {'\f', "\\f"},
            {'\n', "\\n"}, {'\r', "\\r"},  {'\t', "\\t"}};
        for (const auto &[plain, escaped] : short_forms)
            if (byte == static_cast<unsigned char>(plain)) {
                put(escaped);
                return;
            }
        static constexpr char hex[] = "0123456789abcdef";
        put("\\u00");
        put(hex[byte >> 4]);
        put(hex[byte & 0xf]);
    }

    // One load a byte where three comparisons were (perf: the scan was a quarter of a line).
    static constexpr auto kNeedsEscape = [] {
        std::array<bool, 256> table{};
        for (int byte = 0; byte < 0x20; byte++) table[byte] = true;
        table['"'] = table['\\'] = true;
        return table;
    }();

    std::string &out_;
    char staged_[1024];
    std::size_t used_ = 0;
    bool first_ = true;
};

// `key` as valid UTF-8, and `<key>_hex` with the exact bytes when that changed anything.
template <class Fields>
void add_raw_text(Fields &out, std::string_view key, std::string_view raw) {
    if (is_ascii(raw)) {
        out.set(key, raw);
        return;
    }
    SafeText safe = utf8_or_escaped(raw);
    out.set(key, safe.text);
    if (safe.altered) out.set(std::string(key) + "_hex", hex_bytes(raw));
}

// A field's value, as its type is written (field_table.h).
template <class Fields>
void add_value(Fields &out, std::string_view key, RawText text) {
    add_raw_text(out, key, text.bytes);
}
template <class Fields>
void add_value(Fields &out, std::string_view key, ErrnoName error) {
    out.set(key, errno_name(error.error));
}
template <class Fields>
void add_value(Fields &out, std::string_view key, const IpAddress &addr) {
    out.set(key, to_string(addr));
}
template <class Fields, class Value>
requires requires(Value value) {
    name_of(value);
}
void add_value(Fields &out, std::string_view key, Value value) {
    out.set(key, name_of(value));
}
template <class Fields, class Value>
requires std::integral<Value> || std::floating_point<Value> ||
    std::convertible_to<Value, std::string_view>
void add_value(Fields &out, std::string_view key, const Value &value) {
    out.set(key, value);
}
template <class Fields, class Value>
void add_value(Fields &out, std::string_view key, const std::optional<Value> &value) {
    if (value)
        add_value(out, key, *value);
    else
        out.set_null(key);
}
template <class Fields, class Value>
void add_value(Fields &out, std::string_view key, const IfSet<Value> &value) {
    if (value.set) add_value(out, key, value.value);
}

// Every field of `table` as null (an owner nobody knows).
template <class Fields, class Table>
void add_nulls(Fields &out, const Table &table) {
    for_each_field(table, [&](const auto &entry) {
        using Entry = std::remove_cvref_t<decltype(entry)>;
        if constexpr (kIsGroup<Entry>)
            add_nulls(out, entry.fields);
        else if constexpr (!kIsCopy<Entry>)
            out.set_null(entry.key);
    });
}

// The fields of `object` its table lists, in the table's order.
template <class Fields, class Object, class Table>
void add_fields(Fields &out, const Object &object, const Table &table) {
    for_each_field(
        table, [&](const auto &entry) __attribute__((always_inline)) {
            using Entry = std::remove_cvref_t<decltype(entry)>;
            if constexpr (kIsGroup<Entry>) {
                visit_group(
                    object, entry,
                    [&](const auto &member) { add_fields(out, member, entry.fields); },
                    [&] { add_nulls(out, entry.fields); });
            } else if constexpr (!kIsCopy<Entry>) {
                add_value(out, entry.key, value_of(object, entry));
            }
        });
}

template <class Fields>
void add_comm(Fields &out, const std::string &raw) {
    add_raw_text(out, "comm", raw);
}

// pid 0: a socket the tables showed whose owner no /proc fd table named (as a release's
// unknown owner, null).
template <class Fields>
void add_owner(Fields &out, std::uint32_t pid, const std::string &comm) {
    if (pid == 0) {
        out.set_null("pid");
        out.set_null("comm");
        return;
    }
    out.set("pid", pid);
    add_comm(out, comm);
}

// The same, on a tree.
void add_comm(Json &out, const std::string &raw) {
    JsonTreeFields fields(out);
    add_comm(fields, raw);
}

void add_owner(Json &out, std::uint32_t pid, const std::string &comm) {
    JsonTreeFields fields(out);
    add_owner(fields, pid, comm);
}

// The cgroup path (null when unknown) and the container it shows (null when none).
void add_cgroup(Json &out, const CgroupPath &path) {
    JsonTreeFields fields(out);
    add_fields(fields, path, kCgroupFields);
}

template <class Fields>
void add_header(Fields &out, std::string_view type, std::int64_t realtime_ns) {
    out.set("type", type);
    Rfc3339Room room;
    out.set("ts", rfc3339_utc(realtime_ns, room));
}

Json header(std::string_view type, std::int64_t realtime_ns) {
    Json out;
    JsonTreeFields fields(out);
    add_header(fields, type, realtime_ns);
    return out;
}

template <class Fields>
void add_event(Fields &out, const Event &event, const TimeBase &time) {
    if (const auto *allocate = std::get_if<AllocateEvent>(&event)) {
        add_header(out, allocate->failed() ? "allocate_failed" : "allocate",
                   time.realtime(allocate->boot_ns));
        add_fields(out, *allocate, kAllocateFields);
    } else {
        const auto &release = std::get<ReleaseEvent>(event);
        add_header(out, "release", time.realtime(release.boot_ns));
        add_fields(out, release, kReleaseFields);
    }
}

Json json_address(const IpAddress &addr) {
    return to_string(addr);
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
    Json out;
    JsonTreeFields fields(out);
    add_event(fields, event, time);
    return out;
}

void append_json_line(std::string &out, const Event &event, const TimeBase &time) {
    {
        JsonTextFields fields(out);
        add_event(fields, event, time);
    }
    out += '\n';
}

std::string json_line(const Event &event, const TimeBase &time) {
    std::string line;
    line.reserve(512);
    append_json_line(line, event, time);
    return line;
}

Json to_json(const ReadyInfo &ready) {
    Json out = header("ready", ready.realtime_ns);
    out["version"] = ready.version;
    out["revision"] = ready.revision;
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
    out["nat"] = {{"namespaces", stats.nat.namespaces},
                  {"mappings", stats.nat.mappings},
                  {"drops", stats.nat.drops},
                  {"overflows", stats.nat.overflows},
                  {"malformed", stats.nat.malformed},
                  {"error", stats.nat.error.empty() ? Json(nullptr) : Json(stats.nat.error)}};
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
    // a NAT's drops that no full scope explains name no destination (remote_port 0)
    bool destination = per_destination(key.kind) && key.remote_port != 0;
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
    out["reason"] = warning.failure     ? "allocate_failed"
                    : warning.nat_drops ? "nat_drops"
                                        : "utilization";
    add_scope(out, warning.usage);
    if (warning.failure) out["failed"] = failure_json(*warning.failure);
    if (warning.nat_drops) out["nat_drops"] = warning.nat_drops;
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
        entry["nat_drops"] = ns.nat_drops;
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
