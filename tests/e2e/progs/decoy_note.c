// e2e test program for hostile-ELF consistency (issue 11): a loaded,
// read-only buffer that the tests fill with a copy of the PT_NOTE segment
// holding another build ID, then point the PT_NOTE's p_vaddr at it (see
// craft_decoy in test_hostile_elf.py). Otherwise hello.c.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

__attribute__((used, aligned(16))) static const char decoy[256] =
	"EXECMON-DECOY-NOTE-FOLLOWS-HERE";

int main(int argc, char **argv)
{
	if (argc >= 3 && strcmp(argv[1], "sleep") == 0) {
		sleep(atoi(argv[2]));
		return 0;
	}
	printf("hello %s\n", argc > 1 ? argv[1] : "world");
	return 0;
}
