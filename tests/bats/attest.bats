#!/usr/bin/env bats
# keystrap attest with evidence (issue 5): the firmware event log and keystrap's CEL log replay
# to the quoted PCRs or the finish is refused naming the PCR; the secret payload opens only in
# the TPM it was sealed to; the `attested` phase lands in PCR 12 only after a verified reply;
# an expired nonce is refused. Real swtpms, a real server on loopback.

load ../lib/swtpm
load ../lib/server
load ../lib/firmware

PEER=$BATS_TEST_DIRNAME/../../build/asan/attest-peer
CANNED=$BATS_TEST_DIRNAME/../lib/https-canned.py
LOGS=$BATS_TEST_DIRNAME/../data/eventlogs
FW=$LOGS/event-arch-linux.bin

setup_file() {
	swtpm_start "$BATS_FILE_TMPDIR/other"
	export OTHER_DIR=$SWTPM_DIR OTHER_PORT=$SWTPM_PORT OTHER_TCTI=$KEYSTRAP_TCTI
	swtpm_start
	export SRV_DIR=$BATS_FILE_TMPDIR/srv SRV_PORT U EK
	SRV_PORT=$(free_port)
	server_pki "$SRV_DIR"
	MAX_BODY=262144 server_config "$SRV_DIR" "0 7 12"
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
	mkdir -p out
}

teardown() {
	canned_stop
	# Every test boots anew: PCRs at reset, an empty measurement log.
	swtpm_reboot
	rm -f "$KEYSTRAP_MEASURE_LOG"
}

attest() {
	"$KEYSTRAP" attest --server "https://127.0.0.1:$SRV_PORT" --ca "$SRV_DIR/ca.crt" --out-dir out "$@"
}

# canned MODE [OPTIONS...]: tests/lib/https-canned.py with the server's TLS certificate, in front
# of the server, writing the path of each request it receives to requests.log; sets CANNED_PORT.
canned() {
	python3 "$CANNED" "$SRV_DIR/tls.crt" "$SRV_DIR/tls.key" "$1" --upstream "https://127.0.0.1:$SRV_PORT" \
		--ca "$SRV_DIR/ca.crt" --log "$BATS_TEST_TMPDIR/requests.log" "${@:2}" >"$BATS_TEST_TMPDIR/canned.port" &
	CANNED_PID=$!
	for _ in $(seq 100); do
		[ -s "$BATS_TEST_TMPDIR/canned.port" ] && break
		sleep 0.05
	done
	CANNED_PORT=$(cat "$BATS_TEST_TMPDIR/canned.port")
	[ -n "$CANNED_PORT" ]
}

canned_stop() {
	if [ -n "${CANNED_PID:-}" ]; then
		kill "$CANNED_PID" 2>/dev/null
		wait "$CANNED_PID" 2>/dev/null || true
	fi
	CANNED_PID=
	rm -f "$BATS_TEST_TMPDIR/requests.log" "$BATS_TEST_TMPDIR/canned.port"
}

# attest_canned ARGS...: keystrap attest through the canned server.
attest_canned() {
	"$KEYSTRAP" attest --server "https://127.0.0.1:$CANNED_PORT" --ca "$SRV_DIR/ca.crt" --out-dir out "$@"
}

# requests PATH: how many requests for PATH the canned server received.
requests() {
	grep -cx "$1" "$BATS_TEST_TMPDIR/requests.log" || true
}

# run_timed CMD...: run CMD, and t = how many milliseconds it took.
run_timed() {
	local t0
	t0=$(date +%s%N)
	run "$@"
	t=$((($(date +%s%N) - t0) / 1000000))
}

# boot: what a boot leaves behind: the firmware's measurements, then keystrap's enter-initrd.
boot() {
	replay_firmware "$FW"
	"$KEYSTRAP" measure --phase enter-initrd >/dev/null
}

# serve_now: the server's reference values become this boot's PCRs 0, 7 and 12.
serve_now() {
	server_stop "$SRV_DIR"
	MAX_BODY=262144 server_config "$SRV_DIR" "0 7 12"
	server_start "$SRV_DIR"
}

# peer_result CHALLENGE RESULT: a whole handshake by the peer (curl carrying its messages); the
# challenge and the server's 200 result are kept in the two files.
peer_result() {
	local out
	challenge "$1" || return 1
	"$PEER" finish "$U" "$1" >finish.json || return 1
	out=$(post /v1/attest/finish finish.json)
	[ "$(status_of "$out")" = 200 ] || { echo "finish: $out"; return 1; }
	body_of "$out" >"$2"
}

# cel_strings: the event strings of the measurement log, one a line.
cel_strings() {
	[ -s "$KEYSTRAP_MEASURE_LOG" ] || return 0
	jq --seq -r '.content.string' "$KEYSTRAP_MEASURE_LOG"
}

# extend_hex OLD STRING: sha256 PCR extend of OLD with sha256(STRING).
extend_hex() {
	printf '%s%s' "$1" "$(printf '%s' "$2" | sha256sum | cut -c1-64)" | xxd -r -p | sha256sum | cut -c1-64
}

# with_payload FILE: result.json with its "payload" replaced by FILE's bytes.
with_payload() {
	jq -c --arg p "$(base64 -w0 "$1")" '.payload = $p' result.json
}

# flip_bit FILE OFFSET MASK: XORs the byte at OFFSET with MASK (one bit), in place.
flip_bit() {
	local b
	b=$(xxd -p -s "$2" -l 1 "$1")
	printf "\\x$(printf '%02x' $((0x$b ^ $3)))" | dd of="$1" bs=1 seek="$2" conv=notrunc status=none
}

@test "both logs replay to the quoted PCRs: the node attests, then 'attested' is in PCR 12 and in the log" {
	boot
	serve_now
	before=$(pcr_value sha256 12)
	run attest --event-log "$FW"
	[ "$status" -eq 0 ]
	[ "$output" = "keystrap: attested as node1.example" ]
	# The certificate verifies against the chain the server sent, which is its CA.
	run openssl verify -CAfile out/chain.pem out/node.crt
	[ "$output" = "out/node.crt: OK" ]
	cmp out/chain.pem "$SRV_DIR/ca.crt"
	# PCR 12 moved by exactly "keystrap:attested", and the log says so.
	[ "$(pcr_value sha256 12)" = "$(extend_hex "$before" keystrap:attested)" ]
	[ "$(cel_strings | tr '\n' ' ')" = "keystrap:enter-initrd keystrap:attested " ]
	run "$KEYSTRAP" eventlog --verify "$FW" --cel "$KEYSTRAP_MEASURE_LOG"
	[ "$status" -eq 0 ]
}

@test "a quoted PCR extended without a log entry is refused naming it; PCR 12 gets no 'attested'" {
	boot
	serve_now
	tpm2_pcrextend "7:sha256=$(printf '%064x' 1)"
	before=$(pcr_value sha256 12)
	run attest --event-log "$FW"
	[ "$status" -eq 5 ]
	[[ "$output" =~ ^"keystrap: the server refused the attestation (HTTP 403): event log does not replay to quoted PCR 7 (sha256): the logs give "[0-9a-f]{64}", the quote $(pcr_value sha256 7)"$ ]]
	[ ! -e out/node.crt ]
	[ "$(pcr_value sha256 12)" = "$before" ]
	[ "$(cel_strings | tr '\n' ' ')" = "keystrap:enter-initrd " ]
	grep -q 'decision=deny.*event log does not replay to quoted PCR 7' "$SRV_DIR/server.log"
}

@test "a firmware log with one event altered is refused, naming the PCR it replays into" {
	boot
	serve_now
	# The sha256 digest of the last PCR 7 event, with its first byte changed.
	digest=$(tpm2_eventlog "$FW" 2>/dev/null | awk '
		/^  PCRIndex:/ { pcr = $2 } /^  - AlgorithmId:/ { alg = $3 }
		/^    Digest:/ { if (pcr == 7 && alg == "sha256") { d = $2; gsub(/"/, "", d); last = d } }
		END { print last }')
	[ ${#digest} -eq 64 ]
	off=$(($(xxd -p "$FW" | tr -d '\n' | grep -bo "$digest" | head -1 | cut -d: -f1) / 2))
	cp "$FW" altered.bin
	printf '\xff' | dd of=altered.bin bs=1 seek="$off" conv=notrunc status=none
	! cmp -s "$FW" altered.bin || false
	run attest --event-log altered.bin
	[ "$status" -eq 5 ]
	[[ "$output" =~ ^"keystrap: the server refused the attestation (HTTP 403): event log does not replay to quoted PCR 7 (sha256): the logs give "[0-9a-f]{64}", the quote $(pcr_value sha256 7)"$ ]]
	# Positive twin: the log as the firmware wrote it.
	run attest --event-log "$FW"
	[ "$status" -eq 0 ]
}

@test "a firmware log as Windows and fixed-size log areas write it attests; an extending event on PCR 0xFFFFFFFF is refused" {
	boot
	serve_now
	# EV_NO_ACTION events on PCR 0xFFFFFFFF, a SHA3-256 digest in every event, zero padding.
	perl "$BATS_TEST_DIRNAME/../lib/eventlog-edit.pl" "$FW" quirks.bin \
		alg=0x27:32 no-action=4294967295 no-action=4294967295:9 pad=512
	run attest --event-log quirks.bin
	[ "$status" -eq 0 ]
	[ "$output" = "keystrap: attested as node1.example" ]
	# Negative twin: the first of them made an EV_EFI_ACTION, which would be extended.
	at=$("$KEYSTRAP" eventlog --json quirks.bin | jq '.events[1].offset')
	cp quirks.bin extending.bin
	printf '\x07\x00\x00\x80' | dd of=extending.bin bs=1 seek=$((at + 4)) conv=notrunc status=none
	run attest --event-log extending.bin
	[ "$status" -eq 5 ]
	[ "$output" = "keystrap: the server refused the attestation (HTTP 400): firmware event log does not parse: offset $at: event 1: PCR index 4294967295 is out of range (0-23)" ]
}

@test "a CEL log missing its last record is refused naming PCR 12" {
	boot
	cp "$KEYSTRAP_MEASURE_LOG" short.log
	"$KEYSTRAP" measure --phase leave-initrd >/dev/null
	serve_now
	run attest --event-log "$FW" --log "$BATS_TEST_TMPDIR/short.log"
	[ "$status" -eq 5 ]
	[[ "$output" =~ ^"keystrap: the server refused the attestation (HTTP 403): event log does not replay to quoted PCR 12 (sha256): the logs give "[0-9a-f]{64}", the quote $(pcr_value sha256 12)"$ ]]
	run attest --event-log "$FW"
	[ "$status" -eq 0 ]
}

@test "logs that do not parse are refused (400) naming the byte offset" {
	boot
	serve_now
	head -c 3000 "$FW" >truncated.bin
	run attest --event-log truncated.bin
	[ "$status" -eq 5 ]
	[[ "$output" =~ ^"keystrap: the server refused the attestation (HTTP 400): firmware event log does not parse: offset "[0-9]+": " ]]
	printf '\036{"pcr":12,\n' >bad.log
	run attest --event-log "$FW" --log "$BATS_TEST_TMPDIR/bad.log"
	[ "$status" -eq 5 ]
	[[ "$output" == "keystrap: the server refused the attestation (HTTP 400): measurement log does not parse: offset 0: "* ]]
	run srv audit export
	[[ "$output" == *'"decision":"deny","reasons":"firmware event log does not parse: offset '* ]]
}

@test "keystrap attest names a firmware log it cannot read, and sends none when the kernel has none" {
	run attest --event-log /nonexistent
	[ "$status" -eq 1 ]
	[ "$output" = "keystrap: --event-log '/nonexistent' is not a readable file" ]
	# No /sys/kernel/security/tpm0 here: nothing to send, and PCRs at reset replay from nothing.
	serve_now
	run attest
	[ "$status" -eq 0 ]
}

@test "the secret payload opens with this TPM only: another TPM given the same reply cannot, tampering fails GCM" {
	serve_now
	peer_result ch.json result.json
	[ "$(jq -r .policy_version result.json)" -ge 0 ]
	run "$PEER" open "$U" ch.json result.json
	[ "$status" -eq 0 ]
	# The same bytes on another machine: its EK cannot activate the payload key.
	KEYSTRAP_TCTI=$OTHER_TCTI run "$PEER" open "$U" ch.json result.json
	[ "$status" -eq 1 ]
	[[ "$output" == "attest-peer: ActivateCredential for the payload key: "* ]]
	# The ciphertext (|| tag) taken out and put back unchanged still opens: the re-encoding is exact.
	jq -r .payload result.json | base64 -d >ct.bin
	local size
	size=$(stat -c %s ct.bin)
	with_payload ct.bin >same.json
	run "$PEER" open "$U" ch.json same.json
	[ "$status" -eq 0 ]
	# One bit flipped, in the ciphertext's first byte or the tag's last: AES-GCM refuses it.
	for at in 0:1 $((size - 1)):128; do
		cp ct.bin flipped.bin
		flip_bit flipped.bin "${at%:*}" "${at#*:}"
		[ "$(stat -c %s flipped.bin)" -eq "$size" ]
		[ "$(cmp -l ct.bin flipped.bin | wc -l)" -eq 1 ]
		with_payload flipped.bin >tampered.json
		[ "$(jq -r .payload tampered.json | base64 -d | wc -c)" -eq "$size" ]
		run "$PEER" open "$U" ch.json tampered.json
		[ "$status" -eq 1 ]
		[ "$output" = "attest-peer: decrypting the payload: Bad message" ]
	done
}

@test "--timeout and --retries take the range of Timeout= and Retries=, with the same defaults" {
	for bad in 0 301 -1 20s; do
		run "$KEYSTRAP" attest --server https://127.0.0.1:1 --ca "$SRV_DIR/ca.crt" --timeout "$bad"
		[ "$status" -eq 2 ]
		[ "${lines[0]}" = "keystrap: --timeout '$bad' is not a number of seconds from 1 to 300" ]
	done
	run "$KEYSTRAP" attest --server https://127.0.0.1:1 --ca "$SRV_DIR/ca.crt" --retries 21
	[ "$status" -eq 2 ]
	[ "${lines[0]}" = "keystrap: --retries '21' is not a number from 0 to 20" ]
	# The twin: the bounds themselves parse (the missing CA is what stops these).
	for ok in "--timeout 1" "--timeout 300" "--retries 0" "--retries 20"; do
		# shellcheck disable=SC2086 # option and value
		run "$KEYSTRAP" attest --server https://127.0.0.1:1 --ca /nonexistent $ok
		[ "$status" -eq 1 ]
		[ "$output" = "keystrap: --ca '/nonexistent' is not a readable file" ]
	done
	run "$KEYSTRAP" attest --help
	[[ "$output" == *"--timeout SEC     per request, 1 to 300 (default 20; Timeout= in keystrap.conf)"* ]]
	[[ "$output" == *"(default 4; Retries=)"* ]]
}

@test "a short write in --out-dir fails naming the file, and leaves none of the set; a full stdout fails too" {
	# A secret larger than every other file, so that a file size limit can fall below it only.
	head -c 3000 /dev/urandom | base64 -w0 >big.value
	srv secret set big <big.value >/dev/null
	srv node approve "$EK" --group big >/dev/null
	POLICY_GROUPS='{"default":{"secrets":[]},"big":{"secrets":["big"]}}' serve_now
	# The twin first: with room for everything, every file is whole.
	run attest
	[ "$status" -eq 0 ]
	cmp out/secrets/big big.value
	local limit
	limit=$(stat -c %s out/node.key.der out/node.crt out/chain.pem "$KEYSTRAP_MEASURE_LOG" | sort -n | tail -n 1)
	limit=$((limit + 256))
	[ "$limit" -lt "$(stat -c %s big.value)" ]
	# A new boot, so that the measurement log holds one record again.
	swtpm_reboot
	rm -r out && mkdir out
	# RLIMIT_FSIZE above every other file, below the secret: its write stops short, and the
	# next one says EFBIG (SIGXFSZ ignored).
	POLICY_GROUPS='{"default":{"secrets":[]},"big":{"secrets":["big"]}}' serve_now
	run bash -c 'trap "" XFSZ; exec prlimit --fsize="$1" -- "$2" attest --server "$3" --ca "$4" --out-dir out' \
		_ "$limit" "$KEYSTRAP" "https://127.0.0.1:$SRV_PORT" "$SRV_DIR/ca.crt"
	srv node approve "$EK" --group default >/dev/null
	[ "$status" -eq 1 ]
	[ "$output" = "keystrap: cannot write out/secrets/big: File too large" ]
	[ -z "$(ls -A out)" ]
	# Without --out-dir the certificate goes to stdout: a full one is an error too.
	serve_now
	run bash -c '"$1" attest --server "$2" --ca "$3" >/dev/full' _ "$KEYSTRAP" "https://127.0.0.1:$SRV_PORT" \
		"$SRV_DIR/ca.crt"
	[ "$status" -eq 1 ]
	[ "$output" = "keystrap: cannot write the certificate to stdout: No space left on device" ]
}

@test "a finish after the nonce expired is refused (403 nonce expired) and recorded" {
	local d=$BATS_TEST_TMPDIR/srv1
	mkdir -p "$d"
	cp "$SRV_DIR"/{ca,tls}.{crt,key} "$d/"
	SRV_PORT=$(free_port) NONCE_LIFETIME=1 server_config "$d" "0 7"
	local port
	port=$(jq -r '.listen | split(":")[1]' "$d/server.json")
	SRV_PORT=$port server_start "$d"
	SRV_PORT=$port post /v1/attest/start "$BATS_FILE_TMPDIR/start.json" >/dev/null
	"$KEYSTRAP_SERVER" node approve "$EK" --id node1.example --config "$d/server.json" >/dev/null
	SRV_PORT=$port challenge ch.json
	"$PEER" finish "$U" ch.json >finish.json
	sleep 2
	SRV_PORT=$port run post /v1/attest/finish finish.json
	SRV_PORT=$port server_stop "$d"
	[ "$(status_of "$output")" = 403 ]
	[ "$(body_of "$output")" = '{"error":"nonce expired"}' ]
	run "$KEYSTRAP_SERVER" audit export --config "$d/server.json"
	[[ "$output" == *'"action":"attest-finish","decision":"deny","reasons":"nonce expired"'* ]]
}

# secrets_setup: three secrets with random values (A, B, C) in the store; the policy gives group
# "web" db-password and api-token, group "batch" other-secret; this node is in "web".
secrets_setup() {
	A=pw-$(head -c 12 /dev/urandom | xxd -p) B=tok-$(head -c 12 /dev/urandom | xxd -p)
	C=other-$(head -c 12 /dev/urandom | xxd -p)
	printf '%s' "$A" | srv secret set db-password >/dev/null
	printf '%s' "$B" | srv secret set api-token >/dev/null
	printf '%s' "$C" | srv secret set other-secret >/dev/null
	srv node approve "$EK" --group web >/dev/null
	POLICY_GROUPS='{"web":{"secrets":["db-password","api-token"]},"batch":{"secrets":["other-secret"]}}' serve_now
}

@test "the node receives exactly its group's secrets; their values appear nowhere but the store and --out-dir" {
	secrets_setup
	# Through the peer: the payload holds exactly those two (names, digests of the values).
	peer_result ch.json result.json
	run "$PEER" open "$U" ch.json result.json
	[ "$output" = "db-password=$(printf %s "$A" | sha256sum | cut -c1-64)
api-token=$(printf %s "$B" | sha256sum | cut -c1-64)" ]
	# Negative twin: the same reply bytes on another machine's TPM open nothing.
	KEYSTRAP_TCTI=$OTHER_TCTI run "$PEER" open "$U" ch.json result.json
	[ "$status" -eq 1 ]
	[[ "$output" == "attest-peer: ActivateCredential for the payload key: "* ]]
	# keystrap attest (last: it moves PCR 12) writes them for the test to compare.
	"$KEYSTRAP" attest --server "https://127.0.0.1:$SRV_PORT" --ca "$SRV_DIR/ca.crt" --out-dir out \
		>node.out 2>&1
	[ "$(cat node.out)" = "keystrap: attested as node1.example" ]
	[ "$(ls out/secrets | tr '\n' ' ')" = "api-token db-password " ]
	[ "$(cat out/secrets/db-password)" = "$A" ]
	[ "$(cat out/secrets/api-token)" = "$B" ]
	[ "$(stat -c %a out/secrets/db-password)" = 600 ]
	# Leak scan: the server's stdout/stderr, the node's output, the replies, the logs, the test
	# directory, the TPM state and the store (ciphertext only) hold none of the values; only
	# --out-dir does.
	for v in "$A" "$B" "$C"; do
		run grep -rlaF -- "$v" "$SRV_DIR" "$BATS_TEST_TMPDIR" "$SWTPM_DIR" "$BATS_FILE_TMPDIR"
		[ "$(printf '%s\n' "$output" | grep -v -e '/out/secrets/' | grep -c .)" = 0 ]
	done
	ls "$SRV_DIR"/keystrap.db >/dev/null
	grep -rlaF -- "$A" "$BATS_TEST_TMPDIR" | grep -q '/out/secrets/db-password$' # the scan would have seen it
	# The payload on the wire is ciphertext: no base64 of a value either.
	! grep -qF -- "$(printf %s "$A" | base64 -w0 | cut -c1-16)" result.json || false
}

@test "a policy naming a secret the store lacks is refused at load; the one in force stays" {
	serve_now
	shown=$(srv policy show)
	server_stop "$SRV_DIR"
	POLICY_GROUPS='{"default":{"secrets":[]},"web":{"secrets":["never-set"]}}' MAX_BODY=262144 \
		run server_config "$SRV_DIR" "0 7 12"
	[ "$status" -ne 0 ]
	server_start "$SRV_DIR"
	[ "$(srv policy show)" = "$shown" ]
	[[ "$shown" != *never-set* ]]
}

@test "with an ECC P-384 EK the payload key is wrapped to it (ECDH seed) and the secrets open the same" {
	secrets_setup
	run attest --ek ecc384
	[ "$status" -eq 5 ]
	[[ "$output" == *"node is not approved: enrollment request recorded for EK "* ]]
	ek384=$(srv node list --json | jq -r '.[] | select(.state == "requested") | .ek_hash')
	[ ${#ek384} -eq 64 ]
	srv node approve "$ek384" --id node384.example --group web >/dev/null
	run attest --ek ecc384
	[ "$status" -eq 0 ]
	[ "$output" = "keystrap: attested as node384.example" ]
	[ "$(cat out/secrets/db-password)" = "$A" ]
	[ "$(ls out/secrets | tr '\n' ' ')" = "api-token db-password " ]
}

@test "a finish answered 503 (its nonce spent) starts again from a new challenge after its Retry-After, and attests" {
	boot
	serve_now
	allowed=$(grep -c 'action=attest-finish decision=allow' "$SRV_DIR/server.log" || true)
	canned busy-finish --retry-after 2
	run_timed attest_canned --event-log "$FW"
	[ "$status" -eq 0 ] || { echo "$output"; false; }
	[ "$output" = "keystrap: attested as node1.example" ]
	# Two challenges, two finishes; the first finish reached the server, which spent its nonce
	# (and issued): sending it again would have been refused "nonce already used".
	[ "$(requests /v1/attest/start)" = 2 ]
	[ "$(requests /v1/attest/finish)" = 2 ]
	[ "$(grep -c 'action=attest-finish decision=allow' "$SRV_DIR/server.log")" = $((allowed + 2)) ]
	# The server's 2 s, not the 250 ms backoff.
	[ "$t" -ge 2000 ]
	[ "$t" -lt 15000 ]
	run openssl verify -CAfile out/chain.pem out/node.crt
	[ "$output" = "out/node.crt: OK" ]
}

@test "... its twin: a finish refused (403) is not tried again: one challenge, exit 5, no certificate" {
	boot
	serve_now
	canned refuse-finish
	run attest_canned --event-log "$FW"
	[ "$status" -eq 5 ]
	[ "$output" = "keystrap: the server refused the attestation (HTTP 403): refused by the canned server" ]
	[ "$(requests /v1/attest/start)" = 1 ]
	[ "$(requests /v1/attest/finish)" = 1 ]
	[ ! -e out/node.crt ]
}

# attest_busy RETRY-AFTER RETRIES: keystrap attest --timeout 1 against a server that answers
# every start 503 with that Retry-After: exit 4, naming the Retry-After and the budget it passes.
attest_busy() {
	canned_stop
	canned busy --retry-after "$1"
	run_timed attest_canned --timeout 1 --retries "$2"
	[ "$status" -eq 4 ]
	[ "$output" = "keystrap: the server refused the attestation start (HTTP 503): busy; its Retry-After of $1 s ends past the $(($2 + 1)) s this attestation may take" ]
}

@test "Retry-After is honoured within the one time budget (timeout x tries); one past it ends the attempt at once" {
	# 2 s apart, in a budget of 1 s x 6 tries: tries at 0, 2 and 4 s, and the next would end at 6.
	attest_busy 2 5
	[ "$(requests /v1/attest/start)" = 3 ]
	[ "$t" -ge 4000 ]
	[ "$t" -lt 5500 ]
	# Its twin: 7 s is past the whole budget of 3 s, so nothing is waited for.
	attest_busy 7 2
	[ "$(requests /v1/attest/start)" = 1 ]
	[ "$t" -lt 1500 ]
}

@test "exit status: 4 for no answer in time, 5 for a refusal, 1 for a failure here, 2 for usage" {
	# Nobody listening, and a server that never answers: 4, within the budget.
	port=$(free_port)
	run "$KEYSTRAP" attest --server "https://127.0.0.1:$port" --ca "$SRV_DIR/ca.crt" --retries 0
	[ "$status" -eq 4 ]
	[ "$output" = "keystrap: cannot reach https://127.0.0.1:$port/v1/attest/start: cannot connect to 127.0.0.1 port $port: Connection refused" ]
	canned stall
	run_timed attest_canned --timeout 1 --retries 1
	[ "$status" -eq 4 ]
	[[ "$output" == "keystrap: cannot reach https://127.0.0.1:$CANNED_PORT/v1/attest/start: waiting for the server's answer timed out"* ]]
	[ "$t" -lt 3000 ]
	# A node the server does not know: 5.
	KEYSTRAP_TCTI=$OTHER_TCTI run attest
	[ "$status" -eq 5 ]
	[[ "$output" == "keystrap: the server refused the attestation start (HTTP 403): node is not approved"* ]]
	# A TLS certificate the pinned CA did not sign, no TPM: this node's failures, 1.
	server_pki other
	run attest --ca other/ca.crt
	[ "$status" -eq 1 ]
	[[ "$output" == "keystrap: cannot reach https://127.0.0.1:$SRV_PORT/v1/attest/start: the server's certificate does not verify against 'other/ca.crt'"* ]]
	KEYSTRAP_TCTI=swtpm:host=127.0.0.1,port=$(free_port) run attest
	[ "$status" -eq 1 ]
	[[ "$output" == "keystrap: no TPM reachable via TCTI 'swtpm:"* ]]
	run attest --bogus
	[ "$status" -eq 2 ]
}
