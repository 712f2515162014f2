/* e2e test program: a static ELF32 (i386) executable, built with binutils
 * alone (no 32-bit libc needed): writes "hello32" and exits 0. */
	.globl _start
	.text
_start:
	movl $4, %eax        /* write */
	movl $1, %ebx
	movl $msg, %ecx
	movl $len, %edx
	int $0x80
	movl $1, %eax        /* exit */
	xorl %ebx, %ebx
	int $0x80
	.data
msg:	.ascii "hello32\n"
	len = . - msg
