// SPDX-License-Identifier: Apache-2.0
#include "output/run_summary_lines.h"

#include <nlohmann/json.hpp>

#include "base/printable_text.h"
#include "output/names.h"
#include "output/value_text.h"

namespace portwatch {
namespace {

using Json = nlohmann::ordered_json;

std::string scope_text(const ScopePeak &peak) {
    const ScopeKey &key = peak.key;
    if (!per_destination(key.kind)) return std::string(name_in(kScopeKindNames, key.kind));
    std::string prefix = key.kind == ScopeKind::nat ? "nat " : "";
    return prefix + to_string(key.local_addr) + "->" + endpoint(key.remote_addr, key.remote_port);
}

Json scope_json(const ScopePeak &peak) {
    const ScopeKey &key = peak.key;
    bool destination = per_destination(key.kind);
    Json out;
    out["scope"] = name_in(kScopeKindNames, key.kind);
    out["netns"] = key.netns;
    out["proto"] = name_of(peak.proto);
    out["local_addr"] = destination ? Json(to_string(key.local_addr)) : Json(nullptr);
    out["remote_addr"] = destination ? Json(to_string(key.remote_addr)) : Json(nullptr);
    out["remote_port"] = destination ? Json(key.remote_port) : Json(nullptr);
    out["peak"] = peak.peak;
    return out;
}

Json held_json(const HeldPortEntry &held) {
    Json out;
    out["pid"] = held.pid;
    out["comm"] = printable(held.comm);
    out["proto"] = name_of(held.sock.proto);
    out["family"] = name_of(held.sock.family);
    out["netns"] = held.sock.netns;
    out["local_addr"] = to_string(held.sock.local_addr);
    out["local_port"] = held.sock.local_port;
    out["how"] = name_of(held.how);
    return out;
}

std::string command_text(const std::vector<std::string> &command) {
    return command.empty() ? std::string("the command") : printable(command.front());
}

std::string exit_text(const std::optional<int> &exit_code) {
    return exit_code ? "exit " + std::to_string(*exit_code) : std::string("still running");
}

}  // namespace

std::string summary_json_line(const RunSummary &summary, const SummaryContext &context) {
    Json out;
    out["type"] = "summary";
    out["ts"] = rfc3339_utc(context.realtime_ns);
    Json command = Json::array();
    for (const std::string &arg : context.command) command.push_back(printable(arg));
    out["command"] = command;
    out["exit_code"] = context.exit_code ? Json(*context.exit_code) : Json(nullptr);
    Json allocations = Json::array();
    for (const auto &[kind, count] : summary.allocations)
        allocations.push_back(
            {{"proto", name_of(kind.first)}, {"how", name_of(kind.second)}, {"count", count}});
    out["allocations"] = allocations;
    Json failures = Json::array();
    for (const auto &[error, count] : summary.failures_by_errno)
        failures.push_back({{"errno", error}, {"error", errno_name(error)}, {"count", count}});
    out["failures"] = failures;
    Json peaks = Json::array();
    for (const ScopePeak &peak : summary.peaks) peaks.push_back(scope_json(peak));
    out["peaks"] = peaks;
    Json held = Json::array();
    for (const HeldPortEntry &entry : summary.still_held) held.push_back(held_json(entry));
    out["still_held"] = held;
    return out.dump(-1, ' ', false, Json::error_handler_t::replace) + "\n";
}

std::string summary_text_block(const RunSummary &summary, const SummaryContext &context) {
    std::string name = command_text(context.command);
    std::string text = "# summary of " + name + " (" + exit_text(context.exit_code) + ")\n";
    text += "#   allocations:";
    if (summary.allocations.empty()) text += " none";
    for (const auto &[kind, count] : summary.allocations)
        text += " " + std::string(name_of(kind.first)) + "/" + std::string(name_of(kind.second)) +
                " " + std::to_string(count);
    text += "\n#   failures:";
    if (summary.failures_by_errno.empty()) text += " none";
    for (const auto &[error, count] : summary.failures_by_errno)
        text += " " + errno_name(error) + " " + std::to_string(count);
    text += "\n";
    for (const ScopePeak &peak : summary.peaks)
        text += "#   peak " + std::string(name_of(peak.proto)) + " " + scope_text(peak) +
                " netns " + std::to_string(peak.key.netns) + ": " + std::to_string(peak.peak) +
                " held at once\n";
    text += "#   still held when " + name +
            " exited: " + std::to_string(summary.still_held.size()) + "\n";
    for (const HeldPortEntry &held : summary.still_held)
        text += "#     " + printable(held.comm) + "[" + std::to_string(held.pid) + "] " +
                std::string(name_of(held.sock.proto)) + " " +
                endpoint(held.sock.local_addr, held.sock.local_port) + " " +
                std::string(name_of(held.how)) + " netns " + std::to_string(held.sock.netns) + "\n";
    return text;
}

}  // namespace portwatch
