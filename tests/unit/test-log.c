/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * common/log.c: each binary's lines start with its own name; %m is the error handed to
 * log_*_errno, whatever errno the caller left behind, and the caller's errno otherwise;
 * errno is as it was afterwards; below the level nothing is written.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "tap.h"

/* What one log call wrote to stderr (a temporary file for the duration), and errno after it. */
#define CAPTURED(call, buf, ret_errno)                                       \
	do {                                                                 \
		FILE *tmp_ = tmpfile();                                      \
		int saved_ = dup(STDERR_FILENO), n_;                         \
                                                                             \
		dup2(fileno(tmp_), STDERR_FILENO);                           \
		call;                                                        \
		*(ret_errno) = errno;                                        \
		dup2(saved_, STDERR_FILENO);                                 \
		close(saved_);                                               \
		rewind(tmp_);                                                \
		n_ = (int)fread((buf), 1, sizeof(buf) - 1, tmp_);            \
		(buf)[n_ < 0 ? 0 : n_] = 0;                                  \
		fclose(tmp_);                                                \
	} while (0)

int main(void)
{
	char out[256];
	int r = 0, e = 0;

	log_set_level(LOG_LVL_DEBUG);
	errno = ENOENT;
	CAPTURED(r = log_error_errno(-EACCES, "cannot write %s: %m", "node.crt"), out, &e);
	CHECK(streq(out, "test-log: cannot write node.crt: Permission denied\n") && r == -EACCES,
	      "log_error_errno: the binary's own name, %m is the error given (not the stale ENOENT)");
	CHECK(e == ENOENT, "errno is the caller's again afterwards");
	errno = ENOENT;
	CAPTURED(r = log_debug_errno(EIO, "%m"), out, &e);
	CHECK(streq(out, "test-log: Input/output error\n") && r == -EIO, "a positive error counts the same");
	errno = ENOENT;
	CAPTURED(log_error("open: %m"), out, &e);
	CHECK(streq(out, "test-log: open: No such file or directory\n") && e == ENOENT,
	      "log_error without an error: %m is the caller's errno");
	log_set_level(LOG_LVL_ERROR);
	CAPTURED(r = log_debug_errno(-EPERM, "hidden %m"), out, &e);
	CHECK(streq(out, "") && r == -EPERM, "below the level: nothing written, the error still returned");
	{
		struct log_limit lim = {};
		uint64_t held = 99;
		bool first, burst = false, later;

		first = log_limit_pass(&lim, 5000000, &held) && held == 0;
		for (int i = 1; i <= 1000; i++)
			burst |= log_limit_pass(&lim, 5000000 + i * 900, &held);
		later = log_limit_pass(&lim, 6000000, &held);
		CHECK(first && !burst, "a failure logs once, then not again within the second");
		CHECK(later && held == 1000, "a second later it logs again, counting the 1000 held back");
		CHECK(!log_limit_pass(&lim, 6999999, &held) && log_limit_pass(&lim, 7000000, &held) && held == 1,
		      "at most one a second, exactly");
	}
	return TAP_DONE();
}
