#!/usr/bin/env bats
# keystrap-server and keystrap attest (issue 5) on loopback: a real server (TLS 1.3, SQLite
# store), real swtpms with EK certificates from swtpm_setup's local CA, and the node side both
# as keystrap attest and as tests/lib/attest-peer (the same steps, with curl carrying messages
# a test can replay or tamper with). Every refusal has its positive twin in this file.

load ../lib/swtpm
load ../lib/server
load ../lib/firmware
load ../lib/tpm2-node

PEER=$BATS_TEST_DIRNAME/../../build/asan/attest-peer
LOGS=$BATS_TEST_DIRNAME/../data/eventlogs

setup_file() {
	# "Another machine": its own TPM, EK certificate and (later) registry entry.
	swtpm_start "$BATS_FILE_TMPDIR/other"
	export OTHER_DIR=$SWTPM_DIR OTHER_PORT=$SWTPM_PORT OTHER_TCTI=$KEYSTRAP_TCTI
	swtpm_start
	export SRV_DIR=$BATS_FILE_TMPDIR/srv SRV_PORT
	SRV_PORT=$(free_port)
	server_pki "$SRV_DIR"
	# Two verification threads whatever the machine: the finishes below go through them.
	MAX_BODY=262144 server_config "$SRV_DIR" "0 7" '"workers":2'
	server_start "$SRV_DIR"
	export EK EK_OTHER U
	EK=$(ek_hash)
	EK_OTHER=$(TPM2TOOLS_TCTI=$OTHER_TCTI ek_hash)
	U=$(head -c 32 /dev/urandom | xxd -p -c 64)
	# This TPM asks to enrol and an operator approves it; the other one only asks (below).
	approve_peer "$U"
}

teardown_file() {
	server_stop "$SRV_DIR" || true
	swtpm_stop
	SWTPM_DIR=$OTHER_DIR SWTPM_PORT=$OTHER_PORT swtpm_stop
}

setup() {
	cd "$BATS_TEST_TMPDIR"
	mkdir -p out
}

teardown() {
	reboot_if_asked
}

attest() {
	"$KEYSTRAP" attest --server "https://127.0.0.1:$SRV_PORT" --ca "$SRV_DIR/ca.crt" --out-dir out "$@"
}

@test "an approved node attests: the certificate verifies against the server CA and names the node" {
	run attest
	[ "$status" -eq 0 ]
	[ "$output" = "keystrap: attested as node1.example" ]
	run openssl verify -CAfile "$SRV_DIR/ca.crt" out/node.crt
	[ "$output" = "out/node.crt: OK" ]
	run openssl x509 -in out/node.crt -noout -ext subjectAltName -subject
	[[ "$output" == *"DNS:node1.example"* ]]
	[[ "$output" == *"subject=CN = node1.example"* ]]
	# The certificate is for the key the node made, and no one else's.
	[ "$(openssl pkey -inform DER -in out/node.key.der -pubout)" = "$(openssl x509 -in out/node.crt -noout -pubkey)" ]
	[ "$(stat -c %a out/node.key.der)" = 600 ]
	# Short-lived, as configured (600 s).
	end=$(date -d "$(openssl x509 -in out/node.crt -noout -enddate | cut -d= -f2)" +%s)
	[ $((end - $(date +%s))) -le 600 ]
	grep -q 'action=attest-finish decision=allow ek='"$EK"' node=node1.example' "$SRV_DIR/server.log"
}

@test "a node no operator approved is refused (403) and waits as a pending request in node list" {
	KEYSTRAP_TCTI=$OTHER_TCTI run attest
	[ "$status" -eq 5 ]
	[ "$output" = "keystrap: the server refused the attestation start (HTTP 403): node is not approved: enrollment request recorded for EK $EK_OTHER" ]
	[ ! -e out/node.crt ]
	run srv node list
	[ "${lines[0]}" = "ID                       EK               GROUP        STATE     LAST ATTESTED           CERT EXPIRES" ]
	[[ "$output" == *$'\n'"-                        ${EK_OTHER:0:16} default      requested -                       -"* ]]
	[[ "$output" == *$'\n'"node1.example            ${EK:0:16} default      approved  20"*" UTC 20"*" UTC"* ]]
	run srv node list --full
	[[ "$output" == *" $EK_OTHER default "* ]]
	# --json: one array for scripts; what the text shows as "-" is null there.
	run srv node list --json
	[ "$status" -eq 0 ]
	[ "$(jq -c --arg ek "$EK_OTHER" '.[] | select(.ek_hash == $ek) |
		[.state, .node_id, (.peer | startswith("127.0.0.1:")), .group, .requested_us > 0, .reset_count]' <<<"$output")" = \
		'["requested",null,true,"default",true,null]' ]
	[ "$(jq -r --arg ek "$EK" '.[] | select(.ek_hash == $ek) | "\(.state) \(.node_id)"' <<<"$output")" = "approved node1.example" ]
	[ "$(jq length <<<"$output")" = "$(($(srv node list | wc -l) - 1))" ]
	# Asking again does not approve anything.
	KEYSTRAP_TCTI=$OTHER_TCTI run attest
	[ "$output" = "keystrap: the server refused the attestation start (HTTP 403): node is not approved yet: its enrollment request (EK $EK_OTHER) awaits an operator" ]
}

@test "keystrap status --ek prints the EK hash the server registers, before any attestation" {
	run "$KEYSTRAP" status --ek
	[ "$status" -eq 0 ]
	[ "$output" = "$EK" ]
	KEYSTRAP_TCTI=$OTHER_TCTI run "$KEYSTRAP" status --ek=rsa2048
	[ "$output" = "$EK_OTHER" ]
	# The refusal quotes the same 64 digits, so the console line is what node approve takes.
	KEYSTRAP_TCTI=$OTHER_TCTI run attest
	[[ "$output" == *"(EK $EK_OTHER) awaits an operator" ]]
	# Another kind is another key and another hash; an unknown kind is a usage error.
	run "$KEYSTRAP" status --ek=ecc256
	[ "$status" -eq 0 ]
	[[ "$output" =~ ^[0-9a-f]{64}$ ]]
	[ "$output" != "$EK" ]
	run "$KEYSTRAP" status --ek=dsa
	[ "$status" -eq 2 ]
	[[ "$output" == *"unknown EK kind 'dsa'"* ]]
	KEYSTRAP_TCTI=swtpm:host=127.0.0.1,port=1 run "$KEYSTRAP" status --ek
	[ "$status" -eq 1 ]
}

@test "a revoked node is refused (403); approving it again takes --reinstate, then it attests again" {
	KEYSTRAP_TCTI=$OTHER_TCTI attest 2>/dev/null || true
	srv node approve "$EK_OTHER" --id other
	KEYSTRAP_TCTI=$OTHER_TCTI run attest
	[ "$output" = "keystrap: attested as other" ]
	run srv node revoke "$EK_OTHER"
	[ "$output" = "$EK_OTHER revoked other" ]
	KEYSTRAP_TCTI=$OTHER_TCTI run attest
	[ "$status" -eq 5 ]
	[ "$output" = "keystrap: the server refused the attestation start (HTTP 403): node is revoked" ]
	# Approving a revoked node again is refused (and recorded); --reinstate says it is meant.
	run srv node approve "$EK_OTHER"
	[ "$status" -eq 1 ]
	[ "$output" = "keystrap-server: node other (EK $EK_OTHER) is revoked: approving it again takes --reinstate" ]
	KEYSTRAP_TCTI=$OTHER_TCTI run attest
	[ "$output" = "keystrap: the server refused the attestation start (HTTP 403): node is revoked" ]
	run srv node approve other --reinstate
	[ "$output" = "$EK_OTHER approved other" ]
	KEYSTRAP_TCTI=$OTHER_TCTI run attest
	[ "$output" = "keystrap: attested as other" ]
	run srv audit export
	[[ "$output" == *'"action":"node-approve","decision":"deny","reasons":"node other (EK '"$EK_OTHER"') is revoked: approving it again takes --reinstate, by operator:'* ]]
	[[ "$output" == *'"action":"node-reinstate","decision":"allow","reasons":"revoked -> approved, group default, by operator:'* ]]
}

@test "a node id is the operator's to give and unique; node commands name what is wrong" {
	run srv node approve "$EK_OTHER" --id node1.example
	[ "$status" -eq 1 ]
	[ "$output" = "keystrap-server: node id 'node1.example' belongs to another EK" ]
	run srv node revoke "$(printf '%064d' 0)"
	[ "$status" -eq 1 ]
	[ "$output" = "keystrap-server: no node with EK hash $(printf '%064d' 0)" ]
	run srv node approve "$EK" --id 'Bad_Id'
	[ "$output" = "keystrap-server: 'Bad_Id' is not a node id ([a-z0-9.-], at most 64)" ]
	run srv node approve nothex
	[ "$status" -eq 1 ]
	run srv node frobnicate
	[ "$status" -eq 2 ]
	# --json goes only where there is output to parse; elsewhere it is a usage error.
	run srv node approve "$EK" --json
	[ "$status" -eq 2 ]
	run srv audit export --json
	[ "$status" -eq 2 ]
	[[ "$output" == *"audit export is JSON already (--json goes with verify)"* ]]
	run srv policy load x.json --json
	[ "$status" -eq 2 ]
}

@test "the peer's handshake passes once; the same finish replayed is refused: nonce already used" {
	challenge ch.json
	"$PEER" finish "$U" ch.json >finish.json
	run post /v1/attest/finish finish.json
	[ "$(status_of "$output")" = 200 ]
	[ "$(body_of "$output" | jq -r .node_id)" = node1.example ]
	run post /v1/attest/finish finish.json
	[ "$(status_of "$output")" = 403 ]
	[ "$(body_of "$output")" = '{"error":"nonce already used: a replayed or repeated finish"}' ]
}

# statuses FILE...: the status line of each saved post output, one per line.
statuses() {
	local f
	for f; do status_of "$(cat "$f")"; done
}

@test "one finish sent eight times at once, verified on the workers side by side: one 200, seven nonce already used" {
	local i before
	challenge ch.json
	"$PEER" finish "$U" ch.json >finish.json
	before=$(srv audit export | grep -c 'nonce already used' || true)
	# Each read its nonce unspent and went to a worker; only the first back spends it.
	for i in 1 2 3 4 5 6 7 8; do
		post /v1/attest/finish finish.json >"f$i.out" &
	done
	wait
	[ "$(statuses f?.out | sort | uniq -c | awk '{print $1 "x" $2}' | tr '\n' ' ')" = "1x200 7x403 " ]
	[ "$(grep -lx '{"error":"nonce already used: a replayed or repeated finish"}' f?.out | wc -l)" = 7 ]
	# Twin: seven refusals on record, and the one certificate.
	[ "$(srv audit export | grep -c 'nonce already used')" = $((before + 7)) ]
	[ "$(grep -l '"certificate"' f?.out | wc -l)" = 1 ]
}

@test "a quote made by another TPM's AK is refused, even with the right proof of activation" {
	challenge ch.json
	"$PEER" finish "$U" ch.json "other-tpm=$OTHER_TCTI" >finish.json
	run post /v1/attest/finish finish.json
	[ "$(status_of "$output")" = 403 ]
	[ "$(body_of "$output")" = '{"error":"quote signed by a key other than the AK"}' ]
}

@test "a garbage finish does not spend the session: the genuine finish after it passes, once" {
	challenge ch.json
	session=$(jq -r .session ch.json)
	"$PEER" finish "$U" ch.json bad-proof >bad.json
	run post /v1/attest/finish bad.json
	[ "$(status_of "$output")" = 403 ]
	[ "$(body_of "$output")" = '{"error":"proof of activation does not match: the credential was not activated by the EK'"'"'s TPM"}' ]
	# Someone who only knows the session id: the rest of a genuine finish, a made-up proof.
	"$PEER" finish "$U" ch.json >good.json
	jq -c --arg p "$(head -c 32 /dev/urandom | base64 -w0)" '.proof = $p' good.json >garbage.json
	run post /v1/attest/finish garbage.json
	[ "$(status_of "$output")" = 403 ]
	[[ "$(body_of "$output")" == '{"error":"proof of activation does not match: '* ]]
	run post /v1/attest/finish good.json
	[ "$(status_of "$output")" = 200 ]
	[ "$(body_of "$output" | jq -r .node_id)" = node1.example ]
	# Twin: once spent by the genuine finish, it is spent for everyone.
	run post /v1/attest/finish good.json
	[ "$(body_of "$output")" = '{"error":"nonce already used: a replayed or repeated finish"}' ]
	run post /v1/attest/finish bad.json
	[ "$(body_of "$output")" = '{"error":"nonce already used: a replayed or repeated finish"}' ]
	# The session id is the finish's handle: not in the log, not in the audit trail.
	[ "$(grep -c "$session" "$SRV_DIR/server.log")" = 0 ]
	[ "$(srv audit export | grep -c "$session")" = 0 ]
	srv audit export | jq -r .reasons | grep -qx 'challenge issued under policy [0-9]*'
}

# hexdump FILE: FILE's bytes as one line of lowercase hex.
hexdump() { xxd -p "$1" | tr -d '\n'; }

@test "the challenge secret is not in the database: only a verifier of the proof, and a proof made from it is refused" {
	local db=$SRV_DIR/keystrap.db
	challenge ch.json
	session=$(jq -r .session ch.json)
	"$PEER" finish "$U" ch.json >good.json
	read -r secret proof nonce < <(handshake_facts ch.json good.json)
	[[ "$secret" =~ ^[0-9a-f]{64}$ ]]
	# What the row holds: the public nonce and SHA-256 of the expected proof.
	row=$(sqlite3 "$db" "SELECT lower(hex(nonce)) || ' ' || lower(hex(verifier)) || ' ' || used FROM challenges WHERE session = '$session'")
	[ "$row" = "$nonce $(printf '%s' "$proof" | xxd -r -p | sha256sum | cut -d' ' -f1) 0" ]
	# Neither the secret nor the proof is anywhere in the database's files.
	for f in "$db" "$db-wal"; do
		[ -s "$f" ] || continue
		[ "$(hexdump "$f" | grep -c "$secret")" = 0 ]
		[ "$(hexdump "$f" | grep -c "$proof")" = 0 ]
	done
	# A database reader's best tries: the verifier as the proof, and as the HMAC key.
	verifier=${row#* }
	forge_proofs "${verifier% *}" "$nonce" good.json
	for forged in forged-1.json forged-2.json; do
		run post /v1/attest/finish "$forged"
		[ "$(status_of "$output")" = 403 ]
		[[ "$(body_of "$output")" == '{"error":"proof of activation does not match: '* ]]
	done
	# Twin: the TPM's own proof passes, and the verifier is wiped as the nonce is spent.
	run post /v1/attest/finish good.json
	[ "$(status_of "$output")" = 200 ]
	[ "$(sqlite3 "$db" "SELECT length(verifier) || ' ' || used FROM challenges WHERE session = '$session'")" = "0 1" ]
}

@test "a database from before holds no clear secret once the server opens it: the old nonces table is dropped" {
	audit_copy old
	sqlite3 old.db "CREATE TABLE nonces (session TEXT PRIMARY KEY, nonce BLOB NOT NULL, secret BLOB NOT NULL,
		ek_hash TEXT NOT NULL, ak_pub BLOB NOT NULL, expires_us INTEGER NOT NULL, used INTEGER NOT NULL DEFAULT 0);
		INSERT INTO nonces VALUES ('00', X'00', X'5ec7e75ec7e75ec7e7', '', X'', 0, 0)"
	run "$KEYSTRAP_SERVER" node list --config old.json
	[ "$status" -eq 0 ]
	[ "$(sqlite3 old.db "SELECT group_concat(name) FROM sqlite_master WHERE name LIKE 'nonces%' OR name = 'challenges'")" = challenges ]
	# Twin: an open of today's database keeps its challenges.
	challenge ch.json
	run "$KEYSTRAP_SERVER" node list --config "$SRV_DIR/server.json"
	[ "$(sqlite3 "$SRV_DIR/keystrap.db" "SELECT count(*) FROM challenges WHERE session = '$(jq -r .session ch.json)'")" = 1 ]
}

@test "a finish answered 503 keeps its nonce: the retry gets the real reason, and passes once the policy is back" {
	local db=$SRV_DIR/keystrap.db v
	challenge ch.json
	"$PEER" finish "$U" ch.json >finish.json
	# No trusted policy in force for a moment: a "newer" row the operators did not sign.
	v=$(sqlite3 "$db" "SELECT max(version) FROM policies")
	sqlite3 "$db" "INSERT INTO policies SELECT $((v + 100)), loaded_us, text, signatures FROM policies WHERE version = $v"
	for _ in 1 2; do
		run post /v1/attest/finish finish.json
		[ "$(status_of "$output")" = 503 ]
		[ "$(body_of "$output")" = "{\"error\":\"the stored policy version $((v + 100)) holds a policy of version $v\"}" ]
	done
	sqlite3 "$db" "DELETE FROM policies WHERE version = $((v + 100))"
	run post /v1/attest/finish finish.json
	[ "$(status_of "$output")" = 200 ]
	# Single use still holds.
	run post /v1/attest/finish finish.json
	[ "$(body_of "$output")" = '{"error":"nonce already used: a replayed or repeated finish"}' ]
}

@test "a PCR that does not match its reference value is refused, and the reason names it" {
	# Another firmware's boot: its log replays to the PCRs, which are not the reference's.
	reboot_after
	replay_firmware "$LOGS/event-arch-linux.bin"
	run attest --event-log "$LOGS/event-arch-linux.bin"
	[ "$status" -eq 5 ]
	# Each PCR on its own, both values in full.
	[[ "$output" =~ ^"keystrap: the server refused the attestation (HTTP 403): PCR 0 (sha256) is $(pcr_value sha256 0), policy "[0-9]+" wants "[0-9a-f]{64}"; PCR 7 (sha256) is $(pcr_value sha256 7), policy "[0-9]+" wants "[0-9a-f]{64}$ ]]
	[ ! -e out/node.crt ]
}

@test "an unknown session and a quote over PCRs the server did not ask for are refused" {
	challenge ch.json
	"$PEER" finish "$U" ch.json >finish.json
	jq -c '.session = "00000000000000000000000000000000"' finish.json >unknown.json
	run post /v1/attest/finish unknown.json
	[ "$(body_of "$output")" = '{"error":"unknown session"}' ]
	jq -c 'del(.pcrs."7")' finish.json >fewer.json
	run post /v1/attest/finish fewer.json
	[ "$(body_of "$output")" = '{"error":"reported PCRs are not the requested selection"}' ]
}

@test "an oversize body gets 413, malformed JSON and unknown fields 400; each is recorded" {
	head -c 300000 /dev/zero | tr '\0' ' ' >big.json
	run post /v1/attest/start big.json
	[ "$(status_of "$output")" = 413 ]
	[ "$(body_of "$output")" = '{"error":"request body of 300000 bytes is larger than 262144"}' ]
	printf '{"version": "1",' >broken.json
	run post /v1/attest/start broken.json
	[ "$(status_of "$output")" = 400 ]
	[ "$(body_of "$output")" = '{"error":"malformed JSON: unexpected end of data"}' ]
	# An empty body is named as one (json-c calls it "continue"), whitespace alone too.
	: >empty.json
	run post /v1/attest/start empty.json
	[ "$(status_of "$output")" = 400 ]
	[ "$(body_of "$output")" = '{"error":"empty body: a JSON object is expected"}' ]
	printf ' \r\n\t' >blank.json
	run post /v1/attest/start blank.json
	[ "$(body_of "$output")" = '{"error":"empty body: a JSON object is expected"}' ]
	# A NUL inside a string is not text; an empty string is empty.
	jq -c '.version = "\u0000"' "$BATS_FILE_TMPDIR/start.json" >nul.json
	run post /v1/attest/start nul.json
	[ "$(status_of "$output")" = 400 ]
	[ "$(body_of "$output")" = "{\"error\":\"field 'version' is not text: it contains a NUL character (\\\\u0000) at byte 0\"}" ]
	jq -c '.version = "0.1\u0000.0"' "$BATS_FILE_TMPDIR/start.json" >nul.json
	run post /v1/attest/start nul.json
	[[ "$(body_of "$output")" == *"contains a NUL character (\\\\u0000) at byte 3\"}" ]]
	jq -c '.version = ""' "$BATS_FILE_TMPDIR/start.json" >blankv.json
	run post /v1/attest/start blankv.json
	[ "$(body_of "$output")" = "{\"error\":\"field 'version' is empty\"}" ]
	jq -c '.extra = 1' "$BATS_FILE_TMPDIR/start.json" >unknown.json
	run post /v1/attest/start unknown.json
	[ "$(status_of "$output")" = 400 ]
	[ "$(body_of "$output")" = "{\"error\":\"unknown field 'extra'\"}" ]
	jq -c '.ak_pub = .ek_pub' "$BATS_FILE_TMPDIR/start.json" >ekasak.json
	run post /v1/attest/start ekasak.json
	[ "$(status_of "$output")" = 403 ]
	[[ "$(body_of "$output")" == '{"error":"the AK is refused: '* ]]
	run srv audit export
	[[ "$output" == *'"action":"http","decision":"deny","reasons":"request body of 300000 bytes is larger than 262144"'* ]]
	[[ "$output" == *"\"decision\":\"deny\",\"reasons\":\"unknown field 'extra'\""* ]]
}

@test "an EK certificate from no trusted manufacturer, or for another EK, is refused" {
	local chain='{"error":"the EK certificate does not chain to a trusted manufacturer CA: unable to get local issuer certificate"}'
	jq -c --arg c "$(openssl x509 -in "$SRV_DIR/tls.crt" -outform DER | base64 -w0)" '.ek_cert = $c' \
		"$BATS_FILE_TMPDIR/start.json" >x.json
	run post /v1/attest/start x.json
	[ "$(status_of "$output")" = 403 ]
	[ "$(body_of "$output")" = "$chain" ]
	jq -c --rawfile c "$SRV_DIR/tls.crt" '.ek_cert = $c' "$BATS_FILE_TMPDIR/start.json" >x.json
	run post /v1/attest/start x.json
	[ "$(body_of "$output")" = "$chain" ]
	jq -c '.ek_cert = "AAAA"' "$BATS_FILE_TMPDIR/start.json" >x.json
	run post /v1/attest/start x.json
	[ "$(body_of "$output")" = '{"error":"the EK certificate is not one DER X.509 certificate"}' ]
	KEYSTRAP_TCTI=$OTHER_TCTI "$PEER" start "$U" >other.json
	jq -c --slurpfile o other.json '.ek_cert = $o[0].ek_cert' "$BATS_FILE_TMPDIR/start.json" >x.json
	run post /v1/attest/start x.json
	[ "$(body_of "$output")" = '{"error":"the EK certificate does not certify ek_pub"}' ]
}

@test "a verified EK certificate is remembered for its own EK only: swapped certificates are refused every time" {
	# Both pairs pass the chain and key checks once (both nodes are approved by now), so the
	# server remembers both certificates.
	KEYSTRAP_TCTI=$OTHER_TCTI "$PEER" start "$U" >other.json
	run post /v1/attest/start other.json
	[ "$(status_of "$output")" = 200 ]
	run post /v1/attest/start "$BATS_FILE_TMPDIR/start.json"
	[ "$(status_of "$output")" = 200 ]
	# Each remembered certificate (same manufacturer CA, another key) with the other TPM's EK, twice.
	jq -c --slurpfile o other.json '.ek_cert = $o[0].ek_cert' "$BATS_FILE_TMPDIR/start.json" >mine-their-cert.json
	jq -c --slurpfile s "$BATS_FILE_TMPDIR/start.json" '.ek_cert = $s[0].ek_cert' other.json >their-my-cert.json
	for _ in 1 2; do
		run post /v1/attest/start mine-their-cert.json
		[ "$(status_of "$output")" = 403 ]
		[ "$(body_of "$output")" = '{"error":"the EK certificate does not certify ek_pub"}' ]
		run post /v1/attest/start their-my-cert.json
		[ "$(status_of "$output")" = 403 ]
		[ "$(body_of "$output")" = '{"error":"the EK certificate does not certify ek_pub"}' ]
	done
	# The right pairs still pass afterwards.
	run post /v1/attest/start "$BATS_FILE_TMPDIR/start.json"
	[ "$(status_of "$output")" = 200 ]
	run post /v1/attest/start other.json
	[ "$(status_of "$output")" = 200 ]
}

# One EK is one node: its certified key in any public area other than its TCG template is no
# node at all (tpm2-tools' tpm2_createek derives the same EK, hence the same node, below).
@test "a revoked node's EK re-encoded (authPolicy, attributes, exponent) is refused, never a new enrollment request" {
	local before
	srv node revoke "$EK_OTHER" >/dev/null
	KEYSTRAP_TCTI=$OTHER_TCTI run attest
	[ "$output" = "keystrap: the server refused the attestation start (HTTP 403): node is revoked" ]
	before=$(srv node list)
	KEYSTRAP_TCTI=$OTHER_TCTI "$PEER" start "$U" "ek-policy=$(printf 'ab%.0s' {1..32})" >x.json
	run post /v1/attest/start x.json
	[ "$(status_of "$output")" = 403 ]
	[ "$(body_of "$output")" = '{"error":"the EK is refused: authPolicy '"'$(printf 'ab%.0s' {1..32})'"' is not the EK template L-1'"'"'s (rsa2048)"}' ]
	KEYSTRAP_TCTI=$OTHER_TCTI "$PEER" start "$U" "ek-policy=$(head -c 32 /dev/urandom | xxd -p -c 64)" >x.json
	run post /v1/attest/start x.json
	[[ "$(body_of "$output")" == '{"error":"the EK is refused: authPolicy '* ]]
	KEYSTRAP_TCTI=$OTHER_TCTI "$PEER" start "$U" ek-attrs=000300f2 >x.json
	run post /v1/attest/start x.json
	[ "$(body_of "$output")" = '{"error":"the EK is refused: objectAttributes 0x000300f2 are not 0x000300b2 (EK template L-1, rsa2048)"}' ]
	KEYSTRAP_TCTI=$OTHER_TCTI "$PEER" start "$U" ek-exponent >x.json
	run post /v1/attest/start x.json
	[ "$(body_of "$output")" = '{"error":"the EK is refused: the symmetric, scheme, exponent or KDF parameters are not the EK template L-1'"'"'s (rsa2048)"}' ]
	# Nothing was recorded, and the genuine EK is still the revoked node.
	[ "$(srv node list)" = "$before" ]
	grep -q 'action=attest-start decision=deny.*the EK is refused: objectAttributes' "$SRV_DIR/server.log"
	KEYSTRAP_TCTI=$OTHER_TCTI run attest
	[ "$output" = "keystrap: the server refused the attestation start (HTTP 403): node is revoked" ]
	srv node approve "$EK_OTHER" --reinstate >/dev/null
	KEYSTRAP_TCTI=$OTHER_TCTI run attest
	[ "$output" = "keystrap: attested as other" ]
	# The approved node re-encoded is refused as well: there is no second way to be it.
	KEYSTRAP_TCTI=$OTHER_TCTI "$PEER" start "$U" ek-attrs=000300f2 >x.json
	run post /v1/attest/start x.json
	[ "$(status_of "$output")" = 403 ]
}

@test "tpm2-tools as the node (tpm2_createek, tpm2_createak under the EK, tpm2_quote): attests as this TPM's node" {
	t2n_keys t2 ek
	run t2n_attest t2
	[ "$(status_of "$output")" = 200 ]
	# tpm2_createek derives keystrap's RSA EK: the same registry entry, the approved node1.
	[ "$(body_of "$output" | jq -r .node_id)" = node1.example ]
	body_of "$output" | jq -r .certificate >node.crt
	[ "$(openssl x509 -in node.crt -noout -pubkey)" = "$(openssl pkey -in t2/node.key -pubout)" ]
	run openssl verify -CAfile "$SRV_DIR/ca.crt" node.crt
	[ "$output" = "node.crt: OK" ]
}

@test "tpm2-tools AKs under another EK of the TPM, or under an owner-hierarchy SRK, are refused naming the signer" {
	local parent
	for parent in ecc-ek owner; do
		t2n_keys "$parent" "$parent"
		run t2n_attest "$parent"
		[ "$(status_of "$output")" = 403 ]
		[ "$(body_of "$output")" = '{"error":"quote signed by a key other than the AK"}' ]
	done
}

# audit_copy NAME: a consistent copy of the live database (owner-only, as the server requires)
# and a configuration pointing at it.
audit_copy() {
	(umask 077 && sqlite3 "$SRV_DIR/keystrap.db" ".backup $BATS_TEST_TMPDIR/$1.db")
	jq --arg db "$BATS_TEST_TMPDIR/$1.db" '.database = $db' "$SRV_DIR/server.json" >"$1.json"
}

@test "audit verify passes on the live log and detects an edited, a removed and a reordered record" {
	run srv audit verify
	[ "$status" -eq 0 ]
	[[ "${lines[0]}" =~ ^"audit log intact: "[0-9]+" records, root "[0-9a-f]{64}$ ]]
	audit_copy edited
	sqlite3 edited.db "UPDATE audit SET decision = 'deny' WHERE seq = 1"
	run "$KEYSTRAP_SERVER" audit verify --config edited.json
	[ "$status" -eq 1 ]
	[ "$output" = "keystrap-server: audit log broken: record 1 does not match its hash (edited)" ]
	audit_copy removed
	sqlite3 removed.db "DELETE FROM audit WHERE seq = 3"
	run "$KEYSTRAP_SERVER" audit verify --config removed.json
	[ "$output" = "keystrap-server: audit log broken: record 4 follows 2 (removed or reordered records)" ]
	audit_copy reordered
	sqlite3 reordered.db "UPDATE audit SET seq = -1 WHERE seq = 2; UPDATE audit SET seq = 2 WHERE seq = 3;
		UPDATE audit SET seq = 3 WHERE seq = -1"
	run "$KEYSTRAP_SERVER" audit verify --config reordered.json
	[ "$output" = "keystrap-server: audit log broken: record 2 does not link to the record before it" ]
	# --json: one object, intact with the same head, or where and why it broke.
	root=$(srv audit verify | sed -n '1s/.* root //p')
	run srv audit verify --json
	[ "$status" -eq 0 ]
	[ "$(jq -c '[.intact, .records > 0, .root]' <<<"$output")" = "[true,true,\"$root\"]" ]
	run bash -c '"$0" audit verify --json --config removed.json 2>/dev/null' "$KEYSTRAP_SERVER"
	[ "$status" -eq 1 ]
	[ "$(jq -c . <<<"$output")" = '{"intact":false,"records":2,"broken_at":4,"reason":"record 4 follows 2 (removed or reordered records)"}' ]
	# Every decision above is in the log, as JSON lines.
	[ "$(srv audit export | jq -r .action | sort -u | tr '\n' ' ')" = "attest-finish attest-start http node-approve node-reinstate node-revoke policy-load " ]
}

@test "keystrap attest fails closed: a server its CA did not sign (exit 1), and nobody listening (exit 4)" {
	run "$KEYSTRAP" attest --server "https://127.0.0.1:$SRV_PORT" --ca "$EK_CA_DIR/issuercert.pem" --out-dir out
	[ "$status" -eq 1 ]
	[[ "$output" == "keystrap: cannot reach https://127.0.0.1:$SRV_PORT/v1/attest/start: "*"certificate"* ]]
	port=$(free_port)
	run "$KEYSTRAP" attest --server "https://127.0.0.1:$port" --ca "$SRV_DIR/ca.crt" --out-dir out --retries 1
	[ "$status" -eq 4 ]
	[ "$output" = "keystrap: cannot reach https://127.0.0.1:$port/v1/attest/start: cannot connect to 127.0.0.1 port $port: Connection refused" ]
	[ ! -e out/node.crt ]
	run "$KEYSTRAP" attest --server "http://127.0.0.1:$SRV_PORT" --ca "$SRV_DIR/ca.crt"
	[ "$status" -eq 2 ]
}

@test "SIGTERM stops the server cleanly: exit 0, its last decision durable and the chain intact" {
	local d=$BATS_TEST_TMPDIR/srv2
	mkdir -p "$d"
	cp "$SRV_DIR"/{ca,tls}.{crt,key} "$d/"
	SRV_PORT=$(free_port) server_config "$d" "0 7"
	SRV_PORT=$(jq -r '.listen | split(":")[1]' "$d/server.json")
	server_start "$d"
	run post /v1/attest/start "$BATS_FILE_TMPDIR/start.json"
	[ "$(status_of "$output")" = 403 ]
	server_stop "$d"
	grep -q 'event=stopping signal=TERM' "$d/server.log"
	grep -q 'event=stopped' "$d/server.log"
	run "$KEYSTRAP_SERVER" audit verify --config "$d/server.json"
	# The policy server_config loaded, then the refused start.
	[[ "${lines[0]}" == "audit log intact: 2 records, root "* ]]
	run "$KEYSTRAP_SERVER" node list --config "$d/server.json"
	[[ "${lines[1]}" == "-"*" ${EK:0:16} default "*"requested "* ]]
}

@test "a batch whose commit cannot be made durable (fdatasync fails) is not answered as decided, and the server stops with exit 1; restarted, its chain is intact" {
	local d=$BATS_TEST_TMPDIR/srv2 pid rc=0
	mkdir -p "$d"
	cp "$SRV_DIR"/{ca,tls}.{crt,key} "$d/"
	SRV_PORT=$(free_port) server_config "$d" "0 7"
	SRV_PORT=$(jq -r '.listen | split(":")[1]' "$d/server.json")
	# The fault is preloaded (the sanitizer's runtime then is not first: allowed here). On from
	# the start, it keeps the server from serving at all: exit 1, one line naming it.
	touch "$BATS_TEST_TMPDIR/fault"
	LD_PRELOAD=$BATS_TEST_DIRNAME/../../build/fdatasync-fault.so FDATASYNC_FAULT=$BATS_TEST_TMPDIR/fault \
		ASAN_OPTIONS=verify_asan_link_order=0 run timeout 20 "$KEYSTRAP_SERVER" serve --config "$d/server.json"
	[ "$status" -eq 1 ]
	# After the audit checkpoint it opened on, the one line of the failure.
	[ "${lines[-1]}" = "keystrap-server: cannot sync the store's WAL: Input/output error" ]
	[ "$(grep -c cannot <<<"$output")" -eq 1 ]
	rm "$BATS_TEST_TMPDIR/fault"
	LD_PRELOAD=$BATS_TEST_DIRNAME/../../build/fdatasync-fault.so FDATASYNC_FAULT=$BATS_TEST_TMPDIR/fault \
		ASAN_OPTIONS=verify_asan_link_order=0 server_start "$d"
	pid=$(cat "$d/server.pid")
	# The twin first: with the disk syncing, the start is decided and answered.
	run post /v1/attest/start "$BATS_FILE_TMPDIR/start.json"
	[ "$(status_of "$output")" = 403 ]
	touch "$BATS_TEST_TMPDIR/fault"
	run post /v1/attest/start "$BATS_FILE_TMPDIR/start.json"
	[ "$(status_of "$output")" != 403 ]
	for _ in $(seq 200); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.05
	done
	kill -0 "$pid" 2>/dev/null && { kill "$pid"; echo "the server went on serving"; return 1; }
	wait "$pid" || rc=$?
	rm -f "$d/server.pid"
	[ "$rc" -eq 1 ]
	grep -q 'event=stopping reason="a commit could not be made durable' "$d/server.log"
	! grep -q 'event=stopped' "$d/server.log" || false
	rm "$BATS_TEST_TMPDIR/fault"
	server_start "$d"
	run post /v1/attest/start "$BATS_FILE_TMPDIR/start.json"
	[ "$(status_of "$output")" = 403 ]
	server_stop "$d"
	run "$KEYSTRAP_SERVER" audit verify --config "$d/server.json"
	[ "$status" -eq 0 ]
	[[ "${lines[0]}" == "audit log intact: "* ]]
}

# serve_refused DIR: keystrap-server serve with DIR's configuration must exit 1 at once, saying
# one line (in $output).
serve_refused() {
	run timeout 20 "$KEYSTRAP_SERVER" serve --config "$1/server.json"
	[ "$status" -eq 1 ]
	[ "${#lines[@]}" -eq 1 ]
}

@test "under umask 022 the database, its -wal and -shm are created 0600; a loose database, CA or TLS key is refused, naming the file and its mode" {
	local d=$BATS_TEST_TMPDIR/srv2 f
	mkdir -p "$d"
	cp "$SRV_DIR"/{ca,tls}.{crt,key} "$d/"
	umask 022
	# policy load creates the database, secret set writes a value into it, serve holds -wal and -shm open.
	SRV_PORT=$(free_port) server_config "$d" "0 7"
	echo hunter2 | "$KEYSTRAP_SERVER" secret set web.password --config "$d/server.json" >/dev/null
	[ "$(stat -c %a "$d/keystrap.db")" = 600 ]
	SRV_PORT=$(jq -r '.listen | split(":")[1]' "$d/server.json") server_start "$d"
	for f in keystrap.db keystrap.db-wal keystrap.db-shm; do
		[ "$(stat -c %a "$d/$f")" = 600 ]
	done
	server_stop "$d"
	# Each file a group or other user could read, in turn (a -wal or -shm as an earlier version
	# left it), is refused; the server never listens.
	for f in keystrap.db keystrap.db-wal keystrap.db-shm; do
		if [ "$f" = keystrap.db ]; then chmod 644 "$d/$f"; else install -m 644 /dev/null "$d/$f"; fi
		serve_refused "$d"
		[[ "$output" == *": cannot open the store '$d/keystrap.db': '$d/$f' has mode 0644: group or others can access it (chmod 600 it)" ]]
		if [ "$f" = keystrap.db ]; then chmod 600 "$d/$f"; else rm "$d/$f"; fi
	done
	# The admin commands refuse it too: a secret is not written into a readable file.
	chmod 640 "$d/keystrap.db"
	run bash -c "echo x | '$KEYSTRAP_SERVER' secret set other --config '$d/server.json'"
	[ "$status" -eq 1 ]
	[[ "$output" == *"'$d/keystrap.db' has mode 0640: group or others can access it (chmod 600 it)" ]]
	chmod 600 "$d/keystrap.db"
	chmod 640 "$d/ca.key"
	serve_refused "$d"
	[[ "$output" == *": CA key '$d/ca.key' has mode 0640: group or others can access it (chmod 600 it)" ]]
	chmod 600 "$d/ca.key"
	chmod 604 "$d/tls.key"
	serve_refused "$d"
	[[ "$output" == *": TLS key '$d/tls.key' has mode 0604: group or others can access it (chmod 600 it)" ]]
	chmod 600 "$d/tls.key"
	# Twin: every file the owner's alone, the same configuration serves.
	SRV_PORT=$(jq -r '.listen | split(":")[1]' "$d/server.json") server_start "$d"
	server_stop "$d"
}
