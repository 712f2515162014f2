/* The binary the enforcement test denies by build ID (tests/node). Its
 * first action is visible from outside: it prints a line and, with an
 * argument, creates that file. A process killed before its first
 * instruction does neither. Static, so the same file runs in the workload
 * image (busybox) and on the host. */
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

int main(int argc, char **argv) {
  if (argc > 1) {
    int fd = open(argv[1], O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd >= 0) close(fd);
  }
  printf("victim ran\n");
  return 0;
}
