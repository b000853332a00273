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

# witness_session PORT: a session keyring of this test's own, and keystrap.conf for a handoff
# to the server on PORT with the log key pinned.
witness_session() {
	keyctl new_session >/dev/null
	export KEYSTRAP_KEYRING=session
	printf '[Attest]\nServer=https://127.0.0.1:%s\nCA=%s\nLogKey=%s\n[Handoff]\nOwner=65534\nGroup=65534\n' \
		"$1" "$SRV_DIR/ca.crt" "$VKEY" >keystrap.conf
}

# tamper DIR SQL: a trigger in DIR's store, made while its server runs, that does SQL each time
# the server writes its checkpoint: the insider who can write the database changes it under the
# server, after the server has signed the checkpoint and before it reads the proofs back.
tamper() {
	sqlite3 -cmd ".timeout 5000" "$1/keystrap.db" \
		"CREATE TRIGGER tamper AFTER UPDATE OF note ON checkpoint BEGIN $2; END"
}

@test "a server whose proof of the node's own record, or whose checkpoint, does not verify: the witnessing node refuses the reply in one line naming which (exit 1) and keeps nothing" {
	serve_copy inclusion
	d=$BATS_FILE_TMPDIR/inclusion
	# The positive twin first: the same server, store and node, nothing changed.
	mkdir before
	run attest_to "$FORK_PORT" --log-key "$VKEY" --out-dir before
	[ "$status" -eq 0 ]
	[ -s before/checkpoint ]
	# Every stored subtree hash rewritten each time a checkpoint is signed: the root the server
	# signs is of the hashes it read as the batch began, the proof of those it reads after. The
	# node holds no checkpoint here, so the inclusion proof is all that can catch it.
	tamper "$d" "UPDATE audit_tree SET hash = randomblob(32)"
	mkdir out
	run attest_to "$FORK_PORT" --log-key "$VKEY" --out-dir out
	[ "$status" -eq 1 ]
	[ "${#lines[@]}" -eq 1 ]
	[[ "$output" =~ ^"keystrap: the inclusion proof of this attestation's record ("[0-9]+" in "[0-9]+") does not verify against the checkpoint"$ ]]
	[ -z "$(ls out)" ]
	# The server signed a checkpoint its records do not make: audit verify finds it too.
	run "$KEYSTRAP_SERVER" audit verify --config "$d/server.json"
	[ "$status" -eq 1 ]
	# Handed off: the boot goes on without credentials, and neither a credential nor a
	# checkpoint is in the keyring.
	witness_session "$FORK_PORT"
	run "$KEYSTRAP" handoff --config keystrap.conf
	[ "$status" -eq 1 ]
	[[ "$output" == *"the inclusion proof of this attestation's record"*"does not verify against the checkpoint"* ]]
	run "$KEYSTRAP" status
	[ "$status" -ne 0 ]
	[[ "$output" == *"no credentials"* ]]
	[[ "$output" != *"log:         keystrap.test/log"* ]]
	keyctl clear @s >/dev/null 2>&1 || true
	swtpm_reboot
	SRV_PORT=$FORK_PORT server_stop "$d"
	# A checkpoint whose text is changed after it was signed (its size one more): the log key's
	# signature is there, and does not verify.
	serve_copy note
	d=$BATS_FILE_TMPDIR/note
	mkdir ok
	run attest_to "$FORK_PORT" --log-key "$VKEY" --out-dir ok
	[ "$status" -eq 0 ]
	tamper "$d" "UPDATE checkpoint SET note = substr(note, 1, instr(note, char(10))) || (NEW.size + 1) ||
		substr(note, instr(note, char(10)) + 1 + length(CAST(NEW.size AS TEXT))) WHERE id = 1"
	mkdir bad
	run attest_to "$FORK_PORT" --log-key "$VKEY" --out-dir bad
	[ "$status" -eq 1 ]
	[ "${#lines[@]}" -eq 1 ]
	[ "$output" = "keystrap: the server's checkpoint does not verify: the signature of 'keystrap.test/log' does not verify" ]
	[ -z "$(ls bad)" ]
	SRV_PORT=$FORK_PORT server_stop "$d"
}

@test "handoff with LogKey= keeps the checkpoint in the keyring's status; keystrap verify presents it and keeps the newer one" {
	witness_session "$SRV_PORT"
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

# rotation_server NAME: serve_copy NAME with a log key file of its own (its next key goes beside
# it, NAME/log.key.next, not beside the file's shared key). RDIR: its directory.
rotation_server() {
	RDIR=$BATS_FILE_TMPDIR/$1
	mkdir -p "$RDIR"
	cp "$OPERATOR_DIR/log.key" "$RDIR/log.key"
	serve_copy "$1" '.log_key = "'"$RDIR/log.key"'"'
}

# lifecycle: the log key's records in the store of RDIR, "ACTION DECISION" a line.
lifecycle() {
	"$KEYSTRAP_SERVER" audit export --config "$RDIR/server.json" |
		jq -r 'select(.action | startswith("log-key-")) | "\(.action) \(.decision)"'
}

# signatures NOTE: the lines of the log's signatures on a checkpoint note.
signatures() { grep -c '^— keystrap.test/log ' "$1"; }

# covered ACTION N: the newest checkpoint of RDIR's store carries N signatures and covers the
# newest ACTION record.
covered() {
	local seq size
	"$KEYSTRAP_SERVER" audit checkpoint --config "$RDIR/server.json" >covered.cp || return 1
	[ "$(signatures covered.cp)" = "$2" ] || return 1
	seq=$("$KEYSTRAP_SERVER" audit export --config "$RDIR/server.json" | jq -r --arg a "$1" 'select(.action == $a) | .seq' | tail -n1)
	read -r _ size _ <<<"$(python3 "$TLOG" checkpoint covered.cp)"
	[ -n "$seq" ] && [ "$size" -ge "$seq" ]
}

@test "log key rotation by editing the configuration: checkpoints signed by the log key and the next one while nodes move to the new pin, each step on record; after the swap the old pin is refused" {
	"$KEYSTRAP_SERVER" log-key generate "$BATS_FILE_TMPDIR/next.key" --name keystrap.test/log >next.vkey
	serve_copy rot '.log_key_next = "'"$BATS_FILE_TMPDIR/next.key"'"'
	grep -q "log key rotation: checkpoints are signed by" "$BATS_FILE_TMPDIR/rot/server.log"
	# A rotation made by editing the configuration is on record as log-key rotate's is.
	RDIR=$BATS_FILE_TMPDIR/rot
	[ "$(lifecycle)" = "log-key-next allow" ]
	srv audit export | jq -r 'select(.action == "log-key-next") | .reasons' >live
	[ ! -s live ]
	"$KEYSTRAP_SERVER" audit export --config "$RDIR/server.json" | jq -r 'select(.action == "log-key-next") | .reasons' |
		grep -q "; by the server at start ($RDIR/server.json)$"
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
	[ "$(printf '%s\n' "log-key-next allow" "log-key-rotate allow")" = "$(lifecycle)" ]
	mkdir after refused
	run attest_to "$FORK_PORT" --log-key "$(cat next.vkey)" --checkpoint new/checkpoint --out-dir after
	[ "$status" -eq 0 ]
	[ "$(grep -c '^— keystrap.test/log ' after/checkpoint)" = 1 ]
	run "$KEYSTRAP_SERVER" audit verify --config "$RDIR/server.json" --log-key "$(cat next.vkey)"
	[ "$status" -eq 0 ]
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

@test "log-key rotate, then retire: each step an audit record covered by the checkpoint; both keys sign during the overlap, the new one alone after; audit verify passes throughout" {
	rotation_server cmd
	cfg=$RDIR/server.json
	"$KEYSTRAP_SERVER" log-key generate "$BATS_TEST_TMPDIR/new.key" --name keystrap.test/log >new.vkey
	run "$KEYSTRAP_SERVER" log-key rotate --next "$BATS_TEST_TMPDIR/new.key" --config "$cfg"
	[ "$status" -eq 0 ]
	[[ "${lines[0]}" == "next log key keystrap.test/log+"*" (sha256 "*") signs every checkpoint beside log key keystrap.test/log+"*" until log-key retire" ]]
	[ "${lines[-1]}" = "nodes pin: $(cat new.vkey)" ]
	# Moved beside the log key, owner only; the file given is gone.
	[ "$(stat -c %a "$RDIR/log.key.next")" = 600 ]
	[ ! -e new.key ]
	[ "$(lifecycle)" = "log-key-next allow" ]
	# Named by their public halves (the C2SP key id and the key's SHA-256), the operator said.
	old=$(cut -d+ -f2 <<<"$VKEY") new=$(cut -d+ -f2 <"new.vkey")
	"$KEYSTRAP_SERVER" audit export --config "$cfg" | jq -r 'select(.action == "log-key-next") | .reasons' |
		grep -Eq "^next log key keystrap.test/log\+$new \(sha256 [0-9a-f]{16}\) .* log key keystrap.test/log\+$old \(sha256 [0-9a-f]{16}\) until log-key retire; by operator:"
	# The record is under a checkpoint both keys signed, and the log verifies with either.
	covered log-key-next 2
	run "$KEYSTRAP_SERVER" audit verify --config "$cfg"
	[ "$status" -eq 0 ]
	run "$KEYSTRAP_SERVER" audit verify --config "$cfg" --log-key "$(cat new.vkey)"
	[ "$status" -eq 0 ]
	# The server takes the next key at a reload; a node pinning either key accepts its replies.
	SRV_DIR=$RDIR run reload
	[[ "$output" == *"event=reloaded"* ]]
	mkdir old new
	run attest_to "$FORK_PORT" --log-key "$VKEY" --out-dir old
	[ "$status" -eq 0 ]
	run attest_to "$FORK_PORT" --log-key "$(cat new.vkey)" --out-dir new
	[ "$status" -eq 0 ]
	[ "$(signatures new/checkpoint)" = 2 ]
	# Already on record: neither the reload nor the command again writes it twice.
	[ "$(lifecycle)" = "log-key-next allow" ]
	# retire: the next key is the log key; its record under a checkpoint the new key alone signed.
	run "$KEYSTRAP_SERVER" log-key retire --config "$cfg"
	[ "$status" -eq 0 ]
	[[ "${lines[0]}" == "log key keystrap.test/log+"*" replaced by the next log key keystrap.test/log+"*": checkpoints are signed by it alone" ]]
	[ ! -e "$RDIR/log.key.next" ]
	[ "$(printf '%s\n' "log-key-next allow" "log-key-rotate allow")" = "$(lifecycle)" ]
	"$KEYSTRAP_SERVER" audit export --config "$cfg" | jq -r 'select(.action == "log-key-rotate") | .reasons' |
		grep -Eq "^log key keystrap.test/log\+$old \(sha256 [0-9a-f]{16}\) replaced by the next log key keystrap.test/log\+$new \(sha256 [0-9a-f]{16}\):.*; by operator:"
	"$KEYSTRAP_SERVER" audit checkpoint --config "$cfg" >after.cp
	[ "$(signatures after.cp)" = 1 ]
	run "$KEYSTRAP_SERVER" audit verify --config "$cfg" --log-key "$(cat new.vkey)"
	[ "$status" -eq 0 ]
	run "$KEYSTRAP_SERVER" audit verify --config "$cfg" --log-key "$VKEY"
	[ "$status" -eq 1 ]
	[[ "$output" == *"does not verify with the log key 'keystrap.test/log': the note carries no signature of 'keystrap.test/log'" ]]
	SRV_DIR=$RDIR run reload
	[[ "$output" == *"event=reloaded"* ]]
	mkdir after refused
	run attest_to "$FORK_PORT" --log-key "$(cat new.vkey)" --checkpoint new/checkpoint --out-dir after
	[ "$status" -eq 0 ]
	[ "$(signatures after/checkpoint)" = 1 ]
	run attest_to "$FORK_PORT" --log-key "$VKEY" --out-dir refused
	[ "$status" -eq 1 ]
	[ "$output" = "keystrap: the server's checkpoint does not verify: the note carries no signature of 'keystrap.test/log'" ]
	# A log key the store's checkpoint carries no signature of is no rotation: the reload is
	# refused, and the key in force goes on signing.
	cp "$RDIR/log.key" kept.key
	"$KEYSTRAP_SERVER" log-key generate stray.key --name keystrap.test/log >/dev/null
	cp stray.key "$RDIR/log.key"
	SRV_DIR=$RDIR run reload
	[[ "$output" == *"event=reload-refused"*"the log key '$RDIR/log.key': the store's checkpoint does not verify with the log key 'keystrap.test/log'"* ]]
	cp kept.key "$RDIR/log.key"
	mkdir still
	run attest_to "$FORK_PORT" --log-key "$(cat new.vkey)" --checkpoint after/checkpoint --out-dir still
	[ "$status" -eq 0 ]
	# A restart finds the log saying what the files say: nothing more recorded.
	SRV_PORT=$FORK_PORT server_stop "$RDIR"
	SRV_PORT=$FORK_PORT server_start "$RDIR"
	[ "$(printf '%s\n' "log-key-next allow" "log-key-rotate allow")" = "$(lifecycle)" ]
	run "$KEYSTRAP_SERVER" audit verify --config "$cfg"
	[ "$status" -eq 0 ]
	SRV_PORT=$FORK_PORT server_stop "$RDIR"
}

@test "a rotation abandoned (the next key's file removed, no log-key retire) is on record once: log-key-abandon at the reload that finds it, or before log-key rotate's next one; nothing when nothing changed" {
	rotation_server abandon
	cfg=$RDIR/server.json
	old=$(cut -d+ -f2 <<<"$VKEY")
	# Nothing changed: a reload records nothing.
	SRV_DIR=$RDIR run reload
	[[ "$output" == *"event=reloaded"* ]]
	[ -z "$(lifecycle)" ]
	"$KEYSTRAP_SERVER" log-key generate "$BATS_TEST_TMPDIR/new.key" --name keystrap.test/log >new.vkey
	new=$(cut -d+ -f2 <new.vkey)
	run "$KEYSTRAP_SERVER" log-key rotate --next "$BATS_TEST_TMPDIR/new.key" --config "$cfg"
	[ "$status" -eq 0 ]
	SRV_DIR=$RDIR run reload
	[[ "$output" == *"event=reloaded"* ]]
	[ "$(lifecycle)" = "log-key-next allow" ]
	# The operator gives up: the next key's file removed, the server reloaded.
	rm "$RDIR/log.key.next"
	SRV_DIR=$RDIR run reload
	[[ "$output" == *"event=reloaded"* ]]
	[ "$(printf '%s\n' "log-key-next allow" "log-key-abandon allow")" = "$(lifecycle)" ]
	"$KEYSTRAP_SERVER" audit export --config "$cfg" | jq -r 'select(.action == "log-key-abandon") | .reasons' |
		grep -Eq "^next log key keystrap.test/log\+$new \(sha256 [0-9a-f]{16}\) abandoned \(its file is gone, log-key retire never ran\): log key keystrap.test/log\+$old \(sha256 [0-9a-f]{16}\) signs alone; by the server at reload \($cfg\)$"
	grep -q "next log key keystrap.test/log+$new .* abandoned" "$RDIR/server.log"
	# Once: neither the next reload nor a restart writes it again.
	SRV_DIR=$RDIR run reload
	[[ "$output" == *"event=reloaded"* ]]
	SRV_PORT=$FORK_PORT server_stop "$RDIR"
	SRV_PORT=$FORK_PORT server_start "$RDIR"
	[ "$(printf '%s\n' "log-key-next allow" "log-key-abandon allow")" = "$(lifecycle)" ]
	# Under a checkpoint the log key alone signs; the log verifies; a node pinning the abandoned
	# key is refused, one pinning the log key is served.
	covered log-key-abandon 1
	run "$KEYSTRAP_SERVER" audit verify --config "$cfg"
	[ "$status" -eq 0 ]
	mkdir kept gone
	run attest_to "$FORK_PORT" --log-key "$VKEY" --out-dir kept
	[ "$status" -eq 0 ]
	run attest_to "$FORK_PORT" --log-key "$(cat new.vkey)" --out-dir gone
	[ "$status" -eq 1 ]
	[ -z "$(ls gone)" ]
	SRV_PORT=$FORK_PORT server_stop "$RDIR"
	# Abandoned again with no server to notice, then log-key rotate to a third key: the command
	# records the abandonment before its own rotation.
	"$KEYSTRAP_SERVER" log-key generate two.key --name keystrap.test/log >two.vkey
	"$KEYSTRAP_SERVER" log-key generate three.key --name keystrap.test/log >/dev/null
	run "$KEYSTRAP_SERVER" log-key rotate --next "$PWD/two.key" --config "$cfg"
	[ "$status" -eq 0 ]
	rm "$RDIR/log.key.next"
	run "$KEYSTRAP_SERVER" log-key rotate --next "$PWD/three.key" --config "$cfg"
	[ "$status" -eq 0 ]
	[ "$(printf '%s\n' "log-key-next allow" "log-key-abandon allow" "log-key-next allow" "log-key-abandon allow" \
		"log-key-next allow")" = "$(lifecycle)" ]
	"$KEYSTRAP_SERVER" audit export --config "$cfg" | jq -r 'select(.action == "log-key-abandon") | .reasons' | tail -n1 |
		grep -Eq "^next log key keystrap.test/log\+$(cut -d+ -f2 <two.vkey) \(sha256 [0-9a-f]{16}\) abandoned .*; by operator:"
	run "$KEYSTRAP_SERVER" audit verify --config "$cfg"
	[ "$status" -eq 0 ]
}

# unchanged: the keys of RDIR as they were: no next key beside the log key, the log key the
# file's own, no rotation on record (a refusal is, as a deny).
unchanged() {
	[ ! -e "$RDIR/log.key.next" ] && cmp -s "$RDIR/log.key" "$OPERATOR_DIR/log.key" && [ -z "$(lifecycle | grep allow)" ]
}

# refused PATTERN CMD...: CMD exits 1 with one line matching "keystrap-server: PATTERN", unchanged.
refused() {
	local want=$1
	shift
	run "$@"
	[ "$status" -eq 1 ]
	[ "${#lines[@]}" -eq 1 ]
	# shellcheck disable=SC2053
	[[ "$output" == "keystrap-server: "$want ]]
	unchanged
}

@test "log-key rotate and retire refuse, each in one line naming the bad value, changing nothing: a loose key file, the key in force, not a key, no file, another log's name, nothing to retire" {
	rotation_server bad
	SRV_PORT=$FORK_PORT server_stop "$RDIR"
	cfg=$RDIR/server.json
	rot() { "$KEYSTRAP_SERVER" log-key rotate --next "$1" --config "$cfg"; }
	id=$(cut -d+ -f2 <<<"$VKEY")
	"$KEYSTRAP_SERVER" log-key generate loose.key --name keystrap.test/log >/dev/null
	chmod 640 loose.key
	refused "*'$PWD/loose.key'*640*" rot "$PWD/loose.key"
	[ -e loose.key ]
	cp "$RDIR/log.key" same.key
	refused "'$PWD/same.key' is the log key in force, keystrap.test/log+$id (sha256 *): a rotation needs a new key (log-key generate)" \
		rot "$PWD/same.key"
	(umask 077 && echo "not a key" >junk.key)
	refused "the log key '$PWD/junk.key' is unusable: *" rot "$PWD/junk.key"
	refused "*'$PWD/missing.key'*No such file or directory*" rot "$PWD/missing.key"
	"$KEYSTRAP_SERVER" log-key generate other.key --name other.test/log >/dev/null
	refused "the log key '$PWD/other.key' is named 'other.test/log', the log 'keystrap.test/log': the next log key keeps the log's name (log-key generate --name keystrap.test/log)" \
		rot "$PWD/other.key"
	refused "nothing to retire: there is no next log key ('$RDIR/log.key.next' does not exist; log-key rotate puts one there)" \
		"$KEYSTRAP_SERVER" log-key retire --config "$cfg"
	# Each refusal is on record as one, and the log still verifies.
	[ "$(lifecycle | grep -c deny)" -eq 6 ]
	run "$KEYSTRAP_SERVER" audit verify --config "$cfg"
	[ "$status" -eq 0 ]
	# The positive twin of "no file": the loose file made owner-only is taken.
	chmod 600 loose.key
	run rot "$PWD/loose.key"
	[ "$status" -eq 0 ]
	[ -e "$RDIR/log.key.next" ]
	# A second rotation while one is under way is refused, its file left where it is.
	"$KEYSTRAP_SERVER" log-key generate two.key --name keystrap.test/log >/dev/null
	run rot "$PWD/two.key"
	[ "$status" -eq 1 ]
	[[ "$output" == "keystrap-server: a rotation to the next log key keystrap.test/log+"*" ('$RDIR/log.key.next') is under way: log-key retire finishes it before another begins" ]]
	[ -e two.key ]
	# A next key placed by hand that is the log key itself: no server or command takes it.
	cp "$RDIR/log.key" "$RDIR/log.key.next"
	run "$KEYSTRAP_SERVER" audit verify --config "$cfg"
	[ "$status" -eq 1 ]
	[ "$output" = "keystrap-server: the next log key '$RDIR/log.key.next' is the log key '$RDIR/log.key' itself: a rotation needs a new key (log-key generate)" ]
}
