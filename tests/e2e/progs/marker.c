// e2e test program whose first action is to create the file named by
// argv[1]. Enforcement tests assert that a killed program never created it.
#include <fcntl.h>
#include <unistd.h>

#ifdef EM_FORGED_VARIANT
/* pin_forged: the build ID of pin_genuine, other content. */
__attribute__((used)) static const char forged[] = "not the pinned build";
#endif

int main(int argc, char **argv)
{
	if (argc > 1) {
		int fd = open(argv[1], O_CREAT | O_WRONLY | O_TRUNC, 0644);

		if (fd >= 0)
			close(fd);
	}
	return 0;
}
