#!/usr/bin/env bats
# keystrap unlock and lock against a real swtpm (sha1 and sha256 banks active), each
# positive case with its negative twin: an extended PCR, the other bank, keystrap lock, a
# reboot. Every failing unlock must leave the LUKS header exactly as it was.

load ../lib/swtpm

LOCK_EVENT=keystrap:volumes-unlocked

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
	if [ -n "${LOOP:-}" ]; then losetup -d "$LOOP"; fi
	reboot_if_asked
}

enroll() {
	"$KEYSTRAP" enroll --device "$IMG" --unlock-key-file "$KEY" "$@" >/dev/null
}

# Attaches IMG to a loop device ($LOOP), or skips when this machine has none to give.
attach_loop() {
	LOOP=$(losetup -f --show "$IMG" 2>/dev/null) || skip "no loop device available here (losetup -f --show failed)"
}

@test "enroll then dry-run unlock opens the new keyslot, touching neither header nor PCRs" {
	run "$KEYSTRAP" enroll --device "$IMG" --unlock-key-file "$KEY"
	[ "$status" -eq 0 ]
	[[ "$output" == *"keyslot 1, token 0, PCRs 7,15 (sha256)"* ]]
	before=$(header_sum "$IMG")
	pcr15=$(pcr_value sha256 15)
	run "$KEYSTRAP" unlock --device "$IMG" --dry-run
	[ "$status" -eq 0 ]
	[ "$output" = "$IMG: token 0 unseals a key that opens keyslot 1 (dry run)" ]
	[ "$(header_sum "$IMG")" = "$before" ]
	[ "$(pcr_value sha256 15)" = "$pcr15" ]
}

@test "PCR 7 extended: exit 1 naming PCR 7 with both values, not PCR 15" {
	enroll
	pcr_extend 7
	unlock_must_fail "$IMG"
	[ "${#lines[@]}" -eq 1 ]
	now=$(pcr_value sha256 7)
	[ "$output" = "keystrap: $IMG token 0: PCR mismatch (sha256): PCR 7 is $now but policy wants 0000000000000000000000000000000000000000000000000000000000000000" ]
	[[ "$output" != *"PCR 15"* ]]
}

@test "PCRs 7 and 15 both moved: the message names both" {
	enroll
	pcr_extend 7
	pcr_extend 15
	unlock_must_fail "$IMG"
	[[ "$output" == *"PCR mismatch (sha256): PCR 7 is "*"; PCR 15 is "* ]]
}

@test "the bound bank decides: a sha1-bound token ignores the sha256 bank and fails on its own" {
	enroll --pcr-bank sha1 --pcrs 7
	pcr_extend 7 sha256
	run "$KEYSTRAP" unlock --device "$IMG" --dry-run
	[ "$status" -eq 0 ]
	pcr_extend 7 sha1
	unlock_must_fail "$IMG"
	now=$(pcr_value sha1 7)
	[ "$output" = "keystrap: $IMG token 0: PCR mismatch (sha1): PCR 7 is $now but policy wants 0000000000000000000000000000000000000000" ]
}

@test "... and the twin: a sha256-bound token ignores the sha1 bank" {
	enroll --pcrs 7
	pcr_extend 7 sha1
	run "$KEYSTRAP" unlock --device "$IMG" --dry-run
	[ "$status" -eq 0 ]
	pcr_extend 7 sha256
	unlock_must_fail "$IMG"
	[[ "$output" == *"PCR mismatch (sha256): PCR 7 is "* ]]
}

@test "lock extends PCR 15 in every active bank; unlock then fails naming PCR 15; after a reboot it unlocks" {
	enroll
	reboot_after
	sha1_before=$(pcr_value sha1 15)
	sha256_before=$(pcr_value sha256 15)
	run "$KEYSTRAP" lock
	[ "$status" -eq 0 ]
	[ "$output" = "PCR 15 extended: disk keys sealed to this boot can no longer be unsealed" ]
	# new = H(old || H(event)) in each bank's own hash.
	want1=$({ xxd -r -p <<<"$sha1_before"; printf %s "$LOCK_EVENT" | sha1sum | xxd -r -p; } | sha1sum | cut -d' ' -f1)
	want256=$({ xxd -r -p <<<"$sha256_before"; printf %s "$LOCK_EVENT" | sha256sum | xxd -r -p; } | sha256sum | cut -d' ' -f1)
	[ "$(pcr_value sha1 15)" = "$want1" ]
	[ "$(pcr_value sha256 15)" = "$want256" ]
	[ "$want1" != "$sha1_before" ] && [ "$want256" != "$sha256_before" ]

	unlock_must_fail "$IMG"
	[ "${#lines[@]}" -eq 1 ]
	[[ "$output" == *"token 0: PCR mismatch (sha256): PCR 15 is $want256 but policy wants 0000000000000000000000000000000000000000000000000000000000000000" ]]
	[[ "$output" != *"PCR 7 "* ]]

	swtpm_reboot
	[ "$(pcr_value sha256 15)" = "$(printf '%064d' 0)" ]
	run "$KEYSTRAP" unlock --device "$IMG" --dry-run
	[ "$status" -eq 0 ]
}

@test "a sha1-bound token is locked out by lock too (every active bank moves)" {
	enroll --pcr-bank sha1
	reboot_after
	"$KEYSTRAP" lock
	unlock_must_fail "$IMG"
	[[ "$output" == *"PCR mismatch (sha1): PCR 15 is "* ]]
}

@test "unlock that opens nothing does not lock: PCR 15 keeps its value" {
	enroll --pcrs 7
	pcr_extend 7
	pcr15=$(pcr_value sha256 15)
	before=$(header_sum "$IMG")
	run "$KEYSTRAP" unlock --device "$IMG" --name "keystrap-test-$$"
	[ "$status" -eq 1 ]
	[[ "$output" == *"PCR mismatch (sha256): PCR 7 is "* ]]
	[ "$(pcr_value sha256 15)" = "$pcr15" ]
	[ "$(header_sum "$IMG")" = "$before" ]
}

@test "without --dry-run: opens /dev/mapper/NAME, then extends PCR 15" {
	dmsetup version >/dev/null 2>&1 || skip "device-mapper is not available here (dmsetup version fails)"
	enroll
	reboot_after
	name="keystrap-test-$$"
	run "$KEYSTRAP" unlock --device "$IMG" --name "$name"
	cryptsetup close "$name" 2>/dev/null || true
	[ "$status" -eq 0 ]
	[[ "$output" == *"opened as /dev/mapper/$name (token 0, keyslot 1)"* ]]
	[[ "$output" == *"PCR 15 extended"* ]]
	unlock_must_fail "$IMG"
	[[ "$output" == *"PCR 15 is "* ]]
}

@test "UUID= finds the volume through libblkid; an unknown UUID is one clear line" {
	enroll
	attach_loop
	uuid=$(cryptsetup luksUUID "$IMG")
	run "$KEYSTRAP" unlock --device "UUID=$uuid" --dry-run
	[ "$status" -eq 0 ]
	[ "$output" = "$LOOP: token 0 unseals a key that opens keyslot 1 (dry run)" ]
	run "$KEYSTRAP" unlock --device "UUID=00000000-0000-4000-8000-000000000000" --dry-run
	[ "$status" -eq 1 ]
	[ "$output" = "keystrap: no device matches 'UUID=00000000-0000-4000-8000-000000000000'" ]
}

@test "--all finds the LUKS2 block device with a systemd-tpm2 token; after lock it fails there" {
	enroll
	attach_loop
	# Other LUKS devices on this machine would be tried too; only then is the exit status not ours.
	alone=$([ "$(blkid -o device -t TYPE=crypto_LUKS | wc -l)" -eq 1 ] && echo yes || true)
	run "$KEYSTRAP" unlock --all --dry-run
	[[ "$output" == *"$LOOP: token 0 unseals a key that opens keyslot 1 (dry run)"* ]]
	[ -z "$alone" ] || [ "$status" -eq 0 ]
	reboot_after
	"$KEYSTRAP" lock
	before=$(header_sum "$IMG")
	run "$KEYSTRAP" unlock --all --dry-run
	[ "$status" -eq 1 ]
	[[ "$output" == *"$LOOP token 0: PCR mismatch (sha256): PCR 15 is "* ]]
	[ "$(header_sum "$IMG")" = "$before" ]
}

@test "a broken token does not hide a good one: token 0 fails with its reason, token 1 opens" {
	enroll
	enroll --pcrs 7
	token_edit "$IMG" 0 '."tpm2-blob" = "AAAA"'
	before=$(header_sum "$IMG")
	run "$KEYSTRAP" unlock --device "$IMG" --dry-run
	[ "$status" -eq 0 ]
	[ "${lines[0]}" = "keystrap: $IMG token 0: tpm2-blob is not a well-formed sealed object" ]
	[ "${lines[1]}" = "$IMG: token 1 unseals a key that opens keyslot 2 (dry run)" ]
	[ "$(header_sum "$IMG")" = "$before" ]
}

@test "a volume without any systemd-tpm2 token: exit 1, one line" {
	printf '{"type":"other","keyslots":["0"]}' | cryptsetup token import "$IMG"
	unlock_must_fail "$IMG"
	[ "$output" = "keystrap: '$IMG' has no systemd-tpm2 token" ]
}

@test "usage errors exit 2 and say what was wrong" {
	before=$(header_sum "$IMG")
	run "$KEYSTRAP" unlock
	[ "$status" -eq 2 ]
	[ "${lines[0]}" = "keystrap: give either --device or --all" ]
	[[ "${lines[1]}" == "Usage: keystrap unlock "* ]]
	run "$KEYSTRAP" unlock --all --device "$IMG" --dry-run
	[ "$status" -eq 2 ]
	[ "${lines[0]}" = "keystrap: give either --device or --all" ]
	run "$KEYSTRAP" unlock --device "$IMG"
	[ "$status" -eq 2 ]
	[ "${lines[0]}" = "keystrap: --device needs --name (or --dry-run)" ]
	run "$KEYSTRAP" unlock --device "$IMG" --name a/b
	[ "$status" -eq 2 ]
	[ "${lines[0]}" = "keystrap: --name 'a/b' is not a valid device-mapper name" ]
	run "$KEYSTRAP" unlock --device "$IMG" --name ""
	[ "$status" -eq 2 ]
	run "$KEYSTRAP" unlock --device "$IMG" --dry-run extra
	[ "$status" -eq 2 ]
	[ "${lines[0]}" = "keystrap: unexpected argument 'extra'" ]
	run "$KEYSTRAP" unlock --device "$IMG" --dry-run --bogus
	[ "$status" -eq 2 ]
	run "$KEYSTRAP" lock now
	[ "$status" -eq 2 ]
	[ "${lines[0]}" = "keystrap: unexpected argument 'now'" ]
	run "$KEYSTRAP" lock --bogus
	[ "$status" -eq 2 ]
	run "$KEYSTRAP" unlocks
	[ "$status" -eq 2 ]
	[ "${lines[0]}" = "keystrap: unknown command 'unlocks'" ]
	run "$KEYSTRAP"
	[ "$status" -eq 2 ]
	run "$KEYSTRAP" unlock --help
	[ "$status" -eq 0 ]
	[[ "${lines[0]}" == "Usage: keystrap unlock "* ]]
	[ "$(header_sum "$IMG")" = "$before" ]
}
