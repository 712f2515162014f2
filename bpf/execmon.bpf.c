// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * execmon kernel side: every exec, fork and exit, with the build ID of the
 * executed ELF learned in the kernel before the new program runs.
 *
 *   sched_process_exec --hit--> ring buffer (source "cache")
 *        |miss
 *        v
 *   em_pending[tid] + bpf_task_work --(return to user)--> em_resolve_cb:
 *   auxv -> VMA -> ELF headers -> notes, fill cache, ring buffer
 *
 * Without bpf_task_work (older kernels) the miss is sent at once marked
 * "pending" and the agent resolves it late with the em_resolve iterator.
 */
#include <vmlinux.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "execmon_abi.h"
#include "core_fixes.bpf.h"
#include "path.bpf.h"
#include "buildid.bpf.h"
#include "policy.bpf.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#ifndef barrier_var
#define barrier_var(var) asm volatile("" : "+r"(var))
#endif

extern int bpf_task_work_schedule_resume_impl(struct task_struct *task,
					      struct bpf_task_work *tw,
					      void *map__map,
					      int (*cb)(struct bpf_map *, void *,
							void *),
					      void *aux__prog) __ksym __weak;

extern int bpf_send_signal_task(struct task_struct *task, int sig,
				enum pid_type type, __u64 value) __ksym __weak;

#define EM_SIGKILL 9

/* Set by the agent between open and load. */
const volatile bool em_use_task_work = true;
/* An entry younger than this (by ctime) is never cached; see em_file_key. */
const volatile __u64 em_cache_min_age_ns = 2000000000ULL;

/*
 * Ring-buffer wakeups: 0 wakes the agent on every record. Otherwise records
 * are submitted without a wakeup until this many bytes are pending, and
 * the agent also drains on a short timer. A wakeup is an irq_work (a
 * self-IPI): per exec (exec, fork, exit records) it cost more than the
 * rest of the kernel side together on the measured VM (docs/performance.md).
 */
const volatile __u64 em_wakeup_bytes = 0;

/* Refreshed by the agent every second: CLOCK_REALTIME - CLOCK_BOOTTIME. */
volatile __u64 em_boot_to_real_ns;

/* Exec, exit and fork records for the agent. Size set by the agent. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 16 << 20);
} em_events SEC(".maps");

static __always_inline __u64 em_rb_flags(void)
{
	if (!em_wakeup_bytes)
		return 0;
	return bpf_ringbuf_query(&em_events, BPF_RB_AVAIL_DATA) >= em_wakeup_bytes ?
		       BPF_RB_FORCE_WAKEUP :
		       BPF_RB_NO_WAKEUP;
}

/*
 * Build-ID cache, keyed by file identity including ctime. LRU bounds the
 * memory no matter how many distinct binaries a node runs; negative
 * results (no note, malformed) are cached too so they are not re-read.
 */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct em_file_key);
	__type(value, struct em_cache_val);
} em_bid_cache SEC(".maps");

enum {
	EM_PEND_WAITING = 1,
	EM_PEND_CLAIMED = 2,
};

/*
 * Execs whose build ID is being resolved, keyed by tid. The value carries
 * the task_work and the whole event, sent by whichever of the callback and
 * the exit tracepoint claims it first. Not preallocated: empty most of the
 * time, and bounded by max_entries.
 */
struct em_pending {
	struct bpf_task_work tw;
	__u32 state;
	__u32 pad;
	struct em_exec_event ev;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, struct em_pending);
} em_pending SEC(".maps");

/* All-zero template of an em_pending value, for inserting one. */
struct em_pending_zero {
	__u8 bytes[sizeof(struct em_pending)];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct em_pending_zero);
} em_zero SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, EM_STAT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} em_stats SEC(".maps");

/*
 * Snapshot records are too large for the 512-byte stack. The agent runs
 * one snapshot iterator at a time, and each program has its own slot.
 */
struct em_snap_scratch {
	struct em_snap_object object;
	struct em_snap_task task;
	struct em_resolved resolved;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct em_snap_scratch);
} em_snap_scratch SEC(".maps");

/* The resolver iterator's request, written by the agent before each run. */
struct em_resolve_req em_req;

static __always_inline void em_count(__u32 stat)
{
	__u64 *v = bpf_map_lookup_elem(&em_stats, &stat);

	if (v)
		*v += 1;
}

/*
 * Judges and acts: SIGKILL when the verdict says kill. current_task is
 * true where task is the running task (the exec tracepoint and the
 * task_work callback: the signal is pending before the program's first
 * instruction); otherwise the task is signalled through its thread group.
 */
static __always_inline void em_enforce(struct task_struct *task,
				       const struct em_build_id *bid,
				       struct em_verdict *v, bool current_task)
{
	int err;

	em_judge(task, bid, v);
	if (v->decision == EM_DEC_DENY)
		em_count(EM_STAT_VERDICT_DENY);
	if (v->action != EM_ACT_KILL)
		return;
	if (em_protected(task)) {
		v->action = EM_ACT_ALERT;
		v->flags |= EM_V_PROTECTED;
		return;
	}
	if (current_task)
		err = bpf_send_signal(EM_SIGKILL);
	else
		err = bpf_send_signal_task(task, EM_SIGKILL, PIDTYPE_TGID, 0);
	if (err) {
		em_count(EM_STAT_KILL_FAILED);
		v->action = EM_ACT_ALERT;
		return;
	}
	em_count(EM_STAT_KILL);
}

static __always_inline void em_file_key_of(struct inode *inode,
					   struct em_file_key *key)
{
	key->ino = BPF_CORE_READ(inode, i_ino);
	key->dev = BPF_CORE_READ(inode, i_sb, s_dev);
	key->generation = BPF_CORE_READ(inode, i_generation);
	key->size = BPF_CORE_READ(inode, i_size);
	em_inode_ctime(inode, &key->ctime_sec, &key->ctime_nsec);
}

/*
 * Caches a resolution unless it is transient (a read fault, an exited
 * task) or the file changed too recently for its ctime to be trusted as a
 * version: a rewrite within the same coarse clock tick keeps the ctime.
 * Returns whether it was cached.
 */
static __always_inline bool em_cache_fill(const struct em_file_key *key,
					  const struct em_build_id *bid)
{
	struct em_cache_val val = {};
	__u64 now_real, ctime_ns;

	switch (bid->error) {
	case EM_BID_OK:
	case EM_BID_ERR_NOT_ELF:
	case EM_BID_ERR_NO_NOTE:
	case EM_BID_ERR_BAD_PHDRS:
	case EM_BID_ERR_BAD_NOTE:
	case EM_BID_ERR_BAD_SIZE:
	case EM_BID_ERR_LIMIT:
		break;
	default:
		return false;
	}
	now_real = bpf_ktime_get_boot_ns() + em_boot_to_real_ns;
	ctime_ns = (__u64)key->ctime_sec * 1000000000ULL + key->ctime_nsec;
	if (!em_boot_to_real_ns || ctime_ns + em_cache_min_age_ns > now_real) {
		em_count(EM_STAT_CACHE_SKIP_FRESH);
		return false;
	}
	val.bid = *bid;
	val.filled_ns = bpf_ktime_get_boot_ns();
	bpf_map_update_elem(&em_bid_cache, key, &val, BPF_ANY);
	em_count(EM_STAT_CACHE_FILL);
	return true;
}

static __always_inline __u32 em_pid_ns(struct task_struct *p)
{
	struct pid *pid = BPF_CORE_READ(p, thread_pid);
	unsigned int level = BPF_CORE_READ(pid, level);
	struct upid up = {};

	bpf_probe_read_kernel(&up, sizeof(up), &pid->numbers[level & 31]);
	return BPF_CORE_READ(up.ns, ns.inum);
}

static __always_inline void em_fill_exec(struct em_exec_event *e,
					 struct task_struct *p,
					 struct linux_binprm *bprm,
					 const struct em_file_key *key)
{
	struct file *file = BPF_CORE_READ(bprm, file);
	struct inode *inode = BPF_CORE_READ(file, f_inode);
	struct fs_struct *fs = BPF_CORE_READ(p, fs);
	const struct cred *cred = BPF_CORE_READ(p, cred);
	struct mm_struct *mm = BPF_CORE_READ(p, mm);
	__u64 arg_start, arg_end, len;
	int trunc = 0;
	long n;

	e->hdr.type = EM_EV_EXEC;
	e->hdr.abi = EM_ABI_VERSION;
	e->hdr.size = sizeof(*e);
	e->hdr.ktime_ns = bpf_ktime_get_boot_ns();
	e->pid = BPF_CORE_READ(p, tgid);
	e->tid = BPF_CORE_READ(p, pid);
	e->ppid = BPF_CORE_READ(p, real_parent, tgid);
	e->uid = BPF_CORE_READ(cred, uid.val);
	e->gid = BPF_CORE_READ(cred, gid.val);
	e->euid = BPF_CORE_READ(cred, euid.val);
	e->egid = BPF_CORE_READ(cred, egid.val);
	if (bpf_core_field_exists(p->loginuid))
		e->loginuid = BPF_CORE_READ(p, loginuid.val);
	else
		e->loginuid = (__u32)-1;
	e->flags = 0;
	e->mnt_ns = BPF_CORE_READ(p, nsproxy, mnt_ns, ns.inum);
	e->pid_ns = em_pid_ns(p);
	e->argc = BPF_CORE_READ(bprm, argc);
	e->cgroup_id = bpf_get_current_cgroup_id();
	e->start_ns = BPF_CORE_READ(p, group_leader, start_boottime);
	e->resolved_ns = 0;
	e->exe = *key;
	e->exe_nlink = BPF_CORE_READ(inode, __i_nlink);
	e->exe_mode = BPF_CORE_READ(inode, i_mode);
	__builtin_memset(&e->bid, 0, sizeof(e->bid));
	bpf_get_current_comm(e->comm, sizeof(e->comm));

	n = bpf_probe_read_kernel_str(e->filename, sizeof(e->filename),
				      BPF_CORE_READ(bprm, filename));
	e->filename_len = n > 0 ? n - 1 : 0;
	if (n == sizeof(e->filename))
		e->flags |= EM_F_FILENAME_TRUNC;
	/* binfmt_script and binfmt_misc swap bprm->interp for the handler. */
	if (BPF_CORE_READ(bprm, interp) != BPF_CORE_READ(bprm, filename))
		e->flags |= EM_F_SCRIPT;
	if (BPF_CORE_READ(bprm, fdpath))
		e->flags |= EM_F_EXECFD;
	if (e->exe_nlink == 0)
		e->flags |= EM_F_EXE_UNLINKED;

	e->binary_len = em_path(BPF_CORE_READ(file, f_path.mnt),
				BPF_CORE_READ(file, f_path.dentry), &fs->root,
				e->binary, &trunc, EM_SCRATCH_EXEC);
	if (trunc)
		e->flags |= EM_F_BINARY_TRUNC;
	trunc = 0;
	e->cwd_len = em_path(BPF_CORE_READ(fs, pwd.mnt),
			     BPF_CORE_READ(fs, pwd.dentry), &fs->root, e->cwd,
			     &trunc, EM_SCRATCH_EXEC);
	if (trunc)
		e->flags |= EM_F_CWD_TRUNC;

	/* argv was just copied onto the new stack: its pages are present. */
	arg_start = BPF_CORE_READ(mm, arg_start);
	arg_end = BPF_CORE_READ(mm, arg_end);
	len = arg_end > arg_start ? arg_end - arg_start : 0;
	if (len > EM_ARGS_MAX) {
		len = EM_ARGS_MAX;
		e->flags |= EM_F_ARGS_TRUNC;
	}
	e->args_len = 0;
	barrier_var(len);
	if (len > 0 && len <= EM_ARGS_MAX &&
	    !bpf_probe_read_user(e->args, len, (void *)arg_start))
		e->args_len = len;
}

static __always_inline void em_submit_now(struct task_struct *p,
					  struct linux_binprm *bprm,
					  const struct em_file_key *key,
					  const struct em_cache_val *hit,
					  __u8 error)
{
	struct em_exec_event *e;

	e = bpf_ringbuf_reserve(&em_events, sizeof(*e), 0);
	if (!e) {
		em_count(EM_STAT_RB_DROP_EXEC);
		return;
	}
	em_fill_exec(e, p, bprm, key);
	if (hit) {
		e->bid = hit->bid;
		e->bid.source = EM_BID_SRC_CACHE;
		e->resolved_ns = e->hdr.ktime_ns;
	} else {
		e->bid.error = error;
	}
	if (error == EM_BID_ERR_PENDING) {
		/* Judged when the iterator resolves it. */
		__builtin_memset(&e->verdict, 0, sizeof(e->verdict));
		e->verdict.decision = EM_DEC_PENDING;
		e->verdict.policy = EM_POLICY_NONE;
	} else {
		em_enforce(p, &e->bid, &e->verdict, true);
	}
	bpf_ringbuf_submit(e, em_rb_flags());
}

static int em_resolve_cb(struct bpf_map *map, void *key, void *value)
{
	struct em_pending *pend = value;
	struct task_struct *task = bpf_get_current_task_btf();
	struct em_build_id bid = {};

	if (!__sync_bool_compare_and_swap(&pend->state, EM_PEND_WAITING,
					  EM_PEND_CLAIMED))
		return 0;
	em_count(EM_STAT_TW_RAN);
	em_read_exe_build_id(task, &pend->ev.exe, &bid);
	bid.source = EM_BID_SRC_TASK_WORK;
	pend->ev.bid = bid;
	pend->ev.resolved_ns = bpf_ktime_get_boot_ns();
	if (!em_cache_fill(&pend->ev.exe, &bid))
		pend->ev.flags |= EM_F_NOT_CACHED;
	em_enforce(task, &bid, &pend->ev.verdict, true);
	if (bpf_ringbuf_output(&em_events, &pend->ev, sizeof(pend->ev), em_rb_flags()))
		em_count(EM_STAT_RB_DROP_EXEC);
	bpf_map_delete_elem(map, key);
	return 0;
}

SEC("tp_btf/sched_process_exec")
int BPF_PROG(em_exec, struct task_struct *p, pid_t old_pid,
	     struct linux_binprm *bprm)
{
	struct em_file_key key = {};
	struct em_cache_val *hit;
	struct em_pending *pend;
	void *zero;
	__u32 tid, z = 0;
	int err;

	em_count(EM_STAT_EXEC);
	em_file_key_of(BPF_CORE_READ(bprm, file, f_inode), &key);
	hit = bpf_map_lookup_elem(&em_bid_cache, &key);
	if (hit) {
		em_count(EM_STAT_CACHE_HIT);
		em_submit_now(p, bprm, &key, hit, EM_BID_OK);
		return 0;
	}
	em_count(EM_STAT_CACHE_MISS);
	if (!em_use_task_work) {
		/* The agent resolves it late with the em_resolve iterator. */
		em_submit_now(p, bprm, &key, NULL, EM_BID_ERR_PENDING);
		return 0;
	}

	tid = BPF_CORE_READ(p, pid);
	if (bpf_map_lookup_elem(&em_pending, &tid))
		em_count(EM_STAT_PENDING_REPLACED);
	zero = bpf_map_lookup_elem(&em_zero, &z);
	if (!zero || bpf_map_update_elem(&em_pending, &tid, zero, BPF_ANY)) {
		em_count(EM_STAT_PENDING_FULL);
		em_submit_now(p, bprm, &key, NULL, EM_BID_ERR_TABLE_FULL);
		return 0;
	}
	pend = bpf_map_lookup_elem(&em_pending, &tid);
	if (!pend)
		return 0;
	em_fill_exec(&pend->ev, p, bprm, &key);
	pend->state = EM_PEND_WAITING;
	err = bpf_task_work_schedule_resume_impl(p, &pend->tw, &em_pending,
						 em_resolve_cb, NULL);
	if (err) {
		em_count(EM_STAT_TW_SCHEDULE_FAIL);
		if (__sync_bool_compare_and_swap(&pend->state, EM_PEND_WAITING,
						 EM_PEND_CLAIMED)) {
			pend->ev.bid.error = EM_BID_ERR_SCHEDULE;
			em_enforce(p, &pend->ev.bid, &pend->ev.verdict, true);
			if (bpf_ringbuf_output(&em_events, &pend->ev, sizeof(pend->ev), em_rb_flags()))
				em_count(EM_STAT_RB_DROP_EXEC);
		}
		bpf_map_delete_elem(&em_pending, &tid);
		return 0;
	}
	em_count(EM_STAT_TW_SCHEDULED);
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
	struct em_pending *pend;
	struct em_exit_event *e;
	__u32 tid = BPF_CORE_READ(p, pid);

	/* An exec whose task_work never ran (killed during exec). */
	pend = bpf_map_lookup_elem(&em_pending, &tid);
	if (pend) {
		if (__sync_bool_compare_and_swap(&pend->state, EM_PEND_WAITING,
						 EM_PEND_CLAIMED)) {
			em_count(EM_STAT_PENDING_EXITED);
			pend->ev.bid.error = EM_BID_ERR_EXITED;
			/* Dying anyway: record the verdict, send nothing. */
			em_judge(p, &pend->ev.bid, &pend->ev.verdict);
			if (bpf_ringbuf_output(&em_events, &pend->ev, sizeof(pend->ev), em_rb_flags()))
				em_count(EM_STAT_RB_DROP_EXEC);
			bpf_map_delete_elem(&em_pending, &tid);
		}
	}
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

struct em_resolve_walk {
	struct task_struct *task;
	struct seq_file *seq;
	__u32 n;
	__u32 source;
};

static long em_resolve_step(__u32 i, void *arg)
{
	struct em_resolve_walk *w = arg;
	struct em_snap_scratch *scratch;
	struct em_resolved *rec;
	__u32 idx = i & (EM_RESOLVE_MAX - 1), z = 0;

	if (i >= w->n || i >= EM_RESOLVE_MAX)
		return 1;
	/* Off the stack: the ELF walk below needs most of the 512 bytes. */
	scratch = bpf_map_lookup_elem(&em_snap_scratch, &z);
	if (!scratch)
		return 1;
	rec = &scratch->resolved;
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
	em_cache_fill(&rec->file, &rec->bid);
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
		rec.bid.source = EM_BID_SRC_ITERATOR;
		em_cache_fill(&rec.exe, &rec.bid);
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
