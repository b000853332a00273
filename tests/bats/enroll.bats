#!/usr/bin/env bats
# keystrap enroll against a real swtpm (sha1 and sha256 banks active): the keyslot and token
# it writes, checked with cryptsetup and tpm2-tools as oracles, each binding with the unlock
# that proves it and the PCR change that defeats it; then every way it must refuse without
# leaving anything behind.

load ../lib/swtpm

ZERO32=0000000000000000000000000000000000000000000000000000000000000000

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

# The PolicyPCR digest tpm2-tools computes for SELECTION (e.g. sha256:7,15) and the PCR
# values in FILE (concatenated in index order).
createpolicy() {
	tpm2_createpolicy -Q --policy-pcr -l "$1" -f "$2" -L policy.bin && xxd -p -c 64 policy.bin
}

token_field() {
	cryptsetup token export --token-id "${2:-0}" "$IMG" | jq -c "$1"
}

@test "default: PCR 7 at its current value, PCR 15 at zero; the policy is what tpm2-tools computes" {
	pcr_extend 7 # firmware leaves PCR 7 non-zero: "current" must mean the TPM's value
	run "$KEYSTRAP" enroll --device "$IMG" --unlock-key-file "$KEY"
	[ "$status" -eq 0 ]
	[ "$output" = "enrolled $IMG: keyslot 1, token 0, PCRs 7,15 (sha256), primary ecc" ]
	[ "$(token_field '[.type, .keyslots, ."tpm2-pcrs", ."tpm2-pcr-bank", ."tpm2-primary-alg", ."tpm2-pin"]')" = \
		'["systemd-tpm2",["1"],[7,15],"sha256","ecc",false]' ]
	pcr7=$(pcr_value sha256 7)
	[ "$(token_field '."keystrap-pcr-values"."7"')" = "\"$pcr7\"" ]
	[ "$(token_field '."keystrap-pcr-values"."15"')" = "\"$ZERO32\"" ]
	xxd -r -p <<<"$pcr7$ZERO32" >values.bin
	[ "$(token_field '."tpm2-policy-hash"')" = "\"$(createpolicy sha256:7,15 values.bin)\"" ]
	run "$KEYSTRAP" unlock --device "$IMG" --dry-run
	[ "$status" -eq 0 ]
	[[ "$output" == *"token 0 unseals a key that opens keyslot 1"* ]]
}

@test "default twin: PCR 15 is bound at zero, not at its current value, so a moved PCR 15 refuses" {
	pcr_extend 15
	run "$KEYSTRAP" enroll --device "$IMG" --unlock-key-file "$KEY"
	[ "$status" -eq 0 ]
	[ "$(token_field '."keystrap-pcr-values"."15"')" = "\"$ZERO32\"" ]
	unlock_must_fail "$IMG"
	[[ "$output" == *"PCR mismatch (sha256): PCR 15 is "*" but policy wants 0000000000000000"* ]]
	[[ "$output" != *"PCR 7 "* ]]
	swtpm_reboot # PCR 15 back at zero, as at the next boot
	run "$KEYSTRAP" unlock --device "$IMG" --dry-run
	[ "$status" -eq 0 ]
}

@test "--pcrs 7 binds PCR 7 only: PCR 15 may move, PCR 7 may not" {
	run "$KEYSTRAP" enroll --device "$IMG" --unlock-key-file "$KEY" --pcrs 7
	[ "$status" -eq 0 ]
	[[ "$output" == *"PCRs 7 (sha256)"* ]]
	[ "$(token_field '."tpm2-pcrs"')" = "[7]" ]
	pcr_value sha256 7 | xxd -r -p >values.bin
	[ "$(token_field '."tpm2-policy-hash"')" = "\"$(createpolicy sha256:7 values.bin)\"" ]
	pcr_extend 15
	run "$KEYSTRAP" unlock --device "$IMG" --dry-run
	[ "$status" -eq 0 ]
	pcr_extend 7
	unlock_must_fail "$IMG"
	[[ "$output" == *"PCR mismatch (sha256): PCR 7 is "* ]]
}

@test "--pcrs 15:0 unseals while PCR 15 is at zero, and not after keystrap lock" {
	run "$KEYSTRAP" enroll --device "$IMG" --unlock-key-file "$KEY" --pcrs 15:0
	[ "$status" -eq 0 ]
	[ "$(token_field '."tpm2-pcrs"')" = "[15]" ]
	head -c 32 /dev/zero >values.bin
	[ "$(token_field '."tpm2-policy-hash"')" = "\"$(createpolicy sha256:15 values.bin)\"" ]
	run "$KEYSTRAP" unlock --device "$IMG" --dry-run
	[ "$status" -eq 0 ]
	reboot_after
	"$KEYSTRAP" lock
	unlock_must_fail "$IMG"
	[[ "$output" == *"PCR mismatch (sha256): PCR 15 is "* ]]
}

@test "--pcrs 11:HEX enrolls for a value PCR 11 does not hold yet; it unseals once it does" {
	# The value PCR 11 will hold after extending D once from zero: sha256(zero || D).
	d=$(printf '%064x' 11)
	want=$({ head -c 32 /dev/zero; xxd -r -p <<<"$d"; } | sha256sum | cut -d' ' -f1)
	run "$KEYSTRAP" enroll --device "$IMG" --unlock-key-file "$KEY" --pcrs "11:$want"
	[ "$status" -eq 0 ]
	[ "$(token_field '."keystrap-pcr-values"."11"')" = "\"$want\"" ]
	xxd -r -p <<<"$want" >values.bin
	[ "$(token_field '."tpm2-policy-hash"')" = "\"$(createpolicy sha256:11 values.bin)\"" ]
	unlock_must_fail "$IMG"
	[[ "$output" == *"PCR mismatch (sha256): PCR 11 is 0000000000000000… but policy wants ${want:0:16}…"* ]]
	reboot_after
	tpm2_pcrextend "11:sha256=$d"
	run "$KEYSTRAP" unlock --device "$IMG" --dry-run
	[ "$status" -eq 0 ]
}

@test "--pcr-bank sha1: sha1 values, a sha256 policy over them as tpm2-tools computes it" {
	pcr_extend 7
	run "$KEYSTRAP" enroll --device "$IMG" --unlock-key-file "$KEY" --pcr-bank sha1
	[ "$status" -eq 0 ]
	[[ "$output" == *"PCRs 7,15 (sha1)"* ]]
	[ "$(token_field '."tpm2-pcr-bank"')" = '"sha1"' ]
	pcr7=$(pcr_value sha1 7)
	[ "$(token_field '."keystrap-pcr-values"."7"')" = "\"$pcr7\"" ]
	xxd -r -p <<<"${pcr7}0000000000000000000000000000000000000000" >values.bin
	[ "$(token_field '."tpm2-policy-hash"')" = "\"$(createpolicy sha1:7,15 values.bin)\"" ]
	run "$KEYSTRAP" unlock --device "$IMG" --dry-run
	[ "$status" -eq 0 ]
}

@test "a bank this TPM has not allocated (sha384) is refused, even with every value given" {
	before=$(header_sum "$IMG")
	for spec in 7,15 7:0; do
		run "$KEYSTRAP" enroll --device "$IMG" --unlock-key-file "$KEY" --pcr-bank sha384 --pcrs "$spec"
		[ "$status" -eq 1 ]
		[[ "$output" == "keystrap: cannot read PCRs "*" from bank sha384: the TPM does not support a required PCR bank" ]]
	done
	[ "$(header_sum "$IMG")" = "$before" ]
}

@test "--primary-alg rsa seals under the RSA primary; the same blob read as ecc does not load" {
	run "$KEYSTRAP" enroll --device "$IMG" --unlock-key-file "$KEY" --primary-alg rsa
	[ "$status" -eq 0 ]
	[[ "$output" == *"primary rsa" ]]
	[ "$(token_field '."tpm2-primary-alg"')" = '"rsa"' ]
	run "$KEYSTRAP" unlock --device "$IMG" --dry-run
	[ "$status" -eq 0 ]
	token_edit "$IMG" 0 '."tpm2-primary-alg" = "ecc"'
	unlock_must_fail "$IMG"
	[ "${#lines[@]}" -eq 1 ]
	[[ "$output" == *"token 0: the sealed key does not belong to this TPM's storage key"* ]]
}

@test "the existing key file still opens its keyslot; the new keyslot is cheap PBKDF2" {
	run "$KEYSTRAP" enroll --device "$IMG" --unlock-key-file "$KEY"
	[ "$status" -eq 0 ]
	cryptsetup open --test-passphrase --key-slot 0 --key-file "$KEY" "$IMG"
	[ "$(keyslots "$IMG")" = "0 1" ]
	kdf=$(cryptsetup luksDump --dump-json-metadata "$IMG" | jq -c '.keyslots."1".kdf | [.type, .iterations]')
	[ "$kdf" = '["pbkdf2",1000]' ]
	# Twin: the key file does not open the new keyslot (it holds a different key).
	run cryptsetup open --test-passphrase --key-slot 1 --key-file "$KEY" "$IMG"
	[ "$status" -ne 0 ]
}

@test "the existing passphrase can come on stdin; a wrong one adds nothing" {
	printf 'correct horse battery staple' >pass
	cryptsetup luksAddKey --batch-mode --pbkdf pbkdf2 --pbkdf-force-iterations 1000 --key-file "$KEY" "$IMG" pass
	before=$(header_sum "$IMG")
	run "$KEYSTRAP" enroll --device "$IMG" <<<"correct horse battery stable"
	[ "$status" -eq 1 ]
	[ "$output" = "keystrap: the existing passphrase does not open any keyslot of '$IMG'" ]
	[ "$(header_sum "$IMG")" = "$before" ]
	run "$KEYSTRAP" enroll --device "$IMG" <<<"correct horse battery staple"
	[ "$status" -eq 0 ]
	[[ "$output" == *"keyslot 2, token 0"* ]]
}

@test "bad --pcrs values: exit 2 quoting the bad item, volume untouched" {
	before=$(header_sum "$IMG")
	for spec in 24 7,7 11:zz "" 7,24 "7:${ZERO32}00"; do
		case $spec in
		7,7) bad=7 ;;
		7,24) bad=24 ;;
		*) bad=$spec ;;
		esac
		run "$KEYSTRAP" enroll --device "$IMG" --unlock-key-file "$KEY" --pcrs "$spec"
		[ "$status" -eq 2 ]
		[ "${lines[0]}" = "keystrap: --pcrs: '$bad' is not a PCR 0-23, optionally with :0 or :HEX (64 hex digits for sha256), listed once" ]
		[[ "${lines[1]}" == "Usage: keystrap enroll --device DEV"* ]]
	done
	run "$KEYSTRAP" enroll --device "$IMG" --unlock-key-file "$KEY" --pcr-bank sha1 --pcrs "7:$ZERO32"
	[ "$status" -eq 2 ]
	[[ "${lines[0]}" == *"'7:$ZERO32' is not a PCR 0-23, optionally with :0 or :HEX (40 hex digits for sha1)"* ]]
	[ "$(header_sum "$IMG")" = "$before" ]
}

@test "other usage errors exit 2 and name what was wrong" {
	before=$(header_sum "$IMG")
	run "$KEYSTRAP" enroll --device "$IMG" --unlock-key-file "$KEY" --pcr-bank md5
	[ "$status" -eq 2 ]
	[ "${lines[0]}" = "keystrap: --pcr-bank 'md5' is not one of sha1, sha256, sha384, sha512" ]
	run "$KEYSTRAP" enroll --device "$IMG" --unlock-key-file "$KEY" --primary-alg dsa
	[ "$status" -eq 2 ]
	[ "${lines[0]}" = "keystrap: --primary-alg 'dsa' is neither ecc nor rsa" ]
	run "$KEYSTRAP" enroll --unlock-key-file "$KEY"
	[ "$status" -eq 2 ]
	[ "${lines[0]}" = "keystrap: --device is required" ]
	run "$KEYSTRAP" enroll --device "$IMG" --unlock-key-file "$KEY" extra
	[ "$status" -eq 2 ]
	[ "${lines[0]}" = "keystrap: unexpected argument 'extra'" ]
	run "$KEYSTRAP" enroll --device "$IMG" --bogus
	[ "$status" -eq 2 ]
	[[ "$output" == *"keystrap: invalid option"* ]]
	[ "$(header_sum "$IMG")" = "$before" ]
	run "$KEYSTRAP" enroll --help
	[ "$status" -eq 0 ]
	[[ "${lines[0]}" == "Usage: keystrap enroll --device DEV"* ]]
}

@test "a wrong key file: exit 1, no keyslot, no token, header untouched" {
	head -c 32 /dev/urandom | base64 >wrong
	before=$(header_sum "$IMG")
	run "$KEYSTRAP" enroll --device "$IMG" --unlock-key-file wrong
	[ "$status" -eq 1 ]
	[ "$output" = "keystrap: the existing key file does not open any keyslot of '$IMG'" ]
	[ "$(header_sum "$IMG")" = "$before" ]
	[ "$(keyslots "$IMG")" = "0" ]
	[ "$(tokens "$IMG")" = "" ]
}

@test "a missing or empty key file: exit 1 naming the file" {
	before=$(header_sum "$IMG")
	run "$KEYSTRAP" enroll --device "$IMG" --unlock-key-file nonexistent
	[ "$status" -eq 1 ]
	[ "$output" = "keystrap: cannot read key file 'nonexistent': No such file or directory" ]
	: >empty
	run "$KEYSTRAP" enroll --device "$IMG" --unlock-key-file empty
	[ "$status" -eq 1 ]
	[ "$output" = "keystrap: cannot read key file 'empty': empty" ]
	[ "$(header_sum "$IMG")" = "$before" ]
}

@test "a LUKS1 volume, a file with no LUKS header, a missing device: one clear line, nothing written" {
	truncate -s 20M luks1.img
	cryptsetup luksFormat --type luks1 --pbkdf-force-iterations 1000 --batch-mode --key-file "$KEY" luks1.img
	sum=$(sha256sum <luks1.img)
	run "$KEYSTRAP" enroll --device luks1.img --unlock-key-file "$KEY"
	[ "$status" -eq 1 ]
	[ "$output" = "keystrap: 'luks1.img' is LUKS1; keystrap needs LUKS2 (cryptsetup convert --type luks2)" ]
	[ "$(sha256sum <luks1.img)" = "$sum" ]

	truncate -s 20M plain.img
	run "$KEYSTRAP" enroll --device plain.img --unlock-key-file "$KEY"
	[ "$status" -eq 1 ]
	[ "$output" = "keystrap: 'plain.img' is not a LUKS2 device: no LUKS header" ]
	[ "$(sha256sum <plain.img)" = "$(head -c 20M /dev/zero | sha256sum)" ]

	run "$KEYSTRAP" enroll --device missing.img --unlock-key-file "$KEY"
	[ "$status" -eq 1 ]
	[ "$output" = "keystrap: no such device 'missing.img'" ]
	[ ! -e missing.img ]
}

@test "rollback: when the token cannot be written, the new keyslot is removed again" {
	for i in $(seq 0 31); do
		printf '{"type":"filler","keyslots":[]}' | cryptsetup token import --token-id "$i" "$IMG"
	done
	run "$KEYSTRAP" enroll --device "$IMG" --unlock-key-file "$KEY"
	[ "$status" -eq 1 ]
	[ "$output" = "keystrap: all 32 LUKS2 token slots of '$IMG' are in use; nothing was added (free one with 'cryptsetup token remove')" ]
	[ "$(keyslots "$IMG")" = "0" ]
	[ "$(cryptsetup luksDump --dump-json-metadata "$IMG" | jq -r '[.tokens[].type] | unique | join(",")')" = "filler" ]
	cryptsetup open --test-passphrase --key-slot 0 --key-file "$KEY" "$IMG"
	# Twin: with one token slot free, the same enroll lands in it.
	cryptsetup token remove --token-id 17 "$IMG"
	run "$KEYSTRAP" enroll --device "$IMG" --unlock-key-file "$KEY"
	[ "$status" -eq 0 ]
	[[ "$output" == *"keyslot 1, token 17"* ]]
}

@test "no TPM: exit 1 naming the TCTI, volume untouched" {
	before=$(header_sum "$IMG")
	KEYSTRAP_TCTI="swtpm:host=127.0.0.1,port=1" run "$KEYSTRAP" enroll --device "$IMG" --unlock-key-file "$KEY"
	[ "$status" -eq 1 ]
	[ "$output" = "keystrap: no TPM reachable via TCTI 'swtpm:host=127.0.0.1,port=1'" ]
	[ "$(header_sum "$IMG")" = "$before" ]
	[ "$(keyslots "$IMG")" = "0" ]
}

@test "enroll vets keystrap.conf first: a clean one passes, one holding a secret stops it before any write" {
	cp "$BATS_TEST_DIRNAME/../../keystrap.conf.example" good.conf
	run "$KEYSTRAP" enroll --device "$IMG" --unlock-key-file "$KEY" --config good.conf
	[ "$status" -eq 0 ]

	luks_setup
	before=$(header_sum "$IMG")
	{ cat good.conf; echo "# recovery: $(head -c 32 /dev/urandom | xxd -p -c 64)"; } >leaky.conf
	run "$KEYSTRAP" enroll --device "$IMG" --unlock-key-file "$KEY" --config leaky.conf
	[ "$status" -eq 1 ]
	[ "${#lines[@]}" -eq 1 ]
	[[ "$output" == "keystrap: leaky.conf:"*"looks like"* ]]
	[ "$(header_sum "$IMG")" = "$before" ]
	[ "$(keyslots "$IMG")" = "0" ]
}
