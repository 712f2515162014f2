// e2e test program: prints "hello <name>"; with "sleep N" as arguments it
// stays alive N seconds (for snapshot and late-resolution tests).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	if (argc >= 3 && strcmp(argv[1], "sleep") == 0) {
		sleep(atoi(argv[2]));
		return 0;
	}
	printf("hello %s\n", argc > 1 ? argv[1] : "world");
	return 0;
}
