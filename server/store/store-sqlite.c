/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sqlite3.h>

#include "fileio.h"
#include "log.h"
#include "secbuf.h"
#include "store-backend.h"

static const char schema[] = STORE_SCHEMA("BLOB", "INTEGER");

/*
 * Prepared statements kept for the connection's life, by SQL text (always a literal here):
 * parsing each statement again on every request was an eighth of the server's CPU under load.
 * A slot is taken while its statement runs (sqlite3_stmt_busy); a nested use of the same SQL
 * gets a slot of its own.
 */
#define STMT_SLOTS 64

struct store_sqlite {
	struct store base;
	sqlite3 *db;
	struct {
		const char *sql;
		sqlite3_stmt *st;
	} stmts[STMT_SLOTS];
};

static sqlite3 *db_of(struct store *s)
{
	return ((struct store_sqlite *)s)->db;
}

static int sql_errno(struct store *s, int rc, const char *what)
{
	switch (rc) {
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return log_debug_errno(-EBUSY, "%s: %s", what, sqlite3_errmsg(db_of(s)));
	case SQLITE_CONSTRAINT:
		return log_debug_errno(-EEXIST, "%s: %s", what, sqlite3_errmsg(db_of(s)));
	case SQLITE_FULL:
		return log_debug_errno(-ENOSPC, "%s: %s", what, sqlite3_errmsg(db_of(s)));
	default:
		return log_debug_errno(-EIO, "%s: %s", what, sqlite3_errmsg(db_of(s)));
	}
}

/* Back to its slot: reset (locks and the result released) and unbound (values freed). */
static void stmt_releasep(sqlite3_stmt **st)
{
	if (!*st)
		return;
	sqlite3_reset(*st);
	sqlite3_clear_bindings(*st);
}
#define _cleanup_stmt_ _cleanup_(stmt_releasep)

static int prepare(struct store *s, const char *sql, sqlite3_stmt **ret)
{
	struct store_sqlite *q = (struct store_sqlite *)s;
	size_t i;
	int rc;

	for (i = 0; i < STMT_SLOTS && q->stmts[i].sql; i++)
		if (q->stmts[i].sql == sql && !sqlite3_stmt_busy(q->stmts[i].st)) {
			*ret = q->stmts[i].st;
			return 0;
		}
	if (i == STMT_SLOTS)
		return log_debug_errno(-ENOBUFS, "prepare: more than %d statements (STMT_SLOTS)", STMT_SLOTS);
	rc = sqlite3_prepare_v3(q->db, sql, -1, SQLITE_PREPARE_PERSISTENT, ret, NULL);
	if (rc != SQLITE_OK)
		return sql_errno(s, rc, "prepare");
	q->stmts[i].sql = sql;
	q->stmts[i].st = *ret;
	return 0;
}

static int exec(struct store *s, const char *sql)
{
	int rc = sqlite3_exec(db_of(s), sql, NULL, NULL, NULL);

	return rc == SQLITE_OK ? 0 : sql_errno(s, rc, sql);
}

/*
 * The database holds the registry, the audit log and wrapped secrets: it is created owner-only
 * (SQLite gives its -wal and -shm the database's own mode), and one that group or others can
 * access is refused, as is a -wal or -shm left so by an earlier version.
 */
static int check_private(const char *path, char *reason, size_t reason_size)
{
	static const char *const suffixes[] = { "", "-wal", "-shm" };
	char name[PATH_MAX];
	int r;

	for (size_t i = 0; i < ELEMENTSOF(suffixes); i++) {
		if ((size_t)snprintf(name, sizeof(name), "%s%s", path, suffixes[i]) >= sizeof(name))
			return -ENAMETOOLONG;
		r = file_check_private(name, reason, reason_size);
		if (r == -ENOENT && i > 0)
			continue;
		if (r < 0)
			return r;
	}
	return 0;
}

static int create_private(const char *path, char *reason, size_t reason_size)
{
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOCTTY, 0600);

	if (fd < 0) {
		int r = -errno;

		snprintf(reason, reason_size, "cannot create '%s': %s", path, strerror(-r));
		return r;
	}
	close(fd);
	return check_private(path, reason, reason_size);
}

/*
 * STORE_COLUMNS_ADDED: what a store made before lacks. SQLite has no ADD COLUMN IF NOT EXISTS;
 * the check and the change are one transaction, so a server and an admin command opening the
 * same file together do not both add a column.
 */
static int select_one(struct store *s, const char *sql, const char *key, const char *what, sqlite3_stmt **ret);

#define ADD(table, name, decl) \
	{ name, "SELECT 1 FROM pragma_table_info('" table "') WHERE name = ?", "ALTER TABLE " table " ADD COLUMN " name " " decl },
static const struct {
	const char *name, *check, *sql;
} columns_added[] = { STORE_COLUMNS_ADDED(ADD) };
#undef ADD

/* Adds what the tables lack of columns_added (all of it: add); ret_missing: how many they lack. */
static int tables_columns(struct store *s, bool add, size_t *ret_missing)
{
	size_t missing = 0;
	int r;

	for (size_t i = 0; i < ELEMENTSOF(columns_added); i++) {
		_cleanup_stmt_ sqlite3_stmt *st = NULL;

		r = select_one(s, columns_added[i].check, columns_added[i].name, "schema", &st);
		if (r == -ENOENT) {
			missing++;
			r = add ? exec(s, columns_added[i].sql) : 0;
		}
		if (r < 0)
			return r;
	}
	*ret_missing = missing;
	return 0;
}

static int migrate(struct store *s)
{
	size_t missing;
	int r;

	/* The usual case, nothing missing, takes no writer lock: a server's batches go on. */
	if ((r = tables_columns(s, false, &missing)) < 0)
		return r;
	if (missing > 0) {
		/* Checked again under the lock: another process may have added them meanwhile. */
		if ((r = exec(s, "BEGIN IMMEDIATE")) < 0)
			return r;
		if ((r = tables_columns(s, true, &missing)) < 0 || (r = exec(s, "COMMIT")) < 0) {
			(void)exec(s, "ROLLBACK");
			return r;
		}
	}
	return exec(s, STORE_INDEXES_ADDED);
}

static int sqlite_open(const char *spec, struct store **ret, char *reason, size_t reason_size)
{
	struct store_sqlite *q;
	struct store *s;
	bool file;
	int rc, r;

	if (strncmp(spec, "sqlite:", 7) == 0)
		spec += 7;
	file = *spec && !streq(spec, ":memory:");
	if (file && (r = create_private(spec, reason, reason_size)) < 0)
		return r;
	q = calloc(1, sizeof(*q));
	if (!q)
		return -ENOMEM;
	q->base.ops = &store_sqlite_ops;
	s = &q->base;
	rc = sqlite3_open_v2(spec, &q->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, NULL);
	if (rc != SQLITE_OK) {
		snprintf(reason, reason_size, "%s", q->db ? sqlite3_errmsg(q->db) : "out of memory");
		store_close(s);
		return -EIO;
	}
	/* A committed transaction survives power loss: WAL, fsync on every commit. */
	sqlite3_busy_timeout(q->db, 5000);
	/* secure_delete: what a deleted secret version or a dropped table held is zeroed, not left in free pages. */
	if ((r = exec(s, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON; "
			 "PRAGMA secure_delete=ON;")) < 0 ||
	    (r = exec(s, schema)) < 0 || (r = migrate(s)) < 0) {
		snprintf(reason, reason_size, "%s", sqlite3_errmsg(q->db));
		store_close(s);
		return r;
	}
	if (file && (r = check_private(spec, reason, reason_size)) < 0) {
		store_close(s);
		return r;
	}
	*ret = s;
	return 0;
}

static void sqlite_close(struct store *s)
{
	struct store_sqlite *q = (struct store_sqlite *)s;

	for (size_t i = 0; i < STMT_SLOTS && q->stmts[i].sql; i++)
		sqlite3_finalize(q->stmts[i].st);
	sqlite3_close(db_of(s));
	free(s);
}

static int sqlite_begin(struct store *s)
{
	return exec(s, "BEGIN IMMEDIATE");
}

static int sqlite_commit(struct store *s)
{
	return exec(s, "COMMIT");
}

static int sqlite_sync_path(struct store *s, char **ret_path)
{
	const char *db = sqlite3_db_filename(db_of(s), "main");

	if (!db || !*db)
		return -EOPNOTSUPP;
	return asprintf(ret_path, "%s-wal", db) < 0 ? -ENOMEM : 0;
}

/* Outside a transaction only: SQLite refuses to change it inside one. */
static int sqlite_set_durable(struct store *s, bool durable)
{
	return exec(s, durable ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL");
}

static bool sqlite_in_transaction(struct store *s)
{
	return !sqlite3_get_autocommit(db_of(s));
}

static void sqlite_rollback(struct store *s)
{
	if (sqlite_in_transaction(s))
		(void)exec(s, "ROLLBACK");
}

static void copy_text(char *dst, size_t max, const unsigned char *src)
{
	snprintf(dst, max, "%s", src ? (const char *)src : "");
}

/* SQL selecting by one text key, stepped to its row: -ENOENT when there is none. */
static int select_one(struct store *s, const char *sql, const char *key, const char *what, sqlite3_stmt **ret)
{
	int r, rc;

	if ((r = prepare(s, sql, ret)) < 0)
		return r;
	sqlite3_bind_text(*ret, 1, key, -1, SQLITE_STATIC);
	rc = sqlite3_step(*ret);
	if (rc == SQLITE_DONE)
		return -ENOENT;
	return rc == SQLITE_ROW ? 0 : sql_errno(s, rc, what);
}

static int node_from_row(sqlite3_stmt *st, struct node_rec *n)
{
	memset(n, 0, sizeof(*n));
	copy_text(n->ek_hash, sizeof(n->ek_hash), sqlite3_column_text(st, 0));
	copy_text(n->node_id, sizeof(n->node_id), sqlite3_column_text(st, 1));
	n->requested_us = sqlite3_column_int64(st, 3);
	n->changed_us = sqlite3_column_int64(st, 4);
	copy_text(n->peer, sizeof(n->peer), sqlite3_column_text(st, 5));
	n->reset_count = sqlite3_column_int64(st, 6);
	n->restart_count = sqlite3_column_int64(st, 7);
	copy_text(n->group, sizeof(n->group), sqlite3_column_text(st, 8));
	n->attested_us = sqlite3_column_int64(st, 9);
	copy_text(n->cert_serial, sizeof(n->cert_serial), sqlite3_column_text(st, 10));
	n->cert_not_after = sqlite3_column_int64(st, 11);
	return node_state_from_name((const char *)sqlite3_column_text(st, 2), &n->state);
}

#define NODE_COLUMNS \
	"ek_hash, node_id, state, requested_us, changed_us, peer, reset_count, restart_count, grp, attested_us, " \
	"cert_serial, cert_not_after"

static int node_select(struct store *s, const char *sql, const char *key, struct node_rec *ret)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int r = select_one(s, sql, key, "node get", &st);

	if (r < 0)
		return r;
	return node_from_row(st, ret);
}

static int sqlite_node_get(struct store *s, const char *ek_hash, struct node_rec *ret)
{
	return node_select(s, "SELECT " NODE_COLUMNS " FROM nodes WHERE ek_hash = ?", ek_hash, ret);
}

static int sqlite_node_get_by_id(struct store *s, const char *node_id, struct node_rec *ret)
{
	return node_select(s, "SELECT " NODE_COLUMNS " FROM nodes WHERE node_id = ?", node_id, ret);
}


/* The certificate kept for the CRL; the node's own rows a day past expiry go. */
static int sqlite_cert_record(struct store *s, const char *ek_hash, int64_t attested_us, const char *serial,
			      int64_t not_before, int64_t not_after)
{
	_cleanup_stmt_ sqlite3_stmt *del = NULL, *ins = NULL;
	int r, rc;

	if ((r = prepare(s, "DELETE FROM certificates WHERE ek_hash = ? AND not_after < ?", &del)) < 0)
		return r;
	sqlite3_bind_text(del, 1, ek_hash, -1, SQLITE_STATIC);
	sqlite3_bind_int64(del, 2, attested_us / 1000000 - STORE_CERT_KEEP_S);
	if ((rc = sqlite3_step(del)) != SQLITE_DONE)
		return sql_errno(s, rc, "certificate prune");
	if ((r = prepare(s, "INSERT INTO certificates (serial, ek_hash, not_before, not_after) VALUES (?, ?, ?, ?)",
			 &ins)) < 0)
		return r;
	sqlite3_bind_text(ins, 1, serial, -1, SQLITE_STATIC);
	sqlite3_bind_text(ins, 2, ek_hash, -1, SQLITE_STATIC);
	sqlite3_bind_int64(ins, 3, not_before);
	sqlite3_bind_int64(ins, 4, not_after);
	rc = sqlite3_step(ins);
	return rc == SQLITE_DONE ? 0 : sql_errno(s, rc, "certificate record");
}

static int sqlite_node_set_certificate(struct store *s, const char *ek_hash, int64_t attested_us, const char *serial,
				       int64_t not_before, int64_t not_after)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int r, rc;

	if ((r = prepare(s, "UPDATE nodes SET attested_us = ?, cert_serial = ?, cert_not_after = ? WHERE ek_hash = ?",
			 &st)) < 0)
		return r;
	sqlite3_bind_int64(st, 1, attested_us);
	sqlite3_bind_text(st, 2, serial, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, not_after);
	sqlite3_bind_text(st, 4, ek_hash, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc != SQLITE_DONE)
		return sql_errno(s, rc, "node certificate");
	if (sqlite3_changes(db_of(s)) != 1)
		return -ENOENT;
	return sqlite_cert_record(s, ek_hash, attested_us, serial, not_before, not_after);
}

static int sqlite_node_certificates(struct store *s, const char *ek_hash, int64_t limit,
				    int (*cb)(const struct cert_rec *c, void *userdata), void *userdata)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int r, rc;

	if ((r = prepare(s, STORE_NODE_CERTS_SQL("?1", "?2"), &st)) < 0)
		return r;
	sqlite3_bind_text(st, 1, ek_hash, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, limit);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct cert_rec c = { .not_before = sqlite3_column_int64(st, 1), .not_after = sqlite3_column_int64(st, 2) };

		snprintf(c.serial, sizeof(c.serial), "%s", sqlite3_column_text(st, 0) ? (const char *)sqlite3_column_text(st, 0) : "");
		if ((r = cb(&c, userdata)) < 0)
			return r;
	}
	return rc == SQLITE_DONE ? 0 : sql_errno(s, rc, "node certificates");
}

static int sqlite_node_request(struct store *s, const char *ek_hash, const char *peer, int64_t now_us)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int r, rc;

	if ((r = prepare(s, "INSERT INTO nodes (ek_hash, node_id, state, requested_us, changed_us, peer) "
			    "VALUES (?, NULL, 'requested', ?, ?, ?)", &st)) < 0)
		return r;
	sqlite3_bind_text(st, 1, ek_hash, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, now_us);
	sqlite3_bind_int64(st, 3, now_us);
	sqlite3_bind_text(st, 4, peer, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	return rc == SQLITE_DONE ? 0 : sql_errno(s, rc, "node request");
}

static int sqlite_node_set_state(struct store *s, const char *ek_hash, enum node_state state, const char *node_id,
			 const char *group, int64_t now_us)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int r, rc;

	if ((r = prepare(s, "UPDATE nodes SET state = ?, node_id = COALESCE(?, node_id), changed_us = ?, "
			    "grp = COALESCE(?, grp) WHERE ek_hash = ?", &st)) < 0)
		return r;
	sqlite3_bind_text(st, 1, node_state_name(state), -1, SQLITE_STATIC);
	if (node_id)
		sqlite3_bind_text(st, 2, node_id, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(st, 2);
	sqlite3_bind_int64(st, 3, now_us);
	if (group)
		sqlite3_bind_text(st, 4, group, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(st, 4);
	sqlite3_bind_text(st, 5, ek_hash, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc != SQLITE_DONE)
		return sql_errno(s, rc, "node state");
	return sqlite3_changes(db_of(s)) == 1 ? 0 : -ENOENT;
}

static int sqlite_node_set_counters(struct store *s, const char *ek_hash, int64_t reset_count, int64_t restart_count)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int r, rc;

	if ((r = prepare(s, "UPDATE nodes SET reset_count = ?, restart_count = ? WHERE ek_hash = ?", &st)) < 0)
		return r;
	sqlite3_bind_int64(st, 1, reset_count);
	sqlite3_bind_int64(st, 2, restart_count);
	sqlite3_bind_text(st, 3, ek_hash, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc != SQLITE_DONE)
		return sql_errno(s, rc, "node counters");
	return sqlite3_changes(db_of(s)) == 1 ? 0 : -ENOENT;
}

static int sqlite_node_foreach(struct store *s, int (*cb)(const struct node_rec *n, void *userdata), void *userdata)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int r, rc;

	if ((r = prepare(s, "SELECT " NODE_COLUMNS " FROM nodes ORDER BY requested_us, ek_hash", &st)) < 0)
		return r;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct node_rec n;

		if ((r = node_from_row(st, &n)) < 0 || (r = cb(&n, userdata)) < 0)
			return r;
	}
	return rc == SQLITE_DONE ? 0 : sql_errno(s, rc, "node list");
}

static int sqlite_node_page(struct store *s, int64_t offset, int64_t limit,
			    int (*cb)(const struct node_rec *n, void *userdata), void *userdata)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int r, rc;

	if ((r = prepare(s, "SELECT " NODE_COLUMNS " FROM nodes ORDER BY requested_us, ek_hash LIMIT ? OFFSET ?", &st)) < 0)
		return r;
	sqlite3_bind_int64(st, 1, limit);
	sqlite3_bind_int64(st, 2, offset);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct node_rec n;

		if ((r = node_from_row(st, &n)) < 0 || (r = cb(&n, userdata)) < 0)
			return r;
	}
	return rc == SQLITE_DONE ? 0 : sql_errno(s, rc, "node list");
}

static int sqlite_revoked_foreach(struct store *s, int64_t now,
				  int (*cb)(const char *serial, int64_t revoked_us, void *userdata), void *userdata)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int r, rc;

	if ((r = prepare(s, STORE_REVOKED_SQL("?1"), &st)) < 0)
		return r;
	sqlite3_bind_int64(st, 1, now);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		if ((r = cb((const char *)sqlite3_column_text(st, 0), sqlite3_column_int64(st, 1), userdata)) < 0)
			return r;
	return rc == SQLITE_DONE ? 0 : sql_errno(s, rc, "revoked certificates");
}

static int sqlite_revoked_version(struct store *s, int64_t ret[2])
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int r, rc;

	if ((r = prepare(s, STORE_REVOKED_VERSION_SQL, &st)) < 0)
		return r;
	if ((rc = sqlite3_step(st)) != SQLITE_ROW)
		return sql_errno(s, rc, "revoked version");
	ret[0] = sqlite3_column_int64(st, 0);
	ret[1] = sqlite3_column_int64(st, 1);
	return 0;
}

static int sqlite_crl_number_next(struct store *s, int64_t *ret)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int r, rc;

	if ((r = prepare(s, STORE_CRL_NUMBER_SQL, &st)) < 0)
		return r;
	if ((rc = sqlite3_step(st)) != SQLITE_ROW)
		return sql_errno(s, rc, "crl number");
	*ret = sqlite3_column_int64(st, 0);
	/* RETURNING's row is produced before the statement's work is done: step it to the end. */
	rc = sqlite3_step(st);
	return rc == SQLITE_DONE ? 0 : sql_errno(s, rc, "crl number");
}

static int sqlite_node_id_taken(struct store *s, const char *node_id, const char *except_ek_hash)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int r, rc;

	if ((r = prepare(s, "SELECT 1 FROM nodes WHERE node_id = ? AND ek_hash != ?", &st)) < 0)
		return r;
	sqlite3_bind_text(st, 1, node_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, except_ek_hash, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		return -EEXIST;
	return rc == SQLITE_DONE ? 0 : sql_errno(s, rc, "node id");
}

static int blob_copy(sqlite3_stmt *st, int col, uint8_t *dst, size_t max, size_t exact, size_t *ret_size)
{
	size_t n = (size_t)sqlite3_column_bytes(st, col);
	const void *p = sqlite3_column_blob(st, col);

	if (n > max || (exact && n != exact) || (n && !p))
		return -EBADMSG;
	if (n)
		memcpy(dst, p, n);
	if (ret_size)
		*ret_size = n;
	return 0;
}

static int sqlite_nonce_put(struct store *s, const struct nonce_rec *n, int64_t now_us)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL, *prune = NULL;
	int r, rc;

	if ((r = prepare(s, "INSERT INTO challenges (session, nonce, verifier, ek_hash, ak_pub, expires_us) "
			    "VALUES (?, ?, ?, ?, ?, ?)", &st)) < 0)
		return r;
	sqlite3_bind_text(st, 1, n->session, -1, SQLITE_STATIC);
	sqlite3_bind_blob(st, 2, n->nonce, sizeof(n->nonce), SQLITE_STATIC);
	sqlite3_bind_blob(st, 3, n->verifier, sizeof(n->verifier), SQLITE_STATIC);
	sqlite3_bind_text(st, 4, n->ek_hash, -1, SQLITE_STATIC);
	sqlite3_bind_blob(st, 5, n->ak_pub, (int)n->ak_pub_size, SQLITE_STATIC);
	sqlite3_bind_int64(st, 6, n->expires_us);
	rc = sqlite3_step(st);
	if (rc != SQLITE_DONE)
		return sql_errno(s, rc, "nonce put");
	if (prepare(s, "DELETE FROM challenges WHERE expires_us < ?", &prune) == 0) {
		sqlite3_bind_int64(prune, 1, now_us - 86400LL * 1000000);
		(void)sqlite3_step(prune);
	}
	return 0;
}

static int sqlite_nonce_get(struct store *s, const char *session, struct nonce_rec *ret)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	struct nonce_rec n = { 0 };
	int r, rc;

	if ((r = prepare(s, "SELECT nonce, verifier, ek_hash, ak_pub, expires_us, used FROM challenges WHERE session = ?",
			 &st)) < 0)
		return r;
	sqlite3_bind_text(st, 1, session, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE)
		return -ENOENT;
	if (rc != SQLITE_ROW)
		return sql_errno(s, rc, "nonce get");
	n.used = sqlite3_column_int64(st, 5) != 0;
	snprintf(n.session, sizeof(n.session), "%s", session);
	/* A spent nonce's verifier is wiped: only an unused one must have its 32 bytes. */
	if ((r = blob_copy(st, 0, n.nonce, sizeof(n.nonce), sizeof(n.nonce), NULL)) < 0 ||
	    (!n.used && (r = blob_copy(st, 1, n.verifier, sizeof(n.verifier), sizeof(n.verifier), NULL)) < 0) ||
	    (r = blob_copy(st, 3, n.ak_pub, sizeof(n.ak_pub), 0, &n.ak_pub_size)) < 0)
		return r;
	copy_text(n.ek_hash, sizeof(n.ek_hash), sqlite3_column_text(st, 2));
	n.expires_us = sqlite3_column_int64(st, 4);
	*ret = n;
	return 0;
}

static int sqlite_nonce_take(struct store *s, const char *session, int64_t now_us)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int r, rc;

	if ((r = prepare(s, "UPDATE challenges SET used = 1, verifier = X'' "
			    "WHERE session = ? AND used = 0 AND expires_us >= ?", &st)) < 0)
		return r;
	sqlite3_bind_text(st, 1, session, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, now_us);
	rc = sqlite3_step(st);
	if (rc != SQLITE_DONE)
		return sql_errno(s, rc, "nonce take");
	return sqlite3_changes(db_of(s)) == 1 ? 0 : -EALREADY;
}

static int sqlite_policy_insert(struct store *s, int64_t version, const char *text, size_t text_size,
				const char *signatures, int64_t now_us)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int r, rc;

	if ((r = prepare(s, "INSERT INTO policies (version, loaded_us, text, signatures) VALUES (?, ?, ?, ?)", &st)) < 0)
		return r;
	sqlite3_bind_int64(st, 1, version);
	sqlite3_bind_int64(st, 2, now_us);
	sqlite3_bind_text(st, 3, text, (int)text_size, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, signatures, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	return rc == SQLITE_DONE ? 0 : sql_errno(s, rc, "policy put");
}

static int sqlite_policy_resign(struct store *s, int64_t version, const char *signatures)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int r, rc;

	if ((r = prepare(s, "UPDATE policies SET signatures = ? WHERE version = ?", &st)) < 0)
		return r;
	sqlite3_bind_text(st, 1, signatures, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, version);
	rc = sqlite3_step(st);
	if (rc != SQLITE_DONE)
		return sql_errno(s, rc, "policy resign");
	return sqlite3_changes(db_of(s)) == 1 ? 0 : -ENOENT;
}

static int text_dup(sqlite3_stmt *st, int col, char **ret, size_t *ret_size)
{
	size_t n = (size_t)sqlite3_column_bytes(st, col);
	const unsigned char *p = sqlite3_column_text(st, col);
	char *t;

	if (!ret)
		return 0;
	t = malloc(n + 1);
	if (!t)
		return -ENOMEM;
	if (n)
		memcpy(t, p, n);
	t[n] = 0;
	*ret = t;
	if (ret_size)
		*ret_size = n;
	return 0;
}

static int sqlite_policy_current(struct store *s, int64_t *ret_version, char **ret_text, size_t *ret_size,
				 char **ret_signatures)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	_cleanup_free_ char *text = NULL;
	int r, rc;

	if ((r = prepare(s, "SELECT version, text, signatures FROM policies ORDER BY version DESC LIMIT 1", &st)) < 0)
		return r;
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE)
		return -ENOENT;
	if (rc != SQLITE_ROW)
		return sql_errno(s, rc, "policy current");
	if ((r = text_dup(st, 1, &text, ret_size)) < 0 || (r = text_dup(st, 2, ret_signatures, NULL)) < 0)
		return r;
	*ret_version = sqlite3_column_int64(st, 0);
	*ret_text = TAKE_PTR(text);
	return 0;
}

static int sqlite_policy_get(struct store *s, int64_t version, char **ret_text, size_t *ret_size,
			     char **ret_signatures)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	_cleanup_free_ char *text = NULL;
	int r, rc;

	if ((r = prepare(s, "SELECT text, signatures FROM policies WHERE version = ?", &st)) < 0)
		return r;
	sqlite3_bind_int64(st, 1, version);
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE)
		return -ENOENT;
	if (rc != SQLITE_ROW)
		return sql_errno(s, rc, "policy get");
	if ((r = text_dup(st, 0, &text, ret_size)) < 0 || (r = text_dup(st, 1, ret_signatures, NULL)) < 0)
		return r;
	*ret_text = TAKE_PTR(text);
	return 0;
}

static int sqlite_refusal_put(struct store *s, const struct refusal_rec *rec)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int r, rc;

	if ((r = prepare(s, "INSERT INTO refusals (ek_hash, audit_seq, time_us, policy_version, evidence) "
			    "VALUES (?, ?, ?, ?, ?) ON CONFLICT (ek_hash) DO UPDATE SET audit_seq = excluded.audit_seq, "
			    "time_us = excluded.time_us, policy_version = excluded.policy_version, "
			    "evidence = excluded.evidence",
			 &st)) < 0)
		return r;
	sqlite3_bind_text(st, 1, rec->ek_hash, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, rec->audit_seq);
	sqlite3_bind_int64(st, 3, rec->time_us);
	sqlite3_bind_int64(st, 4, rec->policy_version);
	sqlite3_bind_text(st, 5, rec->evidence, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	return rc == SQLITE_DONE ? 0 : sql_errno(s, rc, "refusal put");
}

#define REFUSAL_COLUMNS "ek_hash, audit_seq, time_us, policy_version, evidence"

static int sqlite_refusal_get(struct store *s, const char *ek_hash, int64_t audit_seq, struct refusal_rec *ret)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int r, rc;

	if ((r = prepare(s, ek_hash ? "SELECT " REFUSAL_COLUMNS " FROM refusals WHERE ek_hash = ?" :
				      "SELECT " REFUSAL_COLUMNS " FROM refusals WHERE audit_seq = ?", &st)) < 0)
		return r;
	if (ek_hash)
		sqlite3_bind_text(st, 1, ek_hash, -1, SQLITE_STATIC);
	else
		sqlite3_bind_int64(st, 1, audit_seq);
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE)
		return -ENOENT;
	if (rc != SQLITE_ROW)
		return sql_errno(s, rc, "refusal get");
	if ((r = text_dup(st, 4, &ret->evidence, NULL)) < 0)
		return r;
	copy_text(ret->ek_hash, sizeof(ret->ek_hash), sqlite3_column_text(st, 0));
	ret->audit_seq = sqlite3_column_int64(st, 1);
	ret->time_us = sqlite3_column_int64(st, 2);
	ret->policy_version = sqlite3_column_int64(st, 3);
	return 0;
}

static int sqlite_secret_insert(struct store *s, const struct secret_row *row)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int r, rc;

	if ((r = prepare(s, "INSERT INTO secret_versions (name, version, created_us, deleted_us, size, kek_id, "
			    "wrapped_key, ciphertext) VALUES (?, ?, ?, 0, ?, ?, ?, ?)", &st)) < 0)
		return r;
	sqlite3_bind_text(st, 1, row->name, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, row->version);
	sqlite3_bind_int64(st, 3, row->created_us);
	sqlite3_bind_int64(st, 4, row->size);
	sqlite3_bind_text(st, 5, row->kek_id, -1, SQLITE_STATIC);
	sqlite3_bind_blob(st, 6, row->wrapped_key, (int)row->wrapped_key_size, SQLITE_STATIC);
	sqlite3_bind_blob(st, 7, row->ciphertext, (int)row->ciphertext_size, SQLITE_STATIC);
	rc = sqlite3_step(st);
	return rc == SQLITE_DONE ? 0 : sql_errno(s, rc, "secret insert");
}

static int sqlite_disk_share_put(struct store *s, const struct disk_share_row *row)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int r, rc;

	if ((r = prepare(s, "INSERT INTO disk_shares (ek_hash, volume, created_us, kek_id, wrapped_key, ciphertext) "
			    "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (ek_hash, volume) DO UPDATE SET "
			    "created_us = excluded.created_us, kek_id = excluded.kek_id, "
			    "wrapped_key = excluded.wrapped_key, ciphertext = excluded.ciphertext",
			 &st)) < 0)
		return r;
	sqlite3_bind_text(st, 1, row->ek_hash, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, row->volume, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, row->created_us);
	sqlite3_bind_text(st, 4, row->kek_id, -1, SQLITE_STATIC);
	sqlite3_bind_blob(st, 5, row->wrapped_key, (int)row->wrapped_key_size, SQLITE_STATIC);
	sqlite3_bind_blob(st, 6, row->ciphertext, (int)row->ciphertext_size, SQLITE_STATIC);
	rc = sqlite3_step(st);
	return rc == SQLITE_DONE ? 0 : sql_errno(s, rc, "disk share put");
}

#define DISK_SHARE_COLUMNS "ek_hash, volume, created_us, kek_id, wrapped_key, ciphertext"

static int sqlite_disk_share_foreach(struct store *s, const char *ek_hash, const char *volume,
				     int (*cb)(const struct disk_share_row *row, void *userdata), void *userdata)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	bool any = false;
	int r, rc;

	if ((r = prepare(s, ek_hash ? "SELECT " DISK_SHARE_COLUMNS " FROM disk_shares WHERE ek_hash = ? AND volume = ?" :
				      "SELECT " DISK_SHARE_COLUMNS " FROM disk_shares ORDER BY ek_hash, volume",
			 &st)) < 0)
		return r;
	if (ek_hash) {
		sqlite3_bind_text(st, 1, ek_hash, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, volume, -1, SQLITE_STATIC);
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct disk_share_row row = {
			.ek_hash = (const char *)sqlite3_column_text(st, 0),
			.volume = (const char *)sqlite3_column_text(st, 1),
			.created_us = sqlite3_column_int64(st, 2),
			.kek_id = (const char *)sqlite3_column_text(st, 3),
			.wrapped_key = sqlite3_column_blob(st, 4),
			.wrapped_key_size = (size_t)sqlite3_column_bytes(st, 4),
			.ciphertext = sqlite3_column_blob(st, 5),
			.ciphertext_size = (size_t)sqlite3_column_bytes(st, 5),
		};

		if (!row.ek_hash || !row.volume || !row.kek_id)
			return -EBADMSG;
		any = true;
		if ((r = cb(&row, userdata)) < 0)
			return r;
	}
	if (rc != SQLITE_DONE)
		return sql_errno(s, rc, "disk share get");
	return ek_hash && !any ? -ENOENT : 0;
}

#define SECRET_COLUMNS "name, version, created_us, deleted_us, size, kek_id, wrapped_key, ciphertext"

static int sqlite_secret_foreach(struct store *s, const char *name, bool newest_only,
				 int (*cb)(const struct secret_row *row, void *userdata), void *userdata)
{
	static const char *const sql[2][2] = {
		{ "SELECT " SECRET_COLUMNS " FROM secret_versions ORDER BY name, version",
		  "SELECT " SECRET_COLUMNS " FROM secret_versions v "
		  "WHERE version = (SELECT MAX(version) FROM secret_versions WHERE name = v.name) ORDER BY name" },
		{ "SELECT " SECRET_COLUMNS " FROM secret_versions WHERE name = ? ORDER BY version",
		  "SELECT " SECRET_COLUMNS " FROM secret_versions WHERE name = ? ORDER BY version DESC LIMIT 1" },
	};
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int r, rc;

	if ((r = prepare(s, sql[!!name][newest_only], &st)) < 0)
		return r;
	if (name)
		sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct secret_row row = {
			.name = (const char *)sqlite3_column_text(st, 0),
			.version = sqlite3_column_int64(st, 1),
			.created_us = sqlite3_column_int64(st, 2),
			.deleted_us = sqlite3_column_int64(st, 3),
			.size = sqlite3_column_int64(st, 4),
			.kek_id = (const char *)sqlite3_column_text(st, 5),
			.wrapped_key = sqlite3_column_blob(st, 6),
			.wrapped_key_size = (size_t)sqlite3_column_bytes(st, 6),
			.ciphertext = sqlite3_column_blob(st, 7),
			.ciphertext_size = (size_t)sqlite3_column_bytes(st, 7),
		};

		if (!row.name || !row.kek_id)
			return -EBADMSG;
		if ((r = cb(&row, userdata)) < 0)
			return r;
	}
	return rc == SQLITE_DONE ? 0 : sql_errno(s, rc, "secret list");
}

static int sqlite_secret_rewrap(struct store *s, const char *name, int64_t version, const char *kek_id,
				const uint8_t *wrapped_key, size_t size)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int r, rc;

	if ((r = prepare(s, "UPDATE secret_versions SET kek_id = ?, wrapped_key = ? WHERE name = ? AND version = ?",
			 &st)) < 0)
		return r;
	sqlite3_bind_text(st, 1, kek_id, -1, SQLITE_STATIC);
	sqlite3_bind_blob(st, 2, wrapped_key, (int)size, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, name, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 4, version);
	rc = sqlite3_step(st);
	if (rc != SQLITE_DONE)
		return sql_errno(s, rc, "secret rewrap");
	return sqlite3_changes(db_of(s)) == 1 ? 0 : -ENOENT;
}

static int sqlite_secret_delete(struct store *s, const char *name, int64_t now_us)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int r, rc;

	if ((r = prepare(s, "UPDATE secret_versions SET wrapped_key = X'', ciphertext = X'', deleted_us = ? "
			    "WHERE name = ? AND deleted_us = 0", &st)) < 0)
		return r;
	sqlite3_bind_int64(st, 1, now_us);
	sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc != SQLITE_DONE)
		return sql_errno(s, rc, "secret delete");
	return sqlite3_changes(db_of(s));
}

static int sqlite_kek_get(struct store *s, char ret_id[KEK_ID_HEX + 1], uint8_t **ret_check, size_t *ret_size)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	const unsigned char *id;
	uint8_t *check;
	size_t n;
	int r, rc;

	if ((r = prepare(s, "SELECT kek_id, verifier FROM kek WHERE id = 1", &st)) < 0)
		return r;
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE)
		return -ENOENT;
	if (rc != SQLITE_ROW)
		return sql_errno(s, rc, "kek get");
	id = sqlite3_column_text(st, 0);
	n = (size_t)sqlite3_column_bytes(st, 1);
	if (!id || strlen((const char *)id) > KEK_ID_HEX)
		return -EBADMSG;
	check = malloc(n ? n : 1);
	if (!check)
		return -ENOMEM;
	if (n)
		memcpy(check, sqlite3_column_blob(st, 1), n);
	copy_text(ret_id, KEK_ID_HEX + 1, id);
	*ret_check = check;
	*ret_size = n;
	return 0;
}

static int sqlite_kek_put(struct store *s, const char *kek_id, const uint8_t *check, size_t size, int64_t now_us)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int r, rc;

	if ((r = prepare(s, "INSERT INTO kek (id, kek_id, verifier, changed_us) VALUES (1, ?, ?, ?) "
			    "ON CONFLICT (id) DO UPDATE SET kek_id = excluded.kek_id, verifier = excluded.verifier, "
			    "changed_us = excluded.changed_us", &st)) < 0)
		return r;
	sqlite3_bind_text(st, 1, kek_id, -1, SQLITE_STATIC);
	sqlite3_bind_blob(st, 2, check, (int)size, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, now_us);
	rc = sqlite3_step(st);
	return rc == SQLITE_DONE ? 0 : sql_errno(s, rc, "kek put");
}

static int sqlite_legacy_foreach(struct store *s,
				 int (*cb)(const char *name, const struct secbuf *value, int64_t changed_us, void *userdata),
				 void *userdata)
{
	_cleanup_stmt_ sqlite3_stmt *probe = NULL;
	sqlite3_stmt *st = NULL;
	int r, rc;

	if ((r = prepare(s, "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'secrets'", &probe)) < 0)
		return r;
	rc = sqlite3_step(probe);
	if (rc == SQLITE_DONE)
		return -ENOENT;
	if (rc != SQLITE_ROW)
		return sql_errno(s, rc, "legacy secrets");
	/* Not kept among the prepared statements: it names a table that is about to go. */
	rc = sqlite3_prepare_v2(db_of(s), "SELECT name, value, changed_us FROM secrets ORDER BY name", -1, &st, NULL);
	if (rc != SQLITE_OK)
		return sql_errno(s, rc, "legacy secrets");
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		_cleanup_secbuf_ struct secbuf *v =
			secbuf_dup(sqlite3_column_blob(st, 1), (size_t)sqlite3_column_bytes(st, 1));
		const char *name = (const char *)sqlite3_column_text(st, 0);

		if (!v)
			r = -ENOMEM;
		else if (!name)
			r = -EBADMSG;
		else
			r = cb(name, v, sqlite3_column_int64(st, 2), userdata);
		if (r < 0)
			break;
	}
	if (r >= 0 && rc != SQLITE_DONE)
		r = sql_errno(s, rc, "legacy secrets");
	sqlite3_finalize(st);
	return r;
}

static int sqlite_legacy_drop(struct store *s)
{
	return exec(s, "DROP TABLE secrets");
}

/*
 * secure_delete has zeroed the dropped table's pages in the new page images; a checkpoint
 * writes them over the old ones in the database file and empties the WAL, which may still hold
 * the clear values as an earlier version wrote them.
 */
static void sqlite_scrub(struct store *s)
{
	(void)exec(s, "PRAGMA wal_checkpoint(TRUNCATE)");
}

static int sqlite_audit_head(struct store *s, int64_t *ret_seq, uint8_t ret_hash[32])
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int r, rc;

	if ((r = prepare(s, "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1", &st)) < 0)
		return r;
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE)
		return -ENOENT;
	if (rc != SQLITE_ROW)
		return sql_errno(s, rc, "audit head");
	if ((r = blob_copy(st, 1, ret_hash, 32, 32, NULL)) < 0)
		return r;
	*ret_seq = sqlite3_column_int64(st, 0);
	return 0;
}

static int sqlite_tree_get(struct store *s, unsigned level, uint64_t index, uint8_t ret[32])
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int r, rc;

	if ((r = prepare(s, "SELECT hash FROM audit_tree WHERE level = ? AND idx = ?", &st)) < 0)
		return r;
	sqlite3_bind_int64(st, 1, level);
	sqlite3_bind_int64(st, 2, (int64_t)index);
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE)
		return -ENOENT;
	if (rc != SQLITE_ROW)
		return sql_errno(s, rc, "audit tree");
	return blob_copy(st, 0, ret, 32, 32, NULL);
}

/* In-process: one statement per subtree costs no round trip. */
static int sqlite_tree_get_many(struct store *s, const struct merkle_ref *refs, size_t n, merkle_hash *ret)
{
	int r;

	for (size_t i = 0; i < n; i++)
		if ((r = sqlite_tree_get(s, refs[i].level, refs[i].index, ret[i])) < 0)
			return r;
	return 0;
}

static int sqlite_tree_put_many(struct store *s, const struct merkle_ref *refs, const merkle_hash *hashes, size_t n)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int r, rc;

	if ((r = prepare(s, "INSERT INTO audit_tree (level, idx, hash) VALUES (?, ?, ?)", &st)) < 0)
		return r;
	for (size_t i = 0; i < n; i++) {
		sqlite3_reset(st);
		sqlite3_bind_int64(st, 1, refs[i].level);
		sqlite3_bind_int64(st, 2, (int64_t)refs[i].index);
		sqlite3_bind_blob(st, 3, hashes[i], 32, SQLITE_STATIC);
		if ((rc = sqlite3_step(st)) != SQLITE_DONE)
			return sql_errno(s, rc, "audit tree append");
	}
	return 0;
}

static int sqlite_tree_leaves(struct store *s, int64_t *ret)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int r, rc;

	if ((r = prepare(s, "SELECT COALESCE(MAX(idx) + 1, 0) FROM audit_tree WHERE level = 0", &st)) < 0)
		return r;
	rc = sqlite3_step(st);
	if (rc != SQLITE_ROW)
		return sql_errno(s, rc, "audit tree size");
	*ret = sqlite3_column_int64(st, 0);
	return 0;
}

static int sqlite_checkpoint_get(struct store *s, int64_t *ret_size, char **ret_note)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	char *note;
	int r, rc;

	if ((r = prepare(s, "SELECT size, note FROM checkpoint WHERE id = 1", &st)) < 0)
		return r;
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE)
		return -ENOENT;
	if (rc != SQLITE_ROW)
		return sql_errno(s, rc, "checkpoint");
	if (!(note = strdup((const char *)sqlite3_column_text(st, 1) ?: "")))
		return -ENOMEM;
	*ret_size = sqlite3_column_int64(st, 0);
	*ret_note = note;
	return 0;
}

static int sqlite_checkpoint_put(struct store *s, int64_t size, const char *note)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int r, rc;

	if ((r = prepare(s, "INSERT INTO checkpoint (id, size, note) VALUES (1, ?, ?) "
			    "ON CONFLICT (id) DO UPDATE SET size = excluded.size, note = excluded.note", &st)) < 0)
		return r;
	sqlite3_bind_int64(st, 1, size);
	sqlite3_bind_text(st, 2, note, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	return rc == SQLITE_DONE ? 0 : sql_errno(s, rc, "checkpoint");
}

static int sqlite_audit_insert(struct store *s, const struct audit_rec *rec)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int r, rc;

	if ((r = prepare(s, "INSERT INTO audit (seq, time_us, peer, ek_hash, node_id, action, decision, reasons, "
			    "prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", &st)) < 0)
		return r;
	sqlite3_bind_int64(st, 1, rec->seq);
	sqlite3_bind_int64(st, 2, rec->time_us);
	sqlite3_bind_text(st, 3, rec->peer, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, rec->ek_hash, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 5, rec->node_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 6, rec->action, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 7, rec->decision, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 8, rec->reasons, -1, SQLITE_STATIC);
	sqlite3_bind_blob(st, 9, rec->prev_hash, 32, SQLITE_STATIC);
	sqlite3_bind_blob(st, 10, rec->hash, 32, SQLITE_STATIC);
	rc = sqlite3_step(st);
	return rc == SQLITE_DONE ? 0 : sql_errno(s, rc, "audit append");
}

#define AUDIT_COLUMNS "seq, time_us, peer, ek_hash, node_id, action, decision, reasons, prev_hash, hash"

static int audit_rows(struct store *s, sqlite3_stmt *st, int (*cb)(const struct audit_rec *r, void *userdata),
		      void *userdata)
{
	int r, rc;

	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct audit_rec a = {
			.seq = sqlite3_column_int64(st, 0),
			.time_us = sqlite3_column_int64(st, 1),
			.peer = (const char *)sqlite3_column_text(st, 2),
			.ek_hash = (const char *)sqlite3_column_text(st, 3),
			.node_id = (const char *)sqlite3_column_text(st, 4),
			.action = (const char *)sqlite3_column_text(st, 5),
			.decision = (const char *)sqlite3_column_text(st, 6),
			.reasons = (const char *)sqlite3_column_text(st, 7),
		};

		if (blob_copy(st, 8, a.prev_hash, 32, 32, NULL) < 0 || blob_copy(st, 9, a.hash, 32, 32, NULL) < 0)
			memset(a.hash, 0, sizeof(a.hash)); /* a malformed hash column fails verification */
		if ((r = cb(&a, userdata)) < 0)
			return r;
	}
	return rc == SQLITE_DONE ? 0 : sql_errno(s, rc, "audit list");
}

static int sqlite_audit_foreach(struct store *s, int (*cb)(const struct audit_rec *r, void *userdata), void *userdata)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int r;

	/* seq is the rowid: removed or reordered records show up as gaps or broken links. */
	if ((r = prepare(s, "SELECT " AUDIT_COLUMNS " FROM audit ORDER BY seq", &st)) < 0)
		return r;
	return audit_rows(s, st, cb, userdata);
}

/* One EK's records by sql (?1 the EK hash, ?2 the limit). */
static int audit_of_ek(struct store *s, const char *sql, const char *ek_hash, int64_t limit,
		       int (*cb)(const struct audit_rec *r, void *userdata), void *userdata)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int r;

	if ((r = prepare(s, sql, &st)) < 0)
		return r;
	sqlite3_bind_text(st, 1, ek_hash, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, limit);
	return audit_rows(s, st, cb, userdata);
}

static int sqlite_audit_foreach_ek(struct store *s, const char *ek_hash, int64_t limit,
				   int (*cb)(const struct audit_rec *r, void *userdata), void *userdata)
{
	return audit_of_ek(s, "SELECT " AUDIT_COLUMNS " FROM audit WHERE ek_hash = ?1 ORDER BY seq DESC LIMIT ?2", ek_hash,
			   limit, cb, userdata);
}

static int sqlite_audit_shares_ek(struct store *s, const char *ek_hash, int64_t limit,
				  int (*cb)(const struct audit_rec *r, void *userdata), void *userdata)
{
	return audit_of_ek(s, STORE_AUDIT_SHARES_SQL("?1", "?2"), ek_hash, limit, cb, userdata);
}

static int sqlite_audit_last(struct store *s, const char *action, const char *decision,
			     int (*cb)(const struct audit_rec *r, void *userdata), void *userdata)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int r;

	if ((r = prepare(s, "SELECT " AUDIT_COLUMNS " FROM audit WHERE action = ? AND decision = ? "
			    "ORDER BY seq DESC LIMIT 1", &st)) < 0)
		return r;
	sqlite3_bind_text(st, 1, action, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, decision, -1, SQLITE_STATIC);
	r = sqlite3_step(st);
	if (r == SQLITE_DONE)
		return -ENOENT;
	if (r != SQLITE_ROW)
		return sql_errno(s, r, "audit list");
	sqlite3_reset(st);
	return audit_rows(s, st, cb, userdata);
}

static int sqlite_audit_page(struct store *s, int64_t before, int64_t limit,
			     int (*cb)(const struct audit_rec *r, void *userdata), void *userdata)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int r;

	if ((r = prepare(s, "SELECT " AUDIT_COLUMNS " FROM audit WHERE seq < ? ORDER BY seq DESC LIMIT ?", &st)) < 0)
		return r;
	sqlite3_bind_int64(st, 1, before);
	sqlite3_bind_int64(st, 2, limit);
	return audit_rows(s, st, cb, userdata);
}

static int sqlite_probe_write(struct store *s, int64_t now_us)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int r, rc;

	if ((r = prepare(s, "INSERT INTO health (id, probed_us) VALUES (1, ?) "
			    "ON CONFLICT (id) DO UPDATE SET probed_us = excluded.probed_us", &st)) < 0)
		return r;
	sqlite3_bind_int64(st, 1, now_us);
	rc = sqlite3_step(st);
	return rc == SQLITE_DONE ? 0 : sql_errno(s, rc, "probe");
}

const struct store_ops store_sqlite_ops = {
	.open = sqlite_open,
	.close = sqlite_close,
	.begin = sqlite_begin,
	.commit = sqlite_commit,
	.sync_path = sqlite_sync_path,
	.set_durable = sqlite_set_durable,
	.rollback = sqlite_rollback,
	.in_transaction = sqlite_in_transaction,
	.node_get = sqlite_node_get,
	.node_get_by_id = sqlite_node_get_by_id,
	.node_set_certificate = sqlite_node_set_certificate,
	.node_request = sqlite_node_request,
	.node_set_state = sqlite_node_set_state,
	.node_set_counters = sqlite_node_set_counters,
	.node_foreach = sqlite_node_foreach,
	.node_id_taken = sqlite_node_id_taken,
	.nonce_put = sqlite_nonce_put,
	.nonce_get = sqlite_nonce_get,
	.nonce_take = sqlite_nonce_take,
	.policy_insert = sqlite_policy_insert,
	.policy_current = sqlite_policy_current,
	.policy_resign = sqlite_policy_resign,
	.policy_get = sqlite_policy_get,
	.refusal_put = sqlite_refusal_put,
	.refusal_get = sqlite_refusal_get,
	.secret_insert = sqlite_secret_insert,
	.secret_foreach = sqlite_secret_foreach,
	.disk_share_put = sqlite_disk_share_put,
	.disk_share_foreach = sqlite_disk_share_foreach,
	.secret_rewrap = sqlite_secret_rewrap,
	.secret_delete = sqlite_secret_delete,
	.kek_get = sqlite_kek_get,
	.kek_put = sqlite_kek_put,
	.legacy_foreach = sqlite_legacy_foreach,
	.legacy_drop = sqlite_legacy_drop,
	.scrub = sqlite_scrub,
	.audit_head = sqlite_audit_head,
	.audit_insert = sqlite_audit_insert,
	.tree_get = sqlite_tree_get,
	.tree_get_many = sqlite_tree_get_many,
	.tree_put_many = sqlite_tree_put_many,
	.tree_leaves = sqlite_tree_leaves,
	.checkpoint_get = sqlite_checkpoint_get,
	.checkpoint_put = sqlite_checkpoint_put,
	.audit_foreach = sqlite_audit_foreach,
	.audit_foreach_ek = sqlite_audit_foreach_ek,
	.audit_shares_ek = sqlite_audit_shares_ek,
	.node_certificates = sqlite_node_certificates,
	.audit_last = sqlite_audit_last,
	.audit_page = sqlite_audit_page,
	.node_page = sqlite_node_page,
	.probe_write = sqlite_probe_write,
	.revoked_foreach = sqlite_revoked_foreach,
	.revoked_version = sqlite_revoked_version,
	.crl_number_next = sqlite_crl_number_next,
};
