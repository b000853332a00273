/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#ifdef __SANITIZE_ADDRESS__
#include <sanitizer/asan_interface.h>
#else
#define ASAN_POISON_MEMORY_REGION(p, n) ((void)(p), (void)(n))
#define ASAN_UNPOISON_MEMORY_REGION(p, n) ((void)(p), (void)(n))
#endif

#include "fileio.h"
#include "log.h"
#include "secbuf.h"

static size_t page_size(void)
{
	long page = sysconf(_SC_PAGESIZE);

	return page > 0 ? (size_t)page : 4096;
}

/*
 * Freed one-page buffers, wiped and still locked and excluded from dumps, for the next
 * secbuf_new: a mapping made, locked, faulted in, unlocked and unmapped costs about 10 µs, and
 * the server makes and frees several per attestation (each credential's secret, the payload
 * key and plaintext). Under AddressSanitizer a kept page is poisoned until it is handed out
 * again, so a use after free is reported as it would fault on an unmapped page.
 */
#define SPARE_MAX 8
static struct {
	pthread_mutex_t lock;
	size_t n;
	void *page[SPARE_MAX];
} spare = { .lock = PTHREAD_MUTEX_INITIALIZER };

static void *spare_take(size_t alloc)
{
	void *p = NULL;

	if (alloc != page_size())
		return NULL;
	pthread_mutex_lock(&spare.lock);
	if (spare.n > 0)
		p = spare.page[--spare.n];
	pthread_mutex_unlock(&spare.lock);
	if (p)
		ASAN_UNPOISON_MEMORY_REGION(p, alloc);
	return p;
}

/* Takes p (one wiped page) when there is room; false: the caller unmaps it. */
static bool spare_keep(void *p, size_t alloc)
{
	bool kept = false;

	if (alloc != page_size())
		return false;
	pthread_mutex_lock(&spare.lock);
	if (spare.n < SPARE_MAX) {
		ASAN_POISON_MEMORY_REGION(p, alloc);
		spare.page[spare.n++] = p;
		kept = true;
	}
	pthread_mutex_unlock(&spare.lock);
	return kept;
}

struct secbuf *secbuf_new(size_t size)
{
	size_t page = page_size(), alloc;
	struct secbuf *b;
	void *p;

	if (size > SIZE_MAX - page)
		return NULL;
	alloc = (size + 1 + page - 1) / page * page;

	b = calloc(1, sizeof(*b));
	if (!b)
		return NULL;
	p = spare_take(alloc);
	if (!p) {
		p = mmap(NULL, alloc, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (p == MAP_FAILED) {
			free(b);
			return NULL;
		}
		/* Locking can fail under RLIMIT_MEMLOCK; the wipe still protects us, so go on. */
		if (mlock(p, alloc) < 0)
			log_debug("mlock of %zu bytes failed: %m", alloc);
		(void)madvise(p, alloc, MADV_DONTDUMP);
	}
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
	if (!spare_keep(b->data, b->alloc)) {
		(void)munlock(b->data, b->alloc);
		(void)munmap(b->data, b->alloc);
	}
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
