// SPDX-License-Identifier: GPL-2.0
/* portwatch kernel side.
 *
 * Allocation:
 *   TCP connect()   sockops TCP_CONNECT_CB, which tcp_connect() runs in the caller's
 *                   context once inet_hash_connect() has chosen the port. This is the
 *                   hot path of a busy client: no map is written for it.
 *   everything else at sys_enter of bind/listen/connect/send{to,msg,mmsg} the socket's
 *                   local port is remembered per thread; at sys_exit it is read
 *                   again. 0 -> N means the call allocated port N; still 0 and an
 *                   errno means the allocation failed. A failed TCP connect() is
 *                   found at sys_exit alone (no sys_enter state for TCP connect).
 * All of these run in the caller's own context, so pid/comm/uid/cgroup are its own.
 *
 * Release:
 *   TCP  sockops STATE_CB(-> CLOSE), enabled per socket once it connects or listens;
 *        tcp_destroy_sock for sockets whose port is bind-locked or that never left
 *        CLOSE;
 *   UDP  cgroup/sock_release, or connect(AF_UNSPEC) (udp_disconnect).
 * Ports allocated by the syscall path are held in `held_ports` (keyed by socket
 * cookie) with their owner. A connect()-allocated TCP port is not: its release
 * record carries PW_HOW_NONE and user space joins it with the allocation by cookie.
 * Socket cookies are generated at cgroup/sock_create so that every socket has one
 * before it allocates. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_endian.h>

#include "portwatch_abi.h"
#include "kernel_compat.bpf.h"

char LICENSE[] SEC("license") = "GPL";

#define AF_UNSPEC 0
#define AF_INET 2
#define AF_INET6 10
#define SOCK_STREAM 1
#define SOCK_DGRAM 2
#define MSG_FASTOPEN 0x20000000
#define SOCK_BINDPORT_LOCK 8
#define EALREADY 114
#define EINPROGRESS 115
#define EADDRINUSE 98
#define EAGAIN 11
#define X86_THREAD_SIZE (4096 << 2) /* PAGE_SIZE << THREAD_SIZE_ORDER, without KASAN */
#define MAX_USER_ERRNO 511 /* above: kernel-internal restart codes (ERESTARTSYS...) */

/* Tunables, set by user space between open and load. */
const volatile __s32 nr_bind = -1, nr_listen = -1, nr_connect = -1;
const volatile __s32 nr_sendto = -1, nr_sendmsg = -1, nr_sendmmsg = -1;
const volatile __u32 filter_pid = 0;
const volatile __u32 filter_netns = 0;
const volatile __u8 filter_proto = 0;
const volatile __u8 filter_family = 0;
const volatile __u8 filter_comm_enabled = 0;
const volatile char filter_comm[PW_COMM_LEN] = {};
const volatile __u64 wakeup_bytes = 0; /* 0: wake the reader on every record */
/* PW_TCP_CONNECT_BY_SYSCALL where sockops programs may not call bpf_get_current_pid_tgid(),
 * bpf_get_current_uid_gid() and friends (5.10, 6.1, 6.12: sock_ops_func_proto() lacks
 * them), PW_TCP_CONNECT_BY_FEXIT with the fexit hook set. */
const volatile __u8 tcp_connect_path = PW_TCP_CONNECT_BY_SOCKOPS;

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

/* A syscall in flight that may allocate or release a port, per thread. */
struct pending_call {
    __u64 sk;
    __u8 syscall;
    __u8 family;
    __u8 proto;
    __u8 req_family; /* of the sockaddr the call passed, 0 if none */
    __u16 port_before;
    __u16 req_port; /* bind: the local port asked for; others: the remote port */
    __u8 req_addr[PW_ADDR_LEN];
    __u32 netns;
};

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 16384);
    __type(key, __u32);
    __type(value, struct pending_call);
} pending SEC(".maps");

/* TCP connect() calls in flight with PW_TCP_CONNECT_BY_SYSCALL, by socket: the release
 * reason if the socket closed during the call (a refused connect), else 0. pw_sys_exit
 * reports the allocation, then that release. */
struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 16384);
    __type(key, __u64);
    __type(value, __u8);
} connects_in_flight SEC(".maps");

/* Resized by user space; preallocated: no allocation on the syscall path. */
struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 1 << 16);
    __type(key, __u64);
    __type(value, struct pw_held_port);
} held_ports SEC(".maps");

static __always_inline struct pw_counters *this_cpu_counters(void)
{
    __u32 zero = 0;
    return bpf_map_lookup_elem(&counters, &zero);
}

/* Every caller submits what this returns on every path, before any other helper call:
 * the 6.1 and 6.12 verifiers cannot follow a reservation across the branches the
 * compiler makes of "reserve, do other work, submit if reserved" ("Unreleased reference"). */
static __always_inline void *reserve_record(__u32 size, __u16 type, __u8 how)
{
    struct pw_counters *c = this_cpu_counters();
    bool countable = c && type < PW_RECORD_TYPE_COUNT && how < PW_HOW_COUNT;
    struct pw_record_header *record = bpf_ringbuf_reserve(&events, size, 0);
    if (!record) {
        if (countable)
            c->lost[type][how]++;
        return NULL;
    }
    if (countable)
        c->emitted[type][how]++;
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

static __always_inline __u8 syscall_of(long id)
{
    if (id == nr_bind)
        return PW_SYSCALL_BIND;
    if (id == nr_listen)
        return PW_SYSCALL_LISTEN;
    if (id == nr_connect)
        return PW_SYSCALL_CONNECT;
    if (id == nr_sendto)
        return PW_SYSCALL_SENDTO;
    if (id == nr_sendmsg)
        return PW_SYSCALL_SENDMSG;
    if (id == nr_sendmmsg)
        return PW_SYSCALL_SENDMMSG;
    return PW_SYSCALL_NONE;
}

static __always_inline bool task_passes_filter(void)
{
    if (filter_pid && (bpf_get_current_pid_tgid() >> 32) != filter_pid)
        return false;
    if (!filter_comm_enabled)
        return true;
    char comm[PW_COMM_LEN];
    bpf_get_current_comm(comm, sizeof(comm));
    for (int i = 0; i < PW_COMM_LEN; i++) {
        if (comm[i] != filter_comm[i])
            return false;
        if (!comm[i])
            break;
    }
    return true;
}

/* current->files->fdt, through a BTF pointer where bpf_get_current_task_btf() exists
 * (kernel 5.11, commit 3ca1032ab7ab), else through probe reads of bpf_get_current_task(). */
static __always_inline struct fdtable *current_fdtable(void)
{
    if (bpf_core_enum_value_exists(enum bpf_func_id, BPF_FUNC_get_current_task_btf))
        return bpf_get_current_task_btf()->files->fdt;
    struct task_struct *task = (void *)bpf_get_current_task();
    return BPF_CORE_READ(task, files, fdt);
}

/* current->files->fdt->fd[fd], if it is a socket. The fd array slot and what it points
 * to need probe reads. */
static __always_inline struct sock *sock_of_fd(long fd)
{
    struct fdtable *fdt = current_fdtable();
    if (!fdt || fd < 0 || fd >= BPF_CORE_READ(fdt, max_fds))
        return NULL;
    struct file **fds = BPF_CORE_READ(fdt, fd);
    struct file *file = NULL;
    bpf_probe_read_kernel(&file, sizeof(file), &fds[fd]);
    if (!file)
        return NULL;
    struct socket *socket = BPF_CORE_READ(file, private_data);
    /* a socket's file and the socket point at each other (sock_alloc_file()) */
    if (!socket || BPF_CORE_READ(socket, file) != file)
        return NULL;
    return BPF_CORE_READ(socket, sk);
}

static __always_inline __u32 netns_of(const struct sock *sk)
{
    return BPF_CORE_READ(sk, __sk_common.skc_net.net, ns.inum);
}

static __always_inline __u64 cookie_of(const struct sock *sk)
{
    return BPF_CORE_READ(sk, __sk_common.skc_cookie.counter);
}

/* TCP over SOCK_STREAM or UDP over SOCK_DGRAM, IPv4 or IPv6, passing the filters. */
static __always_inline bool classify_sock(const struct sock *sk, struct pending_call *call)
{
    __u16 family = BPF_CORE_READ(sk, __sk_common.skc_family);
    __u16 proto = BPF_CORE_READ_BITFIELD_PROBED(sk, sk_protocol);
    __u16 type = BPF_CORE_READ_BITFIELD_PROBED(sk, sk_type);
    if (family != AF_INET && family != AF_INET6)
        return false;
    if (!((proto == IPPROTO_TCP && type == SOCK_STREAM) ||
          (proto == IPPROTO_UDP && type == SOCK_DGRAM)))
        return false;
    if ((filter_family && family != filter_family) || (filter_proto && proto != filter_proto))
        return false;
    call->netns = netns_of(sk);
    if (filter_netns && call->netns != filter_netns)
        return false;
    call->family = family;
    call->proto = proto;
    return true;
}

static __always_inline void read_user_sockaddr(const void *uaddr, struct pending_call *call)
{
    struct sockaddr_in6 sa = {};
    if (!uaddr)
        return;
    if (bpf_probe_read_user(&sa, sizeof(sa), uaddr) &&
        bpf_probe_read_user(&sa, sizeof(struct sockaddr_in), uaddr))
        return;
    call->req_family = sa.sin6_family;
    call->req_port = bpf_ntohs(sa.sin6_port);
    if (sa.sin6_family == AF_INET) {
        struct sockaddr_in *sin = (void *)&sa;
        __builtin_memcpy(call->req_addr, &sin->sin_addr, 4);
    } else if (sa.sin6_family == AF_INET6) {
        __builtin_memcpy(call->req_addr, &sa.sin6_addr, PW_ADDR_LEN);
    }
}

/* msg_name of a struct user_msghdr (also the first member of struct mmsghdr). */
static __always_inline const void *user_msg_name(const void *umsg)
{
    struct user_msghdr msg = {};
    if (!umsg || bpf_probe_read_user(&msg, sizeof(msg), umsg))
        return NULL;
    return msg.msg_name;
}

/* Reads the sockaddr each call passes and says whether the call may change the port. */
static __always_inline bool read_call_args(struct pt_regs *regs, struct pending_call *call)
{
    bool unbound = call->port_before == 0;
    bool tcp = call->proto == IPPROTO_TCP;
    __u64 send_flags = 0;

    switch (call->syscall) {
    case PW_SYSCALL_BIND:
        read_user_sockaddr((void *)PT_REGS_PARM2_CORE_SYSCALL(regs), call);
        return unbound;
    case PW_SYSCALL_LISTEN:
        return unbound && tcp;
    case PW_SYSCALL_CONNECT:
        read_user_sockaddr((void *)PT_REGS_PARM2_CORE_SYSCALL(regs), call);
        /* bound: only connect(AF_UNSPEC) can give a UDP port back (udp_disconnect) */
        return unbound || (!tcp && call->req_family == AF_UNSPEC);
    case PW_SYSCALL_SENDTO:
        read_user_sockaddr((void *)PT_REGS_PARM5_CORE_SYSCALL(regs), call);
        send_flags = PT_REGS_PARM4_CORE_SYSCALL(regs);
        break;
    case PW_SYSCALL_SENDMSG:
        read_user_sockaddr(user_msg_name((void *)PT_REGS_PARM2_CORE_SYSCALL(regs)), call);
        send_flags = PT_REGS_PARM3_CORE_SYSCALL(regs);
        break;
    case PW_SYSCALL_SENDMMSG:
        read_user_sockaddr(user_msg_name((void *)PT_REGS_PARM2_CORE_SYSCALL(regs)), call);
        send_flags = PT_REGS_PARM4_CORE_SYSCALL(regs);
        break;
    default:
        return false;
    }
    /* an unbound TCP socket only allocates on send with TCP Fast Open (a connect) */
    return unbound && (!tcp || (send_flags & MSG_FASTOPEN));
}

SEC("tp_btf/sys_enter")
int BPF_PROG(pw_sys_enter, struct pt_regs *regs, long id)
{
    struct pending_call call = {};
    call.syscall = syscall_of(id);
    if (call.syscall == PW_SYSCALL_NONE || !task_passes_filter())
        return 0;

    struct sock *sk = sock_of_fd(PT_REGS_PARM1_CORE_SYSCALL(regs));
    if (!sk || !classify_sock(sk, &call))
        return 0;
    bool tcp_connect = call.proto == IPPROTO_TCP && call.syscall == PW_SYSCALL_CONNECT;
    /* pw_sockops reports the port; pw_sys_exit alone reports a failure */
    if (tcp_connect && tcp_connect_path != PW_TCP_CONNECT_BY_SYSCALL)
        return 0;
    call.sk = (__u64)sk;
    call.port_before = BPF_CORE_READ(sk, __sk_common.skc_num);
    if (!read_call_args(regs, &call))
        return 0;
    if (tcp_connect) {
        __u8 open = 0;
        bpf_map_update_elem(&connects_in_flight, &call.sk, &open, BPF_ANY);
    }

    __u32 tid = (__u32)bpf_get_current_pid_tgid();
    if (bpf_map_update_elem(&pending, &tid, &call, BPF_ANY)) {
        struct pw_counters *c = this_cpu_counters();
        if (c)
            c->pending_overflow++;
    }
    return 0;
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
    struct pw_held_port held = {
        .sock = record.sock, .owner = record.task, .how = record.how,
        .allocated_boot_ns = allocated_boot_ns};
    /* Cookie 0: the socket predates the agent (no sock_create ran for it). */
    if (!held.sock.cookie || bpf_map_update_elem(&held_ports, &held.sock.cookie, &held, BPF_ANY))
        count_untracked();
}

/* Emits the release once: whoever deletes the entry first reports it. */
static __always_inline void release_port(__u64 cookie, __u8 reason)
{
    struct pw_held_port *entry = bpf_map_lookup_elem(&held_ports, &cookie);
    if (!entry)
        return;
    struct pw_held_port held = *entry;
    if (bpf_map_delete_elem(&held_ports, &cookie))
        return;
    struct pw_release_record *r = reserve_record(sizeof(*r), PW_RECORD_RELEASE, held.how);
    if (!r)
        return;
    r->held = held;
    r->reason = held.pending_reason ? held.pending_reason : reason;
    submit_record(r);
}

static __always_inline long syscall_nr(const struct pt_regs *regs)
{
#if defined(__TARGET_ARCH_x86)
    return BPF_CORE_READ(regs, orig_ax);
#elif defined(__TARGET_ARCH_arm64)
    return BPF_CORE_READ(regs, syscallno);
#else
    return -1;
#endif
}

static __always_inline bool is_failure(long ret)
{
    return ret < 0 && ret >= -MAX_USER_ERRNO && ret != -EINPROGRESS && ret != -EALREADY;
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

/* A TCP connect() tracked by the syscall path (PW_TCP_CONNECT_BY_SYSCALL). The port is
 * inet_sport: a refused connect's RST already gave inet_num back (tcp_done() ->
 * inet_put_port()), and pw_sockops then left the release to us. */
static __always_inline void finish_tcp_connect(const struct pending_call *call,
                                               const struct sock *sk, long ret)
{
    const struct inet_sock *inet = (const void *)sk;
    __u16 port_after = bpf_ntohs(BPF_CORE_READ(inet, inet_sport));
    __u8 *closed = bpf_map_lookup_elem(&connects_in_flight, &call->sk);
    __u8 closed_reason = closed ? *closed : 0;
    bpf_map_delete_elem(&connects_in_flight, &call->sk);
    if (port_after) {
        record_allocation(call, sk, port_after, 0, true);
        if (closed_reason)
            release_port(cookie_of(sk), closed_reason);
    } else if (is_failure(ret)) {
        record_allocation(call, sk, 0, (__s32)-ret, false);
    }
}

SEC("tp_btf/sys_exit")
int BPF_PROG(pw_sys_exit, struct pt_regs *regs, long ret)
{
    long nr = syscall_nr(regs);
#if defined(__TARGET_ARCH_x86) || defined(__TARGET_ARCH_arm64)
    /* cheap early exit for the syscalls we never track */
    if (syscall_of(nr) == PW_SYSCALL_NONE)
        return 0;
#endif
    __u32 tid = (__u32)bpf_get_current_pid_tgid();
    struct pending_call *entry = bpf_map_lookup_elem(&pending, &tid);
    if (!entry) {
        if (nr == nr_connect && is_failure(ret))
            record_failed_tcp_connect(regs, ret);
        return 0;
    }
    struct pending_call call = *entry;
    bpf_map_delete_elem(&pending, &tid);

    const struct sock *sk = (void *)call.sk;
    if (call.proto == IPPROTO_TCP && call.syscall == PW_SYSCALL_CONNECT) {
        finish_tcp_connect(&call, sk, ret);
        return 0;
    }
    __u16 port_after = BPF_CORE_READ(sk, __sk_common.skc_num);
    if (call.port_before == 0 && port_after != 0)
        record_allocation(&call, sk, port_after, 0, true);
    else if (call.port_before != 0 && port_after == 0)
        release_port(cookie_of(sk), PW_RELEASE_DISCONNECT);
    else if (call.port_before == 0 && is_failure(ret))
        record_allocation(&call, sk, port_after, (__s32)-ret, false);
    return 0;
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

static __always_inline bool is_bind_locked(const struct sock *sk)
{
    return BPF_CORE_READ_BITFIELD(sk, sk_userlocks) & SOCK_BINDPORT_LOCK;
}

/* The source port from inet_sport: inet_num is already 0 when a refused connect's
 * RST took the bind bucket (tcp_done() -> inet_put_port()) before CLOSE. */
static __always_inline void fill_tcp_socket(const struct sock *sk, __u64 cookie,
                                            struct pw_socket *out)
{
    const struct sock_common *common = &sk->__sk_common;
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

static __always_inline bool tcp_socket_passes_filter(const struct pw_socket *sock)
{
    if ((filter_family && sock->family != filter_family) ||
        (filter_proto && filter_proto != IPPROTO_TCP))
        return false;
    if (sock->family != AF_INET && sock->family != AF_INET6)
        return false;
    return !filter_netns || sock->netns == filter_netns;
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

/* This thread is inside a bind/listen/send call on sk that pw_sys_exit reports. */
static __always_inline bool in_reported_call(const struct sock *sk)
{
    __u32 tid = (__u32)bpf_get_current_pid_tgid();
    struct pending_call *call = bpf_map_lookup_elem(&pending, &tid);
    return call && call->sk == (__u64)sk;
}

/* held_ports has the port: bind() or listen() gave it (or connect(), on the syscall and
 * fexit paths of TCP connect). */
static __always_inline bool in_held_ports(__u64 cookie)
{
    return cookie && bpf_map_lookup_elem(&held_ports, &cookie);
}

static __always_inline void record_tcp_connect(const struct sock *sk, __u64 cookie)
{
    struct pw_allocate_record record = {};
    fill_tcp_socket(sk, cookie, &record.sock);
    if (!tcp_socket_passes_filter(&record.sock))
        return;
    struct pw_allocate_record *r =
        reserve_record(sizeof(*r), PW_RECORD_ALLOCATE, PW_HOW_CONNECT_AUTOBIND);
    if (!r)
        return;
    record.hdr = r->hdr;
    fill_task(&record.task);
    record.how = PW_HOW_CONNECT_AUTOBIND;
    record.syscall = PW_SYSCALL_CONNECT;
    record.ephemeral = port_is_ephemeral(sk, record.sock.local_port);
    *r = record;
    submit_record(r);
}

/* TCP_CONNECT_CB: tcp_connect() runs it after inet_hash_connect() chose the port,
 * in the caller's context. */
static __always_inline void on_tcp_connect(struct bpf_sock_ops *ops)
{
    struct sock *sk = sock_of_ops(ops);
    if (!sk)
        return;
    __u64 cookie = bpf_get_socket_cookie(ops); /* made now if the socket predates the agent */
    if (tcp_connect_path != PW_TCP_CONNECT_BY_SOCKOPS) { /* pw_sys_exit or fexit reported it */
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
    if (is_bind_locked(sk) || !task_passes_filter())
        return;
    record_tcp_connect(sk, cookie);
    watch_state_changes(ops);
}

/* The release of a port record_tcp_connect() reported: PW_HOW_NONE, user space
 * joins the owner by cookie. Counted as connect_autobind. */
static __always_inline void record_tcp_connect_release(const struct sock *sk, __u64 cookie,
                                                       __u8 reason)
{
    struct pw_release_record record = {};
    struct pw_release_record *r =
        reserve_record(sizeof(*r), PW_RECORD_RELEASE, PW_HOW_CONNECT_AUTOBIND);
    if (!r)
        return;
    record.hdr = r->hdr;
    fill_tcp_socket(sk, cookie, &record.held.sock);
    record.held.how = PW_HOW_NONE;
    record.reason = reason;
    *r = record;
    submit_record(r);
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
    struct pw_held_port *held = cookie ? bpf_map_lookup_elem(&held_ports, &cookie) : NULL;
    bool bind_locked = is_bind_locked(sk);
    if (!held) {
        __u64 key = (__u64)sk;
        __u8 *in_flight = tcp_connect_path == PW_TCP_CONNECT_BY_SYSCALL
                              ? bpf_map_lookup_elem(&connects_in_flight, &key)
                              : NULL;
        if (in_flight)
            *in_flight = reason; /* closed inside connect(): pw_sys_exit reports both */
        else if (!bind_locked)
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
    /* sys_exit holds a listen() autobind only after this callback: without task helpers
     * every listener is watched (listen() is rare, and on_tcp_close reports only what
     * held_ports holds or a connect() made); fexit/inet_csk_get_port held it before */
    bool by_syscall = tcp_connect_path == PW_TCP_CONNECT_BY_SYSCALL;
    bool by_sockops = tcp_connect_path == PW_TCP_CONNECT_BY_SOCKOPS;
    if (by_syscall || (by_sockops && in_reported_call(sk)) ||
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

/* ---- The fexit hook set: the kernel's port allocators, in the caller's context, only
 * when a port is chosen. Where trampolines attach (not on every kernel: user space tries). */

/* The registers the task entered the kernel with: which syscall it is in, and its
 * arguments. task_pt_regs() (arch/x86/include/asm/processor.h) is the top of the task's
 * kernel stack; bpf_task_pt_regs() (5.15) computes it, before it we do. */
static __always_inline struct pt_regs *current_user_regs(void)
{
    if (bpf_core_enum_value_exists(enum bpf_func_id, BPF_FUNC_task_pt_regs))
        return (struct pt_regs *)bpf_task_pt_regs(bpf_get_current_task_btf());
    struct task_struct *task = (void *)bpf_get_current_task();
    void *stack = BPF_CORE_READ(task, stack);
    return (struct pt_regs *)(stack + X86_THREAD_SIZE) - 1;
}

/* The call of the syscall the task is in, with the sockaddr it passed (a sendto()'s
 * destination, a bind()'s address). Reached another way (io_uring), PW_SYSCALL_NONE. */
static __always_inline void read_current_call(struct pending_call *call)
{
    struct pt_regs *regs = current_user_regs();
    call->syscall = syscall_of(syscall_nr(regs));
    read_call_args(regs, call);
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
    read_current_call(&call);
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

/* udp_lib_get_port(): UDP bind(), and the autobind of connect() and send*() on an unbound
 * socket (inet_autobind()). Which syscall the task is in says which. A nonzero return is
 * bind()'s -EADDRINUSE (__inet_bind()) or the autobind's -EAGAIN (inet_autobind()). */
SEC("?fexit/udp_lib_get_port")
int BPF_PROG(pw_udp_lib_get_port, struct sock *sk, unsigned short snum,
             unsigned int hash2_nulladdr, int ret)
{
    struct pending_call call = {};
    if (!task_passes_filter() || !classify_sock(sk, &call) || call.proto != IPPROTO_UDP)
        return 0;
    read_current_call(&call);
    if (snum || call.syscall == PW_SYSCALL_BIND) {
        call.syscall = PW_SYSCALL_BIND;
        call.req_port = snum;
    }
    __u16 port = BPF_CORE_READ(sk, __sk_common.skc_num);
    if (ret)
        record_allocation(&call, sk, 0, call.syscall == PW_SYSCALL_BIND ? EADDRINUSE : EAGAIN,
                          false);
    else if (port)
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
