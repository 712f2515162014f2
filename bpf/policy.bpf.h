/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Policy verdicts in the kernel, where the build ID becomes known: the exec
 * tracepoint (cache hit), the task_work callback (miss), the resolver
 * iterator (late) and the sweep iterator (running processes). The
 * semantics mirror agent/policy/evaluator.cc, which documents them:
 * violated = deny-listed, or not on an allow list, or unknown where
 * unknownBuildId is deny; deny beats allow; the deciding policy is the
 * lowest-indexed violated enforce+kill policy, else enforce, else audit.
 */
#ifndef EXECMON_POLICY_BPF_H
#define EXECMON_POLICY_BPF_H

#include <vmlinux.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include "execmon_abi.h"
#include "core_fixes.bpf.h"

/*
 * The generation execs are judged with (em_globals.active_gen) is flipped
 * by the agent on reload; pid 1 and the agent (em_globals.agent_tgid) are
 * never killed: the kill becomes an alert. Included by common.bpf.h.
 */

/* Build IDs named by any policy, per generation. Sized by the agent. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 1024);
	__type(key, struct em_policy_key);
	__type(value, struct em_policy_val);
} em_policy_ids SEC(".maps");

/* Pinned content hashes, per generation. Sized by the agent. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 1024);
	__type(key, struct em_sha256);
	__type(value, struct em_hash_pins);
} em_policy_hashes SEC(".maps");

/* Policy attributes, slot gen & 1. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, struct em_policy_meta);
} em_policy_meta SEC(".maps");

/* Pod scopes: cgroup (and descendants) -> governing policies. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 16384);
	__type(key, struct em_scope_key);
	__type(value, __u64);
} em_scope SEC(".maps");

enum {
	EM_CG_UNKNOWN = 0,
	EM_CG_HOST = 1,
	EM_CG_CONTAINER = 2,
};

/* cgroup id -> host or container, from the names of its ancestors. cgroup
 * ids are never reused, so entries never go stale; LRU bounds them. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, __u32);
} em_cgroup_class SEC(".maps");

#define EM_CG_DEPTH 16
#define EM_CG_NAME 16

struct em_cg_walk {
	struct kernfs_node *kn;
	__u32 gen;
	__u32 container;
	__u64 scope;
	__u32 found_scope;
	__u32 pad;
};

static __always_inline bool em_prefix(const char *s, const char *p, int n)
{
	for (int i = 0; i < n; i++)
		if (s[i] != p[i])
			return false;
	return true;
}

/*
 * Container runtimes' cgroup names (systemd and cgroupfs drivers):
 * kubepods*, docker-<id>.scope / docker/<id>, libpod-<id>.scope,
 * crio-<id>.scope, cri-containerd-<id>.scope, lxc.payload.*.
 * See docs/design.md; container awareness refines this per pod.
 */
static __always_inline bool em_container_name(const char *n)
{
	/* Not "docker.service" or "containerd.service": those are the
	 * runtimes' own daemons, host processes. */
	return em_prefix(n, "kubepods", 8) || em_prefix(n, "docker-", 7) ||
	       em_prefix(n, "docker", 7) /* "docker\0": cgroupfs driver */ ||
	       em_prefix(n, "libpod-", 7) || em_prefix(n, "crio-", 5) ||
	       em_prefix(n, "cri-containerd-", 15) ||
	       em_prefix(n, "lxc.payload", 11);
}

static long em_cg_step(__u32 i, void *arg)
{
	struct em_cg_walk *w = arg;
	struct em_scope_key key = {};
	char name[EM_CG_NAME] = {};
	__u64 *scope;

	struct kernfs_node *kn = w->kn;

	if (!kn)
		return 1;
	key.gen = w->gen;
	key.cgroup_id = BPF_CORE_READ(kn, id);
	if (!w->found_scope) {
		scope = bpf_map_lookup_elem(&em_scope, &key);
		if (scope) {
			w->scope = *scope;
			w->found_scope = 1;
		}
	}
	bpf_probe_read_kernel_str(name, sizeof(name), BPF_CORE_READ(kn, name));
	if (em_container_name(name))
		w->container = 1;
	w->kn = em_kn_parent(kn);
	return 0;
}

/* Which loaded policies govern a task, by its cgroup v2 ancestry. */
static __always_inline __u64 em_scope_of(struct task_struct *task,
					 const struct em_policy_meta *meta,
					 __u8 *flags)
{
	struct em_cg_walk w = {};
	struct kernfs_node *kn;
	__u64 cgid;
	__u32 *class, cls;

	kn = BPF_CORE_READ(task, cgroups, dfl_cgrp, kn);
	w.kn = kn;
	w.gen = meta->gen;
	cgid = BPF_CORE_READ(kn, id);
	class = bpf_map_lookup_elem(&em_cgroup_class, &cgid);
	if (class && *class == EM_CG_HOST) {
		/* Host cgroups have no pod scope: skip the walk. */
		return meta->scope_host;
	}
	bpf_loop(EM_CG_DEPTH, em_cg_step, &w, 0);
	if (!class) {
		cls = w.container ? EM_CG_CONTAINER : EM_CG_HOST;
		bpf_map_update_elem(&em_cgroup_class, &cgid, &cls, BPF_ANY);
	}
	if (w.container)
		*flags |= EM_V_CONTAINER;
	if (w.found_scope)
		return w.scope;
	return w.container ? meta->scope_container : meta->scope_host;
}

static __always_inline __u32 em_lowest_bit(__u64 m)
{
	__u32 n = 0;

	m &= -m;
	if (m & 0xffffffff00000000ULL)
		n += 32;
	if (m & 0xffff0000ffff0000ULL)
		n += 16;
	if (m & 0xff00ff00ff00ff00ULL)
		n += 8;
	if (m & 0xf0f0f0f0f0f0f0f0ULL)
		n += 4;
	if (m & 0xccccccccccccccccULL)
		n += 2;
	if (m & 0xaaaaaaaaaaaaaaaaULL)
		n += 1;
	return n;
}

/*
 * Policies whose allow entries pin content hash sha (generation gen).
 * With no hash known (sha NULL) every pinned entry credits by build ID:
 * all of them.
 */
static __always_inline __u64 em_hash_pins(__u32 gen, const __u8 *sha)
{
	struct em_hash_pins *p;
	__u32 slot = gen & 1;

	if (!sha)
		return ~0ULL;
	p = bpf_map_lookup_elem(&em_policy_hashes, sha);
	if (!p || p->gen[slot] != gen)
		return 0;
	return p->mask[slot];
}

/*
 * The verdict on task running an image with build ID bid (error set when
 * unknown). Does not act on it: see em_enforce().
 */
static __always_inline void em_judge(struct task_struct *task,
				     const struct em_build_id *bid,
				     const __u8 *sha, struct em_verdict *v)
{
	struct em_policy_meta *meta;
	struct em_policy_key key = {};
	struct em_policy_val *val;
	__u64 scope, viol, pick, deny = 0, allow = 0;
	struct em_globals *g = em_glob();
	__u32 gen = g ? g->active_gen : 0, slot = gen & 1, idx;
	bool known = bid->error == EM_BID_OK && bid->len > 0;
	/* Read from memory the process could have written: a deny-list match
	 * still counts (forging a denied ID only hurts the forger), but no
	 * allow list credits it; otherwise it is judged like an unknown ID. */
	bool untrusted = known && (bid->flags & EM_BID_F_MEMORY);

	v->gen = gen;
	v->policy = EM_POLICY_NONE;
	v->action = EM_ACT_NONE;
	v->flags = 0;
	v->decision = known ? EM_DEC_ALLOW : EM_DEC_UNKNOWN;
	meta = bpf_map_lookup_elem(&em_policy_meta, &slot);
	if (!meta || meta->gen != gen || !meta->npolicies)
		return;
	scope = em_scope_of(task, meta, &v->flags);
	if (!scope)
		return;
	if (known) {
		key.gen = gen;
		key.len = bid->len;
		__builtin_memcpy(key.id, bid->id, sizeof(key.id));
		val = bpf_map_lookup_elem(&em_policy_ids, &key);
		if (val) {
			deny = val->deny_mask;
			allow = val->allow_mask;
			/*
			 * A pinned allow entry credits only the pinned
			 * contents where the hash is known; without one it
			 * allows by build ID (docs/policies.md, "Pinning").
			 */
			if (val->pinned_mask)
				allow &= ~(val->pinned_mask &
					   ~em_hash_pins(gen, sha));
		}
		if (untrusted) {
			viol = scope & (deny | meta->unknown_deny_mask);
			allow = 0;
		} else {
			viol = scope & (deny | (meta->allowlist_mask & ~allow));
		}
	} else {
		viol = scope & meta->unknown_deny_mask;
	}
	if (!viol) {
		pick = scope & allow;
		if (known && pick) {
			idx = em_lowest_bit(pick);
			v->policy = idx;
			if ((meta->enforce_mask >> idx) & 1)
				v->flags |= EM_V_ENFORCE;
		}
		return;
	}
	pick = viol & meta->kill_mask;
	if (!pick)
		pick = viol & meta->enforce_mask;
	if (!pick)
		pick = viol;
	idx = em_lowest_bit(pick);
	v->decision = EM_DEC_DENY;
	v->policy = idx;
	if ((meta->enforce_mask >> idx) & 1)
		v->flags |= EM_V_ENFORCE;
	v->action = (viol & meta->kill_mask) ? EM_ACT_KILL : EM_ACT_ALERT;
}

/*
 * Whether an enforce+kill policy governs task: then an exec whose build
 * ID no path learned must not run unjudged (em_exec_tail holds it).
 */
static __always_inline bool em_kill_governs(struct task_struct *task)
{
	struct em_globals *g = em_glob();
	struct em_policy_meta *meta;
	__u32 gen = g ? g->active_gen : 0, slot = gen & 1;
	__u8 flags = 0;

	meta = bpf_map_lookup_elem(&em_policy_meta, &slot);
	if (!meta || meta->gen != gen || !meta->npolicies || !meta->kill_mask)
		return false;
	return (em_scope_of(task, meta, &flags) & meta->kill_mask) != 0;
}

/* pid 1 and the agent are never killed by policy. */
static __always_inline bool em_protected(struct task_struct *task)
{
	struct em_globals *g = em_glob();
	__u32 tgid = BPF_CORE_READ(task, tgid);

	return tgid == 1 || (g && g->agent_tgid && tgid == g->agent_tgid);
}

#endif /* EXECMON_POLICY_BPF_H */
