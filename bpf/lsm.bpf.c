// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * execmon exec-denial unit: the BPF LSM's bprm_check_security hook, which
 * runs before exec's point of no return. Where the verdict is known here
 * (the file's key is in the build-ID cache, or its page cache gives the
 * ID), a policy with action block makes the exec itself fail with EPERM:
 * the calling program keeps running, nothing of the new binary runs, and
 * the exec event says "deny_exec". Everything else is left to the exec
 * tracepoint chain (bpf/execmon.bpf.c), which kills instead.
 *
 * Sleepable (lsm.s) for bpf_ima_file_hash: the file's sha256, cached with
 * the build ID under the same key and rules, carried by the exec event
 * (through em_lsm_stash) and checked against pinned allow entries.
 *
 * Needs a kernel whose active LSM list has "bpf" and BPF trampolines; the
 * agent probes both by loading, attaching and running it (an exec of its
 * own), and reports the unit unavailable with the reason where not.
 */
#include <vmlinux.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "execmon_abi.h"
#include "common.bpf.h"
#include "page_cache.bpf.h"
#include "exec_fill.bpf.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* Set by the agent (--exe_sha256): hash every file not yet cached. */
const volatile bool em_lsm_hash = true;
/* Files larger than this are not hashed (an exec waits for its hash). */
const volatile __u64 em_lsm_hash_max_bytes = 256ULL << 20;

#define EM_EPERM 1

/*
 * The event being built, per CPU. A sleepable program can be preempted,
 * and the hash sleeps, so another exec on this CPU may enter while the
 * slot is in use: owner (the holder's tid + 1) makes it exclusive, and a
 * second exec finds it busy and is left to the tracepoint (counted).
 */
struct em_lsm_scratch {
	__u64 owner;
	__u64 bprm; /* struct linux_binprm *, for em_lsm_report */
	struct em_lsm_stash stash; /* for em_lsm_stash */
	struct em_exec_event ev;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct em_lsm_scratch);
} em_lsm_scratch SEC(".maps");

#define EM_OVERLAYFS_MAGIC 0x794c7630

/* Whether f looks like the real file behind an overlay file of this size
 * and mode: on another filesystem, same size, same type and permissions. */
static __always_inline bool em_real_file_ok(struct file *f, __u64 size,
					    __u32 mode)
{
	struct inode *i = BPF_CORE_READ(f, f_inode);

	return i && BPF_CORE_READ(i, i_sb, s_magic) != EM_OVERLAYFS_MAGIC &&
	       BPF_CORE_READ(i, i_size) == size &&
	       BPF_CORE_READ(i, i_mode) == mode;
}

/*
 * The page cache of the file being exec'd. An overlayfs file (every
 * container) has an empty mapping of its own: its pages are in the real
 * (upper or lower) file that overlayfs opened for it, kept in the overlay
 * file's private_data (up to 6.12), or first in the struct ovl_file that
 * private_data points to (6.13+). overlayfs is a module whose types the
 * pinned vmlinux.h lacks, so both layouts are tried as probe reads and a
 * candidate is taken only if its inode matches (em_real_file_ok). Returns
 * NULL when neither does: the exec tracepoint then reads it through the
 * new mm (bpf/page_cache.bpf.c).
 */
static __always_inline struct address_space *em_lsm_mapping(struct file *file)
{
	struct inode *inode = BPF_CORE_READ(file, f_inode);
	struct address_space *mapping = BPF_CORE_READ(file, f_mapping);
	__u64 size = BPF_CORE_READ(inode, i_size);
	__u32 mode = BPF_CORE_READ(inode, i_mode);
	struct file *real = NULL;
	void *priv;

	if (BPF_CORE_READ(mapping, nrpages))
		return mapping;
	if (BPF_CORE_READ(inode, i_sb, s_magic) != EM_OVERLAYFS_MAGIC)
		return NULL;
	priv = BPF_CORE_READ(file, private_data);
	if (!priv)
		return NULL;
	if (em_real_file_ok(priv, size, mode)) {
		real = priv;
	} else {
		bpf_probe_read_kernel(&real, sizeof(real), priv);
		if (!real || !em_real_file_ok(real, size, mode))
			return NULL;
	}
	mapping = BPF_CORE_READ(real, f_mapping);
	return BPF_CORE_READ(mapping, nrpages) ? mapping : NULL;
}

/*
 * Fills and sends the event of a denied exec, whose bid, verdict and
 * EM_F_SHA256/EM_F_CACHED flags are set. A global function: the verifier
 * checks it once, not once for every path through the caller (6.1's
 * verifier otherwise exceeds its 1M-instruction budget). The exec's
 * linux_binprm comes as a number in s->bprm (6.1 passes no kernel pointer
 * to a global function): everything here is read with probe reads.
 */
__noinline int em_lsm_report(struct em_lsm_scratch *s)
{
	struct em_exec_event *e;
	struct em_build_id bid;
	struct em_verdict v;
	__u64 bprm;
	__u32 keep;

	if (!s)
		return 0;
	e = &s->ev;
	bprm = s->bprm;
	bid = e->bid;
	v = e->verdict;
	keep = e->flags & (EM_F_SHA256 | EM_F_CACHED);
	em_fill_exec(e, (struct task_struct *)bpf_get_current_task(),
		     (struct linux_binprm *)bprm, false, EM_SCRATCH_LSM);
	e->bid = bid;
	e->verdict = v;
	e->flags |= keep;
	e->resolved_ns = e->hdr.ktime_ns;
	if (bpf_ringbuf_output(&em_events, e, sizeof(*e), em_rb_flags()))
		em_count(EM_STAT_RB_DROP_EXEC);
	return 0;
}

static __always_inline int em_lsm_check(struct linux_binprm *bprm,
					struct em_lsm_scratch *s)
{
	struct em_exec_event *e = &s->ev;
	struct task_struct *task = bpf_get_current_task_btf();
	struct file *file = bprm->file;
	struct em_policy_meta *meta;
	struct em_lsm_stash *stash;
	struct em_build_id bid = {};
	struct em_verdict v = {};
	struct em_cache_val *hit;
	struct em_sha256 *known;
	bool cached = false, hit_sha = false, have_sha = false;
	struct address_space *mapping;
	__u32 slot, tgid;
	long algo;

	em_file_key_of(BPF_CORE_READ(file, f_inode), &e->exe);
	hit = bpf_map_lookup_elem(&em_bid_cache, &e->exe);
	if (hit) {
		bid = hit->bid;
		bid.source = EM_BID_SRC_CACHE;
		cached = true;
		known = bpf_map_lookup_elem(&em_sha_cache, &e->exe);
		if (known) {
			__builtin_memcpy(e->sha256, known->b, EM_SHA256_LEN);
			hit_sha = have_sha = true;
		}
	} else {
		mapping = em_lsm_mapping(file);
		bid.error = EM_BID_ERR_NOT_RESIDENT;
		if (em_pc_bases.vmemmap_base && mapping)
			em_pc_build_id((__u64)mapping,
				       BPF_CORE_READ(file, f_inode, i_size),
				       EM_PC_SLOT_EXEC, &bid);
		bid.source = EM_BID_SRC_PAGE_CACHE;
	}
	/* Not a script's own text (nor a binfmt_misc file): its interpreter
	 * is checked (and hashed) next, and that is the file the exec
	 * tracepoint judges and the event names. */
	if (bid.error == EM_BID_ERR_NOT_ELF)
		return 0;
	if (em_lsm_hash && !have_sha) {
		/* Reads the whole file (IMA keeps no result without a policy):
		 * not beyond the size limit. */
		algo = e->exe.size <= em_lsm_hash_max_bytes ?
			       bpf_ima_file_hash(file, e->sha256, EM_SHA256_LEN) :
			       -1;
		if (algo == bpf_core_enum_value(enum hash_algo, HASH_ALGO_SHA256)) {
			have_sha = true;
			em_count(EM_STAT_HASHED);
		} else {
			em_count(EM_STAT_HASH_FAIL);
		}
	}
	if (have_sha) {
		stash = &s->stash;
		stash->key = e->exe;
		__builtin_memcpy(stash->sha256, e->sha256, EM_SHA256_LEN);
		stash->valid = 1;
		tgid = bpf_get_current_pid_tgid() >> 32;
		bpf_map_update_elem(&em_lsm_stash, &tgid, stash, BPF_ANY);
	}
	/* A page not resident, a read fault: the exec tracepoint tries again. */
	if (!em_bid_final(&bid))
		return 0;
	/* Read from the file: cached with its hash, as the tracepoint would
	 * (a hit without one gains it; the key, ctime included, is the same). */
	if (!cached || (have_sha && !hit_sha))
		cached = em_cache_fill(&e->exe, &bid, em_opt_sha(e->sha256, have_sha)) ||
			 cached;
	em_judge(task, &bid, em_opt_sha(e->sha256, have_sha), &v);
	if (v.decision != EM_DEC_DENY || v.action != EM_ACT_KILL ||
	    v.policy >= EM_MAX_POLICIES)
		return 0;
	slot = v.gen & 1;
	meta = bpf_map_lookup_elem(&em_policy_meta, &slot);
	if (!meta || meta->gen != v.gen || !((meta->block_mask >> v.policy) & 1))
		return 0; /* action kill: the exec tracepoint kills */
	if (em_protected(task))
		return 0; /* the tracepoint reports it, downgraded to alert */
	em_count(EM_STAT_VERDICT_DENY);
	em_count(EM_STAT_EXEC_DENIED);
	e->bid = bid;
	v.action = EM_ACT_DENY_EXEC;
	e->verdict = v;
	e->flags = (have_sha ? EM_F_SHA256 : 0) | (cached ? EM_F_CACHED : 0);
	s->bprm = (__u64)bprm;
	em_lsm_report(s);
	return -EM_EPERM;
}

SEC("lsm.s/bprm_check_security")
int BPF_PROG(em_bprm_check, struct linux_binprm *bprm, int ret)
{
	struct em_globals *g = em_glob();
	struct em_lsm_scratch *s;
	__u64 me = (__u32)bpf_get_current_pid_tgid() + 1ULL;
	__u32 z = 0;
	int rc;

	if (ret)
		return ret;
	/* Counted before arming: the agent's start-up probe of whether the
	 * BPF LSM really calls this program. */
	em_count(EM_STAT_LSM_RAN);
	if (!g || !g->armed)
		return 0;
	s = bpf_map_lookup_elem(&em_lsm_scratch, &z);
	if (!s)
		return 0;
	if (__sync_val_compare_and_swap(&s->owner, 0, me) != 0) {
		em_count(EM_STAT_LSM_BUSY);
		return 0;
	}
	rc = em_lsm_check(bprm, s);
	__sync_lock_test_and_set(&s->owner, 0);
	return rc;
}
