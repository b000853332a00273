#!/usr/bin/env bash
# make demo-vm: boots a fresh copy of the enrolled guest (vm/build.sh) with its serial console
# on this terminal, to watch keystrap open the root in the initrd, attest to keystrap-server
# running on this host (vm/server.sh), and a consumer service in the booted guest print the
# certificate it was handed; then log in.
#   VM_APPEND="..."  appended to the kernel command line (changes PCR 9: keystrap refuses and
#                    systemd-cryptsetup asks for the passphrase)
#   VM_TPM=0         boot without a TPM
# Without a terminal the guest reports and powers off, as in make vm-check.
set -euo pipefail
# shellcheck source=vm/build.sh
. "$(dirname "${BASH_SOURCE[0]}")/build.sh"

vm_build
run=$VM_DIR/runs/demo
rm -rf "$run" && mkdir -p "$run"
cp --sparse=always "$VM_DIR/enrolled/keystrap.raw" "$run/disk.raw"
cp -a "$VM_DIR/enrolled/tpm" "$run/tpm"
cp "$OVMF_VARS" "$run/vars.fd"

BOOT_DISK=$run/disk.raw BOOT_SRC='' BOOT_INITRD=$VM_DIR/initrd.img
BOOT_CMDLINE="$(vm_cmdline)${VM_APPEND:+ $VM_APPEND}"
BOOT_TPM=$run/tpm
[ "${VM_TPM:-1}" = 0 ] && BOOT_TPM=''
interactive='' mode=check
[ -t 0 ] && [ -t 1 ] && interactive=1 mode=demo

vm_server_ready "$run/server"
say "keystrap-server: https://127.0.0.1:$VM_SERVER_PORT (the guest's $VM_SERVER_URL), node1 approved"
tools_disk "$run" "$mode"
[ -n "$BOOT_TPM" ] && swtpm_run "$BOOT_TPM" "$run/swtpm.sock" "$run/swtpm.log"
qemu_args "$run"
cat >&2 <<EOF
vm: booting the demo guest (OVMF, ${VM_ACCEL}; about a minute under TCG)
vm:   kernel command line: $BOOT_CMDLINE
vm:   TPM: ${BOOT_TPM:-none}
vm:   if keystrap refuses, the passphrase is: $VM_PASSPHRASE
vm:   log in as root without a password; 'poweroff' ends the demo, or Ctrl-A X quits QEMU
EOF
rc=0
if [ -n "$interactive" ]; then
	"${QEMU[@]}" -serial mon:stdio || rc=$?
else
	timeout "$VM_TIMEOUT" nice -n 10 "${QEMU[@]}" -serial stdio </dev/null || rc=$?
fi
vm_server_stop "$run/server"
say "the server's audit log (keystrap-server audit export):"
vm_srv "$run/server" audit export | jq -r '"vm:   \(.action) \(.decision) \(.node_id) \(.reasons)"' >&2
exit "$rc"
