#!/usr/bin/env bash
# make bench-vm (figures, not a test): inside one booted guest, same image, same swtpm, the
# median time to open a LUKS2 volume by keystrap, by systemd-cryptsetup's tpm2 support and by
# clevis (10 opens each, vm/guest/bench), with the ratios; then the bytes each adds to a
# dracut initramfs of the same kernel; then the seconds the attested path adds to a boot's
# unlock against the strict token (vm/check.sh's scenario 14). Its guest root also carries
# clevis, so it is built in its own cache, build/vm-bench (scenario 14 uses vm-check's).
set -euo pipefail
# shellcheck source=vm/build.sh
. "$(dirname "${BASH_SOURCE[0]}")/build.sh"
VM_DIR=$VM_DIR-bench
VM_PACKAGES=$VM_PACKAGES,clevis,clevis-luks,clevis-tpm2
VM_TIMEOUT=900

# initrd_variant NAME MODULES...: an uncompressed initramfs with MODULES on top of the base.
initrd_variant() {
	local name=$1 all="keystrap tpm2-tss clevis clevis-pin-tpm2 clevis-pin-tang clevis-pin-sss clevis-pin-null"
	local omit=" $all " m
	shift
	for m in "$@"; do omit=${omit/ $m / }; done
	dracutbasedir=$VM_DIR/dracut-sizes nice -n 10 dracut --quiet --force --no-hostonly \
		--reproducible --no-compress --conf /dev/null --confdir "$VM_DIR/sizes.conf.d" \
		--omit "$omit plymouth" --add "crypt systemd $*" \
		--kver "$(kver)" --kmoddir "$VM_DIR/kernel/lib/modules/$(kver)" "$VM_DIR/sizes/$name.cpio"
	stat -c %s "$VM_DIR/sizes/$name.cpio"
}

initrd_sizes() {
	local dl=$VM_DIR/dl-clevis base v n z zb name mods label
	rm -rf "$VM_DIR/dracut-sizes" "$dl" "$VM_DIR/sizes" && mkdir -p "$dl" "$VM_DIR/sizes" "$VM_DIR/sizes.conf.d"
	cp -a "$VM_DIR/dracut" "$VM_DIR/dracut-sizes"
	# clevis's dracut modules come from its package, unpacked into the private tree only.
	(cd "$dl" && apt-get download -q clevis-dracut) 2>&1 | { grep -v 'unsandboxed' || true; } >&2
	dpkg-deb -x "$dl"/clevis-dracut_*.deb "$dl/x"
	cp -a "$dl/x/usr/lib/dracut/modules.d/." "$VM_DIR/dracut-sizes/modules.d/"
	echo "keystrap_root=\"$VM_DIR/stage\"" >"$VM_DIR/sizes.conf.d/keystrap.conf"
	say "initramfs sizes: four dracut runs"
	base=$(initrd_variant base)
	zb=$(zstd -q -19 -c "$VM_DIR/sizes/base.cpio" | wc -c)
	printf '%-44s %12s %12s\n' "initramfs addition over crypt+systemd" "bytes" "zstd -19"
	for v in "keystrap:keystrap:keystrap (its dracut module)" \
		"tpm2-tss:tpm2-tss:systemd-cryptsetup tpm2 (tpm2-tss)" \
		"clevis:clevis clevis-pin-tpm2:clevis (clevis, clevis-pin-tpm2)"; do
		IFS=: read -r name mods label <<<"$v"
		# shellcheck disable=SC2086 # the module list is words
		n=$(initrd_variant "$name" $mods)
		z=$(zstd -q -19 -c "$VM_DIR/sizes/$name.cpio" | wc -c)
		printf '%-44s %12d %12d\n' "$label" $((n - base)) $((z - zb))
	done
	rm -rf "$dl"
}

main() {
	local run=$VM_DIR/runs/bench k ms lo hi
	vm_build
	mkdir -p "$run.data"
	cp --sparse=always "$VM_DIR/enrolled/keystrap.raw" "$run.data/disk.raw"
	rm -rf "$run.data/tpm" && cp -a "$VM_DIR/enrolled/tpm" "$run.data/tpm"
	say "bench boot (10 opens per method under ${VM_ACCEL})"
	BOOT_DISK=$run.data/disk.raw BOOT_SRC='' BOOT_TPM=$run.data/tpm BOOT_INITRD=$VM_DIR/initrd.img \
		BOOT_CMDLINE=$(vm_cmdline) BOOT_MODE=bench vm_boot "$run" || die "bench boot failed: $run/console.log"
	[ "$(ksvm "$run" bench-rc)" = 0 ] || die "bench failed: $(ksvm "$run" bench | tail -n 5)"
	declare -A med
	printf '%-20s %10s %8s %8s\n' "open LUKS2 by" "median ms" "min" "max"
	while read -r k ms lo hi; do
		med[$k]=$ms
		printf '%-20s %10s %8s %8s\n' "$k" "$ms" "$lo" "$hi"
	done < <(ksvm "$run" bench | awk 'NF == 4')
	awk -v k="${med[keystrap]}" -v s="${med[systemd-cryptsetup]}" -v c="${med[clevis]}" 'BEGIN {
		printf "keystrap / systemd-cryptsetup = %.2f (goal <= 0.5)\n", k / s
		printf "keystrap / clevis             = %.2f (goal <= 0.2)\n", k / c }'
	initrd_sizes
	attested_figure
}

# The time the attested path adds to a boot, against the strict token, one boot apart on the
# same disk, initrd and TPM: vm/check.sh's scenario 14 (four boots, in vm-check's own cache),
# (C) unlocking through the server's share, (D) through the strict token (C) resealed.
attested_figure() {
	local out c d
	say "attested path against the strict token: vm/check.sh scenario 14 (four boots)"
	out=$(VM_DIR=${VM_DIR%-bench} VM_SCENARIOS=14 VM_JOBS=1 bash "$VM_SRC/vm/check.sh" 2>&1) ||
		die "scenario 14 failed, no figure: $(grep -E '^(not ok|vm: )' <<<"$out" | tail -n 5)"
	sed -n 's/^vm: figure: //p' <<<"$out"
	c=$(sed -n 's/^vm: figure: keystrap-unlock@ took \([0-9.]*\)s on the attested.*/\1/p' <<<"$out")
	d=$(sed -n 's/.*, \([0-9.]*\)s with the resealed strict token.*/\1/p' <<<"$out")
	awk -v c="$c" -v d="$d" 'BEGIN { printf "attested unlock - strict unlock = %+.1f s", c - d
		if (d > 0) printf " (%.1fx)", c / d
		print "" }'
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
	main "$@"
fi
