#!/usr/bin/env bats
# keystrap wipe against a real swtpm and real LUKS2 images: a token goes with its keyslots,
# keyslots first, and never the last keyslot a person can open the volume with (one bound to
# no TPM token) nor the last keyslot at all; each refusal names the device and the token and
# writes nothing. cryptsetup and systemd-cryptenroll make the other tools' tokens.

load ../lib/swtpm

setup_file() {
	swtpm_start
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

enroll() {
	"$KEYSTRAP" enroll --device "$IMG" --unlock-key-file "$KEY" "$@" >/dev/null
}

# wipe_must_fail STATUS [ARGS...]: keystrap wipe exits STATUS and leaves the header as it was.
wipe_must_fail() {
	local want=$1 before
	shift
	before=$(header_sum "$IMG")
	run "$KEYSTRAP" wipe --device "$IMG" "$@"
	[ "$status" -eq "$want" ] || { echo "wipe exited $status, not $want: $output"; return 1; }
	[ "$(header_sum "$IMG")" = "$before" ] || { echo "wipe changed the header"; return 1; }
}

# recovery_key: systemd-cryptenroll's own recovery key for $IMG, into the file sd-recovery
# (without its newline); the token and keyslot are systemd's.
recovery_key() {
	systemd-cryptenroll --recovery-key --unlock-key-file="$KEY" "$IMG" 2>/dev/null | tr -d '\n' >sd-recovery
}

@test "wipe removes a TPM token with its keyslot; the other token still unseals" {
	enroll
	enroll
	[ "$(keyslots "$IMG")" = "0 1 2" ]
	run "$KEYSTRAP" wipe --device "$IMG" --token 0
	[ "$status" -eq 0 ]
	[ "$output" = "removed token 0 (systemd-tpm2) of $IMG with keyslot 1" ]
	[ "$(tokens "$IMG")" = "1" ]
	[ "$(keyslots "$IMG")" = "0 2" ]
	run "$KEYSTRAP" unlock --device "$IMG" --dry-run
	[ "$status" -eq 0 ]
	[ "$output" = "$IMG: token 1 unseals a key that opens keyslot 2 (dry run)" ]
	cryptsetup open --test-passphrase --key-slot 0 --key-file "$KEY" "$IMG"
	# Twin: it is gone, so a second wipe of it finds nothing and writes nothing.
	wipe_must_fail 1 --token 0
	[ "$output" = "keystrap: '$IMG' has no token 0" ]
	run "$KEYSTRAP" wipe --device "$IMG" --token 1
	[ "$status" -eq 0 ]
	unlock_must_fail "$IMG"
	[ "$output" = "keystrap: '$IMG' has no systemd-tpm2 token" ]
}

@test "a wiped token's key opens nothing: its keyslot went with it" {
	pcr_extend 7
	enroll --pcrs 7
	cryptsetup token export --token-id 0 "$IMG" >old.json
	enroll --pcrs 7
	run "$KEYSTRAP" wipe --device "$IMG" --token 0
	[ "$status" -eq 0 ]
	# The old token, bound again to the keyslot that is left: it unseals, the key opens nothing.
	cryptsetup token remove --token-id 1 "$IMG"
	jq -c '.keyslots = ["2"]' old.json | cryptsetup --disable-external-tokens token import --token-id 0 "$IMG"
	unlock_must_fail "$IMG"
	[ "$output" = "keystrap: $IMG token 0: the unsealed key does not open keyslot 2" ]
	# ... and once PCR 7 moves, it does not even unseal.
	pcr_extend 7
	unlock_must_fail "$IMG"
	[[ "$output" == *"token 0: PCR mismatch (sha256): PCR 7 is "* ]]
}

@test "systemd-cryptenroll's systemd-tpm2 token is a TPM token too: wiped without --force" {
	pcr_extend 7 # systemd-cryptenroll warns about an all-zero PCR 7
	systemd-cryptenroll --tpm2-device="$KEYSTRAP_TCTI" --tpm2-pcrs=7 --unlock-key-file="$KEY" "$IMG" 2>/dev/null
	sd_flush
	run "$KEYSTRAP" wipe --device "$IMG" --token 0
	[ "$status" -eq 0 ]
	[ "$output" = "removed token 0 (systemd-tpm2) of $IMG with keyslot 1" ]
	[ "$(keyslots "$IMG")" = "0" ]
	[ "$(tokens "$IMG")" = "" ]
}

@test "a token that is not a TPM one (systemd-recovery) goes only with --force, and its key stops working" {
	recovery_key
	wipe_must_fail 1 --token 0
	[ "$output" = "keystrap: token 0 of '$IMG' is a 'systemd-recovery' token, not a TPM one; --force removes it" ]
	cryptsetup open --test-passphrase --key-slot 1 --key-file sd-recovery "$IMG"
	run "$KEYSTRAP" wipe --device "$IMG" --token 0 --force
	[ "$status" -eq 0 ]
	[ "$output" = "removed token 0 (systemd-recovery) of $IMG with keyslot 1" ]
	[ "$(keyslots "$IMG")" = "0" ]
	run cryptsetup open --test-passphrase --key-file sd-recovery "$IMG"
	[ "$status" -ne 0 ]
}

@test "never the last keyslot bound to no TPM token, even with --force; with another one left, it goes" {
	enroll
	recovery_key
	# The key file's keyslot 0 goes: the recovery key is now the only way in for a person.
	cryptsetup luksKillSlot --batch-mode "$IMG" 0
	[ "$(keyslots "$IMG")" = "1 2" ]
	wipe_must_fail 1 --token 1 --force
	[ "$output" = "keystrap: refusing to remove token 1 of '$IMG': its keyslot 2 is the last one bound to no TPM token, the last a person can open the volume with" ]
	cryptsetup open --test-passphrase --key-slot 2 --key-file sd-recovery "$IMG"
	# The TPM token may go: the person's keyslot stays.
	run "$KEYSTRAP" wipe --device "$IMG" --token 0
	[ "$status" -eq 0 ]
	[ "$(keyslots "$IMG")" = "2" ]
	# Twin: with a passphrase beside it, the recovery keyslot is not the last and may go.
	printf 'correct horse battery staple' >human
	cryptsetup luksAddKey --batch-mode --pbkdf pbkdf2 --pbkdf-force-iterations 1000 --key-file sd-recovery "$IMG" human
	run "$KEYSTRAP" wipe --device "$IMG" --token 1 --force
	[ "$status" -eq 0 ]
	[ "$output" = "removed token 1 (systemd-recovery) of $IMG with keyslot 2" ]
	cryptsetup open --test-passphrase --key-file human "$IMG"
}

@test "never the last keyslot, even a TPM one; with two TPM keyslots and no person's, one may go" {
	enroll
	cryptsetup luksKillSlot --batch-mode "$IMG" 0
	[ "$(keyslots "$IMG")" = "1" ]
	wipe_must_fail 1 --token 0
	[ "$output" = "keystrap: refusing to remove token 0 of '$IMG': its keyslot 1 is the last keyslot" ]
	run "$KEYSTRAP" unlock --device "$IMG" --dry-run
	[ "$status" -eq 0 ]
	# Twin: no person's keyslot was there to begin with, so taking one of two TPM keyslots
	# takes nothing a person had.
	luks_setup
	enroll
	enroll
	cryptsetup luksKillSlot --batch-mode "$IMG" 0
	run "$KEYSTRAP" wipe --device "$IMG" --token 0
	[ "$status" -eq 0 ]
	[ "$(keyslots "$IMG")" = "2" ]
	run "$KEYSTRAP" unlock --device "$IMG" --dry-run
	[ "$status" -eq 0 ]
}

@test "never a keyslot another token is bound to too" {
	enroll
	printf '{"type":"systemd-recovery","keyslots":["1"]}' | cryptsetup token import --token-id 1 "$IMG"
	wipe_must_fail 1 --token 0
	[ "$output" = "keystrap: refusing to remove token 0 of '$IMG': its keyslot 1 is also bound to token 1" ]
	wipe_must_fail 1 --token 1 --force
	[ "$output" = "keystrap: refusing to remove token 1 of '$IMG': its keyslot 1 is also bound to token 0" ]
	# Twin: unbound from the second token, the keyslot goes with the first.
	cryptsetup token remove --token-id 1 "$IMG"
	run "$KEYSTRAP" wipe --device "$IMG" --token 0
	[ "$status" -eq 0 ]
	[ "$(keyslots "$IMG")" = "0" ]
}

@test "a token bound to no keyslot goes alone; keystrap's own such token is removed as a leftover" {
	pcr_extend 7
	systemd-cryptenroll --tpm2-device="$KEYSTRAP_TCTI" --tpm2-pcrs=7 --unlock-key-file="$KEY" "$IMG" 2>/dev/null
	sd_flush
	enroll
	cryptsetup luksKillSlot --batch-mode "$IMG" 1
	cryptsetup luksKillSlot --batch-mode "$IMG" 2
	[ "$(cryptsetup luksDump --dump-json-metadata "$IMG" | jq -c '[.tokens[].keyslots]')" = '[[],[]]' ]
	run "$KEYSTRAP" wipe --device "$IMG" --token 0
	[ "$status" -eq 0 ]
	[ "${lines[0]}" = "keystrap: removed keystrap token 1 of '$IMG', bound to no keyslot (its keyslot was removed)" ]
	[ "${lines[1]}" = "removed token 0 (systemd-tpm2) of $IMG, bound to no keyslot" ]
	[ "$(tokens "$IMG")" = "" ]
	[ "$(keyslots "$IMG")" = "0" ]
	# Twin: asked for the keystrap token itself, the leftover removal is the answer.
	enroll
	cryptsetup luksKillSlot --batch-mode "$IMG" 1
	run "$KEYSTRAP" wipe --device "$IMG" --token 0
	[ "$status" -eq 0 ]
	[ "$output" = "keystrap: removed keystrap token 0 of '$IMG', bound to no keyslot (its keyslot was removed)" ]
	[ "$(tokens "$IMG")" = "" ]
}

@test "usage errors exit 2 naming what was wrong; a missing device or a file without LUKS exits 1" {
	for bad in 32 -1 x 1x ""; do
		run "$KEYSTRAP" wipe --device "$IMG" --token "$bad"
		[ "$status" -eq 2 ]
		[ "${lines[0]}" = "keystrap: --token '$bad' is not a token number 0-31" ]
	done
	run "$KEYSTRAP" wipe --device "$IMG"
	[ "$status" -eq 2 ]
	[ "${lines[0]}" = "keystrap: --token is required" ]
	run "$KEYSTRAP" wipe --token 0
	[ "$status" -eq 2 ]
	[ "${lines[0]}" = "keystrap: --device is required" ]
	run "$KEYSTRAP" wipe --device "$IMG" --token 0 extra
	[ "$status" -eq 2 ]
	[ "${lines[0]}" = "keystrap: unexpected argument 'extra'" ]
	run "$KEYSTRAP" wipe --device nowhere.img --token 0
	[ "$status" -eq 1 ]
	[ "$output" = "keystrap: no such device 'nowhere.img'" ]
	truncate -s 1M plain.img
	run "$KEYSTRAP" wipe --device plain.img --token 0
	[ "$status" -eq 1 ]
	[ "$output" = "keystrap: 'plain.img' is not a LUKS2 device: no LUKS header" ]
}

@test "wipe failed or killed at every write and fsync: never a keyslot without its token; run again, it finishes" {
	command -v strace >/dev/null || skip "strace is not installed"
	pcr_extend 7
	# systemd-cryptenroll's token: no leftover removal finishes its wipe, wipe itself must.
	systemd-cryptenroll --tpm2-device="$KEYSTRAP_TCTI" --tpm2-pcrs=7 --unlock-key-file="$KEY" "$IMG" 2>/dev/null
	sd_flush
	enroll
	cp "$IMG" clean.img
	for tok in 0 1; do
		cp clean.img "$IMG"
		mapfile -t points < <(fault_points "$IMG" "$KEYSTRAP" wipe --device "$IMG" --token "$tok")
		[ "$(printf '%s\n' "${points[@]}" | grep -c '^fsync ')" -ge 2 ] # the keyslot, then the token
		runs=0 failed=0 unbound=0
		i=0
		for p in "${points[@]}"; do
			read -r sc n <<<"$p"
			i=$((i + 1))
			for how in $(fault_hows "$i"); do
				cp clean.img "$IMG"
				runs=$((runs + 1))
				rc=0
				inject_fault "$IMG" "$sc" "$n" "$how" \
					"$KEYSTRAP" wipe --device "$IMG" --token "$tok" >out.txt 2>&1 || rc=$?
				case $rc/$how in
				0/*) ;;
				1/error=EIO) grep -qE "^keystrap: cannot remove token $tok of '$IMG': Input/output error; (nothing was removed|its keyslots are gone and the token, bound to none, is left: keystrap wipe removes it when run again|the token is gone all the same)$" out.txt ;;
				137/signal=SIGKILL) ;;
				*) echo "token $tok, $sc #$n $how: exit $rc: $(cat out.txt)"; return 1 ;;
				esac
				[ "$rc" -eq 0 ] || failed=$((failed + 1))
				meta=$(cryptsetup luksDump --dump-json-metadata "$IMG")
				# Every keyslot but 0 is bound to a token.
				jq -e '[.tokens[].keyslots[]] as $b | all(.keyslots | keys[] | select(. != "0"); . as $k | $b | index($k))' \
					<<<"$meta" >/dev/null || { echo "token $tok, $sc #$n $how: a keyslot without its token: $(jq -c .tokens <<<"$meta")"; return 1; }
				jq -e ".tokens.\"$tok\" | . != null and .keyslots == []" <<<"$meta" >/dev/null && unbound=$((unbound + 1))
				cryptsetup open --test-passphrase --key-slot 0 --key-file "$KEY" "$IMG"
				run "$KEYSTRAP" wipe --device "$IMG" --token "$tok"
				# Done already (exit 1, no such token) or done now.
				[ "$status" -eq 0 ] || [ "$output" = "keystrap: '$IMG' has no token $tok" ] ||
					{ echo "token $tok, $sc #$n $how: the next run: $output"; return 1; }
				[ "$(tokens "$IMG")" = "$((1 - tok))" ]
				[ "$(keyslots "$IMG")" = "0 $((2 - tok))" ]
			done
		done
		echo "# token $tok: $runs runs, $failed failed, $unbound left the token bound to no keyslot" >&3
		[ "$failed" -gt "$((runs / 2))" ]
		[ "$unbound" -gt 0 ]
	done
}
