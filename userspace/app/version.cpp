// SPDX-License-Identifier: Apache-2.0
#include "app/version.h"

#include "portwatch_abi.h"

namespace portwatch {

std::string version_text() {
    return std::string("portwatch ") + kPortwatchVersion + " (revision " + git_revision() +
           ", BPF ABI " + std::to_string(PW_ABI_VERSION) + ")";
}

}  // namespace portwatch
