#!/bin/bash
# dracut module: keystrap unseals the root volume's disk key from the TPM in a systemd initrd,
# and, when /etc/keystrap/keystrap.conf names an attestation server, brings up the network
# and attests the boot to it before the switch to the real root.
#
# Opt-in: add_dracutmodules+=" keystrap " (or dracut --add keystrap). The volume to open is
# named on the kernel command line as rd.keystrap.root=UUID=… next to rd.luks.uuid=…; see
# keystrap-generator. keystrap_root=DIR in a dracut.conf takes keystrap's own files from the
# staging tree DIR (make install install-dracut DESTDIR=DIR) instead of from /.

# shellcheck disable=SC2154 # initdir, systemdsystemunitdir, systemdutildir come from dracut

keystrap_src() {
	printf '%s%s' "${keystrap_root-}" "$1"
}

keystrap_conf() {
	keystrap_src /etc/keystrap/keystrap.conf
}

# conf_get SECTION.KEY: its value in keystrap.conf, from keystrap's own strict parser; fails
# when the file does not set it (or is refused: install says why).
conf_get() {
	[ -f "$(keystrap_conf)" ] &&
		"$(keystrap_src /usr/sbin/keystrap)" config get --config "$(keystrap_conf)" "$1" 2>/dev/null
}

attest_configured() {
	conf_get Attest.Server >/dev/null
}

check() {
	require_binaries "$(keystrap_src /usr/sbin/keystrap)" || return 1
	return 255
}

# Not tpm2-tss: that module brings tpm2-tools, FAPI, curl and systemd-udevd's hwdb (~27 MB
# of initramfs) for systemd-cryptsetup's own TPM path. keystrap needs only its libraries
# (inst_binary resolves them) and the TCTI it loads at run time. Add tpm2-tss yourself if
# systemd-cryptsetup should also unseal with tpm2-device=.
# The network only when there is a server to attest to: systemd-networkd is already part of
# every systemd host and needs no NetworkManager, so it is the smaller of dracut's two.
depends() {
	echo crypt systemd
	attest_configured && echo systemd-networkd
	return 0
}

installkernel() {
	hostonly='' instmods '=drivers/char/tpm' dm_crypt
}

install() {
	local ks conf ca
	ks=$(keystrap_src /usr/sbin/keystrap)
	inst_binary "$ks" /usr/sbin/keystrap
	# tpm2-tss's TCTI loader dlopens the device TCTI, so ldd does not see it.
	inst_libdir_file "libtss2-tcti-device.so*"
	inst_simple "$(keystrap_src /usr/lib/systemd/system/keystrap-unlock@.service)" \
		"$systemdsystemunitdir/keystrap-unlock@.service"
	inst_simple "$(keystrap_src /usr/lib/systemd/system/keystrap-lock.service)" \
		"$systemdsystemunitdir/keystrap-lock.service"
	inst_script "$(keystrap_src /usr/lib/systemd/system-generators/keystrap-generator)" \
		"$systemdutildir/system-generators/keystrap-generator"
	# The phases the mkinitcpio busybox hook measures, in the same order (see the generator).
	inst_simple "$(keystrap_src /usr/lib/systemd/system/keystrap-enter-initrd.service)" \
		"$systemdsystemunitdir/keystrap-enter-initrd.service"
	inst_simple "$(keystrap_src /usr/lib/systemd/system/keystrap-leave-initrd.service)" \
		"$systemdsystemunitdir/keystrap-leave-initrd.service"

	# Udev loads modular TPM drivers whenever it gets to them; loading them from
	# systemd-modules-load, which keystrap-unlock@ is ordered after, makes /dev/tpmrm0
	# exist before keystrap looks for it (built-in drivers are a no-op here).
	mkdir -p "$initdir/etc/modules-load.d"
	printf '%s\n' tpm_crb tpm_tis >"$initdir/etc/modules-load.d/keystrap.conf"

	conf=$(keystrap_conf)
	[ -f "$conf" ] || return 0
	# The image is public: a config that does not parse or looks like it holds a secret
	# stays out, and so does the image.
	if ! "$ks" measure --config "$conf" --check >/dev/null; then
		derror "keystrap: $conf refused (see above); not building an initramfs with it"
		return 1
	fi
	inst_simple "$conf" /etc/keystrap/keystrap.conf
	attest_configured || return 0

	ca=$(conf_get Attest.CA)
	if [ -z "$ca" ] || [ ! -f "$(keystrap_src "$ca")" ]; then
		derror "keystrap: [Attest] CA= '${ca}' is not a file under '${keystrap_root-}/'"
		return 1
	fi
	inst_simple "$(keystrap_src "$ca")" "$ca"
	inst_simple "$(keystrap_src /usr/lib/systemd/system/keystrap-handoff.service)" \
		"$systemdsystemunitdir/keystrap-handoff.service"
	# DHCP on every wired link unless the image brings its own .network files (they sort
	# first) or ip= on the command line does (systemd-network-generator).
	inst_simple "$(keystrap_src /usr/lib/systemd/network/99-keystrap-dhcp.network)" \
		"/usr/lib/systemd/network/99-keystrap-dhcp.network"
}
