// e2e test program whose GNU build-ID note lies beyond the first 4 KiB of
// the file, after an 8 KiB note of another type, in the same PT_NOTE
// segment. Linked with --build-id=none: the only build ID is this one.
#include <stdio.h>

__asm__(".section .note.a_pad,\"a\",@note\n"
	".balign 4\n"
	".long 4\n"           /* namesz */
	".long 8192\n"        /* descsz */
	".long 0x4d45\n"      /* type: not a build ID */
	".asciz \"PAD\"\n"
	".fill 8192, 1, 0xab\n"
	".section .note.b_build_id,\"a\",@note\n"
	".balign 4\n"
	".long 4\n"
	".long 20\n"
	".long 3\n"           /* NT_GNU_BUILD_ID */
	".asciz \"GNU\"\n"
	".byte 0x1a,0xe0,0x00,0x00,0x00,0x00,0x00,0x00,0x00,0x00\n"
	".byte 0x00,0x00,0x00,0x00,0x00,0x00,0x00,0x00,0x00,0x42\n"
	".text\n");

int main(void)
{
	puts("late note");
	return 0;
}
