#!/usr/bin/env bats
# Nodes witness the audit log (issue 14 item 1): with the log key pinned, a node trusts a
# reply only with a checkpoint signed by that key, its own record proved in it and, from the
# checkpoint it holds, a consistency proof. A real server and swtpm; the forks are real
# stores rewritten as an insider would (tests/lib/tlog.py) and served by a real server, which
# signs whatever it is given: the node that holds an older checkpoint is what catches it.

load ../lib/swtpm
load ../lib/server

PEER=$BATS_TEST_DIRNAME/../../build/asan/attest-peer
TLOG=$BATS_TEST_DIRNAME/../lib/tlog.py

setup_file() {
	command -v keyctl >/dev/null || skip "keyctl (keyutils) is not installed"
	swtpm_start
	export SRV_DIR=$BATS_FILE_TMPDIR/srv SRV_PORT EK VKEY
	SRV_PORT=$(free_port)
	server_pki "$SRV_DIR"
	server_config "$SRV_DIR" "0 7"
	server_start "$SRV_DIR"
	EK=$(ek_hash)
	approve_peer
	VKEY=$(cat "$OPERATOR_DIR/log.vkey")
}

teardown_file() {
	for d in "$BATS_FILE_TMPDIR"/*/; do server_stop "$d" 2>/dev/null || true; done
	swtpm_stop
}

setup() {
	cd "$BATS_TEST_TMPDIR"
}

teardown() {
	reboot_if_asked
}

attest_to() {
	local port=$1
	shift
	"$KEYSTRAP" attest --server "https://127.0.0.1:$port" --ca "$SRV_DIR/ca.crt" "$@"
}

# serve_copy NAME [JQ]: a server on a consistent copy of the live store and keys, its
# configuration changed by JQ; started. FORK_PORT is its port.
serve_copy() {
	local d=$BATS_FILE_TMPDIR/$1
	mkdir -p "$d"
	cp "$SRV_DIR"/{ca,tls}.{crt,key} "$SRV_DIR/kek" "$d/"
	(umask 077 && sqlite3 "$SRV_DIR/keystrap.db" ".backup $d/keystrap.db")
	FORK_PORT=$(free_port)
	jq --arg d "$d" --arg l "127.0.0.1:$FORK_PORT" '.database = "\($d)/keystrap.db" | .kek = "\($d)/kek" | .listen = $l |
		.tls_certificate = "\($d)/tls.crt" | .tls_key = "\($d)/tls.key" | .ca_certificate = "\($d)/ca.crt" |
		.ca_key = "\($d)/ca.key" | '"${2:-.}" "$SRV_DIR/server.json" >"$d/server.json"
	SRV_PORT=$FORK_PORT server_start "$d"
}

# fork NAME [SQL]: a copy of the live store rewritten (SQL, default record 1 edited and every
# chained hash after it recomputed), its tree and checkpoint dropped; a server on it, started.
fork() {
	local d=$BATS_FILE_TMPDIR/$1
	mkdir -p "$d"
	cp "$SRV_DIR"/{ca,tls}.{crt,key} "$SRV_DIR/kek" "$d/"
	(umask 077 && sqlite3 "$SRV_DIR/keystrap.db" ".backup $d/keystrap.db")
	if [ -n "${2:-}" ]; then sqlite3 "$d/keystrap.db" "$2"; else python3 "$TLOG" rehash "$d/keystrap.db" 1 deny; fi
	sqlite3 "$d/keystrap.db" "DELETE FROM audit_tree; DELETE FROM checkpoint"
	FORK_PORT=$(free_port)
	jq --arg d "$d" --arg l "127.0.0.1:$FORK_PORT" '.database = "\($d)/keystrap.db" | .kek = "\($d)/kek" | .listen = $l |
		.tls_certificate = "\($d)/tls.crt" | .tls_key = "\($d)/tls.key" | .ca_certificate = "\($d)/ca.crt" |
		.ca_key = "\($d)/ca.key"' "$SRV_DIR/server.json" >"$d/server.json"
	SRV_PORT=$FORK_PORT server_start "$d"
}

@test "a witnessing node: the checkpoint, its own record and the inclusion proof verify; the next attestation is proved consistent with the checkpoint kept" {
	mkdir one two
	run attest_to "$SRV_PORT" --log-key "$VKEY" --out-dir one
	[ "$status" -eq 0 ]
	[ "$output" = "keystrap: attested as node1.example" ]
	# The checkpoint kept is the server's own, and covers the attestation's record.
	read -r origin size _ <<<"$(python3 "$TLOG" checkpoint one/checkpoint)"
	[ "$origin" = keystrap.test/log ]
	seq=$(srv audit export | jq -r 'select(.action == "attest-finish" and .decision == "allow") | .seq' | tail -n1)
	[ "$size" -ge "$seq" ]
	run attest_to "$SRV_PORT" --log-key "$VKEY" --checkpoint one/checkpoint --out-dir two
	[ "$status" -eq 0 ]
	read -r _ size2 _ <<<"$(python3 "$TLOG" checkpoint two/checkpoint)"
	[ "$size2" -gt "$size" ]
	cp two/checkpoint "$BATS_FILE_TMPDIR/held"
	# Not witnessing: no checkpoint is asked for or kept.
	mkdir three
	run attest_to "$SRV_PORT" --out-dir three
	[ "$status" -eq 0 ]
	[ ! -e three/checkpoint ]
}

@test "the wrong log key pinned, or a server that signs no log: the witnessing node refuses the reply (exit 1) and keeps nothing" {
	"$KEYSTRAP_SERVER" log-key generate other.key --name other.test/log >other.vkey
	mkdir out
	run attest_to "$SRV_PORT" --log-key "$(cat other.vkey)" --out-dir out
	[ "$status" -eq 1 ]
	[ "$output" = "keystrap: the server's checkpoint does not verify: the note carries no signature of 'other.test/log'" ]
	[ -z "$(ls out)" ]
	run attest_to "$SRV_PORT" --log-key "not a key" --out-dir out
	[ "$status" -eq 1 ]
	[[ "$output" == "keystrap: [Attest] LogKey='not a key': not NAME+KEYID+KEY"* ]]
	# A server with no log key (its store copied as it is).
	d=$BATS_FILE_TMPDIR/unsigned
	mkdir -p "$d"
	cp "$SRV_DIR"/{ca,tls}.{crt,key} "$SRV_DIR/kek" "$d/"
	(umask 077 && sqlite3 "$SRV_DIR/keystrap.db" ".backup $d/keystrap.db")
	port=$(free_port)
	jq --arg d "$d" --arg l "127.0.0.1:$port" '.database = "\($d)/keystrap.db" | .kek = "\($d)/kek" | .listen = $l |
		del(.log_key)' "$SRV_DIR/server.json" >"$d/server.json"
	SRV_PORT=$port server_start "$d"
	run attest_to "$port" --log-key "$VKEY" --out-dir out
	[ "$status" -eq 1 ]
	[ "$output" = "keystrap: the server sent no proof of its audit log (it keeps no signed log, or is older): this node witnesses the log and refuses the reply" ]
	[ -z "$(ls out)" ]
	grep -q "'log_key' is not set" "$d/server.log"
	# The twin: the same server serves a node that does not witness.
	run attest_to "$port" --out-dir out
	[ "$status" -eq 0 ]
	SRV_PORT=$port server_stop "$d"
}

@test "a forked log shown to two nodes: the one holding a checkpoint of the real log refuses it, the one holding none cannot tell" {
	fork forked
	grep -q "no signed checkpoint: signing one now" "$BATS_FILE_TMPDIR/forked/server.log"
	mkdir a b
	run attest_to "$FORK_PORT" --log-key "$VKEY" --checkpoint "$BATS_FILE_TMPDIR/held" --out-dir a
	[ "$status" -eq 1 ]
	[[ "$output" =~ ^"keystrap: the server's log ("[0-9]+" records) does not extend the checkpoint this node holds ("[0-9]+" records): it was forked or rewritten"$ ]]
	[ -z "$(ls a)" ]
	run attest_to "$FORK_PORT" --log-key "$VKEY" --out-dir b
	[ "$status" -eq 0 ]
	# The real log, to the first node: consistent.
	run attest_to "$SRV_PORT" --log-key "$VKEY" --checkpoint "$BATS_FILE_TMPDIR/held" --out-dir a
	[ "$status" -eq 0 ]
	SRV_PORT=$FORK_PORT server_stop "$BATS_FILE_TMPDIR/forked"
}

@test "a log that lost its newest records: the server has no consistency proof to give, and the node that holds the longer checkpoint refuses" {
	n=$(sqlite3 "$SRV_DIR/keystrap.db" 'SELECT MAX(seq) FROM audit')
	held=$(sed -n 2p "$BATS_FILE_TMPDIR/held")
	fork cut "DELETE FROM audit WHERE seq > $((held - 5))"
	mkdir a
	run attest_to "$FORK_PORT" --log-key "$VKEY" --checkpoint "$BATS_FILE_TMPDIR/held" --out-dir a
	[ "$status" -eq 1 ]
	[[ "$output" =~ ^"keystrap: the server gave no consistency proof from the checkpoint this node holds ($held records) to its new one ("[0-9]+" records): its log lost records or forked"$ ]]
	grep -q "a node holds a checkpoint of $held records, more than the log's" "$BATS_FILE_TMPDIR/cut/server.log"
	[ "$n" -gt "$held" ]
	SRV_PORT=$FORK_PORT server_stop "$BATS_FILE_TMPDIR/cut"
}

@test "handoff with LogKey= keeps the checkpoint in the keyring's status; keystrap verify presents it and keeps the newer one" {
	keyctl new_session >/dev/null
	export KEYSTRAP_KEYRING=session
	printf '[Attest]\nServer=https://127.0.0.1:%s\nCA=%s\nLogKey=%s\n[Handoff]\nOwner=65534\nGroup=65534\n' \
		"$SRV_PORT" "$SRV_DIR/ca.crt" "$VKEY" >keystrap.conf
	run "$KEYSTRAP" handoff --config keystrap.conf
	[ "$status" -eq 0 ]
	run "$KEYSTRAP" status
	[ "$status" -eq 0 ]
	[[ "$output" =~ "log:         keystrap.test/log, "([0-9]+)" records, root " ]]
	before=${BASH_REMATCH[1]}
	run "$KEYSTRAP" verify --config keystrap.conf
	[[ "$output" == *"attestation to https://127.0.0.1:$SRV_PORT: accepted, node node1.example"* ]]
	run "$KEYSTRAP" status
	[[ "$output" =~ "log:         keystrap.test/log, "([0-9]+)" records" ]]
	[ "${BASH_REMATCH[1]}" -gt "$before" ]
	# Without LogKey=: status says so.
	printf '[Attest]\nServer=https://127.0.0.1:%s\nCA=%s\n[Handoff]\nOwner=65534\nGroup=65534\n' \
		"$SRV_PORT" "$SRV_DIR/ca.crt" >plain.conf
	"$KEYSTRAP" handoff --config plain.conf 2>/dev/null
	run "$KEYSTRAP" status
	[[ "$output" == *"log:         not witnessed (no LogKey=, or a server before the transparency log)"* ]]
	keyctl clear @s >/dev/null 2>&1 || true
	swtpm_reboot
}

@test "log key rotation: checkpoints signed by the log key and the next one while nodes move to the new pin; after the swap the old pin is refused" {
	"$KEYSTRAP_SERVER" log-key generate "$BATS_FILE_TMPDIR/next.key" --name keystrap.test/log >next.vkey
	serve_copy rot '.log_key_next = "'"$BATS_FILE_TMPDIR/next.key"'"'
	grep -q "log key rotation: checkpoints are signed by" "$BATS_FILE_TMPDIR/rot/server.log"
	mkdir old new
	run attest_to "$FORK_PORT" --log-key "$VKEY" --out-dir old
	[ "$status" -eq 0 ]
	run attest_to "$FORK_PORT" --log-key "$(cat next.vkey)" --out-dir new
	[ "$status" -eq 0 ]
	# The transition checkpoint: one text, both signatures.
	[ "$(grep -c '^— keystrap.test/log ' new/checkpoint)" = 2 ]
	SRV_PORT=$FORK_PORT server_stop "$BATS_FILE_TMPDIR/rot"
	# The swap: the next key alone. A node pinning it, holding the transition checkpoint, goes on.
	jq '.log_key = .log_key_next | del(.log_key_next)' "$BATS_FILE_TMPDIR/rot/server.json" >swapped.json
	cp swapped.json "$BATS_FILE_TMPDIR/rot/server.json"
	SRV_PORT=$FORK_PORT server_start "$BATS_FILE_TMPDIR/rot"
	mkdir after refused
	run attest_to "$FORK_PORT" --log-key "$(cat next.vkey)" --checkpoint new/checkpoint --out-dir after
	[ "$status" -eq 0 ]
	[ "$(grep -c '^— keystrap.test/log ' after/checkpoint)" = 1 ]
	run attest_to "$FORK_PORT" --log-key "$VKEY" --out-dir refused
	[ "$status" -eq 1 ]
	[ "$output" = "keystrap: the server's checkpoint does not verify: the note carries no signature of 'keystrap.test/log'" ]
	SRV_PORT=$FORK_PORT server_stop "$BATS_FILE_TMPDIR/rot"
	# A next key with another name would split the log's origin: refused at start.
	"$KEYSTRAP_SERVER" log-key generate other.key --name other.test/log >/dev/null
	jq '.log_key_next = "'"$PWD"'/other.key"' "$SRV_DIR/server.json" >bad.json
	run "$KEYSTRAP_SERVER" audit verify --config bad.json
	[ "$status" -eq 1 ]
	[[ "$output" == *"is named otherwise than the log ('keystrap.test/log'): the next log key keeps the log's name"* ]]
}
