// SPDX-License-Identifier: Apache-2.0
#include "capture/kernel_features.h"

#include <algorithm>

namespace portwatch {

const std::vector<FeatureInfo> &all_features() {
    static const std::vector<FeatureInfo> features = {
        {Feature::btf, "kernel BTF (/sys/kernel/btf/vmlinux, CONFIG_DEBUG_INFO_BTF)", "5.4", true},
        {Feature::tp_btf, "BTF tracepoints (tp_btf)", "5.5", true},
        {Feature::ringbuf, "the BPF ring buffer", "5.8", true},
        {Feature::socket_cookie, "bpf_get_socket_cookie() in cgroup/sock programs", "5.8", true},
        {Feature::sockops, "bpf_skc_to_tcp_sock() in sockops programs", "5.9", true},
        {Feature::cgroup_sock_release, "the cgroup/sock_release hook", "5.9", true},
        {Feature::tcp_destroy_sock, "the tcp:tcp_destroy_sock tracepoint", "4.16", true},
        {Feature::current_task_btf, "bpf_get_current_task_btf()", "5.11", false},
        // Measured: 6.18 has all four; 6.12 has bpf_get_current_pid_tgid() only, 6.1 none.
        {Feature::sockops_task, "task helpers (pid, uid, comm, cgroup) in sockops programs",
         "6.13+", false},
        {Feature::io_uring_requests,
         "io_uring tracepoints with the request (io_uring_submit_sqe, io_uring_complete)", "5.19",
         false},
    };
    return features;
}

const FeatureInfo &info_of(Feature feature) {
    const auto &features = all_features();
    return *std::find_if(features.begin(), features.end(),
                         [feature](const FeatureInfo &info) { return info.feature == feature; });
}

bool KernelFeatures::has(Feature feature) const {
    return std::find(present.begin(), present.end(), feature) != present.end();
}

bool KernelVerdict::lacks(Feature feature) const {
    auto is = [feature](const FeatureInfo &info) { return info.feature == feature; };
    return std::any_of(missing_required.begin(), missing_required.end(), is) ||
           std::any_of(missing_optional.begin(), missing_optional.end(), is);
}

namespace {

std::string fallback_of(Feature feature) {
    switch (feature) {
        case Feature::current_task_btf:
            return "no bpf_get_current_task_btf() (kernel 5.11): the fd table is read with "
                   "bpf_get_current_task() and probe reads";
        case Feature::sockops_task:
            return "no task helpers in sockops programs: TCP connect() is tracked at sys_enter "
                   "and sys_exit (and io_uring connects at their completion)";
        case Feature::io_uring_requests:
            return "no io_uring tracepoints with the request (kernel 5.19): ports io_uring's "
                   "bind, listen, connect and send ops take are counted from the next "
                   "reconciliation (the fexit set sees them, their kind guessed)";
        default:
            return "";
    }
}

std::string refusal_of(const std::vector<FeatureInfo> &missing, std::string_view release) {
    std::string needs;
    for (std::size_t i = 0; i < missing.size(); i++) {
        if (i) needs += i + 1 == missing.size() ? " and " : ", ";
        needs += std::string(missing[i].name) + " (kernel " + missing[i].since + ")";
    }
    return "portwatch needs " + needs + "; this kernel is " + std::string(release);
}

}  // namespace

KernelVerdict judge_kernel(const KernelFeatures &features, std::string_view kernel_release) {
    KernelVerdict verdict;
    for (const FeatureInfo &info : all_features()) {
        if (features.has(info.feature)) continue;
        if (info.required) {
            verdict.missing_required.push_back(info);
        } else {
            verdict.missing_optional.push_back(info);
            verdict.fallbacks.push_back(fallback_of(info.feature));
        }
    }
    verdict.can_run = verdict.missing_required.empty();
    if (!verdict.can_run) verdict.refusal = refusal_of(verdict.missing_required, kernel_release);
    return verdict;
}

std::string_view name_of(HookSet set) {
    return name_in(kHookSetNames, set);
}

Result<HookDecision> choose_hooks(HookChoice asked, const Status &fexit) {
    switch (asked) {
        case HookChoice::tracepoint:
            return HookDecision{HookSet::tracepoint, "asked for (--hooks tracepoint)"};
        case HookChoice::fexit:
            if (fexit) return HookDecision{HookSet::fexit, "asked for (--hooks fexit)"};
            return Failure{"--hooks fexit: " + fexit.error()};
        case HookChoice::automatic:
        default:
            if (fexit)
                return HookDecision{HookSet::fexit,
                                    "fexit attaches to the port allocators on this kernel"};
            return HookDecision{HookSet::tracepoint, "fexit cannot attach here: " + fexit.error()};
    }
}

namespace {

bool is_statistic(std::string_view line) {
    for (std::string_view prefix : {"processed ", "verification time", "stack depth", "max_states",
                                    "peak_states", "mark_read"})
        if (line.substr(0, prefix.size()) == prefix) return true;
    return false;
}

}  // namespace

std::string verifier_reason(std::string_view log) {
    std::string_view reason;
    while (!log.empty()) {
        std::size_t end = log.find('\n');
        std::string_view line = log.substr(0, end);
        log = end == std::string_view::npos ? std::string_view{} : log.substr(end + 1);
        while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.remove_suffix(1);
        if (!line.empty() && !is_statistic(line)) reason = line;
    }
    return std::string(reason);
}

}  // namespace portwatch
