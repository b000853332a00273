#!/usr/bin/env bats
# The attestation core (issue 5) on real swtpms: EK certificates and the EKs derived from the
# TCG templates, an AK for this boot, software MakeCredential against the TPM's
# ActivateCredential, TPM2_Quote against the software verifier. tpm2-tools serve as the oracle
# in both directions. Every positive case has its negative twin.

load ../lib/swtpm

AC=$BATS_TEST_DIRNAME/../../build/asan/attest-check

# Like a manufacturer: certify the ECC P-256 EK (template L-2) with swtpm's local CA and store
# the certificate at NV 0x01c0000a (swtpm_setup only certifies RSA 2048 and ECC P-384 EKs).
provision_ecc256_cert() {
	local dir=$BATS_FILE_TMPDIR/ecc256 x y
	mkdir -p "$dir"
	tpm2_createek -G ecc -c "$dir/ek.ctx" -u "$dir/ek.pub" >/dev/null
	x=$(tpm2_readpublic -c "$dir/ek.ctx" | sed -n 's/^x: //p')
	y=$(tpm2_readpublic -c "$dir/ek.ctx" | sed -n 's/^y: //p')
	tpm2_flushcontext -t >/dev/null
	swtpm_localca --type ek --ek "x=$x,y=$y,id=secp256r1" --dir "$dir" --tpm2 \
		--tpm-spec-family 2.0 --tpm-spec-level 0 --tpm-spec-revision 164 \
		--tpm-manufacturer id:00001014 --tpm-model swtpm --tpm-version id:20191023 \
		--configfile /etc/swtpm-localca.conf --optsfile /etc/swtpm-localca.options >/dev/null
	tpm2_nvdefine 0x01c0000a -C p -s "$(stat -c %s "$dir/ek.cert")" \
		-a "ppwrite|writedefine|ppread|ownerread|authread|no_da|platformcreate" >/dev/null
	tpm2_nvwrite 0x01c0000a -C p -i "$dir/ek.cert"
}

setup_file() {
	# A second TPM first: "another machine" for the cross-TPM twins.
	swtpm_start "$BATS_FILE_TMPDIR/other"
	export OTHER_DIR=$SWTPM_DIR OTHER_PORT=$SWTPM_PORT OTHER_TCTI=$KEYSTRAP_TCTI
	swtpm_start
	provision_ecc256_cert
	export F=$BATS_FILE_TMPDIR
	for k in rsa2048 ecc256 ecc384; do
		"$AC" ek "$k" "$F/ek-$k.pub" >/dev/null
		KEYSTRAP_TCTI=$OTHER_TCTI "$AC" ek "$k" "$F/other-ek-$k.pub" >/dev/null 2>&1 || true
	done
	export U U2
	U=$(head -c 32 /dev/urandom | xxd -p -c 64)
	U2=$(head -c 32 /dev/urandom | xxd -p -c 64)
	export AK_NAME AK2_NAME
	AK_NAME=$("$AC" ak "$U" "$F/ak.pub")
	AK2_NAME=$("$AC" ak "$U2" "$F/ak2.pub")
	head -c 32 /dev/urandom >"$F/secret"
}

teardown_file() {
	swtpm_stop
	SWTPM_DIR=$OTHER_DIR SWTPM_PORT=$OTHER_PORT swtpm_stop
}

setup() {
	cd "$BATS_TEST_TMPDIR"
	NONCE=$(head -c 32 /dev/urandom | xxd -p -c 64)
}

teardown() {
	tpm2_flushcontext -t >/dev/null 2>&1 || true
	tpm2_flushcontext -s >/dev/null 2>&1 || true
}

# flip FILE OFFSET: inverts one byte in place.
flip() {
	local b
	b=$(xxd -p -s "$2" -l 1 "$1")
	printf "\\x$(printf '%02x' $((0x$b ^ 0xff)))" | dd of="$1" bs=1 seek="$2" conv=notrunc status=none
}

REFUSED="ActivateCredential refused: the credential is not for this TPM's EK and this AK"

# activate KIND CRED SECRET: ActivateCredential with KIND's EK and the AK (unique $U); sets $output.
activate() {
	run "$AC" activate "$1" "$U" "$2" "$3"
}

# --- EK certificates and the EKs derived from the TCG templates ---

@test "each EK certificate (RSA 2048, ECC P-256, ECC P-384) certifies the EK derived from its template" {
	for k in rsa2048 ecc256 ecc384; do
		run "$AC" ek "$k" ek.pub
		[ "$status" -eq 0 ]
		[[ "$output" == "the $k EK certificate ("*" bytes) certifies the EK derived from the profile template" ]]
	done
}

@test "the derived EKs are byte for byte the ones tpm2_createek makes" {
	for k in rsa:rsa2048 ecc:ecc256 ecc384:ecc384; do
		tpm2_createek -G "${k%%:*}" -c ek.ctx -u tools.pub >/dev/null
		tpm2_flushcontext -t
		cmp tools.pub "$F/ek-${k#*:}.pub"
	done
}

@test "an EK certificate does not certify another TPM's EK" {
	for k in rsa2048 ecc384; do
		run "$AC" ek "$k" ek.pub "$F/other-ek-$k.pub"
		[ "$status" -eq 1 ]
		[ "$output" = "the $k EK certificate certifies another key" ]
	done
}

@test "a TPM without an ECC P-256 EK certificate says so" {
	KEYSTRAP_TCTI=$OTHER_TCTI run "$AC" ek ecc256 ek.pub
	[ "$status" -eq 1 ]
	[ "$output" = "no EK certificate for ecc256 in this TPM" ]
}

# --- the AK ---

@test "the AK is a restricted ECDSA P-256 signing key of this boot, named as the TPM names it" {
	run "$AC" ak "$U" ak.pub
	[ "$status" -eq 0 ]
	[ "$output" = "$AK_NAME" ]
	[[ "$output" =~ ^000b[0-9a-f]{64}$ ]]
	run tpm2_print -t TPM2B_PUBLIC ak.pub
	[[ "$output" == *"value: fixedtpm|stclear|fixedparent|sensitivedataorigin|userwithauth|restricted|sign"* ]]
	[[ "$output" == *"value: NIST p256"* ]]
	[[ "$output" == *"value: ecdsa"* ]]
}

@test "the same unique re-derives the same AK; another unique gives another AK" {
	[ "$("$AC" ak "$U" a.pub)" = "$AK_NAME" ]
	[ "$AK2_NAME" != "$AK_NAME" ]
	[ "$(KEYSTRAP_TCTI=$OTHER_TCTI "$AC" ak "$U" b.pub)" != "$AK_NAME" ]
}

# --- MakeCredential (software) and ActivateCredential (TPM) ---

@test "a credential for the RSA 2048 EK and the AK's name is activated and yields the secret" {
	"$AC" makecred "$F/ek-rsa2048.pub" "$AK_NAME" "$F/secret" cred
	activate rsa2048 cred "$F/secret"
	[ "$status" -eq 0 ]
	[ "$output" = "ActivateCredential recovered the secret (32 bytes)" ]
}

@test "a credential for the ECC P-256 EK is activated and yields the secret" {
	"$AC" makecred "$F/ek-ecc256.pub" "$AK_NAME" "$F/secret" cred
	activate ecc256 cred "$F/secret"
	[ "$status" -eq 0 ]
	[ "$output" = "ActivateCredential recovered the secret (32 bytes)" ]
}

@test "a 48-byte credential for the ECC P-384 (SHA-384) EK is activated and yields the secret" {
	head -c 48 /dev/urandom >secret48
	"$AC" makecred "$F/ek-ecc384.pub" "$AK_NAME" secret48 cred
	activate ecc384 cred secret48
	[ "$status" -eq 0 ]
	[ "$output" = "ActivateCredential recovered the secret (48 bytes)" ]
}

@test "a credential bound to another AK's name, or made to another TPM's EK, is refused by the TPM" {
	for k in rsa2048 ecc256 ecc384; do
		"$AC" makecred "$F/ek-$k.pub" "$AK2_NAME" "$F/secret" cred
		activate "$k" cred "$F/secret"
		[ "$status" -eq 1 ] && [ "$output" = "$REFUSED" ]
	done
	for k in rsa2048 ecc384; do
		"$AC" makecred "$F/other-ek-$k.pub" "$AK_NAME" "$F/secret" cred
		activate "$k" cred "$F/secret"
		[ "$status" -eq 1 ] && [ "$output" = "$REFUSED" ]
	done
}

@test "a tampered credential (HMAC, encrypted secret, or seed) is refused" {
	for k in rsa2048 ecc256; do
		for off in 12 44 100; do
			"$AC" makecred "$F/ek-$k.pub" "$AK_NAME" "$F/secret" cred
			[ "$off" -lt "$(stat -c %s cred)" ]
			flip cred "$off"
			activate "$k" cred "$F/secret"
			[ "$status" -eq 1 ] && [ "$output" = "$REFUSED" ]
		done
	done
}

@test "a secret longer than the EK's name digest is refused by MakeCredential, as by the TPM" {
	head -c 33 /dev/urandom >long
	run "$AC" makecred "$F/ek-rsa2048.pub" "$AK_NAME" long cred
	[ "$status" -eq 1 ]
	[ "$output" = "MakeCredential failed: Message too long" ]
	[ ! -e cred ]
}

# --- tpm2-tools as the oracle, both directions ---

@test "tpm2_makecredential's software credential is activated by keystrap" {
	for k in rsa2048 ecc256 ecc384; do
		tpm2_makecredential -Q --tcti none -e "$F/ek-$k.pub" -s "$F/secret" -n "$AK_NAME" -o cred
		activate "$k" cred "$F/secret"
		[ "$status" -eq 0 ]
		[ "$output" = "ActivateCredential recovered the secret (32 bytes)" ]
	done
}

@test "keystrap's credential is activated by tpm2_activatecredential (EK and AK from tpm2-tools)" {
	for g in rsa ecc; do
		tpm2_createek -G "$g" -c ek.ctx -u ek.pub >/dev/null
		tpm2_flushcontext -t
		tpm2_createak -C ek.ctx -c ak.ctx -G ecc -g sha256 -s ecdsa -u ak.pub -n ak.name >/dev/null
		tpm2_flushcontext -t
		"$AC" makecred ek.pub "$(xxd -p -c 256 ak.name)" "$F/secret" cred
		tpm2_startauthsession --policy-session -S session.ctx
		tpm2_policysecret -S session.ctx -c e >/dev/null
		tpm2_activatecredential -c ak.ctx -C ek.ctx -i cred -o got -P session:session.ctx >/dev/null
		tpm2_flushcontext session.ctx
		tpm2_flushcontext -t
		cmp got "$F/secret"
	done
}

# --- TPM2_Quote and the verifier ---

quote() { # quote DIR [UNIQUE] [SELECTION]
	mkdir -p "$1"
	"$AC" quote "${2:-$U}" "${3:-sha256:0,7,15}" "$NONCE" "$1" >/dev/null
}

# refused DIR REASON [AK.pub [SELECTION [NONCE]]]: verifying DIR's quote fails, saying REASON.
refused() {
	run "$AC" verify "${3:-$F/ak.pub}" "${4:-sha256:0,7,15}" "${5:-$NONCE}" "$1"
	[ "$status" -eq 1 ]
	[ "$output" = "quote refused: $2" ]
}

@test "a fresh quote verifies: signed by the AK, the nonce, PCRs 0,7,15 as reported" {
	quote q
	run "$AC" verify "$F/ak.pub" sha256:0,7,15 "$NONCE" q
	[ "$status" -eq 0 ]
	[[ "$output" == "quote verified: signed by the AK, nonce and PCRs sha256:0,7,15 match"* ]]
}

@test "a quote made for another nonce is refused" {
	quote q
	refused q "quote extraData does not match the expected nonce" "$F/ak.pub" sha256:0,7,15 \
		"$(head -c 32 /dev/urandom | xxd -p -c 64)"
}

@test "PCR values read after a later extend do not match the quoted digest" {
	quote q
	tpm2_pcrextend "15:sha256=$(printf '%064x' 1)"
	"$AC" pcrread sha256:0,7,15 q/pcrs
	run "$AC" verify "$F/ak.pub" sha256:0,7,15 "$NONCE" q
	swtpm_reboot
	[ "$status" -eq 1 ]
	[ "$output" = "quote refused: PCR digest does not match the PCR values" ]
}

@test "a quote over another PCR selection than the one asked for is refused, naming both" {
	quote q "$U" sha256:0,7
	refused q "quoted PCR selection sha256:0,7 is not the requested sha256:0,15" "$F/ak.pub" sha256:0,15
}

@test "a quote by another AK, or by the same unique on another TPM, is refused" {
	quote q "$U2"
	refused q "quote signed by a key other than the AK"
	mkdir -p o
	KEYSTRAP_TCTI=$OTHER_TCTI "$AC" quote "$U" sha256:0,7,15 "$NONCE" o >/dev/null
	refused o "quote signed by a key other than the AK"
}

@test "the AK's quote carrying another key's signature is refused" {
	quote q
	quote q2 "$U2"
	cp q2/signature q/signature
	refused q "quote signature does not verify with the AK's public key"
}

@test "altered attest bytes are refused: a clock byte breaks the signature, the magic is named" {
	quote q
	cp -r q q2
	flip q/attest 80
	refused q "quote signature does not verify with the AK's public key"
	flip q2/attest 0
	refused q2 "attest data was not generated by a TPM (magic 0x00544347)"
}

@test "a truncated attest or signature is refused as malformed" {
	quote q
	cp -r q q2
	head -c 100 q/attest >t && mv t q/attest
	refused q "attest data is not a well-formed quote"
	head -c 40 q2/signature >t && mv t q2/signature
	refused q2 "signature is not a well-formed TPMT_SIGNATURE"
}

@test "a public key that is not a restricted signing key is refused as AK" {
	quote q
	refused q "AK is not a restricted signing key bound to its TPM" "$F/ek-ecc256.pub"
}

@test "tpm2_quote with an RSASSA AK under the EK verifies through the EK's qualified name" {
	tpm2_createek -G rsa -c ek.ctx -u ek.pub >/dev/null
	tpm2_flushcontext -t
	tpm2_createak -C ek.ctx -c ak.ctx -G rsa -g sha256 -s rsassa -u ak.pub -n ak.name >/dev/null
	tpm2_flushcontext -t
	mkdir q
	tpm2_quote -Q -c ak.ctx -l sha256:0,7 -q "$NONCE" -m q/attest -s q/signature
	tpm2_flushcontext -t
	"$AC" pcrread sha256:0,7 q/pcrs
	run "$AC" verify ak.pub sha256:0,7 "$NONCE" q ek.pub
	[ "$status" -eq 0 ]
	[[ "$output" == "quote verified: signed by the AK, nonce and PCRs sha256:0,7 match"* ]]
	# Its twin: the same AK taken for a primary of the endorsement hierarchy is another signer.
	refused q "quote signed by a key other than the AK" ak.pub sha256:0,7
}
