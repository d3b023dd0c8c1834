// SPDX-License-Identifier: Apache-2.0
#include "output/names.h"

#include <cstring>

namespace portwatch {

std::string_view name_of(How how) {
    return name_in(kHowNames, how);
}

std::string_view name_of(Syscall syscall) {
    return name_in(kSyscallNames, syscall);
}

std::string_view name_of(Proto proto) {
    return name_in(kProtoNames, proto);
}

std::string_view name_of(Family family) {
    return name_in(kFamilyNames, family);
}

std::string_view name_of(ReleaseReason reason) {
    return name_in(kReleaseReasonNames, reason);
}

std::string errno_name(int error) {
    if (const char *name = strerrorname_np(error)) return name;
    return "E" + std::to_string(error);
}

std::optional<Proto> parse_proto(std::string_view text) {
    return value_named(kProtoNames, text);
}

std::optional<Family> parse_family(std::string_view text) {
    return value_named(kFamilyNames, text);
}

}  // namespace portwatch
