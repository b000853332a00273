#!/usr/bin/env bats
# The mkinitcpio hooks. Build time: install/keystrap and install/sd-keystrap run against
# stand-ins for mkinitcpio's add_* helpers (tests/lib/mkinitcpio-standins.bash; Debian has no
# mkinitcpio) and the image tree they fill is checked. Run time: hooks/keystrap runs in busybox
# ash the way mkinitcpio's /init runs it (sourced, then run_hook, later run_cleanuphook), calling
# the real keystrap against a real swtpm and a real LUKS2 volume on a loop device. The VM boot
# of the same hook is vm/mkinitcpio.sh.

load ../lib/swtpm
load ../lib/mkinitcpio-standins
load ../lib/initrd

SRC=$BATS_TEST_DIRNAME/../..
ZERO=0000000000000000000000000000000000000000000000000000000000000000

setup_file() {
	swtpm_start
	# keystrap as 'make install install-mkinitcpio DESTDIR=…' lays it out: keystrap_root.
	export STAGE=$BATS_FILE_TMPDIR/stage
	make -s -C "$SRC" install-mkinitcpio DESTDIR="$STAGE" >/dev/null
	install -Dm755 "$KEYSTRAP" "$STAGE/usr/sbin/keystrap"
	hook_path "$BATS_FILE_TMPDIR/bin"
	export BBIN
}

teardown_file() {
	swtpm_stop
}

setup() {
	standin_setup "$BATS_TEST_TMPDIR/mk"
	export STANDIN_HOOKDIR=$SRC/dist/mkinitcpio/hooks STANDIN_UNITDIR=$SRC/dist/units
	export STANDIN_MODULES="tpm_crb tpm_tis dm_crypt"
	export STANDIN_MODULE_PATHS="kernel/crypto/xts.ko kernel/arch/x86/crypto/aesni-intel.ko kernel/drivers/md/dm-crypt.ko"
	keystrap_root=$STAGE
	rm -rf "$STAGE/etc/keystrap"
	# Only the test that ships them puts the dracut module's attestation units in the stage.
	if [ ! -f "$SRC/dist/units/keystrap-handoff.service" ]; then
		rm -f "$STAGE"/usr/lib/systemd/system/keystrap-{handoff,leave-initrd}.service \
			"$STAGE/usr/lib/systemd/network/99-keystrap-dhcp.network"
	fi
}

teardown() {
	if [ -n "${LOOP:-}" ]; then losetup -d "$LOOP"; fi
	swtpm_reboot
}

# ---- build time -------------------------------------------------------------------------

@test "install/keystrap: keystrap, its libraries and dlopened TCTI, the modules, the runtime hook" {
	standin_build "$SRC/dist/mkinitcpio/install/keystrap"
	[ -x "$BUILDROOT/usr/bin/keystrap" ]
	cmp "$BUILDROOT/usr/bin/keystrap" "$KEYSTRAP"
	# Every library ldd names is there, and the TCTI nobody links against.
	while read -r lib; do
		[ -f "$BUILDROOT$lib" ] || { echo "missing $lib"; false; }
	done < <(ldd "$KEYSTRAP" | sed -n 's/.*=> \(\/[^ ]*\).*/\1/p')
	ls "$BUILDROOT"/usr/lib/*/libtss2-tcti-device.so.0
	for m in tpm_crb tpm_tis dm_crypt xts aesni_intel; do [ -e "$BUILDROOT/usr/lib/modules/$m.ko" ]; done
	[ "$(stat -c %a "$BUILDROOT/hooks/keystrap")" = 755 ]
	cmp "$BUILDROOT/hooks/keystrap" "$HOOK"
	# /config: run_hook under HOOKS, run_cleanuphook under CLEANUPHOOKS, nothing else.
	[ "${_runhooks[hooks]}" = " keystrap" ]
	[ "${_runhooks[cleanup]}" = "keystrap " ]
	[ -z "${_runhooks[early]:-}" ] && [ -z "${_runhooks[late]:-}" ]
	# No configuration given: none in the image, and no systemd units either.
	[ ! -e "$BUILDROOT/etc/keystrap" ]
	[ ! -e "$BUILDROOT/usr/lib/systemd" ]
}

@test "install/keystrap: keystrap.conf and the CA it names go in; a config holding a secret does not" {
	mkdir -p "$STAGE/etc/keystrap"
	printf '[Unlock]\nDevice=UUID=5465369a-996d-42ca-9ad4-91d0082e0b34\nName=cryptroot\n[Attest]\nServer=https://10.0.2.2:8443\nCA=/etc/keystrap/server-ca.pem\n' \
		>"$STAGE/etc/keystrap/keystrap.conf"
	printf 'public CA certificate\n' >"$STAGE/etc/keystrap/server-ca.pem"
	standin_build "$SRC/dist/mkinitcpio/install/keystrap"
	cmp "$BUILDROOT/etc/keystrap/keystrap.conf" "$STAGE/etc/keystrap/keystrap.conf"
	cmp "$BUILDROOT/etc/keystrap/server-ca.pem" "$STAGE/etc/keystrap/server-ca.pem"

	standin_setup "$BATS_TEST_TMPDIR/mk2"
	printf '[Unlock]\nDevice=UUID=5465369a-996d-42ca-9ad4-91d0082e0b34\n# -----BEGIN PRIVATE KEY-----\n' \
		>"$STAGE/etc/keystrap/keystrap.conf"
	run standin_build "$SRC/dist/mkinitcpio/install/keystrap"
	[ "$status" -ne 0 ]
	[[ "$output" == *"==> ERROR: $STAGE/etc/keystrap/keystrap.conf: not copied into the image"* ]]
	[[ "$output" != *"PRIVATE KEY"* ]]
	[ ! -e "$BUILDROOT/etc/keystrap/keystrap.conf" ]
}

@test "install/keystrap reads CA= through keystrap config get: a path with a blank in it, blanks around it" {
	mkdir -p "$STAGE/etc/keystrap"
	printf '[Attest]\nServer=https://10.0.2.2:8443\nCA = /etc/keystrap/server ca.pem \n' >"$STAGE/etc/keystrap/keystrap.conf"
	printf 'public CA certificate\n' >"$STAGE/etc/keystrap/server ca.pem"
	standin_build "$SRC/dist/mkinitcpio/install/keystrap"
	cmp "$BUILDROOT/etc/keystrap/server ca.pem" "$STAGE/etc/keystrap/server ca.pem"
	# Its twin: no CA= in the file, no certificate asked for (and no error).
	standin_setup "$BATS_TEST_TMPDIR/mk2"
	printf '[Unlock]\nDevice=UUID=5465369a-996d-42ca-9ad4-91d0082e0b34\n' >"$STAGE/etc/keystrap/keystrap.conf"
	standin_build "$SRC/dist/mkinitcpio/install/keystrap"
	[ "$_builderrors" -eq 0 ]
	[ -f "$BUILDROOT/etc/keystrap/keystrap.conf" ]
	! grep -q 'ca.pem' "$STANDIN_CALLS" || false
}

@test "install/keystrap: TPM drivers may be built in, dm_crypt may not be missing" {
	STANDIN_MODULES=dm_crypt standin_build "$SRC/dist/mkinitcpio/install/keystrap"
	[ "$_builderrors" -eq 0 ]
	[ ! -e "$BUILDROOT/usr/lib/modules/tpm_crb.ko" ]

	standin_setup "$BATS_TEST_TMPDIR/mk2"
	STANDIN_MODULES="tpm_crb tpm_tis" run standin_build "$SRC/dist/mkinitcpio/install/keystrap"
	[ "$status" -ne 0 ]
	[[ "$output" == *"==> ERROR: module not found: 'dm_crypt'"* ]]
}

@test "install/keystrap: no keystrap binary is an error naming the path" {
	keystrap_root=$BATS_TEST_TMPDIR/empty
	run standin_build "$SRC/dist/mkinitcpio/install/keystrap"
	[ "$status" -ne 0 ]
	[[ "$output" == *"==> ERROR: file not found: '$keystrap_root/usr/sbin/keystrap'"* ]]
}

@test "install/sd-keystrap: the units and generator, TPM modules loaded early, no ash hook" {
	standin_build "$SRC/dist/mkinitcpio/install/sd-keystrap"
	[ -x "$BUILDROOT/usr/bin/keystrap" ]
	ls "$BUILDROOT"/usr/lib/*/libtss2-tcti-device.so.0
	cmp "$BUILDROOT/usr/lib/systemd/system/keystrap-unlock@.service" "$SRC/dist/units/keystrap-unlock@.service"
	cmp "$BUILDROOT/usr/lib/systemd/system/keystrap-lock.service" "$SRC/dist/units/keystrap-lock.service"
	cmp "$BUILDROOT/usr/lib/systemd/system/keystrap-enter-initrd.service" "$SRC/dist/units/keystrap-enter-initrd.service"
	[ -x "$BUILDROOT/usr/lib/systemd/system-generators/keystrap-generator" ]
	[ "$(cat "$BUILDROOT/etc/modules-load.d/keystrap.conf")" = "$(printf 'tpm_crb\ntpm_tis')" ]
	[ ! -e "$BUILDROOT/hooks" ]
	! grep -q add_runscript "$STANDIN_CALLS" || false
	[ -z "${_runhooks[hooks]:-}" ]
	# The generator that ships is what the dracut module ships.
	cmp "$BUILDROOT/usr/lib/systemd/system-generators/keystrap-generator" "$SRC/dist/units/keystrap-generator"
	# DHCP in the initrd only for a configured server.
	[ ! -e "$BUILDROOT/usr/lib/systemd/network" ]
}

@test "install/sd-keystrap: the handoff and leave-initrd units when shipped; DHCP only when a server is configured" {
	for f in system/keystrap-handoff.service system/keystrap-leave-initrd.service network/99-keystrap-dhcp.network; do
		[ -f "$SRC/dist/units/${f#*/}" ] && cp "$SRC/dist/units/${f#*/}" "$STAGE/usr/lib/systemd/$f" ||
			install -Dm644 /dev/null "$STAGE/usr/lib/systemd/$f"
	done
	standin_build "$SRC/dist/mkinitcpio/install/sd-keystrap"
	[ -f "$BUILDROOT/usr/lib/systemd/system/keystrap-handoff.service" ]
	[ -f "$BUILDROOT/usr/lib/systemd/system/keystrap-leave-initrd.service" ]
	[ ! -e "$BUILDROOT/usr/lib/systemd/network/99-keystrap-dhcp.network" ]

	standin_setup "$BATS_TEST_TMPDIR/mk2"
	mkdir -p "$STAGE/etc/keystrap"
	printf '[Attest]\nServer=https://10.0.2.2:8443\nCA=/etc/keystrap/server-ca.pem\n' >"$STAGE/etc/keystrap/keystrap.conf"
	printf 'public CA certificate\n' >"$STAGE/etc/keystrap/server-ca.pem"
	standin_build "$SRC/dist/mkinitcpio/install/sd-keystrap"
	[ -f "$BUILDROOT/usr/lib/systemd/network/99-keystrap-dhcp.network" ]
	cmp "$BUILDROOT/etc/keystrap/server-ca.pem" "$STAGE/etc/keystrap/server-ca.pem"

	# A keystrap.conf without Server= (keystrap config get says it is not set): no DHCP.
	standin_setup "$BATS_TEST_TMPDIR/mk3"
	printf '[Unlock]\nLock=yes\n# Server=https://10.0.2.2:8443\n' >"$STAGE/etc/keystrap/keystrap.conf"
	standin_build "$SRC/dist/mkinitcpio/install/sd-keystrap"
	[ -f "$BUILDROOT/etc/keystrap/keystrap.conf" ]
	[ ! -e "$BUILDROOT/usr/lib/systemd/network/99-keystrap-dhcp.network" ]
}

@test "install/sd-keystrap without keystrap_root: units through add_systemd_unit, which adds ExecStart's binary" {
	unset keystrap_root
	# shellcheck disable=SC1091
	. "$SRC/dist/mkinitcpio/install/sd-keystrap"
	keystrap_unit keystrap-unlock@.service || :
	keystrap_unit keystrap-lock.service || :
	[ "$_builderrors" -eq 0 ] || [ ! -e /usr/sbin/keystrap ]
	grep -qx 'add_systemd_unit keystrap-unlock@.service' "$STANDIN_CALLS"
	grep -qx 'add_systemd_unit keystrap-lock.service' "$STANDIN_CALLS"
	grep -qx 'add_binary /usr/sbin/keystrap' "$STANDIN_CALLS"
	cmp "$BUILDROOT/usr/lib/systemd/system/keystrap-lock.service" "$SRC/dist/units/keystrap-lock.service"
}

@test "help() of each install hook prints what the hook does and its parameters" {
	for h in keystrap sd-keystrap; do
		unset -f help
		# shellcheck disable=SC1090
		. "$SRC/dist/mkinitcpio/install/$h"
		run help
		[ "$status" -eq 0 ]
		[[ "$output" == *"PCR 15"* ]]
		[[ "$output" == *"rd.keystrap.root=UUID="* ]]
	done
}

@test "the runtime hook is POSIX sh: dash, busybox ash and shellcheck in sh mode accept it" {
	dash -n "$HOOK"
	busybox sh -n "$HOOK"
	shellcheck -s sh "$HOOK"
	bash -n "$SRC/dist/mkinitcpio/install/keystrap"
	bash -n "$SRC/dist/mkinitcpio/install/sd-keystrap"
	shellcheck -x -s bash "$SRC/dist/mkinitcpio/install/keystrap" "$SRC/dist/mkinitcpio/install/sd-keystrap"
	# Sourcing it only defines functions: mkinitcpio sources every hook into /init's shell.
	run busybox sh -c ". '$HOOK'; echo sourced"
	[ "$output" = sourced ]
}

# ---- run time ---------------------------------------------------------------------------

@test "nothing on the command line and no keystrap.conf: the hook does nothing at all" {
	p12=$(pcr_value sha256 12) p15=$(pcr_value sha256 15)
	hook "console=ttyS0 root=/dev/sda2" run_hook run_cleanuphook
	[ "$status" -eq 0 ]
	[ "$output" = "$(printf 'run_hook returned 0\nrun_cleanuphook returned 0')" ]
	[ "$(pcr_value sha256 12)" = "$p12" ]
	[ "$(pcr_value sha256 15)" = "$p15" ]
}

@test "rd.keystrap.root=UUID=: the TPM releases the key for that volume, then PCR 15 locks it" {
	luks_volume
	hook "root=/dev/mapper/luks-$UUID rd.keystrap.root=UUID=$UUID"
	[ "$status" -eq 0 ]
	[ "$(measured enter-initrd)" = 1 ]
	# The unseal worked: what stops keystrap here is this machine's missing device-mapper
	# (the VM test opens it for real), never the TPM policy.
	[[ "$output" != *"PCR mismatch"* ]]
	[[ "$output" == *"could not open UUID=$UUID; the passphrase is the fallback"* ]] ||
		[[ "$output" == *"opened as /dev/mapper/luks-$UUID"* ]]
	[ "$(pcr_value sha256 15)" != "$ZERO" ]
	[ "$(measured volumes-unlocked)" = 1 ]
	# ... and now, with PCR 15 moved, the same hook cannot unseal it again: it names PCR 15.
	hook "rd.keystrap.root=UUID=$UUID"
	[[ "$output" == *"PCR mismatch (sha256): PCR 15 is "* ]]
	[[ "$output" == *"ERROR: keystrap: could not open UUID=$UUID; the passphrase is the fallback"* ]]
}

@test "... and its twin: a changed PCR 7 keeps the key sealed; the hook names it and still locks" {
	luks_volume
	tpm2_pcrextend "7:sha256=$(printf '%064d' 1)"
	hook "rd.keystrap.root=UUID=$UUID rd.keystrap.name=cryptroot"
	[ "$status" -eq 0 ]
	[[ "$output" == *"PCR mismatch (sha256): PCR 7 is "* ]]
	[[ "$output" == *"ERROR: keystrap: could not open UUID=$UUID; the passphrase is the fallback"* ]]
	[ "$(measured volumes-unlocked)" = 1 ]
}

@test "rd.keystrap.root= that is not UUID=…: refused by name, nothing unsealed, PCR 15 locked anyway" {
	hook "rd.keystrap.root=/dev/sda2"
	[ "$status" -eq 0 ]
	[[ "$output" == *"ERROR: keystrap: ignoring rd.keystrap.root=/dev/sda2: only UUID=… is supported"* ]]
	[ "$(measured volumes-unlocked)" = 1 ]
	hook "rd.keystrap.root=UUID=not-a-uuid;rm"
	[[ "$output" == *"ignoring rd.keystrap.root=UUID=not-a-uuid;rm: only UUID=… is supported"* ]]
}

# unlock_conf [LINE...]: keystrap.conf whose [Unlock] names the test's volume (and LINEs).
unlock_conf() {
	printf '[Unlock]\nDevice=UUID=%s\nName=cryptroot\n' "$UUID" >"$BATS_TEST_TMPDIR/keystrap.conf"
	printf '%s\n' "$@" >>"$BATS_TEST_TMPDIR/keystrap.conf"
}

@test "[Unlock] of keystrap.conf, and the unseal refused (PCR 7 changed): PCR 15 is locked anyway" {
	luks_volume
	unlock_conf
	tpm2_pcrextend "7:sha256=$(printf '%064d' 1)"
	hook "root=/dev/mapper/cryptroot"
	[ "$status" -eq 0 ]
	[[ "$output" == *"PCR mismatch (sha256): PCR 7 is "* ]]
	[[ "$output" == *"ERROR: keystrap: could not open the volume of $BATS_TEST_TMPDIR/keystrap.conf; the passphrase is the fallback"* ]]
	[ "$(measured volumes-unlocked)" = 1 ]
	[ "$(pcr_value sha256 15)" != "$ZERO" ]
}

@test "... and its twin: the unseal works (even with Lock=no): keystrap unlock does not lock, the hook locks once" {
	luks_volume
	unlock_conf Lock=no
	hook "root=/dev/mapper/cryptroot"
	[ "$status" -eq 0 ]
	[[ "$output" != *"PCR mismatch"* ]]
	[[ "$output" == *"opened as /dev/mapper/cryptroot"* ]] ||
		[[ "$output" == *"could not open the volume of $BATS_TEST_TMPDIR/keystrap.conf"* ]]
	[ "$(measured volumes-unlocked)" = 1 ]
	[ "$(pcr_value sha256 15)" != "$ZERO" ]
	# After the configuration's measurement: the lock is the hook's, not keystrap unlock's.
	[ "$(logged | tail -n 1)" = "15 keystrap:volumes-unlocked" ]
	[ "$(logged | sed -n 2p)" = "12 keystrap:config:$(sha256sum <"$BATS_TEST_TMPDIR/keystrap.conf" | cut -c1-64)" ]
}

# stalled_unlock: the hook's PATH gets a keystrap whose unlock meets a stalled TPM (swtpm
# stopped) and is SIGKILLed a second later, as the OOM killer or a timeout would; every other
# verb is the real keystrap on a running TPM.
stalled_unlock() {
	local pid
	pid=$(cat "$SWTPM_DIR/pid")
	HOOK_PATH=$BATS_TEST_TMPDIR/stalled
	mkdir -p "$HOOK_PATH"
	cat >"$HOOK_PATH/keystrap" <<-EOF
		#!/bin/sh
		if [ "\$1" = unlock ]; then
			kill -STOP $pid
			(sleep 1; kill -KILL \$\$; kill -CONT $pid) >/dev/null 2>&1 &
		fi
		exec $(readlink -f "$KEYSTRAP") "\$@"
	EOF
	chmod 755 "$HOOK_PATH/keystrap"
}

@test "keystrap unlock SIGKILLed mid-unseal, rd.keystrap.root= and [Unlock] alike: PCR 15 is locked anyway" {
	luks_volume
	stalled_unlock
	hook "rd.keystrap.root=UUID=$UUID"
	[ "$status" -eq 0 ]
	[[ "$output" == *"ERROR: keystrap: could not open UUID=$UUID; the passphrase is the fallback"* ]]
	[[ "$output" != *"opened as"* ]]
	[ "$(measured volumes-unlocked)" = 1 ]
	[ "$(pcr_value sha256 15)" != "$ZERO" ]

	swtpm_reboot
	[ "$(pcr_value sha256 15)" = "$ZERO" ]
	unlock_conf
	hook "root=/dev/mapper/cryptroot"
	[ "$status" -eq 0 ]
	[[ "$output" == *"ERROR: keystrap: could not open the volume of $BATS_TEST_TMPDIR/keystrap.conf"* ]]
	[ "$(measured volumes-unlocked)" = 1 ]
	[ "$(pcr_value sha256 15)" != "$ZERO" ]
}

@test "run_cleanuphook measures leave-initrd into PCR 12, after enter-initrd" {
	p12=$(pcr_value sha256 12)
	hook "rd.keystrap.root=/dev/sda2" run_hook run_cleanuphook
	[ "$status" -eq 0 ]
	[ "$(measured enter-initrd)" = 1 ]
	[ "$(measured leave-initrd)" = 1 ]
	[ "$(grep -n '"keystrap:enter-initrd"' "$KEYSTRAP_MEASURE_LOG" | cut -d: -f1)" -lt \
		"$(grep -n '"keystrap:leave-initrd"' "$KEYSTRAP_MEASURE_LOG" | cut -d: -f1)" ]
	[ "$(pcr_value sha256 12)" != "$p12" ]
}

# conf POLICY [PORT]: keystrap.conf naming a server on PORT (default: one nobody listens on).
conf() {
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=test-ca \
		-keyout /dev/null -out "$BATS_TEST_TMPDIR/ca.pem" 2>/dev/null
	PORT=${2:-$(free_port)}
	printf '[Attest]\nServer=https://127.0.0.1:%s\nCA=%s\nTimeout=5\nRetries=1\nFailurePolicy=%s\n[Handoff]\nOwner=65534\n' \
		"$PORT" "$BATS_TEST_TMPDIR/ca.pem" "$1" >"$BATS_TEST_TMPDIR/keystrap.conf"
}

@test "server down, FailurePolicy=continue (the default): keystrap handoff says so loudly, the boot goes on" {
	conf continue
	hook "rd.keystrap.root=/dev/sda2"
	[ "$status" -eq 0 ]
	[[ "$output" == *"keystrap: cannot reach https://127.0.0.1:$PORT/"* ]]
	[[ "$output" == *"booting WITHOUT node credentials"* ]]
	# Exit 4 (unreachable) is keystrap's own "continue", not a crash for the hook to explain.
	[[ "$output" != *"keystrap handoff failed (exit"* ]]
	[[ "$output" != *"emergency shell"* ]]
	[[ "$output" == *"run_hook returned 0"* ]]
	# securityfs, for the firmware event log the server replays, unless it is there already.
	grep -q ' /sys/kernel/security ' /proc/mounts ||
		[[ "$output" == *"mount -t securityfs securityfs /sys/kernel/security"* ]]
	# The configuration was measured before use (by keystrap, once).
	[ "$(grep -c '"keystrap:config:' "$KEYSTRAP_MEASURE_LOG")" = 1 ]
}

@test "... FailurePolicy=emergency: the same failure stops the boot in the emergency shell" {
	conf emergency
	hook "rd.keystrap.root=/dev/sda2"
	[ "$status" -eq 99 ]
	[[ "$output" == *"keystrap: cannot reach https://127.0.0.1:$PORT/"* ]]
	[[ "$output" == *"ERROR: keystrap: no node credentials; FailurePolicy=emergency stops the boot"* ]]
	[[ "$output" == *"emergency shell --exec"* ]]
	[[ "$output" != *"run_hook returned"* ]]
}

# kill_handoff_soon: in the background, SIGKILLs this test's keystrap handoff (by its PID) once
# it is retrying, as the OOM killer might; the hook must then still follow FailurePolicy=.
kill_handoff_soon() {
	sed -i 's/^Retries=1$/Retries=6/' "$BATS_TEST_TMPDIR/keystrap.conf"
	(
		pid=
		for _ in $(seq 200); do
			pid=$(pgrep -x -f "keystrap handoff --config $BATS_TEST_TMPDIR/keystrap.conf") && break
			sleep 0.05
		done
		sleep 0.5
		[ -z "$pid" ] || kill -KILL "$pid" || :
	) &
	KILLER=$!
}

@test "FailurePolicy=emergency and keystrap handoff killed mid-retry: still the emergency shell" {
	conf emergency
	kill_handoff_soon
	hook "rd.keystrap.root=/dev/sda2"
	wait "$KILLER"
	[ "$status" -eq 99 ]
	[[ "$output" == *"ERROR: keystrap: keystrap handoff failed (exit 137); FailurePolicy=emergency stops the boot"* ]]
	[[ "$output" == *"emergency shell --exec"* ]]
	# Its twin, FailurePolicy=continue: the same kill, and the boot goes on, saying so. (A power
	# cycle first: the killed keystrap left its EK and AK loaded, no resource manager here.)
	swtpm_reboot
	conf continue
	kill_handoff_soon
	hook "rd.keystrap.root=/dev/sda2"
	wait "$KILLER"
	[ "$status" -eq 0 ]
	[[ "$output" == *"ERROR: keystrap: keystrap handoff failed (exit 137); booting on WITHOUT node credentials"* ]]
	[[ "$output" != *"emergency shell"* ]]
	[[ "$output" == *"run_hook returned 0"* ]]
}

@test "keystrap.conf without Server=: no attestation; Server= where keystrap refuses it: named, boot goes on" {
	printf '[Handoff]\nOwner=65534\n' >"$BATS_TEST_TMPDIR/keystrap.conf"
	hook "rd.keystrap.root=/dev/sda2"
	[ "$status" -eq 0 ]
	[[ "$output" != *"cannot reach"* ]]
	[[ "$output" != *"WITHOUT node credentials"* ]]
	# Server= in the wrong section: keystrap's strict parse refuses the file, naming the line
	# (exit 1, as for FailurePolicy=continue); the boot goes on.
	printf '[Handoff]\nServer=https://127.0.0.1:1\n' >"$BATS_TEST_TMPDIR/keystrap.conf"
	hook "rd.keystrap.root=/dev/sda2"
	[ "$status" -eq 0 ]
	[[ "$output" == *"keystrap: $BATS_TEST_TMPDIR/keystrap.conf:2: [Handoff] Server=: unknown key"* ]]
	[[ "$output" == *"ERROR: keystrap: $BATS_TEST_TMPDIR/keystrap.conf refused (see above): nothing in it is used"* ]]
	[[ "$output" != *"cannot reach"* ]]
	[[ "$output" == *"run_hook returned 0"* ]]
}
