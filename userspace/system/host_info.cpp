// SPDX-License-Identifier: Apache-2.0
#include "system/host_info.h"

#include <sys/utsname.h>

namespace portwatch {

std::int64_t clock_ns(clockid_t clock) {
    timespec ts{};
    clock_gettime(clock, &ts);
    return std::int64_t(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

std::string kernel_release() {
    utsname names{};
    return uname(&names) == 0 ? names.release : "unknown";
}

}  // namespace portwatch
