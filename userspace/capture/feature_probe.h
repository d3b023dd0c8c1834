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

std::string kernel_release();  // uname -r, or "unknown"

}  // namespace portwatch
