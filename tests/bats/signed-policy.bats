#!/usr/bin/env bats
# systemd 252's signed PCR policy tokens (systemd-cryptenroll --tpm2-public-key PUB.pem
# --tpm2-public-key-pcrs 11) on a real swtpm, with systemd's own tools as the oracle: PCR 11 is
# extended the way systemd-stub measures a UKI, systemd-measure calculate must predict the
# value the TPM holds, systemd-measure sign writes the signature file, and systemd's own token
# plugin (tests/lib/sd-token-open.c) must agree with keystrap on every open and every refusal.

load ../lib/swtpm

MEASURE=${MEASURE:-/usr/lib/systemd/systemd-measure}

setup_file() {
	swtpm_start
}

teardown_file() {
	swtpm_stop
}

setup() {
	[ -x "$MEASURE" ] || skip "no $MEASURE (Debian's systemd package)"
	luks_setup
	openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out priv.pem 2>/dev/null
	openssl pkey -in priv.pem -pubout -out pub.pem
	printf 'a kernel image' >linux
	printf 'console=ttyS0' >cmdline
	uki_measure
}

teardown() {
	swtpm_reboot
}

extend11() {
	tpm2_pcrextend "11:sha256=$1"
}

# What systemd-stub does with a UKI of .linux and .cmdline, then systemd-pcrphase's first
# phase: for each section its name with the NUL, then its content; then the phase string.
uki_measure() {
	local s
	for s in linux cmdline; do
		extend11 "$(printf '.%s\0' "$s" | sha256sum | cut -c1-64)"
		extend11 "$(sha256sum <"$s" | cut -c1-64)"
	done
	extend11 "$(printf 'enter-initrd' | sha256sum | cut -c1-64)"
	# The oracle: systemd's own prediction is what the TPM holds.
	[ "$("$MEASURE" calculate --linux=linux --cmdline=cmdline --bank=sha256 --phase=enter-initrd |
		sed -n 's/^11:sha256=//p')" = "$(pcr_value sha256 11)" ]
}

# sign KEY [OUT] [--linux=...]: systemd-measure sign's JSON for the UKI above.
sign() {
	local key=$1 out=${2:-sig.json}
	shift 2 || shift
	openssl pkey -in "$key" -pubout -out "$key.pub"
	"$MEASURE" sign --tpm2-device="$KEYSTRAP_TCTI" --linux=linux --cmdline=cmdline "$@" --bank=sha256 \
		--phase=enter-initrd --private-key="$key" --public-key="$key.pub" >"$out"
	sd_flush
}

cryptenroll() {
	systemd-cryptenroll --tpm2-device="$KEYSTRAP_TCTI" --unlock-key-file="$KEY" \
		--tpm2-public-key=pub.pem --tpm2-public-key-pcrs=11 "$@" "$IMG"
	local rc=$?
	sd_flush
	return $rc
}

# in_ns CMD...: CMD in a private mount namespace whose /run/systemd is an empty tmpfs holding
# only $SIG (when set) as tpm2-pcr-signature.json: systemd's default place, the host's untouched.
in_ns() {
	unshare -m bash -c 'mount -t tmpfs tmpfs /run/systemd &&
		{ [ -z "$SIG" ] || cp "$SIG" /run/systemd/tpm2-pcr-signature.json; } && exec "$@"' in_ns "$@"
}

# in_initrd CMD...: CMD chrooted into an overlay of / with /etc/initrd-release and
# /.extra/tpm2-pcr-signature.json from $SIG, where systemd-stub puts a UKI's .pcrsig.
in_initrd() {
	mkdir -p "$BATS_TEST_TMPDIR/ov"
	unshare -m bash -c 'set -e; d=$BATS_TEST_TMPDIR/ov
		mount -t tmpfs tmpfs "$d"; mkdir "$d/up" "$d/work" "$d/root"
		mount -t overlay overlay -o "lowerdir=/,upperdir=$d/up,workdir=$d/work" "$d/root"
		for m in /dev /proc /sys /tmp /work "$BATS_TEST_TMPDIR"; do
			mkdir -p "$d/root$m"; mount --rbind "$m" "$d/root$m"
		done
		mount -t tmpfs tmpfs "$d/root/run/systemd"
		touch "$d/root/etc/initrd-release"; mkdir "$d/root/.extra"
		cp "$SIG" "$d/root/.extra/tpm2-pcr-signature.json"
		exec chroot "$d/root" "$@"' in_initrd "$@"
}

sd_open() {
	in_ns "$BATS_TEST_DIRNAME/../../build/sd-token-open" "$IMG" "$KEYSTRAP_TCTI"
}

opens() {
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$output" = "$IMG: token 0 unseals a key that opens keyslot 1 (dry run)" ]
}

@test "systemd-cryptenroll --tpm2-public-key-pcrs 11: the token systemd 252 writes" {
	cryptenroll --tpm2-pcrs=
	[ "$(cryptsetup token export --token-id 0 "$IMG" |
		jq -c '[.type, ."tpm2-pcrs", .tpm2_pubkey_pcrs, (.tpm2_pubkey | @base64d | startswith("-----BEGIN PUBLIC KEY-----"))]')" = \
		'["systemd-tpm2",[],[11],true]' ]
}

@test "signed policy, signature at systemd's default /run/systemd/tpm2-pcr-signature.json: keystrap opens it, and so does systemd's plugin" {
	sign priv.pem
	cryptenroll --tpm2-pcrs=
	SIG=$PWD/sig.json run in_ns "$KEYSTRAP" unlock --device "$IMG" --dry-run
	opens
	SIG=$PWD/sig.json run sd_open
	[ "$status" -eq 0 ]
}

@test "signed policy, signature from --tpm2-signature and from [Unlock] TPM2Signature=: opens" {
	sign priv.pem "$PWD/elsewhere.json"
	cryptenroll --tpm2-pcrs=
	run "$KEYSTRAP" unlock --device "$IMG" --dry-run --tpm2-signature "$PWD/elsewhere.json"
	opens
	printf '[Unlock]\nDevice=%s\nTPM2Signature=%s\n' "$IMG" "$PWD/elsewhere.json" >keystrap.conf
	run "$KEYSTRAP" unlock --config keystrap.conf --dry-run
	[ "$status" -eq 0 ]
	[ "${lines[-1]}" = "$IMG: token 0 unseals a key that opens keyslot 1 (dry run)" ]
}

@test "signed policy in the initrd, signature where systemd-stub puts a UKI's .pcrsig (/.extra): opens; outside an initrd /.extra is not looked at" {
	sign priv.pem
	cryptenroll --tpm2-pcrs=
	SIG=$PWD/sig.json run in_initrd "$KEYSTRAP" unlock --device "$IMG" --dry-run
	opens
	run in_ns "$KEYSTRAP" unlock --device "$IMG" --dry-run
	[ "$status" -eq 1 ]
	[[ "$output" == *"there is no tpm2-pcr-signature.json in "* ]]
}

@test "... twin: PCR 11 extended once more (another phase): refused naming PCR 11 and its value, and systemd's plugin fails too" {
	sign priv.pem
	cryptenroll --tpm2-pcrs=
	extend11 "$(printf 'leave-initrd' | sha256sum | cut -c1-64)"
	SIG=$PWD/sig.json run in_ns "$KEYSTRAP" unlock --device "$IMG" --dry-run
	[ "$status" -eq 1 ]
	[ "${#lines[@]}" -eq 1 ]
	[ "$output" = "keystrap: $IMG token 0: PCR signature file /run/systemd/tpm2-pcr-signature.json: none of its signatures by the token's key is for the current PCR values (no pol matches) (sha256: PCR 11 is $(pcr_value sha256 11))" ]
	SIG=$PWD/sig.json run sd_open
	[ "$status" -eq 1 ]
}

@test "... twin: a signature by another key: refused naming the fingerprint mismatch" {
	openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out other.pem 2>/dev/null
	sign other.pem
	cryptenroll --tpm2-pcrs=
	unlock_must_fail "$IMG" --tpm2-signature "$PWD/sig.json"
	echo "$output"
	[ "${#lines[@]}" -eq 1 ]
	fp=$(openssl rsa -pubin -in pub.pem -RSAPublicKey_out -outform DER 2>/dev/null | sha256sum | cut -c1-64)
	[ "$output" = "keystrap: $IMG token 0: PCR signature file $PWD/sig.json: its signatures for these PCRs are by another key: none has the pkfp (SHA-256 fingerprint) of the token's tpm2_pubkey, $fp" ]
}

@test "... twin: a signature whose pol is for other PCR values (another kernel): refused" {
	printf 'another kernel' >other-linux
	"$MEASURE" sign --tpm2-device="$KEYSTRAP_TCTI" --linux=other-linux --cmdline=cmdline --bank=sha256 \
		--phase=enter-initrd --private-key=priv.pem --public-key=pub.pem >sig.json
	sd_flush
	cryptenroll --tpm2-pcrs=
	unlock_must_fail "$IMG" --tpm2-signature "$PWD/sig.json"
	echo "$output"
	[ "${#lines[@]}" -eq 1 ]
	[[ "$output" == *": none of its signatures by the token's key is for the current PCR values (no pol matches) (sha256: PCR 11 is "* ]]
}

@test "... twin: a tampered sig: the TPM's VerifySignature refuses it, said in one line" {
	sign priv.pem
	cryptenroll --tpm2-pcrs=
	# The same length, one bit flipped: only the TPM can tell.
	hex=$(jq -r '.sha256[0].sig' sig.json | base64 -d | xxd -p -c0)
	bad=$(printf '%x%s' $((0x${hex:0:1} ^ 1)) "${hex:1}" | xxd -r -p | base64 -w0)
	[ "${#bad}" -eq "$(jq -r '.sha256[0].sig | length' sig.json)" ]
	jq -c --arg s "$bad" '.sha256[0].sig = $s' sig.json >bad.json
	unlock_must_fail "$IMG" --tpm2-signature "$PWD/bad.json"
	echo "$output"
	[ "${#lines[@]}" -eq 1 ]
	[ "$output" = "keystrap: $IMG token 0: the TPM refused the PCR signature (VerifySignature failed: it is not the token key's signature of this policy)" ]
}

@test "... twin: no signature file: one line naming the path, exit 1, and the passphrase still opens keyslot 0" {
	cryptenroll --tpm2-pcrs=
	unlock_must_fail "$IMG" --tpm2-signature "$PWD/missing.json"
	[ "${#lines[@]}" -eq 1 ]
	[ "$output" = "keystrap: $IMG token 0: cannot read PCR signature file $PWD/missing.json: No such file or directory" ]
	run in_ns "$KEYSTRAP" unlock --device "$IMG" --dry-run
	[ "$status" -eq 1 ]
	[ "$output" = "keystrap: $IMG token 0 has a signed PCR policy but there is no tpm2-pcr-signature.json in /etc/systemd, /run/systemd, /usr/local/lib/systemd, /usr/lib/systemd or (in the initrd) /.extra" ]
	cryptsetup open --test-passphrase --key-slot 0 --key-file "$KEY" "$IMG"
}

@test "combined token (signed PCR 11 and hash-bound PCR 7): opens, with systemd's plugin agreeing" {
	pcr_extend 7 sha256
	sign priv.pem
	cryptenroll --tpm2-pcrs=7
	[ "$(cryptsetup token export --token-id 0 "$IMG" | jq -c '[."tpm2-pcrs", .tpm2_pubkey_pcrs]')" = '[[7],[11]]' ]
	run "$KEYSTRAP" unlock --device "$IMG" --dry-run --tpm2-signature "$PWD/sig.json"
	opens
	SIG=$PWD/sig.json run sd_open
	[ "$status" -eq 0 ]
}

@test "... twin: PCR 7 moves: refused naming PCR 7, and systemd's plugin fails too" {
	pcr_extend 7 sha256
	sign priv.pem
	cryptenroll --tpm2-pcrs=7
	pcr_extend 7 sha256
	unlock_must_fail "$IMG" --tpm2-signature "$PWD/sig.json"
	echo "$output"
	[ "${#lines[@]}" -eq 1 ]
	[ "$output" = "keystrap: $IMG token 0: PCR policy not satisfied: the current values of PCRs 7 (sha256) differ from those it was sealed against (the token does not record which)" ]
	SIG=$PWD/sig.json run sd_open
	[ "$status" -eq 1 ]
}
