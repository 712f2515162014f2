// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * execmon iterator unit: build IDs read from a running process's memory,
 * after it started (late), for kernels where no path learns them at exec,
 * and the policy sweep of running processes. Its own loadable unit: a
 * kernel that refuses it (6.19 once ran em_resolve past the verifier's
 * limit) keeps exec capture.
 */
#include <vmlinux.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "execmon_abi.h"
#include "common.bpf.h"
#include "buildid.bpf.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* The resolver iterator's request, written by the agent before each run. */
struct em_resolve_req em_req;

/* The resolver's record is too large for the stack next to the ELF walk. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct em_resolved);
} em_resolve_scratch SEC(".maps");

struct em_resolve_walk {
	struct task_struct *task;
	struct seq_file *seq;
	__u32 n;
	__u32 source;
};

static long em_resolve_step(__u32 i, void *arg)
{
	struct em_resolve_walk *w = arg;
	struct em_resolved *rec;
	__u32 idx = i & (EM_RESOLVE_MAX - 1), z = 0;

	if (i >= w->n || i >= EM_RESOLVE_MAX)
		return 1;
	/* Off the stack: the ELF walk below needs most of the 512 bytes. */
	rec = bpf_map_lookup_elem(&em_resolve_scratch, &z);
	if (!rec)
		return 1;
	__builtin_memset(rec, 0, sizeof(*rec));
	rec->hdr.type = EM_EV_RESOLVED;
	rec->hdr.abi = EM_ABI_VERSION;
	rec->hdr.size = sizeof(*rec);
	rec->pid = em_req.pid;
	rec->index = i;
	rec->file = em_req.keys[idx];
	if (em_req.addrs[idx] == EM_RESOLVE_EXE)
		em_read_exe_build_id(w->task, &rec->file, &rec->bid);
	else
		em_read_build_id(w->task, em_req.addrs[idx], em_req.sizes[idx],
				 &rec->bid);
	rec->bid.source = w->source;
	rec->hdr.ktime_ns = bpf_ktime_get_boot_ns();
	/* Read from memory the process could have written (it has run):
	 * never cached, so one process cannot poison the node's cache. */
	rec->verdict.policy = EM_POLICY_NONE;
	/* A late exec resolution (no task_work): judge now, the program is
	 * already running. Snapshot objects are judged by the sweep. */
	if (em_req.addrs[idx] == EM_RESOLVE_EXE && w->source == EM_BID_SRC_ITERATOR)
		em_enforce(w->task, &rec->bid, &rec->verdict, false);
	em_count(EM_STAT_ITER_RESOLVED);
	bpf_seq_write(w->seq, rec, sizeof(*rec));
	return 0;
}

/*
 * Resolver: build IDs of em_req's images in one task (the agent attaches
 * it to a single tid). Used by the snapshot and, on kernels without
 * bpf_task_work, for every exec the cache missed. em_req_source says which.
 */
volatile __u32 em_req_source = EM_BID_SRC_SNAPSHOT;

SEC("iter.s/task")
int em_resolve(struct bpf_iter__task *ctx)
{
	struct task_struct *task = ctx->task;
	struct em_resolve_walk w = {};

	if (!task || task->pid != task->tgid || task->tgid != em_req.pid)
		return 0;
	w.task = task;
	w.seq = ctx->meta->seq;
	w.n = em_req.n;
	w.source = em_req_source;
	bpf_loop(EM_RESOLVE_MAX, em_resolve_step, &w, 0);
	return 0;
}

/*
 * Sweep: after a policy load, every running process is judged on its main
 * executable's build ID (cache, else read from its memory: iter.s/task
 * holds no mmap lock). Violators are reported, and killed when the verdict
 * says so.
 */
SEC("iter.s/task")
int em_sweep(struct bpf_iter__task *ctx)
{
	struct task_struct *task = ctx->task;
	struct em_cache_val *hit;
	struct em_sweep rec = {};
	struct file *exe;

	if (!task || task->pid != task->tgid || !task->mm)
		return 0;
	exe = BPF_CORE_READ(task, mm, exe_file);
	if (!exe)
		return 0;
	em_file_key_of(BPF_CORE_READ(exe, f_inode), &rec.exe);
	hit = bpf_map_lookup_elem(&em_bid_cache, &rec.exe);
	if (hit) {
		rec.bid = hit->bid;
		rec.bid.source = EM_BID_SRC_CACHE;
	} else {
		em_read_exe_build_id(task, &rec.exe, &rec.bid);
		/* From the process's memory: never cached (see em_resolve_step). */
		rec.bid.source = EM_BID_SRC_ITERATOR;
	}
	em_enforce(task, &rec.bid, &rec.verdict, false);
	if (rec.verdict.decision != EM_DEC_DENY)
		return 0;
	em_count(EM_STAT_SWEEP_VIOLATIONS);
	rec.hdr.type = EM_EV_SWEEP;
	rec.hdr.abi = EM_ABI_VERSION;
	rec.hdr.size = sizeof(rec);
	rec.hdr.ktime_ns = bpf_ktime_get_boot_ns();
	rec.pid = task->tgid;
	rec.ppid = BPF_CORE_READ(task, real_parent, tgid);
	rec.start_ns = task->start_boottime;
	rec.cgroup_id = BPF_CORE_READ(task, cgroups, dfl_cgrp, kn, id);
	BPF_CORE_READ_INTO(&rec.comm, task, comm);
	bpf_seq_write(ctx->meta->seq, &rec, sizeof(rec));
	return 0;
}
