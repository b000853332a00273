/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "macro.h"

/*
 * keystrap-server's durable state behind one small interface: the node registry, single-use
 * nonces, the hash-chained audit log and the secrets (encrypted under a KEK kept outside it,
 * secrets.c). SQLite (store-sqlite.c) and PostgreSQL (store-pg.c, for several servers sharing
 * one database) implement the same functions over the same schema; store.c picks one from the
 * database spec, so nothing above this header knows which it is.
 *
 * Writes happen inside store_begin/store_commit: a commit returns only once the transaction is
 * durable (SQLite: WAL with synchronous=FULL; a batch's after store_defer_sync: once store_sync
 * has returned), and nothing that releases anything is replied before it. Functions return
 * negative errno; -ENOENT for "no such row".
 */

struct store;

enum node_state { NODE_REQUESTED, NODE_APPROVED, NODE_REVOKED, _NODE_STATE_MAX };
const char *node_state_name(enum node_state s);

#define EK_HASH_HEX 64
#define NODE_ID_MAX 64
#define GROUP_MAX 32
#define SECRET_VALUE_MAX 4096

struct node_rec {
	char ek_hash[EK_HASH_HEX + 1];  /* SHA-256 of the EK's marshalled TPMT_PUBLIC, hex */
	char node_id[NODE_ID_MAX + 1];  /* empty until approved */
	char group[GROUP_MAX + 1];      /* which secrets the policy gives it; "default" unless set */
	enum node_state state;
	int64_t requested_us, changed_us;
	char peer[64];                  /* where the enrollment request came from */
	int64_t reset_count, restart_count; /* last accepted quote's; -1: none yet */
	int64_t attested_us;            /* when its last certificate was issued; 0: never */
	char cert_serial[41];           /* that certificate's serial, hex; empty: none */
	int64_t cert_not_after;         /* and its expiry, Unix seconds; 0: none */
};

struct nonce_rec {
	char session[33];
	uint8_t nonce[32];
	/* SHA-256 of the expected proof of activation (attest_proof_verifier): never the secret,
	 * which leaves the server in the credential only. Wiped when the nonce is taken. */
	uint8_t verifier[32];
	char ek_hash[EK_HASH_HEX + 1];
	uint8_t ak_pub[1024];
	size_t ak_pub_size;
	int64_t expires_us;
	bool used;
};

/* One audit record; seq, prev_hash and hash are filled in by store_audit_append. */
struct audit_rec {
	int64_t seq;
	int64_t time_us;
	const char *peer, *ek_hash, *node_id, *action, *decision, *reasons;
	uint8_t prev_hash[32], hash[32];
};

/*
 * "PATH" or "sqlite:PATH" (SQLite), "postgresql://..." or "postgres://..." (a libpq connection
 * URI); creates the schema when absent. kek names the key-encryption key (kek_load): the store
 * is refused unless that key opens its KEK record (-EKEYREJECTED), and a store that has none
 * yet is bound to it. Secrets an earlier version kept in clear are encrypted under it here, in
 * one transaction, with an audit record. On failure logs one line naming the store or the KEK
 * and why.
 */
int store_open(const char *spec, const char *kek, struct store **ret);
/* store_open's one line in why instead of the log. */
int store_open_why(const char *spec, const char *kek, struct store **ret, char *why, size_t why_size);
/* The spec fit to print: a password in a URI (user:PASSWORD@ or password=) is masked. */
const char *store_spec_display(const char *spec, char *buf, size_t size);
void store_close(struct store *s);
static inline void store_closep(struct store **s)
{
	store_close(*s);
}
#define _cleanup_store_ _cleanup_(store_closep)

/*
 * Whether a decision could be committed now: a transaction of its own rewrites one row and
 * commits durably, as a decision's would, so a full disk or a database that cannot write
 * fails it. Not inside another transaction (-EBUSY).
 */
int store_probe(struct store *s, int64_t now_us);

int store_begin(struct store *s);  /* exclusive writer until commit/rollback, across every server sharing the store */
int store_commit(struct store *s); /* durable on return; sequences first (store_sequence) */
void store_rollback(struct store *s);

/*
 * A batch of requests (serve.c): a transaction that does not take the writer lock when it
 * begins, so that instances sharing a PostgreSQL store verify their requests at once. Its
 * audit records wait, queued in order (seq 0), until store_sequence: it takes the writer lock
 * (PostgreSQL's advisory lock; SQLite's BEGIN IMMEDIATE took it already) and appends them to
 * the chain and the tree, as late as possible before the commit. What a batch writes besides
 * the log must be safe without the lock: single statements that decide by their own condition
 * or a constraint (the nonce spent by one conditional UPDATE). store_commit sequences a batch
 * nobody sequenced. From store_sequence on the transaction is an ordinary one.
 */
int store_begin_batch(struct store *s);
int store_sequence(struct store *s);

/*
 * Batches whose durability the caller completes off its thread (serve.c's group commit): from
 * here on, the commit of a transaction store_begin_batch began returns once its WAL frames are
 * written, not once they are on disk (SQLite's synchronous=NORMAL for that transaction only;
 * every other commit stays durable on return, and a checkpoint still syncs the WAL before it
 * and the database after). Nothing such a commit decided may leave the process before
 * store_sync(*ret_path) has returned 0, called after that commit returned. -EOPNOTSUPP:
 * commits are durable on return already (PostgreSQL, an in-memory database); nothing changed.
 */
int store_defer_sync(struct store *s, char **ret_path);
/* Every commit that returned before it, made durable: fdatasync of the file store_defer_sync
 * named. Touches no store: any thread. */
int store_sync(const char *path);

int store_node_get(struct store *s, const char *ek_hash, struct node_rec *ret);
/* The node an operator named by its id (node approve/revoke/show accept either). -ENOENT: none. */
int store_node_get_by_id(struct store *s, const char *node_id, struct node_rec *ret);
/* Records a pending enrollment request (state requested); -EEXIST when the EK is known
 * (PostgreSQL: 0, as when another instance's request for it won the race to insert). */
int store_node_request(struct store *s, const char *ek_hash, const char *peer, int64_t now_us);
/* node_id and group NULL: unchanged. */
int store_node_set_state(struct store *s, const char *ek_hash, enum node_state state, const char *node_id,
			 const char *group, int64_t now_us);
int store_node_set_counters(struct store *s, const char *ek_hash, int64_t reset_count, int64_t restart_count);
/* The certificate just issued to it, in the attestation's transaction: node list shows them, and it
 * is kept for the CRL (store_revoked_foreach) until an hour after it expires. -ENOENT: no such
 * node (PostgreSQL: or not approved any more, revoked by another process meanwhile). */
int store_node_set_certificate(struct store *s, const char *ek_hash, int64_t attested_us, const char *serial,
			       int64_t not_before, int64_t not_after);

struct cert_rec {
	char serial[41];
	int64_t not_before, not_after; /* Unix seconds; not_before 0: recorded before it was kept */
};
/* A node's certificates the store keeps (store_node_set_certificate), newest first, at most limit. */
int store_node_certificates(struct store *s, const char *ek_hash, int64_t limit,
			    int (*cb)(const struct cert_rec *c, void *userdata), void *userdata);
/*
 * What a CRL lists: the serial (hex) of every certificate of a revoked node that is still valid
 * at now (Unix seconds) — each one issued since the store kept them, and the node's last — and
 * when its node was revoked. Any order; cb returning < 0 stops.
 */
int store_revoked_foreach(struct store *s, int64_t now,
			  int (*cb)(const char *serial, int64_t revoked_us, void *userdata), void *userdata);
/* The revoked set's version: how many nodes are revoked and the latest revocation's time. Another
 * process's revocation or reinstatement changes it; a cached CRL of another version is stale. */
int store_revoked_version(struct store *s, int64_t ret[2]);
/* The next CRL number (1, 2, ...: never one twice, across every server sharing the store), in
 * the caller's transaction, else one of its own. */
int store_crl_number_next(struct store *s, int64_t *ret);
/* Every node, by request time; cb returning < 0 stops. */
int store_node_foreach(struct store *s, int (*cb)(const struct node_rec *n, void *userdata), void *userdata);
/* One page of store_node_foreach's order: at most limit nodes after the first offset (the dashboard). */
int store_node_page(struct store *s, int64_t offset, int64_t limit, int (*cb)(const struct node_rec *n, void *userdata),
		    void *userdata);
/* How many nodes the registry holds in each state, as this transaction sees it. */
int store_node_count(struct store *s, int64_t ret[_NODE_STATE_MAX]);

/* How long ago an approved node last attested: under an hour, a day, 7 days, 30 days, longer, never. */
enum node_age { NODE_AGE_1H, NODE_AGE_1D, NODE_AGE_7D, NODE_AGE_30D, NODE_AGE_OLDER, NODE_AGE_NEVER, _NODE_AGE_MAX };
struct node_census {
	int64_t state[_NODE_STATE_MAX];
	int64_t attested[_NODE_AGE_MAX]; /* approved nodes, by the age of their last certificate */
	int64_t overdue;                 /* approved nodes whose last certificate expired: not renewed in time */
	int64_t expiring;                /* approved nodes whose certificate expires within a week */
};
/* One pass over the registry: what the node gauges of /metrics show, at now_us. */
int store_node_census(struct store *s, int64_t now_us, struct node_census *ret);
/* The node id is unique: -EEXIST when another EK holds it. */
int store_node_id_taken(struct store *s, const char *node_id, const char *except_ek_hash);

/* Expired rows older than a day are pruned here. */
int store_nonce_put(struct store *s, const struct nonce_rec *n, int64_t now_us);
/* A session's nonce as it stands, used or expired included; changes nothing. -ENOENT unknown. */
int store_nonce_get(struct store *s, const char *session, struct nonce_rec *ret);
/*
 * Spends a session's nonce: marks it used and wipes its verifier in the one statement that finds
 * it unused and unexpired, so it is spent at most once however many requests race. -EALREADY
 * when it was not there to spend (used, expired or unknown).
 */
int store_nonce_take(struct store *s, const char *session, int64_t now_us);

/*
 * Policies are kept, never overwritten: the current one is the highest version. put refuses
 * (-ESTALE) a version not above the current one, in the same transaction that inserts it (the
 * caller's, else one of its own), so two servers racing cannot both win with stale versions.
 * signatures is what verified it (JSON), so a server re-verifies what it reads back.
 */
int store_policy_put(struct store *s, int64_t version, const char *text, size_t text_size, const char *signatures,
		     int64_t now_us);
/*
 * The signatures of a stored version replaced by a set that contains them (an operator key
 * rotation adds the new keys' signatures over the same bytes); the text is never rewritten.
 * In the caller's transaction. -ENOENT: no such version.
 */
int store_policy_resign(struct store *s, int64_t version, const char *signatures);
/* -ENOENT: no policy loaded yet. ret_text/ret_signatures malloc'ed, NUL-terminated; either may be NULL. */
int store_policy_current(struct store *s, int64_t *ret_version, char **ret_text, size_t *ret_size,
			 char **ret_signatures);

/* One version as kept (policy diff): -ENOENT when there is none. Outputs malloc'ed, NUL-terminated. */
int store_policy_get(struct store *s, int64_t version, char **ret_text, size_t *ret_size, char **ret_signatures);

/*
 * A node's last attestation refused for its boot state (the quote verified, the logs replayed,
 * the policy did not allow it): what it carried, as evidence_judge writes it, for policy draft.
 * Nothing secret. One row per node, replaced by its next such refusal, written with the
 * refusal's audit record (audit_seq) in one transaction; evidence at most REFUSAL_MAX bytes.
 */
#define REFUSAL_MAX (64u << 10)
struct refusal_rec {
	char ek_hash[EK_HASH_HEX + 1];
	int64_t audit_seq;      /* the refusal's audit record */
	int64_t time_us;
	int64_t policy_version; /* the policy that refused it */
	char *evidence;         /* JSON; malloc'ed by get */
};
int store_refusal_put(struct store *s, const struct refusal_rec *r);
/* A node's (ek_hash), or the one an audit record is (ek_hash NULL: audit_seq). -ENOENT: none. */
int store_refusal_get(struct store *s, const char *ek_hash, int64_t audit_seq, struct refusal_rec *ret);

/*
 * Secret payloads, kept as versions: every set adds one (1, 2, ...), a node gets the newest,
 * and a version number is never used twice for a name, deleted or not. Each version's value is
 * sealed under a data key of its own, wrapped by the KEK (envelope.h); the associated data is
 * the version's identity, so a value or a wrapped key moved to another name or version does
 * not open (-EBADMSG), and never yields another secret.
 */
#define SECRET_NAME_MAX 64
struct secbuf;

struct secret_info {
	const char *name;
	int64_t version;
	int64_t created_us;
	int64_t deleted_us; /* 0: not deleted */
	int64_t size;       /* of the value, in bytes */
};

/* In the caller's transaction, else one of its own; ret_version may be NULL. */
int store_secret_put(struct store *s, const char *name, const struct secbuf *value, int64_t now_us,
		     int64_t *ret_version);
/*
 * The newest version's value: -ENOENT (never set, or deleted), -EBADMSG (its row does not
 * decrypt: altered, or moved from another name or version), -EKEYREJECTED (wrapped by a KEK
 * other than this store's, even after loading the KEK again from its name, as a server must
 * once another process rotated the KEK). ret_version may be NULL.
 */
int store_secret_get(struct store *s, const char *name, struct secbuf **ret, int64_t *ret_version);

/*
 * An attestation-gated keyslot's server share: one per node (ek_hash) and volume (a LUKS2 UUID),
 * replaced by the next put, sealed as a secret version is under a data key of its own wrapped by
 * the KEK; the associated data names the EK hash and the volume, so a row moved to another node
 * or volume does not open (-EBADMSG). put runs in the caller's transaction (else one of its
 * own); get: -ENOENT when none is stored, -EKEYREJECTED when another KEK wrapped it.
 */
int store_disk_share_put(struct store *s, const char *ek_hash, const char *volume, const struct secbuf *share,
			 int64_t now_us);
int store_disk_share_get(struct store *s, const char *ek_hash, const char *volume, struct secbuf **ret);
/* name NULL: the newest version of each secret, by name; else every version of name, oldest first. */
int store_secret_foreach(struct store *s, const char *name, int (*cb)(const struct secret_info *i, void *userdata),
			 void *userdata);
/* Wipes every version's value and data key (the versions stay listed, as deleted). -ENOENT: none left. */
int store_secret_delete(struct store *s, const char *name, int64_t now_us, int64_t *ret_versions);
/*
 * Opens every version not deleted, as a node's read would: on the first that does not, why
 * names it (one line) and its error is returned. ret_count: how many opened.
 */
int store_secret_verify(struct store *s, int64_t *ret_count, char *why, size_t why_size);

struct kek;
/* The KEK the store was opened with (and reloaded into). */
struct kek *store_kek(struct store *s);
/*
 * Re-wraps every data key and the KEK record from the store's KEK to new_kek, in the caller's
 * transaction (-EBUSY outside one), so that the store is under one KEK or the other, never
 * both. -EALREADY: new_kek is the store's KEK already. ret_count: the data keys re-wrapped.
 */
int store_kek_rotate(struct store *s, struct kek *new_kek, int64_t *ret_count, char *why, size_t why_size);

/*
 * Appends rec to the chain (in the caller's transaction, else in one of its own): fills seq,
 * prev_hash, hash (in a batch before store_sequence: queued, and seq left 0). Text is stored
 * as valid UTF-8: a byte that starts no valid sequence becomes U+FFFD.
 */
int store_audit_append(struct store *s, struct audit_rec *rec);
/*
 * The same in the caller's transaction (-EBUSY outside one), queued in a batch's: ticket names
 * the record for store_audit_sequenced, which gives it as stored (seq, hashes, text) once it is
 * appended (-EAGAIN before store_sequence). Its pointers last until commit or rollback.
 */
int store_audit_add(struct store *s, struct audit_rec *rec, size_t *ret_ticket);
int store_audit_sequenced(struct store *s, size_t ticket, const struct audit_rec **ret);
/* The newest record's seq (0: none). */
int store_audit_last_seq(struct store *s, int64_t *ret);
/* Every record in seq order as stored (the hashes are not checked here). */
int store_audit_foreach(struct store *s, int (*cb)(const struct audit_rec *r, void *userdata), void *userdata);
/* The newest (at most limit) records about one EK, newest first: node show's history (indexed). */
int store_audit_foreach_ek(struct store *s, const char *ek_hash, int64_t limit,
			   int (*cb)(const struct audit_rec *r, void *userdata), void *userdata);
/* The same of its disk-share records only (store, release; allowed or refused), on an index of
 * those records alone: a node's page finds them however many other records it has. */
int store_audit_shares_ek(struct store *s, const char *ek_hash, int64_t limit,
			  int (*cb)(const struct audit_rec *r, void *userdata), void *userdata);

/*
 * The transparency log over the records (audit-log.c). Leaves are audit_leaf_of's bytes; the
 * log's size is its number of leaves (= the newest seq).
 */
#include "merkle.h"
struct note_signer;
/* Each commit that appended records then signs a checkpoint with it (the store owns it). */
void store_set_log_signer(struct store *s, struct note_signer *signer);
const struct note_signer *store_log_signer(struct store *s);
/* A second key that signs every checkpoint too (the next log key), of the same name: -EINVAL
 * otherwise (signer freed). NULL: none. */
int store_set_log_cosigner(struct store *s, struct note_signer *signer);
const struct note_signer *store_log_cosigner(struct store *s);
int audit_leaf_of(const struct audit_rec *r, uint8_t *ret, size_t *ret_size);
int audit_leaf_hash_of(const struct audit_rec *r, merkle_hash ret);
int store_log_size(struct store *s, uint64_t *ret);
int store_log_root(struct store *s, uint64_t size, merkle_hash ret);
int store_log_prove_inclusion(struct store *s, uint64_t index, uint64_t size, merkle_hash ret[MERKLE_PROOF_MAX],
			      size_t *ret_n);
int store_log_prove_consistency(struct store *s, uint64_t first, uint64_t second, merkle_hash ret[MERKLE_PROOF_MAX],
				size_t *ret_n);
/* The newest signed checkpoint (malloc'ed note). -ENOENT: none yet. */
int store_checkpoint_get(struct store *s, uint64_t *ret_size, char **ret_note);
/* Signs one of the tree as it is now, in the caller's transaction. -ENOKEY: no signer set. */
int store_checkpoint_sign(struct store *s);

/* What the log says about the policy: its last policy load (a store's policy rows must agree). */
struct policy_logged {
	int64_t version, seq;
	bool has_digest;    /* SHA-256 of the policy's text, in records since the transparency log */
	uint8_t digest[32];
};
/* -ENOENT: no policy was ever loaded; -EBADMSG: that record does not say which. */
int store_policy_logged(struct store *s, struct policy_logged *ret);
/* The newest (at most limit) records before seq before (INT64_MAX: the newest), newest first (by the key). */
int store_audit_page(struct store *s, int64_t before, int64_t limit, int (*cb)(const struct audit_rec *r, void *userdata),
		     void *userdata);

/* The record's hash: SHA-256(prev_hash || each field length-prefixed). Pure. */
int audit_rec_hash(const struct audit_rec *r, uint8_t ret[32]);
