#!/usr/bin/env bats
# keystrap measure and lock against a real swtpm: PCR values recomputed with coreutils, the
# CEL-JSON log read with jq --seq, the configuration measured once and before use, and
# eventlog --verify --cel replaying PCRs 8-15; each positive case with its negative twin.

load ../lib/swtpm
load ../lib/firmware

LOGS=$BATS_TEST_DIRNAME/../data/eventlogs
EXAMPLE=$BATS_TEST_DIRNAME/../../dist/keystrap.conf.example

setup_file() {
	export SWTPM_PCR_BANKS=sha1,sha256
	swtpm_start
}

teardown_file() {
	swtpm_stop
}

teardown() {
	swtpm_reboot
}

# extended ALG PCR_HEX STRING: H(PCR || H(STRING)), lower-case hex (coreutils, not keystrap).
extended() {
	{ xxd -r -p <<<"$2"; printf %s "$3" | "${1}sum" | cut -d' ' -f1 | xxd -r -p; } | "${1}sum" | cut -d' ' -f1
}

zero() {
	head -c "$1" /dev/zero | xxd -p -c 256
}

pcr() {
	tpm2_pcrread "$1:$2" | awk -F'0x' '/: 0x/ { print tolower($2) }'
}

@test "--phase enter-initrd extends PCR 12 in every active bank and logs one CEL record the way systemd does" {
	run "$KEYSTRAP" measure --phase enter-initrd
	[ "$status" -eq 0 ]
	[ "$output" = "PCR 12 extended with keystrap:enter-initrd, logged in $KEYSTRAP_MEASURE_LOG" ]
	sha256=$(extended sha256 "$(zero 32)" keystrap:enter-initrd)
	sha1=$(extended sha1 "$(zero 20)" keystrap:enter-initrd)
	[ "$(pcr sha256 12)" = "$sha256" ]
	[ "$(pcr sha1 12)" = "$sha1" ]
	[ "$(pcr sha256 15)" = "$(zero 32)" ]

	# RFC 7464: RS, JSON, LF; what jq --seq reads.
	[ "$(head -c 1 "$KEYSTRAP_MEASURE_LOG" | xxd -p)" = 1e ]
	[ "$(tail -c 1 "$KEYSTRAP_MEASURE_LOG" | xxd -p)" = 0a ]
	rec=$(jq --seq -c . "$KEYSTRAP_MEASURE_LOG")
	[ "$(jq -r '[.pcr, .content_type, .content.string, .content.eventType] | join(" ")' <<<"$rec")" = \
	  "12 systemd keystrap:enter-initrd phase" ]
	[ "$(jq -r '.digests[] | select(.hashAlg == "sha256") | .digest' <<<"$rec")" = \
	  "$(printf %s keystrap:enter-initrd | sha256sum | cut -d' ' -f1)" ]
	[ "$(jq -r '.digests[] | select(.hashAlg == "sha1") | .digest' <<<"$rec")" = \
	  "$(printf %s keystrap:enter-initrd | sha1sum | cut -d' ' -f1)" ]
	[ "$(jq -r .content.bootId <<<"$rec")" = "$(tr -d '\n-' </proc/sys/kernel/random/boot_id)" ]
	jq -e '(.content.timestamp | type) == "number" and (has("recnum") | not)' <<<"$rec"
	[ "$(stat -c %a "$KEYSTRAP_MEASURE_LOG")" = 600 ]
}

@test "an unknown phase is a usage error: nothing extended, nothing logged" {
	run "$KEYSTRAP" measure --phase enter-initramfs
	[ "$status" -eq 2 ]
	[[ "$output" == *"unknown phase 'enter-initramfs' (enter-initrd, volumes-unlocked, attested, leave-initrd)"* ]]
	[ "$(pcr sha256 12)" = "$(zero 32)" ]
	[ ! -e "$KEYSTRAP_MEASURE_LOG" ]
}

@test "lock is the volumes-unlocked phase: PCR 15, logged like every other measurement" {
	run "$KEYSTRAP" lock
	[ "$status" -eq 0 ]
	[ "$(pcr sha256 15)" = "$(extended sha256 "$(zero 32)" keystrap:volumes-unlocked)" ]
	[ "$(pcr sha256 12)" = "$(zero 32)" ]
	[ "$(jq --seq -r '"\(.pcr) \(.content.string) \(.content.eventType)"' "$KEYSTRAP_MEASURE_LOG")" = \
	  "15 keystrap:volumes-unlocked phase" ]
	run "$KEYSTRAP" measure --phase volumes-unlocked
	[ "$status" -eq 0 ]
	[ "$output" = "PCR 15 extended with keystrap:volumes-unlocked, logged in $KEYSTRAP_MEASURE_LOG" ]
}

@test "the PCR moves even when the log cannot be written, and that fails loudly" {
	mkdir "$BATS_TEST_TMPDIR/dir.log"
	KEYSTRAP_MEASURE_LOG=$BATS_TEST_TMPDIR/dir.log run "$KEYSTRAP" lock
	[ "$status" -eq 1 ]
	[[ "$output" == *"PCR 15 extended with \"keystrap:volumes-unlocked\", but the measurement log '$BATS_TEST_TMPDIR/dir.log' cannot be opened"* ]]
	[ "$(pcr sha256 15)" = "$(extended sha256 "$(zero 32)" keystrap:volumes-unlocked)" ]
}

@test "--config measures the file's digest into PCR 12 once per boot; a changed file is measured again" {
	digest=$(sha256sum <"$EXAMPLE" | cut -d' ' -f1)
	run "$KEYSTRAP" measure --config "$EXAMPLE"
	[ "$status" -eq 0 ]
	[ "$output" = "PCR 12 extended with configuration $EXAMPLE (keystrap:config:$digest)" ]
	once=$(extended sha256 "$(zero 32)" "keystrap:config:$digest")
	[ "$(pcr sha256 12)" = "$once" ]
	run "$KEYSTRAP" measure --config "$EXAMPLE"
	[ "$status" -eq 0 ]
	[ "$output" = "configuration $EXAMPLE was measured earlier in this boot (keystrap:config:$digest)" ]
	[ "$(pcr sha256 12)" = "$once" ]
	[ "$(jq --seq -r .content.string "$KEYSTRAP_MEASURE_LOG")" = "keystrap:config:$digest" ]

	# Negative twin: other bytes, another measurement.
	sed 's/Timeout=20/Timeout=21/' "$EXAMPLE" >"$BATS_TEST_TMPDIR/changed.conf"
	other=$(sha256sum <"$BATS_TEST_TMPDIR/changed.conf" | cut -d' ' -f1)
	run "$KEYSTRAP" measure --config "$BATS_TEST_TMPDIR/changed.conf"
	[ "$status" -eq 0 ]
	[ "$(pcr sha256 12)" = "$(extended sha256 "$once" "keystrap:config:$other")" ]
	[ "$(jq --seq -r .content.string "$KEYSTRAP_MEASURE_LOG" | wc -l)" -eq 2 ]
}

@test "an invalid or secret-bearing configuration is refused before anything is measured" {
	printf '[Unlock]\nDevice=/dev/vda2\nPassword=hunter2\n' >"$BATS_TEST_TMPDIR/secret.conf"
	run "$KEYSTRAP" measure --config "$BATS_TEST_TMPDIR/secret.conf"
	[ "$status" -eq 1 ]
	[ "$output" = "keystrap: $BATS_TEST_TMPDIR/secret.conf:3: [Unlock] Password=: keystrap.conf never holds a secret, and there is no such key" ]
	[[ "$output" != *hunter2* ]]
	printf '[Attest]\nTimeout=3000\n' >"$BATS_TEST_TMPDIR/range.conf"
	run "$KEYSTRAP" measure --config "$BATS_TEST_TMPDIR/range.conf"
	[ "$status" -eq 1 ]
	[ "$output" = "keystrap: $BATS_TEST_TMPDIR/range.conf:2: [Attest] Timeout=: 3000 is out of range (1-300)" ]
	[ "$(pcr sha256 12)" = "$(zero 32)" ]
	[ ! -s "$KEYSTRAP_MEASURE_LOG" ]
}

@test "--check validates a configuration without any TPM; a secret in a comment fails it" {
	KEYSTRAP_TCTI=swtpm:host=127.0.0.1,port=1 run "$KEYSTRAP" measure --config "$EXAMPLE" --check
	[ "$status" -eq 0 ]
	[ "$output" = "$EXAMPLE: valid, and nothing in it looks like a secret" ]
	{ cat "$EXAMPLE"; echo "# backup key: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"; } >"$BATS_TEST_TMPDIR/c.conf"
	run "$KEYSTRAP" measure --config "$BATS_TEST_TMPDIR/c.conf" --check
	[ "$status" -eq 1 ]
	[[ "$output" == *"c.conf:$(($(wc -l <"$EXAMPLE") + 1)): refusing what looks like a secret: it holds a long hex string (key material?)" ]]
	[[ "$output" != *9f86d081* ]]
}

@test "eventlog --verify --cel replays PCRs 8-15 from the firmware log plus the CEL log" {
	# The firmware's measurements, then keystrap's, as in a boot.
	replay_firmware "$LOGS/event-arch-linux.bin"
	"$KEYSTRAP" measure --phase enter-initrd
	"$KEYSTRAP" measure --config "$EXAMPLE"
	"$KEYSTRAP" lock
	"$KEYSTRAP" measure --phase attested
	run "$KEYSTRAP" eventlog --verify "$LOGS/event-arch-linux.bin" --cel "$KEYSTRAP_MEASURE_LOG"
	[ "$status" -eq 0 ]
	[[ "$output" == *"the log replays to the TPM's PCRs 0,1,2,3,4,5,6,7,8,9,11,12,13,14,15 (sha1, sha256)"* ]]
	[[ "$output" == *"  12 : ok 0x"* && "$output" == *"  15 : ok 0x5143dcc31a8162bf819636055b02f87b18b87ebdad848e67af9d75ba00eef4fb"* ]]

	# Negative twins: an extension no log records, and a log missing its last record.
	run "$KEYSTRAP" eventlog --verify "$LOGS/event-arch-linux.bin"
	[ "$status" -eq 0 ]
	tpm2_pcrextend 13:sha256=0000000000000000000000000000000000000000000000000000000000000013
	run "$KEYSTRAP" eventlog --verify "$LOGS/event-arch-linux.bin" --cel "$KEYSTRAP_MEASURE_LOG"
	[ "$status" -eq 1 ]
	[ "${lines[-1]}" = "keystrap: the log does not replay to the TPM's PCRs: PCR 13 (sha256)" ]
	swtpm_reboot
	replay_firmware "$LOGS/event-arch-linux.bin"
	"$KEYSTRAP" measure --phase enter-initrd
	"$KEYSTRAP" lock
	head -n 1 "$KEYSTRAP_MEASURE_LOG" >"$BATS_TEST_TMPDIR/short.log"
	run "$KEYSTRAP" eventlog --verify "$LOGS/event-arch-linux.bin" --cel "$BATS_TEST_TMPDIR/short.log"
	[ "$status" -eq 1 ]
	[ "${lines[-1]}" = "keystrap: the log does not replay to the TPM's PCRs: PCR 15 (sha1), 15 (sha256)" ]
}

@test "two CEL logs are merged by timestamp: PCR 12 replays only in the order it was extended" {
	KEYSTRAP_MEASURE_LOG=$BATS_TEST_TMPDIR/a.log "$KEYSTRAP" measure --phase enter-initrd
	KEYSTRAP_MEASURE_LOG=$BATS_TEST_TMPDIR/b.log "$KEYSTRAP" measure --config "$EXAMPLE"
	"$KEYSTRAP" measure --log "$BATS_TEST_TMPDIR/a.log" --phase attested
	run "$KEYSTRAP" eventlog "$LOGS/event-uefiaction.bin" --cel "$BATS_TEST_TMPDIR/b.log" --cel "$BATS_TEST_TMPDIR/a.log"
	[ "$status" -eq 0 ]
	[[ "$output" == *"; 3 CEL records"* ]]
	[[ "$output" == *"  12 : 0x$(pcr sha256 12)"* ]]
	run "$KEYSTRAP" eventlog "$LOGS/event-uefiaction.bin" --cel "$BATS_TEST_TMPDIR/a.log"
	[[ "$output" != *"  12 : 0x$(pcr sha256 12)"* ]]
	run "$KEYSTRAP" eventlog --json "$LOGS/event-uefiaction.bin" --cel "$BATS_TEST_TMPDIR/b.log" --cel "$BATS_TEST_TMPDIR/a.log"
	[ "$(jq -r '[.cel_records[].string] | join(",")' <<<"$output")" = \
	  "keystrap:enter-initrd,keystrap:config:$(sha256sum <"$EXAMPLE" | cut -d' ' -f1),keystrap:attested" ]
}

@test "a malformed CEL log is refused with the byte offset and the reason" {
	"$KEYSTRAP" measure --phase enter-initrd
	cp "$KEYSTRAP_MEASURE_LOG" "$BATS_TEST_TMPDIR/bad.log"
	size=$(stat -c %s "$BATS_TEST_TMPDIR/bad.log")
	printf '\036{"pcr":99,"digests":[]}\n' >>"$BATS_TEST_TMPDIR/bad.log"
	run "$KEYSTRAP" eventlog "$LOGS/event-uefiaction.bin" --cel "$BATS_TEST_TMPDIR/bad.log"
	[ "$status" -eq 1 ]
	[ "$output" = "keystrap: $BATS_TEST_TMPDIR/bad.log: offset $size: record 1: \"pcr\" 99 is out of range (0-23)" ]
	head -c $((size - 20)) "$KEYSTRAP_MEASURE_LOG" >"$BATS_TEST_TMPDIR/torn.log"
	run "$KEYSTRAP" eventlog "$LOGS/event-uefiaction.bin" --cel "$BATS_TEST_TMPDIR/torn.log"
	[ "$status" -eq 1 ]
	[ "$output" = "keystrap: $BATS_TEST_TMPDIR/torn.log: offset 0: record 0: truncated JSON" ]
	# measure --config cannot tell what a corrupt log holds: it refuses rather than guess.
	KEYSTRAP_MEASURE_LOG=$BATS_TEST_TMPDIR/bad.log run "$KEYSTRAP" measure --config "$EXAMPLE"
	[ "$status" -eq 1 ]
	[[ "$output" == *"measurement log '$BATS_TEST_TMPDIR/bad.log' is corrupt (offset $size: record 1:"* ]]
}

@test "unlock --config takes the volume from keystrap.conf, and measures the file before using it" {
	make_luks "$BATS_TEST_TMPDIR/disk.img" "$BATS_TEST_TMPDIR/key"
	"$KEYSTRAP" enroll --device "$BATS_TEST_TMPDIR/disk.img" --unlock-key-file "$BATS_TEST_TMPDIR/key"
	printf '[Unlock]\nDevice=%s\nName=root\nLock=no\n' "$BATS_TEST_TMPDIR/disk.img" >"$BATS_TEST_TMPDIR/k.conf"
	digest=$(sha256sum <"$BATS_TEST_TMPDIR/k.conf" | cut -d' ' -f1)
	run "$KEYSTRAP" unlock --config "$BATS_TEST_TMPDIR/k.conf" --dry-run
	[ "$status" -eq 0 ]
	[ "${lines[0]}" = "PCR 12 extended with configuration $BATS_TEST_TMPDIR/k.conf (keystrap:config:$digest)" ]
	[[ "${lines[1]}" == *"token 0 unseals a key that opens keyslot 1 (dry run)" ]]
	[ "$(pcr sha256 12)" = "$(extended sha256 "$(zero 32)" "keystrap:config:$digest")" ]
	[ "$(pcr sha256 15)" = "$(zero 32)" ]

	# Negative twin: a configuration with a secret is refused before the TPM is touched.
	printf '[Unlock]\nDevice=%s\n# key q83vEjRWeJq8Ad7vEjRWeJq8Ad7vEjRWeJq8Ad7vEjQ=\n' "$BATS_TEST_TMPDIR/disk.img" >"$BATS_TEST_TMPDIR/s.conf"
	before=$(pcr sha256 12)
	run "$KEYSTRAP" unlock --config "$BATS_TEST_TMPDIR/s.conf" --dry-run
	[ "$status" -eq 1 ]
	[ "$output" = "keystrap: $BATS_TEST_TMPDIR/s.conf:3: refusing what looks like a secret: it holds a long base64-like string (key material?)" ]
	[ "$(pcr sha256 12)" = "$before" ]
	run "$KEYSTRAP" unlock --config "$BATS_TEST_TMPDIR/k.conf" --device "$BATS_TEST_TMPDIR/disk.img"
	[ "$status" -eq 2 ]
}

@test "usage errors exit 2" {
	run "$KEYSTRAP" measure
	[ "$status" -eq 2 ]
	run "$KEYSTRAP" measure --phase enter-initrd --config "$EXAMPLE"
	[ "$status" -eq 2 ]
	run "$KEYSTRAP" measure --phase enter-initrd --check
	[ "$status" -eq 2 ]
	run "$KEYSTRAP" measure --phase enter-initrd --log relative.log
	[ "$status" -eq 2 ]
	[[ "$output" == *"--log 'relative.log' is not an absolute path"* ]]
	run "$KEYSTRAP" measure --help
	[ "$status" -eq 0 ]
	[[ "$output" == "Usage: keystrap measure"* ]]
}
