// SPDX-License-Identifier: GPL-2.0-only
/* Part of portwatch.bpf.c, in both hook sets: io_uring's bind, listen, connect and send ops,
 * which reach __sys_bind_socket(), __sys_listen_socket(), __sys_connect_file() and
 * __sys_sendmsg_sock() with no syscall of their own (io_uring/net.c).
 *
 * At io_uring_submit_req (io_submit_sqe(), after the op's prep, before it is issued) the
 * socket's port is remembered, by socket; at io_uring_complete (io_req_set_res() has set
 * cqe.res, req->file still holds the socket) the tracepoint set compares it as pw_sys_exit
 * does. The fexit set's allocators report the port themselves and take only the call's
 * kind from here (read_current_call()). The tracepoints carry the request since 5.19; user
 * space attaches the programs only there, and picks the submit program that fits. */
#ifndef PORTWATCH_IO_URING_PATH_BPF_H
#define PORTWATCH_IO_URING_PATH_BPF_H

#include "io_uring_calls.bpf.h"
#include "syscall_path.bpf.h"

#define REQ_F_FIXED_FILE 1 /* 1 << REQ_F_FIXED_FILE_BIT, which is IOSQE_FIXED_FILE_BIT (uapi) */

/* The opcodes come from the running kernel's enum io_uring_op (uapi, so they never
 * change; BIND and LISTEN exist since 6.11, SEND_ZC and SENDMSG_ZC since 6.0). */
#define IS_IORING_OP(op, name)                                                                     \
    (bpf_core_enum_value_exists(enum io_uring_op, name) &&                                         \
     (op) == bpf_core_enum_value(enum io_uring_op, name))

static __always_inline __u8 syscall_of_io_uring_op(__u8 op)
{
    if (IS_IORING_OP(op, IORING_OP_CONNECT))
        return PW_SYSCALL_CONNECT;
    if (IS_IORING_OP(op, IORING_OP_SENDMSG) || IS_IORING_OP(op, IORING_OP_SENDMSG_ZC))
        return PW_SYSCALL_SENDMSG;
    if (IS_IORING_OP(op, IORING_OP_SEND) || IS_IORING_OP(op, IORING_OP_SEND_ZC))
        return PW_SYSCALL_SENDTO;
    if (IS_IORING_OP(op, IORING_OP_BIND))
        return PW_SYSCALL_BIND;
    if (IS_IORING_OP(op, IORING_OP_LISTEN))
        return PW_SYSCALL_LISTEN;
    return PW_SYSCALL_NONE;
}

/* The sockaddr a bind op's prep copied (io_bind_prep()): into io_async_msghdr.addr in
 * 6.11, into async_data itself (a bare sockaddr_storage) in later kernels. The bare layout
 * is told by its family matching the socket's: io_async_msghdr starts with a pointer
 * (struct iou_vec), and an aligned pointer's low bits are never AF_INET or AF_INET6. */
static __always_inline void read_bind_sockaddr(struct io_kiocb *req, struct pending_call *call)
{
    struct io_async_msghdr *io = BPF_CORE_READ(req, async_data);
    if (!io)
        return;
    read_kernel_sockaddr(io, call);
    if (call->req_family == call->family)
        return;
    call->req_family = AF_UNSPEC;
    call->req_port = 0;
    if (bpf_core_field_exists(io->addr))
        read_kernel_sockaddr(&io->addr, call);
}

/* What the op's prep stored of its arguments: the command is the request's first member
 * (io_kiocb_to_cmd()), and its user pointers are read in the submitter's context. */
static __always_inline __u64 read_io_uring_args(struct io_kiocb *req, struct pending_call *call)
{
    switch (call->syscall) {
    case PW_SYSCALL_BIND:
        read_bind_sockaddr(req, call);
        return 0;
    case PW_SYSCALL_CONNECT:
        if (bpf_core_type_exists(struct io_connect))
            read_user_sockaddr(BPF_CORE_READ((struct io_connect *)req, addr), call);
        return 0;
    case PW_SYSCALL_SENDMSG:
    case PW_SYSCALL_SENDTO:
        if (!bpf_core_type_exists(struct io_sr_msg))
            return 0;
        struct io_sr_msg *sr = (void *)req;
        if (call->syscall == PW_SYSCALL_SENDMSG)
            read_user_sockaddr(user_msg_name(BPF_CORE_READ(sr, umsg)), call);
        return BPF_CORE_READ(sr, msg_flags);
    default:
        return 0;
    }
}

/* The socket an op names: the fd is in cqe.fd until the op is issued (io_init_req()).
 * A fixed file's socket is in the ring's file table, whose layout changed in every release:
 * not followed. */
static __always_inline struct sock *sock_of_io_uring_req(struct io_kiocb *req)
{
    __u8 low_flags = 0; /* REQ_F_FIXED_FILE is bit 0; flags grew from 32 to 64 bits (6.10) */
    bpf_core_read(&low_flags, sizeof(low_flags), &req->flags);
    if (low_flags & REQ_F_FIXED_FILE)
        return NULL;
    return sock_of_fd(BPF_CORE_READ(req, cqe.fd));
}

static __always_inline void on_io_uring_submit(struct io_kiocb *req)
{
    struct io_uring_call entry = {.req = (__u64)req};
    struct pending_call *call = &entry.call;
    call->syscall = syscall_of_io_uring_op(BPF_CORE_READ(req, opcode));
    if (call->syscall == PW_SYSCALL_NONE || !task_passes_filter())
        return;
    struct sock *sk = sock_of_io_uring_req(req);
    if (!sk || !classify_sock(sk, call))
        return;
    bool tcp_connect = call->proto == IPPROTO_TCP && call->syscall == PW_SYSCALL_CONNECT;
    if (tcp_connect && tcp_connect_path == PW_TCP_CONNECT_BY_SOCKOPS)
        return; /* pw_sockops reports it, failures included */
    call->sk = (__u64)sk;
    call->port_before = BPF_CORE_READ(sk, __sk_common.skc_num);
    if (!call_may_change_port(call, read_io_uring_args(req, call)))
        return;
    bool marked = marks_tcp_call(call);
    if (marked && !mark_tcp_call(call))
        return;
    if (update_counted(&io_uring_calls, &io_uring_keys, call->sk, &call->sk, &entry)) {
        if (marked)
            unmark_tcp_call(call->sk);
        count_pending_overflow();
    }
}

/* 6.5+: io_uring_submit_req(req). */
SEC("?tp_btf/io_uring_submit_req")
int BPF_PROG(pw_io_uring_submit_req, struct io_kiocb *req)
{
    on_io_uring_submit(req);
    return 0;
}

/* 6.2-6.4: io_uring_submit_sqe(req, force_nonblock). */
SEC("?tp_btf/io_uring_submit_sqe")
int BPF_PROG(pw_io_uring_submit_sqe, struct io_kiocb *req)
{
    on_io_uring_submit(req);
    return 0;
}

/* 5.19-6.1: io_uring_submit_sqe(ctx, req, user_data, opcode, ...), req a void *. */
SEC("?tp_btf/io_uring_submit_sqe")
int BPF_PROG(pw_io_uring_submit_sqe_after_ctx, void *ring, struct io_kiocb *req)
{
    on_io_uring_submit(req);
    return 0;
}

/* A destroyed TCP socket's calls in flight that no completion removed (pw_tcp_destroy). */
static __always_inline void forget_calls_on(const struct sock *sk)
{
    /* the pointer's value as a number (the verifier allows no & on a pointer): a read,
     * cheaper than the two deletes that mostly miss */
    __u64 key = 0;
    bpf_probe_read_kernel(&key, sizeof(key), &sk);
    if (key_may_be_in(&io_uring_keys, key))
        delete_counted(&io_uring_calls, &io_uring_keys, key, &key);
    if (key_may_be_in(&tcp_calls_keys, key))
        unmark_tcp_call(key);
}

/* 5.19+: io_uring_complete(ctx, req, ...). */
SEC("?tp_btf/io_uring_complete")
int BPF_PROG(pw_io_uring_complete, void *ring, struct io_kiocb *req)
{
    if (syscall_of_io_uring_op(BPF_CORE_READ(req, opcode)) == PW_SYSCALL_NONE)
        return 0;
    struct sock *sk = sock_of_file(BPF_CORE_READ(req, file));
    __u64 key = (__u64)sk;
    struct io_uring_call *entry = sk ? bpf_map_lookup_elem(&io_uring_calls, &key) : NULL;
    if (!entry || entry->req != (__u64)req)
        return 0;
    struct pending_call call = entry->call;
    delete_counted(&io_uring_calls, &io_uring_keys, key, &key);
    if (tcp_connect_path != PW_TCP_CONNECT_BY_FEXIT)
        finish_call(&call, sk, BPF_CORE_READ(req, cqe.res));
    return 0;
}

#endif /* PORTWATCH_IO_URING_PATH_BPF_H */
