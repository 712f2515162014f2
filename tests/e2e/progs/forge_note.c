// LD_PRELOAD library that forges the main program's build ID in its own
// memory (issue 11): a constructor finds the GNU build-ID note in the
// loaded PT_NOTE segments, makes its page writable and overwrites the
// descriptor with $FORGE_BUILD_ID (hex, same length). Any user can do this
// to a program they run; the agent must neither trust nor cache the result.
#define _GNU_SOURCE
#include <link.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static unsigned char forged[20];
static size_t forged_len;

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

static int forge(struct dl_phdr_info *info, size_t size, void *arg)
{
	int *done = arg;

	(void)size;
	for (int i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
		unsigned char *p, *end;

		if (ph->p_type != PT_NOTE)
			continue;
		p = (unsigned char *)(info->dlpi_addr + ph->p_vaddr);
		end = p + ph->p_filesz;
		while (p + sizeof(ElfW(Nhdr)) <= end) {
			const ElfW(Nhdr) *nh = (const ElfW(Nhdr) *)p;
			size_t align = ph->p_align == 8 ? 8 : 4;
			size_t desc_off = (sizeof(*nh) + nh->n_namesz + align - 1) & ~(align - 1);
			unsigned char *desc = p + desc_off;

			if (nh->n_type == NT_GNU_BUILD_ID && nh->n_namesz == 4 &&
			    memcmp(p + sizeof(*nh), "GNU", 4) == 0 &&
			    nh->n_descsz == forged_len) {
				long pg = sysconf(_SC_PAGESIZE);
				uintptr_t start = (uintptr_t)desc & ~(uintptr_t)(pg - 1);
				size_t len = (uintptr_t)desc + forged_len - start;

				if (mprotect((void *)start, len, PROT_READ | PROT_WRITE) == 0) {
					memcpy(desc, forged, forged_len);
					mprotect((void *)start, len, PROT_READ);
					*done = 1;
				}
				return 1;
			}
			p += (desc_off + nh->n_descsz + align - 1) & ~(align - 1);
		}
	}
	return 1; /* only the first object: the main program */
}

__attribute__((constructor)) static void forge_build_id(void)
{
	const char *hex = getenv("FORGE_BUILD_ID");
	int done = 0;

	if (!hex)
		return;
	for (forged_len = 0; forged_len < sizeof(forged) && hex[2 * forged_len] &&
	     hex[2 * forged_len + 1]; forged_len++) {
		int hi = hexval(hex[2 * forged_len]);
		int lo = hexval(hex[2 * forged_len + 1]);

		if (hi < 0 || lo < 0)
			return;
		forged[forged_len] = (unsigned char)(hi << 4 | lo);
	}
	dl_iterate_phdr(forge, &done);
	fprintf(stderr, done ? "forge_note: forged\n" : "forge_note: not forged\n");
}
