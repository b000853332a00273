/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * LD_PRELOAD fault for server.bats: fdatasync fails (EIO, as a failing disk's does) while the
 * file that $FDATASYNC_FAULT names exists, so a test can turn it on under a running server.
 */
#include <dlfcn.h>
#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

int fdatasync(int fd)
{
	static int (*real)(int);
	const char *f = getenv("FDATASYNC_FAULT");

	if (f && access(f, F_OK) == 0) {
		errno = EIO;
		return -1;
	}
	if (!real)
		*(void **)&real = dlsym(RTLD_NEXT, "fdatasync");
	if (!real) {
		errno = ENOSYS;
		return -1;
	}
	return real(fd);
}
