#!/usr/bin/env bats
# Reseal on an approved boot (node/reseal.c, issue 13 item 2) against a real swtpm and real
# LUKS2 images, in an attested boot's order (tests/lib/reseal-run.c: the strict attempt reads
# the PCRs, attest measures "attested" into PCR 12, then the reseal), checked with cryptsetup,
# systemd's own token plugin and keystrap unlock as oracles; then killed or failed at every
# header write and at random moments.

load ../lib/swtpm

ZERO32=0000000000000000000000000000000000000000000000000000000000000000
RESEAL=$BATS_TEST_DIRNAME/../../build/asan/reseal-run

setup_file() {
	SWTPM_PCR_BANKS=sha1,sha256 swtpm_start
}

teardown_file() {
	swtpm_stop
}

setup() {
	luks_setup
}

teardown() {
	reboot_if_asked
}

token_field() {
	cryptsetup token export --token-id "${2:-0}" "$IMG" | jq -c "$1"
}

# update: what a kernel or firmware update does to this boot: PCR 7 measures something new.
update() {
	pcr_extend 7
}

# next_boot [--updated]: the TPM reset as at the next boot, with the update measured again.
next_boot() {
	swtpm_reboot
	[ "${1:-}" != --updated ] || update
}

@test "reseal after PCR 7 moved: one strict token, sealed to the new value, whose keyslot opens; the stale token and keyslot are gone" {
	run "$KEYSTRAP" enroll --device "$IMG" --unlock-key-file "$KEY"
	[ "$status" -eq 0 ]
	update
	unlock_must_fail "$IMG"
	[[ "$output" == *"token 0: PCR mismatch (sha256): PCR 7 is "* ]]
	run "$RESEAL" "$IMG" "$KEY" 0
	[ "$status" -eq 0 ]
	[ "$output" = "$IMG: resealed token 0 to PCRs 7,15 (sha256) of this boot as token 1, keyslot 2; the next boot unlocks offline" ]
	[ "$(tpm_tokens "$IMG")" = "1:2" ]
	[ "$(keyslots "$IMG")" = "0 2" ]
	no_orphans "$IMG"
	[ "$(token_field '."keystrap-pcr-values"."7"' 1)" = "\"$(pcr_value sha256 7)\"" ]
	[ "$(token_field '."keystrap-pcr-values"."15"' 1)" = "\"$ZERO32\"" ]
	run "$KEYSTRAP" unlock --device "$IMG" --dry-run
	[ "$status" -eq 0 ]
	[ "$output" = "$IMG: token 1 unseals a key that opens keyslot 2 (dry run)" ]
	sd_token_open "$IMG" # systemd-cryptsetup opens the resealed token too
	cryptsetup open --test-passphrase --key-slot 0 --key-file "$KEY" "$IMG"
	# The next boot, updated in the same way, unlocks offline.
	next_boot --updated
	run "$KEYSTRAP" unlock --device "$IMG" --dry-run
	[ "$status" -eq 0 ]
	[ "$output" = "$IMG: token 1 unseals a key that opens keyslot 2 (dry run)" ]
}

@test "reseal twin: once PCR 7 moves again, or goes back to the old value, the resealed token refuses" {
	"$KEYSTRAP" enroll --device "$IMG" --unlock-key-file "$KEY" >/dev/null
	update
	run "$RESEAL" "$IMG" "$KEY" 0
	[ "$status" -eq 0 ]
	update # a second update, not yet approved
	unlock_must_fail "$IMG"
	[[ "$output" == *"token 1: PCR mismatch (sha256): PCR 7 is "* ]]
	[[ "$output" != *"token 0"* ]]
	next_boot # the old boot chain: the stale token, which it opened, is gone
	unlock_must_fail "$IMG"
	[[ "$output" == *"token 1: PCR mismatch (sha256): PCR 7 is "* ]]
}

@test "PCR 12 is sealed at the value the strict attempt saw, not after attest measured into it" {
	run "$KEYSTRAP" enroll --device "$IMG" --unlock-key-file "$KEY" --pcrs 7,12,15:0
	[ "$status" -eq 0 ]
	update
	pcr12=$(pcr_value sha256 12)
	run "$RESEAL" "$IMG" "$KEY" 0
	[ "$status" -eq 0 ]
	[[ "$output" == *"resealed token 0 to PCRs 7,12,15 (sha256) of this boot as token 1"* ]]
	[ "$(pcr_value sha256 12)" != "$pcr12" ] # attest measured
	[ "$(token_field '."keystrap-pcr-values"."12"' 1)" = "\"$pcr12\"" ]
	next_boot --updated
	run "$KEYSTRAP" unlock --device "$IMG" --dry-run
	[ "$status" -eq 0 ]
	[ "$output" = "$IMG: token 1 unseals a key that opens keyslot 2 (dry run)" ]
}

@test "PCR 12 twin: sealed to the PCRs as they are after attest, the next boot's strict attempt refuses, naming PCR 12" {
	"$KEYSTRAP" enroll --device "$IMG" --unlock-key-file "$KEY" --pcrs 7,12,15:0 >/dev/null
	update
	run "$RESEAL" "$IMG" "$KEY" 0 --no-snapshot
	[ "$status" -eq 0 ]
	next_boot --updated
	unlock_must_fail "$IMG"
	[[ "$output" == *"token 1: PCR mismatch (sha256): PCR 12 is $ZERO32 but policy wants "* ]]
	[[ "$output" != *"PCR 7 "* ]]
}

@test "PCR 15 stays bound at zero even when it moved before the reseal" {
	"$KEYSTRAP" enroll --device "$IMG" --unlock-key-file "$KEY" >/dev/null
	update
	pcr_extend 15
	run "$RESEAL" "$IMG" "$KEY" 0
	[ "$status" -eq 0 ]
	[ "$(token_field '."keystrap-pcr-values"."15"' 1)" = "\"$ZERO32\"" ]
	unlock_must_fail "$IMG" # PCR 15 is not at zero now
	[[ "$output" == *"token 1: PCR mismatch (sha256): PCR 15 is "* ]]
	next_boot --updated
	run "$KEYSTRAP" unlock --device "$IMG" --dry-run
	[ "$status" -eq 0 ]
}

@test "a systemd-cryptenroll token and an SRK token are resealed with their bank and parent; another token and keyslot are untouched" {
	pcr_extend 7 # systemd-cryptenroll warns about an all-zero PCR 7
	systemd-cryptenroll --tpm2-device="$KEYSTRAP_TCTI" --tpm2-pcrs=7 --unlock-key-file="$KEY" "$IMG" 2>/dev/null
	sd_flush
	"$KEYSTRAP" enroll --device "$IMG" --unlock-key-file "$KEY" --pcrs 7 --pcr-bank sha1 --srk >/dev/null
	systemd-cryptenroll --recovery-key --unlock-key-file="$KEY" "$IMG" >sd-recovery 2>/dev/null
	[ "$(tpm_tokens "$IMG")" = "0:1 1:2" ]
	update
	run "$RESEAL" "$IMG" "$KEY" 0,1
	[ "$status" -eq 0 ]
	[ "${lines[0]}" = "$IMG: resealed token 0 to PCRs 7 (sha256) of this boot as token 3, keyslot 4; the next boot unlocks offline" ]
	[ "${lines[1]}" = "$IMG: resealed token 1 to PCRs 7 (sha1) of this boot as token 0, keyslot 1; the next boot unlocks offline" ]
	[ "$(tpm_tokens "$IMG" | tr ' ' '\n' | sort | xargs)" = "0:1 3:4" ]
	[ "$(token_field '[."tpm2-pcr-bank", (."tpm2_srk" != null)]' 0)" = '["sha1",true]' ]
	[ "$(token_field '[."tpm2-pcr-bank", (."tpm2_srk" != null)]' 3)" = '["sha256",false]' ]
	[ "$(cryptsetup token export --token-id 2 "$IMG" | jq -c .)" = '{"type":"systemd-recovery","keyslots":["3"]}' ]
	tr -d '\n' <sd-recovery | cryptsetup open --test-passphrase --key-slot 3 --key-file - "$IMG"
	token_edit "$IMG" 0 '.keyslots = []' # hide the SRK token: systemd 252 opens token 3, sealed as it seals
	sd_token_open "$IMG"
}

@test "refused before anything is written: a token whose keyslot another token shares, a PIN token, a signed-policy token" {
	"$KEYSTRAP" enroll --device "$IMG" --unlock-key-file "$KEY" >/dev/null
	"$KEYSTRAP" enroll --device "$IMG" --unlock-key-file "$KEY" >/dev/null
	"$KEYSTRAP" enroll --device "$IMG" --unlock-key-file "$KEY" >/dev/null
	printf '{"type":"systemd-recovery","keyslots":["1"]}' | cryptsetup token import --token-id 3 "$IMG"
	token_edit "$IMG" 1 '."tpm2-pin" = true'
	token_edit "$IMG" 2 '.tpm2_pubkey = "LS0tLS1CRUdJTg==" | .tpm2_pubkey_pcrs = [11]'
	update
	before=$(header_sum "$IMG")
	run "$RESEAL" "$IMG" "$KEY" 0,1,2
	[ "$status" -eq 0 ]
	[ "${lines[0]}" = "reseal-run: cannot replace token 0 of '$IMG': its keyslot 1 is also bound to token 3; nothing was added" ]
	[ "${lines[1]}" = "reseal-run: $IMG token 1 is not resealed: it needs a PIN" ]
	[ "${lines[2]}" = "reseal-run: $IMG token 2 is not resealed: it is a signed-policy token (sign the new PCR values instead)" ]
	[ "${#lines[@]}" -eq 3 ]
	[ "$(header_sum "$IMG")" = "$before" ]
	# Twin: without the second binding token 0 is resealed.
	cryptsetup token remove --token-id 3 "$IMG"
	run "$RESEAL" "$IMG" "$KEY" 0
	[ "$status" -eq 0 ]
	[[ "$output" == *"resealed token 0 to PCRs 7,15 (sha256) of this boot as token 3, keyslot 4"* ]]
}

@test "a passphrase that opens no keyslot: one line, nothing written, the stale token stays" {
	"$KEYSTRAP" enroll --device "$IMG" --unlock-key-file "$KEY" >/dev/null
	update
	head -c 32 /dev/urandom | base64 >wrong
	before=$(header_sum "$IMG")
	run "$RESEAL" "$IMG" wrong 0
	[ "$status" -eq 1 ]
	[ "$output" = "reseal-run: $IMG token 0 was not resealed and stays: the existing attested token's passphrase does not open any keyslot of '$IMG'" ]
	[ "$(header_sum "$IMG")" = "$before" ]
	[ "$(tpm_tokens "$IMG")" = "0:1" ]
}

# stale_tokens IMAGE: the keystrap tokens bound to a keyslot whose PCR 7 is not PCR 7 now, as "0,2".
stale_tokens() {
	local now
	now=$(pcr_value sha256 7)
	cryptsetup luksDump --dump-json-metadata "$1" | jq -r --arg now "$now" \
		'[.tokens | to_entries[] | select(.value.type == "systemd-tpm2" and (.value.keyslots | length) == 1 and
			.value."keystrap-pcr-values"."7" != $now) | .key] | join(",")'
}

# cut_invariant IMAGE OLD.json: what a reseal cut short may leave. Every keyslot but 0 is bound
# to a token or named by a pending record, and either the new token unseals under this boot's
# PCRs or the stale token is there as it was, bound to its keyslot. Sets $kept (old or new).
cut_invariant() {
	local img=$1 old=$2
	replace_invariant "$img" || return 1
	run "$KEYSTRAP" unlock --device "$img" --dry-run
	if [[ "$output" == *": token "*" unseals a key that opens keyslot "* ]]; then
		kept=new
	elif [ "$(cryptsetup token export --token-id 0 "$img" | jq -cS .)" = "$(jq -cS . "$old")" ] &&
		[[ " $(keyslots "$img") " == *" $(jq -r '.keyslots[0]' "$old") "* ]]; then
		kept=old
	else
		echo "neither the new token unseals nor the stale one is intact: $output"
		return 1
	fi
}

# next_run IMAGE: the next boot. Its unlock repairs the header first (counted in $finished
# when that finished a cut reseal) and tries the strict tokens; when none unseals, the attested
# path opens the volume and reseals the stale ones. Then exactly one strict token, bound to its
# keyslot, unseals, and nothing is orphaned.
next_run() {
	run "$RESEAL" "$1" "$KEY" ""
	[ "$status" -eq 0 ] || { echo "the next run's repair: $output"; return 1; }
	[[ "$output" != *"which a reseal cut short replaced"* ]] || finished=$((finished + 1))
	run "$KEYSTRAP" unlock --device "$1" --dry-run
	if [ "$status" -ne 0 ]; then
		run "$RESEAL" "$1" "$KEY" "$(stale_tokens "$1")"
		[ "$status" -eq 0 ] || { echo "the next run's reseal: $output"; return 1; }
		run "$KEYSTRAP" unlock --device "$1" --dry-run
		[ "$status" -eq 0 ] || { echo "no token unseals after the next run: $output"; return 1; }
	fi
	no_orphans "$1" || return 1
	[ "$(tpm_tokens "$1" | wc -w)" -eq 1 ] || { echo "tokens left: $(tpm_tokens "$1")"; return 1; }
}

@test "reseal failed or killed at every write and fsync of the image: the stale token or the new one, never a keyslot without its token" {
	command -v strace >/dev/null || skip "strace is not installed"
	"$KEYSTRAP" enroll --device "$IMG" --unlock-key-file "$KEY" >/dev/null
	cryptsetup token export --token-id 0 "$IMG" >old.json
	update
	cp "$IMG" stale.img
	mapfile -t points < <(fault_points "$IMG" "$RESEAL" "$IMG" "$KEY" 0)
	# Three commits for the new token, two to remove the stale one.
	[ "$(printf '%s\n' "${points[@]}" | grep -c '^fsync ')" -ge 5 ]
	runs=0 failed=0 old=0 new=0 i=0 finished=0
	for p in "${points[@]}"; do
		read -r sc n <<<"$p"
		i=$((i + 1))
		for how in $(fault_hows "$i"); do
			cp stale.img "$IMG"
			runs=$((runs + 1))
			rc=0
			inject_fault "$IMG" "$sc" "$n" "$how" "$RESEAL" "$IMG" "$KEY" 0 >out.txt 2>&1 || rc=$?
			case $rc/$how in
			0/*) ;;
			1/error=EIO) grep -qE ": Input/output error; (nothing was added|'keystrap wipe --device .* --token 0' removes it)$" out.txt ;;
			137/signal=SIGKILL) ;;
			*) echo "$sc #$n $how: exit $rc: $(cat out.txt)"; return 1 ;;
			esac
			[ "$rc" -eq 0 ] || failed=$((failed + 1))
			cut_invariant "$IMG" old.json || { echo "after $sc #$n $how: $(cat out.txt)"; return 1; }
			[ "$kept" = old ] && old=$((old + 1))
			[ "$kept" = new ] && new=$((new + 1))
			cryptsetup open --test-passphrase --key-slot 0 --key-file "$KEY" "$IMG"
			next_run "$IMG" || { echo "after $sc #$n $how"; return 1; }
		done
	done
	echo "# $runs runs, $failed failed; after them the stale token was kept $old times, the new one unsealed $new times; the next run finished $finished reseals" >&3
	# Twin: the faults landed on both sides of the commit that adds the new token, and between
	# it and the stale token's removal.
	[ "$failed" -gt "$((runs / 2))" ]
	[ "$old" -gt 0 ]
	[ "$new" -gt 0 ]
	[ "$finished" -gt 0 ]
}

@test "reseal SIGKILLed after a random delay, 30 times: the stale token or the new one, and the next run leaves one" {
	"$KEYSTRAP" enroll --device "$IMG" --unlock-key-file "$KEY" >/dev/null
	cryptsetup token export --token-id 0 "$IMG" >old.json
	update
	cp "$IMG" stale.img
	start=$(date +%s%N)
	"$RESEAL" "$IMG" "$KEY" 0 >/dev/null
	ms=$((($(date +%s%N) - start) / 1000000))
	killed=0 old=0 new=0 finished=0
	for _ in $(seq 30); do
		cp stale.img "$IMG"
		"$RESEAL" "$IMG" "$KEY" 0 >out.txt 2>&1 &
		pid=$!
		sleep "$(awk -v r="$RANDOM" -v ms="$ms" 'BEGIN { printf "%.3f", (r % (ms + 1)) / 1000 }')"
		kill -9 "$pid" 2>/dev/null || true
		rc=0
		wait "$pid" || rc=$?
		# Without a resource manager what a killed run loaded stays loaded (keystrap flushes
		# only what it loads itself).
		tpm2_flushcontext -t >/dev/null 2>&1; tpm2_flushcontext -l >/dev/null 2>&1; tpm2_flushcontext -s >/dev/null 2>&1
		[ "$rc" -eq 137 ] && killed=$((killed + 1))
		[ "$rc" -eq 0 ] || [ "$rc" -eq 137 ] || { echo "exit $rc: $(cat out.txt)"; return 1; }
		cut_invariant "$IMG" old.json || return 1
		[ "$kept" = old ] && old=$((old + 1))
		[ "$kept" = new ] && new=$((new + 1))
		next_run "$IMG"
	done
	echo "# a reseal takes $ms ms; 30 runs, $killed killed; after them the stale token was kept $old times, the new one unsealed $new times; the next run finished $finished reseals" >&3
	[ "$killed" -gt 0 ]
}
