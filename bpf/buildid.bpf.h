/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Reads the GNU build ID of an ELF image mapped in a task's address space,
 * from that task's memory (never from the file). Sleepable contexts only:
 * the task_work callback at exec and the iter.s/task programs. The sanity
 * rules live in elf_rules.h, shared with the user-space twin.
 *
 * Verifier notes: nested loops over phdrs and notes exceed the state limit,
 * so each walk is a bpf_loop() callback over a small context struct.
 */
#ifndef EXECMON_BUILDID_BPF_H
#define EXECMON_BUILDID_BPF_H

#include <vmlinux.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include "execmon_abi.h"
#include "elf_rules.h"
#include "core_fixes.bpf.h"

/* Set by the agent before load: the kernel's page size. */
const volatile __u32 em_page_shift = 12;

struct em_phdr64 {
	__u32 p_type;
	__u32 p_flags;
	__u64 p_offset;
	__u64 p_vaddr;
	__u64 p_paddr;
	__u64 p_filesz;
	__u64 p_memsz;
	__u64 p_align;
};

struct em_phdr32 {
	__u32 p_type;
	__u32 p_offset;
	__u32 p_vaddr;
	__u32 p_paddr;
	__u32 p_filesz;
	__u32 p_memsz;
	__u32 p_flags;
	__u32 p_align;
};

struct em_nhdr {
	__u32 namesz;
	__u32 descsz;
	__u32 type;
};

struct em_elf {
	struct task_struct *task;
	__u64 base; /* address of file offset 0 */
	__u64 file_size; /* i_size of the mapped file */
	__u64 phoff;
	__u64 load_delta; /* p_vaddr - p_offset of the PT_LOAD at offset 0 */
	__u32 phnum;
	__u32 is64;
	__u32 have_load;
	__u32 nsegs;
	__u32 err;
	__u32 seg;
	__u64 off;
	/* The ELF header is parsed before any note segment is recorded:
	 * share the stack (the combined BPF stack limit is 512 bytes). */
	union {
		__u8 ehdr[EM_EHDR64_SIZE];
		struct {
			/* p_offset until em_load_step maps it to an address */
			__u64 seg_vaddr[EM_MAX_NOTE_SEGS];
			__u32 seg_size[EM_MAX_NOTE_SEGS];
			__u8 seg_align[EM_MAX_NOTE_SEGS];
		};
	};
	struct em_build_id bid;
};

static __always_inline int em_read(struct em_elf *e, void *dst, __u32 size,
				   __u64 addr)
{
	return bpf_copy_from_user_task(dst, size, (const void *)addr, e->task, 0);
}

/*
 * Program header idx of the image, in either class; non-zero (e->err set)
 * on a fault. Inlined into both passes over the table.
 */
static __always_inline int em_read_phdr(struct em_elf *e, __u64 idx,
					__u32 *type, __u64 *offset,
					__u64 *vaddr, __u64 *filesz,
					__u64 *align)
{
	__u64 addr;

	if (e->is64) {
		struct em_phdr64 ph;

		addr = e->base + e->phoff + idx * sizeof(ph);
		if (em_read(e, &ph, sizeof(ph), addr)) {
			e->err = EM_BID_ERR_READ_FAULT;
			return 1;
		}
		*type = ph.p_type;
		*offset = ph.p_offset;
		*vaddr = ph.p_vaddr;
		*filesz = ph.p_filesz;
		*align = ph.p_align;
	} else {
		struct em_phdr32 ph;

		addr = e->base + e->phoff + idx * sizeof(ph);
		if (em_read(e, &ph, sizeof(ph), addr)) {
			e->err = EM_BID_ERR_READ_FAULT;
			return 1;
		}
		*type = ph.p_type;
		*offset = ph.p_offset;
		*vaddr = ph.p_vaddr;
		*filesz = ph.p_filesz;
		*align = ph.p_align;
	}
	return 0;
}

static long em_phdr_step(__u32 i, void *arg)
{
	struct em_elf *e = arg;
	__u64 offset, vaddr, filesz, align;
	__u32 type, slot;
	int err;

	if (i >= e->phnum)
		return 1;
	if (em_read_phdr(e, i, &type, &offset, &vaddr, &filesz, &align))
		return 1;
	if (type == EM_PT_LOAD && offset == 0 && !e->have_load) {
		e->load_delta = vaddr;
		e->have_load = 1;
	} else if (type == EM_PT_NOTE) {
		err = em_rule_note_seg(filesz, align);
		if (!err)
			err = em_rule_note_seg_in_file(offset, filesz,
						       e->file_size);
		if (err) {
			e->err = err;
			return 1;
		}
		if (e->nsegs >= EM_MAX_NOTE_SEGS) {
			e->err = EM_BID_ERR_LIMIT;
			return 1;
		}
		slot = e->nsegs & (EM_MAX_NOTE_SEGS - 1);
		/* Located by p_offset, as readelf and the page-cache walk do:
		 * p_vaddr could point at other bytes (em_load_step). */
		e->seg_vaddr[slot] = offset;
		e->seg_size[slot] = filesz;
		e->seg_align[slot] = em_note_align(align);
		e->nsegs++;
	}
	return 0;
}

/*
 * Second pass, one step per program header read: each PT_NOTE's file range
 * is read where the PT_LOAD holding that range maps it (em_rule_note_mapped),
 * never at the note's own p_vaddr, so memory and file name the same bytes.
 * e->seg is the note segment being placed and step i tries phdr i - e->off
 * (e->off: the step at which this segment's search began; both are reset
 * before the note walk). A segment no PT_LOAD maps is an error. One
 * segment per step, not a loop over segments: the verifier would walk every
 * combination of placed and unplaced segments. The phdr index derives from
 * i, not from a counter in e, so the verifier need not count to the bound.
 */
static long em_load_step(__u32 i, void *arg)
{
	struct em_elf *e = arg;
	__u64 offset, vaddr, filesz, align, note_off, ph_i;
	__u32 type, slot;

	if (e->seg >= e->nsegs)
		return 1; /* every note segment placed */
	ph_i = (__u64)i - e->off;
	if (ph_i >= e->phnum) {
		e->err = EM_BID_ERR_BAD_NOTE; /* a note no PT_LOAD maps */
		return 1;
	}
	if (em_read_phdr(e, ph_i, &type, &offset, &vaddr, &filesz, &align))
		return 1;
	slot = e->seg & (EM_MAX_NOTE_SEGS - 1);
	note_off = e->seg_vaddr[slot];
	if (type == EM_PT_LOAD &&
	    !em_rule_note_mapped(note_off, e->seg_size[slot], offset, filesz)) {
		e->seg_vaddr[slot] = vaddr + (note_off - offset);
		e->seg++;
		e->off = (__u64)i + 1;
	}
	return 0;
}

static long em_note_step(__u32 i, void *arg)
{
	struct em_elf *e = arg;
	struct em_nhdr nh;
	__u64 addr, next, size, align;
	__u8 name[4];
	__u32 slot;
	int rc;

	if (e->seg >= e->nsegs)
		return 1; /* every segment walked: no build ID */
	slot = e->seg & (EM_MAX_NOTE_SEGS - 1);
	size = e->seg_size[slot];
	align = e->seg_align[slot];
	if (e->off >= size || size - e->off < EM_NHDR_SIZE) {
		/* End of this segment (trailing padding is tolerated). */
		e->seg++;
		e->off = 0;
		return 0;
	}
	addr = e->base - e->load_delta + e->seg_vaddr[slot] + e->off;
	if (em_read(e, &nh, sizeof(nh), addr)) {
		e->err = EM_BID_ERR_READ_FAULT;
		return 1;
	}
	rc = em_rule_note(e->off, size, align, nh.namesz, nh.descsz, nh.type,
			  &next);
	if (rc < 0) {
		e->err = -rc;
		return 1;
	}
	if (rc == EM_NOTE_BUILD_ID) {
		if (em_read(e, name, sizeof(name), addr + EM_NHDR_SIZE)) {
			e->err = EM_BID_ERR_READ_FAULT;
			return 1;
		}
		if (em_rule_gnu_name(name)) {
			__u32 len = nh.descsz;

			rc = em_rule_build_id_size(len);
			if (rc) {
				e->err = rc;
				return 1;
			}
			if (len > EM_BUILD_ID_MAX)
				return 1; /* unreachable; bounds the verifier */
			if (em_read(e, e->bid.id, len,
				    addr + em_note_desc_off(4, align))) {
				e->err = EM_BID_ERR_READ_FAULT;
				return 1;
			}
			e->bid.len = len;
			return 1;
		}
	}
	e->off = next;
	return 0;
}

/*
 * Build ID of the ELF image whose file offset 0 is mapped at base in task.
 * map_size bounds where the program header table may lie.
 */
static __noinline int em_read_build_id(struct task_struct *task, __u64 base,
				       __u64 map_size, __u64 file_size,
				       struct em_build_id *out)
{
	struct em_elf e = {};
	__u8 *ehdr = e.ehdr;
	__u32 phentsize;
	int err;

	if (!out)
		return 0;
	if (!task) {
		out->error = EM_BID_ERR_EXITED;
		return 0;
	}
	e.task = task;
	e.base = base;
	e.file_size = file_size;
	if (em_read(&e, e.ehdr, sizeof(e.ehdr), base)) {
		out->error = EM_BID_ERR_READ_FAULT;
		return 0;
	}
	err = em_rule_ident(ehdr);
	if (err) {
		out->error = err;
		return 0;
	}
	e.is64 = ehdr[4] == EM_ELFCLASS64;
	if (e.is64) {
		e.phoff = *(__u64 *)&ehdr[32];
		phentsize = *(__u16 *)&ehdr[54];
		e.phnum = *(__u16 *)&ehdr[56];
	} else {
		e.phoff = *(__u32 *)&ehdr[28];
		phentsize = *(__u16 *)&ehdr[42];
		e.phnum = *(__u16 *)&ehdr[44];
	}
	err = em_rule_phdrs(e.is64, e.phoff, phentsize, e.phnum, map_size);
	if (err) {
		out->error = err;
		return 0;
	}
	bpf_loop(EM_MAX_PHNUM, em_phdr_step, &e, 0);
	if (e.err) {
		out->error = e.err;
		return 0;
	}
	if (!e.have_load) {
		out->error = EM_BID_ERR_BAD_PHDRS;
		return 0;
	}
	if (!e.nsegs) {
		out->error = EM_BID_ERR_NO_NOTE;
		return 0;
	}
	bpf_loop(EM_MAX_PHNUM * EM_MAX_NOTE_SEGS, em_load_step, &e, 0);
	if (e.err) {
		out->error = e.err;
		return 0;
	}
	e.seg = 0;
	e.off = 0;
	bpf_loop(EM_MAX_NOTE_STEPS, em_note_step, &e, 0);
	/* Out of steps with segments left unwalked (bpf_loop's count cannot
	 * tell: a callback that stops on the last step returns it too). */
	if (e.seg < e.nsegs && !e.bid.len && !e.err)
		e.err = EM_BID_ERR_LIMIT;
	if (e.err) {
		out->error = e.err;
		return 0;
	}
	if (!e.bid.len) {
		out->error = EM_BID_ERR_NO_NOTE;
		return 0;
	}
	__builtin_memcpy(out->id, e.bid.id, sizeof(out->id));
	out->len = e.bid.len;
	out->error = EM_BID_OK;
	return 0;
}

/* What bpf_find_vma reports about the VMA holding an address. */
struct em_vma_info {
	__u64 vm_start;
	__u64 vm_end;
	__u64 pgoff;
	__u64 ino; /* 0: anonymous mapping */
	__u64 user_ino; /* overlayfs: the exec'd (upper) file's inode */
	__u64 mapping; /* the mapped file's page cache (struct address_space *) */
	__u64 size; /* the mapped file's i_size */
	__u32 dev;
	__u32 user_dev;
};

static __always_inline void em_vma_fill(struct vm_area_struct *vma,
					struct em_vma_info *v)
{
	struct file *f = vma->vm_file;

	v->vm_start = vma->vm_start;
	v->vm_end = vma->vm_end;
	v->pgoff = vma->vm_pgoff;
	if (f) {
		struct inode *user = em_backing_user_inode(f);

		v->ino = BPF_CORE_READ(f, f_inode, i_ino);
		v->mapping = (__u64)BPF_CORE_READ(f, f_mapping);
		v->size = BPF_CORE_READ(f, f_inode, i_size);
		v->dev = BPF_CORE_READ(f, f_inode, i_sb, s_dev);
		if (user) {
			v->user_ino = BPF_CORE_READ(user, i_ino);
			v->user_dev = BPF_CORE_READ(user, i_sb, s_dev);
		}
	}
}

static long em_vma_cb(struct task_struct *task, struct vm_area_struct *vma,
		      void *arg)
{
	em_vma_fill(vma, arg);
	return 0;
}

/* bpf_find_vma's context must be on the stack: this one points elsewhere. */
struct em_vma_ref {
	struct em_vma_info *v;
};

static long em_vma_ref_cb(struct task_struct *task, struct vm_area_struct *vma,
			  void *arg)
{
	struct em_vma_info *v = ((struct em_vma_ref *)arg)->v;

	if (v)
		em_vma_fill(vma, v);
	return 0;
}

struct em_auxv_walk {
	__u64 auxv; /* kernel address of mm->saved_auxv */
	__u64 phdr;
	__u64 phnum;
	__u32 compat; /* a 32-bit task: pairs of u32 (compat binfmt_elf) */
	__u32 pad;
};

#define EM_AT_NULL 0
#define EM_AT_PHDR 3
#define EM_AT_PHNUM 5
#define EM_AUXV_PAIRS 28 /* AT_VECTOR_SIZE_BASE-sized saved_auxv, in pairs */

static long em_auxv_step(__u32 i, void *arg)
{
	struct em_auxv_walk *w = arg;
	__u64 pair[2];
	__u32 pair32[2];

	if (w->compat) {
		if (bpf_probe_read_kernel(pair32, sizeof(pair32),
					  (void *)(w->auxv + i * 8)))
			return 1;
		pair[0] = pair32[0];
		pair[1] = pair32[1];
	} else if (bpf_probe_read_kernel(pair, sizeof(pair),
					 (void *)(w->auxv + i * 16))) {
		return 1;
	}
	if (pair[0] == EM_AT_NULL)
		return 1;
	if (pair[0] == EM_AT_PHDR)
		w->phdr = pair[1];
	else if (pair[0] == EM_AT_PHNUM)
		w->phnum = pair[1];
	return 0;
}

/*
 * Where the main executable of task is mapped: AT_PHDR from the saved
 * auxv, the file-backed VMA holding it (must map the file the exec event
 * names), and from that VMA the address of file offset 0 (*base) and how
 * much of it is mapped (*size). Returns 0 or an em_bid_error.
 */
static __noinline int em_exe_image(struct task_struct *task,
				   const struct em_file_key *exe, __u64 *base,
				   __u64 *size)
{
	struct em_auxv_walk w = {};
	struct em_vma_info v = {};
	struct mm_struct *mm;
	__u64 first = 0;

	if (!exe || !base || !size)
		return EM_BID_ERR_NO_MAPPING;
	mm = BPF_CORE_READ(task, mm);
	if (!mm)
		return EM_BID_ERR_EXITED;
	w.auxv = (__u64)mm + bpf_core_field_offset(struct mm_struct, saved_auxv);
	/*
	 * A 32-bit (compat) ELF's loader stores the auxv as u32 pairs in the
	 * same array. AT_* keys are small: a first u64 with high bits set is
	 * a packed (key, value) pair of u32s.
	 */
	if (bpf_probe_read_kernel(&first, sizeof(first), (void *)w.auxv))
		return EM_BID_ERR_NO_AUXV;
	w.compat = (first >> 32) != 0;
	bpf_loop(EM_AUXV_PAIRS * 2, em_auxv_step, &w, 0);
	if (!w.phdr || !w.phnum)
		return EM_BID_ERR_NO_AUXV;
	if (bpf_find_vma(task, w.phdr, em_vma_cb, &v, 0) || !v.ino)
		return EM_BID_ERR_NO_MAPPING;
	if ((v.ino != exe->ino || v.dev != exe->dev) &&
	    (v.user_ino != exe->ino || v.user_dev != exe->dev))
		return EM_BID_ERR_MISMATCH;
	*base = v.vm_start - (v.pgoff << em_page_shift);
	*size = v.vm_end - *base;
	return 0;
}

/* Build ID of the main executable of task, read from its memory. */
static __always_inline void em_read_exe_build_id(struct task_struct *task,
						 const struct em_file_key *exe,
						 struct em_build_id *out)
{
	__u64 base = 0, size = 0;
	int err;

	err = em_exe_image(task, exe, &base, &size);
	if (err) {
		out->error = err;
		return;
	}
	em_read_build_id(task, base, size, exe->size, out);
}

#endif /* EXECMON_BUILDID_BPF_H */
