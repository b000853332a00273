#!/usr/bin/env bats
# Policy as code (issue 5): a policy takes effect only when k = 2 of the n operator keys signed
# its exact bytes; unsigned, under-signed, foreign-signed, tampered, expired, older and equal
# versions are refused with nothing stored; a newer one governs the very next handshake; a row
# edited in the database is not trusted; secrets come from stdin only. Real swtpm, real
# server on loopback, signatures made with the openssl command line as operators would.

load ../lib/swtpm
load ../lib/server

PEER=$BATS_TEST_DIRNAME/../../build/asan/attest-peer

setup_file() {
	swtpm_start
	export SRV_DIR=$BATS_FILE_TMPDIR/srv SRV_PORT EK U
	SRV_PORT=$(free_port)
	server_pki "$SRV_DIR"
	server_config "$SRV_DIR" "0 7"
	server_start "$SRV_DIR"
	# Someone who is not an operator, with a key of the same kind.
	operator_key "$OPERATOR_DIR" intruder
	EK=$(ek_hash)
	U=$(head -c 32 /dev/urandom | xxd -p -c 64)
	approve_peer "$U"
}

teardown_file() {
	server_stop "$SRV_DIR" || true
	swtpm_stop
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

status_of() { echo "${1##*$'\n'}"; }
body_of() { echo "${1%$'\n'*}"; }

# next_version: the version above every one this file has loaded (server_policy counts them).
next_version() {
	echo $(($(cat "$OPERATOR_DIR/policy.version") + 1))
}

# policy FILE [JQ-FILTER]: the next version of the good policy (PCRs 0 and 7 as they are now),
# changed by JQ-FILTER, in FILE; not signed.
policy() {
	local v
	v=$(next_version)
	policy_json "0 7" "$v" | jq -c "${2:-.}" >"$1"
	echo "$v" >"$OPERATOR_DIR/policy.version"
}

# load FILE [SIGNER...]: signs FILE with each SIGNER (default op1 op2), then policy load with those signatures.
load_signed() {
	local f=$1 args=() k
	shift
	[ $# -gt 0 ] || set -- op1 op2
	policy_sign "$OPERATOR_DIR" "$f" "$@"
	for k in "$@"; do args+=(--signature "$f.$k.sig"); done
	srv policy load "$f" "${args[@]}"
}

current_version() {
	srv policy show | sed -n 's/^version //p'
}

@test "a policy signed by 2 of the 2 operator keys is loaded, recorded and shown" {
	policy p.json
	run load_signed p.json
	[ "$status" -eq 0 ]
	[[ "$output" =~ ^"policy version "[0-9]+" loaded: signed by 2 of 2 operator keys ("[0-9a-f]{16}", "[0-9a-f]{16}"), expires "[0-9T:Z-]+$ ]]
	run srv policy show
	[ "$status" -eq 0 ]
	[ "$(sed -n 1p <<<"$output")" = "version $(jq .version p.json)" ]
	[ "$(grep -c '^signed-by ' <<<"$output")" = 2 ]
	[ "$(tail -n1 <<<"$output")" = "state in force" ]
	fp1=$(openssl pkey -pubin -in "$OPERATOR_DIR/op1.pub" -outform DER | sha256sum | cut -c1-64)
	# --json: the same facts as one object, for scripts.
	run srv policy show --json
	[ "$status" -eq 0 ]
	[ "$(jq -c '[.version, .state, .credential_lifetime, (.signed_by | length), .expires_us > 0]' <<<"$output")" = \
		"[$(jq .version p.json),\"in force\",$(jq .credential_lifetime p.json),2,true]" ]
	jq -e --arg fp "$fp1" --arg pub "$OPERATOR_DIR/op1.pub" \
		'.signed_by | any(.fingerprint == $fp and .path == $pub)' <<<"$output" >/dev/null
	[ "$(jq -r .expires <<<"$output")" = "$(jq -r .expires p.json)" ]
	# The audit record names the version, the policy's SHA-256 and both keys' full fingerprints.
	rec=$(srv audit export | jq -c 'select(.action == "policy-load")' | tail -n1)
	[[ "$rec" == *"policy version $(jq .version p.json) (sha256 $(sha256sum <p.json | cut -c1-64)), "*"$fp1"* ]]
	run attest
	[ "$output" = "keystrap: attested as node1.example" ]
}

@test "unsigned, under-signed (1 of 2) and one key's signature twice are refused; nothing is stored" {
	before=$(current_version)
	policy p.json
	run srv policy load p.json
	[ "$status" -eq 1 ]
	[ "$output" = "keystrap-server: policy is signed by 0 of the required 2 operator keys" ]
	run load_signed p.json op1
	[ "$status" -eq 1 ]
	[ "$output" = "keystrap-server: policy is signed by 1 of the required 2 operator keys" ]
	# The same operator twice is still one operator.
	run srv policy load p.json --signature p.json.op1.sig --signature p.json.op1.sig
	[ "$output" = "keystrap-server: policy is signed by 1 of the required 2 operator keys" ]
	cp p.json.op1.sig copy.sig
	run srv policy load p.json --signature p.json.op1.sig --signature copy.sig
	[ "$output" = "keystrap-server: policy is signed by 1 of the required 2 operator keys" ]
	[ "$(current_version)" = "$before" ]
	# Each attempt is on record, refused.
	srv audit export | jq -r 'select(.action == "policy-load" and .decision == "deny") | .reasons' |
		grep -q "^policy file p.json refused: policy is signed by 1 of the required 2 operator keys; by operator:"
	# Its positive twin: the second operator signs too.
	run load_signed p.json op1 op2
	[ "$status" -eq 0 ]
	[ "$(current_version)" = "$(jq .version p.json)" ]
}

@test "a signature by a key that is not an operator's is refused, naming the file" {
	policy p.json
	run load_signed p.json op1 intruder
	[ "$status" -eq 1 ]
	[ "$output" = "keystrap-server: signature 'p.json.intruder.sig' does not verify under any configured operator key" ]
	head -c 71 /dev/urandom >junk.sig
	run srv policy load p.json --signature p.json.op1.sig --signature junk.sig
	[ "$output" = "keystrap-server: signature 'junk.sig' does not verify under any configured operator key" ]
	head -c 2000 /dev/urandom >big.sig
	run srv policy load p.json --signature big.sig
	[ "$output" = "keystrap-server: signature 'big.sig' is larger than 1024 bytes" ]
}

@test "policy bytes changed after signing are refused, even a change JSON does not see" {
	policy p.json
	policy_sign "$OPERATOR_DIR" p.json op1 op2
	jq -c '.credential_lifetime = 86400' p.json >tampered.json
	run srv policy load tampered.json --signature p.json.op1.sig --signature p.json.op2.sig
	[ "$status" -eq 1 ]
	[ "$output" = "keystrap-server: signature 'p.json.op1.sig' does not verify under any configured operator key" ]
	# Same JSON meaning, one more space: the signature covers bytes, not meaning.
	sed 's/{/{ /' p.json >spaced.json
	run srv policy load spaced.json --signature p.json.op1.sig --signature p.json.op2.sig
	[ "$output" = "keystrap-server: signature 'p.json.op1.sig' does not verify under any configured operator key" ]
}

@test "an expired policy is refused" {
	policy p.json '.expires = "2020-01-01T00:00:00Z"'
	run load_signed p.json
	[ "$status" -eq 1 ]
	[ "$output" = "keystrap-server: policy version $(jq .version p.json) expired at 2020-01-01T00:00:00Z" ]
}

@test "an older or equal version is refused; a newer one is accepted" {
	current=$(current_version)
	policy_json "0 7" "$current" >equal.json
	run load_signed equal.json
	[ "$status" -eq 1 ]
	[ "$output" = "keystrap-server: policy version $current is not newer than the current version $current" ]
	policy_json "0 7" 1 >older.json
	run load_signed older.json
	[ "$output" = "keystrap-server: policy version 1 is not newer than the current version $current" ]
	[ "$(current_version)" = "$current" ]
	policy p.json
	run load_signed p.json
	[ "$status" -eq 0 ]
	[ "$(current_version)" = "$(jq .version p.json)" ]
}

@test "policy draft refuses in one line: an unknown node, a node never refused; nothing is written" {
	run srv policy draft --from-node nosuch.example --out d.json
	[ "$status" -eq 1 ]
	[ "$output" = "keystrap-server: no node 'nosuch.example' in the registry (node list shows them)" ]
	[ ! -e d.json ]
	# node1 attested, but no boot state of it was ever refused.
	run srv policy draft --from-node node1.example --out d.json
	[ "$status" -eq 1 ]
	[ "$output" = "keystrap-server: node 'node1.example' has no refused attestation on record: nothing to draft from" ]
	[ ! -e d.json ]
	# Its options belong to draft alone.
	run srv policy show --from-node node1.example
	[ "$status" -eq 2 ]
	run srv policy draft --out d.json
	[ "$status" -eq 2 ]
}

@test "a newer policy governs the next handshake: a changed PCR 7 reference fails naming it; its twin passes" {
	other=$(printf 'other' | sha256sum | cut -c1-64)
	policy p.json ".reference_pcrs.\"7\" = \"$other\""
	load_signed p.json
	run attest
	[ "$status" -eq 5 ]
	# Both values in full: what the node quoted, and what the policy wanted.
	[ "$output" = "keystrap: the server refused the attestation (HTTP 403): PCR 7 (sha256) is $(pcr_value sha256 7), policy $(jq .version p.json) wants $other" ]
	[ ! -e out/node.crt ]
	policy good.json
	load_signed good.json
	run attest
	[ "$status" -eq 0 ]
	[ "$output" = "keystrap: attested as node1.example" ]
	# Issued under the policy that was in force, which the audit record names.
	srv audit export | jq -r 'select(.action == "attest-finish" and .decision == "allow") | .reasons' | tail -n1 |
		grep -q "under policy $(jq .version good.json),"
}

@test "a policy checking another bank, loaded since the challenge, refuses the finish naming both banks; its twin passes" {
	challenge ch.json
	"$PEER" finish "$U" ch.json >finish.json
	# The server replays the logs in the quoted bank alone: a sha1 policy cannot judge a sha256 quote.
	sha1_zeros=$(printf '00%.0s' {1..20})
	policy sha1.json ".pcr_bank = \"sha1\" | .reference_pcrs = {\"0\": \"$sha1_zeros\", \"7\": \"$sha1_zeros\"}"
	load_signed sha1.json
	run post /v1/attest/finish finish.json
	[ "$(status_of "$output")" = 403 ]
	[ "$(body_of "$output")" = "{\"error\":\"reported PCRs are not the requested selection: the quote covers bank sha256, policy $(jq .version sha1.json) checks sha1\"}" ]
	srv audit export | jq -r 'select(.action == "attest-finish") | .decision + " " + .reasons' | tail -n1 |
		grep -qx "deny reported PCRs are not the requested selection: the quote covers bank sha256, policy $(jq .version sha1.json) checks sha1"
	# Twin: a sha256 policy in force again, the same kind of finish passes.
	policy good.json
	load_signed good.json
	challenge ch2.json
	"$PEER" finish "$U" ch2.json >finish2.json
	run post /v1/attest/finish finish2.json
	[ "$(status_of "$output")" = 200 ]
}

@test "after an update: the refusal names PCR 7 in full (node and audit), policy draft takes it, 2-of-2 signed it loads and the node attests" {
	other=$(printf 'before the update' | sha256sum | cut -c1-64)
	policy p.json ".reference_pcrs.\"7\" = \"$other\""
	load_signed p.json
	v=$(jq .version p.json)
	now=$(pcr_value sha256 7)
	run attest
	[ "$status" -eq 5 ]
	want="PCR 7 (sha256) is $now, policy $v wants $other"
	[ "$output" = "keystrap: the server refused the attestation (HTTP 403): $want" ]
	[ "$(srv audit export | jq -r 'select(.action == "attest-finish") | .reasons' | tail -n1)" = "$want" ]
	seq=$(srv audit export | jq -r 'select(.action == "attest-finish") | .seq' | tail -n1)
	run srv policy draft --from-node node1.example --out draft.json
	[ "$status" -eq 0 ]
	[[ "$output" == "policy version $((v + 1)) drafted from node node1.example's refusal of "*" (audit record $seq) under policy $v: new reference value for PCR 7; review it, sign it (k of n) and load it" ]]
	# The same from its audit record; an audit record that is no refusal on record is refused.
	srv policy draft --from-audit "$seq" 2>/dev/null | cmp - draft.json
	run srv policy draft --from-audit $((seq - 1))
	[ "$status" -eq 1 ]
	[ "$output" = "keystrap-server: audit record $((seq - 1)) is no node's last refused attestation on record (only that is kept, one per node)" ]
	run srv policy draft --from-audit 0x10
	[ "$output" = "keystrap-server: '0x10' is not an audit record's seq (a number from 1)" ]
	run srv policy draft --from-audit "$seq" --from-node node1.example
	[ "$status" -eq 2 ]
	[ "$(stat -c %a draft.json)" = 600 ]
	# The policy in force, one version up, PCR 7 as the node quoted it; the rest as it was.
	[ "$(jq -c 'del(.version, .reference_pcrs."7")' draft.json)" = "$(jq -c 'del(.version, .reference_pcrs."7")' p.json)" ]
	[ "$(jq -r '[.version, .reference_pcrs."7"] | @tsv' draft.json)" = "$((v + 1))	$now" ]
	# Never overwritten without --force; with it, still owner-only.
	chmod 644 draft.json
	cp draft.json kept.json
	run srv policy draft --from-node node1.example --out draft.json
	[ "$status" -eq 1 ]
	[ "$output" = "keystrap-server: 'draft.json' exists: not overwritten without --force" ]
	cmp draft.json kept.json
	run srv policy draft --from-node node1.example --out draft.json --force
	[ "$status" -eq 0 ]
	[ "$(stat -c %a draft.json)" = 600 ]
	cmp draft.json kept.json
	# Without --out: the draft on stdout, the same bytes.
	srv policy draft --from-node node1.example 2>/dev/null | cmp - draft.json
	# A draft edited after signing is refused at load: nothing changes, the node stays refused.
	policy_sign "$OPERATOR_DIR" draft.json op1 op2
	sed 's/"credential_lifetime":600/"credential_lifetime":6000/; s/"credential_lifetime": 600/"credential_lifetime": 6000/' draft.json >edited.json
	! cmp -s draft.json edited.json || false
	cp draft.json.op1.sig edited.json.op1.sig
	cp draft.json.op2.sig edited.json.op2.sig
	run srv policy load edited.json --signature edited.json.op1.sig --signature edited.json.op2.sig
	[ "$status" -eq 1 ]
	[ "$output" = "keystrap-server: signature 'edited.json.op1.sig' does not verify under any configured operator key" ]
	[ "$(current_version)" = "$v" ]
	run attest
	[ "$status" -eq 5 ]
	# Twin: the draft as drafted, signed by both operators, loads; the same node attests.
	echo $((v + 1)) >"$OPERATOR_DIR/policy.version"
	run srv policy load draft.json --signature draft.json.op1.sig --signature draft.json.op2.sig
	[ "$status" -eq 0 ]
	run attest
	[ "$status" -eq 0 ]
	[ "$output" = "keystrap: attested as node1.example" ]
	# The refusal on record is now in the policy: nothing left to draft.
	run srv policy draft --from-node node1.example --out again.json
	[ "$status" -eq 1 ]
	[[ "$output" == "keystrap-server: no draft from node 'node1.example''s refusal of "*" (audit record "*") under policy $v: it holds nothing policy $((v + 1)) does not already allow" ]]
	[ ! -e again.json ]
}

@test "policy draft with no policy in the store refuses in one line" {
	local d=$BATS_TEST_TMPDIR/nopolicy
	mkdir -p "$d"
	sqlite3 "$SRV_DIR/keystrap.db" ".backup '$d/keystrap.db'"
	chmod 600 "$d/keystrap.db"
	sqlite3 "$d/keystrap.db" "DELETE FROM policies"
	jq --arg db "$d/keystrap.db" '.database = $db' "$SRV_DIR/server.json" >"$d/server.json"
	run "$KEYSTRAP_SERVER" policy draft --from-node node1.example --out d.json --config "$d/server.json"
	[ "$status" -eq 1 ]
	[ "$output" = "keystrap-server: no policy is loaded: a draft starts from the current one" ]
	[ ! -e d.json ]
	# Twin: the same copy with its policies gets past that (the refusal on record is in the policy now).
	sqlite3 "$SRV_DIR/keystrap.db" ".backup '$d/keystrap.db'"
	run "$KEYSTRAP_SERVER" policy draft --from-node node1.example --out d.json --config "$d/server.json"
	[[ "$output" == "keystrap-server: no draft from node 'node1.example''s refusal of "*": it holds nothing policy "*" does not already allow" ]]
}

@test "the credential lifetime comes from the policy" {
	policy p.json '.credential_lifetime = 120'
	load_signed p.json
	run attest
	[ "$status" -eq 0 ]
	end=$(date -d "$(openssl x509 -in out/node.crt -noout -enddate | cut -d= -f2)" +%s)
	left=$((end - $(date +%s)))
	[ "$left" -le 120 ] && [ "$left" -gt 60 ]
	policy good.json
	load_signed good.json
}

@test "min_keystrap_version is advisory: a node reporting an older version is admitted, and its record and log line say so" {
	policy p.json '.min_keystrap_version = "0.2.0"'
	load_signed p.json
	local v note
	v=$(jq .version p.json)
	note="challenge issued under policy $v; the node reports keystrap 0.1.0, older than min_keystrap_version 0.2.0 (advisory, not enforced)"
	run attest
	[ "$status" -eq 0 ]
	[ "$output" = "keystrap: attested as node1.example" ]
	run srv audit export
	[[ "$output" == *"\"action\":\"attest-start\",\"decision\":\"allow\",\"reasons\":\"$note\""* ]]
	grep -q "event=request .*path=/v1/attest/start status=200 action=attest-start decision=allow .*reason=\"$note\"" "$SRV_DIR/server.log"
	[ "$(grep -c 'min_keystrap_version 0.2.0' "$SRV_DIR/server.log")" -eq 1 ]
	run srv policy show
	[[ "$output" == *$'\nmin-keystrap-version 0.2.0 (advisory: what the node reports about itself)\n'* ]]
	# The version is the node's own claim: the same node saying 99.0.0 gets its challenge. What
	# pins the keystrap binary is PCR 9 (the initrd's digest) in reference_pcrs.
	jq -c '.version = "99.0.0"' "$BATS_FILE_TMPDIR/start.json" >claim.json
	run post /v1/attest/start claim.json
	[ "$(status_of "$output")" = 200 ]
	# 0.10 is newer than 0.9: versions compare by number, not as text.
	policy p.json '.min_keystrap_version = "0.0.10"'
	load_signed p.json
	run attest
	[ "$output" = "keystrap: attested as node1.example" ]
	policy good.json '.min_keystrap_version = "0.1.0"'
	load_signed good.json
	run attest
	[ "$output" = "keystrap: attested as node1.example" ]
	# The negative twin: a node at the minimum gets the plain reason, no note.
	run srv audit export
	[[ "$output" == *"\"reasons\":\"challenge issued under policy $(jq .version good.json)\""* ]]
	[ "$(grep -c 'older than min_keystrap_version' "$SRV_DIR/server.log")" -eq 1 ]
	jq -c '.version = "not-a-version"' "$BATS_FILE_TMPDIR/start.json" >bad.json
	run post /v1/attest/start bad.json
	[ "$(body_of "$output")" = "{\"error\":\"field 'version' is not a dotted keystrap version\"}" ]
}

@test "a policy edited in the database is not trusted: attestation fails closed (503) until a signed one is back" {
	db=$SRV_DIR/keystrap.db
	v=$(current_version)
	# Someone with write access to the database only: a "newer" row, copied from the current
	# one with its valid signatures, and then a longer credential lifetime written into it.
	sqlite3 "$db" "INSERT INTO policies SELECT $((v + 100)), loaded_us, text, signatures FROM policies WHERE version = $v"
	run post /v1/attest/start "$BATS_FILE_TMPDIR/start.json"
	[ "$(status_of "$output")" = 503 ]
	[ "$(body_of "$output")" = "{\"error\":\"the stored policy version $((v + 100)) holds a policy of version $v\"}" ]
	sqlite3 "$db" "UPDATE policies SET text = replace(replace(text, '\"credential_lifetime\":600', '\"credential_lifetime\":7776000'), '\"version\":$v,', '\"version\":$((v + 100)),') WHERE version = $((v + 100))"
	run post /v1/attest/start "$BATS_FILE_TMPDIR/start.json"
	[ "$(status_of "$output")" = 503 ]
	[ "$(body_of "$output")" = "{\"error\":\"the stored policy version $((v + 100)) is signed by 0 of the required 2 operator keys\"}" ]
	run srv policy show
	[ "$status" -eq 1 ]
	[ "$(tail -n1 <<<"$output")" = "state refused: the stored policy version $((v + 100)) is signed by 0 of the required 2 operator keys" ]
	# ... and as JSON: refused, with the reason and none of the policy's claims.
	run srv policy show --json
	[ "$status" -eq 1 ]
	[ "$(jq -c '[.version, .state, .reason, has("expires"), has("signed_by")]' <<<"$output")" = \
		"[$((v + 100)),\"refused\",\"the stored policy version $((v + 100)) is signed by 0 of the required 2 operator keys\",false,false]" ]
	# The refusals are in the audit log.
	srv audit export | jq -r .reasons | grep -q "holds a policy of version $v"
	# Twin: the operators sign and load a newer policy; nodes attest again.
	echo $((v + 100)) >"$OPERATOR_DIR/policy.version"
	policy good.json
	load_signed good.json
	run attest
	[ "$output" = "keystrap: attested as node1.example" ]
}

@test "no policy loaded, or an expired one: attestation fails closed (503) with the reason" {
	local d=$BATS_TEST_TMPDIR/empty
	mkdir -p "$d"
	cp "$SRV_DIR"/{ca,tls}.{crt,key} "$d/"
	SRV_PORT=$(free_port) server_config "$d" "0 7"
	sqlite3 "$d/keystrap.db" "DELETE FROM policies"
	SRV_PORT=$(jq -r '.listen | split(":")[1]' "$d/server.json")
	server_start "$d"
	run post /v1/attest/start "$BATS_FILE_TMPDIR/start.json"
	# Unknown here: recorded as a request, refused before any policy is needed.
	[ "$(status_of "$output")" = 403 ]
	"$KEYSTRAP_SERVER" node approve "$EK" --config "$d/server.json" >/dev/null
	run post /v1/attest/start "$BATS_FILE_TMPDIR/start.json"
	[ "$(status_of "$output")" = 503 ]
	[ "$(body_of "$output")" = '{"error":"no policy is loaded: nothing is released until operators load a signed one"}' ]
	run "$KEYSTRAP_SERVER" policy show --config "$d/server.json"
	[ "$output" = "keystrap-server: no policy is loaded" ]
	# A policy that expires two seconds from now works, then stops working.
	v=$(next_version)
	echo "$v" >"$OPERATOR_DIR/policy.version"
	policy_json "0 7" "$v" | jq -c --arg e "$(date -u -d '+2 seconds' +%Y-%m-%dT%H:%M:%SZ)" '.expires = $e' >short.json
	policy_sign "$OPERATOR_DIR" short.json op1 op2
	"$KEYSTRAP_SERVER" policy load short.json --signature short.json.op1.sig --signature short.json.op2.sig \
		--config "$d/server.json"
	run post /v1/attest/start "$BATS_FILE_TMPDIR/start.json"
	[ "$(status_of "$output")" = 200 ]
	sleep 3
	run post /v1/attest/start "$BATS_FILE_TMPDIR/start.json"
	[ "$(status_of "$output")" = 503 ]
	[ "$(body_of "$output")" = "{\"error\":\"policy version $v expired at $(jq -r .expires short.json)\"}" ]
	server_stop "$d"
}

@test "each malformed policy field is refused in one line naming the field" {
	local cases=(
		'.version = "7"|version'
		'.version = 0|version'
		'del(.version)|version'
		'.expires = "2027-01-31 00:00:00"|expires'
		'.expires = "2027-02-30T00:00:00Z"|expires'
		'.min_keystrap_version = "v0.1"|min_keystrap_version'
		'.credential_lifetime = 5|credential_lifetime'
		'.credential_lifetime = 60.5|credential_lifetime'
		'.pcr_bank = "md5"|pcr_bank'
		'.reference_pcrs = {"16": "00"}|reference_pcrs'
		'.reference_pcrs."07" = .reference_pcrs."7"|reference_pcrs'
		'.reference_pcrs."7" = "abcd"|reference_pcrs'
		'.reference_pcrs = {}|reference_pcrs'
		'.allowed_events = {"7": ["00"]}|allowed_events'
		'.allowed_events = {"12": []}|allowed_events'
		'.allowed_events = {"24": []}|allowed_events'
		'.groups = {"web servers": {"secrets": []}}|groups'
		'.groups = {"web": {"secrets": ["a", "a"]}}|groups'
		'.groups = {"web": {"secret": []}}|groups'
		'.extra = 1|extra'
	)
	for c in "${cases[@]}"; do
		policy p.json "${c%|*}"
		run load_signed p.json
		echo "$c -> $output"
		[ "$status" -eq 1 ]
		[ "${#lines[@]}" -eq 1 ]
		[[ "$output" == "keystrap-server: p.json: "*"'${c##*|}'"* ]]
	done
	printf '{"version": 1,' >broken.json
	run load_signed broken.json
	[ "${#lines[@]}" -eq 1 ]
	[[ "$output" == "keystrap-server: broken.json: malformed JSON: "* ]]
}

@test "a policy with a duplicated key is refused: a reader and the parser must not see different values" {
	policy p.json
	# The second "7" would silently win in json-c; a reviewer reads the first.
	sed "s/\"reference_pcrs\":{/\"reference_pcrs\":{\"7\":\"$(printf '%064d' 0)\",/" p.json >dup.json
	run load_signed dup.json
	[ "$status" -eq 1 ]
	[ "$output" = "keystrap-server: dup.json: duplicate field '7'" ]
	sed 's/"version":\([0-9]*\),/"version":\1,"version":999,/' p.json >dup2.json
	run load_signed dup2.json
	[ "$output" = "keystrap-server: dup2.json: duplicate field 'version'" ]
	# An escape spells the same key.
	sed 's/"expires"/"\\u0065xpires":"2020-01-01T00:00:00Z","expires"/' p.json >dup3.json
	run load_signed dup3.json
	[ "$output" = "keystrap-server: dup3.json: duplicate field 'expires'" ]
	# The node's messages too.
	sed 's/"version":/"version":"9.9","version":/' "$BATS_FILE_TMPDIR/start.json" >dupstart.json
	run post /v1/attest/start dupstart.json
	[ "$(body_of "$output")" = "{\"error\":\"duplicate field 'version'\"}" ]
}

@test "allowed_events: every logged event in the PCR must be listed; an unlisted one is refused naming the PCR" {
	swtpm_reboot
	rm -f "$KEYSTRAP_MEASURE_LOG"
	reboot_after
	"$KEYSTRAP" measure --phase enter-initrd >/dev/null
	events=$(jq --seq -c '[.digests[] | select(.hashAlg == "sha256") | .digest]' "$KEYSTRAP_MEASURE_LOG" | jq -s -c 'add')
	policy p.json ".allowed_events = {\"12\": $events}"
	load_signed p.json
	run attest
	[ "$output" = "keystrap: attested as node1.example" ]
	other=$(printf 'something else' | sha256sum | cut -c1-64)
	policy p.json ".allowed_events = {\"12\": [\"$other\"]}"
	load_signed p.json
	run attest
	[ "$status" -eq 5 ]
	# Every event the policy does not list, each in full: the first attest added "attested" to the log.
	v=$(jq .version p.json)
	events=$(jq --seq -c '[.digests[] | select(.hashAlg == "sha256") | .digest]' "$KEYSTRAP_MEASURE_LOG" | jq -s -c 'add')
	[ "$(jq length <<<"$events")" -eq 2 ]
	want=$(jq -r --arg v "$v" '. as $e | [range(length) | "PCR 12 event \(.) (sha256 \($e[.])) is not allowed by policy \($v)"] | join("; ")' <<<"$events")
	[ "$output" = "keystrap: the server refused the attestation (HTTP 403): $want" ]
	[ "$(srv audit export | jq -r 'select(.action == "attest-finish") | .reasons' | tail -n1)" = "$want" ]
	# The draft allows them, beside what was allowed.
	run srv policy draft --from-node node1.example --out draft.json
	[ "$status" -eq 0 ]
	[[ "$output" == *": PCR 12 allows 2 more events; review it"* ]]
	[ "$(jq -c '.allowed_events."12"' draft.json)" = "$(jq -c --arg o "$other" '[$o] + .' <<<"$events")" ]
	echo $((v + 1)) >"$OPERATOR_DIR/policy.version"
	load_signed draft.json
	run attest
	[ "$output" = "keystrap: attested as node1.example" ]
	policy good.json
	load_signed good.json
}

@test "secret set reads the value from stdin, never echoes it; node approve --group picks what a node receives" {
	value="s3cret-$(head -c 8 /dev/urandom | xxd -p)"
	run bash -c "printf '%s' '$value' | \"$KEYSTRAP_SERVER\" secret set db.password --config '$SRV_DIR/server.json'"
	[ "$status" -eq 0 ]
	[ "$output" = "secret db.password version 1 stored (${#value} bytes)" ]
	[[ "$output" != *"$value"* ]]
	[[ "$(srv audit export)" != *"$value"* ]]
	srv audit export | jq -r .reasons | grep -q "^secret db.password version 1 set (${#value} bytes) by operator:"
	[[ "$(cat "$SRV_DIR/server.log")" != *"$value"* ]]
	# No value on the command line, ever; too big, empty and badly named ones are refused.
	run srv secret set db.password "$value"
	[ "$status" -eq 2 ]
	run bash -c "head -c 4097 /dev/zero | \"$KEYSTRAP_SERVER\" secret set big --config '$SRV_DIR/server.json'"
	[ "$status" -eq 1 ]
	[ "$output" = "keystrap-server: the value of secret 'big' on standard input is larger than 4096 bytes" ]
	run bash -c "\"$KEYSTRAP_SERVER\" secret set empty --config '$SRV_DIR/server.json' </dev/null"
	[ "$output" = "keystrap-server: the value of secret 'empty' on standard input is empty" ]
	run bash -c "echo x | \"$KEYSTRAP_SERVER\" secret set 'a/b' --config '$SRV_DIR/server.json'"
	[ "$output" = "keystrap-server: 'a/b' is not a secret name ([A-Za-z0-9._-], at most 64)" ]
	# Group web gets it; the default group gets nothing.
	policy p.json '.groups = {"default": {"secrets": []}, "web": {"secrets": ["db.password"]}}'
	load_signed p.json
	run attest
	[ "$status" -eq 0 ]
	[ ! -e out/secrets/db.password ]
	run srv node approve "$EK" --group 'no such/group'
	[ "$output" = "keystrap-server: 'no such/group' is not a group name ([A-Za-z0-9._-], at most 32)" ]
	srv node approve "$EK" --group web
	[ "$(srv node show "$EK" --json | jq -r '"\(.state) \(.node_id) \(.group)"')" = "approved node1.example web" ]
	rm -rf out && mkdir out
	run attest
	[ "$status" -eq 0 ]
	[ "$(cat out/secrets/db.password)" = "$value" ]
	srv node approve "$EK" --group default
}

@test "a policy whose group names an unset secret is refused, naming the secret; nothing is loaded; once set it loads" {
	local v
	v=$(current_version)
	policy unset.json '.groups = {"default": {"secrets": []}, "api": {"secrets": ["db.password", "api.token"]}}'
	run load_signed unset.json
	[ "$status" -eq 1 ]
	[ "$output" = "keystrap-server: group 'api' names secret 'api.token', which is not set (keystrap-server secret set api.token)" ]
	[ "$(current_version)" = "$v" ]
	srv audit export | tail -n1 | jq -r .reasons | grep -q "secret 'api.token', which is not set"
	# Twin: the same document once the secret is set.
	echo token-value | srv secret set api.token >/dev/null
	run load_signed unset.json
	[ "$status" -eq 0 ]
	[ "$(current_version)" = "$((v + 1))" ]
}

@test "the configuration: k of n is checked, one key cannot be listed twice, k = 1 is warned about" {
	jq '.policy_threshold = 3' "$SRV_DIR/server.json" >k3.json
	run "$KEYSTRAP_SERVER" policy show --config k3.json
	[ "$status" -eq 1 ]
	[ "$output" = "keystrap-server: k3.json: 'policy_threshold' 3 is more than the 2 operator keys" ]
	jq '.policy_threshold = 0' "$SRV_DIR/server.json" >k0.json
	run "$KEYSTRAP_SERVER" policy show --config k0.json
	[ "$output" = "keystrap-server: k0.json: 'policy_threshold' is not a number from 1 to 16" ]
	cp "$OPERATOR_DIR/op1.pub" same.pub
	jq --arg k "$PWD/same.pub" '.operator_keys += [$k]' "$SRV_DIR/server.json" >twice.json
	run "$KEYSTRAP_SERVER" policy show --config twice.json
	[ "$output" = "keystrap-server: operator key '$PWD/same.pub' is the same key as '$OPERATOR_DIR/op1.pub'" ]
	jq --arg k "$OPERATOR_DIR/op1.key" '.operator_keys[0] = $k' "$SRV_DIR/server.json" >private.json
	run "$KEYSTRAP_SERVER" policy show --config private.json
	[ "$output" = "keystrap-server: operator key '$OPERATOR_DIR/op1.key' is not a PEM public key" ]
	jq '.policy_threshold = 1' "$SRV_DIR/server.json" >k1.json
	run "$KEYSTRAP_SERVER" policy show --config k1.json
	[ "$status" -eq 0 ]
	[[ "${lines[0]}" == "keystrap-server: k1.json: 'policy_threshold' 1 lets any single operator key change what nodes must boot" ]]
}

@test "Ed25519 and RSA operator keys sign with standard tools" {
	openssl genpkey -algorithm ed25519 -out ed.key 2>/dev/null
	openssl pkey -in ed.key -pubout -out ed.pub
	openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out rsa.key 2>/dev/null
	openssl pkey -in rsa.key -pubout -out rsa.pub
	jq --arg a "$PWD/ed.pub" --arg b "$PWD/rsa.pub" --arg db "$PWD/other.db" \
		'.operator_keys = [$a, $b] | .database = $db' "$SRV_DIR/server.json" >other.json
	policy_json "0 7" 1 >p.json
	openssl pkeyutl -sign -rawin -inkey ed.key -in p.json -out p.json.ed.sig
	openssl dgst -sha256 -sign rsa.key -out p.json.rsa.sig p.json
	run "$KEYSTRAP_SERVER" policy load p.json --signature p.json.rsa.sig --config other.json
	[ "$output" = "keystrap-server: policy is signed by 1 of the required 2 operator keys" ]
	run "$KEYSTRAP_SERVER" policy load p.json --signature p.json.ed.sig --signature p.json.rsa.sig --config other.json
	[ "$status" -eq 0 ]
	run "$KEYSTRAP_SERVER" policy show --config other.json
	[ "$(tail -n1 <<<"$output")" = "state in force" ]
}
