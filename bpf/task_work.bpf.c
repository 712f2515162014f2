// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * execmon task_work unit: an exec the page cache could not resolve is
 * resolved from the new process's memory by a bpf_task_work callback that
 * runs when the task returns to user space, before its first instruction
 * (so what is read is what the kernel mapped: nothing of the program ran).
 *
 *   em_exec_tw: em_pending[tid] <- the exec state; schedule em_resolve_cb
 *   em_resolve_cb: auxv -> VMA -> ELF headers -> notes; cache, judge, send
 *   em_exit_tw: a task that died before its callback ran
 *
 * Needs the bpf_task_work kfuncs (6.18+) and a verifier that lets a
 * tp_btf program schedule a sleepable callback: some 6.18 builds refuse
 * it ("sleepable callback in a program that is not sleepable"); the agent
 * then runs without this unit and says why.
 */
#include <vmlinux.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "execmon_abi.h"
#include "common.bpf.h"
#include "buildid.bpf.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/*
 * Built twice (CMakeLists.txt): 6.18 names the kfunc ..._impl and takes
 * the program's aux as a last argument; later kernels (7.x) add
 * bpf_task_work_schedule_resume with the aux implicit, and change _impl's
 * prototype so that libbpf refuses an object naming the old one. The agent
 * loads the build that matches the kernel's BTF.
 */
#ifdef EM_TW_IMPLICIT
extern int bpf_task_work_schedule_resume(struct task_struct *task,
					 struct bpf_task_work *tw,
					 void *map__map,
					 int (*cb)(struct bpf_map *, void *,
						   void *)) __ksym;
#define em_task_work_schedule(task, tw, map, cb) \
	bpf_task_work_schedule_resume(task, tw, map, cb)
#else
extern int bpf_task_work_schedule_resume_impl(struct task_struct *task,
					      struct bpf_task_work *tw,
					      void *map__map,
					      int (*cb)(struct bpf_map *, void *,
							void *),
					      void *aux__prog) __ksym __weak;
#define em_task_work_schedule(task, tw, map, cb) \
	bpf_task_work_schedule_resume_impl(task, tw, map, cb, NULL)
#endif

/* The last error the schedule kfunc returned (the agent logs it). */
__s32 em_tw_last_err;

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
	struct em_exec_state st;
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

static int em_resolve_cb(struct bpf_map *map, void *key, void *value)
{
	struct em_pending *pend = value;
	struct task_struct *task = bpf_get_current_task_btf();
	struct em_build_id bid = {};

	if (!__sync_bool_compare_and_swap(&pend->state, EM_PEND_WAITING,
					  EM_PEND_CLAIMED))
		return 0;
	em_count(EM_STAT_TW_RAN);
	em_read_exe_build_id(task, &pend->st.ev.exe, &bid);
	bid.source = EM_BID_SRC_TASK_WORK;
	em_resolved_exec(&pend->st, task, &bid);
	bpf_map_delete_elem(map, key);
	return 0;
}

SEC("tp_btf/sched_process_exec")
int BPF_PROG(em_exec_tw, struct task_struct *p, pid_t old_pid,
	     struct linux_binprm *bprm)
{
	struct em_exec_state *st = em_unresolved_exec();
	struct em_pending *pend;
	void *zero;
	__u32 tid, z = 0;
	int err;

	if (!st)
		return 0;
	tid = st->tid;
	if (bpf_map_lookup_elem(&em_pending, &tid))
		em_count(EM_STAT_PENDING_REPLACED);
	zero = bpf_map_lookup_elem(&em_zero, &z);
	if (!zero || bpf_map_update_elem(&em_pending, &tid, zero, BPF_ANY)) {
		/* Left to the paths after this one. */
		em_count(EM_STAT_PENDING_FULL);
		st->ev.bid.error = EM_BID_ERR_TABLE_FULL;
		return 0;
	}
	pend = bpf_map_lookup_elem(&em_pending, &tid);
	if (!pend)
		return 0;
	/* 3 KiB: a helper copy, not an unrolled one. */
	bpf_probe_read_kernel(&pend->st, sizeof(*st), st);
	pend->state = EM_PEND_WAITING;
	err = em_task_work_schedule(p, &pend->tw, &em_pending, em_resolve_cb);
	if (err) {
		em_count(EM_STAT_TW_SCHEDULE_FAIL);
		em_tw_last_err = err;
		bpf_map_delete_elem(&em_pending, &tid);
		st->ev.bid.error = EM_BID_ERR_SCHEDULE;
		return 0;
	}
	em_count(EM_STAT_TW_SCHEDULED);
	/* The callback sends it. */
	st->stage = EM_STAGE_DONE;
	return 0;
}

SEC("tp_btf/sched_process_exit")
int BPF_PROG(em_exit_tw, struct task_struct *p)
{
	struct em_pending *pend;
	__u32 tid = BPF_CORE_READ(p, pid);

	/* An exec whose task_work never ran (killed during exec). */
	pend = bpf_map_lookup_elem(&em_pending, &tid);
	if (!pend)
		return 0;
	if (__sync_bool_compare_and_swap(&pend->state, EM_PEND_WAITING,
					 EM_PEND_CLAIMED)) {
		em_count(EM_STAT_PENDING_EXITED);
		pend->st.ev.bid.error = EM_BID_ERR_EXITED;
		/* Dying anyway: record the verdict, send nothing else. */
		em_judge(p, &pend->st.ev.bid, em_exec_sha(&pend->st.ev),
			 &pend->st.ev.verdict);
		em_send_exec(&pend->st);
		bpf_map_delete_elem(&em_pending, &tid);
	}
	return 0;
}
