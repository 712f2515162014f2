// e2e test program: marker.c's first action (create the file named by
// argv[1]) with its GNU build-ID note 960 KiB into the file, after a note
// of another type, in the same PT_NOTE segment. With its pages dropped
// from the page cache, the exec reads only the start of the file: the
// note's page is not resident at exec (the "hold" path).
#ifndef FAR_NOTE_ID
#error "FAR_NOTE_ID: the 8 build-ID bytes, as .byte operands"
#endif
#define STR2(...) #__VA_ARGS__
#define STR(...) STR2(__VA_ARGS__)

__asm__(".section .note.a_pad,\"a\",@note\n"
	".balign 4\n"
	".long 4\n"           /* namesz */
	".long 983040\n"      /* descsz */
	".long 0x4d45\n"      /* type: not a build ID */
	".asciz \"PAD\"\n"
	".fill 983040, 1, 0xab\n"
	".section .note.b_build_id,\"a\",@note\n"
	".balign 4\n"
	".long 4\n"
	".long 8\n"
	".long 3\n"           /* NT_GNU_BUILD_ID */
	".asciz \"GNU\"\n"
	".byte " STR(FAR_NOTE_ID) "\n"
	".text\n");

/* The first action: marker.c's. */
#include "marker.c"
