/* The program the exec benchmarks run: does nothing and exits 0.
 * Linked -static with a fixed build ID (see bench/CMakeLists.txt), so an
 * exec costs the kernel's ELF loader plus glibc's static start-up, with no
 * dynamic loader and no shared libraries. */
int main(void)
{
	return 0;
}
