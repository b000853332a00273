# shellcheck shell=bash
# Scenario mk1 of vm/check.sh (sourced by it): the same enrolled guest, booted through a busybox
# initramfs whose /init calls mkinitcpio/hooks/keystrap the way mkinitcpio's init does
# (vm/guest/mkinitcpio-init) instead of through dracut. mkinitcpio itself is not packaged for
# Debian, so the image is put together here: static busybox, keystrap with its libraries and
# the TCTI it dlopens, the guest kernel's virtio and dm-crypt modules, the hook, /config.
# The disk is the one whose token leaves out PCR 9 (4,7,15:0): PCR 9 covers the initramfs,
# which is a different one here.

MK_MODULES="virtio_pci virtio_blk dm_crypt"

mk_initrd_key() {
	key_of "$(kver)" "$KEYSTRAP_BIN" "$VM_SRC/mkinitcpio/hooks/keystrap" \
		"$VM_SRC/vm/guest/mkinitcpio-init" "$VM_SRC/vm/mkinitcpio.sh" /usr/bin/busybox
}

# mk_libs FILE TREE: FILE and every library ldd lists for it, at their own paths.
mk_libs() {
	local f
	for f in "$1" $(ldd "$1" | sed -n 's/.*=> \(\/[^ ]*\).*/\1/p; s/^[[:space:]]*\(\/[^ ]*\) .*/\1/p'); do
		[ -e "$2$f" ] || install -Dm755 "$(readlink -f "$f")" "$2$f"
	done
}

build_mk_initrd() {
	local key tree=$VM_DIR/mk-tree k m f tcti
	key=$(mk_initrd_key)
	fresh mkinitcpio "$key" && return 0
	say "mkinitcpio.img: busybox initramfs with the keystrap mkinitcpio hook"
	k=$(kver)
	rm -rf "$tree" && mkdir -p "$tree"/{usr/bin,usr/lib,usr/lib64,hooks,dev,proc,sys,run,new_root,etc}
	ln -s usr/bin "$tree/bin" && ln -s usr/bin "$tree/sbin" && ln -s usr/lib "$tree/lib" && ln -s usr/lib64 "$tree/lib64"
	install -m755 /usr/bin/busybox "$tree/usr/bin/busybox"
	for f in $(busybox --list); do
		[ -e "$tree/usr/bin/$f" ] || ln -s busybox "$tree/usr/bin/$f"
	done
	install -m755 "$KEYSTRAP_BIN" "$tree/usr/bin/keystrap"
	mk_libs "$KEYSTRAP_BIN" "$tree"
	rm -f "$tree$KEYSTRAP_BIN"
	for tcti in /usr/lib/*-linux-gnu/libtss2-tcti-device.so.0; do mk_libs "$tcti" "$tree"; done
	for m in $MK_MODULES; do
		modprobe -d "$VM_DIR/kernel" -S "$k" --show-depends "$m" | awk '$1 == "insmod" { print $2 }'
	done | sort -u | while read -r f; do
		install -Dm644 "$f" "$tree/usr/lib/modules/$k/${f#"$VM_DIR/kernel/lib/modules/$k/"}"
	done
	cp "$VM_DIR/kernel/lib/modules/$k"/modules.{order,builtin,builtin.modinfo} "$tree/usr/lib/modules/$k/"
	depmod -b "$tree" "$k"
	install -m755 "$VM_SRC/vm/guest/mkinitcpio-init" "$tree/init"
	install -m755 "$VM_SRC/mkinitcpio/hooks/keystrap" "$tree/hooks/keystrap"
	# What mkinitcpio writes after add_runscript sorted the hook's run_* functions.
	printf 'MODULES="%s"\nEARLYHOOKS=""\nHOOKS="keystrap"\nLATEHOOKS=""\nCLEANUPHOOKS="keystrap"\n' \
		"$MK_MODULES" >"$tree/config"
	(cd "$tree" && find . -mindepth 1 | LC_ALL=C sort | cpio --quiet -o -H newc -R 0:0) |
		gzip -1 >"$VM_DIR/mkinitcpio.img"
	rm -rf "$tree"
	stamp mkinitcpio "$key"
}

mk_no_hook_error() { ! console_has '^ERROR: keystrap'; }

scenario_mk1() {
	build_mk_initrd
	boot mkinitcpio "$VM_DIR/enrolled/keystrap-nopcr9.raw" BOOT_INITRD="$VM_DIR/mkinitcpio.img" \
		BOOT_CMDLINE="console=ttyS0 rd.keystrap.root=UUID=$U root=/dev/mapper/luks-$U rw"
	came_up
	expect "no passphrase prompt" test "$(prompts)" = 0
	expect "the busybox init ran the keystrap hook" console_has ':: running hook \[keystrap\]'
	expect "keystrap measured enter-initrd" console_has 'PCR 12 extended with keystrap:enter-initrd'
	expect "keystrap opened the root" console_has "opened as /dev/mapper/luks-$U"
	expect "keystrap locked PCR 15" console_has 'PCR 15 extended'
	expect "the cleanup hook measured leave-initrd" console_has 'PCR 12 extended with keystrap:leave-initrd'
	expect "the hook reported no error" mk_no_hook_error
	expect "PCR 15 is no longer zero" pcr15_moved
	expect "a second keystrap unlock in the booted guest fails" value_is relock-rc 1
	expect "... naming PCR 15" reported relock 'PCR 15'
	result "mkinitcpio busybox hook: keystrap opens the root, PCR 15 locks it, switch_root"
}
