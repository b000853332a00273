# shellcheck shell=bash
# An independent node for keystrap-server: tpm2-tools for every TPM step, openssl for the CSR
# and the protocol's hashes, jq and curl for the messages; no keystrap code. It follows the
# protocol as docs/protocol.md and keystrap-server(8) describe it, so a test with it shows what a
# third-party client can rely on. Load after ../lib/swtpm and ../lib/server (post, SRV_*).

# t2n_keys DIR PARENT: in DIR, this TPM's RSA EK (template L-1) and its certificate (ek.pub,
# ek.ctx, ek.pem) and an ECDSA P-256 AK (ak.pub, ak.ctx) whose parent is
#   ek      the RSA EK, as tpm2_createak makes it
#   ecc-ek  the TPM's ECC P-256 EK (tpm2_createak -C on another EK than the one presented)
#   owner   an ECC primary of the owner hierarchy (an SRK, where go-attestation puts its AKs)
t2n_keys() {
	local d=$1
	mkdir -p "$d"
	tpm2_createek -G rsa -c "$d/ek.ctx" -u "$d/ek.pub" >/dev/null || return 1
	tpm2_flushcontext -t >/dev/null
	tpm2_nvread -C o 0x01c00002 -o "$d/ek.nv" >/dev/null || return 1
	openssl x509 -inform DER -in "$d/ek.nv" -out "$d/ek.pem" || return 1
	case $2 in
	ek)
		tpm2_createak -C "$d/ek.ctx" -c "$d/ak.ctx" -G ecc -g sha256 -s ecdsa -u "$d/ak.pub" >/dev/null ;;
	ecc-ek)
		tpm2_createek -G ecc -c "$d/ek2.ctx" >/dev/null && tpm2_flushcontext -t >/dev/null &&
			tpm2_createak -C "$d/ek2.ctx" -c "$d/ak.ctx" -G ecc -g sha256 -s ecdsa -u "$d/ak.pub" >/dev/null ;;
	owner)
		tpm2_createprimary -Q -C o -G ecc -c "$d/srk.ctx" && tpm2_flushcontext -t >/dev/null &&
			tpm2_create -Q -C "$d/srk.ctx" -G ecc256:ecdsa-sha256:null -u "$d/ak.pub" -r "$d/ak.priv" \
				-a 'fixedtpm|fixedparent|sensitivedataorigin|userwithauth|restricted|sign' &&
			tpm2_flushcontext -t >/dev/null &&
			tpm2_load -Q -C "$d/srk.ctx" -u "$d/ak.pub" -r "$d/ak.priv" -c "$d/ak.ctx" ;;
	*) return 2 ;;
	esac || return 1
	tpm2_flushcontext -t >/dev/null
}

# t2n_start DIR: DIR/start.json, the start message for DIR's keys.
t2n_start() {
	jq -n --rawfile c "$1/ek.pem" --arg e "$(base64 -w0 "$1/ek.pub")" --arg a "$(base64 -w0 "$1/ak.pub")" \
		'{version: "0.1.0", ek_cert: $c, ek_pub: $e, ak_pub: $a}' >"$1/start.json"
}

# t2n_finish DIR CHALLENGE: DIR/finish.json answering CHALLENGE (a file) with DIR's keys.
t2n_finish() {
	local d=$1 ch=$2 sel pcrs="{}" p
	# The credential in tpm2-tools' file form: magic, version 1, TPM2B_ID_OBJECT, TPM2B_ENCRYPTED_SECRET.
	{
		printf '\xba\xdc\xc0\xde\x00\x00\x00\x01'
		jq -r .credential_blob "$ch" | base64 -d
		jq -r .credential_seed "$ch" | base64 -d
	} >"$d/cred"
	tpm2_startauthsession --policy-session -S "$d/session.ctx" >/dev/null || return 1
	tpm2_policysecret -S "$d/session.ctx" -c e >/dev/null || return 1
	tpm2_activatecredential -c "$d/ak.ctx" -C "$d/ek.ctx" -i "$d/cred" -o "$d/secret" \
		-P "session:$d/session.ctx" >/dev/null || return 1
	tpm2_flushcontext "$d/session.ctx" >/dev/null
	tpm2_flushcontext -t >/dev/null
	jq -r .nonce "$ch" | base64 -d >"$d/nonce"
	# proof = HMAC-SHA256(secret, "keystrap-proof" || nonce)
	{ printf keystrap-proof; cat "$d/nonce"; } |
		openssl dgst -sha256 -mac HMAC -macopt "hexkey:$(xxd -p -c 256 "$d/secret")" -binary >"$d/proof"
	openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=tpm2-tools-node \
		-keyout "$d/node.key" -out "$d/csr.pem" 2>/dev/null || return 1
	openssl pkey -in "$d/node.key" -pubout -outform DER -out "$d/spki.der" || return 1
	# extraData = SHA-256(nonce || proof || SubjectPublicKeyInfo of the CSR key)
	cat "$d/nonce" "$d/proof" "$d/spki.der" | openssl dgst -sha256 -binary >"$d/extra"
	sel="$(jq -r .pcr_bank "$ch"):$(jq -r '.pcrs | map(tostring) | join(",")' "$ch")"
	tpm2_quote -Q -c "$d/ak.ctx" -l "$sel" -q "$(xxd -p -c 64 "$d/extra")" -m "$d/attest" -s "$d/signature" ||
		return 1
	tpm2_flushcontext -t >/dev/null
	for p in $(jq -r '.pcrs[]' "$ch"); do
		pcrs=$(jq -c --arg p "$p" --arg v "$(pcr_value "$(jq -r .pcr_bank "$ch")" "$p")" '. + {($p): $v}' <<<"$pcrs")
	done
	jq -n --arg s "$(jq -r .session "$ch")" --arg proof "$(base64 -w0 "$d/proof")" \
		--arg attest "$(base64 -w0 "$d/attest")" --arg sig "$(base64 -w0 "$d/signature")" \
		--arg bank "$(jq -r .pcr_bank "$ch")" --argjson pcrs "$pcrs" --rawfile csr "$d/csr.pem" \
		--arg ek "$(base64 -w0 "$d/ek.pub")" \
		'{session: $s, proof: $proof, attest: $attest, signature: $sig, pcr_bank: $bank, pcrs: $pcrs,
		  csr: $csr, ek_pub: $ek, event_log: "", cel_log: ""}' >"$d/finish.json"
}

# t2n_attest DIR: start, then finish, with DIR's keys; prints the finish's reply (post's form).
t2n_attest() {
	local out
	t2n_start "$1" || return 1
	out=$(post /v1/attest/start "$1/start.json")
	[ "${out##*$'\n'}" = 200 ] || { echo "$out"; return 0; }
	printf '%s' "${out%$'\n'*}" >"$1/challenge.json"
	t2n_finish "$1" "$1/challenge.json" || return 1
	post /v1/attest/finish "$1/finish.json"
}
