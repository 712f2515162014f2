/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The rules that decide whether an ELF image's headers and notes are sane
 * enough to trust a build ID read from them. Pure functions over integers,
 * included both by the BPF reader (bpf/buildid.bpf.h) and by the user-space
 * twin (agent/elf/note_walker.cc) so the unit tests exercise the very rules
 * the kernel side runs. Every rule fails closed: a doubt is an error code,
 * never a guessed ID.
 */
#ifndef EXECMON_ELF_RULES_H
#define EXECMON_ELF_RULES_H

#include "execmon_abi.h"

#ifndef EM_RULES_INLINE
#define EM_RULES_INLINE static inline __attribute__((always_inline))
#endif

#define EM_ELFCLASS32 1
#define EM_ELFCLASS64 2
#define EM_ELFDATA2LSB 1
#define EM_PT_LOAD 1
#define EM_PT_NOTE 4
#define EM_NT_GNU_BUILD_ID 3
#define EM_EHDR64_SIZE 64
#define EM_EHDR32_SIZE 52
#define EM_PHDR64_SIZE 56
#define EM_PHDR32_SIZE 32
#define EM_NHDR_SIZE 12

/* Walk limits: real binaries have ~15 phdrs and a handful of notes. */
#define EM_MAX_PHNUM 128
#define EM_MAX_NOTE_SEGS 8
#define EM_MAX_NOTE_STEPS 64
/* A note segment larger than this is treated as hostile. */
#define EM_MAX_NOTE_SEG_SIZE (1U << 20)

/* e_ident checks: magic, class, little-endian data. */
EM_RULES_INLINE int em_rule_ident(const __u8 *ident)
{
	if (ident[0] != 0x7f || ident[1] != 'E' || ident[2] != 'L' ||
	    ident[3] != 'F')
		return EM_BID_ERR_NOT_ELF;
	if (ident[4] != EM_ELFCLASS32 && ident[4] != EM_ELFCLASS64)
		return EM_BID_ERR_NOT_ELF;
	if (ident[5] != EM_ELFDATA2LSB)
		return EM_BID_ERR_NOT_ELF;
	return EM_BID_OK;
}

/*
 * Program header table placement. map_size is how many bytes of the file
 * are known to be readable from offset 0 (the first mapping, or the file
 * size): the table must lie inside it.
 */
EM_RULES_INLINE int em_rule_phdrs(int is64, __u64 phoff, __u32 phentsize,
				  __u32 phnum, __u64 map_size)
{
	__u32 want = is64 ? EM_PHDR64_SIZE : EM_PHDR32_SIZE;

	if (phentsize != want)
		return EM_BID_ERR_BAD_PHDRS;
	if (phnum == 0)
		return EM_BID_ERR_NO_NOTE;
	if (phnum > EM_MAX_PHNUM)
		return EM_BID_ERR_LIMIT;
	if (phoff < (is64 ? EM_EHDR64_SIZE : EM_EHDR32_SIZE))
		return EM_BID_ERR_BAD_PHDRS;
	/* phoff is at most 64 bits wide: compare without overflow. */
	if (phoff > map_size || (__u64)phnum * want > map_size - phoff)
		return EM_BID_ERR_BAD_PHDRS;
	return EM_BID_OK;
}

/* A PT_NOTE segment worth walking: non-empty, bounded, sane alignment. */
EM_RULES_INLINE int em_rule_note_seg(__u64 filesz, __u64 align)
{
	if (filesz < EM_NHDR_SIZE)
		return EM_BID_ERR_BAD_NOTE;
	if (filesz > EM_MAX_NOTE_SEG_SIZE)
		return EM_BID_ERR_BAD_NOTE;
	if (align != 0 && align != 1 && align != 4 && align != 8)
		return EM_BID_ERR_BAD_NOTE;
	return EM_BID_OK;
}

/*
 * A PT_NOTE segment read from the file by p_offset must lie inside the
 * file: a segment past the end is malformed, whatever memory holds there.
 */
EM_RULES_INLINE int em_rule_note_seg_in_file(__u64 offset, __u64 filesz,
					     __u64 file_size)
{
	if (offset > file_size || filesz > file_size - offset)
		return EM_BID_ERR_BAD_NOTE;
	return EM_BID_OK;
}

/*
 * Whether a PT_LOAD of file range [load_off, load_off + load_filesz) holds
 * the whole note segment at file offset note_off: only then are the note's
 * bytes in memory the file's bytes at note_off, at load_vaddr + (note_off -
 * load_off). Returns 0 when it does, else non-zero.
 */
EM_RULES_INLINE int em_rule_note_mapped(__u64 note_off, __u64 note_size,
					__u64 load_off, __u64 load_filesz)
{
	if (note_off < load_off || note_off - load_off > load_filesz ||
	    note_size > load_filesz - (note_off - load_off))
		return 1;
	return 0;
}

/* Note alignment: 8 only when the segment says so (gABI), else 4. */
EM_RULES_INLINE __u64 em_note_align(__u64 seg_align)
{
	return seg_align == 8 ? 8 : 4;
}

EM_RULES_INLINE __u64 em_align_up(__u64 v, __u64 a)
{
	return (v + a - 1) & ~(a - 1);
}

/*
 * Offset of a note's descriptor from the start of the note: the header and
 * name are padded together to the note alignment (for 8-aligned notes such
 * as NT_GNU_PROPERTY_TYPE_0 that is align_up(12 + 4, 8) = 16, not
 * 12 + align_up(4, 8) = 20).
 */
EM_RULES_INLINE __u64 em_note_desc_off(__u32 namesz, __u64 align)
{
	return em_align_up(EM_NHDR_SIZE + (__u64)namesz, align);
}

/*
 * One note header at offset off (a multiple of align) of a segment of
 * seg_size bytes; the caller has checked that the 12-byte header fits. On
 * success *next is the offset of the following note, and the return value
 * says whether this note is a GNU build-ID candidate (name still to be
 * checked). Returns a negative em_bid_error on a malformed note.
 */
#define EM_NOTE_OTHER 0
#define EM_NOTE_BUILD_ID 1
EM_RULES_INLINE int em_rule_note(__u64 off, __u64 seg_size, __u64 align,
				 __u32 namesz, __u32 descsz, __u32 type,
				 __u64 *next)
{
	__u64 desc_off, desc_end;

	if (off > seg_size || seg_size - off < EM_NHDR_SIZE)
		return -EM_BID_ERR_BAD_NOTE;
	/* namesz and descsz are 32-bit: these sums cannot wrap a u64. */
	desc_off = off + em_note_desc_off(namesz, align);
	desc_end = desc_off + descsz;
	if (off + EM_NHDR_SIZE + namesz > seg_size || desc_end > seg_size)
		return -EM_BID_ERR_BAD_NOTE;
	*next = em_align_up(desc_end, align);
	if (type == EM_NT_GNU_BUILD_ID && namesz == 4)
		return EM_NOTE_BUILD_ID;
	return EM_NOTE_OTHER;
}

/* The descriptor of a GNU build-ID note. */
EM_RULES_INLINE int em_rule_build_id_size(__u32 descsz)
{
	if (descsz == 0 || descsz > EM_BUILD_ID_MAX)
		return EM_BID_ERR_BAD_SIZE;
	return EM_BID_OK;
}

/* The name of a GNU note: "GNU\0". */
EM_RULES_INLINE int em_rule_gnu_name(const __u8 *name)
{
	return name[0] == 'G' && name[1] == 'N' && name[2] == 'U' &&
	       name[3] == 0;
}

#endif /* EXECMON_ELF_RULES_H */
