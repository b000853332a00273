/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <openssl/evp.h>

#include "encode.h"
#include "fileio.h"
#include "keyref.h"
#include "log-key.h"
#include "note.h"
#include "ossl.h"
#include "secbuf.h"
#include "server-config.h"
#include "store.h"

bool log_key_is_note(const char *uri)
{
	static const char prefix[] = "PRIVATE+KEY+";
	const char *path = keyref_file(uri);
	char head[sizeof(prefix) - 1];
	FILE *f;
	bool note;

	if (!path)
		return false;
	/* A file that cannot be read is taken for the default kind: its load says why. */
	if (!(f = fopen(path, "re")))
		return true;
	note = fread(head, 1, sizeof(head), f) != sizeof(head) || memcmp(head, prefix, sizeof(head)) == 0;
	fclose(f);
	return note;
}

/* A note signer key's text in a file. */
static int note_file_load(const char *path, struct note_signer **ret, char *why, size_t why_size)
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

/* An EC key through keyref (a TPM's, a token's, a PEM file's): an ECDSA note signer named name. */
static int keyref_signer_load(const char *uri, const char *name, struct note_signer **ret, char *why,
			      size_t why_size)
{
	_cleanup_(EVP_PKEY_freep) EVP_PKEY *k = NULL;
	char reason[KEYREF_WHY_MAX], shown[KEYREF_WHY_MAX / 2];
	int r;

	keyref_display(uri, shown, sizeof(shown));
	if (!name) {
		snprintf(why, why_size, "log key '%s' is not a note signer key file: 'log_name' names the log its "
			 "checkpoints are of (set it in the configuration)", shown);
		return -EINVAL;
	}
	if ((r = keyref_load_private(uri, &k, reason, sizeof(reason))) < 0) {
		snprintf(why, why_size, "log key %s", reason);
		return r;
	}
	if ((r = note_signer_from_pkey(name, k, keyref_sign_init, ret, reason, sizeof(reason))) < 0) {
		snprintf(why, why_size, "log key '%s': %s", shown, reason);
		return r;
	}
	return 0;
}

int log_key_load(const char *uri, const char *name, struct note_signer **ret, char *why, size_t why_size)
{
	_cleanup_(note_signer_freep) struct note_signer *s = NULL;
	int r;

	if (!log_key_is_note(uri))
		return keyref_signer_load(uri, name, ret, why, why_size);
	if ((r = note_file_load(keyref_file(uri), &s, why, why_size)) < 0)
		return r;
	/* The file names its log itself: log_name, where set, says the same. */
	if (name && !streq(name, note_signer_verifier(s)->name)) {
		snprintf(why, why_size, "the log key '%s' is of the log '%s', not 'log_name' '%s'", uri,
			 note_signer_verifier(s)->name, name);
		return -EINVAL;
	}
	*ret = TAKE_PTR(s);
	return 0;
}

const char *log_key_next_name(const struct server_config *c, const char *uri, const struct note_signer *signer)
{
	/* A note file has its own, which the checks after the load hold to the log's. */
	return c->log_name ?: log_key_is_note(uri) ? NULL : note_signer_verifier(signer)->name;
}

int log_keys_load(const struct server_config *c, struct note_signer **ret_signer, struct note_signer **ret_next,
		  char *why, size_t why_size)
{
	_cleanup_(note_signer_freep) struct note_signer *signer = NULL, *next = NULL;
	const struct note_verifier *v, *w;
	char key[KEYREF_WHY_MAX / 2], key_next[KEYREF_WHY_MAX / 2];
	int r;

	/* Either may be a URI with a PIN in it: named as shown, never as given. */
	keyref_display(c->log_key, key, sizeof(key));
	if (c->log_key_next)
		keyref_display(c->log_key_next, key_next, sizeof(key_next));
	if ((r = log_key_load(c->log_key, c->log_name, &signer, why, why_size)) < 0)
		return r;
	v = note_signer_verifier(signer);
	/*
	 * The next key's file is the rotation: absent, none is under way (log-key retire removed it).
	 * A key in hardware has no file: named, it is the rotation, and of the log's name.
	 */
	if (c->log_key_next && (!keyref_file(c->log_key_next) || access(keyref_file(c->log_key_next), F_OK) == 0)) {
		if ((r = log_key_load(c->log_key_next, log_key_next_name(c, c->log_key_next, signer), &next, why,
				      why_size)) < 0)
			return r;
		w = note_signer_verifier(next);
		if (!streq(v->name, w->name)) {
			snprintf(why, why_size, "the log key '%s' is named otherwise than the log ('%s'): the next log key "
				 "keeps the log's name (log-key generate --name %s)", key_next, v->name, v->name);
			return -EINVAL;
		}
		if (log_key_same(signer, next)) {
			snprintf(why, why_size, "the next log key '%s' is the log key '%s' itself: a rotation needs a new "
				 "key (log-key generate)", key_next, key);
			return -EINVAL;
		}
	} else if (c->log_key_next && errno != ENOENT) {
		r = -errno;
		snprintf(why, why_size, "cannot examine the next log key '%s': %s", c->log_key_next, strerror(-r));
		return r;
	}
	*ret_signer = TAKE_PTR(signer);
	*ret_next = TAKE_PTR(next);
	return 0;
}

int log_keys_attach(struct store *s, const struct server_config *c, char *why, size_t why_size)
{
	struct note_signer *signer, *next;
	int r;

	if (!c->log_key)
		return 0;
	if ((r = log_keys_load(c, &signer, &next, why, why_size)) < 0)
		return r;
	store_set_log_signer(s, signer);
	/* Of the signer's name, log_keys_load saw to that. */
	return store_set_log_cosigner(s, next);
}

bool log_key_same(const struct note_signer *a, const struct note_signer *b)
{
	return (!a && !b) || (a && b && note_verifier_same_key(note_signer_verifier(a), note_signer_verifier(b)));
}

void log_key_label(const struct note_verifier *v, char ret[LOG_KEY_LABEL_MAX])
{
	uint8_t md[EVP_MAX_MD_SIZE];
	char hex[2 * EVP_MAX_MD_SIZE + 1];
	unsigned n = 0;

	/* The key id is 32 bits: the public key's SHA-256 beside it tells keys apart for good (an ECDSA key's: its DER). */
	if (EVP_Digest(v->key, v->key_size, md, &n, EVP_sha256(), NULL) != 1)
		n = 0;
	hex_encode(md, n, hex);
	snprintf(ret, LOG_KEY_LABEL_MAX, "%s+%08" PRIx32 " (sha256 %.16s)", v->name, v->id, n ? hex : "unknown");
}

/* The log-key-next record's reasons name the key it puts beside: log_keys_change reads it back. */
#define BESIDE " beside log key "
#define UNTIL " until log-key retire"
/* ... and the next key itself, between these two. */
#define NEXT "next log key "
#define SIGNS " signs every checkpoint"

struct lifecycle {
	char action[32];
	char *reasons;
};

static int lifecycle_last(const struct audit_rec *a, void *userdata)
{
	struct lifecycle *l = userdata;

	if ((!streq(a->action, "log-key-next") && !streq(a->action, "log-key-rotate") &&
	     !streq(a->action, "log-key-abandon")) || !streq(a->decision, "allow"))
		return 0;
	free(l->reasons);
	if (!(l->reasons = strdup(a->reasons)))
		return -ENOMEM;
	snprintf(l->action, sizeof(l->action), "%s", a->action);
	return 0;
}

/*
 * Whether the newest checkpoint is signed by this key alone: then no rotation is under way or
 * left unrecorded (the first checkpoint a lone next key signs covers its log-key-rotate record),
 * and the log need not be read, which at a million records is the start's longest step.
 */
static bool signed_alone(struct store *s, const struct note_signer *signer)
{
	_cleanup_free_ char *note = NULL;
	size_t text_size, n = 0;
	uint64_t size;
	char why[160];

	if (store_checkpoint_get(s, &size, &note) < 0 ||
	    note_open(note, strlen(note), note_signer_verifier(signer), &text_size, why, sizeof(why)) < 0)
		return false;
	/* After the text, one "\u2014 NAME SIG" line (U+2014) a signature. */
	for (const char *p = note + text_size; (p = strstr(p, "\n\xe2\x80\x94 ")); p++)
		n++;
	return n == 1;
}

int log_keys_change(struct store *s, const char **ret_action, char *what, size_t what_size)
{
	const struct note_signer *signer = store_log_signer(s), *next = store_log_cosigner(s);
	struct lifecycle l = {};
	char cur[LOG_KEY_LABEL_MAX], nxt[LOG_KEY_LABEL_MAX], named[LOG_KEY_LABEL_MAX + 32], was[LOG_KEY_LABEL_MAX];
	const char *p, *q;
	int r;

	if (!signer || (!next && signed_alone(s, signer)))
		return 0;
	if ((r = store_audit_foreach(s, lifecycle_last, &l)) < 0) {
		free(l.reasons);
		return r;
	}
	log_key_label(note_signer_verifier(signer), cur);
	if (next) {
		log_key_label(note_signer_verifier(next), nxt);
		snprintf(named, sizeof(named), "next log key %s", nxt);
		r = !streq(l.action, "log-key-next") || !strstr(l.reasons, named);
		if (r) {
			*ret_action = "log-key-next";
			snprintf(what, what_size, NEXT "%s" SIGNS BESIDE "%s" UNTIL, nxt, cur);
		}
		free(l.reasons);
		return r;
	}
	/* The key the last rotation record named next is the only one now: the swap. */
	snprintf(named, sizeof(named), "next log key %s", cur);
	r = streq(l.action, "log-key-next") && strstr(l.reasons, named);
	if (r) {
		p = strstr(l.reasons, BESIDE);
		q = p ? strstr(p, UNTIL) : NULL;
		if (p && q)
			snprintf(was, sizeof(was), "%.*s", (int)(q - p - strlen(BESIDE)), p + strlen(BESIDE));
		else
			was[0] = 0;
		*ret_action = "log-key-rotate";
		snprintf(what, what_size, "log key %s replaced by the next log key %s: checkpoints are signed by it alone",
			 was[0] ? was : "(unnamed)", cur);
	} else if (streq(l.action, "log-key-next")) {
		/* The key the log named next is gone and the log key is the one it was beside: the
		 * rotation was abandoned (its file removed, no log-key retire). */
		p = strncmp(l.reasons, NEXT, strlen(NEXT)) == 0 ? l.reasons + strlen(NEXT) : NULL;
		q = p ? strstr(p, SIGNS) : NULL;
		if (p && q)
			snprintf(was, sizeof(was), "%.*s", (int)(q - p), p);
		else
			was[0] = 0;
		*ret_action = "log-key-abandon";
		snprintf(what, what_size, NEXT "%s abandoned (its file is gone, log-key retire never ran): log key %s "
			 "signs alone", was[0] ? was : "(unnamed)", cur);
		r = 1;
	}
	free(l.reasons);
	return r;
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
