/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "checkpoint.h"
#include "encode.h"
#include "fileio.h"
#include "log.h"
#include "note.h"
#include "store.h"

int checkpoint_check(struct store *s, const struct note_verifier *v, char *why, size_t why_size)
{
	_cleanup_free_ char *note = NULL;
	struct checkpoint c;
	merkle_hash root;
	uint64_t stored, leaves;
	int64_t seq;
	char reason[256];
	int r;

	r = store_checkpoint_get(s, &stored, &note);
	if (r == -ENOENT) {
		snprintf(why, why_size, "the store has no signed checkpoint yet");
		return r;
	}
	if (r < 0 || (r = store_log_size(s, &leaves)) < 0) {
		snprintf(why, why_size, "cannot read the audit log: %s", strerror(-r));
		return r;
	}
	if ((r = store_audit_last_seq(s, &seq)) < 0) {
		snprintf(why, why_size, "cannot read the audit log: %s", strerror(-r));
		return r;
	}
	if ((uint64_t)seq != leaves) {
		snprintf(why, why_size, "the log has %" PRId64 " records but its tree %" PRIu64 " leaves (records %s)", seq,
			 leaves, (uint64_t)seq < leaves ? "removed" : "added beside the tree");
		return -EBADMSG;
	}
	if (checkpoint_open(note, strlen(note), v, &c, reason, sizeof(reason)) < 0) {
		snprintf(why, why_size, "the store's checkpoint does not verify with the log key '%s': %s", v->name,
			 reason);
		return -EBADMSG;
	}
	if (c.size > leaves) {
		snprintf(why, why_size,
			 "the signed checkpoint covers %" PRIu64 " records but the log has %" PRIu64
			 " (records removed)",
			 c.size, leaves);
		return -EBADMSG;
	}
	if ((r = store_log_root(s, c.size, root)) < 0) {
		snprintf(why, why_size, "cannot read the audit log's tree: %s", strerror(-r));
		return r;
	}
	if (memcmp(root, c.root, MERKLE_HASH_SIZE) != 0) {
		snprintf(why, why_size,
			 "the log's first %" PRIu64 " records are not those the signed checkpoint covers (rewritten)",
			 c.size);
		return -EBADMSG;
	}
	return 0;
}

int checkpoint_extends_file(struct store *s, const struct note_verifier *v, const char *path, char *why,
			    size_t why_size)
{
	_cleanup_free_ uint8_t *text = NULL;
	struct checkpoint c;
	merkle_hash root;
	uint64_t leaves;
	char reason[256];
	size_t n;
	int r;

	if ((r = read_file(path, NOTE_MAX, &text, &n)) < 0) {
		snprintf(why, why_size, "cannot read the checkpoint file '%s': %s", path, strerror(-r));
		return r;
	}
	if (checkpoint_open((const char *)text, n, v, &c, reason, sizeof(reason)) < 0) {
		snprintf(why, why_size, "the checkpoint file '%s' does not verify with the log key: %s", path, reason);
		return -EBADMSG;
	}
	if ((r = store_log_size(s, &leaves)) < 0 || (c.size <= leaves && (r = store_log_root(s, c.size, root)) < 0)) {
		snprintf(why, why_size, "cannot read the audit log: %s", strerror(-r));
		return r;
	}
	if (c.size > leaves) {
		snprintf(why, why_size,
			 "the checkpoint file '%s' covers %" PRIu64 " records but the log has %" PRIu64
			 " (records removed)",
			 path, c.size, leaves);
		return -EBADMSG;
	}
	if (memcmp(root, c.root, MERKLE_HASH_SIZE) != 0) {
		snprintf(why, why_size,
			 "the log does not extend the checkpoint file '%s': its first %" PRIu64 " records are others "
			 "(forked or rewritten)",
			 path, c.size);
		return -EBADMSG;
	}
	return 0;
}

bool checkpoint_exists(struct store *s)
{
	_cleanup_free_ char *note = NULL;
	uint64_t size;

	return store_checkpoint_get(s, &size, &note) == 0;
}

int checkpoint_publish(struct store *s, const char *path, uint64_t *published)
{
	_cleanup_free_ char *note = NULL;
	const char *sig;
	struct checkpoint c;
	char tmp[PATH_MAX], why[160];
	uint64_t size;
	int r;

	if ((r = store_checkpoint_get(s, &size, &note)) < 0)
		return r == -ENOENT ? 0 : r;
	if (size <= *published)
		return 0;
	sig = strstr(note, "\n\n");
	/* One line a journal keeps, from which the note can be written out again. */
	if (sig && checkpoint_parse(note, (size_t)(sig + 1 - note), &c, why, sizeof(why)) == 0) {
		char b64[64];

		base64_encode(c.root, MERKLE_HASH_SIZE, b64);
		log_info("audit checkpoint: origin %s size %" PRIu64 " root %s time %" PRId64 " signature %.*s", c.origin,
			 c.size, b64, c.time, (int)strcspn(sig + 2, "\n"), sig + 2);
	}
	if (path) {
		snprintf(tmp, sizeof(tmp), "%s.new", path);
		unlink(tmp);
		if ((r = write_file_new(tmp, note, strlen(note), 0644)) < 0 || (r = file_replace(tmp, path)) < 0) {
			log_error("cannot write the checkpoint to '%s': %s", path, strerror(-r));
			return r;
		}
	}
	*published = size;
	return 0;
}
