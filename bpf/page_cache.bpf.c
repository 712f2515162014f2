// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * execmon page-cache unit: the build ID of an exec'd file read from the
 * file's page cache in the exec tracepoint itself, by file offset
 * (p_offset), with the rules of elf_rules.h. The kernel has just read the
 * start of the file through the page cache to load it, so the ELF header
 * and, in every ordinary binary, the program headers and notes are
 * resident. The verdict, and the kill, happen right here: before the new
 * program's first instruction, on every exec of a binary not yet cached.
 *
 * A page that is not resident is not an error: the exec is left to the
 * next path (task_work, then late or hold).
 */
#include <vmlinux.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "execmon_abi.h"
#include "common.bpf.h"
#include "elf_rules.h"
#include "page_cache.bpf.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/*
 * The mapping that holds the exec'd file's pages. For overlayfs (every
 * container) the overlay file's own mapping is empty: the pages are in
 * the real (upper or lower) file's, which the ELF loader has just mapped
 * into the new mm; its VMA at start_code holds that file.
 */
struct em_vma_file {
	struct address_space *mapping;
};

static long em_pc_vma_cb(struct task_struct *task, struct vm_area_struct *vma,
			 void *arg)
{
	struct em_vma_file *v = arg;

	v->mapping = BPF_CORE_READ(vma, vm_file, f_mapping);
	return 0;
}

SEC("tp_btf/sched_process_exec")
int BPF_PROG(em_exec_pc, struct task_struct *p, pid_t old_pid,
	     struct linux_binprm *bprm)
{
	struct em_exec_state *st = em_unresolved_exec();
	struct address_space *mapping;
	struct em_vma_file v = {};
	struct em_build_id bid = {};
	__u64 size;

	if (!st || !em_pc_bases.vmemmap_base)
		return 0;
	mapping = BPF_CORE_READ(bprm, file, f_mapping);
	size = BPF_CORE_READ(bprm, file, f_inode, i_size);
	if (!BPF_CORE_READ(mapping, nrpages)) {
		/* overlayfs: the real file's mapping, from the new mm. */
		if (bpf_find_vma(p, BPF_CORE_READ(p, mm, start_code), em_pc_vma_cb,
				 &v, 0) == 0 && v.mapping)
			mapping = v.mapping;
	}
	em_pc_build_id((__u64)mapping, size, EM_PC_SLOT_EXEC, &bid);
	if (bid.error == EM_BID_ERR_NOT_RESIDENT) {
		em_count(EM_STAT_PC_NOT_RESIDENT);
		st->ev.bid.error = EM_BID_ERR_NOT_RESIDENT;
		return 0;
	}
	if (bid.error == EM_BID_ERR_READ_FAULT)
		return 0; /* transient: the next path may do better */
	em_count(EM_STAT_PC_RESOLVED);
	bid.source = EM_BID_SRC_PAGE_CACHE;
	em_resolved_exec(st, p, &bid);
	return 0;
}

/*
 * Calibration (agent/bpf/page_cache_calibration.cc): finds the struct page
 * of a memfd page the agent wrote, reports the kernel's base symbols where
 * /proc/kallsyms has them, and reads the page back through a candidate
 * translation. Run as an iterator over the agent's own files.
 */
extern const void page_offset_base __ksym __weak;
extern const void vmemmap_base __ksym __weak;

struct em_pc_calib_req em_pc_cal_req;

struct em_pc_search {
	__u64 want;
	__u64 found;
};

static long em_pc_search_step(__u32 i, void *arg)
{
	struct em_pc_search *s = arg;
	__u64 base, got = 0;

	if (i >= em_pc_cal_req.search_count)
		return 1;
	base = em_pc_cal_req.search_start + (__u64)i * em_pc_cal_req.search_step;
	if (bpf_probe_read_kernel(&got, sizeof(got),
				  (void *)(base + (em_pc_cal_req.pfn << em_pc_page_shift))))
		return 0;
	if (got == s->want) {
		s->found = base;
		return 1;
	}
	return 0;
}

SEC("iter/task_file")
int em_pc_calibrate(struct bpf_iter__task_file *ctx)
{
	struct task_struct *task = ctx->task;
	struct file *file = ctx->file;
	struct em_pc_calib_out out = {};
	struct em_pc_search s = {};
	struct em_pc_walk *w;
	__u32 slot = EM_PC_SLOT_ITER;
	__u64 v = 0;

	if (!task || !file || task->tgid != em_pc_cal_req.tgid ||
	    ctx->fd != em_pc_cal_req.fd)
		return 0;
	out.page = em_pc_page(file->f_mapping, 0);
	out.page_size_of_struct = bpf_core_type_size(struct page);
	if (&page_offset_base &&
	    !bpf_probe_read_kernel(&v, sizeof(v), &page_offset_base))
		out.ksym_page_offset_base = v;
	v = 0;
	if (&vmemmap_base && !bpf_probe_read_kernel(&v, sizeof(v), &vmemmap_base))
		out.ksym_vmemmap_base = v;
	if (em_pc_cal_req.mode == EM_PC_CAL_READ) {
		/* Before attach only: nothing else reads the bases yet. */
		em_pc_bases = em_pc_cal_req.cand;
		w = bpf_map_lookup_elem(&em_pc_scratch, &slot);
		if (w) {
			__builtin_memset(w, 0, sizeof(*w));
			w->f.mapping = file->f_mapping;
			w->f.size = 4096;
			out.read_err = em_pc_fill(w, 32, 0);
			__builtin_memcpy(out.marker, w->buf, sizeof(out.marker));
		}
	} else if (em_pc_cal_req.mode == EM_PC_CAL_SEARCH) {
		s.want = em_pc_cal_req.marker64;
		bpf_loop(1 << 16, em_pc_search_step, &s, 0);
		out.found = s.found;
	}
	bpf_seq_write(ctx->meta->seq, &out, sizeof(out));
	return 0;
}
