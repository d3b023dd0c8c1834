// SPDX-License-Identifier: GPL-2.0-only
/* Part of portwatch.bpf.c (one object, one skeleton): the constants, the tunables user
 * space sets between open and load, and the call in flight every path fills. */
#ifndef PORTWATCH_COMMON_BPF_H
#define PORTWATCH_COMMON_BPF_H

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
#define MAX_USER_ERRNO 511 /* above: kernel-internal restart codes (ERESTARTSYS...) */

/* Tunables, set by user space between open and load. */
const volatile __s32 nr_bind = -1, nr_listen = -1, nr_connect = -1;
const volatile __s32 nr_sendto = -1, nr_sendmsg = -1, nr_sendmmsg = -1;
/* --pid: the task's process must be one of the first filter_pid_count (none: any). */
#define PW_MAX_FILTER_PIDS 16
const volatile __u32 filter_pids[PW_MAX_FILTER_PIDS] = {};
const volatile __u8 filter_pid_count = 0;
/* --children: the pid filter reads followed_tgids (the --pid ones and their descendants since
 * start) instead of filter_pids. */
#define PW_MAX_FOLLOWED_TGIDS 65536
const volatile __u8 filter_follow_children = 0;
/* --uid: the caller's uid (real, as bpf_get_current_uid_gid() gives it) must be one of the
 * first filter_uid_count (none: any). */
#define PW_MAX_FILTER_UIDS 16
const volatile __u32 filter_uids[PW_MAX_FILTER_UIDS] = {};
const volatile __u8 filter_uid_count = 0;
/* --port: the local port must be in one of the first filter_port_count ranges (none: any). */
#define PW_MAX_FILTER_PORT_RANGES 16
const volatile __u16 filter_port_low[PW_MAX_FILTER_PORT_RANGES] = {};
const volatile __u16 filter_port_high[PW_MAX_FILTER_PORT_RANGES] = {};
const volatile __u8 filter_port_count = 0;
const volatile __u32 filter_netns = 0;
const volatile __u8 filter_proto = 0;
const volatile __u8 filter_family = 0;
const volatile __u8 filter_comm_enabled = 0;
const volatile char filter_comm[PW_COMM_LEN] = {};
/* --cgroup and monitor -- CMD: the task must be in each of the first filter_cgroup_count
 * cgroups (v2) of filter_cgroup, or below it. */
#define PW_MAX_FILTER_CGROUPS 2
const volatile __u8 filter_cgroup_count = 0;
/* --container: the task must be in any one of the first filter_any_cgroup_count cgroups of
 * filter_any_cgroup, or below it (none: any). */
#define PW_MAX_FILTER_ANY_CGROUPS 16
const volatile __u8 filter_any_cgroup_count = 0;
const volatile __u64 wakeup_bytes = 0; /* 0: wake the reader on every record */
/* PW_TCP_CONNECT_BY_SYSCALL where sockops programs may not call bpf_get_current_pid_tgid(),
 * bpf_get_current_uid_gid() and friends (5.10, 6.1, 6.12: sock_ops_func_proto() lacks
 * them), PW_TCP_CONNECT_BY_FEXIT with the fexit hook set. */
const volatile __u8 tcp_connect_path = PW_TCP_CONNECT_BY_SOCKOPS;

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

/* Beside a hash map whose lookups mostly miss: how many keys it holds per slot (key % 4096),
 * at least. A lookup of a key whose slot reads 0 would miss and is skipped: a miss still
 * costs the map's bucket, a cold line of a large table for a new key (perf, connect storm:
 * ~0.1-0.2 us a lookup on this VM), where these 16 KiB stay in cache. A slot is raised
 * before its key is added and lowered after a delete that found it, so it never reads 0
 * while the key is there (a key replaced in place leaves it one too high: a lookup too
 * many, never one missed). Cookies and thread ids come in sequence, so the low bits spread
 * evenly. The adds' results are unused: XADD, which 5.10 has (fetching adds came in 5.12). */
#define PW_KEY_SLOTS 4096
struct key_counts {
    __u32 in_slot[PW_KEY_SLOTS];
};

static __always_inline __u32 *key_slot(struct key_counts *counts, __u64 key)
{
    return &counts->in_slot[key & (PW_KEY_SLOTS - 1)];
}

static __always_inline bool key_may_be_in(struct key_counts *counts, __u64 key)
{
    return *key_slot(counts, key) != 0;
}

static __always_inline void count_key_added(struct key_counts *counts, __u64 key)
{
    __sync_fetch_and_add(key_slot(counts, key), 1);
}

static __always_inline void count_key_removed(struct key_counts *counts, __u64 key)
{
    __sync_fetch_and_add(key_slot(counts, key), -1);
}

/* map[*key] = value, where counts keeps map's keys (key_value: *key, widened). */
static __always_inline long update_counted(void *map, struct key_counts *counts, __u64 key_value,
                                           const void *key, const void *value)
{
    count_key_added(counts, key_value);
    long err = bpf_map_update_elem(map, key, value, BPF_ANY);
    if (err)
        count_key_removed(counts, key_value);
    return err;
}

/* Deletes map[*key]; true if it was there. */
static __always_inline bool delete_counted(void *map, struct key_counts *counts, __u64 key_value,
                                           const void *key)
{
    if (bpf_map_delete_elem(map, key))
        return false;
    count_key_removed(counts, key_value);
    return true;
}

#endif /* PORTWATCH_COMMON_BPF_H */
