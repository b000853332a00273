/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * keystrap-server log-key generate|rotate|retire: the audit log's signing key (log-key.h), and
 * its rotation without a checkpoint that a node pinning either key cannot verify.
 *
 * rotate puts a new key at log_key_next (default LOG_KEY.next) by a rename: while that file
 * exists every checkpoint is signed by both keys, so nodes can move their pin ([Attest] LogKey=)
 * one by one. retire renames it over log_key: from then on the new key alone signs, and a node
 * still pinning the old one refuses the server's replies. Each step is an audit record committed
 * with a checkpoint signed by the keys it leaves in force (log_keys_change writes what the log
 * says; the server writes the same records for a rotation made by editing the configuration).
 * The file is renamed before the record is committed and renamed back if the commit fails: a
 * refusal leaves the keys as they were. A next key in hardware (handle:, pkcs11:) has no file:
 * log_key_next names it, which is the rotation; the swap to it is the configuration's log_key
 * pointed at it, the server recording the swap when it starts. show prints a configured key's
 * verifier key, which is how a key made in a TPM or on a token is pinned.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "admin.h"
#include "fileio.h"
#include "keyref.h"
#include "log-key.h"
#include "note.h"

static const char usage[] = "keystrap-server log-key generate FILE --name NAME\n"
			    "       keystrap-server log-key show --config FILE\n"
			    "       keystrap-server log-key show KEY --name NAME\n"
			    "       keystrap-server log-key rotate --next KEY --config FILE\n"
			    "       keystrap-server log-key retire --config FILE";

#define WHY_MAX (PATH_MAX + 2 * LOG_KEY_LABEL_MAX + 256)

static int generate(const char *path, const char *name)
{
	char vkey[NOTE_KEY_MAX], why[PATH_MAX + 256];

	if (log_key_generate(path, name, vkey, why, sizeof(why)) < 0)
		return admin_refuse("%s", why);
	/* What nodes pin ([Attest] LogKey=) and auditors pass to audit verify --log-key. */
	printf("%s\n", vkey);
	return 0;
}

static int rotate(const struct server_config *c, struct store *s, const char *file)
{
	_cleanup_(note_signer_freep) struct note_signer *fresh = NULL;
	const struct note_signer *cur = store_log_signer(s), *next = store_log_cosigner(s);
	const struct note_verifier *v, *w = note_signer_verifier(cur);
	const char *action, *before = NULL;
	char why[WHY_MAX], label[LOG_KEY_LABEL_MAX], what[WHY_MAX], vkey[NOTE_KEY_MAX], before_what[WHY_MAX];
	bool move = !next;
	int r;

	/* A key in hardware is not moved into place: the configuration names it (log_keys_attach loaded it). */
	if (!keyref_file(file) && (!c->log_key_next || !streq(file, c->log_key_next))) {
		keyref_display(file, label, sizeof(label));
		return admin_refuse("'%s' is a key in hardware: set log_key_next to it in the configuration (and "
				    "log_name), then run log-key rotate again", label);
	}
	/* As the server loads it: owner only, a C2SP signer key; a loose file is refused, not warned of. */
	if (log_key_load(file, log_key_next_name(c, file, cur), &fresh, why, sizeof(why)) < 0)
		return admin_denied(s, "log-key-next", "%s", why);
	v = note_signer_verifier(fresh);
	if (!streq(v->name, w->name))
		return admin_denied(s, "log-key-next", "the log key '%s' is named '%s', the log '%s': the next log key keeps "
				    "the log's name (log-key generate --name %s)", file, v->name, w->name, w->name);
	log_key_label(v, label);
	if (log_key_same(fresh, cur))
		return admin_denied(s, "log-key-next", "'%s' is the log key in force, %s: a rotation needs a new key "
				    "(log-key generate)", file, label);
	if (next && !log_key_same(fresh, next)) {
		char shown[KEYREF_WHY_MAX / 2];

		log_key_label(note_signer_verifier(next), label);
		keyref_display(c->log_key_next, shown, sizeof(shown));
		return admin_denied(s, "log-key-next", "a rotation to the next log key %s ('%s') is under way: log-key "
				    "retire finishes it before another begins", label, shown);
	}
	if (move && keyref_file(c->log_key) && (r = file_owner_like(file, keyref_file(c->log_key))) < 0)
		return admin_refuse("cannot give '%s' the owner of '%s': %s", file, c->log_key, strerror(-r));
	note_verifier_format(v, vkey);
	/* What the log does not say yet of the key in force (an earlier rotation abandoned, its next
	 * key's file removed) goes on record before this rotation's, or no server would ever write it. */
	if (move && (r = log_keys_change(s, &before, before_what, sizeof(before_what))) <= 0) {
		if (r < 0)
			return admin_refuse("cannot read the audit log: %s", strerror(-r));
		before = NULL;
	}
	/* The commit signs with both keys: its checkpoint is the first of the overlap. */
	if (move && (r = store_set_log_cosigner(s, TAKE_PTR(fresh))) < 0)
		return admin_refuse("cannot take '%s' as the next log key: %s", file, strerror(-r));
	if ((r = log_keys_change(s, &action, what, sizeof(what))) < 0)
		return admin_refuse("cannot read the audit log: %s", strerror(-r));
	if (r == 0) {
		printf("the next log key %s is in place and on record already\nnodes pin: %s\n", label, vkey);
		return 0;
	}
	if ((r = store_begin(s)) < 0)
		return admin_refuse("cannot write to the store: %s; the log key is unchanged", strerror(-r));
	r = before ? admin_audit(s, before, "allow", before_what) : 0;
	if (r >= 0)
		r = admin_audit(s, action, "allow", what);
	if (r >= 0 && move && (r = file_replace(file, c->log_key_next)) < 0) {
		store_rollback(s);
		return admin_refuse("cannot move '%s' to '%s': %s (the next log key goes beside the log key, on its file "
				    "system); the log key is unchanged", file, c->log_key_next, strerror(-r));
	}
	if (r >= 0)
		r = store_commit(s);
	if (r < 0) {
		store_rollback(s);
		if (move && file_replace(c->log_key_next, file) < 0)
			return admin_refuse("the rotation's record could not be committed: %s, and '%s' could not be moved "
					    "back to '%s' (move it back yourself)", strerror(-r), c->log_key_next, file);
		return admin_refuse("the rotation's record could not be committed: %s; the log key is unchanged",
				    strerror(-r));
	}
	printf("%s\nreload the server (systemctl reload keystrap-server); then pin the new key on every node "
	       "([Attest] LogKey=) and run log-key retire\nnodes pin: %s\n", what, vkey);
	return 0;
}

static int retire(const struct server_config *c, struct store *s)
{
	_cleanup_(note_signer_freep) struct note_signer *fresh = NULL;
	const char *action;
	char why[WHY_MAX], what[WHY_MAX];
	int r;

	if (!store_log_cosigner(s))
		return admin_denied(s, "log-key-rotate", "nothing to retire: there is no next log key ('%s' does not exist; "
				    "log-key rotate puts one there)", c->log_key_next);
	/* A rename cannot put a key in hardware in place, nor replace one: the configuration does. */
	if (!keyref_file(c->log_key) || !keyref_file(c->log_key_next)) {
		keyref_display(c->log_key_next, why, sizeof(why));
		return admin_refuse("the log key is in hardware, or its next one: point log_key at '%s', set log_name "
				    "('%s') and remove log_key_next in the configuration, then restart the server: it "
				    "records the swap", why, note_signer_verifier(store_log_signer(s))->name);
	}
	/* After the rename the next key is the log key: a key file that is no note names its log by log_name. */
	if (!c->log_name && !log_key_is_note(c->log_key_next))
		return admin_refuse("'%s' is not a note signer key file: set log_name ('%s') in the configuration first",
				    c->log_key_next, note_signer_verifier(store_log_signer(s))->name);
	/* The store owns its cosigner: the key that becomes the signer is read again. */
	if (log_key_load(c->log_key_next, log_key_next_name(c, c->log_key_next, store_log_signer(s)), &fresh, why,
			 sizeof(why)) < 0)
		return admin_denied(s, "log-key-rotate", "%s", why);
	if ((r = store_begin(s)) < 0)
		return admin_refuse("cannot write to the store: %s; the log key is unchanged", strerror(-r));
	/* A next key placed by hand and never seen by a server is named before the swap to it. */
	r = log_keys_change(s, &action, what, sizeof(what));
	if (r > 0)
		r = admin_audit(s, action, "allow", what);
	if (r >= 0) {
		store_set_log_signer(s, TAKE_PTR(fresh));
		store_set_log_cosigner(s, NULL);
		if ((r = log_keys_change(s, &action, what, sizeof(what))) == 0)
			r = -EPROTO; /* the swap is always new to the log here */
	}
	if (r >= 0)
		r = admin_audit(s, action, "allow", what);
	if (r < 0) {
		store_rollback(s);
		return admin_refuse("the log key is not retired: %s", strerror(-r));
	}
	if ((r = file_replace(c->log_key_next, c->log_key)) < 0) {
		store_rollback(s);
		return admin_refuse("cannot move '%s' to '%s': %s; the log key is unchanged", c->log_key_next, c->log_key,
				    strerror(-r));
	}
	if ((r = store_commit(s)) < 0) {
		store_rollback(s);
		return admin_refuse("the next log key is the log key now, but the swap's record could not be committed: %s "
				    "(the server records it when it starts)", strerror(-r));
	}
	printf("%s\nreload the server (systemctl reload keystrap-server): nodes still pinning the old key refuse "
	       "its replies from now on\n", what);
	return 0;
}

/* The verifier key of the configuration's log key, or of KEY named name (a next key, one not configured yet): what nodes pin. */
static int show(const char *config, const char *key, const char *name)
{
	_cleanup_server_config_ struct server_config *c = NULL;
	_cleanup_(note_signer_freep) struct note_signer *signer = NULL, *next = NULL;
	char why[WHY_MAX], vkey[NOTE_KEY_MAX];
	int r;

	if (key) {
		if (log_key_load(key, name, &signer, why, sizeof(why)) < 0)
			return admin_refuse("%s", why);
	} else {
		if ((r = server_config_load(config, &c)) < 0)
			return 1;
		if (!c->log_key)
			return admin_refuse("%s sets no log_key: the log is not signed", config);
		if (log_keys_load(c, &signer, &next, why, sizeof(why)) < 0)
			return admin_refuse("%s", why);
	}
	note_verifier_format(note_signer_verifier(signer), vkey);
	printf("%s\n", vkey);
	return 0;
}

int cmd_log_key(int argc, char **argv)
{
	static const struct option opts[] = { { "name", required_argument, NULL, 'n' },
					      { "next", required_argument, NULL, 'N' },
					      { "config", required_argument, NULL, 'c' },
					      { "help", no_argument, NULL, 'h' },
					      {} };
	_cleanup_server_config_ struct server_config *c = NULL;
	_cleanup_store_ struct store *s = NULL;
	const char *name = NULL, *next = NULL, *config = NULL, *verb;
	int opt, r;

	while ((opt = getopt_long(argc, argv, "h", opts, NULL)) >= 0)
		switch (opt) {
		case 'n': name = optarg; break;
		case 'N': next = optarg; break;
		case 'c': config = optarg; break;
		case 'h': printf("Usage: %s\n", usage); return EXIT_HELP;
		default: goto bad;
		}
	if (optind >= argc)
		goto bad;
	verb = argv[optind];
	if (streq(verb, "generate") && argc - optind == 2 && name && !next && !config)
		return generate(argv[optind + 1], name);
	if (streq(verb, "show") && argc - optind == 2 && name && !next && !config)
		return show(NULL, argv[optind + 1], name);
	if (streq(verb, "show") && argc - optind == 1 && !name && !next && config)
		return show(config, NULL, NULL);
	if (argc - optind != 1 || name || !config || !(streq(verb, "rotate") ? !!next : streq(verb, "retire") && !next))
		goto bad;
	if ((r = admin_load(config, &c, &s)) != 0)
		return r;
	if (!c->log_key)
		return admin_refuse("%s sets no log_key: there is no log key to rotate (log-key generate, then set it)",
				    config);
	return streq(verb, "rotate") ? rotate(c, s, next) : retire(c, s);
bad:
	fprintf(stderr, "Usage: %s\n", usage);
	return EXIT_USAGE;
}
