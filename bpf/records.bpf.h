// SPDX-License-Identifier: GPL-2.0-only
/* Part of portwatch.bpf.c: the ring buffer, the loss counters and held_ports (each port's
 * owner); the reserve and submit every record goes through, and the fillers of a record's parts
 * (task, socket), so that every hook set emits the same. The syscall, fexit and io_uring paths
 * send whole records from here; the sockops path fills its TCP connect and release records in
 * the ring from these parts itself (sockops_path.bpf.h: its hot path, no copy). */
#ifndef PORTWATCH_RECORDS_BPF_H
#define PORTWATCH_RECORDS_BPF_H

#include "sockets.bpf.h"

struct {
    __uint(type, BPF_MAP_TYPE_RINGBUF);
    __uint(max_entries, 8 << 20); /* resized by user space */
} events SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, struct pw_counters);
} counters SEC(".maps");

/* Resized by user space; preallocated: no allocation on the syscall path. */
struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 1 << 16);
    __type(key, __u64);
    __type(value, struct pw_held_port);
} held_ports SEC(".maps");

static struct key_counts held_ports_keys;

/* held_ports' entry for cookie, if any. */
static __always_inline struct pw_held_port *held_port_of(__u64 cookie)
{
    if (!cookie || !key_may_be_in(&held_ports_keys, cookie))
        return NULL;
    return bpf_map_lookup_elem(&held_ports, &cookie);
}

static __always_inline struct pw_counters *this_cpu_counters(void)
{
    __u32 zero = 0;
    return bpf_map_lookup_elem(&counters, &zero);
}

static __always_inline void count_record(__u64 (*per_type)[PW_HOW_COUNT], __u16 type, __u8 how)
{
    /* checked in a register right at the use: 6.1's verifier loses the bound of a value
     * spilled to the stack before the check (pw_io_uring_complete, "R9 max value is
     * outside of the allowed memory range") */
    barrier_var(type);
    barrier_var(how);
    if (type < PW_RECORD_TYPE_COUNT && how < PW_HOW_COUNT)
        per_type[type][how]++;
}

/* Every caller tests what this returns at once, and then fills and submits a reservation on
 * every path: the 6.1 and 6.12 verifiers cannot follow a reservation across the branches the
 * compiler makes of "reserve, do other work, submit if reserved" ("Unreleased reference"). */
static __always_inline void *reserve_record(__u32 size, __u16 type, __u8 how)
{
    struct pw_counters *c = this_cpu_counters();
    struct pw_record_header *record = bpf_ringbuf_reserve(&events, size, 0);
    if (!record) {
        if (c)
            count_record(c->lost, type, how);
        return NULL;
    }
    if (c)
        count_record(c->emitted, type, how);
    record->version = PW_ABI_VERSION;
    record->type = type;
    record->size = size;
    record->boot_ns = bpf_ktime_get_boot_ns();
    return record;
}

/* Wake the reader only once enough has piled up; it also polls on a timer. */
static __always_inline void submit_record(void *record)
{
    __u64 flags = 0;
    if (wakeup_bytes)
        flags = bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA) >= wakeup_bytes ? BPF_RB_FORCE_WAKEUP
                                                                              : BPF_RB_NO_WAKEUP;
    bpf_ringbuf_submit(record, flags);
}

static __always_inline void count_untracked(void)
{
    struct pw_counters *c = this_cpu_counters();
    if (c)
        c->untracked++;
}

static __always_inline __u8 how_of(const struct pending_call *call)
{
    switch (call->syscall) {
    case PW_SYSCALL_BIND:
        return call->req_port ? PW_HOW_BIND : PW_HOW_BIND_EPHEMERAL;
    case PW_SYSCALL_LISTEN:
        return PW_HOW_LISTEN_AUTOBIND;
    case PW_SYSCALL_CONNECT:
        return PW_HOW_CONNECT_AUTOBIND;
    default: /* send*: UDP autobind, or TCP Fast Open, which connects */
        return call->proto == IPPROTO_TCP ? PW_HOW_CONNECT_AUTOBIND : PW_HOW_SENDTO_AUTOBIND;
    }
}

static __always_inline bool port_is_ephemeral(const struct sock *sk, __u16 port)
{
    struct net *net = BPF_CORE_READ(sk, __sk_common.skc_net.net);
    __u16 low, high;
    netns_local_port_range(net, &low, &high);
    if (port < low || port > high)
        return false;
    unsigned long *reserved = BPF_CORE_READ(net, ipv4.sysctl_local_reserved_ports);
    unsigned long word = 0;
    if (reserved)
        bpf_probe_read_kernel(&word, sizeof(word), &reserved[port / 64]);
    return !(word & (1UL << (port % 64)));
}

static __always_inline void fill_task(struct pw_task *task)
{
    __u64 pid_tgid = bpf_get_current_pid_tgid();
    task->pid = pid_tgid >> 32;
    task->tid = (__u32)pid_tgid;
    task->uid = (__u32)bpf_get_current_uid_gid();
    task->pad = 0;
    task->cgroup_id = bpf_get_current_cgroup_id();
    bpf_get_current_comm(task->comm, sizeof(task->comm));
}

/* The socket as it stands after the call; what the call asked for fills the gaps
 * (the remote of an unconnected sendto, the port a failed bind wanted). */
static __always_inline void fill_socket(const struct sock *sk, const struct pending_call *call,
                                        __u16 port_after, struct pw_socket *out)
{
    out->cookie = cookie_of(sk);
    out->netns = call->netns;
    out->proto = call->proto;
    out->family = call->family;
    out->local_port = port_after;
    out->remote_port = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
    if (call->family == AF_INET) {
        bpf_core_read(out->local_addr, 4, &sk->__sk_common.skc_rcv_saddr);
        bpf_core_read(out->remote_addr, 4, &sk->__sk_common.skc_daddr);
    } else {
        bpf_core_read(out->local_addr, PW_ADDR_LEN, &sk->__sk_common.skc_v6_rcv_saddr);
        bpf_core_read(out->remote_addr, PW_ADDR_LEN, &sk->__sk_common.skc_v6_daddr);
    }
    bool asked_local = call->syscall == PW_SYSCALL_BIND;
    if (asked_local && out->local_port == 0) {
        out->local_port = call->req_port;
        __builtin_memcpy(out->local_addr, call->req_addr, PW_ADDR_LEN);
    }
    if (!asked_local && out->remote_port == 0 && call->req_family != AF_UNSPEC) {
        out->remote_port = call->req_port;
        __builtin_memcpy(out->remote_addr, call->req_addr, PW_ADDR_LEN);
    }
}

/* remember: hold the port in held_ports with its owner, for the release record.
 * Without it the release carries PW_HOW_NONE and user space joins it by cookie. */
static __always_inline void record_allocation(const struct pending_call *call,
                                              const struct sock *sk, __u16 port_after, __s32 error,
                                              bool remember)
{
    bool failed = error != 0;
    struct pw_allocate_record record = {};
    fill_socket(sk, call, port_after, &record.sock);
    /* filtered out: neither sent nor held, so its release is not sent either */
    if (!port_passes_filter(record.sock.local_port))
        return;
    fill_task(&record.task);
    record.error = error;
    record.how = how_of(call);
    record.syscall = call->syscall;
    record.ephemeral = record.sock.local_port && port_is_ephemeral(sk, record.sock.local_port);

    struct pw_allocate_record *r = reserve_record(
        sizeof(*r), failed ? PW_RECORD_ALLOCATE_FAILED : PW_RECORD_ALLOCATE, record.how);
    __u64 allocated_boot_ns;
    if (r) {
        allocated_boot_ns = r->hdr.boot_ns;
        record.hdr = r->hdr;
        *r = record;
        submit_record(r);
    } else {
        allocated_boot_ns = bpf_ktime_get_boot_ns();
    }
    if (failed || !remember)
        return;
    struct pw_held_port held = {.sock = record.sock,
                                .owner = record.task,
                                .how = record.how,
                                .allocated_boot_ns = allocated_boot_ns};
    /* Cookie 0: the socket predates the agent (no sock_create ran for it). */
    if (!held.sock.cookie) {
        count_untracked();
        return;
    }
    __u64 cookie = held.sock.cookie;
    if (update_counted(&held_ports, &held_ports_keys, cookie, &cookie, &held))
        count_untracked();
}

/* Emits the release once: whoever deletes the entry first reports it. */
static __always_inline void release_port(__u64 cookie, __u8 reason)
{
    struct pw_held_port *entry = held_port_of(cookie);
    if (!entry)
        return;
    struct pw_held_port held = *entry;
    if (!delete_counted(&held_ports, &held_ports_keys, cookie, &cookie))
        return;
    struct pw_release_record *r = reserve_record(sizeof(*r), PW_RECORD_RELEASE, held.how);
    if (!r)
        return;
    r->held = held;
    r->reason = held.pending_reason ? held.pending_reason : reason;
    submit_record(r);
}

/* held_ports has the port: bind() or listen() gave it (or connect(), on the syscall and
 * fexit paths of TCP connect). */
static __always_inline bool in_held_ports(__u64 cookie)
{
    return held_port_of(cookie);
}

#endif /* PORTWATCH_RECORDS_BPF_H */
