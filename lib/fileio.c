/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include "fileio.h"
#include "macro.h"

int read_file(const char *path, size_t max, uint8_t **ret, size_t *ret_size)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	_cleanup_free_ uint8_t *buf = NULL;
	size_t size = 0, alloc = 0;

	if (fd < 0)
		return -errno;
	for (;;) {
		ssize_t k;

		if (size == alloc) {
			/* One byte past max tells "exactly max" from "larger"; +1 for the NUL. */
			size_t n = alloc ? 2 * alloc : 4096;
			uint8_t *p;

			if (alloc > max)
				return -EFBIG;
			if (n > max + 1)
				n = max + 1;
			p = realloc(buf, n + 1);
			if (!p)
				return -ENOMEM;
			buf = p;
			alloc = n;
		}
		k = read(fd, buf + size, alloc - size);
		if (k < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (k == 0)
			break;
		size += (size_t)k;
		if (size > max)
			return -EFBIG;
	}
	buf[size] = 0;
	*ret = TAKE_PTR(buf);
	*ret_size = size;
	return 0;
}
