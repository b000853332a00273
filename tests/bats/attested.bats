#!/usr/bin/env bats
# The node's half of an attestation-gated keyslot (issue 13 item 1): keystrap enroll --attested
# seals share_tpm in this TPM and gives share_srv to keystrap-server inside an attestation, and
# writes the keystrap-attested keyslot only once that attestation passed; keystrap unlock tries
# the strict tokens first, offline, and attests for the server's share only when none opens.
# Real swtpms (a second one is the other machine), a real server on loopback, real LUKS2 images;
# tests/lib/disk-share.c is the attacker holding one share.

load ../lib/swtpm
load ../lib/server

PEER=$BATS_TEST_DIRNAME/../../build/asan/attest-peer
SHARE=$BATS_TEST_DIRNAME/../../build/asan/disk-share
UNLOCK=$BATS_TEST_DIRNAME/../../build/asan/unlock-run

setup_file() {
	swtpm_start "$BATS_FILE_TMPDIR/other"
	export OTHER_DIR=$SWTPM_DIR OTHER_PORT=$SWTPM_PORT OTHER_TCTI=$KEYSTRAP_TCTI
	swtpm_start
	export SRV_DIR=$BATS_FILE_TMPDIR/srv SRV_PORT EK
	SRV_PORT=$(free_port)
	server_pki "$SRV_DIR"
	server_config "$SRV_DIR" "0 7"
	server_start "$SRV_DIR"
	EK=$(ek_hash)
	approve_peer
}

teardown_file() {
	server_stop "$SRV_DIR" || true
	swtpm_stop
	SWTPM_DIR=$OTHER_DIR SWTPM_PORT=$OTHER_PORT swtpm_stop
}

setup() {
	luks_setup
	conf
}

teardown() {
	# A test that stopped the server or revoked the node leaves both as the next one needs them.
	[ -f "$SRV_DIR/server.pid" ] || server_start "$SRV_DIR"
	srv node approve "$EK" --reinstate >/dev/null 2>&1 || true
	reboot_if_asked
}

# conf [OFFLINE [SERVER]]: keystrap.conf for $IMG in the test directory.
conf() {
	printf '[Unlock]\nDevice=%s\nOffline=%s\n[Attest]\nServer=%s\nCA=%s\nTimeout=5\nRetries=0\n' "$IMG" "${1:-yes}" \
		"${2:-https://127.0.0.1:$SRV_PORT}" "$SRV_DIR/ca.crt" >keystrap.conf
}

# strict: a systemd-tpm2 token as the VM harness enrolls it, bound to PCR 4 too (what an update moves).
strict() {
	"$KEYSTRAP" enroll --device "$IMG" --unlock-key-file "$KEY" --pcrs 4,7,15:0 >/dev/null
}

attested() {
	"$KEYSTRAP" enroll --attested --device "$IMG" --unlock-key-file "$KEY" --config keystrap.conf "$@"
}

uuid() {
	cryptsetup luksUUID "$1"
}

audit_of() { # ACTION: its records, one JSON a line
	srv audit export | jq -c --arg a "$1" 'select(.action == $a)'
}

audit_count() {
	srv audit export | wc -l
}

# traced CMD...: runs CMD under strace, its connect(2) calls in connects.txt; $status and $output as run's.
traced() {
	run env ASAN_OPTIONS=detect_leaks=0 strace -f -qq -e trace=connect -o connects.txt "$@"
}

# An update moved PCR 4: the strict token no longer unseals; PCRs 0 and 7 (the policy's) stay.
update() {
	reboot_after
	tpm2_pcrextend 4:sha256="$(printf '%064x' 4)"
}

@test "enroll --attested: the server stores its share in a passing attestation, then the keyslot and a keystrap-attested token are written" {
	run attested
	[ "$status" -eq 0 ]
	[ "$output" = "enrolled $IMG: attested keyslot 1, token 0, PCRs 7,15 (sha256), primary ecc, server share held by https://127.0.0.1:$SRV_PORT" ]
	cryptsetup token export --token-id 0 "$IMG" >token.json
	[ "$(jq -r .type token.json)" = keystrap-attested ]
	[ "$(jq -c .keyslots token.json)" = '["1"]' ]
	[ "$(jq -c '."tpm2-pcrs"' token.json)" = '[7,15]' ]
	[ "$(jq -r '."keystrap-server"' token.json)" = "https://127.0.0.1:$SRV_PORT" ]
	[ "$(jq -r .volume token.json)" = "$(uuid "$IMG")" ]
	[ "$(jq -r '."keystrap-pcr-values"."15"' token.json)" = "$(printf '%064d' 0)" ]
	[ "$(jq -r '."tpm2-pin" // "absent"' token.json)" = absent ]
	[[ "$(audit_of disk-share-store | tail -1)" == *'"decision":"allow","reasons":"volume '"$(uuid "$IMG")"': share stored, encrypted under the KEK, after the attestation passed"'* ]]
	# The key file's keyslot is untouched, and no keystrap-pending record is left.
	cryptsetup open --test-passphrase --key-file "$KEY" --key-slot 0 "$IMG"
	[ "$(keyslots "$IMG")" = "0 1" ]
	[ "$(tokens "$IMG")" = 0 ]
}

@test "... and with the node revoked, or the server down, it writes nothing: one line each, the header unchanged" {
	local before
	before=$(cryptsetup luksDump --dump-json-metadata "$IMG")
	srv node revoke "$EK" >/dev/null
	run attested
	[ "$status" -eq 5 ]
	[ "${lines[0]}" = "keystrap: the server refused the attestation start (HTTP 403): node is revoked" ]
	[ "${lines[1]}" = "keystrap: no attested keyslot: the attestation did not pass, so nothing was written to '$IMG'" ]
	[ "${#lines[@]}" -eq 2 ]
	[ "$(cryptsetup luksDump --dump-json-metadata "$IMG")" = "$before" ]
	[[ "$(audit_of attest-start | tail -1)" == *'"decision":"deny","reasons":"node is revoked"'* ]]
	srv node approve "$EK" --reinstate >/dev/null
	server_stop "$SRV_DIR"
	run attested
	[ "$status" -eq 4 ]
	[[ "${lines[0]}" == "keystrap: cannot reach https://127.0.0.1:$SRV_PORT/v1/attest/start: "* ]]
	[ "${lines[1]}" = "keystrap: no attested keyslot: the attestation did not pass, so nothing was written to '$IMG'" ]
	[ "$(cryptsetup luksDump --dump-json-metadata "$IMG")" = "$before" ]
	# The twin: the server back, the same command writes its keyslot.
	server_start "$SRV_DIR"
	run attested
	[ "$status" -eq 0 ]
	[ "$(cryptsetup luksDump --dump-json-metadata "$IMG")" != "$before" ]
}

@test "a policy that refuses the boot (PCR 0 moved) at enroll: nothing written, the refusal audited" {
	local before
	before=$(header_sum "$IMG")
	reboot_after
	tpm2_pcrextend 0:sha256="$(printf '%064x' 9)"
	run attested
	[ "$status" -eq 5 ]
	[[ "${lines[0]}" == "keystrap: the server refused the attestation (HTTP 403): "*"PCR 0"* ]]
	[ "$(header_sum "$IMG")" = "$before" ]
	[[ "$(audit_of disk-share-store | tail -1)" == *'"decision":"deny","reasons":"volume '"$(uuid "$IMG")"': '* ]]
}

@test "unlock: the strict token opens offline and the network is not touched; after an update the attested token opens it" {
	strict
	attested >/dev/null
	local n
	n=$(audit_count)
	traced "$KEYSTRAP" unlock --config keystrap.conf --dry-run
	[ "$status" -eq 0 ]
	[[ "$output" == *"$IMG: token 0 unseals a key that opens keyslot 1 (dry run)"* ]]
	! grep -q "htons($SRV_PORT)" connects.txt || false
	[ "$(audit_count)" -eq "$n" ]
	update
	traced "$KEYSTRAP" unlock --config keystrap.conf --dry-run
	[ "$status" -eq 0 ]
	[[ "$output" == *"keystrap: $IMG token 0: PCR mismatch (sha256): PCR 4 is "* ]]
	[[ "$output" == *"$IMG: attested token 1: this TPM's share and the server's open keyslot 2 (dry run)"* ]]
	grep -q "htons($SRV_PORT)" connects.txt
	[[ "$(audit_of disk-share-release | tail -1)" == *'"decision":"allow","reasons":"volume '"$(uuid "$IMG")"': share released in the payload sealed to this TPM"'* ]]
	# Its twin: PCR 7 moved too, this TPM's share is refused first, and nothing is sent.
	n=$(audit_count)
	tpm2_pcrextend 7:sha256="$(printf '%064x' 7)"
	traced "$KEYSTRAP" unlock --config keystrap.conf --dry-run
	[ "$status" -eq 1 ]
	[[ "${lines[-1]}" == "keystrap: $IMG token 1: PCR mismatch (sha256): PCR 7 is "* ]]
	! grep -q "htons($SRV_PORT)" connects.txt || false
	[ "$(audit_count)" -eq "$n" ]
}

@test "the server down: the strict token still opens; after an update one line names the cause, in bounded time" {
	strict
	attested >/dev/null
	server_stop "$SRV_DIR"
	run "$KEYSTRAP" unlock --config keystrap.conf --dry-run
	[ "$status" -eq 0 ]
	[[ "$output" == *"token 0 unseals a key that opens keyslot 1 (dry run)"* ]]
	update
	local t0=$SECONDS
	run "$KEYSTRAP" unlock --config keystrap.conf --dry-run
	[ "$status" -eq 1 ]
	[ $((SECONDS - t0)) -le 6 ]
	[[ "${lines[-1]}" == "keystrap: cannot reach https://127.0.0.1:$SRV_PORT/v1/attest/start: "* ]]
	[[ "${lines[-2]}" == *"token 0: PCR mismatch"* ]]
	# Garbage where the server should be (a TLS server that is not keystrap's: plain HTTP here).
	python3 -m http.server --bind 127.0.0.1 "$SRV_PORT" >/dev/null 2>&1 &
	local pid=$!
	for _ in $(seq 50); do (exec 3<>"/dev/tcp/127.0.0.1/$SRV_PORT") 2>/dev/null && break; sleep 0.05; done
	run "$KEYSTRAP" unlock --config keystrap.conf --dry-run
	kill "$pid"
	wait "$pid" || true
	[ "$status" -eq 1 ]
	[[ "${lines[-1]}" == "keystrap: cannot reach https://127.0.0.1:$SRV_PORT/v1/attest/start: "* ]]
}

@test "a revoked node gets no share: one line, exit 1, the refusal audited; reinstated, it opens" {
	strict
	attested >/dev/null
	update
	srv node revoke "$EK" >/dev/null
	run "$KEYSTRAP" unlock --config keystrap.conf --dry-run
	[ "$status" -eq 1 ]
	[ "${lines[-1]}" = "keystrap: the server refused the attestation start (HTTP 403): node is revoked" ]
	[[ "$(audit_of attest-start | tail -1)" == *'"decision":"deny","reasons":"node is revoked"'* ]]
	srv node approve "$EK" --reinstate >/dev/null
	run "$KEYSTRAP" unlock --config keystrap.conf --dry-run
	[ "$status" -eq 0 ]
	[[ "$output" == *"attested token 1: this TPM's share and the server's open keyslot 2 (dry run)"* ]]
}

@test "a boot the policy refuses (PCR 0 moved) gets no share, audited naming the volume" {
	strict
	attested >/dev/null
	update
	tpm2_pcrextend 0:sha256="$(printf '%064x' 9)"
	run "$KEYSTRAP" unlock --config keystrap.conf --dry-run
	[ "$status" -eq 1 ]
	[[ "${lines[-1]}" == "keystrap: the server refused the attestation (HTTP 403): "*"PCR 0"* ]]
	[[ "$(audit_of disk-share-release | tail -1)" == *'"decision":"deny","reasons":"volume '"$(uuid "$IMG")"': '*"PCR 0"* ]]
}

@test "neither share alone opens the keyslot, and another TPM given the header and the server's share cannot either" {
	attested >/dev/null
	local srv_share
	srv_share=$("$SHARE" get "$SRV_DIR/keystrap.db" "$SRV_DIR/kek" "$EK" "$(uuid "$IMG")")
	# The positive twin: this TPM's share with the server's opens it.
	run "$SHARE" try "$IMG" 0 "$srv_share" tpm
	[ "$status" -eq 0 ]
	[ "$output" = "opens keyslot 1" ]
	# The server's share (a stolen database with its KEK) with anything but this TPM's share.
	run "$SHARE" try "$IMG" 0 "$srv_share" random
	[ "$status" -eq 1 ]
	[ "$output" = "does not open keyslot 1" ]
	# This TPM's share (a stolen disk with its TPM) with anything but the server's.
	run "$SHARE" try "$IMG" 0 "$(head -c 32 /dev/urandom | base64 -w0)" tpm
	[ "$status" -eq 1 ]
	# Another machine: the same header bytes and the server's share, its own TPM.
	cp "$IMG" other.img
	KEYSTRAP_TCTI=$OTHER_TCTI run "$SHARE" try other.img 0 "$srv_share" tpm
	[ "$status" -eq 2 ]
	sed "s|^Device=.*|Device=$BATS_TEST_TMPDIR/other.img|" keystrap.conf >other.conf
	KEYSTRAP_TCTI=$OTHER_TCTI KEYSTRAP_MEASURE_LOG=$OTHER_DIR/tpm2-measure.log run "$KEYSTRAP" unlock --config other.conf --dry-run
	[ "$status" -eq 1 ]
	[ "${lines[-1]}" = "keystrap: $BATS_TEST_TMPDIR/other.img token 0: the sealed key does not belong to this TPM's storage key (TPM cleared, a different TPM or SRK, or a corrupted tpm2-blob)" ]
}

@test "the shares and the passphrase appear in nothing keystrap printed or wrote" {
	strict
	run attested
	[ "$status" -eq 0 ]
	echo "$output" >outputs.txt
	update
	run "$KEYSTRAP" unlock --config keystrap.conf --dry-run
	[ "$status" -eq 0 ]
	echo "$output" >>outputs.txt
	local srv_share tpm_share tpm_hex pass srv_hex
	srv_share=$("$SHARE" get "$SRV_DIR/keystrap.db" "$SRV_DIR/kek" "$EK" "$(uuid "$IMG")")
	srv_hex=$(base64 -d <<<"$srv_share" | xxd -p -c 64)
	read -r tpm_share tpm_hex pass < <("$SHARE" show "$IMG" 1 "$srv_share" tpm)
	[ ${#pass} -eq 44 ] && [ ${#tpm_hex} -eq 64 ]
	cryptsetup luksDump --dump-json-metadata "$IMG" >header.json
	for f in outputs.txt header.json "$SRV_DIR/server.log" "$KEYSTRAP_MEASURE_LOG"; do
		! grep -qiF -e "$srv_share" -e "$srv_hex" -e "$tpm_share" -e "$tpm_hex" -e "$pass" "$f" || false
	done
	# The twin: the same grep finds a share where one is.
	printf '%s\n' "$srv_share" >planted.txt
	grep -qiF -e "$srv_share" planted.txt
}

@test "a token of another volume, or of another server, is refused in one line before anything is sent" {
	attested >/dev/null
	local n
	n=$(audit_count)
	# Another volume: the token copied into a second image, bound to its keyslot 0.
	make_luks other.img "$KEY"
	cryptsetup token export --token-id 0 "$IMG" | jq -c '.keyslots = ["0"]' |
		cryptsetup --disable-external-tokens token import --token-id 0 other.img
	sed "s|^Device=.*|Device=$BATS_TEST_TMPDIR/other.img|" keystrap.conf >other.conf
	run "$KEYSTRAP" unlock --config other.conf --dry-run
	[ "$status" -eq 1 ]
	[ "${lines[-1]}" = "keystrap: $BATS_TEST_TMPDIR/other.img token 0 belongs to volume $(uuid "$IMG"), not to this one ($(uuid other.img))" ]
	# Another server: the configured one is not the token's.
	conf yes "https://localhost:$SRV_PORT"
	run "$KEYSTRAP" unlock --config keystrap.conf --dry-run
	[ "$status" -eq 1 ]
	[ "${lines[-1]}" = "keystrap: $IMG token 0 holds a share of keystrap-server https://127.0.0.1:$SRV_PORT, but [Attest] Server= is https://localhost:$SRV_PORT" ]
	[ "$(audit_count)" -eq "$n" ]
	# The twin: the token's own volume and server.
	conf
	run "$KEYSTRAP" unlock --config keystrap.conf --dry-run
	[ "$status" -eq 0 ]
}

@test "the token is parsed strictly: each fault named in one line" {
	attested >/dev/null
	local f
	for f in '.extra = 1' '.volume = "not-a-uuid"' '.volume = (.volume | ascii_upcase)' '."keystrap-server" = "http://x"' \
		'del(."keystrap-pcr-values"."7")' 'del(."tpm2-blob")' '."tpm2-pcrs" = []'; do
		cp "$IMG" edited.img
		token_edit edited.img 0 "$f"
		sed "s|^Device=.*|Device=$BATS_TEST_TMPDIR/edited.img|" keystrap.conf >edited.conf
		run "$KEYSTRAP" unlock --config edited.conf --dry-run
		[ "$status" -eq 1 ]
		[[ "${lines[-1]}" == "keystrap: $BATS_TEST_TMPDIR/edited.img token 0 is malformed: "* ]] || { echo "$f: $output"; false; }
	done
}

@test "Offline=no: enroll --attested removes the strict token, never the key file's keyslot; Offline=yes keeps it" {
	strict
	conf no
	run attested
	[ "$status" -eq 0 ]
	[[ "$output" == *"attested keyslot 2, token 1, "*"; replaced token 0 with keyslot 1" ]]
	[ "$(keyslots "$IMG")" = "0 2" ]
	[ "$(tokens "$IMG")" = 1 ]
	cryptsetup open --test-passphrase --key-file "$KEY" --key-slot 0 "$IMG"
	# The twin: Offline=yes keeps it.
	make_luks yes.img "$KEY"
	"$KEYSTRAP" enroll --device yes.img --unlock-key-file "$KEY" --pcrs 4,7,15:0 >/dev/null
	sed "s|^Device=.*|Device=$BATS_TEST_TMPDIR/yes.img|; s|^Offline=.*|Offline=yes|" keystrap.conf >yes.conf
	"$KEYSTRAP" enroll --attested --device yes.img --unlock-key-file "$KEY" --config yes.conf >/dev/null
	[ "$(tokens yes.img)" = "0 1" ]
}

@test "Offline=no: a strict token beside the attested one is not used, so a revoked node stays locked with unchanged PCRs" {
	attested >/dev/null
	strict
	srv node revoke "$EK" >/dev/null
	# Offline=yes, the trade-off: the strict token opens a revoked machine whose PCRs did not move.
	run "$KEYSTRAP" unlock --config keystrap.conf --dry-run
	[ "$status" -eq 0 ]
	[[ "$output" == *"token 1 unseals a key that opens keyslot 2 (dry run)"* ]]
	conf no
	run "$KEYSTRAP" unlock --config keystrap.conf --dry-run
	[ "$status" -eq 1 ]
	[[ "$output" == *"keystrap: $IMG token 1: not used: Offline=no, and token 0 is attested"* ]]
	[ "${lines[-1]}" = "keystrap: the server refused the attestation start (HTTP 403): node is revoked" ]
	# The twin: reinstated, the attested token opens it.
	srv node approve "$EK" --reinstate >/dev/null
	run "$KEYSTRAP" unlock --config keystrap.conf --dry-run
	[ "$status" -eq 0 ]
	[[ "${lines[-1]}" == *"attested token 0: this TPM's share and the server's open keyslot 1 (dry run)" ]]
}

@test "a second enroll --attested replaces the first attested token: the server keeps one share per node and volume" {
	attested >/dev/null
	run attested
	[ "$status" -eq 0 ]
	[[ "$output" == *"attested keyslot 2, token 1, "*"; replaced token 0 with keyslot 1" ]]
	[ "$(tokens "$IMG")" = 1 ]
	update
	run "$KEYSTRAP" unlock --config keystrap.conf --dry-run
	[ "$status" -eq 0 ]
	[[ "$output" == *"attested token 1: this TPM's share and the server's open keyslot 2 (dry run)"* ]]
}

@test "an enroll --attested killed at each header write leaves what the next run removes" {
	local points p sc n
	points=$(fault_points "$IMG" "$KEYSTRAP" enroll --attested --device "$IMG" --unlock-key-file "$KEY" --config keystrap.conf)
	[ -n "$points" ]
	# Start from a clean image each time; the server replaces the share each run.
	cp "$IMG" clean.img
	while read -r sc n; do
		cp clean.img "$IMG"
		inject_fault "$IMG" "$sc" "$n" signal=SIGKILL "$KEYSTRAP" enroll --attested --device "$IMG" \
			--unlock-key-file "$KEY" --config keystrap.conf >/dev/null 2>&1 || true
		# Whatever the kill left, the next enroll removes it and adds a working attested keyslot.
		run attested
		[ "$status" -eq 0 ] || { echo "after $sc $n: $output"; false; }
		[ "$(cryptsetup luksDump --dump-json-metadata "$IMG" | jq '[.tokens[] | select(.type == "keystrap-pending")] | length')" -eq 0 ]
		[ "$(cryptsetup luksDump --dump-json-metadata "$IMG" | jq '[.tokens[] | select(.type == "keystrap-attested")] | length')" -eq 1 ]
		cryptsetup open --test-passphrase --key-file "$KEY" --key-slot 0 "$IMG"
		run "$KEYSTRAP" unlock --config keystrap.conf --dry-run
		[ "$status" -eq 0 ] || { echo "after $sc $n, unlock: $output"; false; }
		# A new boot each time: the measurement log starts empty again, as the next boot's does.
		swtpm_reboot
	done <<<"$points"
}

# Reseal on an approved boot (issue 13 item 2, node/reseal.c through unlock's hook). Without
# device-mapper here, tests/lib/unlock-run is keystrap unlock's flow with the keyslot only
# checked; what follows an open (the reseal) is written as in the initrd.

# sealed_ok IMAGE: every keyslot but 0 is bound to exactly one token, every token to one keyslot,
# no pending record; one strict token and the attested one (cryptsetup as the oracle).
sealed_ok() {
	cryptsetup luksDump --dump-json-metadata "$1" | jq -e '
		([.tokens[].keyslots[]] | sort) == ([.keyslots | keys[] | select(. != "0")] | sort) and
		all(.tokens[]; (.keyslots | length) == 1 and (.type == "systemd-tpm2" or .type == "keystrap-attested")) and
		([.tokens[] | select(.type == "systemd-tpm2")] | length) == 1 and
		([.tokens[] | select(.type == "keystrap-attested")] | length) == 1' >/dev/null ||
		{ echo "header of $1: $(cryptsetup luksDump --dump-json-metadata "$1" | jq -c '[.keyslots | keys, .tokens]')"; return 1; }
}

@test "reseal: after an update the attested token opens the volume and reseals the strict token; the next boot like it opens offline, the server down" {
	strict
	attested >/dev/null
	update
	run "$UNLOCK" "$IMG" keystrap.conf
	[ "$status" -eq 0 ]
	[[ "$output" == *"unlock-run: $IMG token 0: PCR mismatch (sha256): PCR 4 is "* ]]
	[[ "$output" == *"$IMG: attested token 1: this TPM's share and the server's open keyslot 2"* ]]
	[ "${lines[-1]}" = "$IMG: resealed token 0 to PCRs 4,7,15 (sha256) of this boot as token 2, keyslot 3; the next boot unlocks offline" ]
	[ "$(tpm_tokens "$IMG")" = "2:3" ]
	sealed_ok "$IMG"
	# Sealed to the PCR 4 of this boot, PCR 15 at zero as before; nothing secret in what it said.
	[ "$(cryptsetup token export --token-id 2 "$IMG" | jq -r '."keystrap-pcr-values"."4"')" = "$(pcr_value sha256 4)" ]
	[ "$(cryptsetup token export --token-id 2 "$IMG" | jq -r '."keystrap-pcr-values"."15"')" = "$(printf '%064d' 0)" ]
	! grep -qF "$(cat "$KEY")" <<<"$output" || false
	# The next boot, with the same update measured and the server down: offline, no connection.
	swtpm_reboot
	tpm2_pcrextend 4:sha256="$(printf '%064x' 4)"
	server_stop "$SRV_DIR"
	local n
	traced "$KEYSTRAP" unlock --config keystrap.conf --dry-run
	[ "$status" -eq 0 ]
	[ "${lines[-1]}" = "$IMG: token 2 unseals a key that opens keyslot 3 (dry run)" ]
	[[ "$output" != *"attested token"* ]]
	! grep -q "htons($SRV_PORT)" connects.txt || false
	# Its twin: without the update measured, the resealed token refuses (it binds the new PCR 4).
	swtpm_reboot
	run "$KEYSTRAP" unlock --config keystrap.conf --dry-run
	[ "$status" -eq 1 ]
	[[ "$output" == *"keystrap: $IMG token 2: PCR mismatch (sha256): PCR 4 is "* ]]
}

@test "keystrap unlock --dry-run says which strict token it would reseal and writes nothing" {
	strict
	attested >/dev/null
	update
	local before
	before=$(header_sum "$IMG")
	run "$KEYSTRAP" unlock --config keystrap.conf --dry-run
	[ "$status" -eq 0 ]
	[ "${lines[-1]}" = "$IMG: token 0 would be resealed to PCRs 4,7,15 (sha256) of this boot (dry run: nothing written)" ]
	[ "$(header_sum "$IMG")" = "$before" ]
	# Twin: a boot the strict token opens has nothing to reseal and says nothing of it.
	swtpm_reboot
	run "$KEYSTRAP" unlock --config keystrap.conf --dry-run
	[ "$status" -eq 0 ]
	[[ "$output" != *"resealed"* ]]
}

@test "reseal refused: a revoked node, or a boot the policy refuses, reseals nothing and the stale token stays" {
	strict
	attested >/dev/null
	update
	local before
	before=$(header_sum "$IMG")
	srv node revoke "$EK" >/dev/null
	run "$UNLOCK" "$IMG" keystrap.conf
	[ "$status" -eq 1 ]
	[ "${lines[-1]}" = "unlock-run: the server refused the attestation start (HTTP 403): node is revoked" ]
	[ "$(header_sum "$IMG")" = "$before" ]
	srv node approve "$EK" --reinstate >/dev/null
	tpm2_pcrextend 0:sha256="$(printf '%064x' 9)"
	run "$UNLOCK" "$IMG" keystrap.conf
	[ "$status" -eq 1 ]
	[[ "${lines[-1]}" == "unlock-run: the server refused the attestation (HTTP 403): "*"PCR 0"* ]]
	[ "$(header_sum "$IMG")" = "$before" ]
	[ "$(tpm_tokens "$IMG")" = "0:1" ]
}

@test "reseal after the lock: with PCR 15 extended nothing unseals and nothing is resealed" {
	strict
	attested >/dev/null
	update
	"$KEYSTRAP" lock >/dev/null
	local before
	before=$(header_sum "$IMG")
	run "$UNLOCK" "$IMG" keystrap.conf
	[ "$status" -eq 1 ]
	[[ "$output" == *"unlock-run: $IMG token 1: PCR mismatch (sha256): PCR 15 is "* ]]
	[[ "$output" != *"resealed"* ]]
	[ "$(header_sum "$IMG")" = "$before" ]
}

@test "reseal SIGKILLed during the attested unlock, 12 times: the stale strict token or the new one, never a keyslot without its token; the next boot finishes" {
	local i kept_old=0 kept_new=0
	for i in $(seq 12); do
		rm -f "$IMG"
		make_luks "$IMG" "$KEY"
		swtpm_reboot
		strict
		attested >/dev/null
		cryptsetup token export --token-id 0 "$IMG" >old.json
		tpm2_pcrextend 4:sha256="$(printf '%064x' 4)"
		ASAN_OPTIONS=detect_leaks=0 "$UNLOCK" "$IMG" keystrap.conf >/dev/null 2>&1 &
		local pid=$!
		sleep "0.$(printf '%03d' $((RANDOM % 900 + 50)))"
		kill -KILL "$pid" 2>/dev/null || true
		wait "$pid" || true
		# The power cut: the next boot measures the same update.
		swtpm_reboot
		tpm2_pcrextend 4:sha256="$(printf '%064x' 4)"
		replace_invariant "$IMG"
		if [ "$(cryptsetup token export --token-id 0 "$IMG" 2>/dev/null | jq -cS .)" = "$(jq -cS . old.json)" ] &&
			[[ " $(keyslots "$IMG") " == *" 1 "* ]]; then
			kept_old=$((kept_old + 1))
		else
			run "$KEYSTRAP" unlock --device "$IMG" --dry-run
			[[ "$output" == *": token "*" unseals a key that opens keyslot "* ]] || { echo "neither: $output"; false; }
			kept_new=$((kept_new + 1))
		fi
		# The next boot: unlock repairs what the kill left, reseals if the stale token stayed.
		run "$UNLOCK" "$IMG" keystrap.conf
		[ "$status" -eq 0 ] || { echo "next boot: $output"; false; }
		sealed_ok "$IMG"
		run "$KEYSTRAP" unlock --device "$IMG" --dry-run
		[[ "$output" == *": token "*" unseals a key that opens keyslot "* ]]
	done
	echo "# kept the stale token $kept_old times, the new one $kept_new" >&3
}
