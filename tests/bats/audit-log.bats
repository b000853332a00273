#!/usr/bin/env bats
# The audit log as a transparency log (issue 14 item 1): RFC 6962 leaves, checkpoints signed
# with the log key as C2SP signed notes, audit verify/prove/checkpoint, and the insider's
# attacks on the database: a record edited with every hash after it recomputed, records
# removed from the end, the checkpoint deleted too, policy rows deleted. Each with its twin.
# The oracles are independent of keystrap's code: openssl for the Ed25519 signature,
# tests/lib/tlog.py for the Merkle tree.

load ../lib/swtpm
load ../lib/server

TLOG=$BATS_TEST_DIRNAME/../lib/tlog.py

setup_file() {
	swtpm_start
	export SRV_DIR=$BATS_FILE_TMPDIR/srv SRV_PORT
	SRV_PORT=$(free_port)
	server_pki "$SRV_DIR"
	server_config "$SRV_DIR" "0 7" '"checkpoint_file":"'"$SRV_DIR"'/checkpoint"'
	server_start "$SRV_DIR"
	# Some records beyond the policy load: refused starts, a second policy, more refused starts.
	curl -s -o /dev/null --cacert "$SRV_DIR/ca.crt" -d '{}' "https://127.0.0.1:$SRV_PORT/v1/attest/start"
	server_policy "$SRV_DIR" "0 7" >/dev/null
	for _ in 1 2 3; do
		curl -s -o /dev/null --cacert "$SRV_DIR/ca.crt" -d '{}' "https://127.0.0.1:$SRV_PORT/v1/attest/start"
	done
}

teardown_file() {
	server_stop "$SRV_DIR" || true
	swtpm_stop
}

setup() {
	cd "$BATS_TEST_TMPDIR"
}

# copy NAME: a consistent copy of the live store and a configuration using it (no checkpoint file).
copy() {
	(umask 077 && sqlite3 "$SRV_DIR/keystrap.db" ".backup $BATS_TEST_TMPDIR/$1.db")
	jq --arg db "$BATS_TEST_TMPDIR/$1.db" '.database = $db | del(.checkpoint_file)' "$SRV_DIR/server.json" >"$1.json"
}

verify() {
	"$KEYSTRAP_SERVER" audit verify --config "$1.json" "${@:2}"
}

@test "the checkpoint is a C2SP signed note: openssl verifies its Ed25519 signature, and its root is RFC 6962's of the exported records" {
	srv audit checkpoint >cp
	vkey=$(cat "$OPERATOR_DIR/log.vkey")
	[[ "$vkey" =~ ^keystrap.test/log\+[0-9a-f]{8}\+[A-Za-z0-9+/=]{44}$ ]]
	# The text ends at the blank line; the signature line is "— NAME base64(keyid || sig)".
	sed '/^$/,$d' cp >text
	[ "$(wc -l <text)" = 4 ]
	sig=$(sed -n 's/^— keystrap.test\/log //p' cp)
	base64 -d <<<"$sig" | tail -c 64 >sig.bin
	[ "$(base64 -d <<<"$sig" | head -c 4 | xxd -p)" = "${vkey:18:8}" ]
	{ printf '302a300506032b6570032100' | xxd -r -p; cut -d+ -f3- <<<"$vkey" | base64 -d | tail -c 32; } >pub.der
	openssl pkey -pubin -inform DER -in pub.der -out pub.pem
	run openssl pkeyutl -verify -pubin -inkey pub.pem -rawin -in text -sigfile sig.bin
	[ "$status" -eq 0 ]
	sed -i '2s/[0-9]$/9/' text
	run openssl pkeyutl -verify -pubin -inkey pub.pem -rawin -in text -sigfile sig.bin
	[ "$status" -ne 0 ]
	read -r origin size root <<<"$(python3 "$TLOG" checkpoint cp)"
	[ "$origin" = keystrap.test/log ]
	[ "$size" = "$(srv audit export | wc -l)" ]
	[ "$root" = "$(srv audit export | python3 "$TLOG" root)" ]
	# The same checkpoint is in the file outside the database and in the server's log.
	[ "$(sed -n 2p "$SRV_DIR/checkpoint")" -ge 1 ]
	grep -q "audit checkpoint: origin keystrap.test/log size [0-9]* root " "$SRV_DIR/server.log"
}

@test "audit verify holds the records to the signed checkpoint: an edited record with every hash after it recomputed is caught" {
	copy intact
	run verify intact
	[ "$status" -eq 0 ]
	[[ "${lines[0]}" =~ ^"audit log intact: "[0-9]+" records, root "[0-9a-f]{64}$ ]]
	[[ "${lines[1]}" == "checkpoint: "*" records, signed by keystrap.test/log at "* ]]
	copy edited
	python3 "$TLOG" rehash edited.db 2 allow
	# The chain alone no longer tells: every link and hash is right again.
	sqlite3 edited.db "DELETE FROM audit_tree"
	run verify edited
	[ "$status" -eq 1 ]
	# (Its tree is rebuilt from the edited records when the store is opened.)
	[ "${lines[0]}" = "keystrap-server: the audit log's $(sqlite3 edited.db 'SELECT COUNT(*) FROM audit') records from seq 1 became leaves of its Merkle tree" ]
	[ "${lines[1]}" = "keystrap-server: audit log broken: the first $(sqlite3 edited.db 'SELECT size FROM checkpoint') records are not those the signed checkpoint covers (edited or rewritten)" ]
	# An edit without rehashing still names the record.
	copy plain
	sqlite3 plain.db "UPDATE audit SET decision = 'allow' WHERE seq = 2"
	run verify plain
	[ "$output" = "keystrap-server: audit log broken: record 2 does not match its hash (edited)" ]
	# The stored tree left stale is caught too: proofs from it would be of other records.
	copy stale
	python3 "$TLOG" rehash stale.db 2 allow
	sqlite3 stale.db "UPDATE checkpoint SET note = note"
	run verify stale
	[[ "$output" == *"the stored tree ("*" leaves) is not the tree of the "*" records"* ]]
}

@test "records removed from the end: the checkpoint catches it; with the checkpoint removed too, --since an older one does" {
	srv audit checkpoint >old.cp
	copy cut
	n=$(sqlite3 cut.db 'SELECT MAX(seq) FROM audit')
	sqlite3 cut.db "DELETE FROM audit WHERE seq > $((n - 2)); DELETE FROM audit_tree WHERE level = 0 AND idx >= $((n - 2))"
	run verify cut
	[ "$status" -eq 1 ]
	[[ "$output" == "keystrap-server: audit log broken: the signed checkpoint covers $n records but the log has $((n - 2)) (records removed)" ]]
	# The insider deletes the checkpoint as well, and the server signs the shorter log anew.
	sqlite3 cut.db "DELETE FROM audit_tree; DELETE FROM checkpoint"
	jq '.listen = "127.0.0.1:'"$(free_port)"'"' cut.json >cut2.json && mv cut2.json cut.json
	timeout 20 "$KEYSTRAP_SERVER" serve --config cut.json 2>cut.log &
	pid=$!
	for _ in $(seq 50); do grep -q "signing one now" cut.log && break; sleep 0.2; done
	kill "$pid"; wait "$pid" || true
	run verify cut
	[ "$status" -eq 0 ]
	run verify cut --since old.cp
	[ "$status" -eq 1 ]
	[ "$output" = "keystrap-server: audit log broken: the checkpoint 'old.cp' covers $n records but the log has $((n - 2)) (records removed)" ]
	# The twin: the live log extends the old checkpoint, with a proof the stored tree gives.
	srv audit checkpoint >/dev/null
	run srv audit verify --since old.cp
	[ "$status" -eq 0 ]
	[[ "${lines[2]}" == "extends old.cp ($n records): consistency proof of "*" hashes verified" ]]
}

@test "a log rewritten from the start, re-signed by its own server, does not extend a checkpoint kept outside the database" {
	srv audit checkpoint >kept.cp
	copy forked
	python3 "$TLOG" rehash forked.db 1 deny
	sqlite3 forked.db "DELETE FROM audit_tree; DELETE FROM checkpoint"
	jq '.listen = "127.0.0.1:'"$(free_port)"'" | .checkpoint_file = "'"$PWD"'/kept.cp"' forked.json >f2.json
	# A server pointed at the file refuses to start on the fork ...
	run timeout 20 "$KEYSTRAP_SERVER" serve --config f2.json
	[ "$status" -eq 1 ]
	[[ "$output" == *"the log does not extend the checkpoint file '$PWD/kept.cp': its first "*" records are others (forked or rewritten)"* ]]
	# ... and audit verify --since says the same of a copy signed without the file.
	run verify forked --since kept.cp --json
	[ "$status" -eq 1 ]
	[ "$(jq -r .intact <<<"${lines[-1]}")" = false ]
	copy twin
	run verify twin --since kept.cp --json
	[ "$status" -eq 0 ]
	[ "$(jq -c '[.intact, .since.size == .checkpoint.size]' <<<"$output")" = "[true,true]" ]
}

@test "policy rows deleted bring back no older policy: the server refuses admission naming both versions, and audit verify says so" {
	copy rolled
	v=$(sqlite3 rolled.db 'SELECT MAX(version) FROM policies')
	sqlite3 rolled.db "DELETE FROM policies WHERE version = $v"
	run verify rolled
	[ "$status" -eq 1 ]
	[[ "$output" == "keystrap-server: audit log broken: the policy in the store (version $((v - 1))) is not the one record "*" says was loaded last (version $v): policy rows were removed or replaced" ]]
	port=$(free_port)
	jq '.listen = "127.0.0.1:'"$port"'"' rolled.json >r2.json
	"$KEYSTRAP_SERVER" serve --config r2.json 2>rolled.log &
	pid=$!
	for _ in $(seq 50); do curl -s -o /dev/null --cacert "$SRV_DIR/ca.crt" "https://127.0.0.1:$port/healthz" && break; sleep 0.2; done
	run curl -s --cacert "$SRV_DIR/ca.crt" "https://127.0.0.1:$port/healthz"
	kill "$pid"; wait "$pid" || true
	[[ "$output" == *"is not the one the audit log says was loaded last (version $v, record "*"): policy rows were removed or replaced"* ]]
	# The twin: the live store's policy is the logged one.
	run curl -s --cacert "$SRV_DIR/ca.crt" "https://127.0.0.1:$SRV_PORT/healthz"
	[ "$output" = ok ]
	run srv audit verify
	[ "$status" -eq 0 ]
}

@test "audit prove SEQ: an inclusion proof an independent verifier accepts against the checkpoint's root; bad SEQs refused" {
	srv audit prove 3 >proof.json
	jq -r .checkpoint proof.json >cp
	read -r _ size root <<<"$(python3 "$TLOG" checkpoint cp)"
	[ "$(jq .tree_size proof.json)" = "$size" ]
	python3 "$TLOG" inclusion proof.json "$root"
	# The proof for another record's bytes does not hold.
	jq --arg r "$(srv audit prove 4 | jq -r .record)" '.record = $r' proof.json >wrong.json
	run python3 "$TLOG" inclusion wrong.json "$root"
	[ "$status" -eq 1 ]
	run srv audit prove abc
	[ "$status" -eq 1 ]
	[ "$output" = "keystrap-server: 'abc' is not a record's seq (1, 2, ...)" ]
	run srv audit prove 999999
	[ "$output" = "keystrap-server: record 999999 is not in the tree of $size records" ]
	run srv audit prove 1 --size 0
	[ "$output" = "keystrap-server: --size '0' is not a tree size from 1 to $(srv audit export | wc -l)" ]
}

@test "bad inputs: a checkpoint of another key, a malformed --log-key, a log key file that is loose or exists, a bad log name" {
	"$KEYSTRAP_SERVER" log-key generate other.key --name other.test/log >other.vkey
	[ "$(stat -c %a other.key)" = 600 ]
	srv audit checkpoint >cp
	run srv audit verify --log-key "$(cat other.vkey)"
	[ "$status" -eq 1 ]
	[[ "$output" == "keystrap-server: audit log broken: the store's checkpoint does not verify with the log key 'other.test/log': the note carries no signature of 'other.test/log'" ]]
	run srv audit verify --log-key "$(cat "$OPERATOR_DIR/log.vkey")"
	[ "$status" -eq 0 ]
	run srv audit verify --log-key nonsense
	[ "$output" = "keystrap-server: --log-key 'nonsense': not NAME+KEYID+KEY (a C2SP note key)" ]
	run srv audit verify --since missing.cp
	[ "$output" = "keystrap-server: cannot read the checkpoint 'missing.cp': No such file or directory" ]
	run "$KEYSTRAP_SERVER" log-key generate other.key --name other.test/log
	[ "$status" -eq 1 ]
	[ "$output" = "keystrap-server: cannot create the log key 'other.key': it exists (a log key is never overwritten)" ]
	run "$KEYSTRAP_SERVER" log-key generate new.key --name 'a b'
	[ "$output" = "keystrap-server: log name 'a b' is not a note key name (1-128 bytes, no '+', no space)" ]
	[ ! -e new.key ]
	copy loose
	cp "$OPERATOR_DIR/log.key" loose.key && chmod 640 loose.key
	jq '.log_key = "'"$PWD"'/loose.key"' loose.json >l2.json
	run "$KEYSTRAP_SERVER" audit verify --config l2.json
	[ "$status" -eq 1 ]
	[[ "$output" == *"loose.key"*"640"* ]]
	# A store whose records predate the tree: they become leaves when it is opened.
	copy old
	sqlite3 old.db "DELETE FROM audit_tree; DELETE FROM checkpoint"
	run verify old
	[ "${lines[-1]}" = "keystrap-server: audit log broken: no signed checkpoint of the log: its records are not anchored" ]
	[ "$(sqlite3 old.db 'SELECT COUNT(*) FROM audit_tree WHERE level = 0')" = "$(sqlite3 old.db 'SELECT COUNT(*) FROM audit')" ]
}
