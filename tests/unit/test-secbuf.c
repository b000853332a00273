/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * common/secbuf.c: what is observable from outside. The wipe on free is seen through the reuse
 * of a freed page (it comes back zeroed); otherwise this checks what the kernel reports: the
 * mapping is private, locked, excluded from core dumps, and gone after free unless it is one
 * of the few pages kept for reuse.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifdef __SANITIZE_ADDRESS__
#include <sanitizer/asan_interface.h>
#endif

#include "macro.h"
#include "secbuf.h"
#include "tap.h"

static char dir[] = "/tmp/test-secbuf-XXXXXX";

/* The VmFlags line of the mapping that starts at p in /proc/self/smaps, or "" if none. */
static void vmflags(const void *p, char *out, size_t size)
{
	char line[512], start[32];
	FILE *f = fopen("/proc/self/smaps", "re");
	int in = 0;

	out[0] = 0;
	snprintf(start, sizeof(start), "%lx-", (unsigned long)p);
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		if (strchr(line, '-') && strchr(line, ' ') && strchr(line, '-') < strchr(line, ' '))
			in = strncmp(line, start, strlen(start)) == 0;
		if (in && strncmp(line, "VmFlags:", 8) == 0) {
			snprintf(out, size, "%s", line + 8);
			break;
		}
	}
	fclose(f);
}

static int has_flag(const char *flags, const char *f)
{
	char pat[8];

	snprintf(pat, sizeof(pat), " %s", f);
	return strstr(flags, pat) != NULL;
}

static void test_new_free(void)
{
	long page = sysconf(_SC_PAGESIZE);
	struct secbuf *b = secbuf_new(32);
	char flags[256];
	void *p;
	int zero = 1;

	CHECK(b && b->size == 32 && b->alloc >= 33 && b->alloc % (size_t)page == 0,
	      "secbuf_new: size as asked, whole pages with room for a terminating NUL");
	for (size_t i = 0; b && i < b->alloc; i++)
		zero &= b->data[i] == 0;
	CHECK(zero, "fresh memory is zeroed");
	CHECK(b && (uintptr_t)b->data % (uintptr_t)page == 0, "the buffer owns its pages (page aligned)");
	vmflags(b->data, flags, sizeof(flags));
	CHECK(has_flag(flags, "dd"), "excluded from core dumps (VmFlags dd)");
#ifdef __SANITIZE_ADDRESS__
	printf("ok %d - %s: locked in memory # SKIP AddressSanitizer turns mlock() into a no-op\n", ++tap_n,
	       __FILE__);
#else
	/* mlock may fail under RLIMIT_MEMLOCK; the buffer must work regardless. */
	CHECK(has_flag(flags, "lo") || geteuid() != 0, "locked in memory when allowed (VmFlags lo)");
#endif
	memset(b->data, 0xa5, b->size);
	p = b->data;
	secbuf_free(b);
#ifdef __SANITIZE_ADDRESS__
	CHECK(__asan_address_is_poisoned(p), "a freed page kept for reuse is poisoned: a use after free is reported");
#else
	printf("ok %d - %s: a freed page kept is poisoned # SKIP without AddressSanitizer\n", ++tap_n, __FILE__);
#endif
	b = secbuf_new(16);
	zero = 1;
	for (size_t i = 0; b && i < b->alloc; i++)
		zero &= b->data[i] == 0;
	vmflags(b ? b->data : NULL, flags, sizeof(flags));
	CHECK(b && b->data == p && zero && has_flag(flags, "dd"),
	      "the next one-page buffer is the freed page, wiped, still excluded from core dumps");
	secbuf_free(b);
	/* More than the pages kept at once (8): the rest are unmapped. */
	{
		struct secbuf *many[9];
		void *last;

		for (size_t i = 0; i < ELEMENTSOF(many); i++)
			many[i] = secbuf_new(32);
		last = many[8]->data;
		for (size_t i = 0; i < ELEMENTSOF(many); i++)
			secbuf_free(many[i]);
		vmflags(last, flags, sizeof(flags));
		CHECK(flags[0] == 0, "secbuf_free unmaps a page when 8 are kept already: nothing left to read back");
	}
	b = secbuf_new((size_t)page);
	p = b ? b->data : NULL;
	secbuf_free(b);
	vmflags(p, flags, sizeof(flags));
	CHECK(p && flags[0] == 0, "secbuf_free unmaps a buffer of more than one page");
	secbuf_free(NULL);
	CHECK(1, "secbuf_free(NULL) is a no-op");
	{
		_cleanup_secbuf_ struct secbuf *e = secbuf_new(0);

		CHECK(e && e->size == 0 && e->alloc > 0, "a zero-size buffer is still a valid buffer");
	}
	CHECK(secbuf_new(SIZE_MAX) == NULL && secbuf_new(SIZE_MAX - 1) == NULL, "absurd sizes fail cleanly");
}

static void test_dup(void)
{
	_cleanup_secbuf_ struct secbuf *b = secbuf_dup("secret", 6);

	CHECK(b && b->size == 6 && memcmp(b->data, "secret", 6) == 0 && b->data[6] == 0,
	      "secbuf_dup copies and stays NUL terminated");
}

static char *write_file(const char *name, const void *data, size_t n)
{
	char *path;
	int fd;

	if (asprintf(&path, "%s/%s", dir, name) < 0)
		return NULL;
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || write(fd, data, n) != (ssize_t)n)
		abort();
	close(fd);
	return path;
}

static void test_read_file(void)
{
	_cleanup_free_ char *exact = NULL, *over = NULL, *empty = NULL, *nl = NULL, *bin = NULL;
	static const uint8_t binary[] = { 'a', 0, '\n', 0xff, '\r', '\n' };
	struct secbuf *b = NULL;
	char data[4097];

	memset(data, 'k', sizeof(data));
	exact = write_file("exact", data, 4096);
	over = write_file("over", data, 4097);
	empty = write_file("empty", "", 0);
	nl = write_file("newline", "passphrase\n", 11);
	bin = write_file("binary", binary, sizeof(binary));

	CHECK(secbuf_read_file(exact, 4096, &b) == 0 && b && b->size == 4096, "a file of exactly max bytes is read");
	secbuf_free(b);
	b = NULL;
	CHECK(secbuf_read_file(over, 4096, &b) == -EFBIG && !b, "max + 1 bytes: -EFBIG, nothing returned");
	CHECK(secbuf_read_file(empty, 4096, &b) == -ENODATA && !b, "an empty file: -ENODATA");
	CHECK(secbuf_read_file("/nonexistent/key", 4096, &b) == -ENOENT && !b, "a missing file: -ENOENT");
	CHECK(secbuf_read_file(dir, 4096, &b) == -EISDIR && !b, "a directory: -EISDIR");
	CHECK(secbuf_read_file(nl, 4096, &b) == 0 && b->size == 11 && memcmp(b->data, "passphrase\n", 11) == 0,
	      "byte for byte, as cryptsetup --key-file: the trailing newline is kept");
	secbuf_free(b);
	b = NULL;
	CHECK(secbuf_read_file(bin, 4096, &b) == 0 && b->size == sizeof(binary) &&
	      memcmp(b->data, binary, sizeof(binary)) == 0, "NUL and high bytes are kept");
	secbuf_free(b);
	b = NULL;
	CHECK(secbuf_read_file("/dev/zero", 64, &b) == -EFBIG && !b, "an endless file stops at the limit");
	unlink(exact);
	unlink(over);
	unlink(empty);
	unlink(nl);
	unlink(bin);
}

/* secbuf_read_line from a pipe (not a terminal: no prompt, no echo handling). */
static int read_line_from(const char *input, size_t max, struct secbuf **ret)
{
	int p[2], r;

	if (pipe(p) < 0)
		abort();
	if (write(p[1], input, strlen(input)) != (ssize_t)strlen(input))
		abort();
	close(p[1]);
	r = secbuf_read_line(p[0], "prompt: ", max, ret);
	close(p[0]);
	return r;
}

static void test_read_line(void)
{
	struct secbuf *b = NULL;

	CHECK(read_line_from("hunter2\nrest", 64, &b) == 0 && b->size == 7 && memcmp(b->data, "hunter2", 8) == 0,
	      "reads up to the newline, NUL terminated");
	secbuf_free(b);
	b = NULL;
	CHECK(read_line_from("hunter2\r\n", 64, &b) == 0 && b->size == 7, "a CRLF line ending is stripped");
	secbuf_free(b);
	b = NULL;
	CHECK(read_line_from("hunter2", 64, &b) == 0 && b->size == 7, "end of input ends the line");
	secbuf_free(b);
	b = NULL;
	CHECK(read_line_from("12345678", 8, &b) == 0 && b->size == 8, "exactly max characters are accepted");
	secbuf_free(b);
	b = NULL;
	CHECK(read_line_from("123456789", 8, &b) == -EFBIG && !b, "max + 1 characters: -EFBIG");
	CHECK(read_line_from("\n", 8, &b) == -ENODATA && !b, "an empty line: -ENODATA");
	CHECK(read_line_from("", 8, &b) == -ENODATA && !b, "no input: -ENODATA");
}

static void test_equal_wipe(void)
{
	uint8_t a[64], c[64];

	memset(a, 0x5a, sizeof(a));
	memcpy(c, a, sizeof(c));
	CHECK(secmem_equal(a, c, sizeof(a)) == 1, "equal buffers compare equal");
	c[0] ^= 1;
	CHECK(secmem_equal(a, c, sizeof(a)) == 0, "a difference in the first byte is found");
	c[0] ^= 1;
	c[63] ^= 0x80;
	CHECK(secmem_equal(a, c, sizeof(a)) == 0, "a difference in the last bit is found");
	CHECK(secmem_equal(a, c, 63) == 1, "only n bytes are compared");
	CHECK(secmem_equal(a, c, 0) == 1, "zero bytes are always equal");
	secmem_wipe(a, sizeof(a));
	CHECK(memcmp(a, (uint8_t[64]){ 0 }, 64) == 0, "secmem_wipe zeroes every byte");
}

int main(void)
{
	if (!mkdtemp(dir))
		return 1;
	test_new_free();
	test_dup();
	test_read_file();
	test_read_line();
	test_equal_wipe();
	rmdir(dir);
	return TAP_DONE();
}
