/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <stdlib.h>
#include <unistd.h>

#include "fileio.h"
#include "macro.h"

ssize_t read_full(int fd, uint8_t *buf, size_t cap)
{
	size_t n = 0;

	while (n < cap) {
		ssize_t k = read(fd, buf + n, cap - n);

		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return -errno;
		if (k == 0)
			break;
		n += (size_t)k;
	}
	return (ssize_t)n;
}

int read_file(const char *path, size_t max, uint8_t **ret, size_t *ret_size)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	_cleanup_free_ uint8_t *buf = NULL;
	size_t size = 0, alloc = 0;

	if (fd < 0)
		return -errno;
	for (;;) {
		/* One byte past max tells "exactly max" from "larger"; +1 for the NUL. */
		size_t n = alloc ? 2 * alloc : 4096;
		uint8_t *p;
		ssize_t k;

		if (n > max + 1)
			n = max + 1;
		p = realloc(buf, n + 1);
		if (!p)
			return -ENOMEM;
		buf = p;
		alloc = n;
		k = read_full(fd, buf + size, alloc - size);
		if (k < 0)
			return (int)k;
		size += (size_t)k;
		if (size > max)
			return -EFBIG;
		if (size < alloc)
			break; /* EOF before the buffer filled */
	}
	buf[size] = 0;
	*ret = TAKE_PTR(buf);
	*ret_size = size;
	return 0;
}

int write_full(int fd, const void *p, size_t n)
{
	const uint8_t *q = p;

	while (n > 0) {
		ssize_t k = write(fd, q, n);

		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return -errno;
		q += k;
		n -= (size_t)k;
	}
	return 0;
}

int file_check_private(const char *path, char *why, size_t size)
{
	struct stat st;
	int r;

	if (stat(path, &st) < 0) {
		r = -errno;
		snprintf(why, size, "cannot examine '%s': %s", path, strerror(-r));
		return r;
	}
	/* What sshd does with a host key: anything beyond the owner is refused, not just reading. */
	if (st.st_mode & (S_IRWXG | S_IRWXO)) {
		snprintf(why, size, "'%s' has mode %04o: group or others can access it (chmod 600 it)", path,
			 (unsigned)(st.st_mode & 07777));
		return -EACCES;
	}
	return 0;
}

int fsync_parent_dir(const char *path)
{
	_cleanup_free_ char *copy = strdup(path);
	_cleanup_close_ int fd = -1;

	if (!copy)
		return -ENOMEM;
	fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || fsync(fd) < 0)
		return -errno;
	return 0;
}

int write_file_new(const char *path, const void *p, size_t n, mode_t mode)
{
	_cleanup_close_ int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY, mode);
	int r;

	if (fd < 0)
		return -errno;
	r = fchmod(fd, mode) < 0 ? -errno : write_full(fd, p, n);
	if (r >= 0 && fsync(fd) < 0)
		r = -errno;
	if (r < 0)
		(void)unlink(path);
	return r;
}

int file_owner_like(const char *path, const char *like)
{
	struct stat st;

	if (geteuid() != 0 || stat(like, &st) < 0)
		return 0;
	return chown(path, st.st_uid, st.st_gid) < 0 ? -errno : 0;
}

int file_replace(const char *from, const char *to)
{
	if (rename(from, to) < 0)
		return -errno;
	return fsync_parent_dir(to);
}
