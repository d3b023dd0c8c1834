// SPDX-License-Identifier: Apache-2.0
#include "app/check.h"

#include "app/host_tables.h"
#include "capture/feature_probe.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "capture/capture.h"
#include "output/json_format.h"
#include "app/version.h"
#include "system/conntrack_table.h"
#include "system/nat_ruleset.h"
#include "system/netns_config.h"
#include "system/privileges.h"
#include "system/socket_tables.h"
#include "system/host_info.h"

namespace portwatch {
namespace {

struct Finding {
    std::string name;
    bool ok = false;
    std::string detail;
};

// Loads and attaches the real programs, as `monitor` would, and detaches them again; and
// whether their cgroup hooks cover every process.
std::vector<Finding> check_bpf(const MonitorOptions &options, std::vector<std::string> &hooks) {
    try {
        Capture capture(capture_config(options));
        hooks = capture.hooks();
        Reach cgroup_only{true, true, capture.sees_every_cgroup()};
        auto limits = reach_limits(cgroup_only);
        return {{"bpf", true, std::to_string(hooks.size()) + " programs load and attach"},
                {"hooks", true,
                 std::string(name_of(capture.hook_set())) + ": " + capture.hook_set_reason()},
                {"cgroup", limits.empty(),
                 limits.empty() ? "the cgroup hooks are on the root cgroup" : limits[0]}};
    } catch (const CaptureError &error) {
        return {{"bpf", false, error.what()}};
    }
}

// Each feature the kernel lacks, with the kernel version that brought it: a required one
// fails, an optional one says what the programs do instead.
std::vector<Finding> check_kernel_features() {
    ProbeResult probe = probe_kernel_features();
    if (probe.error)
        return {{"kernel", false,
                 "cannot probe " + probe.failed_probe + ": " + std::strerror(probe.error)}};
    KernelVerdict verdict = judge_kernel(probe.features, kernel_release());
    std::vector<Finding> findings;
    for (const FeatureInfo &missing : verdict.missing_required)
        findings.push_back(
            {"kernel", false,
             std::string("lacks ") + missing.name + " (kernel " + missing.since + ")"});
    for (const std::string &fallback : verdict.fallbacks)
        findings.push_back({"kernel", true, fallback});
    if (findings.empty()) findings.push_back({"kernel", true, "has every feature portwatch uses"});
    return findings;
}

// What `snapshot` and the monitor's baseline need: sock_diag inside a network namespace.
// This process's network namespace: its inode, and an fd on it that `reader` owns.
struct OwnNetns {
    std::uint32_t inode;
    int fd;
};
Result<OwnNetns> own_netns(NetnsConfigReader &reader) {
    struct stat own {};
    if (stat("/proc/self/ns/net", &own) != 0) return Failure{"no /proc/self/ns/net"};
    Result<int> fd = reader.handle(std::uint32_t(own.st_ino));
    if (!fd) return Failure{fd.error()};
    return OwnNetns{std::uint32_t(own.st_ino), *fd};
}

Finding check_socket_tables() {
    NetnsConfigReader reader;
    Result<OwnNetns> own = own_netns(reader);
    if (!own) return {"socket_tables", false, own.error()};
    Result<std::vector<KernelSocket>> table = dump_sockets(own->fd, own->inode);
    if (!table) return {"socket_tables", false, table.error()};
    return {"socket_tables", true,
            "sock_diag: " + std::to_string(table->size()) + " sockets in this namespace, " +
                std::to_string(reader.all_namespaces().size()) + " network namespace(s) visible"};
}

// What the NAT scopes need, in this namespace: conntrack, ctnetlink, and the tools its rules
// are read with. A drop is counted from conntrack's statistics: its packet is not seen.
Finding check_nat() {
    if (!conntrack_loaded())
        return {"nat", true, "conntrack is not loaded: nothing is translated here"};
    NetnsConfigReader reader;
    Result<OwnNetns> own = own_netns(reader);
    if (!own) return {"nat", false, own.error()};
    Result<std::vector<NatMapping>> mappings = dump_nat_mappings(own->fd, own->inode);
    if (!mappings) return {"nat", false, "conntrack: " + mappings.error()};
    std::string detail = "conntrack: " + std::to_string(mappings->size()) +
                         " source NAT mapping(s) in this namespace; drops counted from "
                         "insert_failed (the dropped packet's tuple is not seen)";
    Result<NatRuleset> rules = read_nat_ruleset(own->fd);
    if (!rules) return {"nat", false, detail + "; rules: " + rules.error()};
    for (const NatSource &source : rules->sources) detail += "; " + describe(source);
    return {"nat", true, detail};
}

// What the socket-table passes of `snapshot` and the monitor's baseline can read.
Finding check_reach(const Reach &reach) {
    std::string detail;
    for (const std::string &limit : reach_limits(reach))
        detail += (detail.empty() ? "" : "; ") + limit;
    if (detail.empty()) detail = "every network namespace, every process's sockets";
    return {"reach", reach.every_netns && reach.every_owner, detail};
}

// How much `snapshot` sees: every namespace, only its own, or nothing.
std::string snapshot_reach(bool tables_readable, const Reach &reach) {
    if (!tables_readable) return "none";
    return reach.every_netns ? "all" : "own_netns";
}

std::string snapshot_text(const std::string &snapshot, const Reach &reach) {
    if (snapshot == "none") return "cannot run";
    std::string text = snapshot == "all" ? "can run, every network namespace"
                                         : "can run, this network namespace only";
    if (!reach.every_owner) text += ", owners from this user's processes only";
    return text;
}

void print_text(const std::vector<Finding> &findings, const std::vector<std::string> &hooks,
                bool can_monitor, const std::string &snapshot_text) {
    std::printf("portwatch %s check, kernel %s\n", kPortwatchVersion, kernel_release().c_str());
    for (const auto &finding : findings)
        std::printf("%-5s %-14s %s\n", finding.ok ? "ok" : "FAIL", finding.name.c_str(),
                    finding.detail.c_str());
    std::string hook_list;
    for (const auto &hook : hooks) hook_list += (hook_list.empty() ? "" : ", ") + hook;
    if (!hooks.empty()) std::printf("hooks: %s\n", hook_list.c_str());
    std::printf("monitor: %s\n", can_monitor ? "can run" : "cannot run");
    std::printf("snapshot: %s\n", snapshot_text.c_str());
}

void print_json(const std::vector<Finding> &findings, const std::vector<std::string> &hooks,
                bool can_monitor, const std::string &snapshot) {
    Json out;
    out["type"] = "check";
    out["version"] = kPortwatchVersion;
    out["revision"] = git_revision();
    out["kernel"] = kernel_release();
    Json checks = Json::array();
    for (const auto &finding : findings)
        checks.push_back({{"name", finding.name}, {"ok", finding.ok}, {"detail", finding.detail}});
    out["checks"] = std::move(checks);
    out["hooks"] = hooks;
    out["monitor"] = can_monitor;
    out["snapshot"] = snapshot;
    std::fputs(json_line(out).c_str(), stdout);
}

}  // namespace

int run_check(const MonitorOptions &options) {
    std::vector<std::string> hooks;
    Reach reach = current_reach();
    std::vector<Finding> findings = {
        {"root", geteuid() == 0, "effective uid " + std::to_string(geteuid())}};
    std::vector<Finding> features = check_kernel_features();
    findings.insert(findings.end(), features.begin(), features.end());
    std::vector<Finding> bpf = check_bpf(options, hooks);
    bool can_monitor = bpf.front().ok;
    findings.insert(findings.end(), bpf.begin(), bpf.end());
    Finding tables = check_socket_tables();
    std::string snapshot = snapshot_reach(tables.ok, reach);
    findings.push_back(std::move(tables));
    findings.push_back(check_reach(reach));
    findings.push_back(check_nat());
    if (options.format == OutputFormat::json)
        print_json(findings, hooks, can_monitor, snapshot);
    else
        print_text(findings, hooks, can_monitor, snapshot_text(snapshot, reach));
    std::fflush(stdout);
    if (!can_monitor)
        std::fprintf(stderr, "portwatch: monitor cannot run: %s\n", bpf.front().detail.c_str());
    return can_monitor ? 0 : 1;
}

}  // namespace portwatch
