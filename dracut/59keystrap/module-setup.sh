#!/bin/bash
# dracut module: keystrap unseals the root volume's disk key from the TPM in a systemd initrd.
#
# Opt-in: add_dracutmodules+=" keystrap " (or dracut --add keystrap). The volume to open is
# named on the kernel command line as rd.keystrap.root=UUID=… next to rd.luks.uuid=…; see
# keystrap-generator. keystrap_root=DIR in a dracut.conf takes keystrap's own files from the
# staging tree DIR (make install install-dracut DESTDIR=DIR) instead of from /.

# shellcheck disable=SC2154 # initdir, systemdsystemunitdir, systemdutildir come from dracut

keystrap_src() {
	printf '%s%s' "${keystrap_root-}" "$1"
}

check() {
	require_binaries "$(keystrap_src /usr/sbin/keystrap)" || return 1
	return 255
}

# Not tpm2-tss: that module brings tpm2-tools, FAPI, curl and systemd-udevd's hwdb (~27 MB
# of initramfs) for systemd-cryptsetup's own TPM path. keystrap needs only its libraries
# (inst_binary resolves them) and the TCTI it loads at run time. Add tpm2-tss yourself if
# systemd-cryptsetup should also unseal with tpm2-device=.
depends() {
	echo crypt systemd
	return 0
}

installkernel() {
	hostonly='' instmods '=drivers/char/tpm' dm_crypt
}

install() {
	inst_binary "$(keystrap_src /usr/sbin/keystrap)" /usr/sbin/keystrap
	# tpm2-tss's TCTI loader dlopens the device TCTI, so ldd does not see it.
	inst_libdir_file "libtss2-tcti-device.so*"
	inst_simple "$(keystrap_src /usr/lib/systemd/system/keystrap-unlock@.service)" \
		"$systemdsystemunitdir/keystrap-unlock@.service"
	inst_simple "$(keystrap_src /usr/lib/systemd/system/keystrap-lock.service)" \
		"$systemdsystemunitdir/keystrap-lock.service"
	inst_script "$(keystrap_src /usr/lib/systemd/system-generators/keystrap-generator)" \
		"$systemdutildir/system-generators/keystrap-generator"

	# Udev loads modular TPM drivers whenever it gets to them; loading them from
	# systemd-modules-load, which keystrap-unlock@ is ordered after, makes /dev/tpmrm0
	# exist before keystrap looks for it (built-in drivers are a no-op here).
	mkdir -p "$initdir/etc/modules-load.d"
	printf '%s\n' tpm_crb tpm_tis >"$initdir/etc/modules-load.d/keystrap.conf"
}
