// SPDX-License-Identifier: GPL-2.0
/* portwatch kernel side.
 *
 * Allocation: at sys_enter of bind/listen/connect/send{to,msg,mmsg} the socket's
 * local port is remembered per thread; at sys_exit it is read again. 0 -> N means
 * the call allocated port N; still 0 and an errno means the allocation failed.
 * Both run in the caller's own context, so pid/comm/uid/cgroup are the caller's.
 *
 * Release: a port seen allocated is held in `held_ports` (keyed by socket
 * cookie) until the kernel takes it back:
 *   TCP  inet_sock_set_state(-> CLOSE), or tcp_destroy_sock for sockets whose
 *        port is bind-locked or that never left CLOSE;
 *   UDP  cgroup/sock_release, or connect(AF_UNSPEC) (udp_disconnect).
 * Socket cookies are generated at cgroup/sock_create so that every socket has
 * one before it allocates. */
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
    __u16 refused_port; /* a connect's port, already given back before the call returned */
    __u8 pad[2];
    __u32 netns;
};

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 16384);
    __type(key, __u32);
    __type(value, struct pending_call);
} pending SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 1 << 16); /* resized by user space; preallocated: no allocation on the hot path */
    __type(key, __u64);
    __type(value, struct pw_held_port);
} held_ports SEC(".maps");

static __always_inline struct pw_counters *this_cpu_counters(void)
{
    __u32 zero = 0;
    return bpf_map_lookup_elem(&counters, &zero);
}

static __always_inline void *reserve_record(__u32 size, __u16 type, __u8 how)
{
    void *record = bpf_ringbuf_reserve(&events, size, 0);
    struct pw_counters *c = this_cpu_counters();
    if (c && type < PW_RECORD_TYPE_COUNT && how < PW_HOW_COUNT) {
        if (record)
            c->emitted[type][how]++;
        else
            c->lost[type][how]++;
    }
    if (record) {
        struct pw_record_header *hdr = record;
        hdr->version = PW_ABI_VERSION;
        hdr->type = type;
        hdr->size = size;
        hdr->boot_ns = bpf_ktime_get_boot_ns();
    }
    return record;
}

/* Wake the reader only once enough has piled up; it also polls on a timer. */
static __always_inline void submit_record(void *record)
{
    __u64 flags = 0;
    if (wakeup_bytes)
        flags = bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA) >= wakeup_bytes
                    ? BPF_RB_FORCE_WAKEUP
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

/* current->files->fdt->fd[fd], if it is a socket. The walk down to the fd array
 * is direct BTF loads; the array slot and what it points to need probe reads. */
static __always_inline struct sock *sock_of_fd(long fd)
{
    struct fdtable *fdt = bpf_get_current_task_btf()->files->fdt;
    if (!fdt || fd < 0 || fd >= fdt->max_fds)
        return NULL;
    struct file *file = NULL;
    bpf_probe_read_kernel(&file, sizeof(file), &fdt->fd[fd]);
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
    call.sk = (__u64)sk;
    call.port_before = BPF_CORE_READ(sk, __sk_common.skc_num);
    if (!read_call_args(regs, &call))
        return 0;

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

static __always_inline void record_allocation(const struct pending_call *call, const struct sock *sk,
                                              __u16 port_after, __s32 error)
{
    bool failed = error != 0;
    __u8 how = how_of(call);
    struct pw_allocate_record *r = reserve_record(
        sizeof(*r), failed ? PW_RECORD_ALLOCATE_FAILED : PW_RECORD_ALLOCATE, how);
    struct pw_held_port held = {};
    fill_socket(sk, call, port_after, &held.sock);
    if (!failed && !held.sock.local_port)
        held.sock.local_port = call->refused_port;
    fill_task(&held.owner);
    held.how = how;
    held.allocated_boot_ns = r ? r->hdr.boot_ns : bpf_ktime_get_boot_ns();

    if (r) {
        r->sock = held.sock;
        r->task = held.owner;
        r->error = error;
        r->how = how;
        r->syscall = call->syscall;
        r->ephemeral = held.sock.local_port && port_is_ephemeral(sk, held.sock.local_port);
        submit_record(r);
    }
    if (failed)
        return;
    /* Cookie 0: the socket predates the agent (no sock_create ran for it). */
    if (!held.sock.cookie ||
        bpf_map_update_elem(&held_ports, &held.sock.cookie, &held, BPF_ANY))
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

SEC("tp_btf/sys_exit")
int BPF_PROG(pw_sys_exit, struct pt_regs *regs, long ret)
{
#if defined(__TARGET_ARCH_x86)
    /* cheap early exit for the syscalls we never track */
    if (syscall_of(regs->orig_ax) == PW_SYSCALL_NONE)
        return 0;
#endif
    __u32 tid = (__u32)bpf_get_current_pid_tgid();
    struct pending_call *entry = bpf_map_lookup_elem(&pending, &tid);
    if (!entry)
        return 0;
    struct pending_call call = *entry;
    bpf_map_delete_elem(&pending, &tid);

    const struct sock *sk = (void *)call.sk;
    __u16 port_after = BPF_CORE_READ(sk, __sk_common.skc_num);
    if (call.port_before == 0 && port_after != 0) {
        record_allocation(&call, sk, port_after, 0);
    } else if (call.refused_port && (ret == 0 || ret == -EINPROGRESS)) {
        /* allocated, and refused before connect() returned (loopback) */
        record_allocation(&call, sk, port_after, 0);
        release_port(cookie_of(sk), PW_RELEASE_TCP_CLOSED);
    } else if (call.port_before != 0 && port_after == 0) {
        release_port(cookie_of(sk), PW_RELEASE_DISCONNECT);
    } else if (call.port_before == 0 && ret < 0 && ret >= -MAX_USER_ERRNO &&
               ret != -EINPROGRESS && ret != -EALREADY) {
        record_allocation(&call, sk, port_after, (__s32)-ret);
    }
    return 0;
}

/* The full socket was swapped for a TIME_WAIT one: inet_twsk_hashdance_schedule()
 * unhashes it from the established table before tcp_time_wait() calls tcp_done(). */
static __always_inline bool handed_to_time_wait(const struct sock *sk, int oldstate)
{
    bool closing = oldstate == TCP_FIN_WAIT1 || oldstate == TCP_FIN_WAIT2 ||
                   oldstate == TCP_CLOSING || oldstate == TCP_TIME_WAIT;
    return closing && !BPF_CORE_READ(sk, __sk_common.skc_nulls_node.pprev);
}

/* A connect refused while the caller is still inside connect() (on loopback the
 * RST is processed in its own context): the port goes back before sys_exit can
 * read it, so keep it for the caller's pending call. */
static __always_inline void note_refused_connect(const struct sock *sk)
{
    __u32 tid = (__u32)bpf_get_current_pid_tgid();
    struct pending_call *call = bpf_map_lookup_elem(&pending, &tid);
    /* inet_num may already be 0 here (the bind bucket is gone); inet_sport is not */
    const struct inet_sock *inet = (const void *)sk;
    if (call && call->sk == (__u64)sk && call->syscall == PW_SYSCALL_CONNECT)
        call->refused_port = bpf_ntohs(BPF_CORE_READ(inet, inet_sport));
}

SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(pw_tcp_set_state, const struct sock *sk, const int oldstate, const int newstate)
{
    if (newstate != TCP_CLOSE)
        return 0;
    if (oldstate == TCP_SYN_SENT)
        note_refused_connect(sk);
    __u64 cookie = sk->__sk_common.skc_cookie.counter; /* direct: sk is a BTF pointer here */
    struct pw_held_port *held = cookie ? bpf_map_lookup_elem(&held_ports, &cookie) : NULL;
    if (!held)
        return 0;
    __u8 reason = handed_to_time_wait(sk, oldstate) ? PW_RELEASE_TIME_WAIT : PW_RELEASE_TCP_CLOSED;
    /* tcp_set_state() keeps a bind()-locked port until the socket is destroyed;
     * remember only that a TIME_WAIT socket will hold it on after that */
    if (BPF_CORE_READ_BITFIELD_PROBED(sk, sk_userlocks) & SOCK_BINDPORT_LOCK) {
        if (reason == PW_RELEASE_TIME_WAIT)
            held->pending_reason = reason;
        return 0;
    }
    release_port(cookie, reason);
    return 0;
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
