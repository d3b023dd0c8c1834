// SPDX-License-Identifier: GPL-2.0-only
/* CO-RE flavours for kernel structures whose shape changed across the
 * kernels portwatch supports (>= 5.9 with BTF). */
#ifndef PORTWATCH_KERNEL_COMPAT_BPF_H
#define PORTWATCH_KERNEL_COMPAT_BPF_H

#include "vmlinux.h"
#include <bpf/bpf_core_read.h>

/* Before v6.3 ("inet: ... make local port range lockless", netns_ipv4.ip_local_ports)
 * the range was two ints behind a seqlock; since then it is one u32, high << 16 | low. */
struct local_ports___two_ints {
    int range[2];
} __attribute__((preserve_access_index));

struct netns_ipv4___two_ints {
    struct local_ports___two_ints ip_local_ports;
} __attribute__((preserve_access_index));

struct net___two_ints {
    struct netns_ipv4___two_ints ipv4;
} __attribute__((preserve_access_index));

/* Tested on the old flavour: a field-exists relocation that finds no match is 0, where a
 * size relocation against an incompatible type (int[2] vs u32) fails the load. */
static __always_inline void netns_local_port_range(const struct net *net, __u16 *low, __u16 *high)
{
    const struct net___two_ints *old = (const void *)net;
    if (bpf_core_field_exists(old->ipv4.ip_local_ports.range)) {
        *low = (__u16)BPF_CORE_READ(old, ipv4.ip_local_ports.range[0]);
        *high = (__u16)BPF_CORE_READ(old, ipv4.ip_local_ports.range[1]);
        return;
    }
    __u32 packed = BPF_CORE_READ(net, ipv4.ip_local_ports.range);
    *low = packed & 0xffff;
    *high = packed >> 16;
}

#endif /* PORTWATCH_KERNEL_COMPAT_BPF_H */
