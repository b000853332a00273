#!/usr/bin/env bash
# make bench-hwkeys: what a node certificate's CA signature costs with the CA key in a file,
# on a PKCS#11 token (SoftHSM2, through libp11's engine) and in a TPM (an swtpm, through
# tpm2-openssl), in one run: one ECDSA P-256 key, imported into the token and the TPM, signed
# with by build/bench/keyref-sign through the server's own path (keyref.h). Two rounds,
# interleaved; BENCH_SIGNS signatures each (default 200; the TPM's a quarter of that). Not a
# test: a signature that does not verify makes it exit 1.
set -euo pipefail

BUILD=${BUILD:-build}
SIGNS=${BENCH_SIGNS:-200}
SIGN=$PWD/$BUILD/bench/keyref-sign
P11_MODULE=/usr/lib/softhsm/libsofthsm2.so
DIR=$(mktemp -d)
BATS_FILE_TMPDIR=$DIR BATS_TEST_DIRNAME=$PWD/tests/bats
# shellcheck source=tests/lib/swtpm.bash
. tests/lib/swtpm.bash

cleanup() {
	swtpm_stop
	rm -rf "$DIR"
}
trap cleanup EXIT

swtpm_start "$DIR/tpm" >/dev/null
export TPM2OPENSSL_TCTI=$KEYSTRAP_TCTI SOFTHSM2_CONF=$DIR/softhsm2.conf
mkdir -p "$DIR/tokens"
echo "directories.tokendir = $DIR/tokens" >"$SOFTHSM2_CONF"
softhsm2-util --init-token --free --label bench --so-pin 5678 --pin 1234 >/dev/null

(umask 077 && openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$DIR/ca.key" 2>/dev/null)
openssl pkey -in "$DIR/ca.key" -outform DER -out "$DIR/k.der"
openssl pkey -in "$DIR/ca.key" -pubout -outform DER -out "$DIR/p.der"
for t in privkey:k pubkey:p; do
	pkcs11-tool --module "$P11_MODULE" --token-label bench --login --pin 1234 --write-object "$DIR/${t#*:}.der" \
		--type "${t%:*}" --label ca --id 01 >/dev/null 2>&1
done
tpm2_createprimary -Q -C o -G ecc -c "$DIR/srk.ctx" && tpm2_flushcontext -t
tpm2_import -Q -C "$DIR/srk.ctx" -G ecc -i "$DIR/ca.key" -u "$DIR/k.pub" -r "$DIR/k.priv" && tpm2_flushcontext -t
tpm2_load -Q -C "$DIR/srk.ctx" -u "$DIR/k.pub" -r "$DIR/k.priv" -c "$DIR/k.ctx"
tpm2_evictcontrol -Q -C o -c "$DIR/k.ctx" 0x81000001 && tpm2_flushcontext -t

echo "CA signature per node certificate (ECDSA P-256, SHA-256), $SIGNS signatures (TPM: $((SIGNS / 4))):"
for round in 1 2; do
	printf '  round %d  file      ' "$round"
	"$SIGN" "$DIR/ca.key" "$SIGNS"
	printf '  round %d  SoftHSM2  ' "$round"
	"$SIGN" "pkcs11:token=bench;object=ca;type=private?pin-value=1234&module-path=$P11_MODULE" "$SIGNS"
	printf '  round %d  swtpm     ' "$round"
	"$SIGN" handle:0x81000001 "$((SIGNS / 4))"
done
