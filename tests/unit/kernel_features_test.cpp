// SPDX-License-Identifier: Apache-2.0
#include "capture/kernel_features.h"

#include <gtest/gtest.h>

namespace portwatch {
namespace {

// What the probe finds on each kernel, as measured under qemu (scripts/vmtest.py) and here.
KernelFeatures kernel_6_18() {
    return {{Feature::btf, Feature::tp_btf, Feature::ringbuf, Feature::socket_cookie,
             Feature::sockops, Feature::cgroup_sock_release, Feature::tcp_destroy_sock,
             Feature::current_task_btf, Feature::sockops_task, Feature::io_uring_requests}};
}

KernelFeatures without(KernelFeatures features, std::initializer_list<Feature> gone) {
    for (Feature feature : gone) std::erase(features.present, feature);
    return features;
}

KernelFeatures kernel_6_12() {
    return without(kernel_6_18(), {Feature::sockops_task});
}
KernelFeatures kernel_5_10() {
    return without(kernel_6_18(),
                   {Feature::sockops_task, Feature::current_task_btf, Feature::io_uring_requests});
}
// 5.4: BTF, tp_btf and the tracepoint; no ring buffer (5.8), no sockops BTF helper or
// sock_release hook (5.9), no cookie in cgroup/sock (5.8).
KernelFeatures kernel_5_4() {
    return without(kernel_5_10(), {Feature::ringbuf, Feature::socket_cookie, Feature::sockops,
                                   Feature::cgroup_sock_release});
}

TEST(KernelFeatures, NewestKernelRunsWithNoFallback) {
    KernelVerdict verdict = judge_kernel(kernel_6_18(), "6.18.44");
    EXPECT_TRUE(verdict.can_run);
    EXPECT_TRUE(verdict.missing_required.empty());
    EXPECT_TRUE(verdict.fallbacks.empty());
    EXPECT_EQ(verdict.refusal, "");
    EXPECT_FALSE(verdict.lacks(Feature::sockops_task));
}

TEST(KernelFeatures, Kernel612TracksTcpConnectBySyscall) {
    KernelVerdict verdict = judge_kernel(kernel_6_12(), "6.12.117+deb13-cloud-amd64");
    EXPECT_TRUE(verdict.can_run);
    EXPECT_TRUE(verdict.lacks(Feature::sockops_task));
    EXPECT_FALSE(verdict.lacks(Feature::current_task_btf));
    ASSERT_EQ(verdict.fallbacks.size(), 1u);
    EXPECT_NE(verdict.fallbacks[0].find("TCP connect() is tracked at sys_enter and sys_exit"),
              std::string::npos)
        << verdict.fallbacks[0];
}

TEST(KernelFeatures, Kernel510RunsWithBothFallbacks) {
    KernelVerdict verdict = judge_kernel(kernel_5_10(), "5.10.0-32-cloud-amd64");
    EXPECT_TRUE(verdict.can_run);
    EXPECT_TRUE(verdict.lacks(Feature::current_task_btf));
    EXPECT_TRUE(verdict.lacks(Feature::sockops_task));
    EXPECT_TRUE(verdict.lacks(Feature::io_uring_requests));
    ASSERT_EQ(verdict.fallbacks.size(), 3u);
    EXPECT_NE(verdict.fallbacks[0].find("bpf_get_current_task()"), std::string::npos);
    EXPECT_NE(verdict.fallbacks[2].find("io_uring tracepoints with the request (kernel 5.19)"),
              std::string::npos)
        << verdict.fallbacks[2];
}

TEST(KernelFeatures, KernelBelowTheFloorIsRefusedInOneSentence) {
    KernelVerdict verdict = judge_kernel(kernel_5_4(), "5.4.0-150-generic");
    EXPECT_FALSE(verdict.can_run);
    EXPECT_EQ(verdict.refusal,
              "portwatch needs the BPF ring buffer (kernel 5.8), bpf_get_socket_cookie() in "
              "cgroup/sock programs (kernel 5.8), bpf_skc_to_tcp_sock() in sockops programs "
              "(kernel 5.9) and the cgroup/sock_release hook (kernel 5.9); this kernel is "
              "5.4.0-150-generic");
}

TEST(KernelFeatures, NoBtfNamesTheConfigOption) {
    KernelVerdict verdict =
        judge_kernel(without(kernel_6_18(), {Feature::btf, Feature::tp_btf}), "6.1.0-custom");
    EXPECT_FALSE(verdict.can_run);
    EXPECT_EQ(verdict.refusal,
              "portwatch needs kernel BTF (/sys/kernel/btf/vmlinux, CONFIG_DEBUG_INFO_BTF) "
              "(kernel 5.4) and BTF tracepoints (tp_btf) (kernel 5.5); this kernel is "
              "6.1.0-custom");
}

TEST(HookChoice, AutoTakesFexitWhereItAttaches) {
    Result<HookDecision> stock = choose_hooks(HookChoice::automatic, Status());
    ASSERT_TRUE(stock);
    EXPECT_EQ(stock->set, HookSet::fexit);
    EXPECT_EQ(stock.error(), "");
    Result<HookDecision> here = choose_hooks(HookChoice::automatic, Failure{"no trampolines"});
    ASSERT_TRUE(here);
    EXPECT_EQ(here->set, HookSet::tracepoint);
    EXPECT_EQ(here->reason, "fexit cannot attach here: no trampolines");
}

TEST(HookChoice, ForcedFexitWhereItCannotAttachIsAnError) {
    Result<HookDecision> refused = choose_hooks(HookChoice::fexit, Failure{"no trampolines"});
    EXPECT_FALSE(refused);
    EXPECT_EQ(refused.error(), "--hooks fexit: no trampolines");
    Result<HookDecision> forced = choose_hooks(HookChoice::fexit, Status());
    ASSERT_TRUE(forced) << forced.error();
    EXPECT_EQ(forced->reason, "asked for (--hooks fexit)");
    Result<HookDecision> tracepoint = choose_hooks(HookChoice::tracepoint, Status());
    ASSERT_TRUE(tracepoint) << tracepoint.error();
    EXPECT_EQ(tracepoint->set, HookSet::tracepoint);
    EXPECT_EQ(tracepoint->reason, "asked for (--hooks tracepoint)");
}

TEST(VerifierReason, IsTheLastLineBeforeTheStatistics) {
    EXPECT_EQ(verifier_reason("0: (b7) r6 = 0\n"
                              "123: (95) exit\n"
                              "Unreleased reference id=5 alloc_insn=97\n"
                              "processed 2345 insns (limit 1000000) max_states_per_insn 4\n"),
              "Unreleased reference id=5 alloc_insn=97");
    EXPECT_EQ(verifier_reason("reg type unsupported for arg#0 function pw_sys_exit#38\n"
                              "0: R1=ctx(off=0,imm=0) R10=fp0\n"
                              "; int BPF_PROG(pw_sys_exit, struct pt_regs *regs, long ret)\n"
                              "0: (85) call bpf_get_current_task_btf#158\n"
                              "unknown func bpf_get_current_task_btf#158\r\n"
                              "verification time 42 usec\n"
                              "stack depth 0\n"),
              "unknown func bpf_get_current_task_btf#158");
}

TEST(VerifierReason, EmptyLogHasNoReason) {
    EXPECT_EQ(verifier_reason(""), "");
    EXPECT_EQ(verifier_reason("\n\nprocessed 3 insns\n"), "");
}

}  // namespace
}  // namespace portwatch
