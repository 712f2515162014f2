/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Path of a (mount, dentry) pair relative to a process's root, built in the
 * kernel: bpf_d_path() is not allowed in tp_btf programs. Names are written
 * right to left into a per-CPU scratch buffer; the exec program runs with
 * preemption disabled (tracepoint), so the per-CPU buffer is not shared.
 */
#ifndef EXECMON_PATH_BPF_H
#define EXECMON_PATH_BPF_H

#include <vmlinux.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include "execmon_abi.h"

#define EM_WALK_BUF 1024 /* names end at this offset; power of two */
#define EM_WALK_NAME_MAX 255
#define EM_WALK_DEPTH 64

struct em_path_scratch {
	/* Twice EM_WALK_BUF so masked offsets plus a bounded length stay in. */
	char buf[2 * EM_WALK_BUF];
};

/*
 * Scratch for path walks, per CPU, one slot per context that walks paths:
 * EM_SCRATCH_EXEC for the exec tracepoint (runs with preemption disabled),
 * EM_SCRATCH_ITER for the snapshot iterator (one run at a time), so a
 * tracepoint preempting the iterator on the same CPU cannot clobber it.
 */
#define EM_SCRATCH_EXEC 0
#define EM_SCRATCH_ITER 1
#define EM_SCRATCH_LSM 2 /* bprm_check (held exclusively: bpf/lsm.bpf.c) */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 3);
	__type(key, __u32);
	__type(value, struct em_path_scratch);
} em_path_scratch SEC(".maps");

struct em_walk {
	struct dentry *dentry;
	struct vfsmount *vfsmnt;
	struct dentry *root_dentry;
	struct vfsmount *root_mnt;
	__u32 pos;
	__u32 truncated;
	__u32 done;
	__u32 slot;
};

static __always_inline struct mount *em_real_mount(struct vfsmount *m)
{
	return (void *)m - bpf_core_field_offset(struct mount, mnt);
}

/* Prepends "/<name of d>"; false when it does not fit (truncated). */
static __always_inline bool em_walk_name(struct em_walk *w, struct dentry *d)
{
	struct em_path_scratch *s;
	const unsigned char *name;
	__u32 len;

	s = bpf_map_lookup_elem(&em_path_scratch, &w->slot);
	if (!s)
		return false;
	len = BPF_CORE_READ(d, d_name.len);
	name = BPF_CORE_READ(d, d_name.name);
	if (len > EM_WALK_NAME_MAX || len + 1 > w->pos) {
		w->truncated = 1;
		return false;
	}
	w->pos -= len;
	bpf_probe_read_kernel(&s->buf[w->pos & (EM_WALK_BUF - 1)],
			      len & EM_WALK_NAME_MAX, name);
	w->pos -= 1;
	s->buf[w->pos & (EM_WALK_BUF - 1)] = '/';
	return true;
}

static long em_walk_step(__u32 i, void *arg)
{
	struct em_walk *w = arg;
	struct dentry *d = w->dentry, *parent, *mnt_root;
	struct vfsmount *vfsmnt = w->vfsmnt;

	if (d == w->root_dentry && vfsmnt == w->root_mnt) {
		w->done = 1;
		return 1;
	}
	mnt_root = BPF_CORE_READ(vfsmnt, mnt_root);
	parent = BPF_CORE_READ(d, d_parent);
	if (d == mnt_root) {
		struct mount *m = em_real_mount(vfsmnt);
		struct mount *mp = BPF_CORE_READ(m, mnt_parent);

		/* The namespace root, or an internal mount: nothing above. */
		if (mp == m) {
			w->done = 1;
			return 1;
		}
		w->dentry = BPF_CORE_READ(m, mnt_mountpoint);
		w->vfsmnt = (void *)mp + bpf_core_field_offset(struct mount, mnt);
		return 0;
	}
	if (!em_walk_name(w, d))
		return 1;
	if (d == parent) {
		/* A pseudo file (memfd, pipe) or a disconnected dentry: its own
		 * name is all there is ("/memfd:name"). */
		w->done = 1;
		return 1;
	}
	w->dentry = parent;
	return 0;
}

/*
 * Writes the path of (mnt, dentry) below (root_mnt, root_dentry) into out
 * (EM_PATH_MAX bytes, not NUL-terminated) and returns its length. A path
 * longer than the buffer keeps its tail and sets *truncated.
 */
static __always_inline __u16 em_path(struct vfsmount *mnt, struct dentry *dentry,
				     struct path *root, char *out,
				     int *truncated, __u32 slot)
{
	struct em_walk w = {
		.dentry = dentry,
		.vfsmnt = mnt,
		.root_dentry = BPF_CORE_READ(root, dentry),
		.root_mnt = BPF_CORE_READ(root, mnt),
		.pos = EM_WALK_BUF,
		.slot = slot,
	};
	struct em_path_scratch *s;
	__u32 n;

	s = bpf_map_lookup_elem(&em_path_scratch, &slot);
	if (!s)
		return 0;
	bpf_loop(EM_WALK_DEPTH, em_walk_step, &w, 0);
	if (!w.done)
		w.truncated = 1; /* deeper than EM_WALK_DEPTH */
	n = EM_WALK_BUF - w.pos;
	if (n == 0) {
		/* The root itself. */
		out[0] = '/';
		return 1;
	}
	if (n > EM_PATH_MAX - 1) {
		n = EM_PATH_MAX - 1;
		w.truncated = 1;
	}
	if (w.truncated)
		*truncated = 1;
	bpf_probe_read_kernel(out, n & (EM_PATH_MAX - 1),
			      &s->buf[(EM_WALK_BUF - n) & (EM_WALK_BUF - 1)]);
	return n;
}

#endif /* EXECMON_PATH_BPF_H */
