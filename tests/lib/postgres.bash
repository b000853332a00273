# shellcheck shell=bash
# bats helper: a private, real PostgreSQL cluster (Debian's postgresql package) on 127.0.0.1
# on a free port, in its own temporary directory. The system cluster is never touched.
# PostgreSQL refuses to run as root: the cluster belongs to the postgres user, and initdb and
# the postmaster run as it (setpriv, so the PID we keep is the postmaster's own).
# Load after ../lib/swtpm (free_port).

PG_BIN=${PG_BIN:-$(find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -name bin -type d 2>/dev/null | sort -V | tail -n1)}

as_postgres() {
	(cd "$PG_DIR" && setpriv --reuid=postgres --regid=postgres --clear-groups -- "$@")
}

# pg_start: initdb (password authentication over TCP), postgres, a "keystrap" database.
# Exports PG_DIR, PG_PORT, PG_PID, PG_URL (postgresql://keystrap:PASSWORD@127.0.0.1:PORT/keystrap)
# and PG_PASSWORD (a throwaway test password; tests assert it is never printed).
pg_start() {
	[ -x "$PG_BIN/postgres" ] || { echo "no PostgreSQL server under /usr/lib/postgresql (install-deps)"; return 1; }
	PG_DIR=$(mktemp -d /tmp/keystrap-pg.XXXXXX)
	PG_PORT=$(free_port)
	PG_PASSWORD=$(head -c 18 /dev/urandom | base64 | tr '+/' 'xy')
	export PG_DIR PG_PORT PG_PASSWORD PG_PID
	printf '%s\n' "$PG_PASSWORD" >"$PG_DIR/pw"
	chown -R postgres: "$PG_DIR"
	chmod 700 "$PG_DIR"
	as_postgres "$PG_BIN/initdb" -D "$PG_DIR/data" -U keystrap --pwfile="$PG_DIR/pw" -E UTF8 --locale=C.UTF-8 \
		--auth-host=scram-sha-256 --auth-local=scram-sha-256 >"$PG_DIR/initdb.log" 2>&1 || {
		cat "$PG_DIR/initdb.log"
		return 1
	}
	rm -f "$PG_DIR/pw"
	pg_run || return 1
	# psql finds the password here; the server under test gets it only from its URI.
	printf '127.0.0.1:%s:*:keystrap:%s\n' "$PG_PORT" "$PG_PASSWORD" >"$PG_DIR/pgpass"
	chmod 600 "$PG_DIR/pgpass"
	pg_sql postgres 'CREATE DATABASE keystrap' >/dev/null || return 1
	export PG_URL="postgresql://keystrap:$PG_PASSWORD@127.0.0.1:$PG_PORT/keystrap"
}

# pg_run: the postmaster on the cluster in $PG_DIR; returns once it accepts connections.
pg_run() {
	(cd "$PG_DIR" && exec setpriv --reuid=postgres --regid=postgres --clear-groups -- "$PG_BIN/postgres" \
		-D "$PG_DIR/data" -p "$PG_PORT" -c listen_addresses=127.0.0.1 -c unix_socket_directories="$PG_DIR" \
		-c max_connections=40 -c shared_buffers=16MB) >>"$PG_DIR/postgres.log" 2>&1 3>&- &
	PG_PID=$!
	# A test that restarts the cluster runs in its own process: teardown_file finds the PID here.
	echo "$PG_PID" >"$PG_DIR/postmaster.pid.keystrap"
	for _ in $(seq 200); do
		"$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" && return 0
		pg_alive "$PG_PID" || { cat "$PG_DIR/postgres.log"; return 1; }
		sleep 0.05
	done
	return 1
}

# pg_alive PID: running (a zombie left to an init that does not reap counts as gone).
pg_alive() {
	local st
	st=$(ps -o stat= -p "$1" 2>/dev/null) || return 1
	[[ $st != Z* ]]
}

# pg_halt: fast shutdown of the postmaster we started (by PID); the cluster stays.
pg_halt() {
	[ -n "${PG_DIR:-}" ] && [ -f "$PG_DIR/postmaster.pid.keystrap" ] && PG_PID=$(cat "$PG_DIR/postmaster.pid.keystrap")
	[ -n "${PG_PID:-}" ] || return 0
	kill -INT "$PG_PID" 2>/dev/null || true
	for _ in $(seq 200); do pg_alive "$PG_PID" || break; sleep 0.05; done
	kill -KILL "$PG_PID" 2>/dev/null || true
	for _ in $(seq 100); do pg_alive "$PG_PID" || break; sleep 0.05; done
	rm -f "$PG_DIR/postmaster.pid.keystrap"
	PG_PID=
}

# pg_sql DB SQL: runs SQL as the cluster's superuser; prints rows unaligned, no headers.
pg_sql() {
	PGPASSFILE=$PG_DIR/pgpass "$PG_BIN/psql" -X -q -At -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PG_PORT" -U keystrap \
		-d "$1" -c "$2"
}

# pg_stop: pg_halt, then the cluster's directory goes.
pg_stop() {
	pg_halt
	[ -z "${PG_DIR:-}" ] || rm -rf "$PG_DIR"
}
