// SPDX-License-Identifier: GPL-2.0-only
/* Part of portwatch.bpf.c, in both hook sets: TCP connect (where sockops sees the task) and
 * TCP releases from sockops, tcp_destroy_sock, and the cgroup socket hooks (cookies, UDP
 * release).
 *
 * Why these release hooks in the fexit set too, where fexit/kprobes could reach
 * tcp_set_state() or inet_put_port(): sockops STATE_CB runs only for the sockets
 * pw_sockops asked it for (bpf_sock_ops_cb_flags_set(), tcp_call_bpf_2arg() in
 * tcp_set_state()), where a trampoline on tcp_set_state() would run on every state change
 * of every TCP socket, accepted ones included; and it runs before the socket is unhashed,
 * which is what tells a TIME_WAIT hand-off (inet_twsk_hashdance_schedule()) from a close.
 * tcp_destroy_sock and cgroup/sock_release run once per socket, at its end. */
#ifndef PORTWATCH_SOCKOPS_PATH_BPF_H
#define PORTWATCH_SOCKOPS_PATH_BPF_H

#include "io_uring_path.bpf.h" /* forget_calls_on() */
#include "syscall_path.bpf.h"  /* the calls in flight that report a port themselves */

/* The sockets whose connect record_tcp_connect() reported, while a filter is set: STATE_CB
 * flags are the socket's, not the program's (bpf_sock_ops_cb_flags_set()), so another sockops
 * program (another agent) may have asked for the closes of sockets the filters refused.
 * Unfiltered, every connect that reaches on_tcp_close() unheld was reported. */
struct {
    __uint(type, BPF_MAP_TYPE_SK_STORAGE);
    __uint(map_flags, BPF_F_NO_PREALLOC);
    __type(key, int);
    __type(value, __u8);
} filtered_connects SEC(".maps");

static __always_inline bool filters_set(void)
{
    return filter_pid_count || filter_uid_count || filter_port_count || filter_comm_enabled ||
           filter_cgroup_count || filter_any_cgroup_count || filter_netns || filter_proto || filter_family;
}

/* pw_sockops reads the socket through a BTF pointer (bpf_skc_to_tcp_sock()), so
 * these use direct loads, not the probe reads the syscall path needs. */

/* The full socket was swapped for a TIME_WAIT one: inet_twsk_hashdance_schedule()
 * unhashes it from the established table before tcp_time_wait() calls tcp_done(). */
static __always_inline bool handed_to_time_wait(const struct sock *sk, int oldstate)
{
    bool closing = oldstate == TCP_FIN_WAIT1 || oldstate == TCP_FIN_WAIT2 ||
                   oldstate == TCP_CLOSING || oldstate == TCP_TIME_WAIT;
    return closing && !sk->__sk_common.skc_nulls_node.pprev;
}

/* The source port from inet_sport: inet_num is already 0 when a refused connect's
 * RST took the bind bucket (tcp_done() -> inet_put_port()) before CLOSE. */
static __always_inline void fill_tcp_socket(const struct sock *sk, __u64 cookie,
                                            struct pw_socket *out)
{
    const struct sock_common *common = &sk->__sk_common;
    __builtin_memset(out, 0, sizeof(*out)); /* out may be ring buffer memory */
    out->cookie = cookie;
    out->netns = common->skc_net.net->ns.inum;
    out->proto = IPPROTO_TCP;
    out->family = common->skc_family;
    out->local_port = bpf_ntohs(((const struct inet_sock *)sk)->inet_sport);
    out->remote_port = bpf_ntohs(common->skc_dport);
    if (out->family == AF_INET) {
        __builtin_memcpy(out->local_addr, &common->skc_rcv_saddr, 4);
        __builtin_memcpy(out->remote_addr, &common->skc_daddr, 4);
    } else {
        __builtin_memcpy(out->local_addr, &common->skc_v6_rcv_saddr, PW_ADDR_LEN);
        __builtin_memcpy(out->remote_addr, &common->skc_v6_daddr, PW_ADDR_LEN);
    }
}

static __always_inline bool tcp_socket_passes_filter(const struct sock *sk)
{
    const struct sock_common *common = &sk->__sk_common;
    __u16 family = common->skc_family;
    if ((filter_family && family != filter_family) || (filter_proto && filter_proto != IPPROTO_TCP))
        return false;
    if (family != AF_INET && family != AF_INET6)
        return false;
    return !filter_netns || common->skc_net.net->ns.inum == filter_netns;
}

/* The struct sock behind a sock_ops context, as a BTF pointer. */
static __always_inline struct sock *sock_of_ops(struct bpf_sock_ops *ops)
{
    struct bpf_sock *bsk = ops->sk;
    return bsk ? (struct sock *)bpf_skc_to_tcp_sock(bsk) : NULL;
}

/* From now on pw_sockops also sees this socket's state changes (tcp_set_state()). */
static __always_inline void watch_state_changes(struct bpf_sock_ops *ops)
{
    bpf_sock_ops_cb_flags_set(ops, ops->bpf_sock_ops_cb_flags | BPF_SOCK_OPS_STATE_CB_FLAG);
}

/* Filled in the ring buffer itself: a copy through the stack cost ~25 ns a record (bpf_stats). */
static __always_inline void record_tcp_connect(const struct sock *sk, __u64 cookie)
{
    struct pw_allocate_record *r =
        reserve_record(sizeof(*r), PW_RECORD_ALLOCATE, PW_HOW_CONNECT_AUTOBIND);
    if (!r)
        return;
    fill_tcp_socket(sk, cookie, &r->sock);
    fill_task(&r->task);
    r->error = 0;
    r->how = PW_HOW_CONNECT_AUTOBIND;
    r->syscall = PW_SYSCALL_CONNECT;
    /* by construction: __inet_hash_connect() (or an inet_csk_get_port() autobind before the
     * agent started) took it from the range, skipping reserved ports; reading the range here
     * again cost five probe reads on every connect() */
    r->ephemeral = true;
    r->pad = 0;
    submit_record(r);
}

/* TCP_CONNECT_CB: tcp_connect() runs it after inet_hash_connect() chose the port,
 * in the caller's context. Only the sockets whose port is reported are watched: the close of
 * any other would reach user space only to be dropped, with the filters' work undone. */
static __always_inline void on_tcp_connect(struct bpf_sock_ops *ops)
{
    struct sock *sk = sock_of_ops(ops);
    if (!sk)
        return;
    __u64 cookie = bpf_get_socket_cookie(ops); /* made now if the socket predates the agent */
    if (tcp_connect_path != PW_TCP_CONNECT_BY_SOCKOPS) {
        /* fexit/inet_hash_connect held the port before tcp_connect(); pw_sys_enter marked the
         * call, and pw_sys_exit holds it after this callback */
        bool by_syscall = tcp_connect_path == PW_TCP_CONNECT_BY_SYSCALL;
        if (in_held_ports(cookie) || (by_syscall && tcp_call_in_flight(sk)))
            watch_state_changes(ops);
        return;
    }
    /* TCP Fast Open: tcp_sendmsg_fastopen() sets fastopen_req around the connect,
     * and pw_sys_exit reports that sendto()/sendmsg() */
    bool fast_open = ((const struct tcp_sock *)sk)->fastopen_req;
    if ((fast_open && in_reported_call(sk)) || in_held_ports(cookie)) {
        watch_state_changes(ops);
        return;
    }
    /* bound before the agent started: the port is not new */
    if (is_bind_locked(sk) || !task_passes_filter() || !tcp_socket_passes_filter(sk) ||
        !port_passes_filter(sk->__sk_common.skc_num))
        return;
    record_tcp_connect(sk, cookie);
    if (filters_set())
        bpf_sk_storage_get(&filtered_connects, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
    watch_state_changes(ops);
}

/* The release of a port record_tcp_connect() reported: PW_HOW_NONE, user space
 * joins the owner by cookie. Counted as connect_autobind. */
static __always_inline void record_tcp_connect_release(const struct sock *sk, __u64 cookie,
                                                       __u8 reason)
{
    struct pw_release_record *r =
        reserve_record(sizeof(*r), PW_RECORD_RELEASE, PW_HOW_CONNECT_AUTOBIND);
    if (!r)
        return;
    __builtin_memset(&r->held, 0, sizeof(r->held)); /* no owner: PW_HOW_NONE */
    fill_tcp_socket(sk, cookie, &r->held.sock);
    r->reason = reason;
    __builtin_memset(r->pad, 0, sizeof(r->pad));
    submit_record(r);
}

/* A socket held_ports lacks, closing on the syscall path: a TCP call on it in flight is left
 * the reason (closed inside connect(): pw_sys_exit reports the allocation, then the release).
 * That call may be ending on another CPU, its port held after the lookup that missed it and
 * its reason already read: held_ports is looked up again after the locked add (see
 * end_tcp_call()). */
static __always_inline struct pw_held_port *held_after_leaving_reason(const struct sock *sk,
                                                                      __u64 cookie, __u8 reason)
{
    __u64 key = (__u64)sk;
    __u32 *mark = bpf_map_lookup_elem(&tcp_calls_in_flight, &key);
    if (mark)
        __sync_fetch_and_add(mark, reason);
    return held_port_of(cookie);
}

/* STATE_CB(-> CLOSE): tcp_set_state() runs it before it unhashes the socket and
 * gives back a port that is not bind()-locked. */
static __always_inline void on_tcp_close(struct bpf_sock_ops *ops, int oldstate)
{
    struct sock *sk = sock_of_ops(ops);
    if (!sk)
        return;
    __u8 reason = handed_to_time_wait(sk, oldstate) ? PW_RELEASE_TIME_WAIT : PW_RELEASE_TCP_CLOSED;
    __u64 cookie = sk->__sk_common.skc_cookie.counter;
    struct pw_held_port *held = held_port_of(cookie);
    bool bind_locked = is_bind_locked(sk);
    if (!held && tcp_connect_path == PW_TCP_CONNECT_BY_SYSCALL)
        held = held_after_leaving_reason(sk, cookie, reason);
    if (!held) {
        if (!bind_locked && tcp_connect_path == PW_TCP_CONNECT_BY_SOCKOPS &&
            (!filters_set() || bpf_sk_storage_get(&filtered_connects, sk, 0, 0)))
            record_tcp_connect_release(sk, cookie, reason);
        return;
    }
    /* a bind()-locked port stays until the socket is destroyed (tcp_destroy_sock);
     * remember only that a TIME_WAIT socket will hold it on after that */
    if (bind_locked) {
        if (reason == PW_RELEASE_TIME_WAIT)
            held->pending_reason = reason;
        return;
    }
    release_port(cookie, reason);
}

/* TCP_LISTEN_CB: after inet_csk_listen_start(); pw_sys_exit reports a listen()
 * autobind, and the listener's close is a release if its port is ours. */
static __always_inline void on_tcp_listen(struct bpf_sock_ops *ops)
{
    struct sock *sk = sock_of_ops(ops);
    if (!sk)
        return;
    /* sys_exit (or io_uring_complete) holds a listen() autobind only after this callback: the
     * call is found by thread, or by socket where sockops has no task helpers;
     * fexit/inet_csk_get_port held it before */
    bool by_syscall = tcp_connect_path == PW_TCP_CONNECT_BY_SYSCALL;
    bool by_sockops = tcp_connect_path == PW_TCP_CONNECT_BY_SOCKOPS;
    if ((by_syscall && tcp_call_in_flight(sk)) ||
        (by_sockops && (in_reported_call(sk) || io_uring_call_on(sk))) ||
        in_held_ports(bpf_get_socket_cookie(ops)))
        watch_state_changes(ops);
}

SEC("sockops")
int pw_sockops(struct bpf_sock_ops *ops)
{
    switch (ops->op) {
    case BPF_SOCK_OPS_TCP_CONNECT_CB:
        on_tcp_connect(ops);
        break;
    case BPF_SOCK_OPS_TCP_LISTEN_CB:
        on_tcp_listen(ops);
        break;
    case BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB:
        /* an accepted socket inherits its listener's callback flags
         * (tcp_create_openreq_child()) but owns no port of its own */
        bpf_sock_ops_cb_flags_set(ops, ops->bpf_sock_ops_cb_flags & ~BPF_SOCK_OPS_STATE_CB_FLAG);
        break;
    case BPF_SOCK_OPS_STATE_CB:
        if (ops->args[1] == BPF_TCP_CLOSE)
            on_tcp_close(ops, ops->args[0]);
        break;
    }
    return 1;
}

SEC("tp_btf/tcp_destroy_sock")
int BPF_PROG(pw_tcp_destroy, struct sock *sk)
{
    __u64 cookie = sk->__sk_common.skc_cookie.counter;
    if (cookie)
        release_port(cookie, PW_RELEASE_SOCKET_CLOSED);
    forget_calls_on(sk);
    return 0;
}

SEC("cgroup/sock_create")
int pw_sock_create(struct bpf_sock *ctx)
{
    bpf_get_socket_cookie(ctx); /* makes the cookie exist before any allocation */
    return 1;
}

SEC("cgroup/sock_release")
int pw_sock_release(struct bpf_sock *ctx)
{
    if (ctx->protocol == IPPROTO_UDP)
        release_port(bpf_get_socket_cookie(ctx), PW_RELEASE_SOCKET_CLOSED);
    return 1;
}

#endif /* PORTWATCH_SOCKOPS_PATH_BPF_H */
