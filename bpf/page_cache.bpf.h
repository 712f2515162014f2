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
		if ((index >> shift) > chunk_mask)
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
	/* flags is an unsigned long, or memdesc_flags_t wrapping one (6.18). */
	if (bpf_probe_read_kernel(&pflags, sizeof(pflags),
				  __builtin_preserve_access_index(&folio->flags)))
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

#endif /* EXECMON_PAGE_CACHE_BPF_H */
