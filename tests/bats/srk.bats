#!/usr/bin/env bats
# Tokens sealed under a persistent SRK at 0x81000001 and carrying "tpm2_srk" (the shape
# systemd >= 254 writes), built here with tpm2-tools as the oracle.

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
	cd "$BATS_TEST_TMPDIR"
}

teardown() {
	tpm2_evictcontrol -C o -c 0x81000001 >/dev/null 2>&1 || true
}

# TCG storage template (ECC P-256, AES-128-CFB, noDA) persisted at 0x81000001.
make_srk() {
	tpm2_createprimary -Q -C o -g sha256 -G "${1:-ecc256:aes128cfb}" -c srk.ctx \
		-a 'fixedtpm|fixedparent|sensitivedataorigin|userwithauth|noda|restricted|decrypt'
	tpm2_evictcontrol -Q -C o -c srk.ctx 0x81000001
	tpm2_flushcontext -t
}

# Seals a fresh key under the SRK with a PCR 7+15 policy and writes keyslot + token.
enroll_under_srk() {
	tpm2_readpublic -Q -c 0x81000001 -t srk.tr
	tpm2_startauthsession -S trial.ctx
	tpm2_policypcr -Q -S trial.ctx -l sha256:7,15 -L policy.dat
	tpm2_flushcontext trial.ctx
	head -c 32 /dev/urandom >secret.bin
	tpm2_create -Q -C 0x81000001 -L policy.dat -a 'fixedtpm|fixedparent' -i secret.bin \
		-u sealed.pub -r sealed.priv
	base64 -w0 secret.bin >pass
	cryptsetup luksAddKey --batch-mode --pbkdf pbkdf2 --pbkdf-force-iterations 1000 \
		--key-file "$KEY" "$IMG" pass
	rm -f secret.bin
	jq -cn --arg blob "$(cat sealed.priv sealed.pub | base64 -w0)" \
		--arg hash "$(xxd -p -c 256 policy.dat)" --arg srk "$(base64 -w0 srk.tr)" \
		'{type:"systemd-tpm2", keyslots:["1"], "tpm2-blob":$blob, "tpm2-pcrs":[7,15],
		  "tpm2-pcr-bank":"sha256", "tpm2-primary-alg":"ecc", "tpm2-policy-hash":$hash,
		  "tpm2-pin":false, "tpm2_srk":$srk}' >token.json
	cryptsetup token import --json-file token.json "$IMG"
}

@test "a token sealed under the persistent SRK (tpm2_srk) unlocks" {
	make_srk
	enroll_under_srk
	run "$KEYSTRAP" unlock --device "$IMG" --dry-run
	[ "$status" -eq 0 ]
	[[ "$output" == *"token 0 unseals a key that opens keyslot 1"* ]]
}

@test "a different key at 0x81000001 is refused before anything is unsealed" {
	make_srk
	enroll_under_srk
	before=$(header_sum "$IMG")
	tpm2_evictcontrol -Q -C o -c 0x81000001
	make_srk rsa2048:aes128cfb
	run "$KEYSTRAP" unlock --device "$IMG" --dry-run
	[ "$status" -eq 1 ]
	[[ "$output" == *"the TPM's SRK at 0x81000001 is not the one the volume was sealed under"* ]]
	[ "$(header_sum "$IMG")" = "$before" ]
}

@test "no SRK at 0x81000001 at all is the same clear refusal" {
	make_srk
	enroll_under_srk
	tpm2_evictcontrol -Q -C o -c 0x81000001
	run "$KEYSTRAP" unlock --device "$IMG" --dry-run
	[ "$status" -eq 1 ]
	[[ "$output" == *"SRK at 0x81000001 is not the one"* ]]
}

@test "enroll --srk creates and persists the TCG SRK (noDA) and seals under it" {
	run tpm2_getcap handles-persistent
	[[ "$output" != *0x81000001* ]]
	run "$KEYSTRAP" enroll --device "$IMG" --srk --unlock-key-file "$KEY"
	[ "$status" -eq 0 ]
	[[ "$output" == *"primary SRK 0x81000001"* ]]
	tpm2_readpublic -c 0x81000001 | grep -q noda
	run "$KEYSTRAP" unlock --device "$IMG" --dry-run
	[ "$status" -eq 0 ]
	cryptsetup token export --token-id 0 "$IMG" | jq -e '."tpm2_srk" | length > 0'
}

@test "enroll --srk reuses an SRK that is already there, and refuses a non-storage key there" {
	make_srk
	name=$(tpm2_readpublic -c 0x81000001 | awk '/^name:/{print $2}')
	"$KEYSTRAP" enroll --device "$IMG" --srk --unlock-key-file "$KEY"
	[ "$(tpm2_readpublic -c 0x81000001 | awk '/^name:/{print $2}')" = "$name" ]
	"$KEYSTRAP" unlock --device "$IMG" --dry-run
	tpm2_evictcontrol -Q -C o -c 0x81000001
	tpm2_createprimary -Q -C o -G ecc256 -c sign.ctx -a 'fixedtpm|fixedparent|sensitivedataorigin|userwithauth|sign'
	tpm2_evictcontrol -Q -C o -c sign.ctx 0x81000001
	tpm2_flushcontext -t
	before=$(header_sum "$IMG")
	run "$KEYSTRAP" enroll --device "$IMG" --srk --unlock-key-file "$KEY"
	[ "$status" -eq 1 ]
	[[ "$output" == *"the object at 0x81000001 is not a storage key"* ]]
	[ "$(header_sum "$IMG")" = "$before" ]
}

@test "in DA lockout an --srk (noDA) token still unlocks; the default (systemd 252) one does not" {
	"$KEYSTRAP" enroll --device "$IMG" --srk --unlock-key-file "$KEY"
	cp "$IMG" legacy.img
	cryptsetup token remove --token-id 0 legacy.img
	cryptsetup luksKillSlot --batch-mode --key-file "$KEY" legacy.img 1
	"$KEYSTRAP" enroll --device legacy.img --unlock-key-file "$KEY"
	da_lockout
	run "$KEYSTRAP" unlock --device "$IMG" --dry-run
	da_status=$status
	unlock_must_fail legacy.img
	legacy_output=$output
	da_lockout_clear
	[ "$da_status" -eq 0 ]
	[[ "$legacy_output" == *"dictionary-attack lockout"* ]]
}

@test "after lock an --srk token no longer unseals, naming PCR 15" {
	"$KEYSTRAP" enroll --device "$IMG" --srk --unlock-key-file "$KEY"
	"$KEYSTRAP" lock
	unlock_must_fail "$IMG"
	[[ "$output" == *"PCR 15 is "* ]]
	swtpm_reboot
	"$KEYSTRAP" unlock --device "$IMG" --dry-run
}

@test "systemd 252's plugin cannot open an --srk token (it only knows its transient primary)" {
	"$KEYSTRAP" enroll --device "$IMG" --srk --unlock-key-file "$KEY"
	run sd_token_open "$IMG"
	[ "$status" -ne 0 ]
}

@test "--srk with --primary-alg rsa is a usage error" {
	run "$KEYSTRAP" enroll --device "$IMG" --srk --primary-alg rsa --unlock-key-file "$KEY"
	[ "$status" -eq 2 ]
	[[ "$output" == *"--srk and --primary-alg rsa exclude each other"* ]]
}
