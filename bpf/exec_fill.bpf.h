/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Fills an exec event from the exec's struct linux_binprm: the exec
 * tracepoint (after the point of no return, argv read from the new mm) and
 * the exec-denial unit at bprm_check_security (before it: no argv).
 */
#ifndef EXECMON_EXEC_FILL_BPF_H
#define EXECMON_EXEC_FILL_BPF_H

#include <vmlinux.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include "execmon_abi.h"
#include "path.bpf.h"

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
					 struct linux_binprm *bprm,
					 bool new_mm, __u32 slot)
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
				e->binary, &trunc, slot);
	if (trunc)
		e->flags |= EM_F_BINARY_TRUNC;
	trunc = 0;
	e->cwd_len = em_path(BPF_CORE_READ(fs, pwd.mnt),
			     BPF_CORE_READ(fs, pwd.dentry), &fs->root, e->cwd,
			     &trunc, slot);
	if (trunc)
		e->flags |= EM_F_CWD_TRUNC;

	e->args_len = 0;
	/* Before the point of no return (bprm_check_security) the task still
	 * runs its old image: argv is on the new stack, not in p->mm. */
	if (!new_mm)
		return;
	/* argv was just copied onto the new stack: its pages are present. */
	arg_start = BPF_CORE_READ(mm, arg_start);
	arg_end = BPF_CORE_READ(mm, arg_end);
	len = arg_end > arg_start ? arg_end - arg_start : 0;
	if (len > EM_ARGS_MAX) {
		len = EM_ARGS_MAX;
		e->flags |= EM_F_ARGS_TRUNC;
	}
	barrier_var(len);
	if (len > 0 && len <= EM_ARGS_MAX &&
	    !bpf_probe_read_user(e->args, len, (void *)arg_start))
		e->args_len = len;
}

#endif /* EXECMON_EXEC_FILL_BPF_H */
