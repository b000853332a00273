/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "fileio.h"
#include "log-key.h"
#include "note.h"
#include "secbuf.h"

int log_key_load(const char *path, struct note_signer **ret, char *why, size_t why_size)
{
	_cleanup_secbuf_ struct secbuf *text = NULL;
	char reason[160];
	int r;

	if ((r = file_check_private(path, why, why_size)) < 0)
		return r;
	if ((r = secbuf_read_file(path, NOTE_KEY_MAX + 16, &text)) < 0) {
		snprintf(why, why_size, "cannot read the log key '%s': %s", path, strerror(-r));
		return r;
	}
	if ((r = note_signer_parse((const char *)text->data, text->size, ret, reason, sizeof(reason))) < 0) {
		snprintf(why, why_size, "the log key '%s' is unusable: %s", path, reason);
		return r;
	}
	return 0;
}

int log_key_generate(const char *path, const char *name, char *ret_vkey, char *why, size_t why_size)
{
	_cleanup_secbuf_ struct secbuf *skey = NULL;
	char reason[160];
	int r;

	if ((r = note_key_generate(name, &skey, ret_vkey, reason, sizeof(reason))) < 0) {
		snprintf(why, why_size, "%s", reason);
		return r;
	}
	if ((r = write_file_new(path, skey->data, skey->size, 0600)) < 0) {
		snprintf(why, why_size, "cannot create the log key '%s': %s", path,
			 r == -EEXIST ? "it exists (a log key is never overwritten)" : strerror(-r));
		return r;
	}
	return 0;
}
