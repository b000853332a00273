#!/usr/bin/env bats
# Secrets at rest (issue 14 item 2) over SQLite: every secret version sealed under a data key
# of its own, wrapped by a KEK that is not in the database. The database file (and its -wal,
# -shm and an SQL dump) holds no value raw, in hex or in base64; a copy of it with another
# KEK, a missing or loose KEK is refused at start naming it; a value moved to another row
# fails with one line, never another secret; versions, history and delete; a rotation while
# the server runs, and one killed at every write, fsync and rename, after which the store
# opens with the old KEK or the new one and every secret with it; values an earlier version
# kept in clear are encrypted on first start. Real swtpm, real server, real node.
# (PostgreSQL: server-pg.bats.)

load ../lib/swtpm
load ../lib/server

setup_file() {
	swtpm_start
	export SRV_DIR=$BATS_FILE_TMPDIR/srv SRV_PORT EK A B
	SRV_PORT=$(free_port)
	server_pki "$SRV_DIR"
	server_config "$SRV_DIR" "0 7"
	A=pw-$(head -c 12 /dev/urandom | xxd -p) B=tok-$(head -c 12 /dev/urandom | xxd -p)
	printf '%s' "$A" | srv secret set db.password >/dev/null
	printf '%s' "$B" | srv secret set api.token >/dev/null
	POLICY_GROUPS='{"default":{"secrets":[]},"web":{"secrets":["db.password","api.token"]}}' \
		server_policy "$SRV_DIR" "0 7" >/dev/null
	server_start "$SRV_DIR"
	EK=$(ek_hash)
	(cd "$BATS_FILE_TMPDIR" && mkdir -p out && attest >/dev/null 2>&1) || true
	srv node approve "$EK" --id node1.example --group web >/dev/null
}

teardown_file() {
	server_stop "$SRV_DIR" || true
	swtpm_stop
}

setup() {
	cd "$BATS_TEST_TMPDIR"
	mkdir -p out
}

# A server a test started on a copy of the store, left running by a failure.
teardown() {
	servers_stop_under "$BATS_TEST_TMPDIR"
}

attest() {
	"$KEYSTRAP" attest --server "https://127.0.0.1:$SRV_PORT" --ca "$SRV_DIR/ca.crt" --out-dir out
}

# store_copy DIR [KEK]: a consistent copy of the live store in DIR/keystrap.db (0600), with
# DIR/server.json naming it, the KEK at KEK (default: a copy of the live one at DIR/kek), and
# a port of its own (DIR/ca.crt for server_start).
store_copy() {
	local d=$1 kek=${2:-$1/kek}
	mkdir -p "$d"
	cp "$SRV_DIR/ca.crt" "$d/"
	sqlite3 "$SRV_DIR/keystrap.db" ".backup '$d/keystrap.db'"
	chmod 600 "$d/keystrap.db"
	[ -n "${2:-}" ] || cp -p "$SRV_DIR/kek" "$kek"
	jq --arg db "$d/keystrap.db" --arg k "$kek" --arg l "127.0.0.1:$(free_port)" \
		'.database = $db | .kek = $k | .listen = $l' "$SRV_DIR/server.json" >"$d/server.json"
}

@test "kek init makes 32 random bytes, 0600 under umask 022, and never overwrites a KEK" {
	umask 022
	run "$KEYSTRAP_SERVER" kek init k1
	[ "$status" -eq 0 ]
	[[ "$output" =~ ^"KEK 'k1' created (id "[0-9a-f]{32}"): keep a copy of it apart from the database's backups"$ ]]
	[ "$(stat -c '%a %s' k1)" = "600 32" ]
	id=$(kek_id_of k1)
	sum=$(sha256sum <k1)
	run "$KEYSTRAP_SERVER" kek init k1
	[ "$status" -eq 0 ]
	[ "$output" = "KEK 'k1' exists (id $id): left as it is" ]
	[ "$(sha256sum <k1)" = "$sum" ]
	# Twin: another file is another key; a file that is no KEK is refused, untouched.
	"$KEYSTRAP_SERVER" kek init k2 >/dev/null
	[ "$(kek_id_of k2)" != "$id" ]
	! cmp -s k1 k2 || false
	(umask 077 && echo short >bad)
	run "$KEYSTRAP_SERVER" kek init bad
	[ "$status" -eq 1 ]
	[ "$output" = "keystrap-server: KEK 'bad' is not 32 bytes (keystrap-server kek init makes one)" ]
	[ "$(cat bad)" = short ]
}

@test "the store holds no secret value: not in the database, its -wal or -shm, nor an SQL dump, raw, hex or base64; the node receives them" {
	run attest
	[ "$status" -eq 0 ]
	[ "$(cat out/secrets/db.password)" = "$A" ]
	[ "$(cat out/secrets/api.token)" = "$B" ]
	sqlite3 "$SRV_DIR/keystrap.db" .dump >dump.sql
	grep -q 'INSERT INTO secret_versions' dump.sql
	for v in "$A" "$B"; do
		run holds "$v" "$SRV_DIR"/keystrap.db "$SRV_DIR"/keystrap.db-wal "$SRV_DIR"/keystrap.db-shm dump.sql
		[ -z "$output" ]
		# The search itself finds what is there.
		[ "$(holds "$v" out/secrets/*)" != "" ]
	done
	printf '%s' "$A" | xxd -p >a.hex
	printf '%s' "$B" | base64 >b.b64
	[ "$(holds "$A" a.hex)" = a.hex ]
	[ "$(holds "$B" b.b64)" = b.b64 ]
	# What a reader of the database sees: sizes, a KEK id, blobs of IV, ciphertext and tag.
	[ "$(sqlite3 "$SRV_DIR/keystrap.db" "SELECT name, size, length(ciphertext) - size, length(wrapped_key) FROM secret_versions ORDER BY name, version")" = "api.token|${#B}|28|60
db.password|${#A}|28|60" ]
}

@test "secret set adds a version; list shows each current version, history every version, never a value; the node gets the newest" {
	local v2
	v2=pw2-$(head -c 12 /dev/urandom | xxd -p)
	run srv secret set db.password <<<"$v2"
	[ "$status" -eq 0 ]
	[ "$output" = "secret db.password version 2 stored ($((${#v2} + 1)) bytes)" ]
	printf '%s' "$v2" | srv secret set db.password >/dev/null
	run srv secret list
	[ "$status" -eq 0 ]
	[ "${lines[0]}" = "NAME                             SET                  VERSION   BYTES" ]
	[[ "${lines[1]}" =~ ^"api.token "\ +"20"[0-9-]+T[0-9:]+Z\ +"1"\ +"${#B}"$ ]]
	[[ "${lines[2]}" =~ ^"db.password "\ +"20"[0-9-]+T[0-9:]+Z\ +"3"\ +"${#v2}"$ ]]
	[ "${#lines[@]}" -eq 3 ]
	run srv secret history db.password
	[ "${#lines[@]}" -eq 3 ]
	[[ "${lines[0]}" =~ ^"version 1 set ".*" (${#A} bytes)"$ ]]
	[[ "${lines[2]}" =~ ^"version 3 set ".*" (${#v2} bytes) current"$ ]]
	[ "$(srv secret list --json | jq -c 'map([.name, .version, .size, .deleted])')" = \
		"[[\"api.token\",1,${#B},null],[\"db.password\",3,${#v2},null]]" ]
	[ "$(srv secret history db.password --json | jq -c 'map(.version)')" = "[1,2,3]" ]
	for o in "$(srv secret list)" "$(srv secret history db.password --json)" "$(srv audit export)"; do
		[[ "$o" != *"$A"* && "$o" != *"$v2"* ]]
	done
	srv audit export | tail -n1 | jq -r .reasons | grep -q "^secret db.password version 3 set (${#v2} bytes) by operator:"
	run attest
	[ "$status" -eq 0 ]
	[ "$(cat out/secrets/db.password)" = "$v2" ]
	run srv secret history no.such
	[ "$status" -eq 1 ]
	[ "$output" = "keystrap-server: no secret 'no.such' was ever set" ]
	printf '%s' "$A" | srv secret set db.password >/dev/null
}

@test "secret delete wipes every version's value (audited), not while the policy names it; a new set is a new version number" {
	printf 'temp-%s' "$A" | srv secret set temp >/dev/null
	printf 'temp2-%s' "$A" | srv secret set temp >/dev/null
	POLICY_GROUPS='{"default":{"secrets":[]},"web":{"secrets":["db.password","api.token"]},"t":{"secrets":["temp"]}}' \
		server_policy "$SRV_DIR" "0 7" >/dev/null
	run srv secret delete temp
	[ "$status" -eq 1 ]
	[[ "$output" =~ ^"keystrap-server: secret 'temp' is named by group 't' of the policy in force (version "[0-9]+"): load a policy without it first"$ ]]
	[ "$(srv secret history temp | grep -c deleted)" = 0 ]
	POLICY_GROUPS='{"default":{"secrets":[]},"web":{"secrets":["db.password","api.token"]}}' \
		server_policy "$SRV_DIR" "0 7" >/dev/null
	run srv secret delete temp
	[ "$status" -eq 0 ]
	[ "$output" = "secret temp deleted (2 versions)" ]
	srv audit export | tail -n1 | jq -r '.action + " " + .reasons' | grep -q "^secret-delete secret temp deleted (2 versions) by operator:"
	[ "$(sqlite3 "$SRV_DIR/keystrap.db" "SELECT version, length(ciphertext), length(wrapped_key), deleted_us > 0 FROM secret_versions WHERE name = 'temp'")" = "1|0|0|1
2|0|0|1" ]
	[[ "$(srv secret list)" != *temp* ]]
	[ "$(srv secret history temp | grep -c ' deleted 20')" = 2 ]
	run srv secret delete temp
	[ "$status" -eq 1 ]
	[ "$output" = "keystrap-server: no secret 'temp' is set" ]
	run bash -c "echo again | '$KEYSTRAP_SERVER' secret set temp --config '$SRV_DIR/server.json'"
	[ "$output" = "secret temp version 3 stored (6 bytes)" ]
	srv kek verify >/dev/null
}

@test "a copy of the database with another KEK: the server refuses to start, naming the KEK; with the store's own KEK it serves" {
	local d=$BATS_TEST_TMPDIR/copy id
	"$KEYSTRAP_SERVER" kek init other.kek >/dev/null
	store_copy "$d" "$PWD/other.kek"
	run timeout 20 "$KEYSTRAP_SERVER" serve --config "$d/server.json"
	[ "$status" -eq 1 ]
	[ "${#lines[@]}" -eq 1 ]
	id=$(kek_id_of "$SRV_DIR/kek")
	[ "$output" = "keystrap-server: cannot open the store '$d/keystrap.db': its secrets are under KEK id $id, and KEK '$PWD/other.kek' is id $(kek_id_of other.kek): not the store's KEK" ]
	run "$KEYSTRAP_SERVER" secret list --config "$d/server.json"
	[ "$status" -eq 1 ]
	[[ "$output" == *"not the store's KEK" ]]
	# Twin: the same copy with its own KEK serves the secrets.
	cp -p "$SRV_DIR/kek" "$d/kek"
	jq --arg k "$d/kek" '.kek = $k' "$d/server.json" >"$d/s.json" && mv "$d/s.json" "$d/server.json"
	run "$KEYSTRAP_SERVER" kek verify --config "$d/server.json"
	[ "$status" -eq 0 ]
	[[ "$output" == "KEK '$d/kek' (id $id) opens every secret version in the store: "* ]]
}

@test "a missing KEK, a loose one, one of the wrong size, a URI not supported, no kek key: refused at start, naming it" {
	local d=$BATS_TEST_TMPDIR/k
	store_copy "$d"
	chmod 640 "$d/kek"
	run timeout 20 "$KEYSTRAP_SERVER" serve --config "$d/server.json"
	[ "$status" -eq 1 ]
	[ "$output" = "keystrap-server: KEK '$d/kek' has mode 0640: group or others can access it (chmod 600 it)" ]
	chmod 600 "$d/kek"
	mv "$d/kek" "$d/kek.away"
	run timeout 20 "$KEYSTRAP_SERVER" serve --config "$d/server.json"
	[ "$status" -eq 1 ]
	[ "$output" = "keystrap-server: KEK '$d/kek' does not exist (keystrap-server kek init creates one)" ]
	(umask 077 && head -c 33 /dev/urandom >"$d/kek")
	run timeout 20 "$KEYSTRAP_SERVER" serve --config "$d/server.json"
	[ "$output" = "keystrap-server: KEK '$d/kek' is not 32 bytes (keystrap-server kek init makes one)" ]
	jq '.kek = "vault:kek"' "$d/server.json" >"$d/uri.json"
	run timeout 20 "$KEYSTRAP_SERVER" serve --config "$d/uri.json"
	[ "$output" = "keystrap-server: KEK 'vault:kek': not a file (PATH, file:PATH), a TPM's key (handle:) or a token's (pkcs11:)" ]
	jq 'del(.kek)' "$d/server.json" >"$d/none.json"
	run timeout 20 "$KEYSTRAP_SERVER" serve --config "$d/none.json"
	[ "$output" = "keystrap-server: $d/none.json: 'kek' is missing" ]
	# Twin: the KEK back in place, as file:PATH too, and the store opens.
	mv "$d/kek.away" "$d/kek"
	jq --arg k "file:$d/kek" '.kek = $k' "$d/server.json" >"$d/file.json"
	run "$KEYSTRAP_SERVER" kek verify --config "$d/file.json"
	[ "$status" -eq 0 ]
}

# swap DB COLUMN...: db.password's newest row takes api.token's COLUMNs.
swap() {
	local db=$1 set="" c
	shift
	for c; do set+="${set:+, }$c = (SELECT $c FROM secret_versions WHERE name = 'api.token')"; done
	sqlite3 "$db" "UPDATE secret_versions SET $set WHERE name = 'db.password'
		AND version = (SELECT MAX(version) FROM secret_versions WHERE name = 'db.password')"
}

@test "a value or wrapped key moved to another secret or version fails with one line, never as another secret; moved back it opens" {
	local d=$BATS_TEST_TMPDIR/swap db port cols
	store_copy "$d"
	db=$d/keystrap.db
	sqlite3 "$db" "SELECT name, version, hex(ciphertext), hex(wrapped_key), size FROM secret_versions" >orig.txt
	for cols in "ciphertext size" "wrapped_key" "ciphertext wrapped_key size"; do
		# shellcheck disable=SC2086 # one column name a word
		swap "$db" $cols
		run "$KEYSTRAP_SERVER" kek verify --config "$d/server.json"
		[ "$status" -eq 1 ]
		[ "${#lines[@]}" -eq 1 ]
		[[ "$output" =~ ^"keystrap-server: secret db.password version "[0-9]+" does not decrypt under KEK '$d/kek' (id "[0-9a-f]{32}"): its row was altered, or moved from another secret or version"$ ]] ||
			{ echo "$cols: $output"; return 1; }
		while IFS='|' read -r n v c w z; do
			sqlite3 "$db" "UPDATE secret_versions SET ciphertext = X'$c', wrapped_key = X'$w', size = $z WHERE name = '$n' AND version = $v"
		done <orig.txt
		"$KEYSTRAP_SERVER" kek verify --config "$d/server.json" >/dev/null
	done
	# The same row under another version number: the version is part of its identity too.
	sqlite3 "$db" "UPDATE secret_versions SET version = version + 100 WHERE name = 'api.token'"
	run "$KEYSTRAP_SERVER" kek verify --config "$d/server.json"
	[ "$status" -eq 1 ]
	[[ "$output" =~ ^"keystrap-server: secret api.token version 101 does not decrypt under KEK " ]]
	sqlite3 "$db" "UPDATE secret_versions SET version = version - 100 WHERE name = 'api.token'"
	# Served to a node: a 500 naming the secret, no payload, and nothing of the value it would
	# have become.
	swap "$db" ciphertext wrapped_key size
	port=$(jq -r '.listen | split(":")[1]' "$d/server.json")
	SRV_PORT=$port server_start "$d"
	run "$KEYSTRAP" attest --server "https://127.0.0.1:$port" --ca "$SRV_DIR/ca.crt" --out-dir out
	SRV_PORT=$port server_stop "$d"
	[ "$status" -eq 5 ]
	[ "$output" = "keystrap: the server refused the attestation (HTTP 500): secret 'db.password' does not decrypt: its row in the store was altered or moved" ]
	[ ! -e out/secrets ]
	[[ "$output" != *"$B"* ]]
	"$KEYSTRAP_SERVER" audit export --config "$d/server.json" | tail -n1 |
		jq -r .reasons | grep -q "secret 'db.password' does not decrypt"
}

@test "kek rotate re-wraps every data key while the server runs: audited, the node gets the current version before and after, the old KEK no longer opens the store" {
	local old_id new_id n
	cp -p "$SRV_DIR/kek" old.kek
	old_id=$(kek_id_of old.kek)
	"$KEYSTRAP_SERVER" kek init "$SRV_DIR/kek.new" >/dev/null
	new_id=$(kek_id_of "$SRV_DIR/kek.new")
	n=$(sqlite3 "$SRV_DIR/keystrap.db" "SELECT count(*) FROM secret_versions WHERE deleted_us = 0")
	run attest
	[ "$status" -eq 0 ]
	run srv kek rotate --new "$SRV_DIR/kek.new"
	[ "$status" -eq 0 ]
	[ "${lines[0]}" = "$n data keys re-wrapped from KEK id $old_id to KEK id $new_id" ]
	[ "${lines[1]}" = "KEK '$SRV_DIR/kek.new' is now at '$SRV_DIR/kek'; back it up apart from the database" ]
	[ ! -e "$SRV_DIR/kek.new" ]
	[ "$(kek_id_of "$SRV_DIR/kek")" = "$new_id" ]
	[ "$(stat -c %a "$SRV_DIR/kek")" = 600 ]
	[ "$(sqlite3 "$SRV_DIR/keystrap.db" "SELECT DISTINCT kek_id FROM secret_versions WHERE deleted_us = 0") " = "$new_id " ]
	srv audit export | tail -n1 | jq -r '.action + " " + .reasons' |
		grep -q "^kek-rotate $n data keys re-wrapped from KEK id $old_id to KEK id $new_id by operator:"
	# The running server (still holding the old key) loads the new one from its file.
	rm -rf out && mkdir out
	run attest
	[ "$status" -eq 0 ]
	[ "$(cat out/secrets/db.password)" = "$A" ]
	printf 'after-%s' "$A" | srv secret set db.password >/dev/null
	rm -rf out && mkdir out
	attest >/dev/null
	[ "$(cat out/secrets/db.password)" = "after-$A" ]
	printf '%s' "$A" | srv secret set db.password >/dev/null
	# The old KEK opens nothing now.
	store_copy "$BATS_TEST_TMPDIR/o" "$PWD/old.kek"
	run "$KEYSTRAP_SERVER" kek verify --config "$BATS_TEST_TMPDIR/o/server.json"
	[ "$status" -eq 1 ]
	[[ "$output" == *"its secrets are under KEK id $new_id, and KEK '$PWD/old.kek' is id $old_id: not the store's KEK" ]]
	run srv kek rotate --new "$SRV_DIR/kek"
	[ "$status" -eq 1 ]
	[ "$output" = "keystrap-server: --new names the KEK in use: $SRV_DIR/kek" ]
}

# rotation_points D: "SYSCALL N" for each write, pwrite64, fsync, fdatasync and rename of a kek
# rotate on D's store and KEK files that succeeds (D/clean holds what to start from).
rotation_points() {
	local d=$1 sc n calls=$BATS_TEST_TMPDIR/rotate-calls.txt
	rotation_reset "$d"
	ASAN_OPTIONS=detect_leaks=0 strace -f -qq -o "$calls" -P "$d/keystrap.db" -P "$d/keystrap.db-wal" \
		-P "$d/kek.new" -P "$d" -e trace=write,pwrite64,fsync,fdatasync,rename \
		"$KEYSTRAP_SERVER" kek rotate --new "$d/kek.new" --config "$d/server.json" >/dev/null 2>&1 || return 1
	for sc in write pwrite64 fsync fdatasync rename; do
		n=$(grep -cE "^[0-9]+ +$sc\(" "$calls" || true)
		[ "$n" -eq 0 ] || seq -f "$sc %g" 1 "$n"
	done
}

rotation_reset() {
	rm -f "$1"/keystrap.db* "$1/kek" "$1/kek.new"
	cp -p "$1"/clean/* "$1/"
}

@test "kek rotate killed (SIGKILL) at every write, fsync and rename: the store opens with the old KEK or the new one, every secret with it; rotate run again finishes" {
	command -v strace >/dev/null || skip "strace is not installed"
	local d=$BATS_TEST_TMPDIR/rot old_id new_id count rc state kept=0 committed=0 finished=0
	store_copy "$d"
	"$KEYSTRAP_SERVER" kek init "$d/kek.new" >/dev/null
	# More versions than the live store has: several per secret, one deleted.
	for i in 1 2 3 4 5 6; do
		printf 'rot-%s-%s' "$i" "$A" | "$KEYSTRAP_SERVER" secret set "rot$((i % 3))" --config "$d/server.json" >/dev/null
	done
	"$KEYSTRAP_SERVER" secret delete rot0 --config "$d/server.json" >/dev/null
	count=$("$KEYSTRAP_SERVER" kek verify --config "$d/server.json" | sed 's/.*: //')
	[ "$count" -ge 6 ]
	mkdir "$d/clean"
	sqlite3 "$d/keystrap.db" ".backup '$d/clean/keystrap.db'"
	chmod 600 "$d/clean/keystrap.db"
	cp -p "$d/kek" "$d/kek.new" "$d/clean/"
	old_id=$(kek_id_of "$d/kek") new_id=$(kek_id_of "$d/kek.new")
	jq --arg k "$d/kek.new" '.kek = $k' "$d/server.json" >"$d/new.json"
	mapfile -t points < <(rotation_points "$d")
	[ "$(printf '%s\n' "${points[@]}" | grep -c '^pwrite64 ')" -ge 3 ]
	[ "$(printf '%s\n' "${points[@]}" | grep -c '^fsync ')" -ge 1 ]
	[ "$(printf '%s\n' "${points[@]}" | grep -c '^rename ')" -eq 1 ]
	for p in "${points[@]}"; do
		read -r sc n <<<"$p"
		rotation_reset "$d"
		rc=0
		ASAN_OPTIONS=detect_leaks=0 strace -f -qq -o /dev/null -P "$d/keystrap.db" -P "$d/keystrap.db-wal" \
			-P "$d/kek.new" -P "$d" -e trace="$sc" -e inject="$sc:signal=SIGKILL:when=$n" \
			"$KEYSTRAP_SERVER" kek rotate --new "$d/kek.new" --config "$d/server.json" >out.txt 2>&1 || rc=$?
		[ "$rc" -eq 137 ] || { echo "$sc #$n: exit $rc: $(cat out.txt)"; return 1; }
		state=$(kek_rotation_check "$d" "$count" "$old_id" "$new_id") || { echo "$sc #$n: $state"; return 1; }
		case $state in
		old) kept=$((kept + 1)) ;;
		new) committed=$((committed + 1)) ;;
		*) finished=$((finished + 1)) ;;
		esac
	done
	echo "# ${#points[@]} kill points: $kept under the old KEK, $committed committed but not in place, $finished done" >&3
	[ "$kept" -gt 0 ] && [ "$committed" -gt 0 ]
}

@test "secrets an earlier version kept in clear are encrypted on first start with a KEK (audited), leave no trace in the file, and reach the node" {
	local d=$BATS_TEST_TMPDIR/legacy v port leaked
	v=legacy-$(head -c 12 /dev/urandom | xxd -p)
	store_copy "$d"
	rm "$d/kek"
	"$KEYSTRAP_SERVER" kek init "$d/kek" >/dev/null
	# The store as an earlier version left it: no KEK record, values in a table "secrets".
	sqlite3 "$d/keystrap.db" "DROP TABLE kek; DROP TABLE secret_versions;
		CREATE TABLE secrets (name TEXT PRIMARY KEY, value BLOB NOT NULL, changed_us INTEGER NOT NULL);
		INSERT INTO secrets VALUES ('db.password', CAST('$v' AS BLOB), 1000000), ('api.token', CAST('$B' AS BLOB), 2000000);"
	[ "$(holds "$v" "$d/keystrap.db")" = "$d/keystrap.db" ]
	port=$(jq -r '.listen | split(":")[1]' "$d/server.json")
	SRV_PORT=$port server_start "$d"
	run "$KEYSTRAP" attest --server "https://127.0.0.1:$port" --ca "$SRV_DIR/ca.crt" --out-dir out
	# While it runs too: the files a copy would be taken from.
	leaked=$(holds "$v" "$d"/keystrap.db "$d"/keystrap.db-wal "$d"/keystrap.db-shm)
	SRV_PORT=$port server_stop "$d"
	[ "$status" -eq 0 ]
	[ "$(cat out/secrets/db.password)" = "$v" ]
	[ -z "$leaked" ]
	grep -q "encrypted the 2 secrets an earlier version kept in clear (KEK '$d/kek', id [0-9a-f]*); copies of the database made before hold them in clear: change those secrets' values" "$d/server.log"
	[ "$(sqlite3 "$d/keystrap.db" "SELECT count(*) FROM sqlite_master WHERE name = 'secrets'")" = 0 ]
	sqlite3 "$d/keystrap.db" .dump >"$d/dump.sql"
	run holds "$v" "$d"/keystrap.db "$d"/keystrap.db-wal "$d"/keystrap.db-shm "$d/dump.sql"
	[ -z "$output" ]
	"$KEYSTRAP_SERVER" audit export --config "$d/server.json" | jq -r 'select(.action == "secrets-encrypt") | .reasons' |
		grep -q "^2 secrets kept in clear by an earlier version encrypted under KEK id "
	[ "$("$KEYSTRAP_SERVER" secret history db.password --config "$d/server.json")" = "version 1 set 1970-01-01T00:00:01Z (${#v} bytes) current" ]
	# Once only: opened again, nothing more is encrypted or recorded.
	"$KEYSTRAP_SERVER" secret list --config "$d/server.json" >/dev/null
	[ "$("$KEYSTRAP_SERVER" audit export --config "$d/server.json" | grep -c secrets-encrypt)" = 1 ]
}
