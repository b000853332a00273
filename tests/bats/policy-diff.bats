#!/usr/bin/env bats
# keystrap-server policy diff (issue 16 item 4): two stored versions, or a stored one and a
# draft file, compared for a reviewer: reference values per PCR, allowed events, groups and
# their secrets, expiry, lifetime, signers; --json checked field by field with jq. Real
# server (SQLite), policies signed by real operator keys; every refusal has its twin.

load ../lib/swtpm
load ../lib/server

setup_file() {
	swtpm_start
	export SRV_DIR=$BATS_FILE_TMPDIR/srv SRV_PORT
	SRV_PORT=$(free_port)
	server_pki "$SRV_DIR"
	server_config "$SRV_DIR" "0 7"
	printf 'pw' | srv secret set db.password >/dev/null
	# Version 2: PCR 7 no longer pinned, PCR 4 is; events allowed in PCR 12; group web with a
	# secret; a longer credential lifetime.
	E1=$(printf '%064d' 1) E2=$(printf '%064d' 2)
	POLICY_GROUPS='{"default":{"secrets":[]},"web":{"secrets":["db.password"]}}' \
		server_policy "$SRV_DIR" "0 4" "\"allowed_events\":{\"12\":[\"$E1\",\"$E2\"]}" >/dev/null
	export E1 E2
}

teardown_file() {
	swtpm_stop
}

setup() {
	cd "$BATS_TEST_TMPDIR"
}

@test "policy diff of two stored versions names each change per PCR, event, group and secret" {
	run srv policy diff 1 2
	[ "$status" -eq 0 ]
	[ "${lines[0]}" = "from policy version 1 (store, trusted)" ]
	[ "${lines[1]}" = "to   policy version 2 (store, trusted)" ]
	[[ "$output" == *$'\n'"  PCR 4 reference value added: $(pcr_value sha256 4)"$'\n'* ]]
	[[ "$output" == *$'\n'"  PCR 7 reference value removed: $(pcr_value sha256 7)"$'\n'* ]]
	[[ "$output" == *$'\n'"  PCR 12 allowed event added: $E1"$'\n'* ]]
	[[ "$output" == *$'\n'"  PCR 12 allowed event added: $E2"* ]]
	[[ "$output" == *$'\n'"  group web added"* ]]
	[[ "$output" == *$'\n'"  group web secret db.password added"* ]]
	# PCR 0 is pinned to the same value in both: not a change.
	[[ "$output" != *"PCR 0 "* ]]
	# The other way round, the same changes reversed.
	run srv policy diff 2 1
	[[ "$output" == *$'\n'"  PCR 4 reference value removed: "* ]]
	[[ "$output" == *$'\n'"  PCR 12 allowed event removed: $E1"* ]]
	[[ "$output" == *$'\n'"  group web removed"* ]]
	# A version against itself: nothing.
	run srv policy diff 2 2
	[ "$status" -eq 0 ]
	[ "${lines[2]}" = "no differences" ]
}

@test "policy diff --json: every change as an object, both sides with their signers" {
	run srv policy diff 1 2 --json
	[ "$status" -eq 0 ]
	[ "$(jq -c '[.from.version, .from.source, .from.trusted, (.from.signed_by | length), .to.version, .to.trusted]' <<<"$output")" = \
		'[1,"store",true,2,2,true]' ]
	[ "$(jq -r '.changes[] | select(.what == "reference" and .pcr == 4) | "\(.change) \(.value)"' <<<"$output")" = "added $(pcr_value sha256 4)" ]
	[ "$(jq -r '.changes[] | select(.what == "reference" and .pcr == 7) | .change' <<<"$output")" = removed ]
	[ "$(jq -r '[.changes[] | select(.what == "event" and .pcr == 12 and .change == "added") | .digest] | sort | join(" ")' <<<"$output")" = "$E1 $E2" ]
	[ "$(jq -c '[.changes[] | select(.what == "secret")][0] | [.change, .group, .name]' <<<"$output")" = '["added","web","db.password"]' ]
	[ "$(jq -r '[.changes[] | select(.what == "signer")] | length' <<<"$output")" = 0 ]
	[ "$(srv policy diff 2 2 --json | jq -c .changes)" = "[]" ]
}

@test "policy diff against a draft file: changed reference values, lifetime, signers that the file lacks" {
	v=$(cat "$OPERATOR_DIR/policy.version")
	jq --arg v "$(printf '%064d' 9)" '.version = 3 | .expires = "2099-01-01T00:00:00Z" | .reference_pcrs["0"] = $v | .credential_lifetime = 900 | .allowed_events["12"] = [.allowed_events["12"][0]]' \
		"$OPERATOR_DIR/policy-v$v.json" >draft.json
	run srv policy diff 2 draft.json
	[ "$status" -eq 0 ]
	[ "${lines[1]}" = "to   policy version 3 (file draft.json, unsigned)" ]
	[[ "$output" == *$'\n'"  PCR 0 reference value changed: $(pcr_value sha256 0) -> $(printf '%064d' 9)"* ]]
	[[ "$output" == *$'\n'"  credential_lifetime changed: 600 -> 900"* ]]
	[[ "$output" == *$'\n'"  expires changed: 20"*"Z -> 2099-01-01T00:00:00Z"$'\n'* ]]
	[[ "$output" == *$'\n'"  PCR 12 allowed event removed: $E2"* ]]
	[[ "$output" != *"allowed event removed: $E1"* ]]
	# The stored version is signed by both operators, the draft by nobody yet.
	[ "$(grep -c '^  signer .* removed (' <<<"$output")" -eq 2 ]
	run srv policy diff 2 draft.json --json
	[ "$(jq -r '.to | "\(.source) \(.file) \(.trusted) \(.signed_by | length)"' <<<"$output")" = "file draft.json null 0" ]
	[ "$(jq -r '.changes[] | select(.what == "credential_lifetime") | "\(.from) \(.to)"' <<<"$output")" = "600 900" ]
}

@test "policy diff refuses in one line: an unknown version, a missing or invalid file, wrong arguments" {
	run srv policy diff 1 99
	[ "$status" -eq 1 ]
	[ "$output" = "keystrap-server: no policy version 99 in the store (policy show: the current one)" ]
	run srv policy diff nosuch.json 1
	[ "$status" -eq 1 ]
	[ "$output" = "keystrap-server: cannot read policy 'nosuch.json': No such file or directory" ]
	echo '{"version":3}' >bad.json
	run srv policy diff 1 bad.json
	[ "$status" -eq 1 ]
	[[ "$output" == "keystrap-server: policy 'bad.json' is not valid: "* ]]
	[ "${#lines[@]}" -eq 1 ]
	run srv policy diff 1
	[ "$status" -eq 2 ]
	run srv policy diff 1 2 3
	[ "$status" -eq 2 ]
	# The twin: the same versions that exist compare.
	run srv policy diff 1 2
	[ "$status" -eq 0 ]
}
