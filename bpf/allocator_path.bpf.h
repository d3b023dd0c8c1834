// SPDX-License-Identifier: GPL-2.0-only
/* Part of portwatch.bpf.c, the fexit hook set. */
#ifndef PORTWATCH_ALLOCATOR_PATH_BPF_H
#define PORTWATCH_ALLOCATOR_PATH_BPF_H

#include "io_uring_calls.bpf.h"
#include "records.bpf.h"

/* The kernel's port allocators, in the caller's context, only
 * when a port is chosen. Where trampolines attach (not on every kernel: user space tries). */

/* Where the user registers are below task->stack before bpf_task_pt_regs() (5.15): measured
 * at start-up by pw_calibrate_user_regs (Capture::calibrate_user_regs()), not computed from a
 * THREAD_SIZE that KASAN and configurations change. 0 until measured: not read. */
__u64 user_regs_offset = 0;
__u32 calibration_tid = 0; /* the thread user space makes the calibration call from */

/* The calibration call (portwatch_abi.h) is the one user space made when its arguments match.
 * At sys_enter, regs is task_pt_regs(current): do_syscall_64() hands its own to the tracepoint. */

SEC("?tp_btf/sys_enter")
int BPF_PROG(pw_calibrate_user_regs, struct pt_regs *regs, long id)
{
    if ((__u32)bpf_get_current_pid_tgid() != calibration_tid || id != nr_bind)
        return 0;
    if (PT_REGS_PARM2_SYSCALL(regs) != PW_CALIBRATION_ADDR ||
        PT_REGS_PARM3_SYSCALL(regs) != PW_CALIBRATION_LEN)
        return 0;
    struct task_struct *task = (void *)bpf_get_current_task();
    __u64 stack = (__u64)BPF_CORE_READ(task, stack);
    __u64 at = 0; /* the pointer as a number: the verifier stores no pointer in a global */
    bpf_probe_read_kernel(&at, sizeof(at), &regs);
    user_regs_offset = at - stack;
    return 0;
}

/* The registers the task entered the kernel with: which syscall it is in, and its
 * arguments. NULL before the offset is measured. */
static __always_inline struct pt_regs *current_user_regs(void)
{
    if (bpf_core_enum_value_exists(enum bpf_func_id, BPF_FUNC_task_pt_regs))
        return (struct pt_regs *)bpf_task_pt_regs(bpf_get_current_task_btf());
    __u64 offset = user_regs_offset;
    if (!offset)
        return NULL;
    struct task_struct *task = (void *)bpf_get_current_task();
    return (struct pt_regs *)(BPF_CORE_READ(task, stack) + offset);
}

/* The call of the syscall the task is in, with the sockaddr it passed (a sendto()'s
 * destination, a bind()'s address), or of the io_uring op issued on sk. Reached another
 * way (a kernel socket), PW_SYSCALL_NONE. */
static __always_inline void read_current_call(const struct sock *sk, struct pending_call *call)
{
    struct pt_regs *regs = current_user_regs();
    call->syscall = regs ? syscall_of(syscall_nr(regs)) : PW_SYSCALL_NONE;
    if (call->syscall != PW_SYSCALL_NONE) {
        read_call_args(regs, call);
        return;
    }
    const struct pending_call *op = io_uring_call_on(sk);
    if (!op)
        return;
    call->syscall = op->syscall;
    call->req_family = op->req_family;
    call->req_port = op->req_port;
    __builtin_memcpy(call->req_addr, op->req_addr, PW_ADDR_LEN);
}

/* inet_hash_connect() (tcp_v4_connect()) and inet6_hash_connect() (tcp_v6_connect()) chose
 * the port of a TCP connect(), or failed with the errno connect() returns (-EADDRNOTAVAIL).
 * Also reached through sendto(MSG_FASTOPEN). A socket bind() gave a port re-checks it here. */
static __always_inline void on_hash_connect(struct sock *sk, int ret)
{
    struct pending_call call = {};
    if (!task_passes_filter() || !classify_sock(sk, &call) || call.proto != IPPROTO_TCP)
        return;
    if (in_held_ports(cookie_of(sk)) || (!ret && is_bind_locked(sk)))
        return; /* bind() chose the port */
    read_current_call(sk, &call);
    if (call.syscall == PW_SYSCALL_NONE)
        call.syscall = PW_SYSCALL_CONNECT;
    call.req_family = AF_UNSPEC; /* the remote is on the socket already */
    __u16 port = BPF_CORE_READ(sk, __sk_common.skc_num);
    if (ret)
        record_allocation(&call, sk, 0, -ret, false);
    else if (port)
        record_allocation(&call, sk, port, 0, true);
}

SEC("?fexit/inet_hash_connect")
int BPF_PROG(pw_inet_hash_connect, struct inet_timewait_death_row *death_row, struct sock *sk,
             int ret)
{
    on_hash_connect(sk, ret);
    return 0;
}

SEC("?fexit/inet6_hash_connect")
int BPF_PROG(pw_inet6_hash_connect, struct inet_timewait_death_row *death_row, struct sock *sk,
             int ret)
{
    on_hash_connect(sk, ret);
    return 0;
}

/* inet_csk_get_port(): bind() (snum 0: bind_ephemeral) and listen()'s autobind. A
 * nonzero return is bind()'s and listen()'s -EADDRINUSE (__inet_bind(),
 * inet_csk_listen_start()). */
SEC("?fexit/inet_csk_get_port")
int BPF_PROG(pw_inet_csk_get_port, struct sock *sk, unsigned short snum, int ret)
{
    struct pending_call call = {};
    if (!task_passes_filter() || !classify_sock(sk, &call) || call.proto != IPPROTO_TCP)
        return 0;
    /* inet_csk_listen_start() sets TCP_LISTEN, then takes again the port bind() gave */
    bool listening = BPF_CORE_READ(sk, __sk_common.skc_state) == TCP_LISTEN;
    if (listening && snum)
        return 0;
    call.syscall = listening ? PW_SYSCALL_LISTEN : PW_SYSCALL_BIND;
    call.req_port = snum;
    /* __inet_bind() set the address before it asked for the port, and clears it after a
     * failure: now it still says what the failed bind() wanted */
    if (call.family == AF_INET)
        bpf_core_read(call.req_addr, 4, &sk->__sk_common.skc_rcv_saddr);
    else
        bpf_core_read(call.req_addr, PW_ADDR_LEN, &sk->__sk_common.skc_v6_rcv_saddr);
    __u16 port = BPF_CORE_READ(sk, __sk_common.skc_num);
    if (ret)
        record_allocation(&call, sk, 0, EADDRINUSE, false);
    else if (port)
        record_allocation(&call, sk, port, 0, true);
    return 0;
}

/* A UDP connect() autobinds (inet_dgram_connect() -> inet_autobind() -> udp_lib_get_port())
 * before the protocol's connect (__ip4_datagram_connect(), __ip6_datagram_connect()) takes the
 * source address from the route: at udp_lib_get_port() the socket's address is still the
 * wildcard. Its record waits here, per thread, for inet_dgram_connect() to return. */
struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 1024);
    __type(key, __u64); /* pid_tgid */
    __type(value, struct pending_call);
} udp_connects_in_flight SEC(".maps");

/* udp_lib_get_port(): UDP bind(), and the autobind of connect() and send*() on an unbound
 * socket (inet_autobind()). Which syscall the task is in says which. A nonzero return is
 * bind()'s -EADDRINUSE (__inet_bind()) or the autobind's -EAGAIN (inet_autobind()). */
SEC("?fexit/udp_lib_get_port")
int BPF_PROG(pw_udp_lib_get_port, struct sock *sk, unsigned short snum, unsigned int hash2_nulladdr,
             int ret)
{
    struct pending_call call = {};
    if (!task_passes_filter() || !classify_sock(sk, &call) || call.proto != IPPROTO_UDP)
        return 0;
    read_current_call(sk, &call);
    if (snum || call.syscall == PW_SYSCALL_BIND) {
        call.syscall = PW_SYSCALL_BIND;
        call.req_port = snum;
    }
    __u16 port = BPF_CORE_READ(sk, __sk_common.skc_num);
    if (ret) {
        record_allocation(&call, sk, 0, call.syscall == PW_SYSCALL_BIND ? EADDRINUSE : EAGAIN,
                          false);
        return 0;
    }
    if (!port)
        return 0;
    __u64 thread = bpf_get_current_pid_tgid();
    /* a full map only costs the address: the record goes now, with the wildcard */
    if (call.syscall == PW_SYSCALL_CONNECT &&
        !bpf_map_update_elem(&udp_connects_in_flight, &thread, &call, BPF_ANY))
        return 0;
    record_allocation(&call, sk, port, 0, true);
    return 0;
}

/* connect() on a datagram socket, IPv4 and IPv6 (inet6_dgram_ops too), also from io_uring:
 * the record of its autobind, now with the source address the route gave (or still the
 * wildcard if the connect failed after the autobind: the port stays allocated). */
SEC("?fexit/inet_dgram_connect")
int BPF_PROG(pw_inet_dgram_connect, struct socket *sock, struct sockaddr *uaddr, int addr_len,
             int flags, int ret)
{
    __u64 thread = bpf_get_current_pid_tgid();
    struct pending_call *waiting = bpf_map_lookup_elem(&udp_connects_in_flight, &thread);
    if (!waiting)
        return 0;
    struct pending_call call = *waiting;
    bpf_map_delete_elem(&udp_connects_in_flight, &thread);
    struct sock *sk = BPF_CORE_READ(sock, sk);
    __u16 port = BPF_CORE_READ(sk, __sk_common.skc_num);
    if (port)
        record_allocation(&call, sk, port, 0, true);
    return 0;
}

/* connect(AF_UNSPEC) on UDP: udp_disconnect() gives back a port bind() did not lock. */
SEC("?fexit/udp_disconnect")
int BPF_PROG(pw_udp_disconnect, struct sock *sk, int flags, int ret)
{
    if (!BPF_CORE_READ(sk, __sk_common.skc_num))
        release_port(cookie_of(sk), PW_RELEASE_DISCONNECT);
    return 0;
}

#endif /* PORTWATCH_ALLOCATOR_PATH_BPF_H */
