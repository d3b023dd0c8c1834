// SPDX-License-Identifier: GPL-2.0-only
/* Part of portwatch.bpf.c, in both hook sets: the io_uring ops in flight, by socket, that
 * io_uring_path.bpf.h fills at submission. The fexit set's allocators only read the op's kind
 * from here (io_uring_call_on()); the tracepoint set also reports the op at completion. */
#ifndef PORTWATCH_IO_URING_CALLS_BPF_H
#define PORTWATCH_IO_URING_CALLS_BPF_H

#include "records.bpf.h"

struct io_uring_call {
    struct pending_call call;
    __u64 req;
};

/* One op in flight per socket is enough: ops on one socket in flight together are of one
 * kind (sends), and only the first of them can allocate. Removed at the op's completion
 * (cancelled ops, a failed IOSQE_CQE_SKIP_SUCCESS op and a ring torn down post one too),
 * replaced by the next op on the socket, and removed when a TCP socket is destroyed
 * (pw_tcp_destroy). Left behind: an op that completes unseen, a successful
 * IOSQE_CQE_SKIP_SUCCESS op (no CQE, no io_uring_complete) or one cancelled before it was
 * given its file, on a UDP socket then closed (cgroup/sock_release has no sock pointer). */
struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 16384); /* resized by user space */
    __type(key, __u64);
    __type(value, struct io_uring_call);
} io_uring_calls SEC(".maps");
static struct key_counts io_uring_keys; /* pw_tcp_destroy looks up every TCP socket */

/* The op the fexit set's allocator is inside, if io_uring issued it on sk. */
static __always_inline const struct pending_call *io_uring_call_on(const struct sock *sk)
{
    __u64 key = (__u64)sk;
    struct io_uring_call *entry = bpf_map_lookup_elem(&io_uring_calls, &key);
    return entry ? &entry->call : NULL;
}

#endif /* PORTWATCH_IO_URING_CALLS_BPF_H */
