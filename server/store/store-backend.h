/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * What a store backend implements: store.c picks one in store_open from the database spec and
 * forwards every store.h call through its table, so nothing above store.h knows the backend.
 * Each backend's state begins with struct store.
 */
#include <stdbool.h>

#include "envelope.h"
#include "store.h"

/* A secret version as stored: nothing here is secret without the KEK. Deleted: both blobs empty. */
struct secret_row {
	const char *name;
	int64_t version, created_us, deleted_us, size;
	const char *kek_id; /* the KEK that wrapped the data key (kek_id) */
	const uint8_t *wrapped_key;
	size_t wrapped_key_size;
	const uint8_t *ciphertext;
	size_t ciphertext_size;
};

/* An attestation-gated keyslot's server share, sealed as a secret version is (secrets.c). */
struct disk_share_row {
	const char *ek_hash, *volume;
	int64_t created_us;
	const char *kek_id;
	const uint8_t *wrapped_key;
	size_t wrapped_key_size;
	const uint8_t *ciphertext;
	size_t ciphertext_size;
};

struct store_ops {
	int (*open)(const char *spec, struct store **ret, char *reason, size_t reason_size);
	void (*close)(struct store *s);
	int (*begin)(struct store *s);
	/* A batch's transaction (store_begin_batch), and the writer lock taken in it later
	 * (store_sequence). NULL both: begin already takes the lock (SQLite's single writer). */
	int (*begin_batch)(struct store *s);
	int (*lock)(struct store *s);
	int (*commit)(struct store *s);
	/* store_defer_sync's file, or -EOPNOTSUPP; and whether commits wait for the disk (outside
	 * a transaction). NULL both: every commit is durable on return. */
	int (*sync_path)(struct store *s, char **ret_path);
	int (*set_durable)(struct store *s, bool durable);
	void (*rollback)(struct store *s);
	bool (*in_transaction)(struct store *s); /* between begin and commit/rollback */
	int (*node_get)(struct store *s, const char *ek_hash, struct node_rec *ret);
	int (*node_get_by_id)(struct store *s, const char *node_id, struct node_rec *ret);
	int (*node_set_certificate)(struct store *s, const char *ek_hash, int64_t attested_us, const char *serial,
				    int64_t not_before, int64_t not_after);
	int (*node_certificates)(struct store *s, const char *ek_hash, int64_t limit,
				 int (*cb)(const struct cert_rec *c, void *userdata), void *userdata);
	int (*node_request)(struct store *s, const char *ek_hash, const char *peer, int64_t now_us);
	int (*node_set_state)(struct store *s, const char *ek_hash, enum node_state state, const char *node_id,
			      const char *group, int64_t now_us);
	int (*node_set_counters)(struct store *s, const char *ek_hash, int64_t reset_count, int64_t restart_count);
	int (*node_foreach)(struct store *s, int (*cb)(const struct node_rec *n, void *userdata), void *userdata);
	int (*node_id_taken)(struct store *s, const char *node_id, const char *except_ek_hash);
	int (*nonce_put)(struct store *s, const struct nonce_rec *n, int64_t now_us);
	int (*nonce_get)(struct store *s, const char *session, struct nonce_rec *ret);
	int (*nonce_take)(struct store *s, const char *session, int64_t now_us);
	/* store.c checks the version (under the writer lock) and then inserts. */
	int (*policy_insert)(struct store *s, int64_t version, const char *text, size_t text_size,
			     const char *signatures, int64_t now_us);
	/* Every output is required here; store.c hands out what its caller asked for. */
	int (*policy_current)(struct store *s, int64_t *ret_version, char **ret_text, size_t *ret_size,
			      char **ret_signatures);
	/* -ENOENT: no such version. */
	int (*policy_resign)(struct store *s, int64_t version, const char *signatures);
	int (*policy_get)(struct store *s, int64_t version, char **ret_text, size_t *ret_size, char **ret_signatures);
	int (*refusal_put)(struct store *s, const struct refusal_rec *r);
	int (*refusal_get)(struct store *s, const char *ek_hash, int64_t audit_seq, struct refusal_rec *ret);
	int (*secret_insert)(struct store *s, const struct secret_row *row); /* -EEXIST: that version exists */
	/* name NULL: each secret's newest version, by name; else name's versions, oldest first
	 * (newest only: just the newest). The row's pointers last until cb returns. */
	int (*secret_foreach)(struct store *s, const char *name, bool newest_only,
			      int (*cb)(const struct secret_row *row, void *userdata), void *userdata);
	/* One row per (EK, volume): put replaces it. foreach: that one (-ENOENT: none), or every row
	 * when ek_hash is NULL (a KEK rotation). The row's pointers last until cb returns. */
	int (*disk_share_put)(struct store *s, const struct disk_share_row *row);
	int (*disk_share_foreach)(struct store *s, const char *ek_hash, const char *volume,
				  int (*cb)(const struct disk_share_row *row, void *userdata), void *userdata);
	int (*secret_rewrap)(struct store *s, const char *name, int64_t version, const char *kek_id,
			     const uint8_t *wrapped_key, size_t size);
	/* Empties the blobs of name's versions not deleted yet: how many, or < 0. */
	int (*secret_delete)(struct store *s, const char *name, int64_t now_us);
	/* The KEK record: the id of the store's KEK and a value wrapped by it. -ENOENT: none yet. */
	int (*kek_get)(struct store *s, char ret_id[KEK_ID_HEX + 1], uint8_t **ret_check, size_t *ret_size);
	int (*kek_put)(struct store *s, const char *kek_id, const uint8_t *check, size_t size, int64_t now_us);
	/* The table "secrets" of earlier versions, values in clear: -ENOENT when there is none. */
	int (*legacy_foreach)(struct store *s,
			      int (*cb)(const char *name, const struct secbuf *value, int64_t changed_us, void *userdata),
			      void *userdata);
	int (*legacy_drop)(struct store *s);
	/* After legacy_drop committed: what held the clear values is overwritten where the backend can. */
	void (*scrub)(struct store *s);
	/* The chain's last record (-ENOENT: none yet), and a record store.c has chained to it. */
	int (*audit_head)(struct store *s, int64_t *ret_seq, uint8_t ret_hash[32]);
	/* One stored subtree hash (-ENOENT: none), and how many leaves the tree has. */
	int (*tree_get)(struct store *s, unsigned level, uint64_t index, uint8_t ret[32]);
	int (*tree_leaves)(struct store *s, int64_t *ret);
	/* Several at once, in one statement where the database is a round trip away (-ENOENT: one is missing). */
	int (*tree_get_many)(struct store *s, const struct merkle_ref *refs, size_t n, merkle_hash *ret);
	int (*tree_put_many)(struct store *s, const struct merkle_ref *refs, const merkle_hash *hashes, size_t n);
	/* The newest checkpoint (malloc'ed note; -ENOENT: none yet), and its replacement. */
	int (*checkpoint_get)(struct store *s, int64_t *ret_size, char **ret_note);
	int (*checkpoint_put)(struct store *s, int64_t size, const char *note);
	int (*audit_insert)(struct store *s, const struct audit_rec *rec);
	/* Several, in one statement where the database is a round trip away (NULL: one by one). */
	int (*audit_insert_many)(struct store *s, const struct audit_rec *const *recs, size_t n);
	int (*audit_foreach)(struct store *s, int (*cb)(const struct audit_rec *r, void *userdata), void *userdata);
	/* The newest record of that action and decision; -ENOENT: none. */
	int (*audit_last)(struct store *s, const char *action, const char *decision,
			  int (*cb)(const struct audit_rec *r, void *userdata), void *userdata);
	int (*audit_foreach_ek)(struct store *s, const char *ek_hash, int64_t limit,
				int (*cb)(const struct audit_rec *r, void *userdata), void *userdata);
	int (*audit_shares_ek)(struct store *s, const char *ek_hash, int64_t limit,
			       int (*cb)(const struct audit_rec *r, void *userdata), void *userdata);
	int (*probe_write)(struct store *s, int64_t now_us); /* the health row, in store.c's transaction */
	/* CRLs (store.h): the revoked nodes' unexpired certificates, the revoked set's version, the next number. */
	int (*revoked_foreach)(struct store *s, int64_t now, int (*cb)(const char *serial, int64_t revoked_us, void *userdata),
			       void *userdata);
	int (*revoked_version)(struct store *s, int64_t ret[2]);
	int (*crl_number_next)(struct store *s, int64_t *ret); /* in store.c's transaction */
	/* The dashboard's pages (store.h). */
	int (*node_page)(struct store *s, int64_t offset, int64_t limit,
			 int (*cb)(const struct node_rec *n, void *userdata), void *userdata);
	int (*audit_page)(struct store *s, int64_t before, int64_t limit,
			  int (*cb)(const struct audit_rec *r, void *userdata), void *userdata);
};

/*
 * The schema, one text for both backends: BLOB is SQLite's BLOB or PostgreSQL's bytea, INT
 * SQLite's INTEGER (so "seq INTEGER PRIMARY KEY" is the rowid) or PostgreSQL's bigint.
 */
#define STORE_SCHEMA(BLOB, INT) \
	"CREATE TABLE IF NOT EXISTS nodes (" \
	" ek_hash TEXT PRIMARY KEY," \
	" node_id TEXT UNIQUE," \
	" state TEXT NOT NULL CHECK (state IN ('requested','approved','revoked'))," \
	" requested_us " INT " NOT NULL," \
	" changed_us " INT " NOT NULL," \
	" peer TEXT NOT NULL," \
	" reset_count " INT " NOT NULL DEFAULT -1," \
	" restart_count " INT " NOT NULL DEFAULT -1," \
	" grp TEXT NOT NULL DEFAULT 'default');" \
	"CREATE TABLE IF NOT EXISTS policies (" \
	" version " INT " PRIMARY KEY," \
	" loaded_us " INT " NOT NULL," \
	" text TEXT NOT NULL," \
	" signatures TEXT NOT NULL);" \
	/* Added with policy draft: a store made before it gains the table, empty, when opened. */ \
	"CREATE TABLE IF NOT EXISTS refusals (" \
	" ek_hash TEXT PRIMARY KEY," \
	" audit_seq " INT " NOT NULL," \
	" time_us " INT " NOT NULL," \
	" policy_version " INT " NOT NULL," \
	" evidence TEXT NOT NULL);" \
	/* Earlier versions kept each value in clear in a table "secrets": store_open encrypts its rows \
	 * into this one and drops it. */ \
	"CREATE TABLE IF NOT EXISTS secret_versions (" \
	" name TEXT NOT NULL," \
	" version " INT " NOT NULL," \
	" created_us " INT " NOT NULL," \
	" deleted_us " INT " NOT NULL DEFAULT 0," \
	" size " INT " NOT NULL," \
	" kek_id TEXT NOT NULL," \
	" wrapped_key " BLOB " NOT NULL," \
	" ciphertext " BLOB " NOT NULL," \
	" PRIMARY KEY (name, version));" \
	/* One row: which KEK the store is under, and proof of it (a value only that KEK unwraps). */ \
	"CREATE TABLE IF NOT EXISTS kek (" \
	" id " INT " PRIMARY KEY CHECK (id = 1)," \
	" kek_id TEXT NOT NULL," \
	" verifier " BLOB " NOT NULL," \
	" changed_us " INT " NOT NULL);" \
	/* Earlier versions kept each activation secret in clear in a table "nonces": its rows are \
	 * short-lived challenges, dropped rather than migrated (a node mid-handshake starts again). */ \
	"DROP TABLE IF EXISTS nonces;" \
	"CREATE TABLE IF NOT EXISTS challenges (" \
	" session TEXT PRIMARY KEY," \
	" nonce " BLOB " NOT NULL," \
	" verifier " BLOB " NOT NULL," \
	" ek_hash TEXT NOT NULL," \
	" ak_pub " BLOB " NOT NULL," \
	" expires_us " INT " NOT NULL," \
	" used " INT " NOT NULL DEFAULT 0);" \
	/* The nonce put prunes by expiry every time: without the index, a scan of every nonce ever issued. */ \
	"CREATE INDEX IF NOT EXISTS challenges_expires ON challenges (expires_us);" \
	"CREATE TABLE IF NOT EXISTS audit (" \
	" seq " INT " PRIMARY KEY," \
	" time_us " INT " NOT NULL," \
	" peer TEXT NOT NULL," \
	" ek_hash TEXT NOT NULL," \
	" node_id TEXT NOT NULL," \
	" action TEXT NOT NULL," \
	" decision TEXT NOT NULL," \
	" reasons TEXT NOT NULL," \
	" prev_hash " BLOB " NOT NULL," \
	" hash " BLOB " NOT NULL);" \
	/* The audit log's Merkle tree: each complete subtree's hash (level 0: the leaves), and the \
	 * newest signed checkpoint (one row). Neither is trusted: audit verify recomputes both. */ \
	"CREATE TABLE IF NOT EXISTS audit_tree (" \
	" level " INT " NOT NULL," \
	" idx " INT " NOT NULL," \
	" hash " BLOB " NOT NULL," \
	" PRIMARY KEY (level, idx));" \
	"CREATE TABLE IF NOT EXISTS checkpoint (" \
	" id " INT " PRIMARY KEY," \
	" size " INT " NOT NULL," \
	" note TEXT NOT NULL);" \
	/* One row that store_probe rewrites: a committed write, as a decision's, that records nothing. */ \
	"CREATE TABLE IF NOT EXISTS health (" \
	" id " INT " PRIMARY KEY," \
	" probed_us " INT " NOT NULL);" \
	/* Added with the CRL: every certificate issued (the nodes table keeps only the last), so a \
	 * revoked node's earlier ones, still valid, are listed too; and the last CRL number used. */ \
	"CREATE TABLE IF NOT EXISTS certificates (" \
	" serial TEXT PRIMARY KEY," \
	" ek_hash TEXT NOT NULL," \
	" not_after " INT " NOT NULL);" \
	"CREATE INDEX IF NOT EXISTS certificates_ek ON certificates (ek_hash, not_after);" \
	"CREATE TABLE IF NOT EXISTS crl (" \
	" id " INT " PRIMARY KEY CHECK (id = 1)," \
	" number " INT " NOT NULL);" \
	/* Added with the attestation-gated keyslot: each node's share of each volume, sealed like a \
	 * secret version under a data key of its own (associated data: the EK hash and the volume). */ \
	"CREATE TABLE IF NOT EXISTS disk_shares (" \
	" ek_hash TEXT NOT NULL," \
	" volume TEXT NOT NULL," \
	" created_us " INT " NOT NULL," \
	" kek_id TEXT NOT NULL," \
	" wrapped_key " BLOB " NOT NULL," \
	" ciphertext " BLOB " NOT NULL," \
	" PRIMARY KEY (ek_hash, volume));"

/*
 * Columns added to a table after its first release, X(table, name, declaration): a store made
 * before gains them when opened (ALTER TABLE ADD COLUMN, under the writer lock; rows take the
 * default), so nothing is rewritten. bigint is SQLite's INTEGER affinity too.
 */
#define STORE_COLUMNS_ADDED(X) \
	X("nodes", "attested_us", "bigint NOT NULL DEFAULT 0") \
	X("nodes", "cert_serial", "TEXT NOT NULL DEFAULT ''") \
	X("nodes", "cert_not_after", "bigint NOT NULL DEFAULT 0") \
	X("certificates", "not_before", "bigint NOT NULL DEFAULT 0")

/* The disk-share records, which the partial index audit_shares alone holds: a query's WHERE
 * must say this word for word for either planner to take it. */
#define STORE_AUDIT_SHARES_WHERE "action IN ('disk-share-store', 'disk-share-release')"

/* After the columns: node list sorts by request time, node show reads one EK's audit records,
 * the dashboard's node page its disk-share records (a few rows indexed, however long the log). */
#define STORE_INDEXES_ADDED \
	"CREATE INDEX IF NOT EXISTS nodes_requested ON nodes (requested_us, ek_hash);" \
	"CREATE INDEX IF NOT EXISTS audit_ek ON audit (ek_hash, seq);" \
	"CREATE INDEX IF NOT EXISTS nodes_state ON nodes (state, changed_us);" \
	"CREATE INDEX IF NOT EXISTS audit_shares ON audit (ek_hash, seq) WHERE " STORE_AUDIT_SHARES_WHERE ";"

/* A node's certificates, newest first (on certificates_ek); P1 the EK hash, P2 the limit. */
#define STORE_NODE_CERTS_SQL(P1, P2) \
	"SELECT serial, not_before, not_after FROM certificates WHERE ek_hash = " P1 " ORDER BY not_after DESC LIMIT " P2
/* One EK's disk-share records, newest first, at most P2 (on audit_shares). */
#define STORE_AUDIT_SHARES_SQL(P1, P2) \
	"SELECT seq, time_us, peer, ek_hash, node_id, action, decision, reasons, prev_hash, hash FROM audit " \
	"WHERE ek_hash = " P1 " AND " STORE_AUDIT_SHARES_WHERE " ORDER BY seq DESC LIMIT " P2

/*
 * The CRL's statements, the same text for both backends (no parameters but now, Unix seconds:
 * ? in SQLite, $1 in PostgreSQL). A revoked node's certificates: each one recorded, and the
 * nodes table's last one when it is not among them (a store from before the certificates table
 * has only that): UNION ALL and a key lookup, not UNION's sort of every row. The
 * revoked set's version changes whenever a node enters or leaves it: a revocation sets
 * changed_us later than any before it, a reinstatement lowers the count.
 */
#define STORE_REVOKED_SQL(P) \
	"SELECT c.serial, n.changed_us FROM certificates c JOIN nodes n ON n.ek_hash = c.ek_hash " \
	"WHERE n.state = 'revoked' AND c.not_after > " P " UNION ALL " \
	"SELECT cert_serial, changed_us FROM nodes n WHERE state = 'revoked' AND cert_serial <> '' AND cert_not_after > " P \
	" AND NOT EXISTS (SELECT 1 FROM certificates c WHERE c.serial = n.cert_serial)"
#define STORE_REVOKED_VERSION_SQL "SELECT count(*), coalesce(max(changed_us), 0) FROM nodes WHERE state = 'revoked'"
#define STORE_CRL_NUMBER_SQL \
	"INSERT INTO crl (id, number) VALUES (1, 1) ON CONFLICT (id) DO UPDATE SET number = crl.number + 1 RETURNING number"
/* A certificate's row goes an hour after it expired (a CRL lists it a little past expiry, for
 * consumers whose clock is behind), when its node gets another: by the index, a few rows a node. */
#define STORE_CERT_KEEP_S 3600

/* An audit record of the transaction (store.c): its text as stored (valid UTF-8, owned). */
struct audit_queued {
	struct audit_rec rec;
	char *text[6]; /* peer, ek_hash, node_id, action, decision, reasons: what rec points at */
	bool appended; /* in the chain and the tree: rec's seq and hashes are set */
};

struct note_signer;
struct store {
	const struct store_ops *ops;
	struct kek *kek; /* store.c's: set after the backend opened, freed before it closes */
	/* store_set_log_signer's (owned); and whether this transaction appended records. */
	struct note_signer *log_signer;
	struct note_signer *log_cosigner; /* the next log key, during its rotation (owned); NULL: none */
	bool log_grew;
	/* The tree's right edge as this transaction left it: appends read nothing more. Another
	 * instance may append between transactions, so it lasts only until commit or rollback. */
	bool edge_valid;
	struct merkle_range edge;
	/* The chain's head as this transaction left it, likewise. */
	bool head_valid;
	int64_t head_seq;
	uint8_t head_hash[32];
	/* Begun by store_begin_batch and not sequenced yet: audit records wait in queue. */
	bool deferred;
	/* store_defer_sync called; and the connection's commits not waiting for the disk now (a
	 * batch's, until its commit or rollback puts them back). */
	bool sync_deferred, not_durable;
	/* This transaction's audit records, in order (store_audit_add's tickets index them). */
	struct audit_queued *queue;
	size_t n_queued, queue_cap;
};

/*
 * Runs fn in the caller's transaction or in one of its own: a check and the write it guards
 * (policy version, audit chain head, next secret version) always happen under the single writer.
 */
int store_transaction_do(struct store *s, int (*fn)(struct store *s, void *userdata), void *userdata);

/* secrets.c: binds a freshly opened store to its KEK (store_open's contract); why: one line. */
int store_kek_bind(struct store *s, char *why, size_t why_size);

/* audit-log.c: the record's leaf in the tree (in the record's transaction), and a store older
 * than the tree given its leaves (store_open's). */
int audit_log_append(struct store *s, const struct audit_rec *r);
/* The same for records chained in a row, their subtrees written in one tree_put_many. */
int audit_log_append_many(struct store *s, const struct audit_rec *const *recs, size_t n);
int store_log_bind(struct store *s, char *why, size_t why_size);

extern const struct store_ops store_sqlite_ops;
extern const struct store_ops store_pg_ops;

/* "requested" → NODE_REQUESTED; -EBADMSG for anything else (a corrupt row). */
int node_state_from_name(const char *s, enum node_state *ret);
