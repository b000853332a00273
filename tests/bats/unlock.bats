#!/usr/bin/env bats
# keystrap enroll + unlock against a real swtpm, each positive case with its negative twin.

load ../lib/swtpm

setup_file() {
	swtpm_start
}

teardown_file() {
	swtpm_stop
}

setup() {
	IMG=$BATS_TEST_TMPDIR/disk.img
	KEY=$BATS_TEST_TMPDIR/key
	make_luks "$IMG" "$KEY"
}

@test "enroll then dry-run unlock opens the new keyslot" {
	run "$KEYSTRAP" enroll --device "$IMG" --unlock-key-file "$KEY"
	[ "$status" -eq 0 ]
	[[ "$output" == *"keyslot 1, token 0, PCRs 7,15 (sha256)"* ]]
	run "$KEYSTRAP" unlock --device "$IMG" --dry-run
	[ "$status" -eq 0 ]
	[[ "$output" == *"token 0 unseals a key that opens keyslot 1"* ]]
}

@test "after lock (PCR 15 extended) the same token no longer unseals, naming PCR 15" {
	"$KEYSTRAP" enroll --device "$IMG" --unlock-key-file "$KEY"
	run "$KEYSTRAP" lock
	[ "$status" -eq 0 ]
	run "$KEYSTRAP" unlock --device "$IMG" --dry-run
	[ "$status" -eq 1 ]
	[[ "$output" == *"PCR mismatch (sha256): PCR 15 is "* ]]
	[[ "$output" != *"PCR 7 is"* ]]
	swtpm_reboot
}
