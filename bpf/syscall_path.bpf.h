// SPDX-License-Identifier: GPL-2.0-only
/* Part of portwatch.bpf.c, the tracepoint hook set: bind, listen, connect and send* seen at
 * tp_btf/sys_enter and sys_exit, for kernels where fexit cannot attach. */
#ifndef PORTWATCH_SYSCALL_PATH_BPF_H
#define PORTWATCH_SYSCALL_PATH_BPF_H

#include "records.bpf.h"

/* The maps of calls in flight (pending, tcp_calls_in_flight, io_uring_calls) are plain hashes,
 * resized by user space with held_ports (--max-tracked-sockets / 4): a call that does not fit
 * is counted in pending_overflow, where an LRU map would evict another call in flight unseen.
 * Each entry says below what removes it. */

/* By thread. Removed at the call's sys_exit, which runs even for a thread killed inside the
 * call (syscall_exit_to_user_mode() traces the exit before exit_to_user_mode_loop() delivers
 * the fatal signal); replaced at the thread's next call. */
struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 16384); /* resized by user space */
    __type(key, __u32);
    __type(value, struct pending_call);
} pending SEC(".maps");
static struct key_counts pending_keys; /* sys_exit of a TCP connect() looks up a tid it lacks */

static __always_inline void count_pending_overflow(void)
{
    struct pw_counters *c = this_cpu_counters();
    if (c)
        c->pending_overflow++;
}

/* TCP calls in flight with PW_TCP_CONNECT_BY_SYSCALL (connect(), a TCP Fast Open send, listen()),
 * by socket: the release reason if the socket closed during the call (a refused connect), else 0;
 * TCP_CALL_ENDED once pw_sys_exit has held the port. pw_sys_exit reports the allocation, then
 * that release. pw_sockops, which cannot tell the caller there (no task helpers), watches only
 * the sockets marked here or in held_ports. A __u32: the only atomic op 5.10 has is a 32- or
 * 64-bit add. */
/* Removed when the call ends (end_tcp_call()), or when it could not be remembered in pending
 * or io_uring_calls, or when the socket is destroyed (pw_tcp_destroy: an io_uring connect
 * whose request posts no completion). */
struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 16384); /* resized by user space */
    __type(key, __u64);
    __type(value, __u32);
} tcp_calls_in_flight SEC(".maps");
static struct key_counts tcp_calls_keys; /* pw_tcp_destroy looks up every TCP socket */

#define TCP_CALL_REASON 0xff
#define TCP_CALL_ENDED 0x100

/* A call that passed the filters and is marked in tcp_calls_in_flight. */
static __always_inline bool marks_tcp_call(const struct pending_call *call)
{
    return tcp_connect_path == PW_TCP_CONNECT_BY_SYSCALL && call->proto == IPPROTO_TCP &&
           call->syscall != PW_SYSCALL_BIND;
}

/* Marks a call of marks_tcp_call(); false (counted) if tcp_calls_in_flight is full. */
static __always_inline bool mark_tcp_call(const struct pending_call *call)
{
    __u32 open = 0;
    if (!update_counted(&tcp_calls_in_flight, &tcp_calls_keys, call->sk, &call->sk, &open))
        return true;
    count_pending_overflow();
    return false;
}

static __always_inline void unmark_tcp_call(__u64 sk)
{
    delete_counted(&tcp_calls_in_flight, &tcp_calls_keys, sk, &sk);
}

static __always_inline bool tcp_call_in_flight(const struct sock *sk)
{
    __u64 key = (__u64)sk;
    return bpf_map_lookup_elem(&tcp_calls_in_flight, &key);
}

static __always_inline struct pending_call *pending_call_of(__u32 tid)
{
    return key_may_be_in(&pending_keys, tid) ? bpf_map_lookup_elem(&pending, &tid) : NULL;
}

SEC("tp_btf/sys_enter")
int BPF_PROG(pw_sys_enter, struct pt_regs *regs, long id)
{
    struct pending_call call = {};
    call.syscall = syscall_of(id);
    if (call.syscall == PW_SYSCALL_NONE || !task_passes_filter())
        return 0;

    /* regs is the tracepoint's BTF pointer: PT_REGS_PARM1_SYSCALL loads it directly on x86 */
    struct file *file = file_of_fd(PT_REGS_PARM1_SYSCALL(regs));
    struct socket *socket = socket_of_file(file);
    /* pw_sockops reports a TCP connect() (pw_sys_exit alone a failed one), and classify_sock()
     * refuses every other stream socket: the socket's type settles it, three probe reads
     * before the sock's own. The hot path of a busy client, where each probe read counts.
     * (Read from a file that is not a socket, the type is garbage: its connect() fails with
     * ENOTSOCK and allocates nothing either way.) */
    if (call.syscall == PW_SYSCALL_CONNECT && tcp_connect_path != PW_TCP_CONNECT_BY_SYSCALL &&
        socket && BPF_CORE_READ(socket, type) == SOCK_STREAM)
        return 0;
    struct sock *sk = sock_of_socket(socket, file);
    if (!sk || !classify_sock(sk, &call))
        return 0;
    call.sk = (__u64)sk;
    call.port_before = BPF_CORE_READ(sk, __sk_common.skc_num);
    if (!read_call_args(regs, &call))
        return 0;
    bool marked = marks_tcp_call(&call);
    if (marked && !mark_tcp_call(&call))
        return 0;

    __u32 tid = (__u32)bpf_get_current_pid_tgid();
    if (update_counted(&pending, &pending_keys, tid, &tid, &call)) {
        if (marked)
            unmark_tcp_call(call.sk);
        count_pending_overflow();
    }
    return 0;
}

/* A TCP connect() has no sys_enter state. It allocated nothing if the socket has
 * no source port after it: inet_sport is set once inet_hash_connect() chose one,
 * and stays set when the connection is refused (then pw_sockops reported both
 * the allocation and the release, and this is not an allocation failure). */
static __always_inline void record_failed_tcp_connect(struct pt_regs *regs, long ret)
{
    struct pending_call call = {.syscall = PW_SYSCALL_CONNECT};
    if (!task_passes_filter())
        return;
    struct sock *sk = sock_of_fd(PT_REGS_PARM1_CORE_SYSCALL(regs));
    if (!sk || !classify_sock(sk, &call) || call.proto != IPPROTO_TCP)
        return;
    const struct inet_sock *inet = (const void *)sk;
    if (BPF_CORE_READ(sk, __sk_common.skc_num) || BPF_CORE_READ(inet, inet_sport))
        return;
    read_user_sockaddr((void *)PT_REGS_PARM2_CORE_SYSCALL(regs), &call);
    record_allocation(&call, sk, 0, (__s32)-ret, false);
}

/* Unmarks a TCP call whose port, if it got one, is now in held_ports: the release reason if
 * the socket closed during the call. The close may be on another CPU right now (the peer's
 * RST, on_tcp_close()): the locked add orders the held_ports update before the reason is read
 * (x86 lets a load pass an earlier store), as on_tcp_close()'s add orders its reason before
 * its held_ports lookup. So at least one side sees the other's write, and the one that
 * deletes the port from held_ports reports the release (release_port()). */
static __always_inline __u8 end_tcp_call(const struct pending_call *call)
{
    __u32 *mark = bpf_map_lookup_elem(&tcp_calls_in_flight, &call->sk);
    __u8 reason = 0;
    if (mark) {
        __sync_fetch_and_add(mark, TCP_CALL_ENDED);
        reason = *(volatile __u32 *)mark & TCP_CALL_REASON;
    }
    unmark_tcp_call(call->sk);
    return reason;
}

/* A TCP connect() tracked by the syscall path (PW_TCP_CONNECT_BY_SYSCALL). The port is
 * inet_sport: a refused connect's RST already gave inet_num back (tcp_done() ->
 * inet_put_port()), and pw_sockops then left the release to us. */
static __always_inline void finish_tcp_connect(const struct pending_call *call,
                                               const struct sock *sk, long ret)
{
    const struct inet_sock *inet = (const void *)sk;
    __u16 port_after = bpf_ntohs(BPF_CORE_READ(inet, inet_sport));
    if (port_after)
        record_allocation(call, sk, port_after, 0, true);
    else if (is_failure(ret))
        record_allocation(call, sk, 0, (__s32)-ret, false);
    __u8 reason = end_tcp_call(call);
    if (port_after && reason)
        release_port(cookie_of(sk), reason);
}

/* The call is over: 0 -> N allocated port N, N -> 0 gave it back, still 0 and an errno
 * is a failed allocation. */
static __always_inline void finish_call(const struct pending_call *call, const struct sock *sk,
                                        long ret)
{
    if (call->proto == IPPROTO_TCP && call->syscall == PW_SYSCALL_CONNECT) {
        finish_tcp_connect(call, sk, ret);
        return;
    }
    __u16 port_after = BPF_CORE_READ(sk, __sk_common.skc_num);
    if (call->port_before == 0 && port_after != 0)
        record_allocation(call, sk, port_after, 0, true);
    else if (call->port_before != 0 && port_after == 0)
        release_port(cookie_of(sk), PW_RELEASE_DISCONNECT);
    else if (call->port_before == 0 && is_failure(ret))
        record_allocation(call, sk, port_after, (__s32)-ret, false);
    if (!marks_tcp_call(call))
        return;
    __u8 reason = end_tcp_call(call); /* a listen() or TCP Fast Open send, now held */
    if (reason)
        release_port(cookie_of(sk), reason);
}

/* The number of the syscall ending, read through the tracepoint's BTF pointer: a load,
 * where syscall_nr()'s probe read cost every syscall of the host ~15 ns (bpf_stats). */
static __always_inline long syscall_nr_at_exit(const struct pt_regs *regs)
{
#if defined(__TARGET_ARCH_x86)
    return regs->orig_ax;
#elif defined(__TARGET_ARCH_arm64)
    return regs->syscallno;
#else
    return -1;
#endif
}

SEC("tp_btf/sys_exit")
int BPF_PROG(pw_sys_exit, struct pt_regs *regs, long ret)
{
    long nr = syscall_nr_at_exit(regs);
#if defined(__TARGET_ARCH_x86) || defined(__TARGET_ARCH_arm64)
    /* cheap early exit for the syscalls we never track */
    if (syscall_of(nr) == PW_SYSCALL_NONE)
        return 0;
#endif
    __u32 tid = (__u32)bpf_get_current_pid_tgid();
    struct pending_call *entry = pending_call_of(tid);
    if (!entry) {
        if (nr == nr_connect && is_failure(ret))
            record_failed_tcp_connect(regs, ret);
        return 0;
    }
    struct pending_call call = *entry;
    delete_counted(&pending, &pending_keys, tid, &tid);
    finish_call(&call, (void *)call.sk, ret);
    return 0;
}

/* This thread is inside a bind/listen/send call on sk that pw_sys_exit reports. */
static __always_inline bool in_reported_call(const struct sock *sk)
{
    __u32 tid = (__u32)bpf_get_current_pid_tgid();
    struct pending_call *call = pending_call_of(tid);
    return call && call->sk == (__u64)sk;
}

#endif /* PORTWATCH_SYSCALL_PATH_BPF_H */
