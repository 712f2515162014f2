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

static __always_inline __u32 em_pid_ns(struct task_struct *p)
{
	struct pid *pid = BPF_CORE_READ(p, thread_pid);
	unsigned int level = BPF_CORE_READ(pid, level);
	struct upid up = {};

	bpf_probe_read_kernel(&up, sizeof(up), &pid->numbers[level & 31]);
	return BPF_CORE_READ(up.ns, ns.inum);
}

/*
 * The path as passed to exec. Longer than the buffer, its tail is kept
 * (the program's name), as for binary and cwd, and the event is flagged:
 * the end is found a buffer at a time (PATH_MAX bounds the scan).
 */
#define EM_FILENAME_SCAN (4096 / (EM_PATH_MAX - 1) + 1)
static __always_inline void em_read_filename(struct em_exec_event *e,
					     const char *src)
{
	const long win = EM_PATH_MAX - 1;
	long n, off = 0;
	int i;

	n = bpf_probe_read_kernel_str(e->filename, sizeof(e->filename), src);
	if (n < (long)sizeof(e->filename)) {
		e->filename_len = n > 0 ? n - 1 : 0;
		return;
	}
	for (i = 0; i < EM_FILENAME_SCAN; i++) {
		off += win;
		n = bpf_probe_read_kernel_str(e->filename, sizeof(e->filename),
					      src + off);
		if (n < (long)sizeof(e->filename))
			break;
	}
	/* The string is off + n - 1 bytes long (n counts the NUL); its last
	 * win bytes start at off + n - 1 - win (0: exactly win bytes long). */
	if (n > 0)
		off += n - 1 - win;
	if (bpf_probe_read_kernel(e->filename, win, src + off))
		e->filename[0] = 0;
	e->filename[win] = 0;
	e->filename_len = e->filename[0] ? win : 0;
	if (off > 0)
		e->flags |= EM_F_FILENAME_TRUNC;
}

static __always_inline void em_fill_exec(struct em_exec_event *e,
					 struct task_struct *p,
					 struct linux_binprm *bprm)
{
	struct file *file = BPF_CORE_READ(bprm, file);
	struct inode *inode = BPF_CORE_READ(file, f_inode);
	struct fs_struct *fs = BPF_CORE_READ(p, fs);
	const struct cred *cred = BPF_CORE_READ(p, cred);
	struct mm_struct *mm = BPF_CORE_READ(p, mm);
	__u64 arg_start, arg_end, len;
	int trunc = 0;

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
	e->exe_nlink = BPF_CORE_READ(inode, __i_nlink);
	e->exe_mode = BPF_CORE_READ(inode, i_mode);
	__builtin_memset(&e->bid, 0, sizeof(e->bid));
	__builtin_memset(&e->verdict, 0, sizeof(e->verdict));
	bpf_get_current_comm(e->comm, sizeof(e->comm));

	em_read_filename(e, BPF_CORE_READ(bprm, filename));
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

SEC("tp_btf/sched_process_exec")
int BPF_PROG(em_exec, struct task_struct *p, pid_t old_pid,
	     struct linux_binprm *bprm)
{
	struct em_globals *g = em_glob();
	struct em_exec_state *st;
	struct em_cache_val *hit;
	__u32 z = 0;

	if (!g || !g->armed)
		return 0;
	st = bpf_map_lookup_elem(&em_exec_state, &z);
	if (!st)
		return 0;
	em_count(EM_STAT_EXEC);
	st->tid = BPF_CORE_READ(p, pid);
	st->seq++;
	em_file_key_of(BPF_CORE_READ(bprm, file, f_inode), &st->ev.exe);
	em_fill_exec(&st->ev, p, bprm);
	hit = bpf_map_lookup_elem(&em_bid_cache, &st->ev.exe);
	if (hit) {
		em_count(EM_STAT_CACHE_HIT);
		st->ev.bid = hit->bid;
		st->ev.bid.source = EM_BID_SRC_CACHE;
		st->ev.flags |= EM_F_CACHED;
		st->ev.resolved_ns = st->ev.hdr.ktime_ns;
		em_enforce(p, &st->ev.bid, &st->ev.verdict, true);
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
		em_enforce(p, &st->ev.bid, &st->ev.verdict, true);
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
