#!/usr/bin/env bats
# keystrap unlock on bad input and a hostile or broken TPM: a corrupted, truncated,
# oversized or malformed token, a token whose keyslot is gone, a cleared TPM, no TPM, a TPM
# in dictionary-attack lockout, tokens it must refuse. Each is one clear line, exit 1, no
# crash (the sanitizer build runs here), and the LUKS header exactly as it was. Each starts
# from a volume that unlocks, so the failure is the defect's and nothing else's.

load ../lib/swtpm

setup_file() {
	swtpm_start
}

teardown_file() {
	swtpm_stop
}

setup() {
	luks_setup
	"$KEYSTRAP" enroll --device "$IMG" --unlock-key-file "$KEY" >/dev/null
	"$KEYSTRAP" unlock --device "$IMG" --dry-run >/dev/null
}

teardown() {
	if [ -n "${DA_CHANGED:-}" ]; then
		da_lockout_clear
	fi
}

blob() {
	cryptsetup token export --token-id 0 "$IMG" | jq -r '."tpm2-blob"' | base64 -d
}

set_blob() {
	# shellcheck disable=SC2016 # $b is jq's, given with --arg
	token_edit "$IMG" 0 '."tpm2-blob" = $b' --arg b "$(base64 -w0)"
}

# flip OFFSET: copies stdin to stdout with the byte at OFFSET inverted.
flip() {
	local hex
	hex=$(xxd -p | tr -d '\n')
	printf '%s%02x%s' "${hex:0:$1*2}" $((0x${hex:$1*2:2} ^ 0xff)) "${hex:$1*2+2}" | xxd -r -p
}

# Where the TPM2B_PUBLIC starts: after the 2-byte size and body of the TPM2B_PRIVATE.
public_offset() {
	echo $((2 + 0x$(blob | head -c 2 | xxd -p)))
}

one_line() {
	[ "${#lines[@]}" -eq 1 ] || { echo "expected one line, got: $output"; return 1; }
	[[ "$output" == "keystrap: $IMG token 0"* ]] || { echo "does not name the volume and token: $output"; return 1; }
}

@test "a flipped byte in the private part: the blob does not load under this TPM's key" {
	blob | flip 10 | set_blob
	unlock_must_fail "$IMG"
	one_line
	[ "$output" = "keystrap: $IMG token 0: the sealed key does not belong to this TPM's storage key (TPM cleared, a different TPM or SRK, or a corrupted tpm2-blob)" ]
}

@test "a flipped byte in the public part (its policy): the blob does not load" {
	# TPM2B_PUBLIC: size(2) type(2) nameAlg(2) attributes(4) authPolicy size(2) digest(32)
	blob | flip $(($(public_offset) + 14)) | set_blob
	unlock_must_fail "$IMG"
	one_line
	[[ "$output" == *"the sealed key does not belong to this TPM's storage key"* ]]
}

@test "a public part that is not a sealed data object is refused before the TPM sees it" {
	blob | flip $(($(public_offset) + 3)) | set_blob # the type field
	unlock_must_fail "$IMG"
	one_line
	[ "$output" = "keystrap: $IMG token 0: tpm2-blob is not a well-formed sealed object" ]
}

@test "a truncated blob, and one with trailing bytes: not a well-formed sealed object" {
	blob >good.bin
	head -c -10 good.bin | set_blob
	unlock_must_fail "$IMG"
	one_line
	[ "$output" = "keystrap: $IMG token 0: tpm2-blob is not a well-formed sealed object" ]
	{ cat good.bin; printf 'xx'; } | set_blob
	unlock_must_fail "$IMG"
	[ "$output" = "keystrap: $IMG token 0: tpm2-blob is not a well-formed sealed object" ]
	head -c 1 good.bin | set_blob
	unlock_must_fail "$IMG"
	[ "$output" = "keystrap: $IMG token 0: tpm2-blob is not a well-formed sealed object" ]
}

@test "an oversized blob (over 4 KiB) is refused as malformed" {
	{ blob; head -c 5000 /dev/zero; } | set_blob
	unlock_must_fail "$IMG"
	one_line
	[ "$output" = "keystrap: $IMG token 0 is malformed: tpm2-blob is larger than 4 KiB" ]
}

@test "malformed token JSON: each defect named" {
	cryptsetup token export --token-id 0 "$IMG" >good.json
	cases=(
		'."tpm2-blob" = "not base64!"' "tpm2-blob is not valid base64"
		'."tpm2-blob" = ""' "tpm2-blob is not valid base64"
		'del(."tpm2-blob")' "token lacks tpm2-blob"
		'."tpm2-pcrs" = ["7", "15"]' "tpm2-pcrs holds something other than a number"
		'."tpm2-pcrs" = [7, 99]' "tpm2-pcrs holds a PCR index outside 0..23"
		'del(."tpm2-pcrs")' "token lacks tpm2-pcrs"
		'."tpm2-pcr-bank" = "md5"' "tpm2-pcr-bank names an unknown bank"
		'."tpm2-primary-alg" = "dsa"' "tpm2-primary-alg is neither ecc nor rsa"
		'del(."tpm2-policy-hash")' "tpm2-policy-hash is missing or not a sha256 digest in hex"
		'."tpm2-policy-hash" = "00"' "tpm2-policy-hash is missing or not a sha256 digest in hex"
		'.keyslots = ["1", "0"]' "token must name exactly one keyslot"
		'."keystrap-pcr-values"."7" = "00"' "keystrap-pcr-values has a value that is not a digest of the bank's size"
		'."keystrap-pcr-values"."11" = ."keystrap-pcr-values"."7"' "keystrap-pcr-values names a PCR the token does not bind"
		'.tpm2_srk = "%%%"' "tpm2_srk is not valid base64 of a serialized handle"
	)
	for ((i = 0; i < ${#cases[@]}; i += 2)); do
		cryptsetup token remove --token-id 0 "$IMG"
		cryptsetup token import --token-id 0 --json-file good.json "$IMG"
		token_edit "$IMG" 0 "${cases[i]}"
		unlock_must_fail "$IMG"
		one_line
		[ "$output" = "keystrap: $IMG token 0 is malformed: ${cases[i + 1]}" ]
	done
}

@test "the token's keyslot was removed: the token is bound to no keyslot" {
	cryptsetup luksKillSlot --batch-mode --key-file "$KEY" "$IMG" 1
	[ "$(cryptsetup token export --token-id 0 "$IMG" | jq -c .keyslots)" = "[]" ]
	# keystrap's own token: the dry run says it is left over (a real unlock removes it).
	unlock_must_fail "$IMG"
	[ "$output" = "keystrap: '$IMG' holds keystrap token 0, bound to no keyslot (its keyslot was removed); keystrap enroll or unlock (without --dry-run) removes it" ]
	# Twin: another tool's token (no keystrap-pcr-values) is not keystrap's to remove.
	token_edit "$IMG" 0 'del(."keystrap-pcr-values")'
	unlock_must_fail "$IMG"
	one_line
	[ "$output" = "keystrap: $IMG token 0 is malformed: token is bound to no keyslot (its keyslot was removed)" ]
}

@test "a token pointing at a keyslot that holds no volume key is refused before unsealing" {
	head -c 32 /dev/urandom >unbound.key
	cryptsetup luksAddKey --batch-mode --unbound --key-size 256 --pbkdf pbkdf2 \
		--pbkdf-force-iterations 1000 "$IMG" unbound.key
	[ "$(keyslots "$IMG")" = "0 1 2" ]
	token_edit "$IMG" 0 '.keyslots = ["2"]'
	unlock_must_fail "$IMG"
	one_line
	[ "$output" = "keystrap: $IMG token 0 points at keyslot 2, which holds no key of this volume" ]
}

@test "a token pointing at another keyslot: the unsealed key does not open it" {
	token_edit "$IMG" 0 '.keyslots = ["0"]'
	unlock_must_fail "$IMG"
	one_line
	[ "$output" = "keystrap: $IMG token 0: the unsealed key does not open keyslot 0" ]
}

@test "TPM cleared (tpm2_clear): the sealed key does not belong to this TPM's storage key" {
	tpm2_clear
	unlock_must_fail "$IMG"
	one_line
	[ "$output" = "keystrap: $IMG token 0: the sealed key does not belong to this TPM's storage key (TPM cleared, a different TPM or SRK, or a corrupted tpm2-blob)" ]
	# Twin: enrolled again under the new storage key, it unlocks.
	"$KEYSTRAP" enroll --device "$IMG" --unlock-key-file "$KEY" >/dev/null
	cryptsetup token remove --token-id 0 "$IMG"
	run "$KEYSTRAP" unlock --device "$IMG" --dry-run
	[ "$status" -eq 0 ]
	[[ "$output" == *"token 1 unseals a key that opens keyslot 2"* ]]
}

@test "no TPM at the TCTI: exit 1 naming it" {
	port=$(free_port)
	KEYSTRAP_TCTI="swtpm:host=127.0.0.1,port=$port" unlock_must_fail "$IMG"
	[ "$output" = "keystrap: no TPM reachable via TCTI 'swtpm:host=127.0.0.1,port=$port'" ]
	KEYSTRAP_TCTI="device:/nonexistent/tpm" unlock_must_fail "$IMG"
	[ "$output" = "keystrap: no TPM reachable via TCTI 'device:/nonexistent/tpm'" ]
	KEYSTRAP_TCTI="swtpm:host=127.0.0.1,port=$port" run "$KEYSTRAP" lock
	[ "$status" -eq 1 ]
	[ "$output" = "keystrap: no TPM reachable via TCTI 'swtpm:host=127.0.0.1,port=$port'" ]
}

@test "dictionary-attack lockout: one clear line; unlocks again once the lockout is cleared" {
	DA_CHANGED=1
	da_lockout
	unlock_must_fail "$IMG"
	one_line
	[ "$output" = "keystrap: $IMG token 0: the TPM is in dictionary-attack lockout" ]
	tpm2_dictionarylockout -c
	run "$KEYSTRAP" unlock --device "$IMG" --dry-run
	[ "$status" -eq 0 ]
}

@test "a token that needs a PIN (systemd-cryptenroll --tpm2-with-pin) is refused clearly" {
	cryptsetup token remove --token-id 0 "$IMG"
	NEWPIN=1234 systemd-cryptenroll --tpm2-device="$KEYSTRAP_TCTI" --tpm2-pcrs=7 --tpm2-with-pin=yes \
		--unlock-key-file="$KEY" "$IMG" </dev/null
	sd_flush
	[ "$(cryptsetup token export --token-id 0 "$IMG" | jq '."tpm2-pin"')" = true ]
	unlock_must_fail "$IMG"
	one_line
	[ "$output" = "keystrap: $IMG token 0 needs a PIN; keystrap unlocks unattended only" ]
}

@test "a signed-policy token whose tpm2_pubkey is no PEM key is malformed, said in one line (signed-policy.bats opens real ones)" {
	token_edit "$IMG" 0 '.tpm2_pubkey = "AAAA" | .tpm2_pubkey_pcrs = [11]'
	unlock_must_fail "$IMG"
	one_line
	[ "$output" = "keystrap: $IMG token 0 is malformed: tpm2_pubkey is not a PEM public key" ]
}

@test "a LUKS1 volume, a file with no LUKS header, a missing device: one line, nothing written" {
	truncate -s 20M luks1.img
	cryptsetup luksFormat --type luks1 --pbkdf-force-iterations 1000 --batch-mode --key-file "$KEY" luks1.img
	sum=$(sha256sum <luks1.img)
	run "$KEYSTRAP" unlock --device luks1.img --dry-run
	[ "$status" -eq 1 ]
	[ "$output" = "keystrap: 'luks1.img' is LUKS1; keystrap needs LUKS2 (cryptsetup convert --type luks2)" ]
	[ "$(sha256sum <luks1.img)" = "$sum" ]
	head -c 1M /dev/urandom >random.img
	sum=$(sha256sum <random.img)
	run "$KEYSTRAP" unlock --device random.img --dry-run
	[ "$status" -eq 1 ]
	[ "$output" = "keystrap: 'random.img' is not a LUKS2 device: no LUKS header" ]
	[ "$(sha256sum <random.img)" = "$sum" ]
	run "$KEYSTRAP" unlock --device missing.img --dry-run
	[ "$status" -eq 1 ]
	[ "$output" = "keystrap: no such device 'missing.img'" ]
}
