#!/usr/bin/env bats
# Interoperability with systemd 252 on one real swtpm: volumes enrolled by
# systemd-cryptenroll unlock with keystrap, and volumes keystrap enrolls (ecc and rsa
# primary, sha256 and sha1 bank) open through systemd's own libcryptsetup token plugin
# (tests/lib/sd-token-open.c). Each with its twin: after a PCR change, both refuse.
# systemd 252's cryptenroll cannot be told to use an RSA primary, so rsa is covered by
# keystrap-enrolled rsa tokens that systemd's plugin must open.

load ../lib/swtpm

setup_file() {
	SWTPM_PCR_BANKS=sha1,sha256 swtpm_start
}

teardown_file() {
	swtpm_stop
}

setup() {
	luks_setup
	# Firmware leaves PCR 7 non-zero; systemd-cryptenroll warns about an all-zero one.
	pcr_extend 7
}

teardown() {
	reboot_if_asked
}

cryptenroll() {
	systemd-cryptenroll --tpm2-device="$KEYSTRAP_TCTI" --unlock-key-file="$KEY" "$@" "$IMG"
	local rc=$?
	sd_flush
	return $rc
}

@test "systemd-cryptenroll --tpm2-pcrs=7: keystrap unlocks it" {
	cryptenroll --tpm2-pcrs=7
	[ "$(tokens "$IMG")" = "0" ]
	[ "$(cryptsetup token export --token-id 0 "$IMG" | jq -c '[.type, ."tpm2-pcrs", has("keystrap-pcr-values")]')" = \
		'["systemd-tpm2",[7],false]' ]
	run "$KEYSTRAP" unlock --device "$IMG" --dry-run
	[ "$status" -eq 0 ]
	[ "$output" = "$IMG: token 0 unseals a key that opens keyslot 1 (dry run)" ]
}

@test "systemd-cryptenroll twin: PCR 7 extended, keystrap fails and says the token does not record which PCR" {
	cryptenroll --tpm2-pcrs=7
	pcr_extend 7
	unlock_must_fail "$IMG"
	[ "${#lines[@]}" -eq 1 ]
	[ "$output" = "keystrap: $IMG token 0: PCR policy not satisfied: the current values of PCRs 7 (sha256) differ from those it was sealed against (the token does not record which)" ]
}

@test "systemd-cryptenroll --tpm2-pcrs=7+15: keystrap unlocks it, and after keystrap lock it cannot" {
	cryptenroll --tpm2-pcrs=7+15
	run "$KEYSTRAP" unlock --device "$IMG" --dry-run
	[ "$status" -eq 0 ]
	"$KEYSTRAP" lock
	unlock_must_fail "$IMG"
	[[ "$output" == *"the current values of PCRs 7,15 (sha256) differ from those it was sealed against"* ]]
	# systemd's own plugin agrees: the key is gone for this boot.
	run sd_token_open "$IMG"
	[ "$status" -eq 1 ]
}

@test "keystrap-enrolled (ecc primary) opens through systemd's plugin; after keystrap lock it does not" {
	"$KEYSTRAP" enroll --device "$IMG" --unlock-key-file "$KEY"
	run sd_token_open "$IMG"
	[ "$status" -eq 0 ]
	[ "${lines[-1]}" = "systemd-tpm2 plugin opened keyslot 1 of $IMG" ]
	"$KEYSTRAP" lock
	run sd_token_open "$IMG"
	[ "$status" -eq 1 ]
	[ "${lines[-1]}" = "systemd-tpm2 token did not open $IMG: No such file or directory" ]
}

@test "keystrap-enrolled (rsa primary) opens through systemd's plugin; after keystrap lock it does not" {
	"$KEYSTRAP" enroll --device "$IMG" --unlock-key-file "$KEY" --primary-alg rsa
	run sd_token_open "$IMG"
	[ "$status" -eq 0 ]
	[ "${lines[-1]}" = "systemd-tpm2 plugin opened keyslot 1 of $IMG" ]
	"$KEYSTRAP" lock
	run sd_token_open "$IMG"
	[ "$status" -eq 1 ]
}

@test "keystrap-enrolled in the sha1 bank opens through systemd's plugin; after keystrap lock it does not" {
	"$KEYSTRAP" enroll --device "$IMG" --unlock-key-file "$KEY" --pcr-bank sha1
	run sd_token_open "$IMG"
	[ "$status" -eq 0 ]
	"$KEYSTRAP" lock
	run sd_token_open "$IMG"
	[ "$status" -eq 1 ]
}

@test "systemd-cryptenroll counts a keystrap enrollment as its own: --wipe-slot=tpm2 removes it" {
	"$KEYSTRAP" enroll --device "$IMG" --unlock-key-file "$KEY"
	[ "$(keyslots "$IMG")" = "0 1" ]
	run systemd-cryptenroll --wipe-slot=tpm2 "$IMG"
	[ "$status" -eq 0 ]
	[ "$output" = "Wiped slot 1." ]
	[ "$(keyslots "$IMG")" = "0" ]
	[ "$(tokens "$IMG")" = "" ]
	cryptsetup open --test-passphrase --key-slot 0 --key-file "$KEY" "$IMG"
}
