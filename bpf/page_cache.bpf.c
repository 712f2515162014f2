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

/* The state of one walk of one file (too large for the stack). */
struct em_pc_walk {
	struct em_pc_file f;
	__u64 phoff;
	__u32 phnum;
	__u32 is64;
	__u32 nsegs;
	__u32 err;
	__u32 seg;
	__u32 pad;
	__u64 off;
	__u64 seg_off[EM_MAX_NOTE_SEGS];
	__u64 seg_size[EM_MAX_NOTE_SEGS];
	__u8 seg_align[EM_MAX_NOTE_SEGS];
	__u8 buf[128]; /* the last em_pc_read */
	struct em_build_id bid;
};

/*
 * Per CPU, one slot per context that walks: EM_PC_SLOT_EXEC for the exec
 * tracepoint (preemption disabled), EM_PC_SLOT_ITER for iterators (one
 * run at a time), so a tracepoint preempting an iterator cannot clobber it.
 */
#define EM_PC_SLOT_EXEC 0
#define EM_PC_SLOT_ITER 1
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, struct em_pc_walk);
} em_pc_scratch SEC(".maps");

/* Reads len (<= 64) bytes at file offset off into w->buf. */
static __always_inline int em_pc_fill(struct em_pc_walk *w, __u32 len,
				      __u64 off)
{
	struct em_pc_file *f = &w->f;
	__u64 page_size = 1ULL << em_pc_page_shift, in_page;
	__u32 first, second;
	int err;

	if (len == 0 || len > 64)
		return EM_BID_ERR_READ_FAULT;
	if (off >= f->size || f->size - off < len)
		return EM_BID_ERR_READ_FAULT;
	in_page = off & (page_size - 1);
	first = len;
	if (in_page + len > page_size)
		first = page_size - in_page;
	err = em_pc_map(f, off >> em_pc_page_shift);
	if (err)
		return err;
	barrier_var(first);
	if (first == 0 || first > 64)
		return EM_BID_ERR_READ_FAULT;
	if (bpf_probe_read_kernel(w->buf, first, (void *)(f->cur_addr + in_page)))
		return EM_BID_ERR_READ_FAULT;
	if (first == len)
		return 0;
	/* The rest starts the next page. */
	second = len - first;
	err = em_pc_map(f, (off >> em_pc_page_shift) + 1);
	if (err)
		return err;
	barrier_var(second);
	if (second == 0 || second > 64)
		return EM_BID_ERR_READ_FAULT;
	if (bpf_probe_read_kernel(&w->buf[first & 63], second,
				  (void *)f->cur_addr))
		return EM_BID_ERR_READ_FAULT;
	return 0;
}

static __always_inline __u32 em_le32(const __u8 *p)
{
	return p[0] | (p[1] << 8) | (p[2] << 16) | ((__u32)p[3] << 24);
}

static __always_inline __u64 em_le64(const __u8 *p)
{
	return em_le32(p) | ((__u64)em_le32(p + 4) << 32);
}

/* bpf_loop's context must be on the stack: it carries the walk's address. */
struct em_pc_loop {
	struct em_pc_walk *w;
};

static long em_pc_phdr_step(__u32 i, void *arg)
{
	struct em_pc_walk *w = ((struct em_pc_loop *)arg)->w;
	__u64 offset, filesz, align;
	__u32 type, size = w->is64 ? EM_PHDR64_SIZE : EM_PHDR32_SIZE, slot;
	int err;

	if (i >= w->phnum)
		return 1;
	err = em_pc_fill(w, size, w->phoff + (__u64)i * size);
	if (err) {
		w->err = err;
		return 1;
	}
	type = em_le32(&w->buf[0]);
	if (type != EM_PT_NOTE)
		return 0;
	if (w->is64) {
		offset = em_le64(&w->buf[8]);
		filesz = em_le64(&w->buf[32]);
		align = em_le64(&w->buf[48]);
	} else {
		offset = em_le32(&w->buf[4]);
		filesz = em_le32(&w->buf[16]);
		align = em_le32(&w->buf[28]);
	}
	err = em_rule_note_seg(filesz, align);
	if (!err)
		err = em_rule_note_seg_in_file(offset, filesz, w->f.size);
	if (err) {
		w->err = err;
		return 1;
	}
	if (w->nsegs >= EM_MAX_NOTE_SEGS) {
		w->err = EM_BID_ERR_LIMIT;
		return 1;
	}
	slot = w->nsegs & (EM_MAX_NOTE_SEGS - 1);
	w->seg_off[slot] = offset;
	w->seg_size[slot] = filesz;
	w->seg_align[slot] = em_note_align(align);
	w->nsegs++;
	return 0;
}

static long em_pc_note_step(__u32 i, void *arg)
{
	struct em_pc_walk *w = ((struct em_pc_loop *)arg)->w;
	__u64 pos, next, size, align;
	__u32 namesz, descsz, type, slot;
	int rc;

	if (w->seg >= w->nsegs)
		return 1; /* every segment walked: no build ID */
	slot = w->seg & (EM_MAX_NOTE_SEGS - 1);
	size = w->seg_size[slot];
	align = w->seg_align[slot];
	if (w->off >= size || size - w->off < EM_NHDR_SIZE) {
		/* End of this segment (trailing padding is tolerated). */
		w->seg++;
		w->off = 0;
		return 0;
	}
	pos = w->seg_off[slot] + w->off;
	/* The header and the 4 bytes a GNU name takes, in one read. */
	rc = em_pc_fill(w, EM_NHDR_SIZE, pos);
	if (rc) {
		w->err = rc;
		return 1;
	}
	namesz = em_le32(&w->buf[0]);
	descsz = em_le32(&w->buf[4]);
	type = em_le32(&w->buf[8]);
	rc = em_rule_note(w->off, size, align, namesz, descsz, type, &next);
	if (rc < 0) {
		w->err = -rc;
		return 1;
	}
	if (rc == EM_NOTE_BUILD_ID) {
		rc = em_pc_fill(w, 4, pos + EM_NHDR_SIZE);
		if (rc) {
			w->err = rc;
			return 1;
		}
		if (em_rule_gnu_name(w->buf)) {
			rc = em_rule_build_id_size(descsz);
			if (rc) {
				w->err = rc;
				return 1;
			}
			if (descsz > EM_BUILD_ID_MAX)
				return 1; /* unreachable; bounds the verifier */
			rc = em_pc_fill(w, descsz, pos + em_note_desc_off(4, align));
			if (rc) {
				w->err = rc;
				return 1;
			}
			/* Only the descriptor: the bytes after it in buf are
			 * left from earlier reads, and the policy lookup keys
			 * on all EM_BUILD_ID_MAX bytes. */
			__builtin_memset(w->bid.id, 0, sizeof(w->bid.id));
			bpf_probe_read_kernel(w->bid.id, descsz, w->buf);
			w->bid.len = descsz;
			return 1;
		}
	}
	w->off = next;
	return 0;
}

/*
 * Build ID of the file whose pages mapping holds (size bytes long), read
 * from the page cache. out->error is EM_BID_ERR_NOT_RESIDENT when a page
 * the walk needed was not there.
 */
static __noinline int em_pc_build_id(struct address_space *mapping, __u64 size,
				     __u32 slot, struct em_build_id *out)
{
	struct em_pc_loop loop;
	struct em_pc_walk *w;
	__u32 phentsize;
	int err;

	if (!out)
		return 0;
	w = bpf_map_lookup_elem(&em_pc_scratch, &slot);
	if (!w) {
		out->error = EM_BID_ERR_READ_FAULT;
		return 0;
	}
	loop.w = w;
	__builtin_memset(w, 0, sizeof(*w));
	w->f.mapping = mapping;
	w->f.size = size;
	err = em_pc_fill(w, size < EM_EHDR64_SIZE ? 16 : EM_EHDR64_SIZE, 0);
	if (err) {
		/* Shorter than an ELF identification: not ELF. */
		out->error = size < 16 ? EM_BID_ERR_NOT_ELF : err;
		return 0;
	}
	err = em_rule_ident(w->buf);
	if (err) {
		out->error = err;
		return 0;
	}
	if (size < EM_EHDR64_SIZE) {
		out->error = EM_BID_ERR_BAD_PHDRS;
		return 0;
	}
	w->is64 = w->buf[4] == EM_ELFCLASS64;
	if (w->is64) {
		w->phoff = em_le64(&w->buf[32]);
		phentsize = w->buf[54] | (w->buf[55] << 8);
		w->phnum = w->buf[56] | (w->buf[57] << 8);
	} else {
		w->phoff = em_le32(&w->buf[28]);
		phentsize = w->buf[42] | (w->buf[43] << 8);
		w->phnum = w->buf[44] | (w->buf[45] << 8);
	}
	err = em_rule_phdrs(w->is64, w->phoff, phentsize, w->phnum, size);
	if (err) {
		out->error = err;
		return 0;
	}
	bpf_loop(EM_MAX_PHNUM, em_pc_phdr_step, &loop, 0);
	if (w->err) {
		out->error = w->err;
		return 0;
	}
	if (!w->nsegs) {
		out->error = EM_BID_ERR_NO_NOTE;
		return 0;
	}
	bpf_loop(EM_MAX_NOTE_STEPS, em_pc_note_step, &loop, 0);
	/* Out of steps with segments left unwalked. */
	if (w->seg < w->nsegs && !w->bid.len && !w->err)
		w->err = EM_BID_ERR_LIMIT;
	if (w->err) {
		out->error = w->err;
		return 0;
	}
	if (!w->bid.len) {
		out->error = EM_BID_ERR_NO_NOTE;
		return 0;
	}
	__builtin_memcpy(out->id, w->bid.id, sizeof(out->id));
	out->len = w->bid.len;
	out->error = EM_BID_OK;
	return 0;
}

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
	em_pc_build_id(mapping, size, EM_PC_SLOT_EXEC, &bid);
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
