#!/usr/bin/env bats
# keystrap config get: the one way the initramfs hooks' shell reads keystrap.conf (the dracut
# module, the mkinitcpio hooks, keystrap-generator). Values as keystrap uses them, defaults
# included; an unset or unknown key, a refused or unreadable file named, exit 1; usage exit 2;
# and it never measures (the generator asks before anything in the initrd has), against a
# real swtpm whose PCR 12 a measuring command does move.

bats_require_minimum_version 1.5.0

load ../lib/swtpm

ZERO=0000000000000000000000000000000000000000000000000000000000000000

setup_file() {
	swtpm_start
}

teardown_file() {
	swtpm_stop
}

setup() {
	cd "$BATS_TEST_TMPDIR"
	printf '[Unlock]\nDevice=UUID=5465369a-996d-42ca-9ad4-91d0082e0b34\nLock = no \n[Attest]\nServer=https://10.0.2.2:8443\nCA=/etc/keystrap/my ca.pem  \nFailurePolicy=emergency\n' >k.conf
}

teardown() {
	swtpm_reboot
}

get() { "$KEYSTRAP" config get --config k.conf "$@"; }

@test "config get prints each value as keystrap reads it, and a typed key's default when the file has none" {
	[ "$(get Attest.Server)" = https://10.0.2.2:8443 ]
	# Whitespace around the value is not part of it; inside it is.
	[ "$(get Attest.CA)" = "/etc/keystrap/my ca.pem" ]
	[ "$(get Unlock.Device)" = UUID=5465369a-996d-42ca-9ad4-91d0082e0b34 ]
	[ "$(get Unlock.Lock)" = no ]
	[ "$(get Attest.FailurePolicy)" = emergency ]
	[ "$(get Attest.Timeout)" = 20 ]
	[ "$(get Attest.Retries)" = 4 ]
	[ "$(get Unlock.PCRBank)" = sha256 ]
	: >empty.conf
	[ "$("$KEYSTRAP" config get --config empty.conf Attest.FailurePolicy)" = continue ]
	[ "$("$KEYSTRAP" config get --config empty.conf Unlock.Lock)" = yes ]
}

@test "... and its twin: an unset key, an unknown key, a refused or missing file: exit 1 naming it, nothing on stdout" {
	run --separate-stderr get Handoff.Owner
	[ "$status" -eq 1 ]
	[ -z "$output" ]
	[ "$stderr" = "keystrap: [Handoff] Owner= is not set in k.conf" ]
	run --separate-stderr get Attest.Password
	[ "$status" -eq 1 ]
	[ "$stderr" = "keystrap: keystrap.conf has no key [Attest] Password= (keystrap.conf(5) lists them)" ]
	# Section and key are spelt as in the file.
	run get attest.server
	[ "$status" -eq 1 ]
	printf '[Attest]\nServer=http://10.0.2.2\n' >bad.conf
	run --separate-stderr "$KEYSTRAP" config get --config bad.conf Attest.Server
	[ "$status" -eq 1 ]
	[ -z "$output" ]
	[ "$stderr" = "keystrap: bad.conf:2: [Attest] Server=: 'http://10.0.2.2' is not an https:// URL with a host" ]
	# The no-secrets rule too: a refused file answers nothing, not even its other keys.
	printf '[Attest]\nServer=https://10.0.2.2\n# -----BEGIN PRIVATE KEY-----\n' >secret.conf
	run --separate-stderr "$KEYSTRAP" config get --config secret.conf Attest.Server
	[ "$status" -eq 1 ]
	[ -z "$output" ]
	run --separate-stderr "$KEYSTRAP" config get --config nonexistent.conf Attest.Server
	[ "$status" -eq 1 ]
	[ "$stderr" = "keystrap: cannot read configuration 'nonexistent.conf': No such file or directory" ]
}

@test "usage errors exit 2: no command, another command, no key, a key without its section, an extra argument" {
	for args in "" "set Attest.Server" "get" "get Server" "get Attest." "get .Server" "get Attest.Server.x" \
		"get Attest.Server Attest.CA"; do
		# shellcheck disable=SC2086 # word splitting is the point
		run "$KEYSTRAP" config $args --config k.conf
		[ "$status" -eq 2 ] || { echo "config $args: exit $status"; return 1; }
		[[ "$output" == *"Usage: keystrap config get SECTION.KEY [--config FILE]"* ]]
	done
}

@test "config get never measures: PCR 12 and the measurement log stay as they were; measure --config moves both" {
	for k in Attest.Server Attest.FailurePolicy Unlock.Device Handoff.Owner; do get "$k" >/dev/null || :; done
	[ "$(pcr_value sha256 12)" = "$ZERO" ]
	[ ! -e "$KEYSTRAP_MEASURE_LOG" ]
	# Its twin: the command that does measure the file, on the same TPM and log.
	"$KEYSTRAP" measure --config k.conf >/dev/null
	[ "$(pcr_value sha256 12)" != "$ZERO" ]
	grep -q '"keystrap:config:' "$KEYSTRAP_MEASURE_LOG"
}
