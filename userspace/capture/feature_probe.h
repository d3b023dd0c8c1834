// SPDX-License-Identifier: Apache-2.0
// Asks the running kernel which of the features the programs use it has: its BTF for
// types, enumerators and tracepoints, and trial loads (libbpf_probe_*) for map types and
// helpers. Needs the privileges loading needs.
#pragma once

#include <string>

#include "capture/kernel_features.h"

namespace portwatch {

struct ProbeResult {
    KernelFeatures features;
    int error = 0;             // why a trial load could not run at all (EPERM: no privileges)
    std::string failed_probe;  // which one
};

ProbeResult probe_kernel_features();

// Success when a trial fexit program attaches to inet_hash_connect() and the kernel's BTF has
// every allocator the fexit set hooks; else a failure saying why not. Tried once per process.
const Status &fexit_attaches();

// Which tracepoint hands the programs io_uring's submitted requests: its name and
// arguments changed in 6.2 and 6.5. none before 5.19, whose io_uring_complete carries no
// request (Feature::io_uring_requests absent).
enum class IoUringSubmit {
    none,
    submit_req,            // 6.5+: io_uring_submit_req(req)
    submit_sqe,            // 6.2-6.4: io_uring_submit_sqe(req, force_nonblock)
    submit_sqe_after_ctx,  // 5.19-6.1: io_uring_submit_sqe(ctx, req, ...)
};
IoUringSubmit io_uring_submit_tracepoint();

// bpf_task_pt_regs() (5.15), as the programs test it (enum bpf_func_id in the kernel's BTF).
bool has_task_pt_regs();

}  // namespace portwatch
