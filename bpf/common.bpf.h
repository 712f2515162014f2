/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * What every loadable unit shares: the maps the agent hands from the core
 * object to each optional unit (bpf_map__reuse_fd, matched by name), and
 * the helpers that send, cache, judge and act. Each unit is its own BPF
 * object so that a verifier refusal of one path cannot sink the others;
 * the definitions below must stay identical in all of them.
 */
#ifndef EXECMON_COMMON_BPF_H
#define EXECMON_COMMON_BPF_H

#include <vmlinux.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "execmon_abi.h"
#include "core_fixes.bpf.h"

#ifndef barrier_var
#define barrier_var(var) asm volatile("" : "+r"(var))
#endif

#define EM_SIGKILL 9
#define EM_SIGSTOP 19

/* Set by the agent between open and load, identically in every unit. */
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

/* Exec, exit and fork records for the agent. Size set by the agent. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 16 << 20);
} em_events SEC(".maps");

/*
 * Build-ID cache, keyed by file identity including ctime. LRU bounds the
 * memory no matter how many distinct binaries a node runs; negative
 * results (no note, malformed) are cached too so they are not re-read.
 * Only IDs read from the file (its page cache) or before the program's
 * first instruction are ever stored: see em_cache_fill().
 */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct em_file_key);
	__type(value, struct em_cache_val);
} em_bid_cache SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, EM_STAT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} em_stats SEC(".maps");

/* Settings every unit reads at run time (struct em_globals). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct em_globals);
} em_globals SEC(".maps");

/* The exec being handed from program to program (struct em_exec_state). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct em_exec_state);
} em_exec_state SEC(".maps");

/*
 * Content hashes (bpf_ima_file_hash, the exec-denial unit) by the same file
 * key as em_bid_cache, filled with it under the same rules (em_cache_fill).
 * A map of its own so the build-ID cache's values (and the stack frames
 * that build them) stay small where no hash is ever computed.
 */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct em_file_key);
	__type(value, struct em_sha256);
} em_sha_cache SEC(".maps");

/*
 * The content hash the exec-denial unit computed at bprm_check_security,
 * for the exec event of the same process (struct em_lsm_stash), by tgid
 * (a thread that execs takes its process's pid). A preallocated LRU hash,
 * not task storage: 7.3 fails to create task storage from the sleepable
 * LSM program, and an LRU bounds the entries of execs that failed later.
 */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, struct em_lsm_stash);
} em_lsm_stash SEC(".maps");

static __always_inline struct em_globals *em_glob(void)
{
	__u32 z = 0;

	return bpf_map_lookup_elem(&em_globals, &z);
}

static __always_inline void em_count(__u32 stat)
{
	__u64 *v = bpf_map_lookup_elem(&em_stats, &stat);

	if (v)
		*v += 1;
}

static __always_inline __u64 em_rb_flags(void)
{
	if (!em_wakeup_bytes)
		return 0;
	return bpf_ringbuf_query(&em_events, BPF_RB_AVAIL_DATA) >= em_wakeup_bytes ?
		       BPF_RB_FORCE_WAKEUP :
		       BPF_RB_NO_WAKEUP;
}

/*
 * The exec state of the running task, if a resolver path still has to
 * decide it: handed over by em_exec on this CPU for this very exec.
 */
static __always_inline struct em_exec_state *em_unresolved_exec(void)
{
	struct em_exec_state *st;
	__u32 z = 0;

	st = bpf_map_lookup_elem(&em_exec_state, &z);
	if (!st || st->stage != EM_STAGE_UNRESOLVED)
		return NULL;
	if (st->tid != (__u32)bpf_get_current_pid_tgid()) {
		em_count(EM_STAT_STATE_LOST);
		return NULL;
	}
	return st;
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
 * task, a page not resident) or the file changed too recently for its
 * ctime to be trusted as a version: a rewrite within the same coarse clock
 * tick keeps the ctime. Callers pass only IDs read from the file or before
 * the program's first instruction. Returns whether it was cached.
 */
static __always_inline bool em_file_key_eq(const struct em_file_key *a,
					   const struct em_file_key *b)
{
	return a->ino == b->ino && a->ctime_sec == b->ctime_sec &&
	       a->ctime_nsec == b->ctime_nsec && a->dev == b->dev &&
	       a->generation == b->generation && a->size == b->size;
}

/*
 * p where have, else NULL, as a value the compiler cannot see through:
 * otherwise it tests `have` where the callee tests the pointer, and older
 * verifiers (6.1) then follow a NULL key into a map lookup.
 */
static __always_inline const __u8 *em_opt_sha(const __u8 *p, bool have)
{
	const __u8 *r = have ? p : NULL;

	asm volatile("" : "+r"(r));
	return r;
}

/* The exec event's content hash, or NULL. */
static __always_inline const __u8 *em_exec_sha(const struct em_exec_event *e)
{
	return em_opt_sha(e->sha256, e->flags & EM_F_SHA256);
}

/*
 * Whether a build-ID result is what reading the file gives (an ID, or a
 * reason it has none), not a transient failure (a read fault, an exited
 * task, a page not resident): only those are cached, or judged at
 * bprm_check.
 */
static __always_inline bool em_bid_final(const struct em_build_id *bid)
{
	switch (bid->error) {
	case EM_BID_OK:
	case EM_BID_ERR_NOT_ELF:
	case EM_BID_ERR_NO_NOTE:
	case EM_BID_ERR_BAD_PHDRS:
	case EM_BID_ERR_BAD_NOTE:
	case EM_BID_ERR_BAD_SIZE:
	case EM_BID_ERR_LIMIT:
		return true;
	default:
		return false;
	}
}

/*
 * sha (NULL: none) is the file's content hash from bpf_ima_file_hash,
 * stored with the build ID under the same key and rules.
 */
static __always_inline bool em_cache_fill(const struct em_file_key *key,
					  const struct em_build_id *bid,
					  const __u8 *sha)
{
	struct em_cache_val val = {};
	struct em_globals *g = em_glob();
	__u64 now_real, ctime_ns, b2r;

	if (!em_bid_final(bid))
		return false;
	b2r = g ? g->boot_to_real_ns : 0;
	now_real = bpf_ktime_get_boot_ns() + b2r;
	ctime_ns = (__u64)key->ctime_sec * 1000000000ULL + key->ctime_nsec;
	if (!b2r || ctime_ns + em_cache_min_age_ns > now_real) {
		em_count(EM_STAT_CACHE_SKIP_FRESH);
		return false;
	}
	val.bid = *bid;
	val.filled_ns = bpf_ktime_get_boot_ns();
	if (sha)
		bpf_map_update_elem(&em_sha_cache, key, sha, BPF_ANY);
	bpf_map_update_elem(&em_bid_cache, key, &val, BPF_ANY);
	em_count(EM_STAT_CACHE_FILL);
	return true;
}

#include "policy.bpf.h"

/*
 * A weak kfunc: 6.1 and 6.12 lack it. libbpf 1.1 cannot relocate
 * bpf_ksym_exists() (a kfunc address in ld_imm64, kernel 6.4+), so the
 * guard is a constant the agent sets from the kernel's BTF before load:
 * where it is false, the verifier removes the call as dead code. Where
 * the kernel has the kfunc but refuses it, the unit is loaded again with
 * the guard off (agent/bpf/bpf_loader.cc).
 */
extern int bpf_send_signal_task(struct task_struct *task, int sig,
				enum pid_type type, __u64 value) __ksym __weak;
const volatile bool em_has_send_signal_task = false;

/*
 * Judges and acts: SIGKILL when the verdict says kill. current_task is
 * true where task is the running task (the exec tracepoint and the
 * task_work callback: the signal is pending before the program's first
 * instruction); otherwise the task is signalled through its thread group
 * where the kernel has bpf_send_signal_task, and the agent kills it from
 * user space where not (the action then stays "kill" with
 * EM_V_KILL_BY_AGENT set).
 */
static __always_inline void em_enforce(struct task_struct *task,
				       const struct em_build_id *bid,
				       const __u8 *sha, struct em_verdict *v,
				       bool current_task)
{
	int err;

	em_judge(task, bid, sha, v);
	if (v->decision == EM_DEC_DENY)
		em_count(EM_STAT_VERDICT_DENY);
	if (v->action != EM_ACT_KILL)
		return;
	if (em_protected(task)) {
		v->action = EM_ACT_ALERT;
		v->flags |= EM_V_PROTECTED;
		return;
	}
	if (current_task) {
		err = bpf_send_signal(EM_SIGKILL);
	} else if (em_has_send_signal_task) {
		err = bpf_send_signal_task(task, EM_SIGKILL, PIDTYPE_TGID, 0);
	} else {
		v->flags |= EM_V_KILL_BY_AGENT;
		return;
	}
	if (err) {
		em_count(EM_STAT_KILL_FAILED);
		v->action = EM_ACT_ALERT;
		return;
	}
	em_count(EM_STAT_KILL);
}

/* Sends the exec state's event as it stands and marks it done. */
static __always_inline void em_send_exec(struct em_exec_state *st)
{
	/* A held task waits for the agent: wake it now. */
	__u64 flags = (st->ev.flags & EM_F_HELD) ? BPF_RB_FORCE_WAKEUP : em_rb_flags();

	if (bpf_ringbuf_output(&em_events, &st->ev, sizeof(st->ev), flags))
		em_count(EM_STAT_RB_DROP_EXEC);
	st->stage = EM_STAGE_DONE;
}

/*
 * A resolver path learned the build ID of the exec in st from the file or
 * before the first instruction: cache it, judge, act and send.
 */
static __always_inline void em_resolved_exec(struct em_exec_state *st,
					     struct task_struct *task,
					     const struct em_build_id *bid)
{
	st->ev.bid = *bid;
	st->ev.resolved_ns = bpf_ktime_get_boot_ns();
	if (em_cache_fill(&st->ev.exe, bid, em_exec_sha(&st->ev)))
		st->ev.flags |= EM_F_CACHED;
	em_enforce(task, bid, em_exec_sha(&st->ev), &st->ev.verdict, true);
	em_send_exec(st);
}

#endif /* EXECMON_COMMON_BPF_H */
