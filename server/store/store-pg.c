/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The store over PostgreSQL (libpq), so that several keystrap-server instances behind a load
 * balancer share one registry, one set of nonces and one audit chain. Same schema and the same
 * semantics as store-sqlite.c.
 *
 * Concurrency. The server builds on SQLite's single writer (BEGIN IMMEDIATE): reading the audit
 * chain's head and appending to it, checking the current policy version and inserting a newer
 * one happen with nobody writing in between (store.c does those checks and writes inside one
 * transaction). Here one transaction-level advisory lock (pg_advisory_xact_lock on STORE_LOCK)
 * gives the same guarantee across instances, held until COMMIT or ROLLBACK (or until the
 * connection dies), so the chain cannot fork and a stale policy cannot slip in. Chosen over
 * SERIALIZABLE with retries because a handshake cannot be replayed by the store (it consumed a
 * nonce and signed a certificate): retrying would leak into every caller above store.h.
 *
 * Who takes it when. store_begin (operator commands, the server's own records at start) takes
 * it at BEGIN, as before. A batch of requests (store_begin_batch) does not: its handshakes,
 * the CPU-heavy part, run with no lock, so the instances verify at once, and only
 * store_sequence takes it, at the batch's end, to append the batch's queued audit records,
 * sign the checkpoint and commit: the one window in which instances wait for each other.
 * What a batch writes before it is safe without the lock, each statement deciding by its own
 * condition: a nonce is spent by one conditional UPDATE, which row-locks it (a racing one
 * waits for that transaction, then finds it used: at most once; if it rolled back, the other
 * spends it); an enrollment request is one INSERT ... ON CONFLICT DO NOTHING; a certificate
 * is recorded only on a node still approved; the expired-nonce prune skips rows another
 * transaction holds. Lock order is rows, then the advisory lock, for batches; an operator
 * command takes the advisory lock first: if it then needs a node row an open batch wrote, the
 * two deadlock and PostgreSQL ends one of them after deadlock_timeout (the command fails as
 * busy, or the batch answers 503), rare and never half-done. The isolation level is READ
 * COMMITTED on purpose: each statement after the lock sees everything committed before the
 * lock was granted (REPEATABLE READ would keep the snapshot taken when the wait began). The
 * audit seq is the primary key as well, so even a writer bypassing the lock could not fork the
 * chain, only fail.
 *
 * PostgreSQL aborts a whole transaction on any failed statement where SQLite fails only the
 * statement; writes that may break a constraint run under a savepoint inside a transaction, so
 * callers keep SQLite's behaviour (a refused insert is -EEXIST and the transaction, with its
 * audit record, goes on). Other writes skip the two round trips: if they fail, so does the
 * connection, and with it the transaction.
 *
 * Deadlines. The server answers every request from one event loop, so no call here may wait
 * on the database without bound: libpq runs non-blocking, and every round trip polls the socket
 * against a deadline (ROUND_TRIP_MS; LOCK_WAIT_MS where the statement may queue for the writer
 * lock, which lock_timeout ends server-side first). TCP keepalives or statement_timeout would
 * not do: a stopped server's kernel still acknowledges, and a stopped backend enforces nothing.
 * A round trip past its deadline drops the connection (whatever it carried is in doubt, and a
 * transaction on it fails) and calls outside a transaction make it again with
 * PQresetStart/PQresetPoll, one bounded step at a time: a database that does not answer costs
 * the loop at most CONNECT_STEP_MS per RECONNECT_PAUSE_MS, and every other call fails at once.
 *
 * Durability: commits wait for the WAL flush (synchronous_commit is forced on if the database
 * turned it off). Secret values pass through here only as ciphertext (secrets.c), and in clear
 * only once, when the table an earlier version kept them in is read to be encrypted; activation
 * secrets never do (a challenge row holds only its proof's verifier). No parameter is ever
 * logged, and errors of statements touching clear values are logged without the server's message.
 */
#include <endian.h>
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <libpq-fe.h>

#include "deadline.h"
#include "encode.h"
#include "json-cleanup.h"
#include "log.h"
#include "secbuf.h"
#include "store-backend.h"

/* "keystrap" in ASCII: the advisory lock every writing transaction holds. */
#define STORE_LOCK "7738725071487918448"

/* Type OIDs of the parameters we send (pg_type.h is in the server headers, not libpq's). */
enum { OID_BYTEA = 17, OID_INT8 = 20, OID_TEXT = 25 };

/* No statement of ours takes longer on a database that answers; the lock wait is lock_timeout's. */
#define ROUND_TRIP_MS 3000
#define LOCK_WAIT_MS (5000 + ROUND_TRIP_MS)
#define CONNECT_STEP_MS 500
#define CONNECT_ATTEMPT_MS 5000
#define RECONNECT_PAUSE_MS 1000

struct store_pg {
	struct store base;
	PGconn *conn;
	bool in_tx;  /* between store_begin and commit/rollback, whatever became of the connection */
	bool broken; /* a round trip timed out or failed: the connection is made again before use */
	bool connecting;                  /* PQresetStart issued, PQresetPoll not done */
	PostgresPollingStatusType polling; /* what PQresetPoll last asked for */
	int64_t attempt_end_ms;           /* when the reconnect under way is given up */
	int64_t pause_end_ms;             /* no reconnect step before this: the last one timed out */
};

static struct store_pg *pg_of(struct store *s)
{
	return (struct store_pg *)s;
}

static PGconn *conn_of(struct store *s)
{
	return pg_of(s)->conn;
}

static void pg_clearp(PGresult **r)
{
	PQclear(*r);
}
#define _cleanup_pgresult_ _cleanup_(pg_clearp)

#define PARAMS_MAX 10

/* Parameters, all in binary format with explicit types; ints points into the struct itself. */
struct params {
	int n;
	Oid types[PARAMS_MAX];
	const char *values[PARAMS_MAX];
	int lengths[PARAMS_MAX];
	int formats[PARAMS_MAX];
	uint64_t ints[PARAMS_MAX];
};

static void p_add(struct params *p, Oid type, const void *v, size_t n)
{
	p->types[p->n] = type;
	p->values[p->n] = v;
	p->lengths[p->n] = (int)n;
	p->formats[p->n] = 1;
	p->n++;
}

/* NULL is SQL NULL. */
static void p_text(struct params *p, const char *s)
{
	p_add(p, OID_TEXT, s, s ? strlen(s) : 0);
}

static void p_bytea(struct params *p, const void *v, size_t n)
{
	p_add(p, OID_BYTEA, v, n);
}

static void p_int8(struct params *p, int64_t v)
{
	p->ints[p->n] = htobe64((uint64_t)v);
	p_add(p, OID_INT8, &p->ints[p->n], sizeof(uint64_t));
}

enum {
	RUN_CONFLICT = 1 << 0, /* may break a constraint: under a savepoint when inside a transaction */
	RUN_SECRET = 1 << 1,   /* touches secret values: log no server message */
};

static int sqlstate_errno(const char *state)
{
	if (!state)
		return -EIO; /* no answer: the connection is gone */
	if (strncmp(state, "23", 2) == 0)
		return -EEXIST; /* integrity constraint: unique, check, not null */
	if (streq(state, "40001") || streq(state, "40P01") || streq(state, "55P03") || streq(state, "57014"))
		return -EBUSY; /* serialization, deadlock, lock timeout, cancelled */
	if (strncmp(state, "53", 2) == 0)
		return -ENOSPC;
	if (strncmp(state, "22", 2) == 0)
		return -EINVAL;
	return -EIO;
}

static int result_errno(struct store *s, const PGresult *res, const char *what, unsigned flags)
{
	const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
	const char *msg = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
	int r = sqlstate_errno(state);

	if (flags & RUN_SECRET)
		return log_debug_errno(r, "%s: SQLSTATE %s", what, state ? state : "none");
	return log_debug_errno(r, "%s: %s (SQLSTATE %s)", what, msg ? msg : PQerrorMessage(conn_of(s)),
			       state ? state : "none");
}

static bool pg_in_transaction(struct store *s)
{
	return pg_of(s)->in_tx;
}

/* Until the connection's socket is ready for events: 0, or -ETIMEDOUT at deadline_ms. */
static int wait_socket(PGconn *c, short events, int64_t deadline_ms)
{
	int fd = PQsocket(c);

	return fd < 0 ? -ENOTCONN : fd_wait(fd, events, deadline_ms);
}

/* What the round trip in flight carried is in doubt: the connection is not used again. */
static int lose(struct store *s, int r, const char *what)
{
	pg_of(s)->broken = true;
	return log_debug_errno(r, "%s: %s", what,
			       r == -ETIMEDOUT ? "the database did not answer in time" : PQerrorMessage(conn_of(s)));
}

/* The query just sent leaves libpq's buffer by deadline_ms (answers read meanwhile, as libpq asks). */
static int flush(struct store *s, const char *what, int64_t deadline_ms)
{
	PGconn *c = conn_of(s);
	int k, r;

	while ((k = PQflush(c)) == 1) {
		if ((r = wait_socket(c, POLLIN | POLLOUT, deadline_ms)) < 0)
			return lose(s, r, what);
		if (!PQconsumeInput(c))
			return lose(s, -EIO, what);
	}
	return k == 0 ? 0 : lose(s, -EIO, what);
}

/* The next result of the query in flight, by deadline_ms; *ret NULL once there are no more. */
static int next_result(struct store *s, const char *what, int64_t deadline_ms, PGresult **ret)
{
	PGconn *c = conn_of(s);
	int r;

	while (PQisBusy(c)) {
		if ((r = wait_socket(c, POLLIN, deadline_ms)) < 0)
			return lose(s, r, what);
		if (!PQconsumeInput(c))
			return lose(s, -EIO, what);
	}
	*ret = PQgetResult(c);
	return 0;
}

static bool result_ok(const PGresult *res)
{
	return PQresultStatus(res) == PGRES_COMMAND_OK || PQresultStatus(res) == PGRES_TUPLES_OK;
}

/*
 * PQexec or PQexecParams (p not NULL) within wait_ms: the last result, or the first that
 * failed (*ret NULL when the connection died first). < 0 only when the round trip itself failed.
 */
static int round_trip(struct store *s, const char *what, const char *sql, const struct params *p, int64_t wait_ms,
		      PGresult **ret)
{
	int64_t deadline = mono_ms() + wait_ms;
	PGconn *c = conn_of(s);
	PGresult *last = NULL, *res;
	int sent, r;

	if (pg_of(s)->broken)
		return -ENOTCONN;
	sent = p ? PQsendQueryParams(c, sql, p->n, p->types, p->values, p->lengths, p->formats, 1) : PQsendQuery(c, sql);
	if (!sent)
		return lose(s, -EIO, what);
	if ((r = flush(s, what, deadline)) < 0)
		return r;
	for (;;) {
		if ((r = next_result(s, what, deadline, &res)) < 0) {
			PQclear(last);
			return r;
		}
		if (!res)
			break;
		if (last && !result_ok(last))
			PQclear(res); /* the server skips what follows a failed statement: this is the error */
		else {
			PQclear(last);
			last = res;
		}
	}
	*ret = last;
	return 0;
}

/* A statement without parameters or rows: transaction control, savepoints, settings. */
static int simple_wait(struct store *s, const char *sql, int64_t wait_ms)
{
	_cleanup_pgresult_ PGresult *res = NULL;
	int r = round_trip(s, sql, sql, NULL, wait_ms, &res);

	if (r < 0)
		return r;
	if (!result_ok(res))
		return result_errno(s, res, sql, 0);
	return 0;
}

static int simple(struct store *s, const char *sql)
{
	return simple_wait(s, sql, ROUND_TRIP_MS);
}

static int ensure_connected(struct store *s);

static int run(struct store *s, const char *what, const char *sql, const struct params *p, unsigned flags,
	       PGresult **ret)
{
	static const struct params none = { 0 };
	bool savepoint = (flags & RUN_CONFLICT) && pg_in_transaction(s);
	PGresult *res = NULL;
	int r;

	/* Outside a transaction a lost connection is re-made (a /healthz probe must see the database
	 * back); inside one it stays lost: what the transaction did is gone, so must be its commit. */
	if (!pg_in_transaction(s) && (r = ensure_connected(s)) < 0)
		return r;
	if (savepoint && (r = simple(s, "SAVEPOINT stmt")) < 0)
		return r;
	if ((r = round_trip(s, what, sql, p ? p : &none, ROUND_TRIP_MS, &res)) < 0)
		return r;
	if (!result_ok(res)) {
		r = result_errno(s, res, what, flags);
		PQclear(res);
		if (savepoint)
			(void)simple(s, "ROLLBACK TO SAVEPOINT stmt");
		return r;
	}
	if (savepoint && (r = simple(s, "RELEASE SAVEPOINT stmt")) < 0) {
		PQclear(res);
		return r;
	}
	if (ret)
		*ret = res;
	else
		PQclear(res);
	return 0;
}

/* Rows changed by an UPDATE, for "no such row". */
static int changed(PGresult *res)
{
	return atoi(PQcmdTuples(res));
}

/* Binary result columns. */
static int64_t col_int8(const PGresult *res, int row, int col)
{
	uint64_t v = 0;

	if (PQgetlength(res, row, col) == sizeof(v))
		memcpy(&v, PQgetvalue(res, row, col), sizeof(v));
	return (int64_t)be64toh(v);
}

/* Text columns: libpq NUL-terminates every value; NULL reads as "". */
static const char *col_text(const PGresult *res, int row, int col)
{
	return PQgetisnull(res, row, col) ? "" : PQgetvalue(res, row, col);
}

static void copy_text(char *dst, size_t max, const char *src)
{
	snprintf(dst, max, "%s", src);
}

static int col_bytes(const PGresult *res, int row, int col, uint8_t *dst, size_t max, size_t exact,
		     size_t *ret_size)
{
	size_t n = (size_t)PQgetlength(res, row, col);

	if (PQgetisnull(res, row, col) || n > max || (exact && n != exact))
		return -EBADMSG;
	memcpy(dst, PQgetvalue(res, row, col), n);
	if (ret_size)
		*ret_size = n;
	return 0;
}

static void on_notice(void *userdata, const char *message)
{
	(void)userdata;
	log_debug("postgresql: %.*s", (int)strcspn(message, "\n"), message);
}

/* Per connection, again after a reconnect. */
static int session_setup(struct store *s)
{
	_cleanup_pgresult_ PGresult *res = NULL;
	int r;

	PQsetNoticeProcessor(conn_of(s), on_notice, NULL);
	if (PQsetnonblocking(conn_of(s), 1) < 0)
		return lose(s, -EIO, "non-blocking mode");
	/* Like SQLite's busy timeout: a writer stuck elsewhere makes us fail (-EBUSY), not hang. And
	 * an instance stuck inside a transaction (stopped, hung) loses its session after 10 s, which
	 * frees the lock for the others; its own commit then fails, so it replies 503. */
	if ((r = simple(s, "SET lock_timeout = '5s'")) < 0 ||
	    (r = simple(s, "SET idle_in_transaction_session_timeout = '10s'")) < 0 ||
	    (r = run(s, "settings", "SELECT current_setting('synchronous_commit')", NULL, 0, &res)) < 0)
		return r;
	/* "off" would acknowledge commits before they are durable; every other value waits. */
	if (PQntuples(res) == 1 && PQgetlength(res, 0, 0) == 3 && memcmp(PQgetvalue(res, 0, 0), "off", 3) == 0)
		return simple(s, "SET synchronous_commit = on");
	return 0;
}

/* PQresetPoll as far as the server answers by deadline_ms: 0 connected, -ETIMEDOUT not yet. */
static int reconnect_step(struct store_pg *q, int64_t deadline_ms)
{
	int r;

	for (;;) {
		switch (q->polling) {
		case PGRES_POLLING_OK:
			return 0;
		case PGRES_POLLING_FAILED:
			return -ECONNREFUSED;
		case PGRES_POLLING_READING:
			r = wait_socket(q->conn, POLLIN, deadline_ms);
			break;
		default:
			r = wait_socket(q->conn, POLLOUT, deadline_ms);
			break;
		}
		if (r < 0)
			return r;
		q->polling = PQresetPoll(q->conn);
	}
}

/*
 * After a lost connection (a database restarted, stopped or unreachable), the next statement
 * outside a transaction reconnects: a bounded step of it at a time, so that a database that
 * does not answer fails calls at once instead of holding each one for a connect timeout.
 */
static int ensure_connected(struct store *s)
{
	struct store_pg *q = pg_of(s);
	int64_t now = mono_ms();
	int r;

	if (!q->broken && !q->connecting && PQstatus(q->conn) == CONNECTION_OK)
		return 0;
	if (now < q->pause_end_ms)
		return -ETIMEDOUT;
	if (!q->connecting) {
		/* Closes the old socket first: a stalled backend sees its transaction end when it wakes. */
		if (!PQresetStart(q->conn))
			return log_debug_errno(-ECONNREFUSED, "reconnect: %s", PQerrorMessage(q->conn));
		q->connecting = true;
		q->broken = false;
		q->polling = PGRES_POLLING_WRITING;
		q->attempt_end_ms = now + CONNECT_ATTEMPT_MS;
	}
	r = reconnect_step(q, now + CONNECT_STEP_MS < q->attempt_end_ms ? now + CONNECT_STEP_MS : q->attempt_end_ms);
	if (r == -ETIMEDOUT) {
		q->pause_end_ms = mono_ms() + RECONNECT_PAUSE_MS;
		if (mono_ms() >= q->attempt_end_ms)
			q->connecting = false; /* the next step starts a fresh attempt */
		return log_debug_errno(r, "reconnect: the database did not answer in time");
	}
	q->connecting = false;
	if (r < 0)
		return log_debug_errno(r, "reconnect: %s", PQerrorMessage(q->conn));
	return session_setup(s);
}

/* "nodes,policies,...": the name after each "CREATE TABLE IF NOT EXISTS " (or what prefix says) in sql. */
static int schema_names(const char *sql, const char *prefix, char *buf, size_t size, int64_t *ret_n)
{
	size_t at = 0, n;
	int64_t count = 0;

	buf[0] = 0;
	for (const char *p = strstr(sql, prefix); p; p = strstr(p, prefix)) {
		p += strlen(prefix);
		n = strcspn(p, " (;");
		if (at + n + 2 > size)
			return -ENOBUFS;
		at += (size_t)snprintf(buf + at, size - at, "%s%.*s", at ? "," : "", (int)n, p);
		count++;
	}
	*ret_n = count;
	return 0;
}

/*
 * Whether every table, column and index the schema makes is there and every table it drops is
 * gone: 1, 0, or < 0. The statements themselves take table locks before they find nothing to do
 * (ALTER TABLE ... IF NOT EXISTS an ACCESS EXCLUSIVE one, CREATE INDEX a SHARE one), and a batch
 * of another instance holds row locks on those tables while it waits for the writer lock: an
 * operator command opening the store under that lock would deadlock with it. So they run only
 * when something is missing (a first start, an upgrade).
 */
static int schema_current(struct store *s, const char *schema)
{
#define COLUMN(table, name, decl) table "." name ","
#define ONE(table, name, decl) +1
	static const char columns[] = STORE_COLUMNS_ADDED(COLUMN);
	const int64_t n_columns = 0 STORE_COLUMNS_ADDED(ONE);
#undef COLUMN
#undef ONE
	_cleanup_pgresult_ PGresult *res = NULL;
	char tables[1024], indexes[1024], dropped[256], made[2048];
	int64_t n_tables, n_indexes, n_dropped;
	struct params p = { 0 };
	int r;

	if ((r = schema_names(schema, "CREATE TABLE IF NOT EXISTS ", tables, sizeof(tables), &n_tables)) < 0 ||
	    (r = schema_names(schema, "CREATE INDEX IF NOT EXISTS ", indexes, sizeof(indexes), &n_indexes)) < 0 ||
	    (r = schema_names(schema, "DROP TABLE IF EXISTS ", dropped, sizeof(dropped), &n_dropped)) < 0)
		return r;
	snprintf(made, sizeof(made), "%s,%s", tables, indexes);
	p_text(&p, made);
	p_int8(&p, n_tables + n_indexes);
	p_text(&p, dropped);
	p_add(&p, OID_TEXT, columns, sizeof(columns) > 1 ? sizeof(columns) - 2 : 0);
	p_int8(&p, n_columns);
	if ((r = run(s, "schema check",
		     "SELECT (SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
		     "WHERE n.nspname = current_schema() AND c.relname = ANY (string_to_array($1, ','))) = $2 "
		     "AND NOT EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
		     "WHERE n.nspname = current_schema() AND c.relname = ANY (string_to_array($3, ','))) "
		     "AND (SELECT count(*) FROM information_schema.columns WHERE table_schema = current_schema() "
		     "AND table_name || '.' || column_name = ANY (string_to_array($4, ','))) = $5",
		     &p, 0, &res)) < 0)
		return r;
	return PQntuples(res) == 1 && PQgetlength(res, 0, 0) == 1 && PQgetvalue(res, 0, 0)[0] == 1;
}

static int pg_open(const char *spec, struct store **ret, char *reason, size_t reason_size)
{
	/* dbname comes last, so whatever the URI says wins over these defaults. */
	static const char *const keys[] = { "connect_timeout", "application_name", "client_encoding", "dbname", NULL };
	const char *values[] = { "10", "keystrap-server", "UTF8", spec, NULL };
#define ADD(table, name, decl) "ALTER TABLE " table " ADD COLUMN IF NOT EXISTS " name " " decl ";"
	/* No "already exists, skipping" notices: each start answers the same few bytes. */
	static const char schema[] = "BEGIN; SET LOCAL client_min_messages = warning; SELECT pg_advisory_xact_lock(" STORE_LOCK "); " STORE_SCHEMA("bytea", "bigint")
		STORE_COLUMNS_ADDED(ADD) STORE_INDEXES_ADDED " COMMIT;";
#undef ADD
	_cleanup_pgresult_ PGresult *res = NULL;
	struct store_pg *q;
	struct store *s;
	int r;

	q = calloc(1, sizeof(*q));
	if (!q)
		return -ENOMEM;
	q->base.ops = &store_pg_ops;
	s = &q->base;
	q->conn = PQconnectdbParams(keys, values, 1);
	if (!q->conn) {
		free(q);
		return -ENOMEM;
	}
	if (PQstatus(q->conn) != CONNECTION_OK) {
		const char *m = PQerrorMessage(q->conn);

		/* libpq's message can span lines (a hint, several addresses): the first says it. */
		snprintf(reason, reason_size, "%.*s", (int)strcspn(m, "\n"), m);
		store_close(s);
		return -ECONNREFUSED;
	}
	if ((r = session_setup(s)) < 0) {
		snprintf(reason, reason_size, "cannot set up the session: %s", strerror(-r));
		store_close(s);
		return r;
	}
	if ((r = schema_current(s, schema)) < 0) {
		snprintf(reason, reason_size, "cannot read the schema: %s", strerror(-r));
		store_close(s);
		return r;
	}
	if (r > 0) {
		*ret = s;
		return 0;
	}
	/* Instances starting together would race on CREATE TABLE IF NOT EXISTS: under the lock. */
	r = round_trip(s, "schema", schema, NULL, LOCK_WAIT_MS, &res);
	if (r < 0 || PQresultStatus(res) != PGRES_COMMAND_OK) {
		const char *m = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;

		snprintf(reason, reason_size, "cannot create the schema: %s", m ? m : "no answer");
		if (r >= 0)
			r = sqlstate_errno(res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL);
		store_close(s);
		return r;
	}
	*ret = s;
	return 0;
}

static void pg_close(struct store *s)
{
	PQfinish(conn_of(s));
	free(s);
}

static int begin(struct store *s, const char *sql)
{
	int r;

	if ((r = ensure_connected(s)) < 0)
		return r;
	r = simple_wait(s, sql, LOCK_WAIT_MS);
	if (r < 0) {
		store_rollback(s);
		return r;
	}
	pg_of(s)->in_tx = true;
	return 0;
}

static int pg_begin(struct store *s)
{
	return begin(s, "BEGIN ISOLATION LEVEL READ COMMITTED; SELECT pg_advisory_xact_lock(" STORE_LOCK ")");
}

static int pg_begin_batch(struct store *s)
{
	return begin(s, "BEGIN ISOLATION LEVEL READ COMMITTED");
}

/* The batch's sequencing window opens: lock_timeout ends a wait past 5 s (-EBUSY). */
static int pg_lock(struct store *s)
{
	return simple_wait(s, "SELECT pg_advisory_xact_lock(" STORE_LOCK ")", LOCK_WAIT_MS);
}

static int pg_commit(struct store *s)
{
	_cleanup_pgresult_ PGresult *res = NULL;
	int r;

	pg_of(s)->in_tx = false;
	/* A connection lost inside the transaction took the transaction with it. */
	if ((r = round_trip(s, "commit", "COMMIT", NULL, ROUND_TRIP_MS, &res)) < 0)
		return r;
	if (PQresultStatus(res) != PGRES_COMMAND_OK)
		return result_errno(s, res, "commit", 0);
	/* COMMIT of a failed transaction "succeeds" as ROLLBACK. */
	if (!streq(PQcmdStatus(res), "COMMIT"))
		return log_debug_errno(-EIO, "commit: the transaction was rolled back");
	return 0;
}

static void pg_rollback(struct store *s)
{
	PGTransactionStatusType t = PQtransactionStatus(conn_of(s));

	pg_of(s)->in_tx = false;
	if (!pg_of(s)->broken && (t == PQTRANS_INTRANS || t == PQTRANS_INERROR))
		(void)simple(s, "ROLLBACK");
}

#define NODE_COLUMNS \
	"ek_hash, node_id, state, requested_us, changed_us, peer, reset_count, restart_count, grp, attested_us, " \
	"cert_serial, cert_not_after"

static int node_from_row(const PGresult *res, int row, struct node_rec *n)
{
	memset(n, 0, sizeof(*n));
	copy_text(n->ek_hash, sizeof(n->ek_hash), col_text(res, row, 0));
	copy_text(n->node_id, sizeof(n->node_id), col_text(res, row, 1));
	n->requested_us = col_int8(res, row, 3);
	n->changed_us = col_int8(res, row, 4);
	copy_text(n->peer, sizeof(n->peer), col_text(res, row, 5));
	n->reset_count = col_int8(res, row, 6);
	n->restart_count = col_int8(res, row, 7);
	copy_text(n->group, sizeof(n->group), col_text(res, row, 8));
	n->attested_us = col_int8(res, row, 9);
	copy_text(n->cert_serial, sizeof(n->cert_serial), col_text(res, row, 10));
	n->cert_not_after = col_int8(res, row, 11);
	return node_state_from_name(col_text(res, row, 2), &n->state);
}

static int node_select(struct store *s, const char *sql, const char *key, struct node_rec *ret)
{
	_cleanup_pgresult_ PGresult *res = NULL;
	struct params p = { 0 };
	int r;

	p_text(&p, key);
	if ((r = run(s, "node get", sql, &p, 0, &res)) < 0)
		return r;
	if (PQntuples(res) == 0)
		return -ENOENT;
	return node_from_row(res, 0, ret);
}

static int pg_node_get(struct store *s, const char *ek_hash, struct node_rec *ret)
{
	return node_select(s, "SELECT " NODE_COLUMNS " FROM nodes WHERE ek_hash = $1", ek_hash, ret);
}

static int pg_node_get_by_id(struct store *s, const char *node_id, struct node_rec *ret)
{
	return node_select(s, "SELECT " NODE_COLUMNS " FROM nodes WHERE node_id = $1", node_id, ret);
}

/* The certificate kept for the CRL; the node's own rows a day past expiry go. */
static int pg_cert_record(struct store *s, const char *ek_hash, int64_t attested_us, const char *serial,
			  int64_t not_before, int64_t not_after)
{
	struct params d = { 0 }, i = { 0 };
	int r;

	p_text(&d, ek_hash);
	p_int8(&d, attested_us / 1000000 - STORE_CERT_KEEP_S);
	if ((r = run(s, "certificate prune", "DELETE FROM certificates WHERE ek_hash = $1 AND not_after < $2", &d, 0,
		     NULL)) < 0)
		return r;
	p_text(&i, serial);
	p_text(&i, ek_hash);
	p_int8(&i, not_before);
	p_int8(&i, not_after);
	return run(s, "certificate record",
		   "INSERT INTO certificates (serial, ek_hash, not_before, not_after) VALUES ($1, $2, $3, $4)", &i, 0, NULL);
}

static int pg_node_set_certificate(struct store *s, const char *ek_hash, int64_t attested_us, const char *serial,
				   int64_t not_before, int64_t not_after)
{
	_cleanup_pgresult_ PGresult *res = NULL;
	struct params p = { 0 };
	int r;

	p_int8(&p, attested_us);
	p_text(&p, serial);
	p_int8(&p, not_after);
	p_text(&p, ek_hash);
	if ((r = run(s, "node certificate",
		     "UPDATE nodes SET attested_us = $1, cert_serial = $2, cert_not_after = $3 "
		     "WHERE ek_hash = $4 AND state = 'approved'",
		     &p, 0, &res)) < 0)
		return r;
	if (changed(res) != 1)
		return -ENOENT;
	return pg_cert_record(s, ek_hash, attested_us, serial, not_before, not_after);
}

static int pg_node_certificates(struct store *s, const char *ek_hash, int64_t limit,
				int (*cb)(const struct cert_rec *c, void *userdata), void *userdata)
{
	_cleanup_pgresult_ PGresult *res = NULL;
	struct params p = { 0 };
	int r;

	p_text(&p, ek_hash);
	p_int8(&p, limit);
	if ((r = run(s, "node certificates", STORE_NODE_CERTS_SQL("$1", "$2"), &p, 0, &res)) < 0)
		return r;
	for (int i = 0; i < PQntuples(res); i++) {
		struct cert_rec c = { .not_before = col_int8(res, i, 1), .not_after = col_int8(res, i, 2) };

		copy_text(c.serial, sizeof(c.serial), col_text(res, i, 0));
		if ((r = cb(&c, userdata)) < 0)
			return r;
	}
	return 0;
}

static int pg_node_request(struct store *s, const char *ek_hash, const char *peer, int64_t now_us)
{
	struct params p = { 0 };

	p_text(&p, ek_hash);
	p_int8(&p, now_us);
	p_text(&p, peer);
	/* A batch holds no lock here: another instance's first request for the same EK may be in
	 * flight. Its INSERT decides (this one waits for it): either way the request is recorded. */
	return run(s, "node request",
		   "INSERT INTO nodes (ek_hash, node_id, state, requested_us, changed_us, peer) "
		   "VALUES ($1, NULL, 'requested', $2, $2, $3) ON CONFLICT (ek_hash) DO NOTHING",
		   &p, RUN_CONFLICT, NULL);
}

static int pg_node_set_state(struct store *s, const char *ek_hash, enum node_state state, const char *node_id,
			     const char *group, int64_t now_us)
{
	_cleanup_pgresult_ PGresult *res = NULL;
	struct params p = { 0 };
	int r;

	p_text(&p, node_state_name(state));
	p_text(&p, node_id);
	p_int8(&p, now_us);
	p_text(&p, group);
	p_text(&p, ek_hash);
	if ((r = run(s, "node state",
		     "UPDATE nodes SET state = $1, node_id = COALESCE($2, node_id), changed_us = $3, "
		     "grp = COALESCE($4, grp) WHERE ek_hash = $5",
		     &p, RUN_CONFLICT, &res)) < 0)
		return r;
	return changed(res) == 1 ? 0 : -ENOENT;
}

static int pg_node_set_counters(struct store *s, const char *ek_hash, int64_t reset_count, int64_t restart_count)
{
	_cleanup_pgresult_ PGresult *res = NULL;
	struct params p = { 0 };
	int r;

	p_int8(&p, reset_count);
	p_int8(&p, restart_count);
	p_text(&p, ek_hash);
	if ((r = run(s, "node counters", "UPDATE nodes SET reset_count = $1, restart_count = $2 WHERE ek_hash = $3", &p,
		     0, &res)) < 0)
		return r;
	return changed(res) == 1 ? 0 : -ENOENT;
}

static int node_result(PGresult *res, int (*cb)(const struct node_rec *n, void *userdata), void *userdata)
{
	int r;

	for (int i = 0; i < PQntuples(res); i++) {
		struct node_rec n;

		if ((r = node_from_row(res, i, &n)) < 0 || (r = cb(&n, userdata)) < 0)
			return r;
	}
	return 0;
}

static int pg_node_foreach(struct store *s, int (*cb)(const struct node_rec *n, void *userdata), void *userdata)
{
	_cleanup_pgresult_ PGresult *res = NULL;
	int r;

	if ((r = run(s, "node list", "SELECT " NODE_COLUMNS " FROM nodes ORDER BY requested_us, ek_hash", NULL, 0,
		     &res)) < 0)
		return r;
	return node_result(res, cb, userdata);
}

static int pg_node_page(struct store *s, int64_t offset, int64_t limit,
			int (*cb)(const struct node_rec *n, void *userdata), void *userdata)
{
	_cleanup_pgresult_ PGresult *res = NULL;
	struct params p = { 0 };
	int r;

	p_int8(&p, limit);
	p_int8(&p, offset);
	if ((r = run(s, "node list", "SELECT " NODE_COLUMNS " FROM nodes ORDER BY requested_us, ek_hash LIMIT $1 OFFSET $2",
		     &p, 0, &res)) < 0)
		return r;
	return node_result(res, cb, userdata);
}

static int pg_revoked_foreach(struct store *s, int64_t now,
			      int (*cb)(const char *serial, int64_t revoked_us, void *userdata), void *userdata)
{
	_cleanup_pgresult_ PGresult *res = NULL;
	struct params p = { 0 };
	int r;

	p_int8(&p, now);
	if ((r = run(s, "revoked certificates", STORE_REVOKED_SQL("$1"), &p, 0, &res)) < 0)
		return r;
	for (int i = 0; i < PQntuples(res); i++)
		if ((r = cb(col_text(res, i, 0), col_int8(res, i, 1), userdata)) < 0)
			return r;
	return 0;
}

static int pg_revoked_version(struct store *s, int64_t ret[2])
{
	_cleanup_pgresult_ PGresult *res = NULL;
	int r;

	if ((r = run(s, "revoked version", STORE_REVOKED_VERSION_SQL, NULL, 0, &res)) < 0)
		return r;
	if (PQntuples(res) != 1)
		return -EIO;
	ret[0] = col_int8(res, 0, 0);
	ret[1] = col_int8(res, 0, 1);
	return 0;
}

static int pg_crl_number_next(struct store *s, int64_t *ret)
{
	_cleanup_pgresult_ PGresult *res = NULL;
	int r;

	if ((r = run(s, "crl number", STORE_CRL_NUMBER_SQL, NULL, 0, &res)) < 0)
		return r;
	if (PQntuples(res) != 1)
		return -EIO;
	*ret = col_int8(res, 0, 0);
	return 0;
}

static int pg_node_id_taken(struct store *s, const char *node_id, const char *except_ek_hash)
{
	_cleanup_pgresult_ PGresult *res = NULL;
	struct params p = { 0 };
	int r;

	p_text(&p, node_id);
	p_text(&p, except_ek_hash);
	if ((r = run(s, "node id", "SELECT 1 FROM nodes WHERE node_id = $1 AND ek_hash != $2", &p, 0, &res)) < 0)
		return r;
	return PQntuples(res) > 0 ? -EEXIST : 0;
}

static int pg_nonce_put(struct store *s, const struct nonce_rec *n, int64_t now_us)
{
	struct params p = { 0 }, prune = { 0 };
	int r;

	p_text(&p, n->session);
	p_bytea(&p, n->nonce, sizeof(n->nonce));
	p_bytea(&p, n->verifier, sizeof(n->verifier));
	p_text(&p, n->ek_hash);
	p_bytea(&p, n->ak_pub, n->ak_pub_size);
	p_int8(&p, n->expires_us);
	if ((r = run(s, "nonce put",
		     "INSERT INTO challenges (session, nonce, verifier, ek_hash, ak_pub, expires_us) "
		     "VALUES ($1, $2, $3, $4, $5, $6)",
		     &p, RUN_CONFLICT, NULL)) < 0)
		return r;
	p_int8(&prune, now_us - 86400LL * 1000000);
	/* Instances prune at once: rows another transaction is deleting are its to delete. */
	(void)run(s, "nonce prune",
		  "DELETE FROM challenges WHERE session IN "
		  "(SELECT session FROM challenges WHERE expires_us < $1 FOR UPDATE SKIP LOCKED)",
		  &prune, 0, NULL);
	return 0;
}

static int pg_nonce_get(struct store *s, const char *session, struct nonce_rec *ret)
{
	_cleanup_pgresult_ PGresult *res = NULL;
	struct params p = { 0 };
	struct nonce_rec n = { 0 };
	int r;

	p_text(&p, session);
	if ((r = run(s, "nonce get",
		     "SELECT nonce, verifier, ek_hash, ak_pub, expires_us, used FROM challenges WHERE session = $1", &p,
		     0, &res)) < 0)
		return r;
	if (PQntuples(res) == 0)
		return -ENOENT;
	n.used = col_int8(res, 0, 5) != 0;
	copy_text(n.session, sizeof(n.session), session);
	/* A spent nonce's verifier is wiped: only an unused one must have its 32 bytes. */
	r = col_bytes(res, 0, 0, n.nonce, sizeof(n.nonce), sizeof(n.nonce), NULL);
	if (r >= 0 && !n.used)
		r = col_bytes(res, 0, 1, n.verifier, sizeof(n.verifier), sizeof(n.verifier), NULL);
	if (r >= 0)
		r = col_bytes(res, 0, 3, n.ak_pub, sizeof(n.ak_pub), 0, &n.ak_pub_size);
	if (r < 0)
		return r;
	copy_text(n.ek_hash, sizeof(n.ek_hash), col_text(res, 0, 2));
	n.expires_us = col_int8(res, 0, 4);
	*ret = n;
	return 0;
}

static int pg_nonce_take(struct store *s, const char *session, int64_t now_us)
{
	_cleanup_pgresult_ PGresult *res = NULL;
	struct params p = { 0 };
	int r;

	p_text(&p, session);
	p_int8(&p, now_us);
	/* The UPDATE row-locks what it finds; a racing one waits and then finds it used: at most once. */
	if ((r = run(s, "nonce take",
		     "UPDATE challenges SET used = 1, verifier = ''::bytea "
		     "WHERE session = $1 AND used = 0 AND expires_us >= $2",
		     &p, 0, &res)) < 0)
		return r;
	return changed(res) == 1 ? 0 : -EALREADY;
}

static int pg_policy_insert(struct store *s, int64_t version, const char *text, size_t text_size,
			    const char *signatures, int64_t now_us)
{
	struct params p = { 0 };

	p_int8(&p, version);
	p_int8(&p, now_us);
	p_add(&p, OID_TEXT, text, text_size);
	p_text(&p, signatures);
	return run(s, "policy put", "INSERT INTO policies (version, loaded_us, text, signatures) VALUES ($1, $2, $3, $4)",
		   &p, RUN_CONFLICT, NULL);
}

static int pg_policy_resign(struct store *s, int64_t version, const char *signatures)
{
	_cleanup_pgresult_ PGresult *res = NULL;
	struct params p = { 0 };
	int r;

	p_text(&p, signatures);
	p_int8(&p, version);
	if ((r = run(s, "policy resign", "UPDATE policies SET signatures = $1 WHERE version = $2", &p, 0, &res)) < 0)
		return r;
	return changed(res) == 1 ? 0 : -ENOENT;
}

static int text_dup(const PGresult *res, int col, char **ret, size_t *ret_size)
{
	size_t n = (size_t)PQgetlength(res, 0, col);
	char *t = malloc(n + 1);

	if (!t)
		return -ENOMEM;
	memcpy(t, PQgetvalue(res, 0, col), n);
	t[n] = 0;
	*ret = t;
	if (ret_size)
		*ret_size = n;
	return 0;
}

static int pg_policy_current(struct store *s, int64_t *ret_version, char **ret_text, size_t *ret_size,
			     char **ret_signatures)
{
	_cleanup_pgresult_ PGresult *res = NULL;
	_cleanup_free_ char *text = NULL;
	int r;

	if ((r = run(s, "policy current", "SELECT version, text, signatures FROM policies ORDER BY version DESC LIMIT 1",
		     NULL, 0, &res)) < 0)
		return r;
	if (PQntuples(res) == 0)
		return -ENOENT;
	if ((r = text_dup(res, 1, &text, ret_size)) < 0 || (r = text_dup(res, 2, ret_signatures, NULL)) < 0)
		return r;
	*ret_version = col_int8(res, 0, 0);
	*ret_text = TAKE_PTR(text);
	return 0;
}

static int pg_policy_get(struct store *s, int64_t version, char **ret_text, size_t *ret_size, char **ret_signatures)
{
	_cleanup_pgresult_ PGresult *res = NULL;
	_cleanup_free_ char *text = NULL;
	struct params p = { 0 };
	int r;

	p_int8(&p, version);
	if ((r = run(s, "policy get", "SELECT text, signatures FROM policies WHERE version = $1", &p, 0, &res)) < 0)
		return r;
	if (PQntuples(res) == 0)
		return -ENOENT;
	if ((r = text_dup(res, 0, &text, ret_size)) < 0 || (r = text_dup(res, 1, ret_signatures, NULL)) < 0)
		return r;
	*ret_text = TAKE_PTR(text);
	return 0;
}

static int pg_refusal_put(struct store *s, const struct refusal_rec *rec)
{
	struct params p = { 0 };

	p_text(&p, rec->ek_hash);
	p_int8(&p, rec->audit_seq);
	p_int8(&p, rec->time_us);
	p_int8(&p, rec->policy_version);
	p_text(&p, rec->evidence);
	return run(s, "refusal put",
		   "INSERT INTO refusals (ek_hash, audit_seq, time_us, policy_version, evidence) "
		   "VALUES ($1, $2, $3, $4, $5) ON CONFLICT (ek_hash) DO UPDATE SET audit_seq = excluded.audit_seq, "
		   "time_us = excluded.time_us, policy_version = excluded.policy_version, evidence = excluded.evidence",
		   &p, 0, NULL);
}

#define REFUSAL_COLUMNS "ek_hash, audit_seq, time_us, policy_version, evidence"

static int pg_refusal_get(struct store *s, const char *ek_hash, int64_t audit_seq, struct refusal_rec *ret)
{
	_cleanup_pgresult_ PGresult *res = NULL;
	struct params p = { 0 };
	int r;

	if (ek_hash)
		p_text(&p, ek_hash);
	else
		p_int8(&p, audit_seq);
	if ((r = run(s, "refusal get",
		     ek_hash ? "SELECT " REFUSAL_COLUMNS " FROM refusals WHERE ek_hash = $1" :
			       "SELECT " REFUSAL_COLUMNS " FROM refusals WHERE audit_seq = $1",
		     &p, 0, &res)) < 0)
		return r;
	if (PQntuples(res) == 0)
		return -ENOENT;
	if ((r = text_dup(res, 4, &ret->evidence, NULL)) < 0)
		return r;
	copy_text(ret->ek_hash, sizeof(ret->ek_hash), col_text(res, 0, 0));
	ret->audit_seq = col_int8(res, 0, 1);
	ret->time_us = col_int8(res, 0, 2);
	ret->policy_version = col_int8(res, 0, 3);
	return 0;
}

static int pg_secret_insert(struct store *s, const struct secret_row *row)
{
	struct params p = { 0 };

	p_text(&p, row->name);
	p_int8(&p, row->version);
	p_int8(&p, row->created_us);
	p_int8(&p, row->size);
	p_text(&p, row->kek_id);
	p_bytea(&p, row->wrapped_key, row->wrapped_key_size);
	p_bytea(&p, row->ciphertext, row->ciphertext_size);
	return run(s, "secret insert",
		   "INSERT INTO secret_versions (name, version, created_us, deleted_us, size, kek_id, wrapped_key, "
		   "ciphertext) VALUES ($1, $2, $3, 0, $4, $5, $6, $7)",
		   &p, RUN_CONFLICT, NULL);
}

static int pg_disk_share_put(struct store *s, const struct disk_share_row *row)
{
	struct params p = { 0 };

	p_text(&p, row->ek_hash);
	p_text(&p, row->volume);
	p_int8(&p, row->created_us);
	p_text(&p, row->kek_id);
	p_bytea(&p, row->wrapped_key, row->wrapped_key_size);
	p_bytea(&p, row->ciphertext, row->ciphertext_size);
	return run(s, "disk share put",
		   "INSERT INTO disk_shares (ek_hash, volume, created_us, kek_id, wrapped_key, ciphertext) "
		   "VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (ek_hash, volume) DO UPDATE SET "
		   "created_us = excluded.created_us, kek_id = excluded.kek_id, "
		   "wrapped_key = excluded.wrapped_key, ciphertext = excluded.ciphertext",
		   &p, 0, NULL);
}

#define DISK_SHARE_COLUMNS "ek_hash, volume, created_us, kek_id, wrapped_key, ciphertext"

static int pg_disk_share_foreach(struct store *s, const char *ek_hash, const char *volume,
				 int (*cb)(const struct disk_share_row *row, void *userdata), void *userdata)
{
	_cleanup_pgresult_ PGresult *res = NULL;
	struct params p = { 0 };
	int r;

	if (ek_hash) {
		p_text(&p, ek_hash);
		p_text(&p, volume);
	}
	if ((r = run(s, "disk share get",
		     ek_hash ? "SELECT " DISK_SHARE_COLUMNS " FROM disk_shares WHERE ek_hash = $1 AND volume = $2" :
			       "SELECT " DISK_SHARE_COLUMNS " FROM disk_shares ORDER BY ek_hash, volume",
		     &p, 0, &res)) < 0)
		return r;
	if (ek_hash && PQntuples(res) == 0)
		return -ENOENT;
	for (int i = 0; i < PQntuples(res); i++) {
		struct disk_share_row row = {
			.ek_hash = col_text(res, i, 0),
			.volume = col_text(res, i, 1),
			.created_us = col_int8(res, i, 2),
			.kek_id = col_text(res, i, 3),
			.wrapped_key = (const uint8_t *)PQgetvalue(res, i, 4),
			.wrapped_key_size = (size_t)PQgetlength(res, i, 4),
			.ciphertext = (const uint8_t *)PQgetvalue(res, i, 5),
			.ciphertext_size = (size_t)PQgetlength(res, i, 5),
		};

		if ((r = cb(&row, userdata)) < 0)
			return r;
	}
	return 0;
}

#define SECRET_COLUMNS "name, version, created_us, deleted_us, size, kek_id, wrapped_key, ciphertext"

static int pg_secret_foreach(struct store *s, const char *name, bool newest_only,
			     int (*cb)(const struct secret_row *row, void *userdata), void *userdata)
{
	static const char *const sql[2][2] = {
		{ "SELECT " SECRET_COLUMNS " FROM secret_versions ORDER BY name, version",
		  "SELECT " SECRET_COLUMNS " FROM secret_versions v "
		  "WHERE version = (SELECT MAX(version) FROM secret_versions WHERE name = v.name) ORDER BY name" },
		{ "SELECT " SECRET_COLUMNS " FROM secret_versions WHERE name = $1 ORDER BY version",
		  "SELECT " SECRET_COLUMNS " FROM secret_versions WHERE name = $1 ORDER BY version DESC LIMIT 1" },
	};
	_cleanup_pgresult_ PGresult *res = NULL;
	struct params p = { 0 };
	int r;

	if (name)
		p_text(&p, name);
	if ((r = run(s, "secret list", sql[!!name][newest_only], &p, 0, &res)) < 0)
		return r;
	for (int i = 0; i < PQntuples(res); i++) {
		struct secret_row row = {
			.name = col_text(res, i, 0),
			.version = col_int8(res, i, 1),
			.created_us = col_int8(res, i, 2),
			.deleted_us = col_int8(res, i, 3),
			.size = col_int8(res, i, 4),
			.kek_id = col_text(res, i, 5),
			.wrapped_key = (const uint8_t *)PQgetvalue(res, i, 6),
			.wrapped_key_size = (size_t)PQgetlength(res, i, 6),
			.ciphertext = (const uint8_t *)PQgetvalue(res, i, 7),
			.ciphertext_size = (size_t)PQgetlength(res, i, 7),
		};

		if ((r = cb(&row, userdata)) < 0)
			return r;
	}
	return 0;
}

static int pg_secret_rewrap(struct store *s, const char *name, int64_t version, const char *kek_id,
			    const uint8_t *wrapped_key, size_t size)
{
	_cleanup_pgresult_ PGresult *res = NULL;
	struct params p = { 0 };
	int r;

	p_text(&p, kek_id);
	p_bytea(&p, wrapped_key, size);
	p_text(&p, name);
	p_int8(&p, version);
	if ((r = run(s, "secret rewrap",
		     "UPDATE secret_versions SET kek_id = $1, wrapped_key = $2 WHERE name = $3 AND version = $4", &p, 0,
		     &res)) < 0)
		return r;
	return changed(res) == 1 ? 0 : -ENOENT;
}

static int pg_secret_delete(struct store *s, const char *name, int64_t now_us)
{
	_cleanup_pgresult_ PGresult *res = NULL;
	struct params p = { 0 };
	int r;

	p_int8(&p, now_us);
	p_text(&p, name);
	if ((r = run(s, "secret delete",
		     "UPDATE secret_versions SET wrapped_key = ''::bytea, ciphertext = ''::bytea, deleted_us = $1 "
		     "WHERE name = $2 AND deleted_us = 0",
		     &p, 0, &res)) < 0)
		return r;
	return changed(res);
}

static int pg_kek_get(struct store *s, char ret_id[KEK_ID_HEX + 1], uint8_t **ret_check, size_t *ret_size)
{
	_cleanup_pgresult_ PGresult *res = NULL;
	uint8_t *check;
	size_t n;
	int r;

	if ((r = run(s, "kek get", "SELECT kek_id, verifier FROM kek WHERE id = 1", NULL, 0, &res)) < 0)
		return r;
	if (PQntuples(res) == 0)
		return -ENOENT;
	n = (size_t)PQgetlength(res, 0, 1);
	if (strlen(col_text(res, 0, 0)) > KEK_ID_HEX)
		return -EBADMSG;
	check = malloc(n ? n : 1);
	if (!check)
		return -ENOMEM;
	memcpy(check, PQgetvalue(res, 0, 1), n);
	copy_text(ret_id, KEK_ID_HEX + 1, col_text(res, 0, 0));
	*ret_check = check;
	*ret_size = n;
	return 0;
}

static int pg_kek_put(struct store *s, const char *kek_id, const uint8_t *check, size_t size, int64_t now_us)
{
	struct params p = { 0 };

	p_text(&p, kek_id);
	p_bytea(&p, check, size);
	p_int8(&p, now_us);
	return run(s, "kek put",
		   "INSERT INTO kek (id, kek_id, verifier, changed_us) VALUES (1, $1, $2, $3) ON CONFLICT (id) DO UPDATE "
		   "SET kek_id = excluded.kek_id, verifier = excluded.verifier, changed_us = excluded.changed_us",
		   &p, 0, NULL);
}

static int pg_legacy_foreach(struct store *s,
			     int (*cb)(const char *name, const struct secbuf *value, int64_t changed_us, void *userdata),
			     void *userdata)
{
	_cleanup_pgresult_ PGresult *probe = NULL, *res = NULL;
	int r;

	if ((r = run(s, "legacy secrets", "SELECT count(*) FROM pg_tables WHERE schemaname = current_schema() AND "
					  "tablename = 'secrets'",
		     NULL, 0, &probe)) < 0)
		return r;
	if (PQntuples(probe) != 1 || col_int8(probe, 0, 0) == 0)
		return -ENOENT;
	if ((r = run(s, "legacy secrets", "SELECT name, value, changed_us FROM secrets ORDER BY name", NULL, RUN_SECRET,
		     &res)) < 0)
		return r;
	for (int i = 0; i < PQntuples(res) && r >= 0; i++) {
		char *v = PQgetvalue(res, i, 1);
		size_t n = (size_t)PQgetlength(res, i, 1);
		_cleanup_secbuf_ struct secbuf *b = secbuf_dup(v, n);

		explicit_bzero(v, n);
		r = b ? cb(col_text(res, i, 0), b, col_int8(res, i, 2), userdata) : -ENOMEM;
	}
	return r;
}

static int pg_legacy_drop(struct store *s)
{
	return run(s, "legacy drop", "DROP TABLE secrets", NULL, 0, NULL);
}

/* DROP TABLE removed the table's files; what remains is in WAL archives and backups, out of reach. */
static void pg_scrub(struct store *s)
{
	(void)s;
}

static int pg_audit_head(struct store *s, int64_t *ret_seq, uint8_t ret_hash[32])
{
	_cleanup_pgresult_ PGresult *res = NULL;
	int r;

	if ((r = run(s, "audit head", "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1", NULL, 0, &res)) < 0)
		return r;
	if (PQntuples(res) == 0)
		return -ENOENT;
	if ((r = col_bytes(res, 0, 1, ret_hash, 32, 32, NULL)) < 0)
		return r;
	*ret_seq = col_int8(res, 0, 0);
	return 0;
}

static int pg_tree_get(struct store *s, unsigned level, uint64_t index, uint8_t ret[32])
{
	_cleanup_pgresult_ PGresult *res = NULL;
	struct params p = { 0 };
	int r;

	p_int8(&p, level);
	p_int8(&p, (int64_t)index);
	if ((r = run(s, "audit tree", "SELECT hash FROM audit_tree WHERE level = $1 AND idx = $2", &p, 0, &res)) < 0)
		return r;
	if (PQntuples(res) == 0)
		return -ENOENT;
	return col_bytes(res, 0, 0, ret, 32, 32, NULL);
}

/* "0,3,7": the levels or indexes of refs, for string_to_array. */
static void ref_list(const struct merkle_ref *refs, size_t n, bool levels, char *buf, size_t size)
{
	size_t at = 0;

	buf[0] = 0;
	for (size_t i = 0; i < n && at < size; i++)
		at += (size_t)snprintf(buf + at, size - at, "%s%" PRIu64, i ? "," : "",
				       levels ? (uint64_t)refs[i].level : refs[i].index);
}

/* One round trip for the whole right edge of the tree, whatever its size. */
static int pg_tree_get_many(struct store *s, const struct merkle_ref *refs, size_t n, merkle_hash *ret)
{
	_cleanup_pgresult_ PGresult *res = NULL;
	struct params p = { 0 };
	char levels[MERKLE_PROOF_MAX * 4], idxs[MERKLE_PROOF_MAX * 21];
	int r;

	ref_list(refs, n, true, levels, sizeof(levels));
	ref_list(refs, n, false, idxs, sizeof(idxs));
	p_text(&p, levels);
	p_text(&p, idxs);
	if ((r = run(s, "audit tree",
		     "SELECT t.level, t.idx, t.hash FROM audit_tree t JOIN unnest(string_to_array($1, ',')::bigint[], "
		     "string_to_array($2, ',')::bigint[]) AS w(level, idx) ON t.level = w.level AND t.idx = w.idx",
		     &p, 0, &res)) < 0)
		return r;
	if ((size_t)PQntuples(res) != n)
		return -ENOENT;
	for (size_t i = 0; i < n; i++) {
		int row;

		for (row = 0; row < PQntuples(res); row++)
			if (col_int8(res, row, 0) == (int64_t)refs[i].level && col_int8(res, row, 1) == (int64_t)refs[i].index)
				break;
		if (row == PQntuples(res) || (r = col_bytes(res, row, 2, ret[i], 32, 32, NULL)) < 0)
			return -ENOENT;
	}
	return 0;
}

/* Every subtree the leaves complete, in one statement, however many. */
static int pg_tree_put_many(struct store *s, const struct merkle_ref *refs, const merkle_hash *hashes, size_t n)
{
	_cleanup_free_ char *levels = malloc(n * 4 + 1), *idxs = malloc(n * 21 + 1), *hex = malloc(n * 65 + 1);
	struct params p = { 0 };

	if (!levels || !idxs || !hex)
		return -ENOMEM;
	ref_list(refs, n, true, levels, n * 4 + 1);
	ref_list(refs, n, false, idxs, n * 21 + 1);
	for (size_t i = 0; i < n; i++) {
		hex_encode(hashes[i], 32, hex + i * 65);
		hex[i * 65 + 64] = i + 1 < n ? ',' : 0;
	}
	if (n == 0)
		hex[0] = 0;
	p_text(&p, levels);
	p_text(&p, idxs);
	p_text(&p, hex);
	return run(s, "audit tree append",
		   "INSERT INTO audit_tree (level, idx, hash) SELECT l, i, decode(h, 'hex') FROM "
		   "unnest(string_to_array($1, ',')::bigint[], string_to_array($2, ',')::bigint[], "
		   "string_to_array($3, ',')) AS t(l, i, h)",
		   &p, 0, NULL);
}

static int pg_tree_leaves(struct store *s, int64_t *ret)
{
	_cleanup_pgresult_ PGresult *res = NULL;
	int r;

	if ((r = run(s, "audit tree size", "SELECT COALESCE(MAX(idx) + 1, 0) FROM audit_tree WHERE level = 0", NULL, 0,
		     &res)) < 0)
		return r;
	*ret = col_int8(res, 0, 0);
	return 0;
}

static int pg_checkpoint_get(struct store *s, int64_t *ret_size, char **ret_note)
{
	_cleanup_pgresult_ PGresult *res = NULL;
	char *note;
	int r;

	if ((r = run(s, "checkpoint", "SELECT size, note FROM checkpoint WHERE id = 1", NULL, 0, &res)) < 0)
		return r;
	if (PQntuples(res) == 0)
		return -ENOENT;
	if (!(note = strdup(col_text(res, 0, 1))))
		return -ENOMEM;
	*ret_size = col_int8(res, 0, 0);
	*ret_note = note;
	return 0;
}

static int pg_checkpoint_put(struct store *s, int64_t size, const char *note)
{
	struct params p = { 0 };

	p_int8(&p, size);
	p_text(&p, note);
	return run(s, "checkpoint",
		   "INSERT INTO checkpoint (id, size, note) VALUES (1, $1, $2) "
		   "ON CONFLICT (id) DO UPDATE SET size = excluded.size, note = excluded.note",
		   &p, 0, NULL);
}

static int pg_audit_insert(struct store *s, const struct audit_rec *rec)
{
	struct params p = { 0 };

	p_int8(&p, rec->seq);
	p_int8(&p, rec->time_us);
	p_text(&p, rec->peer ? rec->peer : "");
	p_text(&p, rec->ek_hash ? rec->ek_hash : "");
	p_text(&p, rec->node_id ? rec->node_id : "");
	p_text(&p, rec->action ? rec->action : "");
	p_text(&p, rec->decision ? rec->decision : "");
	p_text(&p, rec->reasons ? rec->reasons : "");
	p_bytea(&p, rec->prev_hash, 32);
	p_bytea(&p, rec->hash, 32);
	return run(s, "audit append",
		   "INSERT INTO audit (seq, time_us, peer, ek_hash, node_id, action, decision, reasons, prev_hash, hash) "
		   "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
		   &p, 0, NULL);
}

/* A batch's records in one statement: a JSON array of rows (json-c escapes the text). */
static int pg_audit_insert_many(struct store *s, const struct audit_rec *const *recs, size_t n)
{
	_cleanup_json_ json_object *rows = json_object_new_array();
	struct params p = { 0 };

	if (!rows)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		const struct audit_rec *r = recs[i];
		struct json_object *o = json_object_new_object();
		char prev[2 + 64 + 1] = "\\x", hash[2 + 64 + 1] = "\\x";

		if (!o || json_object_array_add(rows, o) < 0) {
			json_object_put(o);
			return -ENOMEM;
		}
		hex_encode(r->prev_hash, 32, prev + 2);
		hex_encode(r->hash, 32, hash + 2);
		if (json_object_object_add(o, "seq", json_object_new_int64(r->seq)) < 0 ||
		    json_object_object_add(o, "time_us", json_object_new_int64(r->time_us)) < 0 ||
		    json_object_object_add(o, "peer", json_object_new_string(r->peer ? r->peer : "")) < 0 ||
		    json_object_object_add(o, "ek_hash", json_object_new_string(r->ek_hash ? r->ek_hash : "")) < 0 ||
		    json_object_object_add(o, "node_id", json_object_new_string(r->node_id ? r->node_id : "")) < 0 ||
		    json_object_object_add(o, "action", json_object_new_string(r->action ? r->action : "")) < 0 ||
		    json_object_object_add(o, "decision", json_object_new_string(r->decision ? r->decision : "")) < 0 ||
		    json_object_object_add(o, "reasons", json_object_new_string(r->reasons ? r->reasons : "")) < 0 ||
		    json_object_object_add(o, "prev_hash", json_object_new_string(prev)) < 0 ||
		    json_object_object_add(o, "hash", json_object_new_string(hash)) < 0)
			return -ENOMEM;
	}
	p_text(&p, json_object_to_json_string_ext(rows, JSON_C_TO_STRING_PLAIN));
	return run(s, "audit append",
		   "INSERT INTO audit (seq, time_us, peer, ek_hash, node_id, action, decision, reasons, prev_hash, hash) "
		   "SELECT seq, time_us, peer, ek_hash, node_id, action, decision, reasons, prev_hash, hash "
		   "FROM json_populate_recordset(NULL::audit, $1::json)",
		   &p, 0, NULL);
}

/* The text fields point into res. */
static void audit_from_row(const PGresult *res, int row, struct audit_rec *a)
{
	*a = (struct audit_rec){
		.seq = col_int8(res, row, 0),
		.time_us = col_int8(res, row, 1),
		.peer = col_text(res, row, 2),
		.ek_hash = col_text(res, row, 3),
		.node_id = col_text(res, row, 4),
		.action = col_text(res, row, 5),
		.decision = col_text(res, row, 6),
		.reasons = col_text(res, row, 7),
	};
	if (col_bytes(res, row, 8, a->prev_hash, 32, 32, NULL) < 0 || col_bytes(res, row, 9, a->hash, 32, 32, NULL) < 0)
		memset(a->hash, 0, sizeof(a->hash)); /* a malformed hash column fails verification */
}

static int pg_audit_foreach(struct store *s, int (*cb)(const struct audit_rec *r, void *userdata), void *userdata)
{
	PGresult *res;
	int r = 0, k;

	if (!pg_in_transaction(s) && (r = ensure_connected(s)) < 0)
		return r;
	if (pg_of(s)->broken)
		return -ENOTCONN;
	/* Row by row: an audit log may be far larger than memory wants to hold at once. */
	if (!PQsendQueryParams(conn_of(s), "SELECT seq, time_us, peer, ek_hash, node_id, action, decision, reasons, "
					   "prev_hash, hash FROM audit ORDER BY seq",
			       0, NULL, NULL, NULL, NULL, 1) ||
	    !PQsetSingleRowMode(conn_of(s)))
		return lose(s, -EIO, "audit list");
	if ((k = flush(s, "audit list", mono_ms() + ROUND_TRIP_MS)) < 0)
		return k;
	/* The deadline is per row: a long log streams for as long as rows keep coming. */
	while ((k = next_result(s, "audit list", mono_ms() + ROUND_TRIP_MS, &res)) >= 0 && res) {
		ExecStatusType st = PQresultStatus(res);

		if (r >= 0 && st == PGRES_SINGLE_TUPLE) {
			struct audit_rec a;

			audit_from_row(res, 0, &a);
			r = cb(&a, userdata);
		} else if (r >= 0 && st != PGRES_TUPLES_OK && st != PGRES_SINGLE_TUPLE)
			r = result_errno(s, res, "audit list", 0);
		/* Once cb stops us, the remaining rows are drained unread: the connection stays usable. */
		PQclear(res);
	}
	return k < 0 ? k : r;
}

/* Each row of a result as an audit record: few (a limit), so one result rather than a stream. */
static int audit_result(PGresult *res, int (*cb)(const struct audit_rec *r, void *userdata), void *userdata)
{
	int r;

	for (int i = 0; i < PQntuples(res); i++) {
		struct audit_rec a;

		audit_from_row(res, i, &a);
		if ((r = cb(&a, userdata)) < 0)
			return r;
	}
	return 0;
}

/* One EK's records by sql ($1 the EK hash, $2 the limit). */
static int audit_of_ek(struct store *s, const char *sql, const char *ek_hash, int64_t limit,
		       int (*cb)(const struct audit_rec *r, void *userdata), void *userdata)
{
	_cleanup_pgresult_ PGresult *res = NULL;
	struct params p = { 0 };
	int r;

	p_text(&p, ek_hash);
	p_int8(&p, limit);
	if ((r = run(s, "audit list", sql, &p, 0, &res)) < 0)
		return r;
	return audit_result(res, cb, userdata);
}

/* A node's newest records. */
static int pg_audit_foreach_ek(struct store *s, const char *ek_hash, int64_t limit,
			       int (*cb)(const struct audit_rec *r, void *userdata), void *userdata)
{
	return audit_of_ek(s,
			   "SELECT seq, time_us, peer, ek_hash, node_id, action, decision, reasons, prev_hash, hash "
			   "FROM audit WHERE ek_hash = $1 ORDER BY seq DESC LIMIT $2",
			   ek_hash, limit, cb, userdata);
}

static int pg_audit_shares_ek(struct store *s, const char *ek_hash, int64_t limit,
			      int (*cb)(const struct audit_rec *r, void *userdata), void *userdata)
{
	return audit_of_ek(s, STORE_AUDIT_SHARES_SQL("$1", "$2"), ek_hash, limit, cb, userdata);
}

static int pg_audit_page(struct store *s, int64_t before, int64_t limit,
			 int (*cb)(const struct audit_rec *r, void *userdata), void *userdata)
{
	_cleanup_pgresult_ PGresult *res = NULL;
	struct params p = { 0 };
	int r;

	p_int8(&p, before);
	p_int8(&p, limit);
	if ((r = run(s, "audit list",
		     "SELECT seq, time_us, peer, ek_hash, node_id, action, decision, reasons, prev_hash, hash "
		     "FROM audit WHERE seq < $1 ORDER BY seq DESC LIMIT $2",
		     &p, 0, &res)) < 0)
		return r;
	return audit_result(res, cb, userdata);
}

static int pg_audit_last(struct store *s, const char *action, const char *decision,
			 int (*cb)(const struct audit_rec *r, void *userdata), void *userdata)
{
	_cleanup_pgresult_ PGresult *res = NULL;
	struct params p = { 0 };
	struct audit_rec a;
	int r;

	p_text(&p, action);
	p_text(&p, decision);
	if ((r = run(s, "audit list",
		     "SELECT seq, time_us, peer, ek_hash, node_id, action, decision, reasons, prev_hash, hash "
		     "FROM audit WHERE action = $1 AND decision = $2 ORDER BY seq DESC LIMIT 1",
		     &p, 0, &res)) < 0)
		return r;
	if (PQntuples(res) == 0)
		return -ENOENT;
	audit_from_row(res, 0, &a);
	return cb(&a, userdata);
}

static int pg_probe_write(struct store *s, int64_t now_us)
{
	struct params p = { 0 };

	p_int8(&p, now_us);
	return run(s, "probe",
		   "INSERT INTO health (id, probed_us) VALUES (1, $1) "
		   "ON CONFLICT (id) DO UPDATE SET probed_us = excluded.probed_us",
		   &p, 0, NULL);
}

const struct store_ops store_pg_ops = {
	.open = pg_open,
	.close = pg_close,
	.begin = pg_begin,
	.begin_batch = pg_begin_batch,
	.lock = pg_lock,
	.commit = pg_commit,
	.rollback = pg_rollback,
	.in_transaction = pg_in_transaction,
	.node_get = pg_node_get,
	.node_get_by_id = pg_node_get_by_id,
	.node_set_certificate = pg_node_set_certificate,
	.node_request = pg_node_request,
	.node_set_state = pg_node_set_state,
	.node_set_counters = pg_node_set_counters,
	.node_foreach = pg_node_foreach,
	.node_id_taken = pg_node_id_taken,
	.nonce_put = pg_nonce_put,
	.nonce_get = pg_nonce_get,
	.nonce_take = pg_nonce_take,
	.policy_insert = pg_policy_insert,
	.policy_current = pg_policy_current,
	.policy_resign = pg_policy_resign,
	.policy_get = pg_policy_get,
	.refusal_put = pg_refusal_put,
	.refusal_get = pg_refusal_get,
	.secret_insert = pg_secret_insert,
	.secret_foreach = pg_secret_foreach,
	.disk_share_put = pg_disk_share_put,
	.disk_share_foreach = pg_disk_share_foreach,
	.secret_rewrap = pg_secret_rewrap,
	.secret_delete = pg_secret_delete,
	.kek_get = pg_kek_get,
	.kek_put = pg_kek_put,
	.legacy_foreach = pg_legacy_foreach,
	.legacy_drop = pg_legacy_drop,
	.scrub = pg_scrub,
	.audit_head = pg_audit_head,
	.audit_insert = pg_audit_insert,
	.audit_insert_many = pg_audit_insert_many,
	.tree_get = pg_tree_get,
	.tree_get_many = pg_tree_get_many,
	.tree_put_many = pg_tree_put_many,
	.tree_leaves = pg_tree_leaves,
	.checkpoint_get = pg_checkpoint_get,
	.checkpoint_put = pg_checkpoint_put,
	.audit_foreach = pg_audit_foreach,
	.audit_foreach_ek = pg_audit_foreach_ek,
	.audit_shares_ek = pg_audit_shares_ek,
	.node_certificates = pg_node_certificates,
	.audit_last = pg_audit_last,
	.audit_page = pg_audit_page,
	.node_page = pg_node_page,
	.probe_write = pg_probe_write,
	.revoked_foreach = pg_revoked_foreach,
	.revoked_version = pg_revoked_version,
	.crl_number_next = pg_crl_number_next,
};
