/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The one ABI shared by the BPF programs (bpf/ *.bpf.c) and the agent
 * (agent/). Plain C, fixed-width types only, explicit padding: every struct
 * here is decoded byte for byte by agent/event/decoder.cc, which
 * static_asserts sizes and offsets. Bump EM_ABI_VERSION on any change.
 */
#ifndef EXECMON_ABI_H
#define EXECMON_ABI_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

#define EM_ABI_VERSION 5

#define EM_COMM_LEN 16
#define EM_PATH_MAX 512 /* filename, binary, cwd: bytes incl. NUL */
#define EM_ARGS_MAX 1024 /* NUL-separated argv bytes */
#define EM_BUILD_ID_MAX 20
#define EM_SHA256_LEN 32

/* Record types on the ring buffer and in iterator output. */
enum em_event_type {
	EM_EV_EXEC = 1,
	EM_EV_EXIT = 2,
	EM_EV_FORK = 3,
	EM_EV_SNAP_OBJECT = 4, /* iterator: one mapped ELF object of a task */
	EM_EV_SNAP_TASK = 5, /* iterator: one running process */
	EM_EV_RESOLVED = 6, /* iterator: late build-ID resolution */
	EM_EV_SWEEP = 7, /* iterator: running process violating policy */
	EM_EV_CGROUP_MKDIR = 8, /* a cgroup v2 directory was created */
	EM_EV_CGROUP_RMDIR = 9, /* ... removed */
};

/* Where a build ID came from. */
enum em_bid_source {
	EM_BID_SRC_NONE = 0,
	EM_BID_SRC_CACHE = 1, /* LRU cache hit at exec */
	EM_BID_SRC_TASK_WORK = 2, /* read by the task_work callback */
	EM_BID_SRC_ITERATOR = 3, /* late: iterator run triggered by the agent */
	EM_BID_SRC_SNAPSHOT = 4, /* start-up snapshot of running processes */
	EM_BID_SRC_PAGE_CACHE = 5, /* read from the exec'd file's page cache */
	EM_BID_SRC_MAX,
};

/* Why there is no build ID. EM_BID_OK means build_id[0..len) is valid. */
enum em_bid_error {
	EM_BID_OK = 0,
	EM_BID_ERR_PENDING = 1, /* deferred to the iterator resolver */
	EM_BID_ERR_NOT_ELF = 2, /* bad magic, class or data encoding */
	EM_BID_ERR_NO_NOTE = 3, /* ELF without an NT_GNU_BUILD_ID note */
	EM_BID_ERR_READ_FAULT = 4, /* task memory could not be read */
	EM_BID_ERR_BAD_PHDRS = 5, /* phnum/phentsize/phoff out of bounds */
	EM_BID_ERR_BAD_NOTE = 6, /* truncated, overflowing or absurd note */
	EM_BID_ERR_BAD_SIZE = 7, /* build-ID descriptor of 0 or > 20 bytes */
	EM_BID_ERR_NO_AUXV = 8, /* AT_PHDR/AT_PHNUM missing from the auxv */
	EM_BID_ERR_NO_MAPPING = 9, /* no file-backed VMA at AT_PHDR */
	EM_BID_ERR_MISMATCH = 10, /* that VMA maps another file */
	EM_BID_ERR_EXITED = 11, /* task exited before resolution */
	EM_BID_ERR_SCHEDULE = 12, /* task_work could not be scheduled */
	EM_BID_ERR_TABLE_FULL = 13, /* too many execs pending resolution */
	EM_BID_ERR_LIMIT = 14, /* more phdrs/notes than the walk allows */
	EM_BID_ERR_NOT_RESIDENT = 15, /* a needed file page is not in the page cache */
	EM_BID_ERR_UNRESOLVED = 16, /* no resolver path could run */
	EM_BID_ERR_MAX,
};

/*
 * Kernel-side counters (per-CPU array, index = enum em_stat). Every event
 * the kernel side could not deliver is counted here.
 */
enum em_stat {
	EM_STAT_EXEC = 0, /* sched_process_exec runs */
	EM_STAT_CACHE_HIT,
	EM_STAT_CACHE_MISS,
	EM_STAT_CACHE_FILL,
	EM_STAT_CACHE_SKIP_FRESH, /* not cached: ctime within min age */
	EM_STAT_TW_SCHEDULED,
	EM_STAT_TW_SCHEDULE_FAIL,
	EM_STAT_TW_RAN,
	EM_STAT_PENDING_FULL, /* pending-resolution table full */
	EM_STAT_PENDING_EXITED, /* task exited before its task_work ran */
	EM_STAT_PENDING_REPLACED, /* a stale pending entry was overwritten */
	EM_STAT_RB_DROP_EXEC, /* ring buffer full: exec event lost */
	EM_STAT_RB_DROP_EXIT,
	EM_STAT_RB_DROP_FORK,
	EM_STAT_ITER_RESOLVED, /* build IDs read by iterator programs */
	EM_STAT_VERDICT_DENY, /* execs judged deny (exec path and sweep) */
	EM_STAT_KILL, /* SIGKILLs sent */
	EM_STAT_KILL_FAILED, /* SIGKILL could not be sent */
	EM_STAT_SWEEP_VIOLATIONS,
	EM_STAT_RB_DROP_CGROUP, /* ring buffer full: cgroup record lost */
	EM_STAT_PC_RESOLVED, /* build IDs read from the page cache at exec */
	EM_STAT_PC_NOT_RESIDENT, /* ... a needed page was not resident */
	EM_STAT_STATE_LOST, /* exec state overwritten between chained programs */
	EM_STAT_HELD, /* execs stopped before their first instruction to be judged late */
	EM_STAT_LSM_RAN, /* bprm_check_security runs (the exec-denial unit) */
	EM_STAT_EXEC_DENIED, /* execs failed with EPERM by policy (action block) */
	EM_STAT_LSM_BUSY, /* not judged at bprm_check: its per-CPU scratch was
			     in use by a preempted exec on the same CPU */
	EM_STAT_HASHED, /* files hashed (sha256) at bprm_check */
	EM_STAT_HASH_FAIL, /* not hashed: bpf_ima_file_hash failed, was not
			      sha256, or the file exceeds the size limit */
	EM_STAT_MAX,
};

/*
 * Policies (agent/policy/). At most EM_MAX_POLICIES are loaded, one bit
 * each in the masks below. Two generations live in the maps at once so a
 * reload never leaves an exec unjudged: the agent fills generation N+1,
 * then flips em_active_gen, then deletes generation N-1.
 */
#define EM_MAX_POLICIES 64

enum em_decision {
	EM_DEC_NONE = 0, /* no verdict computed (no policy engine run) */
	EM_DEC_ALLOW = 1,
	EM_DEC_DENY = 2,
	EM_DEC_UNKNOWN = 3, /* no build ID, and no policy denies that */
	EM_DEC_PENDING = 4, /* build ID not known yet (iterator fallback) */
};

enum em_action {
	EM_ACT_NONE = 0,
	EM_ACT_ALERT = 1,
	EM_ACT_KILL = 2,
	EM_ACT_DENY_EXEC = 3, /* the exec failed with EPERM (BPF LSM) */
};

#define EM_POLICY_NONE 0xff

/* Verdict flags. */
#define EM_V_ENFORCE (1U << 0) /* the deciding policy is in enforce mode */
#define EM_V_PROTECTED (1U << 1) /* kill downgraded: pid 1 or the agent */
#define EM_V_CONTAINER (1U << 2) /* the process runs in a container cgroup */
#define EM_V_KILL_BY_AGENT (1U << 3) /* the kernel cannot signal this task
					 (no bpf_send_signal_task): the agent kills it */

struct em_verdict {
	__u8 decision; /* enum em_decision */
	__u8 action; /* enum em_action: what was done */
	__u8 policy; /* index into the agent's sorted policy set, or NONE */
	__u8 flags; /* EM_V_* */
	__u32 gen; /* policy generation the verdict was computed with */
};

/* Build-ID set of one generation: which policies deny / allow-list it. */
struct em_policy_key {
	__u32 gen;
	__u8 len;
	__u8 pad[3];
	__u8 id[EM_BUILD_ID_MAX];
};

struct em_policy_val {
	__u64 deny_mask;
	__u64 allow_mask;
	/* Policies whose allow entry for this ID pins content hashes: their
	 * allow credit needs the file's sha256 in em_policy_hashes. */
	__u64 pinned_mask;
};

/*
 * Pinned content hashes: sha256 -> the policies whose allow entries list
 * it, per generation slot (gen & 1), valid where gen[slot] is the
 * generation judged with. Keyed by the hash alone, so a lookup needs no
 * key built on the BPF stack (the iterators have none to spare).
 */
struct em_sha256 {
	__u8 b[EM_SHA256_LEN];
};
/* The content-hash cache (em_sha_cache) beside the build-ID cache: same
 * key, filled under the same rules, value struct em_sha256. */

struct em_hash_pins {
	__u64 mask[2];
	__u32 gen[2];
};

/* Per-generation policy attributes (array map, index gen & 1). */
struct em_policy_meta {
	__u32 gen;
	__u32 npolicies;
	__u64 allowlist_mask; /* policies with an allow list */
	__u64 unknown_deny_mask; /* unknownBuildId: deny */
	__u64 kill_mask; /* mode enforce, action kill */
	__u64 enforce_mask;
	__u64 scope_host; /* policies governing processes outside containers */
	__u64 scope_container; /* ... inside containers, without a cgroup entry */
	__u64 block_mask; /* action block: EPERM at bprm_check where the BPF
			     LSM runs (a subset of kill_mask: kill elsewhere) */
};

/* Per-cgroup scope (pods, from container metadata): overrides the above
 * for the cgroup and its descendants. */
struct em_scope_key {
	__u32 gen;
	__u32 pad;
	__u64 cgroup_id;
};

/*
 * Run-time settings shared by every loadable unit (one-element array map,
 * em_globals): each unit has its own .bss, so what all of them read lives
 * here. Written by the agent.
 */
struct em_globals {
	__u64 boot_to_real_ns; /* CLOCK_REALTIME - CLOCK_BOOTTIME */
	__u32 active_gen; /* policy generation execs are judged with */
	__u32 agent_tgid; /* never killed by policy */
	__u32 armed; /* every exec program is attached: start reporting */
	__u32 late_resolve; /* the iterator resolves what no path did */
	__u32 sha256; /* the exec-denial unit hashes files: look hashes up */
	__u32 pad;
};

/* Exec event flags. */
#define EM_F_ARGS_TRUNC (1U << 0)
#define EM_F_FILENAME_TRUNC (1U << 1)
#define EM_F_BINARY_TRUNC (1U << 2)
#define EM_F_CWD_TRUNC (1U << 3)
#define EM_F_SCRIPT (1U << 4) /* a binfmt handler (#!) swapped the file */
#define EM_F_EXE_UNLINKED (1U << 5) /* i_nlink == 0: memfd or deleted */
#define EM_F_EXECFD (1U << 6) /* fexecve/execveat with AT_EMPTY_PATH */
#define EM_F_HELD (1U << 8) /* stopped (SIGSTOP) before its first instruction
			       until the agent resolved and judged it */
#define EM_F_SHA256 (1U << 9) /* sha256 holds the file's content hash */
#define EM_F_CACHED (1U << 7) /* the build ID was stored in the cache by
				  this exec (or served from it) */

/*
 * Identity of an executed file, the build-ID cache key. ctime changes on
 * every write, and the exec path never caches an entry whose ctime is
 * within em_cache_min_age_ns of now, so an in-place overwrite (same dev and
 * inode) always yields a new key: a stale ID is never served.
 */
struct em_file_key {
	__u64 ino;
	__s64 ctime_sec;
	__u32 ctime_nsec;
	__u32 dev; /* kernel dev_t encoding: major << 20 | minor */
	__u32 generation;
	__u32 pad;
	__u64 size;
};

struct em_build_id {
	__u8 id[EM_BUILD_ID_MAX];
	__u8 len;
	__u8 source; /* enum em_bid_source */
	__u8 error; /* enum em_bid_error */
	__u8 flags; /* EM_BID_F_* */
};

/*
 * Read from the running process's memory, which the process could have
 * written: never cached, and no allow list credits it (policy.bpf.h).
 */
#define EM_BID_F_MEMORY (1U << 0)

/* Build-ID cache value (BPF LRU hash keyed by em_file_key). */
struct em_cache_val {
	struct em_build_id bid;
	__u64 filled_ns; /* bpf_ktime_get_boot_ns() at fill */
};

/*
 * bprm_check_security -> sched_process_exec, per task (task storage):
 * the content hash the exec-denial unit computed for the file about to
 * run, so the exec event carries it even when it was not cached.
 */
struct em_lsm_stash {
	struct em_file_key key;
	__u32 valid;
	__u32 pad;
	__u8 sha256[EM_SHA256_LEN];
};

struct em_header {
	__u16 type; /* enum em_event_type */
	__u16 abi; /* EM_ABI_VERSION */
	__u32 size; /* bytes of the whole record */
	__u64 ktime_ns; /* bpf_ktime_get_boot_ns() */
};

struct em_exec_event {
	struct em_header hdr;
	__u32 pid; /* tgid */
	__u32 tid;
	__u32 ppid; /* real_parent tgid */
	__u32 uid;
	__u32 gid;
	__u32 euid;
	__u32 egid;
	__u32 loginuid;
	__u32 flags; /* EM_F_* */
	__u32 mnt_ns;
	__u32 pid_ns;
	__u32 argc;
	__u64 cgroup_id;
	__u64 start_ns; /* task start, boot-based ns */
	__u64 resolved_ns; /* when the build ID became known */
	struct em_file_key exe;
	__u32 exe_nlink;
	__u32 exe_mode;
	struct em_build_id bid;
	struct em_verdict verdict;
	__u16 filename_len;
	__u16 binary_len;
	__u16 cwd_len;
	__u16 args_len;
	char comm[EM_COMM_LEN];
	char filename[EM_PATH_MAX]; /* as passed to exec */
	char binary[EM_PATH_MAX]; /* the executed ELF, relative to root */
	char cwd[EM_PATH_MAX];
	char args[EM_ARGS_MAX];
	__u8 sha256[EM_SHA256_LEN]; /* with EM_F_SHA256 */
};

struct em_fork_event {
	struct em_header hdr;
	__u32 pid; /* child tgid */
	__u32 ppid; /* parent tgid */
	__u64 start_ns;
};

struct em_exit_event {
	struct em_header hdr;
	__u32 pid;
	__u32 exit_code; /* wait(2) status encoding */
	__u64 start_ns;
};

/* Iterator record: a file-backed mapping of file offset 0 (an ELF object). */
struct em_snap_object {
	struct em_header hdr;
	__u32 pid;
	__u32 is_exe; /* maps mm->exe_file */
	__u64 vm_start;
	__u64 vm_size; /* vm_end - vm_start: bounds the phdr table */
	struct em_file_key file;
	struct em_build_id bid;
	__u32 path_len;
	__u32 flags; /* EM_F_BINARY_TRUNC */
	char path[EM_PATH_MAX];
};

/* Iterator record: one process (thread-group leader). */
struct em_snap_task {
	struct em_header hdr;
	__u32 pid;
	__u32 ppid;
	__u32 uid;
	__u32 gid;
	__u32 euid;
	__u32 loginuid;
	__u32 mnt_ns;
	__u32 pid_ns;
	__u64 cgroup_id;
	__u64 start_ns;
	__u32 args_len;
	__u32 flags;
	char comm[EM_COMM_LEN];
	char args[EM_ARGS_MAX];
};

/*
 * Request to the resolver iterator (iter.s/task, one task): read the build
 * ID of the ELF images mapped at addrs (file offset 0), or with
 * EM_RESOLVE_EXE of the main executable via its auxv. Written by the agent
 * into .bss before each run.
 */
#define EM_RESOLVE_MAX 32
#define EM_RESOLVE_EXE 0
struct em_resolve_req {
	__u32 pid;
	__u32 n;
	__u64 addrs[EM_RESOLVE_MAX];
	__u64 sizes[EM_RESOLVE_MAX]; /* mapping size, bounds the phdr table */
	struct em_file_key keys[EM_RESOLVE_MAX]; /* cache keys to fill */
};

/* Iterator record: one build ID read by the resolver. For the main
 * executable (EM_RESOLVE_EXE) it carries the verdict, acted upon. */
struct em_resolved {
	struct em_header hdr;
	__u32 pid;
	__u32 index; /* into em_resolve_req.addrs */
	__u64 start_ns;
	struct em_file_key file;
	struct em_build_id bid;
	struct em_verdict verdict;
};

/* Iterator record: a running process that violates the active policies,
 * found by the sweep after a policy load; killed if the verdict says so. */
struct em_sweep {
	struct em_header hdr;
	__u32 pid;
	__u32 ppid;
	__u64 start_ns;
	__u64 cgroup_id;
	struct em_file_key exe;
	struct em_build_id bid;
	struct em_verdict verdict;
	char comm[EM_COMM_LEN];
};

/*
 * cgroup v2 lifecycle, so the agent knows every cgroup's path by its id
 * before any exec in it is reported (the mkdir record is written before a
 * task can join the cgroup), even when the cgroup is gone by the time the
 * agent looks.
 */
struct em_cgroup_event {
	struct em_header hdr;
	__u64 id; /* kernfs id = bpf_get_current_cgroup_id() of its members */
	__u32 path_len; /* 0 for rmdir */
	__u32 pad;
	char path[EM_PATH_MAX]; /* relative to the cgroup v2 root */
};

/*
 * The exec being reported, handed from one program on sched_process_exec
 * to the next (per-CPU: a tracepoint runs its programs back to back with
 * preemption off). em_exec fills it; a resolver path that learns the build
 * ID sends it and marks it done; em_exec_tail sends what is left.
 */
enum em_exec_stage {
	EM_STAGE_IDLE = 0,
	EM_STAGE_UNRESOLVED = 1,
	EM_STAGE_DONE = 2,
};

struct em_exec_state {
	__u32 tid;
	__u32 stage; /* enum em_exec_stage */
	__u64 seq; /* per-CPU exec counter: detects a lost hand-over */
	struct em_exec_event ev;
};

/*
 * Page-cache unit (bpf/page_cache.bpf.c): the bases that translate a
 * struct page to its direct-map address, and the calibration iterator's
 * request and result (agent/bpf/page_cache_calibration.cc).
 */
struct em_pc_bases {
	__u64 page_offset_base;
	__u64 vmemmap_base;
};

struct em_pc_calib_req {
	__u32 tgid;
	__u32 fd;
	__u32 mode; /* EM_PC_CAL_* */
	__u32 pad;
	__u64 search_start; /* first candidate page_offset_base */
	__u64 search_step;
	__u64 search_count;
	__u64 pfn; /* of the marker page, for the search */
	__u64 marker64; /* the marker's first 8 bytes, for the search */
	struct em_pc_bases cand; /* EM_PC_CAL_READ: the bases to read through */
};

struct em_pc_calib_out {
	__u64 page; /* struct page of the marker page */
	__u64 ksym_page_offset_base; /* value of the symbol, 0 = none */
	__u64 ksym_vmemmap_base;
	__u64 found; /* page_offset_base whose read matched, 0 = none */
	__u64 page_size_of_struct; /* sizeof(struct page) */
	__u8 marker[32]; /* read through em_pc_bases */
	__s32 read_err;
	__u32 pad;
};

#define EM_PC_CAL_FIND 0 /* page + ksyms */
#define EM_PC_CAL_READ 1 /* marker through em_pc_bases, as exec reads */
#define EM_PC_CAL_SEARCH 2 /* page_offset_base candidates */

#endif /* EXECMON_ABI_H */
