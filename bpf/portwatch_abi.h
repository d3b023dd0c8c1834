// SPDX-License-Identifier: GPL-2.0-only OR Apache-2.0
/* The records the BPF programs write to the ring buffer and the values of the
 * maps user space reads. The one definition, included by bpf/portwatch.bpf.c
 * and by the C++ decoder. Fixed-width fields, explicit padding, and every size and
 * offset asserted at the end of this file: clang -target bpf and g++ both check them, so
 * a change one compiler lays out differently fails the build. */
#ifndef PORTWATCH_ABI_H
#define PORTWATCH_ABI_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

/* Bumped whenever a record below changes shape. */
#define PW_ABI_VERSION 2

#define PW_COMM_LEN 16
#define PW_ADDR_LEN 16 /* IPv6 size; IPv4 uses the first 4 bytes */

enum pw_record_type {
    PW_RECORD_ALLOCATE = 1,
    PW_RECORD_ALLOCATE_FAILED = 2,
    PW_RECORD_RELEASE = 3,
    PW_RECORD_TYPE_COUNT = 4, /* array bound; 0 is unused */
};

/* The five ways a port gets allocated (README.md, "What it answers"). */
enum pw_how {
    PW_HOW_NONE = 0,
    PW_HOW_BIND = 1,
    PW_HOW_BIND_EPHEMERAL = 2,
    PW_HOW_LISTEN_AUTOBIND = 3,
    PW_HOW_CONNECT_AUTOBIND = 4,
    PW_HOW_SENDTO_AUTOBIND = 5,
    PW_HOW_COUNT = 6,
};

enum pw_syscall {
    PW_SYSCALL_NONE = 0,
    PW_SYSCALL_BIND = 1,
    PW_SYSCALL_LISTEN = 2,
    PW_SYSCALL_CONNECT = 3,
    PW_SYSCALL_SENDTO = 4,
    PW_SYSCALL_SENDMSG = 5,
    PW_SYSCALL_SENDMMSG = 6,
    PW_SYSCALL_COUNT = 7,
};

/* Why a port went back to the kernel. */
/* Which program reports a TCP connect() (the rodata `tcp_connect_path`, set by user space
 * from the hook set and the kernel's features). */
enum pw_tcp_connect_path {
    PW_TCP_CONNECT_BY_SOCKOPS = 0, /* TCP_CONNECT_CB, in the caller's context */
    PW_TCP_CONNECT_BY_SYSCALL = 1, /* sys_enter/sys_exit: sockops has no task helpers */
    PW_TCP_CONNECT_BY_FEXIT = 2,   /* fexit/inet_hash_connect */
};

enum pw_release_reason {
    PW_RELEASE_SOCKET_CLOSED = 1, /* last reference to the socket closed */
    PW_RELEASE_TCP_CLOSED = 2,    /* TCP reached CLOSE: reset, refused, passive close */
    PW_RELEASE_TIME_WAIT = 3,     /* handed to a TIME_WAIT socket that holds it on */
    PW_RELEASE_DISCONNECT = 4,    /* connect(AF_UNSPEC) dissolved an autobound UDP port */
};

/* Every record starts with this. size is the whole record, header included. */
struct pw_record_header {
    __u16 version;
    __u16 type;
    __u32 size;
    __u64 boot_ns; /* bpf_ktime_get_boot_ns() */
};

/* A socket's identity and endpoints. Addresses in network order, ports in host order. */
struct pw_socket {
    __u64 cookie; /* the kernel's socket cookie, as `ss -e` shows it */
    __u32 netns;  /* netns inode number */
    __u8 proto;   /* IPPROTO_TCP or IPPROTO_UDP */
    __u8 family;  /* AF_INET or AF_INET6 */
    __u16 local_port;
    __u8 local_addr[PW_ADDR_LEN];
    __u8 remote_addr[PW_ADDR_LEN];
    __u16 remote_port;
    __u8 pad[6];
};

/* The process that asked, read in its own syscall context. */
struct pw_task {
    __u64 cgroup_id;
    __u32 pid; /* tgid */
    __u32 tid;
    __u32 uid;
    __u32 pad;
    char comm[PW_COMM_LEN];
};

/* PW_RECORD_ALLOCATE and PW_RECORD_ALLOCATE_FAILED. For a failure, local_port is
 * the port asked for (0 when the kernel was to choose). */
struct pw_allocate_record {
    struct pw_record_header hdr;
    struct pw_socket sock;
    struct pw_task task;
    __s32 error; /* 0, or the positive errno of the failed call */
    __u8 how;
    __u8 syscall;
    __u8 ephemeral; /* port inside the netns range and not reserved */
    __u8 pad;
};

/* What the kernel side remembers about a port it saw allocated, keyed by
 * socket cookie, until the release. In a release record, how == PW_HOW_NONE
 * means the kernel kept nothing (a connect()-allocated TCP port): only sock and
 * the reason are filled, and user space joins the owner by cookie. */
struct pw_held_port {
    __u64 allocated_boot_ns;
    struct pw_socket sock;
    struct pw_task owner;
    __u8 how;
    __u8 pending_reason; /* a reason seen before the port actually went back */
    __u8 pad[6];
};

/* PW_RECORD_RELEASE. */
struct pw_release_record {
    struct pw_record_header hdr;
    struct pw_held_port held;
    __u8 reason;
    __u8 pad[7];
};

/* The call user space makes to measure where a task's registers are (the fexit set before
 * bpf_task_pt_regs(), 5.15): bind(-1, PW_CALIBRATION_ADDR, PW_CALIBRATION_LEN), which fails
 * with EBADF before it reads the address. */
#define PW_CALIBRATION_ADDR 0x7077636fUL
#define PW_CALIBRATION_LEN 0x7077U

/* Per-CPU counters, one array element. Indexed [record type][how]. */
struct pw_counters {
    __u64 emitted[PW_RECORD_TYPE_COUNT][PW_HOW_COUNT];
    __u64 lost[PW_RECORD_TYPE_COUNT][PW_HOW_COUNT]; /* ring buffer full */
    __u64 untracked;        /* allocation seen but its release cannot be: table full or no cookie */
    __u64 pending_overflow; /* a syscall in flight could not be remembered */
};

#ifdef __cplusplus
#define PW_ABI_ASSERT(condition) static_assert(condition, #condition)
#else
#define PW_ABI_ASSERT(condition) _Static_assert(condition, #condition)
#endif
#define PW_OFFSET(type, field) __builtin_offsetof(struct type, field)
PW_ABI_ASSERT(sizeof(struct pw_record_header) == 16);
PW_ABI_ASSERT(sizeof(struct pw_socket) == 56);
PW_ABI_ASSERT(PW_OFFSET(pw_socket, local_addr) == 16);
PW_ABI_ASSERT(PW_OFFSET(pw_socket, remote_addr) == 32);
PW_ABI_ASSERT(PW_OFFSET(pw_socket, remote_port) == 48);
PW_ABI_ASSERT(sizeof(struct pw_task) == 40);
PW_ABI_ASSERT(PW_OFFSET(pw_task, comm) == 24);
PW_ABI_ASSERT(sizeof(struct pw_allocate_record) == 120);
PW_ABI_ASSERT(PW_OFFSET(pw_allocate_record, sock) == 16);
PW_ABI_ASSERT(PW_OFFSET(pw_allocate_record, task) == 72);
PW_ABI_ASSERT(PW_OFFSET(pw_allocate_record, error) == 112);
PW_ABI_ASSERT(sizeof(struct pw_held_port) == 112);
PW_ABI_ASSERT(PW_OFFSET(pw_held_port, how) == 104);
PW_ABI_ASSERT(sizeof(struct pw_release_record) == 136);
PW_ABI_ASSERT(PW_OFFSET(pw_release_record, reason) == 128);
PW_ABI_ASSERT(sizeof(struct pw_counters) == 2 * PW_RECORD_TYPE_COUNT * PW_HOW_COUNT * 8 + 16);
#undef PW_OFFSET
#undef PW_ABI_ASSERT

#endif /* PORTWATCH_ABI_H */
