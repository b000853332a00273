#!/usr/bin/env bats
# The server's half of an attestation-gated keyslot (issue 13 item 1): a finish that passed may
# store a per-node, per-volume share (disk_share_put), encrypted at rest under the KEK, and ask
# for stored shares back (disk_shares_get) inside the payload sealed to its TPM; a revoked node
# or a refused attestation gets none; every store, release and refusal is audited naming the
# volume. Real swtpms, a real server on loopback, attest-peer's messages with the fields added.

load ../lib/swtpm
load ../lib/server

PEER=$BATS_TEST_DIRNAME/../../build/asan/attest-peer
VOL=0b3f6f1e-4c1a-4d7e-9a55-2f6a1c9e8d01
VOL2=7d2c1a90-1111-4e2b-8c3d-5a6b7c8d9e0f

setup_file() {
	swtpm_start "$BATS_FILE_TMPDIR/other"
	export OTHER_DIR=$SWTPM_DIR OTHER_PORT=$SWTPM_PORT OTHER_TCTI=$KEYSTRAP_TCTI
	swtpm_start
	export SRV_DIR=$BATS_FILE_TMPDIR/srv SRV_PORT U EK
	SRV_PORT=$(free_port)
	server_pki "$SRV_DIR"
	MAX_BODY=262144 server_config "$SRV_DIR" "0 7"
	server_start "$SRV_DIR"
	EK=$(ek_hash)
	U=$(head -c 32 /dev/urandom | xxd -p -c 64)
	approve_peer "$U"
}

teardown_file() {
	server_stop "$SRV_DIR" || true
	swtpm_stop
	SWTPM_DIR=$OTHER_DIR SWTPM_PORT=$OTHER_PORT swtpm_stop
}

setup() {
	cd "$BATS_TEST_TMPDIR"
}

# finish_with JQ [ARGS...]: a handshake by the peer whose finish gets the fields JQ adds; the
# challenge lands in ch.json, the server's answer (body, then status) is printed.
finish_with() {
	challenge ch.json || return 1
	"$PEER" finish "$U" ch.json | jq -c "$1" "${@:2}" >finish.json || return 1
	post /v1/attest/finish finish.json
}

put() { # VOLUME SHARE-BASE64
	finish_with '. + {disk_share_put: {volume: $v, share: $s}}' --arg v "$1" --arg s "$2"
}

get() { # VOLUME...: the result in result.json
	local out
	out=$(finish_with '. + {disk_shares_get: $ARGS.positional}' --args "$@")
	body_of "$out" >result.json
	echo "$(status_of "$out")"
}

audit_of() { # ACTION: its records, one JSON a line
	srv audit export | jq -c --arg a "$1" 'select(.action == $a)'
}

@test "a stored share comes back only inside the payload sealed to this TPM, and is not in the database in clear" {
	local share hex out
	share=$(head -c 32 /dev/urandom | base64 -w0)
	hex=$(base64 -d <<<"$share" | xxd -p -c 64)
	out=$(put "$VOL" "$share")
	[ "$(status_of "$out")" = 200 ]
	[[ "$(audit_of disk-share-store)" == *'"decision":"allow","reasons":"volume '"$VOL"': share stored, encrypted under the KEK, after the attestation passed"'* ]]
	# One row, and neither the share's bytes, its hex nor its base64 anywhere in the database.
	[ "$(sqlite3 "$SRV_DIR/keystrap.db" "SELECT count(*) FROM disk_shares WHERE volume = '$VOL'")" = 1 ]
	sqlite3 "$SRV_DIR/keystrap.db" 'PRAGMA wal_checkpoint(TRUNCATE)' >/dev/null
	for f in "$SRV_DIR"/keystrap.db*; do
		! grep -qiF -e "$hex" -e "$share" "$f" || false
		! xxd -p "$f" | tr -d '\n' | grep -qiF "$hex" || false
	done
	[ "$(get "$VOL")" = 200 ]
	run "$PEER" open "$U" ch.json result.json
	[ "$status" -eq 0 ]
	[ "$output" = "disk.$VOL=$(base64 -d <<<"$share" | sha256sum | cut -d' ' -f1)" ]
	[[ "$(audit_of disk-share-release | tail -1)" == *'"decision":"allow","reasons":"volume '"$VOL"': share released in the payload sealed to this TPM"'* ]]
	# The share records are links of the one audit chain.
	run srv audit verify
	[ "$status" -eq 0 ]
	[[ "$output" == "audit log intact: "* ]]
	# The twin: another TPM given the same reply opens nothing.
	KEYSTRAP_TCTI=$OTHER_TCTI run "$PEER" open "$U" ch.json result.json
	[ "$status" -eq 1 ]
	[[ "$output" == "attest-peer: ActivateCredential for the payload key: "* ]]
}

@test "a re-enrollment replaces the share; a volume with none gets nothing, audited as refused" {
	local s1 s2
	s1=$(head -c 32 /dev/urandom | base64 -w0)
	s2=$(head -c 32 /dev/urandom | base64 -w0)
	[ "$(status_of "$(put "$VOL2" "$s1")")" = 200 ]
	[ "$(status_of "$(put "$VOL2" "$s2")")" = 200 ]
	[ "$(sqlite3 "$SRV_DIR/keystrap.db" "SELECT count(*) FROM disk_shares WHERE volume = '$VOL2'")" = 1 ]
	[ "$(get "$VOL2" ffffffff-0000-4000-8000-000000000000)" = 200 ]
	run "$PEER" open "$U" ch.json result.json
	[ "$status" -eq 0 ]
	[ "$output" = "disk.$VOL2=$(base64 -d <<<"$s2" | sha256sum | cut -d' ' -f1)" ]
	[[ "$(audit_of disk-share-release | tail -1)" == *'"decision":"deny","reasons":"volume ffffffff-0000-4000-8000-000000000000: no share is stored for this node and volume"'* ]]
}

@test "another node's TPM asking for this node's volume gets nothing" {
	local share ek_b
	share=$(head -c 32 /dev/urandom | base64 -w0)
	[ "$(status_of "$(put "$VOL" "$share")")" = 200 ]
	(
		export KEYSTRAP_TCTI=$OTHER_TCTI TPM2TOOLS_TCTI=$OTHER_TCTI
		ek_b=$("$KEYSTRAP" status --ek)
		"$PEER" start "$U" >start-b.json
		post /v1/attest/start start-b.json >/dev/null
		srv node approve "$ek_b" --id node2.example >/dev/null
		out=$(post /v1/attest/start start-b.json)
		body_of "$out" >ch.json
		"$PEER" finish "$U" ch.json | jq -c --arg v "$VOL" '. + {disk_shares_get: [$v]}' >finish.json
		out=$(post /v1/attest/finish finish.json)
		[ "$(status_of "$out")" = 200 ]
		body_of "$out" >result.json
		run "$PEER" open "$U" ch.json result.json
		[ "$status" -eq 0 ]
		[ -z "$output" ]
	)
}

@test "the fields are parsed strictly: each fault refused (400) naming the field" {
	local share
	share=$(head -c 32 /dev/urandom | base64 -w0)
	run put "${VOL^^}" "$share"
	[[ "$output" == *"field 'disk_share_put.volume' is not a LUKS2 UUID"* ]]
	[ "$(status_of "$output")" = 400 ]
	run put "$VOL" "$(head -c 31 /dev/urandom | base64 -w0)"
	[[ "$output" == *"field 'disk_share_put.share' is not base64 of 32 bytes"* ]]
	run finish_with '. + {disk_share_put: {volume: $v, share: $s, extra: 1}}' --arg v "$VOL" --arg s "$share"
	[[ "$output" == *"field 'disk_share_put' has an unknown field 'extra'"* ]]
	run finish_with '. + {disk_shares_get: [$v, $v]}' --arg v "$VOL"
	[[ "$output" == *"field 'disk_shares_get' names volume $VOL twice"* ]]
	run finish_with '. + {disk_shares_get: []}'
	[[ "$output" == *"field 'disk_shares_get' holds 0 volumes, not 1 to 8"* ]]
	[ "$(status_of "$output")" = 400 ]
	# The twin: the same finish without the faults passes.
	run put "$VOL" "$share"
	[ "$(status_of "$output")" = 200 ]
}

@test "a revoked node gets no share (403), a refused boot neither; both audited naming the volume" {
	local share out
	share=$(head -c 32 /dev/urandom | base64 -w0)
	[ "$(status_of "$(put "$VOL" "$share")")" = 200 ]
	# A boot the policy refuses: PCR 7 extended.
	tpm2_pcrextend 7:sha256=$(printf x | sha256sum | cut -d' ' -f1)
	[ "$(get "$VOL")" = 403 ]
	[[ "$(audit_of disk-share-release | tail -1)" == *'"decision":"deny","reasons":"volume '"$VOL"': '* ]]
	run "$PEER" open "$U" ch.json result.json
	[ "$status" -ne 0 ]
	swtpm_reboot
	# Revoked between the challenge and the finish (a revoked node's start is refused already).
	challenge ch.json
	"$PEER" finish "$U" ch.json | jq -c --arg v "$VOL" '. + {disk_shares_get: [$v]}' >finish.json
	srv node revoke "$EK" >/dev/null
	out=$(post /v1/attest/finish finish.json)
	[ "$(status_of "$out")" = 403 ]
	[[ "$(body_of "$out")" == *'node is revoked'* ]]
	[ "$(get "$VOL")" = 403 ]
	[[ "$(audit_of disk-share-release | tail -1)" == *'"decision":"deny","reasons":"volume '"$VOL"': node is revoked"'* ]]
	srv node approve "$EK" --reinstate >/dev/null
	# The twin: reinstated, the same request is answered with the share.
	[ "$(get "$VOL")" = 200 ]
	run "$PEER" open "$U" ch.json result.json
	[ "$output" = "disk.$VOL=$(base64 -d <<<"$share" | sha256sum | cut -d' ' -f1)" ]
}

@test "kek rotate re-wraps the disk shares: the share still comes back under the new KEK" {
	local share
	share=$(head -c 32 /dev/urandom | base64 -w0)
	[ "$(status_of "$(put "$VOL" "$share")")" = 200 ]
	"$KEYSTRAP_SERVER" kek init "$SRV_DIR/kek.new" >/dev/null
	run srv kek rotate --new "$SRV_DIR/kek.new"
	[ "$status" -eq 0 ]
	[ "$(get "$VOL")" = 200 ]
	run "$PEER" open "$U" ch.json result.json
	[ "$output" = "disk.$VOL=$(base64 -d <<<"$share" | sha256sum | cut -d' ' -f1)" ]
}
