#!/usr/bin/env bats
# A TPM that stops answering, and one whose slots are full, against a real swtpm: the swtpm is
# SIGSTOPped before keystrap starts or, through tests/lib/tpm-stall.py, the moment a chosen
# command reaches it. Every TPM exchange has a deadline (KEYSTRAP_TPM_TIMEOUT); past it keystrap
# exits 1 with one line naming the deadline and the TCTI. Each stall has its twin: the same TPM
# answering again, under the same deadline, and a moved PCR still failing as a moved PCR. The
# swtpm has no resource manager (like device:/dev/tpm0): what is left loaded stays loaded.

load ../lib/swtpm

STALL=$BATS_TEST_DIRNAME/../lib/tpm-stall.py
# What a run may take beyond its deadline: an ASan build starting, the commands before the stall.
MARGIN_MS=2000

setup_file() {
	swtpm_start
	export SWTPM_PID
	SWTPM_PID=$(cat "$SWTPM_DIR/pid")
	export DIRECT_TCTI=$KEYSTRAP_TCTI
	export KEYSTRAP_TPM_TIMEOUT=1
}

teardown_file() {
	kill -CONT "$SWTPM_PID" 2>/dev/null || true
	swtpm_stop
}

setup() {
	luks_setup
	"$KEYSTRAP" enroll --device "$IMG" --unlock-key-file "$KEY" >/dev/null
}

teardown() {
	if [ -n "${PROXY:-}" ]; then kill "$PROXY" 2>/dev/null || true; wait "$PROXY" 2>/dev/null || true; fi
	kill -CONT "$SWTPM_PID"
	# A stalled command runs once the swtpm does; it and whatever it was given must not
	# crowd the next test's slots.
	tpm2_flushcontext -t >/dev/null 2>&1 || true
	tpm2_flushcontext -l >/dev/null 2>&1 || true
	tpm2_flushcontext -s >/dev/null 2>&1 || true
	reboot_if_asked
}

# stall_at CC [NTH]: keystrap reaches the TPM through a relay that SIGSTOPs the swtpm when the
# NTH command with code CC (hex) arrives; $CCLOG lists the codes that went through.
stall_at() {
	local port
	port=$(free_port)
	CCLOG=$BATS_TEST_TMPDIR/commands
	: >"$CCLOG"
	python3 "$STALL" "$port" "$SWTPM_PORT" "$SWTPM_PID" "$1" "$CCLOG" "${2:-1}" >"$BATS_TEST_TMPDIR/port" &
	PROXY=$!
	for _ in $(seq 100); do [ -s "$BATS_TEST_TMPDIR/port" ] && break; sleep 0.05; done
	export KEYSTRAP_TCTI="swtpm:host=127.0.0.1,port=$port"
}

thaw() {
	kill -CONT "$SWTPM_PID"
	export KEYSTRAP_TCTI=$DIRECT_TCTI
}

# timed CMD...: bats' run, and $elapsed_ms the wall time it took.
timed() {
	local t0
	t0=$(date +%s%N)
	run "$@"
	elapsed_ms=$((($(date +%s%N) - t0) / 1000000))
}

# within_ms N: the run ended after at most N ms (plus the margin).
within_ms() {
	if [ "$elapsed_ms" -gt $(($1 + MARGIN_MS)) ]; then
		echo "took $elapsed_ms ms, deadline $1 ms + $MARGIN_MS ms margin"
		return 1
	fi
}

# nothing_loaded: no transient object and no session is left in the TPM.
nothing_loaded() {
	local objects sessions
	objects=$(tpm2_getcap handles-transient)
	sessions=$(tpm2_getcap handles-loaded-session)
	if [ -n "$objects$sessions" ]; then
		echo "left loaded: objects [$objects] sessions [$sessions]"
		return 1
	fi
}

silent() {
	echo "the TPM did not answer within $1 s (TCTI '$KEYSTRAP_TCTI')"
}

@test "a stopped swtpm: unlock exits 1 within the deadline, one line naming it and the TCTI, header untouched" {
	kill -STOP "$SWTPM_PID"
	before=$(header_sum "$IMG")
	timed "$KEYSTRAP" unlock --device "$IMG" --dry-run
	[ "$status" -eq 1 ]
	within_ms 1000
	[ "$output" = "keystrap: $(silent 1)" ]
	[ "$(header_sum "$IMG")" = "$before" ]

	# The twin: the same TPM answering again, under the same deadline.
	thaw
	timed "$KEYSTRAP" unlock --device "$IMG" --dry-run
	[ "$status" -eq 0 ]
	[ "$output" = "$IMG: token 0 unseals a key that opens keyslot 1 (dry run)" ]
	nothing_loaded
}

@test "the default deadline is 5 s" {
	kill -STOP "$SWTPM_PID"
	KEYSTRAP_TPM_TIMEOUT='' timed "$KEYSTRAP" lock
	[ "$status" -eq 1 ]
	[ "$elapsed_ms" -ge 5000 ]
	within_ms 5000
	[ "$output" = "keystrap: $(silent 5)" ]
}

@test "stalled at Unseal, mid-run: exit 1 within the deadline; answering again, it unlocks, and a moved PCR still fails" {
	stall_at 15e
	timed "$KEYSTRAP" unlock --device "$IMG" --dry-run
	[ "$status" -eq 1 ]
	within_ms 1000
	[ "$output" = "keystrap: $IMG token 0: $(silent 1)" ]
	# It got as far as Unseal (0x15e) and sent nothing after it, not even a flush.
	[ "$(tail -n 1 "$CCLOG")" = 15e ]

	thaw
	tpm2_flushcontext -t
	run "$KEYSTRAP" unlock --device "$IMG" --dry-run
	[ "$status" -eq 0 ]
	nothing_loaded
	pcr_extend 7
	unlock_must_fail "$IMG"
	[[ "$output" == "keystrap: $IMG token 0: PCR mismatch (sha256): PCR 7 is "* ]]
	nothing_loaded
}

@test "a stalled key generation (CreatePrimary) gets ten times the deadline, and says so" {
	stall_at 131
	KEYSTRAP_TPM_TIMEOUT=0.3 timed "$KEYSTRAP" unlock --device "$IMG" --dry-run
	[ "$status" -eq 1 ]
	[ "$elapsed_ms" -ge 3000 ]
	within_ms 3000
	[ "$output" = "keystrap: $IMG token 0: the TPM did not answer a key-generating command within 3 s (TCTI '$KEYSTRAP_TCTI')" ]

	thaw
	tpm2_flushcontext -t
	KEYSTRAP_TPM_TIMEOUT=0.3 run "$KEYSTRAP" unlock --device "$IMG" --dry-run
	[ "$status" -eq 0 ]
}

@test "stalled at PCR_Event: measure exits 1 within the deadline and logs nothing; answering again, it measures" {
	stall_at 13c
	timed "$KEYSTRAP" measure --phase enter-initrd
	[ "$status" -eq 1 ]
	within_ms 1000
	[ "$output" = "keystrap: cannot extend PCR 12: $(silent 1)" ]
	[ ! -s "$KEYSTRAP_MEASURE_LOG" ]

	# (The extend still lands when the TPM runs again, unlogged: PCR 12 then no longer
	# replays from the log, and a verifier refuses this boot, which is the safe side.)
	thaw
	reboot_after
	run "$KEYSTRAP" measure --phase enter-initrd
	[ "$status" -eq 0 ]
	[ "$(jq --seq -r .content.string "$KEYSTRAP_MEASURE_LOG")" = keystrap:enter-initrd ]
}

@test "stalled at PCR_Event: lock exits 1 within the deadline; the extend lands when the TPM answers again" {
	stall_at 13c
	timed "$KEYSTRAP" lock
	[ "$status" -eq 1 ]
	within_ms 1000
	[ "$output" = "keystrap: cannot extend PCR 15: $(silent 1)" ]

	# The command was sent: once the TPM runs again, so does the extend. A lock that timed
	# out is not a lock that never happens (and keystrap-lock.service has failed loudly).
	thaw
	reboot_after
	unlock_must_fail "$IMG"
	[[ "$output" == *"PCR mismatch (sha256): PCR 15 is "* ]]

	# The twin, after a reboot: unlock works until a lock that is answered.
	swtpm_reboot
	run "$KEYSTRAP" unlock --device "$IMG" --dry-run
	[ "$status" -eq 0 ]
	run "$KEYSTRAP" lock
	[ "$status" -eq 0 ]
	unlock_must_fail "$IMG"
	[[ "$output" == *"PCR mismatch (sha256): PCR 15 is "* ]]
}

@test "a stalled unlock does not lock: PCR 15 keeps its value" {
	pcr15=$(pcr_value sha256 15)
	stall_at 15e
	attach_name=ks-deadline-$$
	timed "$KEYSTRAP" unlock --device "$IMG" --name "$attach_name"
	[ "$status" -eq 1 ]
	within_ms 1000
	[[ "$output" != *"PCR 15 extended"* ]]
	thaw
	[ "$(pcr_value sha256 15)" = "$pcr15" ]
}

@test "stalled at Create: enroll exits 1 within the deadline and adds neither keyslot nor token" {
	before=$(header_sum "$IMG")
	stall_at 153
	KEYSTRAP_TPM_TIMEOUT=0.3 timed "$KEYSTRAP" enroll --device "$IMG" --unlock-key-file "$KEY"
	[ "$status" -eq 1 ]
	within_ms 3000
	[ "$output" = "keystrap: cannot seal the disk key: the TPM did not answer a key-generating command within 3 s (TCTI '$KEYSTRAP_TCTI')" ]
	[ "$(header_sum "$IMG")" = "$before" ]
	[ "$(keyslots "$IMG")" = "0 1" ]

	thaw
	tpm2_flushcontext -t
	KEYSTRAP_TPM_TIMEOUT=0.3 run "$KEYSTRAP" enroll --device "$IMG" --unlock-key-file "$KEY"
	[ "$status" -eq 0 ]
	[ "$(keyslots "$IMG")" = "0 1 2" ]
	nothing_loaded
}

@test "stalled reading the EK certificate: attest exits 1 within the deadline before any request" {
	stall_at 14e
	# Never reached, so never read as a certificate.
	echo unused >"$BATS_TEST_TMPDIR/ca.pem"
	timed "$KEYSTRAP" attest --server https://127.0.0.1:1 --ca "$BATS_TEST_TMPDIR/ca.pem" --retries 0
	[ "$status" -eq 1 ]
	within_ms 1000
	[ "$output" = "keystrap: attestation failed reading the EK certificate: $(silent 1)" ]
}

@test "KEYSTRAP_TPM_TIMEOUT: seconds, up to three decimals, 0.1 to 600; anything else is one line, exit 1" {
	for bad in abc 0 0.05 600.001 601 1. .5 -1 1e3 1.2345 " 1" "1 s"; do
		KEYSTRAP_TPM_TIMEOUT=$bad run "$KEYSTRAP" lock
		[ "$status" -eq 1 ]
		[ "$output" = "keystrap: KEYSTRAP_TPM_TIMEOUT='$bad' is not a number of seconds (0.1 to 600)" ]
	done
	reboot_after
	for good in 600 2.5 1.000 ""; do
		KEYSTRAP_TPM_TIMEOUT=$good run "$KEYSTRAP" lock
		[ "$status" -eq 0 ]
	done
	# 0.1 s is accepted; on a loaded machine (ASan, other builds) a TPM command may take longer
	# than that, which is the deadline working, not the value refused.
	KEYSTRAP_TPM_TIMEOUT=0.1 run "$KEYSTRAP" lock
	[ "$status" -eq 0 ] || [[ "$status" -eq 1 && "$output" == "keystrap: "*"$(silent 0.1)" ]]
}

@test "object slots full: unlock says so and what to do; after tpm2_flushcontext -t it unlocks" {
	for i in 1 2 3; do tpm2_createprimary -Q -C o -c "$BATS_TEST_TMPDIR/p$i.ctx"; done
	unlock_must_fail "$IMG"
	[ "$output" = "keystrap: $IMG token 0: the TPM has no free object or session slots: without a resource manager, what a killed program loaded stays loaded; flush it with 'tpm2_flushcontext -t', '-l' and '-s' (or reboot), or use the TCTI device:/dev/tpmrm0" ]
	[ "$(tpm2_getcap handles-transient | wc -l)" -eq 3 ]

	tpm2_flushcontext -t
	run "$KEYSTRAP" unlock --device "$IMG" --dry-run
	[ "$status" -eq 0 ]
	nothing_loaded
}

@test "session slots full (64 saved sessions): the same reason, not a connection failure; after -s it unlocks" {
	for i in $(seq 64); do tpm2_startauthsession -S "$BATS_TEST_TMPDIR/s$i.ctx"; done
	unlock_must_fail "$IMG"
	[[ "$output" == "keystrap: $IMG token 0: the TPM has no free object or session slots: "*"'tpm2_flushcontext -t', '-l' and '-s'"* ]]
	nothing_loaded

	tpm2_flushcontext -s
	run "$KEYSTRAP" unlock --device "$IMG" --dry-run
	[ "$status" -eq 0 ]
}

@test "an unlock SIGKILLed mid-run leaves its objects; the next run names the cause and the fix, and after the flush unlocks" {
	stall_at 15e
	"$KEYSTRAP" unlock --device "$IMG" --dry-run 2>/dev/null &
	pid=$!
	for _ in $(seq 100); do grep -qx 15e "$CCLOG" && break; sleep 0.05; done
	kill -9 "$pid"
	wait "$pid" || true
	thaw
	# The primary and the sealed object, loaded when it died; nobody flushes them.
	[ "$(tpm2_getcap handles-transient | wc -l)" -eq 2 ]

	unlock_must_fail "$IMG"
	[[ "$output" == "keystrap: $IMG token 0: the TPM has no free object or session slots: "*"'tpm2_flushcontext -t'"* ]]
	# What this run loaded itself it flushed: the two it found are all that is there.
	[ "$(tpm2_getcap handles-transient | wc -l)" -eq 2 ]

	tpm2_flushcontext -t
	run "$KEYSTRAP" unlock --device "$IMG" --dry-run
	[ "$status" -eq 0 ]
	nothing_loaded
}

@test "nothing keystrap loads stays loaded: enroll, enroll --srk, unlock, a moved PCR, a missing SRK, measure, lock" {
	"$KEYSTRAP" enroll --device "$IMG" --unlock-key-file "$KEY" >/dev/null
	nothing_loaded
	"$KEYSTRAP" enroll --device "$IMG" --unlock-key-file "$KEY" --srk >/dev/null
	nothing_loaded
	run "$KEYSTRAP" unlock --device "$IMG" --dry-run
	[ "$status" -eq 0 ]
	nothing_loaded
	"$KEYSTRAP" measure --phase enter-initrd >/dev/null
	nothing_loaded
	pcr_extend 7
	unlock_must_fail "$IMG"
	nothing_loaded
	tpm2_evictcontrol -Q -C o -c 0x81000001
	unlock_must_fail "$IMG"
	nothing_loaded
	run "$KEYSTRAP" lock
	[ "$status" -eq 0 ]
	nothing_loaded
}
