// SPDX-License-Identifier: Apache-2.0
// The kernel/user records (bpf/portwatch_abi.h), whose sizes and offsets that header pins
// for both compilers.
#pragma once

#include "portwatch_abi.h"
