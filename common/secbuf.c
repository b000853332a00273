/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include "fileio.h"
#include "log.h"
#include "secbuf.h"

struct secbuf *secbuf_new(size_t size)
{
	long page = sysconf(_SC_PAGESIZE);
	struct secbuf *b;
	size_t alloc;
	void *p;

	if (page <= 0)
		page = 4096;
	if (size > SIZE_MAX - (size_t)page)
		return NULL;
	alloc = (size + 1 + (size_t)page - 1) / (size_t)page * (size_t)page;

	b = calloc(1, sizeof(*b));
	if (!b)
		return NULL;
	p = mmap(NULL, alloc, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED) {
		free(b);
		return NULL;
	}
	/* Locking can fail under RLIMIT_MEMLOCK; the wipe still protects us, so go on. */
	if (mlock(p, alloc) < 0)
		log_debug("mlock of %zu bytes failed: %m", alloc);
	(void)madvise(p, alloc, MADV_DONTDUMP);
	b->data = p;
	b->size = size;
	b->alloc = alloc;
	return b;
}

void secbuf_free(struct secbuf *b)
{
	if (!b)
		return;
	explicit_bzero(b->data, b->alloc);
	(void)munlock(b->data, b->alloc);
	(void)munmap(b->data, b->alloc);
	free(b);
}

struct secbuf *secbuf_dup(const void *p, size_t size)
{
	struct secbuf *b = secbuf_new(size);

	if (b)
		memcpy(b->data, p, size);
	return b;
}

static void strip_newline(struct secbuf *b)
{
	if (b->size > 0 && b->data[b->size - 1] == '\n')
		b->data[--b->size] = 0;
	if (b->size > 0 && b->data[b->size - 1] == '\r')
		b->data[--b->size] = 0;
}

int secbuf_read_file(const char *path, size_t max, struct secbuf **ret)
{
	_cleanup_secbuf_ struct secbuf *b = NULL;
	_cleanup_close_ int fd = -1;
	ssize_t n;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return -errno;
	b = secbuf_new(max + 1);
	if (!b)
		return -ENOMEM;
	/* One byte past max tells "exactly max" from "larger". */
	n = read_full(fd, b->data, max + 1);
	if (n < 0)
		return (int)n;
	if ((size_t)n > max)
		return -EFBIG;
	/* Key files are used byte for byte, as cryptsetup --key-file does: no newline stripping. */
	b->size = (size_t)n;
	if (b->size == 0)
		return -ENODATA;
	*ret = TAKE_PTR(b);
	return 0;
}

int secbuf_read_line(int fd, const char *prompt, size_t max, struct secbuf **ret)
{
	_cleanup_secbuf_ struct secbuf *b = NULL;
	struct termios old, quiet;
	int tty = isatty(fd), r = 0;
	size_t n = 0;
	char c;

	b = secbuf_new(max + 1);
	if (!b)
		return -ENOMEM;
	if (tty) {
		if (prompt)
			(void)!write(STDERR_FILENO, prompt, strlen(prompt));
		if (tcgetattr(fd, &old) < 0)
			return -errno;
		quiet = old;
		quiet.c_lflag &= ~(tcflag_t)ECHO;
		if (tcsetattr(fd, TCSAFLUSH, &quiet) < 0)
			return -errno;
	}
	for (;;) {
		ssize_t k = read(fd, &c, 1);

		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0) {
			r = -errno;
			break;
		}
		if (k == 0 || c == '\n')
			break;
		if (n >= max) {
			r = -EFBIG;
			break;
		}
		b->data[n++] = (uint8_t)c;
	}
	explicit_bzero(&c, sizeof(c));
	if (tty) {
		(void)tcsetattr(fd, TCSAFLUSH, &old);
		(void)!write(STDERR_FILENO, "\n", 1);
	}
	if (r < 0)
		return r;
	b->size = n;
	strip_newline(b);
	if (b->size == 0)
		return -ENODATA;
	*ret = TAKE_PTR(b);
	return 0;
}

int secmem_equal(const void *a, const void *b, size_t n)
{
	const volatile uint8_t *x = a, *y = b;
	uint8_t d = 0;

	for (size_t i = 0; i < n; i++)
		d |= x[i] ^ y[i];
	return d == 0;
}

void secmem_wipe(void *p, size_t n)
{
	explicit_bzero(p, n);
}
