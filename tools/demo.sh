#!/usr/bin/env bash
# The main job, end to end on this machine: a LUKS2 image, a throw-away swtpm, keystrap
# enrolling a TPM-sealed key, unlocking with it, locking, and refusing after the lock.
# The host has no device-mapper, so unlock runs with --dry-run (proves the unsealed key
# opens its keyslot). Then the whole boot path for real (make demo-vm): a QEMU guest boots
# unattended, unlocks its root, attests to keystrap-server on this host, and a service in
# it prints the certificate it holds. DEMO_VM=0 stops after the host part.
set -euo pipefail
cd "$(dirname "$0")/.."

bash tools/install-deps.sh
make -s build/keystrap build/sd-token-open

work=$(mktemp -d)
swtpm_pid=
cleanup() {
	[ -n "$swtpm_pid" ] && kill "$swtpm_pid" 2>/dev/null && wait "$swtpm_pid" 2>/dev/null
	rm -rf "$work"
}
trap cleanup EXIT

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
ks() { printf '$ keystrap %s\n' "$*"; ./build/keystrap "$@"; }

step "A throw-away TPM: swtpm with an EK certificate, on a free loopback port"
mkdir "$work/tpm"
swtpm_setup --tpm2 --tpmstate "$work/tpm" --create-ek-cert --overwrite >/dev/null 2>&1
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null || echo 47321)
swtpm socket --tpm2 --tpmstate dir="$work/tpm" --server type=tcp,port="$port",bindaddr=127.0.0.1 \
	--ctrl type=tcp,port=$((port + 1)),bindaddr=127.0.0.1 --flags not-need-init,startup-clear &
swtpm_pid=$!
for _ in $(seq 50); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
export KEYSTRAP_TCTI="swtpm:host=127.0.0.1,port=$port"
echo "KEYSTRAP_TCTI=$KEYSTRAP_TCTI (swtpm pid $swtpm_pid)"

step "A LUKS2 volume with a recovery key file (keyslot 0)"
truncate -s 32M "$work/disk.img"
head -c 48 /dev/urandom | base64 -w0 >"$work/recovery.key"
chmod 600 "$work/recovery.key"
cryptsetup luksFormat --type luks2 --pbkdf pbkdf2 --pbkdf-force-iterations 1000 --batch-mode \
	--key-file "$work/recovery.key" "$work/disk.img"
echo "formatted $work/disk.img"

step "Enroll: seal a fresh 256-bit key to PCR 7 (current) and PCR 15 (= zero at boot)"
ks enroll --device "$work/disk.img" --unlock-key-file "$work/recovery.key"
cryptsetup luksDump "$work/disk.img" | sed -n '/^Tokens:/,/^Digests:/p' | grep -vE '^\s+[0-9a-f]{2}( [0-9a-f]{2})+$' | head -n 12

step "Unlock, as the initramfs would (dry run: the key opens its keyslot)"
ks unlock --device "$work/disk.img" --dry-run

step "Interop: systemd-cryptsetup's own TPM2 token plugin (systemd 252) opens the same token"
./build/sd-token-open "$work/disk.img" "$KEYSTRAP_TCTI" 2>/dev/null

step "Lock: extend PCR 15 once volumes are open, so the key cannot be unsealed again this boot"
ks lock

step "A second unlock in the same boot is refused, and says which PCR moved"
if ks unlock --device "$work/disk.img" --dry-run; then
	echo "demo: unlock after lock unexpectedly succeeded" >&2
	exit 1
fi

step "The recovery key still opens its keyslot"
cryptsetup open --test-passphrase --key-file "$work/recovery.key" "$work/disk.img" && echo "recovery key: ok"
echo
echo "demo complete: enrolled, unlocked, locked, refused after lock."

[ "${DEMO_VM:-1}" = 0 ] && exit 0
step "The whole boot path in a VM (make demo-vm): unattended unlock, attestation, a service using its certificate"
echo "(the first run builds the guest: a Debian kernel, a minimal root, an installer boot and an"
echo " enrollment boot, ~5-10 minutes under TCG; later runs boot in about a minute)"
make -s demo-vm
