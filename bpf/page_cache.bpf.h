/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Reads a file through its page cache: the mapping's xarray to the folio
 * that holds a file page, then the page's bytes through the kernel's
 * direct map (bpf_probe_read_kernel). Never sleeps and never faults a page
 * in: a page that is not resident (or not up to date) is reported as such
 * and the caller falls through to another path. This reads the file, not
 * a process's memory, so what it returns is what `execmon buildid` and
 * `readelf -n` read from the same file.
 *
 * Translating a struct page to its direct-map address needs the bases of
 * the direct map and of the struct page array (vmemmap), randomised by
 * CONFIG_RANDOMIZE_MEMORY; the agent finds and validates them at start-up
 * (agent/bpf/page_cache_calibration.cc) and writes them to em_pc_bases.
 */
#ifndef EXECMON_PAGE_CACHE_BPF_H
#define EXECMON_PAGE_CACHE_BPF_H

#include <vmlinux.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include "execmon_abi.h"

/* Set by the agent: the kernel's page size. */
const volatile __u32 em_pc_page_shift = 12;

/* Direct-map and vmemmap bases, written by the agent after calibration. */
struct em_pc_bases em_pc_bases;

/*
 * folio->flags: an unsigned long until "mm: introduce memdesc_flags_t"
 * (v6.18) wrapped it in a struct. CO-RE will not relocate one type to the
 * other, so each layout is a flavour of its own.
 */
struct folio___ulong_flags {
	unsigned long flags;
} __attribute__((preserve_access_index));

static __always_inline int em_folio_flags(struct folio *folio, __u64 *flags)
{
	if (bpf_core_field_exists(((struct folio___ulong_flags *)folio)->flags))
		return bpf_probe_read_kernel(flags, sizeof(*flags),
					     __builtin_preserve_access_index(
						     &((struct folio___ulong_flags *)folio)->flags));
	return bpf_probe_read_kernel(flags, sizeof(*flags),
				     __builtin_preserve_access_index(&folio->flags));
}

/* xarray internal entries (include/linux/xarray.h). */
#define EM_XA_MAX_DEPTH 6 /* 6 bits a level: 2^36 pages */

static __always_inline bool em_xa_is_internal(__u64 e)
{
	return (e & 3) == 2;
}

static __always_inline bool em_xa_is_node(__u64 e)
{
	return em_xa_is_internal(e) && e > 4096;
}

/* A sibling entry of a multi-index (large folio) entry: its slot. */
static __always_inline bool em_xa_is_sibling(__u64 e)
{
	return em_xa_is_internal(e) && e < (256 << 2);
}

/*
 * The struct page holding file page `index` of mapping, or 0 when it is
 * not resident (absent, a shadow entry, not up to date, or a walk that
 * does not add up).
 */
static __noinline __u64 em_pc_page(struct address_space *mapping, __u64 index)
{
	struct xa_node *node = NULL;
	struct folio *folio;
	__u64 e, pindex, pflags, uptodate;
	__u32 chunk_mask, off;
	__u8 shift;

	if (!mapping)
		return 0;
	chunk_mask = bpf_core_field_size(node->slots) / sizeof(void *) - 1;
	e = (__u64)BPF_CORE_READ(mapping, i_pages.xa_head);
	for (int level = 0; level < EM_XA_MAX_DEPTH; level++) {
		if (!em_xa_is_node(e))
			break;
		node = (struct xa_node *)(e - 2);
		shift = BPF_CORE_READ(node, shift);
		if (shift > 60)
			return 0;
		/* Only the root bounds the range: below it, the offset is
		 * the index's bits at this node's shift. */
		if (level == 0 && (index >> shift) > chunk_mask)
			return 0; /* beyond what the tree covers */
		off = (index >> shift) & chunk_mask;
		e = (__u64)BPF_CORE_READ(node, slots[off]);
		if (em_xa_is_sibling(e)) {
			off = (e >> 2) & chunk_mask;
			e = (__u64)BPF_CORE_READ(node, slots[off]);
		}
	}
	if (em_xa_is_node(e))
		return 0; /* deeper than EM_XA_MAX_DEPTH */
	if (!e || (e & 3))
		return 0; /* empty, shadow (value) or other internal entry */
	/* A folio: the page for index lies within it. */
	folio = (struct folio *)e;
	if (BPF_CORE_READ(folio, mapping) != mapping)
		return 0;
	pindex = BPF_CORE_READ(folio, index);
	if (index < pindex || index - pindex >= 512)
		return 0;
	if (em_folio_flags(folio, &pflags))
		return 0;
	uptodate = bpf_core_enum_value(enum pageflags, PG_uptodate);
	if (!((pflags >> uptodate) & 1))
		return 0;
	return e + (index - pindex) * bpf_core_type_size(struct page);
}

/* The direct-map address of a struct page's memory. */
static __always_inline __u64 em_pc_page_addr(__u64 page)
{
	__u64 pfn;

	if (page < em_pc_bases.vmemmap_base)
		return 0;
	pfn = (page - em_pc_bases.vmemmap_base) / bpf_core_type_size(struct page);
	return em_pc_bases.page_offset_base + (pfn << em_pc_page_shift);
}

/* A reader of one file's page cache, remembering the last page it used. */
struct em_pc_file {
	struct address_space *mapping;
	__u64 size; /* i_size */
	__u64 cur_index; /* page index of cur_addr */
	__u64 cur_addr; /* direct-map address of that page, 0 = none */
};

/*
 * Makes page `index` of f the current page. Returns 0, or
 * EM_BID_ERR_NOT_RESIDENT.
 */
static __always_inline int em_pc_map(struct em_pc_file *f, __u64 index)
{
	__u64 page;

	if (f->cur_addr && f->cur_index == index)
		return 0;
	f->cur_addr = 0;
	page = em_pc_page(f->mapping, index);
	if (!page)
		return EM_BID_ERR_NOT_RESIDENT;
	f->cur_addr = em_pc_page_addr(page);
	f->cur_index = index;
	return f->cur_addr ? 0 : EM_BID_ERR_NOT_RESIDENT;
}

/* The ELF walk by file offset, shared by the exec path and the iterators. */
#include "elf_rules.h"

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

/*
 * v &= mask, as an instruction the compiler cannot drop: the verifier of
 * older kernels (6.1) loses a size's bounds across the compiler's spills,
 * and needs them established right where the helper is called.
 */
#define em_mask(v, mask) asm volatile("%[x] &= " #mask : [x] "+r"(v))

/* Reads len (<= 64) bytes at file offset off into w->buf. */
static __always_inline int em_pc_fill(struct em_pc_walk *w, __u32 len,
				      __u64 off)
{
	struct em_pc_file *f = &w->f;
	__u64 page_size = 1ULL << em_pc_page_shift, in_page, first, second;
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
	em_mask(first, 127); /* <= 64; buf holds 128 */
	if (bpf_probe_read_kernel(w->buf, first, (void *)(f->cur_addr + in_page)))
		return EM_BID_ERR_READ_FAULT;
	if (first >= len)
		return 0;
	/* The rest starts the next page: first and second are < 64. */
	second = len - first;
	err = em_pc_map(f, (off >> em_pc_page_shift) + 1);
	if (err)
		return err;
	em_mask(first, 63);
	em_mask(second, 63);
	if (bpf_probe_read_kernel(&w->buf[first], second, (void *)f->cur_addr))
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
			for (int k = 0; k < EM_BUILD_ID_MAX; k++)
				w->bid.id[k] = k < descsz ? w->buf[k] : 0;
			w->bid.len = descsz;
			return 1;
		}
	}
	w->off = next;
	return 0;
}

/*
 * Build ID of the file whose pages mapping (a struct address_space *)
 * holds, size bytes long, read from the page cache. out->error is
 * EM_BID_ERR_NOT_RESIDENT when a page the walk needed was not there.
 * A global function: the verifier checks it once, not at every call.
 */
__noinline int em_pc_build_id(__u64 mapping, __u64 size, __u32 slot,
			      struct em_build_id *out)
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
	w->f.mapping = (struct address_space *)mapping;
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

#endif /* EXECMON_PAGE_CACHE_BPF_H */
