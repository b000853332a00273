/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stddef.h>

struct note_signer;
struct store;

/*
 * The audit log's signing key, never in the database: a C2SP note signer key file
 * ("PRIVATE+KEY+NAME+ID+KEY", Ed25519, owner only), or an EC key named as keyref.h names keys
 * (handle:, pkcs11:, a TSS2 or other PEM private key file) that signs as note type 0x02 (ECDSA)
 * under name, the log's (log_name; such a key has no name of its own). name NULL: a note file's
 * own; given, a note file must bear it. why: one line naming the key (never a PIN).
 */
int log_key_load(const char *uri, const char *name, struct note_signer **ret, char *why, size_t why_size);
/* Whether uri names a note signer key file (or a file not there to read: the default kind). */
bool log_key_is_note(const char *uri);
struct server_config;
/* The name a next log key at uri signs under: log_name, else (a key in hardware has none) the log key's; NULL: a note file's own. */
const char *log_key_next_name(const struct server_config *c, const char *uri, const struct note_signer *signer);
struct server_config;
/*
 * The configuration's log_key and, when its file exists (a key in hardware: when it is named),
 * log_key_next (a rotation under way: of the log key's name, another key): 0 with *ret_next NULL when there is none, or < 0 with
 * why (one line). c->log_key must be set.
 */
int log_keys_load(const struct server_config *c, struct note_signer **ret_signer, struct note_signer **ret_next,
		  char *why, size_t why_size);
/* The same, set on the store (its signer and cosigner). No log_key: nothing set, 0. */
int log_keys_attach(struct store *s, const struct server_config *c, char *why, size_t why_size);

/* Whether a and b are the same key (both NULL: the same, none). */
bool log_key_same(const struct note_signer *a, const struct note_signer *b);

struct note_verifier;
#define LOG_KEY_LABEL_MAX (128 + 48)
/* "NAME+KEYID (sha256 HEX16)": a log key as records and messages name it (its public half only). */
void log_key_label(const struct note_verifier *v, char ret[LOG_KEY_LABEL_MAX]);
/*
 * The log key's lifecycle in the audit log: the store's signer and cosigner against the newest
 * log-key-next/log-key-rotate/log-key-abandon record. 1 with *ret_action and what (the record's
 * reasons, without who) when the log does not say it yet: a next key it has not named
 * (log-key-next), the key it named next now the only one (log-key-rotate), or the key it named
 * next gone with the log key unchanged (log-key-abandon); 0 when it does. Whoever appends the
 * record says who did it: the server at start, log-key rotate and retire.
 */
int log_keys_change(struct store *s, const char **ret_action, char *what, size_t what_size);
/* keystrap-server log-key generate: the new file (O_EXCL, 0600) and the verifier key on ret_vkey. */
int log_key_generate(const char *path, const char *name, char *ret_vkey, char *why, size_t why_size);
