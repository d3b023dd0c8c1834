// SPDX-License-Identifier: GPL-2.0-only
/* hook_floor.bpf.c: trivial programs on the hooks portwatch uses, for
 * scripts/bench-cost.py and scripts/bench-vm.py. Each one does
 * (almost) nothing: the early exit or the single helper call a real program
 * needs at the least, so that what a benchmark measures with them attached is
 * the cost of the hooks themselves (tracepoint or cgroup/sockops dispatch),
 * not of any work done in them.
 *
 * Loaded and attached by tests/bench/hook_floor.cpp, by program name. */

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

char LICENSE[] SEC("license") = "GPL";

#define IPPROTO_UDP 17

/* One slot per program that counts anything; user space never needs to read
 * them, they only keep the early-exit branches from being optimized away. */
enum floor_slot {
    SLOT_SYS_EXIT,
    SLOT_SET_STATE,
    SLOT_DESTROY,
    SLOT_SOCK_RELEASE,
    SLOT_COUNT,
};

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, SLOT_COUNT);
    __type(key, __u32);
    __type(value, __u64);
} floor_counts SEC(".maps");

static __always_inline void count(__u32 slot) {
    __u64 *value = bpf_map_lookup_elem(&floor_counts, &slot);
    if (value) *value += 1;
}

SEC("tp_btf/sys_exit")
int BPF_PROG(floor_sys_exit, struct pt_regs *regs, long ret) {
#if defined(__TARGET_ARCH_x86)
    long nr = regs->orig_ax;

    /* x86_64: connect 42, sendto 44, sendmsg 46, bind 49, listen 50, sendmmsg 307 */
    if (nr != 49 && nr != 50 && nr != 42 && nr != 44 && nr != 46 && nr != 307) return 0;
    if (ret >= 0) return 0;
    count(SLOT_SYS_EXIT);
#endif
    /* other architectures: attached, but returns at once */
    return 0;
}

SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(floor_set_state, const struct sock *sk, int oldstate, int newstate) {
    if (newstate != TCP_CLOSE) return 0;
    count(SLOT_SET_STATE);
    return 0;
}

SEC("tp_btf/tcp_destroy_sock")
int BPF_PROG(floor_destroy, struct sock *sk) {
    if (sk->__sk_common.skc_cookie.counter == 0) return 0;
    count(SLOT_DESTROY);
    return 0;
}

SEC("cgroup/sock_create")
int floor_sock_create(struct bpf_sock *ctx) {
    bpf_get_socket_cookie(ctx);
    return 1;
}

SEC("cgroup/sock_release")
int floor_sock_release(struct bpf_sock *ctx) {
    if (ctx->protocol == IPPROTO_UDP) count(SLOT_SOCK_RELEASE);
    return 1;
}

SEC("sockops")
int floor_sockops_noop(struct bpf_sock_ops *ops) {
    return 1;
}

/* Asks for STATE_CB on outgoing TCP connections (and takes it back from
 * accepted ones, which inherit their listener's flags), so the TCP state
 * changes of every connect() also go through the sockops dispatch. */
SEC("sockops")
int floor_sockops_state(struct bpf_sock_ops *ops) {
    switch (ops->op) {
        case BPF_SOCK_OPS_TCP_CONNECT_CB:
            bpf_sock_ops_cb_flags_set(ops, ops->bpf_sock_ops_cb_flags | BPF_SOCK_OPS_STATE_CB_FLAG);
            break;
        case BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB:
            bpf_sock_ops_cb_flags_set(ops,
                                      ops->bpf_sock_ops_cb_flags & ~BPF_SOCK_OPS_STATE_CB_FLAG);
            break;
    }
    return 1;
}

/* The rest of portwatch's tracepoint set: sys_enter, returning at once. */
SEC("tp_btf/sys_enter")
int BPF_PROG(floor_sys_enter, struct pt_regs *regs, long id) {
    return 0;
}

/* portwatch's fexit set, returning at once: the cost of the trampolines themselves. Loaded
 * only where asked for (kernels without trampolines refuse them). */
SEC("?fexit/inet_hash_connect")
int BPF_PROG(floor_fexit_inet_hash_connect, void *death_row, struct sock *sk, int ret) {
    return 0;
}

SEC("?fexit/inet6_hash_connect")
int BPF_PROG(floor_fexit_inet6_hash_connect, void *death_row, struct sock *sk, int ret) {
    return 0;
}

SEC("?fexit/inet_csk_get_port")
int BPF_PROG(floor_fexit_inet_csk_get_port, struct sock *sk, unsigned short snum, int ret) {
    return 0;
}

SEC("?fexit/udp_lib_get_port")
int BPF_PROG(floor_fexit_udp_lib_get_port, struct sock *sk, unsigned short snum,
             unsigned int hash2_nulladdr, int ret) {
    return 0;
}

SEC("?fexit/udp_disconnect")
int BPF_PROG(floor_fexit_udp_disconnect, struct sock *sk, int flags, int ret) {
    return 0;
}

SEC("?fexit/inet_dgram_connect")
int BPF_PROG(floor_fexit_inet_dgram_connect, struct socket *sock, struct sockaddr *uaddr,
             int addr_len, int flags, int ret) {
    return 0;
}

/* portwatch's io_uring tracepoints (kernel 5.19+), returning at once. Loaded only where asked
 * for: which submit tracepoint exists, and its arguments, depend on the kernel. */
SEC("?tp_btf/io_uring_submit_req")
int BPF_PROG(floor_io_uring_submit_req) {
    return 0;
}

SEC("?tp_btf/io_uring_submit_sqe")
int BPF_PROG(floor_io_uring_submit_sqe) {
    return 0;
}

SEC("?tp_btf/io_uring_complete")
int BPF_PROG(floor_io_uring_complete) {
    return 0;
}
