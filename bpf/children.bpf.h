// SPDX-License-Identifier: GPL-2.0-only
/* Part of portwatch.bpf.c: --children, the descendants of the --pid processes followed in
 * followed_tgids (sockets.bpf.h). Loaded only with --children. */
#ifndef PORTWATCH_CHILDREN_BPF_H
#define PORTWATCH_CHILDREN_BPF_H

#include "sockets.bpf.h"

/* copy_process() runs it in the parent: a thread of a followed process forking a process
 * adds it (a new thread's tgid is its parent's: already there). */
SEC("tp_btf/sched_process_fork")
int BPF_PROG(pw_sched_process_fork, struct task_struct *parent, struct task_struct *child)
{
    __u32 parent_tgid = parent->tgid;
    if (!bpf_map_lookup_elem(&followed_tgids, &parent_tgid))
        return 0;
    __u32 child_tgid = child->tgid;
    __u8 followed = 1;
    bpf_map_update_elem(&followed_tgids, &child_tgid, &followed, BPF_ANY);
    return 0;
}

/* do_exit() runs it for every thread, after it took the thread off signal->live: the process
 * is gone when that reads 0 (its tgid may be reused). */
SEC("tp_btf/sched_process_exit")
int BPF_PROG(pw_sched_process_exit, struct task_struct *task)
{
    if (task->signal->live.counter != 0)
        return 0;
    __u32 tgid = task->tgid;
    bpf_map_delete_elem(&followed_tgids, &tgid);
    return 0;
}

#endif /* PORTWATCH_CHILDREN_BPF_H */
