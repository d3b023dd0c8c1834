// SPDX-License-Identifier: GPL-2.0-only
/* portwatch kernel side. Two hook sets, one chosen by user space before load:
 *
 * fexit (allocator_path.bpf.h), where trampolines attach (stock kernels): the kernel's
 *   own port allocators report the port they chose or the errno, in the caller's
 *   context, and cost nothing on syscalls that allocate no port:
 *   inet_hash_connect/inet6_hash_connect (TCP connect), inet_csk_get_port (TCP bind,
 *   listen), udp_lib_get_port (UDP bind and autobind; a UDP connect()'s record waits for
 *   inet_dgram_connect to return, with the source address), udp_disconnect (UDP release).
 * tracepoint (syscall_path.bpf.h), everywhere else: at sys_enter of bind/listen/connect/
 *   send{to,msg,mmsg} the socket's local port is remembered per thread; at sys_exit it
 *   is read again. 0 -> N means the call allocated port N; still 0 and an errno means
 *   the allocation failed. TCP connect() is seen at sockops TCP_CONNECT_CB (no map
 *   written on a busy client's hot path) where sockops may read the task, else here.
 *
 * Both (io_uring_path.bpf.h): io_uring's bind, listen, connect and send ops, which make no
 *   syscall: the port at submit, compared at completion (tracepoint set), or the op's kind
 *   for the allocators (fexit set), which read only the ops in flight (io_uring_calls.bpf.h).
 *
 * Each path includes what it uses: the fexit set's allocators records.bpf.h and
 * io_uring_calls.bpf.h, none of the tracepoint set's state.
 * Both (sockops_path.bpf.h): TCP releases at sockops STATE_CB(-> CLOSE), enabled per
 * socket once it connects or listens, and tcp_destroy_sock for bind-locked ports; UDP
 * releases at cgroup/sock_release; cookies made at cgroup/sock_create so that every
 * socket has one before it allocates. Ports are held in `held_ports` (records.bpf.h,
 * by cookie) with their owner, except a TCP port sockops reported: its release carries
 * PW_HOW_NONE and user space joins it with the allocation by cookie. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_endian.h>

#include "portwatch_abi.h"
#include "kernel_compat.bpf.h"

char LICENSE[] SEC("license") = "GPL";

/* By path; each part includes what it builds on (common <- sockets <- records). */
#include "syscall_path.bpf.h"
#include "io_uring_path.bpf.h"
#include "sockops_path.bpf.h"
#include "allocator_path.bpf.h"
#include "children.bpf.h"
