// e2e helper: copies the ELF file argv[1] into a memfd and executes it with
// fexecve (fileless execution), passing the remaining arguments.
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <unistd.h>

extern char **environ;

int main(int argc, char **argv)
{
	struct stat st;
	int in, mfd;

	if (argc < 2)
		return 2;
	in = open(argv[1], O_RDONLY | O_CLOEXEC);
	if (in < 0 || fstat(in, &st) < 0) {
		perror(argv[1]);
		return 1;
	}
	mfd = memfd_create("execmon-e2e", MFD_CLOEXEC);
	if (mfd < 0 || sendfile(mfd, in, NULL, st.st_size) != st.st_size) {
		perror("memfd");
		return 1;
	}
	fexecve(mfd, &argv[1], environ);
	perror("fexecve");
	return 1;
}
