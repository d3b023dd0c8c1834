// SPDX-License-Identifier: Apache-2.0
// What the running kernel offers the BPF programs, and what portwatch decides from it:
// whether it can run, which fallbacks it uses, and the sentence that says why not.
// The probing itself is in capture/feature_probe.cpp; this part is pure.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "base/enum_names.h"
#include "base/result.h"

namespace portwatch {

// One thing the programs use, and the kernel version that brought it.
enum class Feature {
    btf,                  // /sys/kernel/btf/vmlinux (CONFIG_DEBUG_INFO_BTF)
    tp_btf,               // BTF-typed raw tracepoints (BPF_PROG_TYPE_TRACING)
    ringbuf,              // BPF_MAP_TYPE_RINGBUF
    sockops,              // BPF_PROG_TYPE_SOCK_OPS with bpf_skc_to_tcp_sock()
    cgroup_sock_release,  // BPF_CGROUP_INET_SOCK_RELEASE
    socket_cookie,        // bpf_get_socket_cookie() in cgroup/sock programs
    tcp_destroy_sock,     // the tcp:tcp_destroy_sock tracepoint
    current_task_btf,     // bpf_get_current_task_btf(); optional
    sockops_task,         // pid, uid, comm and cgroup helpers in sockops programs; optional
    io_uring_requests,    // io_uring tracepoints that carry the request; optional
};

struct FeatureInfo {
    Feature feature;
    const char *name;
    const char *since;  // the mainline kernel version that brought it
    bool required;      // false: the programs fall back without it
};

// Every feature, in the order `check` lists them.
const std::vector<FeatureInfo> &all_features();
const FeatureInfo &info_of(Feature feature);

// A probe's answers: which features the kernel has.
struct KernelFeatures {
    std::vector<Feature> present;
    bool has(Feature feature) const;
};

struct KernelVerdict {
    bool can_run = false;
    std::vector<FeatureInfo> missing_required;
    std::vector<FeatureInfo> missing_optional;  // each has a fallback in the programs
    // "portwatch needs X (kernel 5.8) and Y (kernel 5.9); this kernel is 5.4.0", or "".
    std::string refusal;
    // One line per optional feature the programs do without, for `check` and the ready line.
    std::vector<std::string> fallbacks;

    bool lacks(Feature feature) const;
};

KernelVerdict judge_kernel(const KernelFeatures &features, std::string_view kernel_release);

// Which programs see the allocations: the kernel's port allocators (fexit, where
// trampolines attach) or the syscall tracepoints (everywhere else).
enum class HookSet { tracepoint, fexit };
enum class HookChoice { automatic, tracepoint, fexit };
inline constexpr EnumName<HookSet> kHookSetNames[] = {{HookSet::tracepoint, "tracepoint"},
                                                      {HookSet::fexit, "fexit"}};
// --hooks and PORTWATCH_HOOKS.
inline constexpr EnumName<HookChoice> kHookChoiceNames[] = {{HookChoice::automatic, "auto"},
                                                            {HookChoice::fexit, "fexit"},
                                                            {HookChoice::tracepoint, "tracepoint"}};
std::string_view name_of(HookSet set);

struct HookDecision {
    HookSet set = HookSet::tracepoint;
    std::string reason;  // why this set, for `check`, the ready line and the metrics
};

// `fexit` is a failure, saying why, when a trial fexit program did not attach. A failure
// for --hooks fexit where fexit cannot attach.
Result<HookDecision> choose_hooks(HookChoice asked, const Status &fexit);

// The verifier's own reason in a load log (the last line that is not a statistic):
// "Unreleased reference id=4 alloc_insn=97", "unknown func bpf_get_current_task_btf#158".
std::string verifier_reason(std::string_view log);

}  // namespace portwatch
