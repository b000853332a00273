# shellcheck shell=bash
# Scenario mk1 of vm/check.sh (sourced by it): the same enrolled guest, booted through a busybox
# initramfs whose /init calls mkinitcpio/hooks/keystrap the way mkinitcpio's init does
# (vm/guest/mkinitcpio-init) instead of through dracut. mkinitcpio itself is not packaged for
# Debian, so the image is put together here: static busybox, keystrap with its libraries and
# the TCTI it dlopens, the guest kernel's virtio and dm-crypt modules, the hook, /config.
# The dracut-enrolled disks do not open here: OVMF measures this initramfs differently (PCR 4
# moves too), and keystrap rightly refuses. So the disk is enrolled for this image the way a
# real machine would be after switching initramfs tools: a first boot (no token: the hook
# fails, the init's emergency path reports PCRs 4 and 7), then keystrap enroll on the host
# against the same TPM state, bound to 4 and 7 as that boot measured them and 15 still zero.

MK_MODULES="virtio_pci virtio_blk dm_crypt"

# The image's inputs, down to the code that puts it together (not the scenarios below).
mk_initrd_key() {
	key_of "$(kver)" "$KEYSTRAP_BIN" "$VM_SRC/mkinitcpio/hooks/keystrap" \
		"$VM_SRC/vm/guest/mkinitcpio-init" /usr/bin/busybox "$MK_MODULES" "$(declare -f mk_libs build_mk_initrd)"
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
	# dm-crypt's ciphers (xts, aes…) are what install/keystrap's add_all_modules /crypto/ adds.
	{
		for m in $MK_MODULES; do
			modprobe -d "$VM_DIR/kernel" -S "$k" --show-depends "$m" | awk '$1 == "insmod" { print $2 }'
		done
		find "$VM_DIR/kernel/lib/modules/$k/kernel" -path '*/crypto/*' -name '*.ko*'
	} | sort -u | while read -r f; do
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

MK_CMDLINE() { echo "console=ttyS0 rd.keystrap.root=UUID=$U root=/dev/mapper/luks-$U rw"; }

# mk_swtpm STATE: a swtpm on STATE for keystrap on the host (TCP, free ports); exports
# KEYSTRAP_TCTI. Killed by vm_cleanup like the rest.
mk_swtpm() {
	local port
	port=$((20000 + RANDOM % 10000))
	swtpm socket --tpm2 --tpmstate dir="$1" --server type=tcp,port="$port",bindaddr=127.0.0.1 \
		--ctrl type=tcp,port=$((port + 1)),bindaddr=127.0.0.1 --flags not-need-init,startup-clear &
	VM_PIDS+=($!)
	for _ in $(seq 100); do
		(exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
		sleep 0.05
	done
	export KEYSTRAP_TCTI="swtpm:host=127.0.0.1,port=$port"
}

build_mk_enrolled() {
	local key run=$VM_DIR/runs/mk-measure out=$VM_DIR/mkenrolled p4 p7
	key=$(key_of "$(mk_initrd_key)" "$(installed_key)" "$(enrolled_key)")
	fresh mkenrolled "$key" && return 0
	say "mkenrolled/: first boot through the busybox image, then enrollment for its PCRs"
	rm -rf "$out" && mkdir -p "$out"
	cp -a "$VM_DIR/enrolled/tpm" "$out/tpm"
	cp --sparse=always "$VM_DIR/installed/disk.raw" "$out/disk.raw"
	BOOT_DISK=$out/disk.raw BOOT_SRC='' BOOT_TPM=$out/tpm BOOT_INITRD=$VM_DIR/mkinitcpio.img \
		BOOT_CMDLINE="$(MK_CMDLINE)" BOOT_MODE=check vm_boot "$run" || die "mkinitcpio first boot failed: see $run/console.log"
	p4=$(ksvm "$run" pcr4 | tr A-F a-f) p7=$(ksvm "$run" pcr7 | tr A-F a-f)
	[[ $p4 =~ ^[0-9a-f]{64}$ && $p7 =~ ^[0-9a-f]{64}$ ]] || die "no PCRs from the first boot: see $run/console.log"
	(umask 077 && printf '%s' "$VM_PASSPHRASE" >"$out/passphrase")
	: >"$out/empty.conf"
	rm -rf "$out/tpm" && cp -a "$VM_DIR/enrolled/tpm" "$out/tpm"
	mk_swtpm "$out/tpm"
	"$KEYSTRAP_BIN" enroll --device "$out/disk.raw" --pcrs "4:$p4,7:$p7,15:0" \
		--unlock-key-file "$out/passphrase" --config "$out/empty.conf" >&2 || die "enroll for the busybox image failed"
	vm_cleanup
	rm -rf "$out/tpm" "$out/passphrase" "$out/empty.conf"
	stamp mkenrolled "$key"
}

mk_no_hook_error() { ! console_has '^ERROR: keystrap'; }
mk_not_opened() { ! console_has 'opened as /dev/mapper'; }
mk_no_agent() { ! console_has 'KSVM target:'; }
# mk_before A B: the first console line matching A comes before the first matching B.
mk_before() {
	local a b
	a=$(first_line "$1") b=$(first_line "$2")
	[ "$a" -gt 0 ] && [ "$b" -gt 0 ] && [ "$a" -lt "$b" ]
}

scenario_mk1() {
	build_mk_initrd
	build_mk_enrolled
	boot mkinitcpio "$VM_DIR/mkenrolled/disk.raw" BOOT_INITRD="$VM_DIR/mkinitcpio.img" \
		BOOT_CMDLINE="$(MK_CMDLINE)"
	came_up
	expect "no passphrase prompt" test "$(prompts)" = 0
	expect "the busybox init ran the keystrap hook" console_has ':: running hook \[keystrap\]'
	expect "keystrap measured enter-initrd" console_has 'PCR 12 extended with keystrap:enter-initrd'
	expect "keystrap opened the root" console_has "opened as /dev/mapper/luks-$U"
	expect "keystrap locked PCR 15" console_has 'PCR 15 extended'
	expect "the cleanup hook measured leave-initrd" console_has 'PCR 12 extended with keystrap:leave-initrd'
	expect "... after the unlock and the lock" mk_before 'PCR 15 extended' 'keystrap:leave-initrd'
	expect "the hook reported no error" mk_no_hook_error
	expect "PCR 15 is no longer zero" pcr15_moved
	expect "a second keystrap unlock in the booted guest fails" value_is relock-rc 1
	expect "... naming PCR 15" reported relock 'PCR 15'
	result "mkinitcpio busybox hook: keystrap opens the root, PCR 15 locks it, switch_root"
}

# The twin: one more file in the initramfs moves PCR 4; keystrap names it and opens nothing,
# PCR 15 is extended anyway, and with no passphrase hook in this image the init stops.
scenario_mk1b() {
	local img=$VM_DIR/runs/mkinitcpio-tampered.img
	build_mk_initrd
	build_mk_enrolled
	rm -rf "$VM_DIR/runs/mk-extra" && mkdir -p "$VM_DIR/runs/mk-extra/etc"
	echo tampered >"$VM_DIR/runs/mk-extra/etc/ksvm-tampered"
	cp "$VM_DIR/mkinitcpio.img" "$img"
	(cd "$VM_DIR/runs/mk-extra" && echo etc/ksvm-tampered | cpio --quiet -o -H newc) >>"$img"
	boot mkinitcpio-tampered "$VM_DIR/mkenrolled/disk.raw" BOOT_INITRD="$img" BOOT_CMDLINE="$(MK_CMDLINE)"
	expect "the guest powered off by itself within ${VM_TIMEOUT}s" test "$BOOTED" = 0
	expect "keystrap named PCR 4" console_has 'PCR mismatch \(sha256\): PCR 4 is '
	expect "the hook said the passphrase is the fallback" console_has "ERROR: keystrap: could not open UUID=$U; the passphrase is the fallback"
	expect "keystrap still locked PCR 15" console_has 'PCR 15 extended'
	expect "keystrap opened nothing" mk_not_opened
	expect "the init stopped in its emergency path" console_has 'KSVM mkinitcpio: emergency shell'
	expect "nothing was switched to" mk_no_agent
	result "mkinitcpio busybox hook, changed initramfs: keystrap names PCR 4, locks, opens nothing"
}
