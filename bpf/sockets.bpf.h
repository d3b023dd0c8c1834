// SPDX-License-Identifier: GPL-2.0-only
/* Part of portwatch.bpf.c: what the current task, its socket and its call are, read the
 * same way by every hook set (filters, the socket behind an fd, the sockaddr a call passed). */
#ifndef PORTWATCH_SOCKETS_BPF_H
#define PORTWATCH_SOCKETS_BPF_H

#include "common.bpf.h"

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

/* The cgroups of --cgroup and `monitor -- CMD`: bpf_current_task_under_cgroup() walks the task's cgroup v2
 * ancestors (task_under_cgroup_hierarchy()), so children, daemons and re-execs pass. Tracing
 * programs may call it (bpf_tracing_func_proto(), 5.10 on); sockops may not, so user space
 * sends TCP connects through the syscall path when this filter is set. */
struct {
    __uint(type, BPF_MAP_TYPE_CGROUP_ARRAY);
    __uint(max_entries, PW_MAX_FILTER_CGROUPS);
    __type(key, __u32);
    __type(value, __u32);
} filter_cgroup SEC(".maps");

/* --children: the processes followed. User space seeds the --pid ones after load;
 * pw_sched_process_fork adds the child of a followed process, pw_sched_process_exit removes a
 * process once its last thread exits. */
struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, PW_MAX_FOLLOWED_TGIDS);
    __type(key, __u32);
    __type(value, __u8);
} followed_tgids SEC(".maps");

/* Whether `value` is among the first `count` of `values`, a filter's rodata array of `max`. */
static __always_inline bool among(const volatile __u32 *values, __u32 count, __u32 max,
                                  __u32 value)
{
    for (__u32 i = 0; i < max; i++)
        if (i < count && values[i] == value)
            return true;
    return false;
}

static __always_inline bool pid_passes_filter(void)
{
    if (!filter_pid_count)
        return true;
    __u32 tgid = bpf_get_current_pid_tgid() >> 32;
    if (filter_follow_children)
        return bpf_map_lookup_elem(&followed_tgids, &tgid) != NULL;
    return among(filter_pids, filter_pid_count, PW_MAX_FILTER_PIDS, tgid);
}

/* sockops may not call bpf_get_current_uid_gid() (5.10 to 6.12): user space sends TCP
 * connects through the syscall path when this filter is set, as for the cgroup filter. */
static __always_inline bool uid_passes_filter(void)
{
    if (!filter_uid_count)
        return true;
    return among(filter_uids, filter_uid_count, PW_MAX_FILTER_UIDS,
                 (__u32)bpf_get_current_uid_gid());
}

/* --port, on the local port a record carries: the one allocated, or the one a failed bind()
 * asked for. 0 (a failure where the kernel was to choose: the range had none left) passes:
 * that failure is the exhaustion a user filtering on ports wants to see. */
static __always_inline bool port_passes_filter(__u16 port)
{
    if (!filter_port_count || port == 0)
        return true;
    for (int i = 0; i < PW_MAX_FILTER_PORT_RANGES; i++)
        if (i < filter_port_count && port >= filter_port_low[i] && port <= filter_port_high[i])
            return true;
    return false;
}

static __always_inline bool cgroups_pass_filter(void)
{
    for (__u32 i = 0; i < PW_MAX_FILTER_CGROUPS; i++)
        if (i < filter_cgroup_count && bpf_current_task_under_cgroup(&filter_cgroup, i) != 1)
            return false;
    return true;
}

/* --container: the containers' cgroups, any of them (OR), read as filter_cgroup is. */
struct {
    __uint(type, BPF_MAP_TYPE_CGROUP_ARRAY);
    __uint(max_entries, PW_MAX_FILTER_ANY_CGROUPS);
    __type(key, __u32);
    __type(value, __u32);
} filter_any_cgroup SEC(".maps");

static __always_inline bool any_cgroup_passes_filter(void)
{
    if (!filter_any_cgroup_count)
        return true;
    for (__u32 i = 0; i < PW_MAX_FILTER_ANY_CGROUPS; i++)
        if (i < filter_any_cgroup_count && bpf_current_task_under_cgroup(&filter_any_cgroup, i) == 1)
            return true;
    return false;
}

static __always_inline bool task_passes_filter(void)
{
    if (!pid_passes_filter() || !uid_passes_filter() || !cgroups_pass_filter() ||
        !any_cgroup_passes_filter())
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

/* current->files->fdt->fd[fd], the file behind an fd: the fd table through a BTF pointer
 * where bpf_get_current_task_btf() exists (kernel 5.11, commit 3ca1032ab7ab), direct loads
 * that cost a connect() storm two probe reads less per call; else through probe reads of
 * bpf_get_current_task(). The array slot needs a probe read either way. */
static __always_inline struct file *file_of_fd(long fd)
{
    struct file **fds;
    if (bpf_core_enum_value_exists(enum bpf_func_id, BPF_FUNC_get_current_task_btf)) {
        struct fdtable *fdt = bpf_get_current_task_btf()->files->fdt;
        if (fd < 0 || fd >= fdt->max_fds)
            return NULL;
        fds = fdt->fd;
    } else {
        struct task_struct *task = (void *)bpf_get_current_task();
        struct fdtable *fdt = BPF_CORE_READ(task, files, fdt);
        if (!fdt || fd < 0 || fd >= BPF_CORE_READ(fdt, max_fds))
            return NULL;
        fds = BPF_CORE_READ(fdt, fd);
    }
    struct file *file = NULL;
    bpf_probe_read_kernel(&file, sizeof(file), &fds[fd]);
    return file;
}

/* What a file's private_data points to: its struct socket, if the file is a socket's (which
 * sock_of_socket() checks). */
static __always_inline struct socket *socket_of_file(struct file *file)
{
    return file ? BPF_CORE_READ(file, private_data) : NULL;
}

/* socket's sock, if socket is file's: a socket's file and the socket point at each other
 * (sock_alloc_file()). */
static __always_inline struct sock *sock_of_socket(struct socket *socket, struct file *file)
{
    if (!socket || BPF_CORE_READ(socket, file) != file)
        return NULL;
    return BPF_CORE_READ(socket, sk);
}

static __always_inline struct sock *sock_of_file(struct file *file)
{
    return sock_of_socket(socket_of_file(file), file);
}

/* The socket behind an fd, if it is one. */
static __always_inline struct sock *sock_of_fd(long fd)
{
    return sock_of_file(file_of_fd(fd));
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

static __always_inline void take_sockaddr(const struct sockaddr_in6 *sa, struct pending_call *call)
{
    call->req_family = sa->sin6_family;
    call->req_port = bpf_ntohs(sa->sin6_port);
    if (sa->sin6_family == AF_INET) {
        const struct sockaddr_in *sin = (const void *)sa;
        __builtin_memcpy(call->req_addr, &sin->sin_addr, 4);
    } else if (sa->sin6_family == AF_INET6) {
        __builtin_memcpy(call->req_addr, &sa->sin6_addr, PW_ADDR_LEN);
    }
}

static __always_inline void read_user_sockaddr(const void *uaddr, struct pending_call *call)
{
    struct sockaddr_in6 sa = {};
    if (!uaddr)
        return;
    if (bpf_probe_read_user(&sa, sizeof(sa), uaddr) &&
        bpf_probe_read_user(&sa, sizeof(struct sockaddr_in), uaddr))
        return;
    take_sockaddr(&sa, call);
}

static __always_inline void read_kernel_sockaddr(const void *kaddr, struct pending_call *call)
{
    struct sockaddr_in6 sa = {};
    if (bpf_probe_read_kernel(&sa, sizeof(sa), kaddr))
        return;
    take_sockaddr(&sa, call);
}

/* msg_name of a struct user_msghdr (also the first member of struct mmsghdr). */
static __always_inline const void *user_msg_name(const void *umsg)
{
    struct user_msghdr msg = {};
    if (!umsg || bpf_probe_read_user(&msg, sizeof(msg), umsg))
        return NULL;
    return msg.msg_name;
}

/* Whether the call, on a socket whose port was call->port_before, may allocate or give
 * back a port. */
static __always_inline bool call_may_change_port(const struct pending_call *call, __u64 send_flags)
{
    bool unbound = call->port_before == 0;
    bool tcp = call->proto == IPPROTO_TCP;
    switch (call->syscall) {
    case PW_SYSCALL_BIND:
        return unbound;
    case PW_SYSCALL_LISTEN:
        return unbound && tcp;
    case PW_SYSCALL_CONNECT:
        /* bound: only connect(AF_UNSPEC) can give a UDP port back (udp_disconnect) */
        return unbound || (!tcp && call->req_family == AF_UNSPEC);
    case PW_SYSCALL_SENDTO:
    case PW_SYSCALL_SENDMSG:
    case PW_SYSCALL_SENDMMSG:
        /* an unbound TCP socket only allocates on send with TCP Fast Open (a connect) */
        return unbound && (!tcp || (send_flags & MSG_FASTOPEN));
    default:
        return false;
    }
}

/* Reads the sockaddr each call passes and says whether the call may change the port. */
static __always_inline bool read_call_args(struct pt_regs *regs, struct pending_call *call)
{
    __u64 send_flags = 0;

    switch (call->syscall) {
    case PW_SYSCALL_BIND:
    case PW_SYSCALL_CONNECT:
        read_user_sockaddr((void *)PT_REGS_PARM2_CORE_SYSCALL(regs), call);
        break;
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
        break;
    }
    return call_may_change_port(call, send_flags);
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

static __always_inline bool is_bind_locked(const struct sock *sk)
{
    return BPF_CORE_READ_BITFIELD(sk, sk_userlocks) & SOCK_BINDPORT_LOCK;
}

#endif /* PORTWATCH_SOCKETS_BPF_H */
