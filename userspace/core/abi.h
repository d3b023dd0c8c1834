// The kernel/user records (bpf/portwatch_abi.h), with their layout pinned: a
// change on one side that the other does not see fails the build here.
#pragma once

#include <cstddef>

#include "portwatch_abi.h"

static_assert(sizeof(pw_record_header) == 16);
static_assert(sizeof(pw_socket) == 56);
static_assert(offsetof(pw_socket, local_addr) == 16);
static_assert(offsetof(pw_socket, remote_addr) == 32);
static_assert(offsetof(pw_socket, remote_port) == 48);
static_assert(sizeof(pw_task) == 40);
static_assert(offsetof(pw_task, comm) == 24);
static_assert(sizeof(pw_allocate_record) == 120);
static_assert(offsetof(pw_allocate_record, sock) == 16);
static_assert(offsetof(pw_allocate_record, task) == 72);
static_assert(offsetof(pw_allocate_record, error) == 112);
static_assert(sizeof(pw_held_port) == 112);
static_assert(offsetof(pw_held_port, how) == 104);
static_assert(sizeof(pw_release_record) == 136);
static_assert(offsetof(pw_release_record, reason) == 128);
static_assert(sizeof(pw_counters) == 2 * PW_RECORD_TYPE_COUNT * PW_HOW_COUNT * 8 + 16);
