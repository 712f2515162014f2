/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Kernel layout differences the BPF programs read across, each with the
 * commit that introduced it. Flavours (___old) let CO-RE pick the layout of
 * the running kernel.
 */
#ifndef EXECMON_CORE_FIXES_BPF_H
#define EXECMON_CORE_FIXES_BPF_H

#include <vmlinux.h>
#include <bpf/bpf_core_read.h>

/*
 * inode ctime: "fs: add ctime accessors" (v6.6, 3a28e0b9) renamed i_ctime to
 * __i_ctime; "fs: split ctime into sec and nsec" (v6.11, 3aa63a569c64) made
 * it i_ctime_sec/i_ctime_nsec, and multigrain timestamps (v6.13) keep a
 * "queried" flag in bit 31 of i_ctime_nsec.
 */
struct inode___v66 {
	struct timespec64 __i_ctime;
} __attribute__((preserve_access_index));

struct inode___old {
	struct timespec64 i_ctime;
} __attribute__((preserve_access_index));

#define EM_I_CTIME_QUERIED (1U << 31)

static __always_inline void em_inode_ctime(struct inode *inode, __s64 *sec,
					   __u32 *nsec)
{
	if (bpf_core_field_exists(inode->i_ctime_sec)) {
		*sec = BPF_CORE_READ(inode, i_ctime_sec);
		*nsec = BPF_CORE_READ(inode, i_ctime_nsec) &
			~EM_I_CTIME_QUERIED;
	} else if (bpf_core_field_exists(((struct inode___v66 *)inode)->__i_ctime)) {
		struct inode___v66 *i = (void *)inode;

		*sec = BPF_CORE_READ(i, __i_ctime.tv_sec);
		*nsec = BPF_CORE_READ(i, __i_ctime.tv_nsec);
	} else {
		struct inode___old *i = (void *)inode;

		*sec = BPF_CORE_READ(i, i_ctime.tv_sec);
		*nsec = BPF_CORE_READ(i, i_ctime.tv_nsec);
	}
}

/*
 * kernfs_node parent: "kernfs: Rename kernfs_node::parent to __parent"
 * (v6.15, 633488947ef6) made it RCU-annotated under a new name.
 */
struct kernfs_node___old {
	struct kernfs_node *parent;
} __attribute__((preserve_access_index));

static __always_inline struct kernfs_node *em_kn_parent(struct kernfs_node *kn)
{
	if (bpf_core_field_exists(kn->__parent))
		return BPF_CORE_READ(kn, __parent);
	return BPF_CORE_READ((struct kernfs_node___old *)kn, parent);
}

/*
 * overlayfs (container root filesystems) maps the real, lower file: since
 * "fs: prepare for stackable filesystems backing file helpers" (v6.7) the
 * VMA's file is a struct backing_file whose user_path is the overlay file
 * the process exec'd. FMODE_BACKING is a macro (not in BTF), so callers
 * use this only after the VMA's own inode failed to match, and compare the
 * result against the exec'd inode: reading a plain struct file this way is
 * a safe probe read whose result cannot match.
 */
static __always_inline struct inode *em_backing_user_inode(struct file *f)
{
	if (!bpf_core_type_exists(struct backing_file))
		return NULL;
	return BPF_CORE_READ((struct backing_file *)f, user_path.dentry, d_inode);
}

#endif /* EXECMON_CORE_FIXES_BPF_H */
