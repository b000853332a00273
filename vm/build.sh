#!/usr/bin/env bash
# Builds (or finds cached under build/vm) everything the VM scenarios boot:
#   kernel/      a Debian kernel package, unpacked (no host kernel involved)
#   rootfs.tar   a minimal Debian with systemd (mmdebstrap)
#   src.img      that root file system as a plain ext4 disk, which the installer boots
#   initrd.img   dracut on the host with the keystrap module, for the guest kernel
#   installed/   after the installer boot: the LUKS2 root disk (passphrase keyslot only)
#   enrolled/    after the first real boot: TPM state and one root disk per token kind
# Each artifact records a key of its inputs; a changed input rebuilds it and what follows.
set -euo pipefail
# shellcheck source=vm/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=vm/server.sh
. "$(dirname "${BASH_SOURCE[0]}")/server.sh"

build_kernel() {
	local key pkg dl
	key=$(key_of "$VM_KERNEL_PKG")
	fresh kernel "$key" && return 0
	say "kernel: fetching $VM_KERNEL_PKG"
	pkg=$(apt-cache depends "$VM_KERNEL_PKG" 2>/dev/null | awk '/Depends: linux-image-/ { print $2; exit }')
	[ -n "$pkg" ] || die "apt knows no '$VM_KERNEL_PKG' (run apt-get update)"
	dl=$VM_DIR/dl
	rm -rf "$dl" "$VM_DIR/kernel" && mkdir -p "$dl" "$VM_DIR/kernel"
	# _apt cannot write into build/; downloading as root is what apt then falls back to.
	(cd "$dl" && apt-get download -q "$pkg") 2>&1 | { grep -v 'Download is performed unsandboxed' || true; } >&2
	dpkg-deb -x "$dl"/linux-image-*.deb "$VM_DIR/kernel"
	ls "$VM_DIR/kernel/lib/modules" >"$VM_DIR/kernel/kver"
	depmod -b "$VM_DIR/kernel" "$(kver)"
	rm -rf "$dl"
	stamp kernel "$key"
}

rootfs_key() { key_of "$VM_SUITE" "$VM_MIRROR" "$VM_PACKAGES"; }

# build_rootfs_start: mmdebstrap in the background, unless the cached root is fresh (network
# and dpkg; nothing else here needs it before src.img, so the kernel and dracut run meanwhile).
# build_rootfs_wait: its end.
ROOTFS_PID=
build_rootfs_start() {
	fresh rootfs "$(rootfs_key)" && return 0
	say "rootfs: mmdebstrap $VM_SUITE"
	rm -f "$VM_DIR/rootfs.tar"
	nice -n 10 mmdebstrap --quiet --variant=minbase --include="$VM_PACKAGES" \
		--dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/doc/*' \
		--dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-exclude=/usr/share/info/*' \
		"$VM_SUITE" "$VM_DIR/rootfs.tar" "$VM_MIRROR" &
	ROOTFS_PID=$!
	VM_PIDS+=("$ROOTFS_PID")
}
build_rootfs_wait() {
	local rc=0
	[ -n "$ROOTFS_PID" ] || return 0
	wait "$ROOTFS_PID" || rc=$?
	vm_forget "$ROOTFS_PID"
	ROOTFS_PID=
	[ "$rc" -eq 0 ] || die "mmdebstrap failed (exit status $rc)"
	stamp rootfs "$(rootfs_key)"
}

# copy_modules TREE: the guest kernel's modules the booted system can need (the initrd has its
# own): dm-crypt and crypto for the installer, TPM, virtio. Every byte here is copied again,
# encrypted, by the installer under TCG, so the rest (net, fs, most drivers) stays out.
copy_modules() {
	local k from to d
	k=$(kver)
	from=$VM_DIR/kernel/lib/modules/$k
	to=$1/usr/lib/modules/$k
	mkdir -p "$to"
	cp -a "$from"/modules.order "$from"/modules.builtin* "$to/"
	for d in kernel/arch kernel/crypto kernel/lib kernel/block kernel/drivers/md \
		kernel/drivers/block kernel/drivers/virtio kernel/drivers/char kernel/drivers/firmware; do
		[ -d "$from/$d" ] || continue
		mkdir -p "$to/$d"
		cp -a "$from/$d/." "$to/$d/"
	done
	depmod -b "$1" "$k"
}

src_key() { key_of "$(rootfs_key)" "$VM_KERNEL_PKG" "$VM_SRC/vm/guest/ksvm-agent.service" 2; }

build_src() {
	local key tree=$VM_DIR/src-tree
	key=$(src_key)
	fresh src "$key" && return 0
	say "src.img: root file system with the guest kernel's modules and the harness agent"
	rm -rf "$tree" && mkdir -p "$tree"
	tar -C "$tree" -xf "$VM_DIR/rootfs.tar"
	copy_modules "$tree"
	install -m644 "$VM_SRC/vm/guest/ksvm-agent.service" "$tree/etc/systemd/system/"
	ln -sf /etc/systemd/system/ksvm-agent.service "$tree/etc/systemd/system/multi-user.target.wants/"
	echo keystrap-vm >"$tree/etc/hostname"
	# A throwaway test guest: root logs in on the serial console without a password.
	sed -i 's/^root:[^:]*:/root::/' "$tree/etc/shadow"
	rm -f "$VM_DIR/src.img"
	truncate -s 1G "$VM_DIR/src.img"
	mkfs.ext4 -q -L ksvm-src -d "$tree" "$VM_DIR/src.img"
	rm -rf "$tree"
	stamp src "$key"
}

initrd_inputs() {
	echo "$KEYSTRAP_BIN" "$VM_SRC"/dist/dracut/59keystrap/* "$VM_SRC"/dist/units/* "$VM_PKI/ca.crt"
}

initrd_key() {
	# shellcheck disable=SC2046 # a list of file names without spaces
	key_of "$VM_KERNEL_PKG" "$(dpkg-query -W -f='${Version}' dracut-core dracut-network)" $(initrd_inputs) \
		"$(vm_attest_conf)" tpm2-tss
}

build_initrd() {
	local key base=$VM_DIR/dracut stage=$VM_DIR/stage
	key=$(initrd_key)
	fresh initrd "$key" && return 0
	say "initrd.img: dracut with the keystrap module for $(kver)"
	# keystrap as 'make install install-dracut' lays it out, in a staging tree.
	rm -rf "$stage" && mkdir -p "$stage/usr/sbin"
	install -m755 "$KEYSTRAP_BIN" "$stage/usr/sbin/keystrap"
	make -s -C "$VM_SRC" install-dracut DESTDIR="$stage" >/dev/null
	# keystrap.conf with [Attest] Server= pointing at the host, and the server's CA: the
	# module then adds the network and keystrap-handoff.service.
	vm_stage_attest "$stage"
	# A private dracut tree, so the host's /usr/lib/dracut is never touched. tpm2-tss is
	# there for scenario 4b: systemd-cryptsetup's own TPM2 unlocking in the initrd.
	rm -rf "$base" && cp -a /usr/lib/dracut "$base"
	cp -a "$stage/usr/lib/dracut/modules.d/59keystrap" "$base/modules.d/"
	mkdir -p "$VM_DIR/dracut.conf.d"
	cat >"$VM_DIR/dracut.conf.d/keystrap-vm.conf" <<-EOF
		add_dracutmodules+=" keystrap tpm2-tss "
		omit_dracutmodules+=" plymouth "
		keystrap_root="$stage"
	EOF
	dracutbasedir=$base nice -n 10 dracut --quiet --force --no-hostonly --reproducible \
		--conf /dev/null --confdir "$VM_DIR/dracut.conf.d" \
		--kver "$(kver)" --kmoddir "$VM_DIR/kernel/lib/modules/$(kver)" "$VM_DIR/initrd.img"
	stamp initrd "$key"
}

build_tpm() {
	fresh tpm0 swtpm && return 0
	say "tpm0: swtpm state with an EK certificate"
	rm -rf "$VM_DIR/tpm0" && mkdir -p "$VM_DIR/tpm0"
	swtpm_setup --tpm2 --tpmstate "$VM_DIR/tpm0" --create-ek-cert --create-platform-cert \
		--overwrite >"$VM_DIR/tpm0.log" 2>&1 || die "swtpm_setup failed: $(tail -n 3 "$VM_DIR/tpm0.log")"
	stamp tpm0 swtpm
}

INSTALL_CMDLINE="console=ttyS0 root=/dev/disk/by-id/virtio-ksvm-src rw rd.shell=0 rd.emergency=poweroff"
installed_key() { key_of "$(src_key)" "$VM_SRC/vm/guest/install" "$INSTALL_CMDLINE"; }

# The installer boot: a throwaway overlay of src.img is its root; it writes src.img's file
# system into the new LUKS2 disk.
build_installed() {
	local key run=$VM_DIR/runs/install out=$VM_DIR/installed
	key=$(installed_key)
	fresh installed "$key" && return 0
	say "installed/: installer boot (formats the LUKS2 root, copies the system in)"
	rm -rf "$out" && mkdir -p "$out" "$VM_DIR/runs"
	truncate -s 1536M "$out/disk.raw"
	rm -f "$VM_DIR/src-overlay.qcow2"
	qemu-img create -q -f qcow2 -b "$VM_DIR/src.img" -F raw "$VM_DIR/src-overlay.qcow2"
	BOOT_UUID=$(cat /proc/sys/kernel/random/uuid) BOOT_DISK=$out/disk.raw \
		BOOT_SRC=$VM_DIR/src-overlay.qcow2 BOOT_PAYLOAD=$VM_DIR/src.img BOOT_TPM='' BOOT_INITRD=$VM_DIR/initrd.img \
		BOOT_CMDLINE=$INSTALL_CMDLINE \
		BOOT_MODE=install vm_boot "$run" || die "installer boot failed: see $run/console.log"
	[ "$(ksvm "$run" install-rc)" = 0 ] || die "installer failed: $(ksvm "$run" install | tail -n 3)"
	ksvm "$run" install | sed -n 's/^installed //p' >"$out/uuid"
	rm -f "$VM_DIR/src-overlay.qcow2"
	say "installed/: $(cat "$run/seconds")s"
	stamp installed "$key"
}

# tokens_of DISK: "TOKEN KEYSLOT PCRS" for each systemd-tpm2 token, PCRS like 4+7+9.
tokens_of() {
	cryptsetup luksDump --dump-json-metadata "$1" | jq -r '.tokens | to_entries[]
		| select(.value.type == "systemd-tpm2")
		| "\(.key) \(.value.keyslots[0]) \(.value["tpm2-pcrs"] | map(tostring) | join("+"))"'
}

# variant DISK OUT PCRS: OUT is DISK with only the systemd-tpm2 token bound to PCRS.
variant() {
	local disk=$1 out=$2 want=$3 tok slot pcrs found=
	cp --sparse=always "$disk" "$out"
	while read -r tok slot pcrs; do
		if [ "$pcrs" = "$want" ] && [ -z "$found" ]; then
			found=$tok
			continue
		fi
		cryptsetup token remove --token-id "$tok" "$out"
		# Batch mode kills a keyslot without asking for a passphrase (it would read stdin).
		cryptsetup luksKillSlot --batch-mode "$out" "$slot" </dev/null 2>/dev/null ||
			die "cannot remove keyslot $slot from $out"
	done < <(tokens_of "$disk")
	[ -n "$found" ] || die "enrolled disk has no token bound to PCRs $want"
}

enrolled_key() { key_of "$(installed_key)" "$(initrd_key)" "$VM_PCRS" "$VM_SRC/vm/guest/agent"; }

# The first real boot, with the production command line: keystrap finds no token and the
# harness types the passphrase; the agent then enrolls the TPM keyslots (see guest/agent).
build_enrolled() {
	local key run=$VM_DIR/runs/enroll out=$VM_DIR/enrolled k
	key=$(enrolled_key)
	fresh enrolled "$key" && return 0
	say "enrolled/: first boot (passphrase typed by the harness), TPM enrollment"
	rm -rf "$out" && mkdir -p "$out"
	cp -a "$VM_DIR/tpm0" "$out/tpm"
	cp --sparse=always "$VM_DIR/installed/disk.raw" "$out/disk.raw"
	BOOT_DISK=$out/disk.raw BOOT_SRC='' BOOT_TPM=$out/tpm BOOT_INITRD=$VM_DIR/initrd.img \
		BOOT_CMDLINE="$(vm_cmdline)" BOOT_MODE=enroll vm_boot "$run" ||
		die "enroll boot failed: see $run/console.log"
	for k in enroll-keystrap enroll-systemd enroll-keystrap-nopcr9; do
		[ "$(ksvm "$run" "$k-rc")" = 0 ] || die "$k failed: $(ksvm "$run" "$k" | tail -n 3)"
	done
	# The attestation server's reference values: what this known-good boot measured.
	ksvm "$run" pcr-ref >"$out/pcrs"
	[ "$(wc -l <"$out/pcrs")" -ge 3 ] || die "the enroll boot reported no PCR values"
	variant "$out/disk.raw" "$out/keystrap.raw" "$(sed 's/:[0-9a-fA-F]*//g; s/,/+/g' <<<"$VM_PCRS")"
	variant "$out/disk.raw" "$out/systemd.raw" 4+7+9
	variant "$out/disk.raw" "$out/keystrap-nopcr9.raw" 4+7+15
	rm -f "$out/disk.raw"
	ksvm "$run" eventlog >"$out/eventlog.txt"
	say "enrolled/: $(cat "$run/seconds")s"
	stamp enrolled "$key"
}

vm_build() {
	mkdir -p "$VM_DIR"
	[ -x "$KEYSTRAP_BIN" ] || die "no keystrap binary at $KEYSTRAP_BIN (make build/keystrap)"
	build_rootfs_start
	build_kernel
	vm_server_pki
	build_initrd
	build_tpm
	build_rootfs_wait
	build_src
	build_installed
	build_enrolled
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
	vm_build
fi
