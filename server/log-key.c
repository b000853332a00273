/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "fileio.h"
#include "log-key.h"
#include "note.h"
#include "secbuf.h"
#include "server-config.h"
#include "store.h"

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

int log_keys_attach(struct store *s, const struct server_config *c, char *why, size_t why_size)
{
	struct note_signer *signer, *next;
	int r;

	if (!c->log_key)
		return 0;
	if ((r = log_key_load(c->log_key, &signer, why, why_size)) < 0)
		return r;
	store_set_log_signer(s, signer);
	if (!c->log_key_next)
		return 0;
	if ((r = log_key_load(c->log_key_next, &next, why, why_size)) < 0)
		return r;
	if (store_set_log_cosigner(s, next) < 0) {
		snprintf(why, why_size, "the log key '%s' is named otherwise than the log ('%s'): the next log key "
			 "keeps the log's name (log-key generate --name %s)", c->log_key_next,
			 note_signer_verifier(signer)->name, note_signer_verifier(signer)->name);
		return -EINVAL;
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
