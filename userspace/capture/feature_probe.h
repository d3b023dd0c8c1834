// Asks the running kernel which of the features the programs use it has: its BTF for
// types, enumerators and tracepoints, and trial loads (libbpf_probe_*) for map types and
// helpers. Needs the privileges loading needs.
#pragma once

#include <string>

#include "core/kernel_features.h"

namespace portwatch {

struct ProbeResult {
    KernelFeatures features;
    int error = 0;             // why a trial load could not run at all (EPERM: no privileges)
    std::string failed_probe;  // which one
};

ProbeResult probe_kernel_features();

// "" when a trial fexit program attaches to inet_hash_connect() and the kernel's BTF has
// every allocator the fexit set hooks; else why not. Tried once per process.
const std::string &fexit_refusal();

std::string kernel_release();  // uname -r, or "unknown"

}  // namespace portwatch
