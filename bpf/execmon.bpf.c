// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * execmon core unit: every exec, fork and exit, cgroup lifecycle, and the
 * start-up snapshot. The build ID of an exec is learned by a chain of
 * programs on sched_process_exec, attached in this order:
 *
 *   em_exec (this unit)      capture; cache hit -> judge, act, send
 *   em_exec_pc (page_cache)  read the file's page cache -> judge, act, send
 *   em_exec_tw (task_work)   resolve before the first instruction
 *   em_exec_tail (this unit) what no path decided: late (iterator) or hold
 *
 * The optional units are separate BPF objects: a kernel that refuses one
 * keeps the others (agent/bpf/bpf_loader.cc has the table of paths).
 */
#include <vmlinux.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "execmon_abi.h"
#include "common.bpf.h"
#include "path.bpf.h"
#include "exec_fill.bpf.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/*
 * Snapshot records are too large for the 512-byte stack. The agent runs
 * one snapshot iterator at a time, and each program has its own slot.
 */
struct em_snap_scratch {
	struct em_snap_object object;
	struct em_snap_task task;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct em_snap_scratch);
} em_snap_scratch SEC(".maps");

SEC("tp_btf/sched_process_exec")
int BPF_PROG(em_exec, struct task_struct *p, pid_t old_pid,
	     struct linux_binprm *bprm)
{
	struct em_globals *g = em_glob();
	struct em_exec_state *st;
	struct em_lsm_stash *stash;
	struct em_cache_val *hit;
	struct em_sha256 *sha;
	__u32 z = 0, tgid;

	if (!g || !g->armed)
		return 0;
	st = bpf_map_lookup_elem(&em_exec_state, &z);
	if (!st)
		return 0;
	em_count(EM_STAT_EXEC);
	st->tid = BPF_CORE_READ(p, pid);
	st->seq++;
	em_file_key_of(BPF_CORE_READ(bprm, file, f_inode), &st->ev.exe);
	em_fill_exec(&st->ev, p, bprm, true, EM_SCRATCH_EXEC);
	/* The content hash computed at bprm_check for this very file. */
	tgid = st->ev.pid;
	stash = g->sha256 ? bpf_map_lookup_elem(&em_lsm_stash, &tgid) : NULL;
	if (stash && stash->valid) {
		if (em_file_key_eq(&stash->key, &st->ev.exe)) {
			__builtin_memcpy(st->ev.sha256, stash->sha256,
					 EM_SHA256_LEN);
			st->ev.flags |= EM_F_SHA256;
		}
		stash->valid = 0;
	}
	hit = bpf_map_lookup_elem(&em_bid_cache, &st->ev.exe);
	if (hit) {
		em_count(EM_STAT_CACHE_HIT);
		st->ev.bid = hit->bid;
		st->ev.bid.source = EM_BID_SRC_CACHE;
		st->ev.flags |= EM_F_CACHED;
		st->ev.resolved_ns = st->ev.hdr.ktime_ns;
		if (g->sha256 && !(st->ev.flags & EM_F_SHA256)) {
			sha = bpf_map_lookup_elem(&em_sha_cache, &st->ev.exe);
			if (sha) {
				__builtin_memcpy(st->ev.sha256, sha->b,
						 EM_SHA256_LEN);
				st->ev.flags |= EM_F_SHA256;
			}
		}
		em_enforce(p, &st->ev.bid, em_exec_sha(&st->ev),
			   &st->ev.verdict, true);
		em_send_exec(st);
		return 0;
	}
	em_count(EM_STAT_CACHE_MISS);
	st->stage = EM_STAGE_UNRESOLVED;
	return 0;
}

/* Last on the chain: an exec none of the resolver paths decided. */
SEC("tp_btf/sched_process_exec")
int BPF_PROG(em_exec_tail, struct task_struct *p, pid_t old_pid,
	     struct linux_binprm *bprm)
{
	struct em_exec_state *st = em_unresolved_exec();
	struct em_globals *g = em_glob();

	if (!st || !g)
		return 0;
	if (g->late_resolve) {
		/* Judged when the iterator resolves it. */
		st->ev.bid.error = EM_BID_ERR_PENDING;
		__builtin_memset(&st->ev.verdict, 0, sizeof(st->ev.verdict));
		st->ev.verdict.decision = EM_DEC_PENDING;
		st->ev.verdict.policy = EM_POLICY_NONE;
		/*
		 * Under an enforce+kill policy it must not run unjudged: stop
		 * it before its first instruction (the signal is delivered on
		 * the way back to user space); the agent resolves it, then
		 * kills or continues it (docs/kernels.md, "Holding").
		 */
		if (em_kill_governs(p) && !em_protected(p) &&
		    !bpf_send_signal(EM_SIGSTOP)) {
			st->ev.flags |= EM_F_HELD;
			em_count(EM_STAT_HELD);
		}
	} else {
		if (!st->ev.bid.error)
			st->ev.bid.error = EM_BID_ERR_UNRESOLVED;
		em_enforce(p, &st->ev.bid, em_exec_sha(&st->ev),
			   &st->ev.verdict, true);
	}
	em_send_exec(st);
	return 0;
}

SEC("tp_btf/sched_process_fork")
int BPF_PROG(em_fork, struct task_struct *parent, struct task_struct *child)
{
	struct em_fork_event *e;

	/* Threads share their process's exec: only new processes count. */
	if (BPF_CORE_READ(child, pid) != BPF_CORE_READ(child, tgid))
		return 0;
	e = bpf_ringbuf_reserve(&em_events, sizeof(*e), 0);
	if (!e) {
		em_count(EM_STAT_RB_DROP_FORK);
		return 0;
	}
	e->hdr.type = EM_EV_FORK;
	e->hdr.abi = EM_ABI_VERSION;
	e->hdr.size = sizeof(*e);
	e->hdr.ktime_ns = bpf_ktime_get_boot_ns();
	e->pid = BPF_CORE_READ(child, tgid);
	e->ppid = BPF_CORE_READ(parent, tgid);
	e->start_ns = BPF_CORE_READ(child, start_boottime);
	bpf_ringbuf_submit(e, em_rb_flags());
	return 0;
}

SEC("tp_btf/sched_process_exit")
int BPF_PROG(em_exit, struct task_struct *p)
{
	struct em_exit_event *e;

	/* Report the process once, when its last thread exits. */
	if (BPF_CORE_READ(p, signal, live.counter) != 0)
		return 0;
	e = bpf_ringbuf_reserve(&em_events, sizeof(*e), 0);
	if (!e) {
		em_count(EM_STAT_RB_DROP_EXIT);
		return 0;
	}
	e->hdr.type = EM_EV_EXIT;
	e->hdr.abi = EM_ABI_VERSION;
	e->hdr.size = sizeof(*e);
	e->hdr.ktime_ns = bpf_ktime_get_boot_ns();
	e->pid = BPF_CORE_READ(p, tgid);
	e->exit_code = BPF_CORE_READ(p, exit_code);
	e->start_ns = BPF_CORE_READ(p, group_leader, start_boottime);
	bpf_ringbuf_submit(e, em_rb_flags());
	return 0;
}

/*
 * Snapshot, pass 1 (processes): every thread-group leader with its argv.
 * Sleepable so argv is read from the task's memory; a task iterator holds
 * no mmap lock, so bpf_copy_from_user_task cannot deadlock here.
 */
SEC("iter.s/task")
int em_snap_tasks(struct bpf_iter__task *ctx)
{
	struct seq_file *seq = ctx->meta->seq;
	struct task_struct *task = ctx->task;
	struct em_snap_scratch *scratch;
	struct em_snap_task *rec;
	struct mm_struct *mm;
	const struct cred *cred;
	__u64 start, end, len;
	__u32 z = 0;

	if (!task || task->pid != task->tgid)
		return 0;
	mm = task->mm;
	if (!mm)
		return 0; /* kernel thread */
	cred = task->cred;
	scratch = bpf_map_lookup_elem(&em_snap_scratch, &z);
	if (!scratch)
		return 0;
	rec = &scratch->task;
	/* args is read up to args_len; clearing it would cost 1 KiB a task. */
	__builtin_memset(rec, 0, __builtin_offsetof(struct em_snap_task, args));
	rec->hdr.type = EM_EV_SNAP_TASK;
	rec->hdr.abi = EM_ABI_VERSION;
	rec->hdr.size = sizeof(*rec);
	rec->hdr.ktime_ns = bpf_ktime_get_boot_ns();
	rec->pid = task->tgid;
	rec->ppid = BPF_CORE_READ(task, real_parent, tgid);
	rec->uid = BPF_CORE_READ(cred, uid.val);
	rec->gid = BPF_CORE_READ(cred, gid.val);
	rec->euid = BPF_CORE_READ(cred, euid.val);
	if (bpf_core_field_exists(task->loginuid))
		rec->loginuid = BPF_CORE_READ(task, loginuid.val);
	rec->mnt_ns = BPF_CORE_READ(task, nsproxy, mnt_ns, ns.inum);
	rec->pid_ns = em_pid_ns(task);
	rec->cgroup_id = BPF_CORE_READ(task, cgroups, dfl_cgrp, kn, id);
	rec->start_ns = task->start_boottime;
	BPF_CORE_READ_INTO(&rec->comm, task, comm);
	start = BPF_CORE_READ(mm, arg_start);
	end = BPF_CORE_READ(mm, arg_end);
	len = end > start ? end - start : 0;
	if (len > EM_ARGS_MAX) {
		len = EM_ARGS_MAX;
		rec->flags |= EM_F_ARGS_TRUNC;
	}
	barrier_var(len);
	if (len > 0 && len <= EM_ARGS_MAX &&
	    !bpf_copy_from_user_task(rec->args, len, (void *)start, task, 0))
		rec->args_len = len;
	bpf_seq_write(seq, rec, sizeof(*rec));
	return 0;
}

/*
 * Snapshot, pass 2 (objects): every file-backed mapping of file offset 0,
 * i.e. each mapped ELF image (and other mapped files, which the resolver
 * reports as not ELF). Not sleepable: the task_vma iterator holds the
 * target's mmap lock, and reading its memory here could deadlock against a
 * queued writer. Build IDs come from the cache or, later, em_resolve.
 */
SEC("iter/task_vma")
int em_snap_vmas(struct bpf_iter__task_vma *ctx)
{
	struct seq_file *seq = ctx->meta->seq;
	struct vm_area_struct *vma = ctx->vma;
	struct task_struct *task = ctx->task;
	struct em_snap_scratch *scratch;
	struct em_cache_val *hit;
	struct em_snap_object *rec;
	struct file *file, *exe;
	struct inode *inode;
	int trunc = 0;
	__u32 z = 0;

	if (!task || !vma || task->pid != task->tgid)
		return 0;
	file = vma->vm_file;
	if (!file || vma->vm_pgoff != 0)
		return 0;
	inode = file->f_inode;
	if (!inode || (BPF_CORE_READ(inode, i_mode) & 0170000) != 0100000)
		return 0; /* not a regular file */
	scratch = bpf_map_lookup_elem(&em_snap_scratch, &z);
	if (!scratch)
		return 0;
	rec = &scratch->object;
	__builtin_memset(rec, 0, sizeof(*rec));
	rec->hdr.type = EM_EV_SNAP_OBJECT;
	rec->hdr.abi = EM_ABI_VERSION;
	rec->hdr.size = sizeof(*rec);
	rec->hdr.ktime_ns = bpf_ktime_get_boot_ns();
	rec->pid = task->tgid;
	rec->vm_start = vma->vm_start;
	rec->vm_size = vma->vm_end - vma->vm_start;
	exe = BPF_CORE_READ(task, mm, exe_file);
	rec->is_exe = exe && (BPF_CORE_READ(exe, f_inode) == inode ||
			      BPF_CORE_READ(exe, f_inode) == em_backing_user_inode(file));
	em_file_key_of(inode, &rec->file);
	hit = bpf_map_lookup_elem(&em_bid_cache, &rec->file);
	if (hit) {
		rec->bid = hit->bid;
		rec->bid.source = EM_BID_SRC_CACHE;
	} else {
		rec->bid.error = EM_BID_ERR_PENDING;
	}
	/* Relative to the task's root, like exec events' "binary". */
	rec->path_len = em_path(BPF_CORE_READ(file, f_path.mnt),
				BPF_CORE_READ(file, f_path.dentry),
				&BPF_CORE_READ(task, fs)->root, rec->path,
				&trunc, EM_SCRATCH_ITER);
	if (trunc)
		rec->flags |= EM_F_BINARY_TRUNC;
	bpf_seq_write(seq, rec, sizeof(*rec));
	return 0;
}

/*
 * cgroup v2 directories as they come and go (hierarchy 0 is the default,
 * v2, hierarchy; v1 controllers' mkdirs are ignored).
 */
static __always_inline int em_cgroup_event(struct cgroup *cgrp, const char *path,
					   __u16 type)
{
	struct em_cgroup_event *e;
	long n;

	if (BPF_CORE_READ(cgrp, root, hierarchy_id) != 0)
		return 0;
	e = bpf_ringbuf_reserve(&em_events, sizeof(*e), 0);
	if (!e) {
		em_count(EM_STAT_RB_DROP_CGROUP);
		return 0;
	}
	e->hdr.type = type;
	e->hdr.abi = EM_ABI_VERSION;
	e->hdr.size = sizeof(*e);
	e->hdr.ktime_ns = bpf_ktime_get_boot_ns();
	e->id = BPF_CORE_READ(cgrp, kn, id);
	e->path_len = 0;
	e->pad = 0;
	if (type == EM_EV_CGROUP_MKDIR) {
		n = bpf_probe_read_kernel_str(e->path, sizeof(e->path), path);
		e->path_len = n > 0 ? n - 1 : 0;
	}
	bpf_ringbuf_submit(e, em_rb_flags());
	return 0;
}

SEC("tp_btf/cgroup_mkdir")
int BPF_PROG(em_cgroup_mkdir, struct cgroup *cgrp, const char *path)
{
	return em_cgroup_event(cgrp, path, EM_EV_CGROUP_MKDIR);
}

SEC("tp_btf/cgroup_rmdir")
int BPF_PROG(em_cgroup_rmdir, struct cgroup *cgrp, const char *path)
{
	return em_cgroup_event(cgrp, path, EM_EV_CGROUP_RMDIR);
}
