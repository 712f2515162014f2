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
#include "page_cache.bpf.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* The resolver iterator's request, written by the agent before each run. */
struct em_resolve_req em_req;

/* Whether the mapping in v (found at an address of task) maps file key. */
static __always_inline bool em_vma_maps(const struct em_vma_info *v,
					const struct em_file_key *key)
{
	return v->ino && ((v->ino == key->ino && v->dev == key->dev) ||
			  (v->user_ino == key->ino && v->user_dev == key->dev));
}

/* Per CPU, off the stack: the iterators run one at a time. */
struct em_late_scratch {
	struct em_resolved rec;
	struct em_sweep sweep;
	struct em_vma_info v;
	struct em_build_id f;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct em_late_scratch);
} em_late_scratch SEC(".maps");

static __always_inline bool em_pc_usable(const struct em_build_id *b)
{
	return b->error != EM_BID_ERR_NOT_RESIDENT &&
	       b->error != EM_BID_ERR_READ_FAULT;
}

/*
 * A late build ID, read from the file when its pages are in the page
 * cache (trusted: what `execmon buildid` reads), else from the process's
 * memory (flagged EM_BID_F_MEMORY). Reading memory faults the pages in,
 * so the page cache is tried once more after it. addr is an address in
 * the object's mapping (the main executable: mm->start_code); mem_base
 * is where its file offset 0 is mapped, or EM_RESOLVE_EXE to find that
 * from the auxv.
 */
static __always_inline void em_late_build_id(struct task_struct *task,
					     __u64 addr,
					     const struct em_file_key *key,
					     struct em_build_id *out,
					     __u64 mem_base, __u64 mem_size,
					     struct em_late_scratch *s)
{
	struct em_vma_ref ref = { .v = &s->v };
	bool have_file;
	int err;

	__builtin_memset(&s->v, 0, sizeof(s->v));
	__builtin_memset(&s->f, 0, sizeof(s->f));
	have_file = em_pc_bases.vmemmap_base &&
		    bpf_find_vma(task, addr, em_vma_ref_cb, &ref, 0) == 0 &&
		    em_vma_maps(&s->v, key);
	if (have_file) {
		em_pc_build_id(s->v.mapping, s->v.size, EM_PC_SLOT_ITER, &s->f);
		if (em_pc_usable(&s->f)) {
			*out = s->f;
			return;
		}
	}
	if (mem_base == EM_RESOLVE_EXE) {
		err = em_exe_image(task, key, &mem_base, &mem_size);
		if (err) {
			out->error = err;
			return;
		}
	}
	em_read_build_id(task, mem_base, mem_size, key->size, out);
	if (have_file) {
		__builtin_memset(&s->f, 0, sizeof(s->f));
		em_pc_build_id(s->v.mapping, s->v.size, EM_PC_SLOT_ITER, &s->f);
		if (em_pc_usable(&s->f)) {
			*out = s->f;
			return;
		}
	}
	if (out->error == EM_BID_OK)
		out->flags |= EM_BID_F_MEMORY;
}

struct em_resolve_walk {
	struct task_struct *task;
	struct seq_file *seq;
	__u32 n;
	__u32 source;
};

static long em_resolve_step(__u32 i, void *arg)
{
	struct em_resolve_walk *w = arg;
	struct task_struct *task = w->task;
	struct em_late_scratch *s;
	struct em_resolved *rec;
	__u32 idx = i & (EM_RESOLVE_MAX - 1), z = 0;

	if (i >= w->n || i >= EM_RESOLVE_MAX)
		return 1;
	/* Off the stack: the ELF walk below needs most of the 512 bytes. */
	s = bpf_map_lookup_elem(&em_late_scratch, &z);
	if (!s)
		return 1;
	rec = &s->rec;
	__builtin_memset(rec, 0, sizeof(*rec));
	rec->hdr.type = EM_EV_RESOLVED;
	rec->hdr.abi = EM_ABI_VERSION;
	rec->hdr.size = sizeof(*rec);
	rec->pid = em_req.pid;
	rec->index = i;
	rec->file = em_req.keys[idx];
	if (em_req.addrs[idx] == EM_RESOLVE_EXE)
		em_late_build_id(task, BPF_CORE_READ(task, mm, start_code),
				 &rec->file, &rec->bid, EM_RESOLVE_EXE, 0, s);
	else
		em_late_build_id(task, em_req.addrs[idx], &rec->file,
				 &rec->bid, em_req.addrs[idx], em_req.sizes[idx], s);
	rec->bid.source = w->source;
	rec->hdr.ktime_ns = bpf_ktime_get_boot_ns();
	/* From the file: cached. From memory the process could have written
	 * (it has run): never, so one process cannot poison the node's cache. */
	if (!(rec->bid.flags & EM_BID_F_MEMORY))
		em_cache_fill(&rec->file, &rec->bid, NULL);
	rec->verdict.policy = EM_POLICY_NONE;
	/* A late exec resolution (no task_work): judge now, the program is
	 * already running. Snapshot objects are judged by the sweep. */
	if (em_req.addrs[idx] == EM_RESOLVE_EXE && w->source == EM_BID_SRC_ITERATOR)
		em_enforce(w->task, &rec->bid, NULL, &rec->verdict, false);
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
	struct em_late_scratch *s;
	struct em_cache_val *hit;
	const __u8 *sha = NULL;
	struct em_sweep *rec;
	struct file *exe;
	__u32 z = 0;

	if (!task || task->pid != task->tgid || !task->mm)
		return 0;
	exe = BPF_CORE_READ(task, mm, exe_file);
	if (!exe)
		return 0;
	/* Off the stack, as in em_resolve_step: the ELF walk needs it. */
	s = bpf_map_lookup_elem(&em_late_scratch, &z);
	if (!s)
		return 0;
	rec = &s->sweep;
	__builtin_memset(rec, 0, sizeof(*rec));
	em_file_key_of(BPF_CORE_READ(exe, f_inode), &rec->exe);
	hit = bpf_map_lookup_elem(&em_bid_cache, &rec->exe);
	if (hit) {
		rec->bid = hit->bid;
		rec->bid.source = EM_BID_SRC_CACHE;
		sha = (const __u8 *)bpf_map_lookup_elem(&em_sha_cache, &rec->exe);
	} else {
		em_late_build_id(task, BPF_CORE_READ(task, mm, start_code),
				 &rec->exe, &rec->bid, EM_RESOLVE_EXE, 0, s);
		rec->bid.source = EM_BID_SRC_ITERATOR;
		/* Cached only when read from the file (em_resolve_step). */
		if (!(rec->bid.flags & EM_BID_F_MEMORY))
			em_cache_fill(&rec->exe, &rec->bid, NULL);
	}
	em_enforce(task, &rec->bid, sha, &rec->verdict, false);
	if (rec->verdict.decision != EM_DEC_DENY)
		return 0;
	em_count(EM_STAT_SWEEP_VIOLATIONS);
	rec->hdr.type = EM_EV_SWEEP;
	rec->hdr.abi = EM_ABI_VERSION;
	rec->hdr.size = sizeof(*rec);
	rec->hdr.ktime_ns = bpf_ktime_get_boot_ns();
	rec->pid = task->tgid;
	rec->ppid = BPF_CORE_READ(task, real_parent, tgid);
	rec->start_ns = task->start_boottime;
	rec->cgroup_id = BPF_CORE_READ(task, cgroups, dfl_cgrp, kn, id);
	BPF_CORE_READ_INTO(&rec->comm, task, comm);
	bpf_seq_write(ctx->meta->seq, rec, sizeof(*rec));
	return 0;
}
