# shellcheck shell=bash
# Scenario mk1 of vm/check.sh (sourced by it): the same enrolled guest, booted through a busybox
# initramfs whose /init calls dist/mkinitcpio/hooks/keystrap the way mkinitcpio's init does
# (vm/guest/mkinitcpio-init) instead of through dracut. mkinitcpio itself is not packaged for
# Debian, so the image is put together here: static busybox, keystrap with its libraries and
# the TCTI it dlopens, the guest kernel's virtio and dm-crypt modules, the hook, /config.
# The dracut-enrolled disks do not open here: OVMF measures this initramfs differently (PCR 4
# moves too), and keystrap rightly refuses. So the disk is enrolled for this image the way a
# real machine would be after switching initramfs tools: a first boot (no token: the hook
# fails, the init's emergency path reports PCRs 4 and 7), then keystrap enroll on the host
# against the same TPM state, bound to 4 and 7 as that boot measured them and 15 still zero.

MK_MODULES="virtio_pci virtio_blk dm_crypt"

# mk_initrd_key [attest]: the image's inputs, down to the code that puts it together (not the
# scenarios below). The attest flavour adds the network and keystrap.conf naming the server.
mk_initrd_key() {
	key_of "$(kver)" "$KEYSTRAP_BIN" "$VM_SRC/dist/mkinitcpio/hooks/keystrap" \
		"$VM_SRC/vm/guest/mkinitcpio-init" /usr/bin/busybox "$MK_MODULES" "$(declare -f mk_libs build_mk_initrd)" \
		${1:+"$1" "$VM_SRC/vm/guest/mkinitcpio-net" "$VM_SRC/vm/guest/udhcpc.script" "$(vm_attest_conf)" "$VM_PKI/ca.crt"}
}

# mk_libs FILE TREE: FILE and every library ldd lists for it, at their own paths.
mk_libs() {
	local f
	for f in "$1" $(ldd "$1" | sed -n 's/.*=> \(\/[^ ]*\).*/\1/p; s/^[[:space:]]*\(\/[^ ]*\) .*/\1/p'); do
		[ -e "$2$f" ] || install -Dm755 "$(readlink -f "$f")" "$2$f"
	done
}

# build_mk_initrd [attest]: build/vm/mkinitcpio.img, or mkinitcpio-attest.img.
build_mk_initrd() {
	local key tree=$VM_DIR/mk-tree k m f tcti name=mkinitcpio${1:+-$1} mods=$MK_MODULES hooks=keystrap
	key=$(mk_initrd_key "${1:-}")
	fresh "$name" "$key" && return 0
	say "$name.img: busybox initramfs with the keystrap mkinitcpio hook"
	k=$(kver)
	[ "${1:-}" != attest ] || mods="$mods virtio_net"
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
		for m in $mods; do
			modprobe -d "$VM_DIR/kernel" -S "$k" --show-depends "$m" | awk '$1 == "insmod" { print $2 }'
		done
		find "$VM_DIR/kernel/lib/modules/$k/kernel" -path '*/crypto/*' -name '*.ko*'
	} | sort -u | while read -r f; do
		install -Dm644 "$f" "$tree/usr/lib/modules/$k/${f#"$VM_DIR/kernel/lib/modules/$k/"}"
	done
	cp "$VM_DIR/kernel/lib/modules/$k"/modules.{order,builtin,builtin.modinfo} "$tree/usr/lib/modules/$k/"
	depmod -b "$tree" "$k"
	install -m755 "$VM_SRC/vm/guest/mkinitcpio-init" "$tree/init"
	install -m755 "$VM_SRC/dist/mkinitcpio/hooks/keystrap" "$tree/hooks/keystrap"
	if [ "${1:-}" = attest ]; then
		install -m755 "$VM_SRC/vm/guest/mkinitcpio-net" "$tree/hooks/net"
		install -Dm755 "$VM_SRC/vm/guest/udhcpc.script" "$tree/usr/share/udhcpc/default.script"
		vm_stage_attest "$tree"
		hooks="net keystrap"
	fi
	# What mkinitcpio writes after add_runscript sorted the hooks' run_* functions.
	printf 'MODULES="%s"\nEARLYHOOKS=""\nHOOKS="%s"\nLATEHOOKS=""\nCLEANUPHOOKS="keystrap"\n' \
		"$mods" "$hooks" >"$tree/config"
	(cd "$tree" && find . -mindepth 1 | LC_ALL=C sort | cpio --quiet -o -H newc -R 0:0) |
		gzip -1 >"$VM_DIR/$name.img"
	rm -rf "$tree"
	stamp "$name" "$key"
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

# build_mk_enrolled [attest]: build/vm/mkenrolled (or mkenrolled-attest)/disk.raw, enrolled
# for the PCRs that image boots with (also kept, as "4=… 7=… 9=…", in pcrs).
build_mk_enrolled() {
	local key name=mkenrolled${1:+-$1} img=$VM_DIR/mkinitcpio${1:+-$1}.img run out p4 p7 p9
	run=$VM_DIR/runs/$name-measure out=$VM_DIR/$name
	key=$(key_of "$(mk_initrd_key "${1:-}")" "$(installed_key)" "$(enrolled_key)")
	fresh "$name" "$key" && return 0
	say "$name/: first boot through the busybox image, then enrollment for its PCRs"
	rm -rf "$out" && mkdir -p "$out"
	cp -a "$VM_DIR/enrolled/tpm" "$out/tpm"
	cp --sparse=always "$VM_DIR/installed/disk.raw" "$out/disk.raw"
	BOOT_DISK=$out/disk.raw BOOT_SRC='' BOOT_TPM=$out/tpm BOOT_INITRD=$img \
		BOOT_CMDLINE="$(MK_CMDLINE)" BOOT_MODE=check vm_boot "$run" || die "mkinitcpio first boot failed: see $run/console.log"
	p4=$(ksvm "$run" pcr4 | tr A-F a-f) p7=$(ksvm "$run" pcr7 | tr A-F a-f) p9=$(ksvm "$run" pcr9 | tr A-F a-f)
	[[ $p4 =~ ^[0-9a-f]{64}$ && $p7 =~ ^[0-9a-f]{64}$ && $p9 =~ ^[0-9a-f]{64}$ ]] ||
		die "no PCRs from the first boot: see $run/console.log"
	echo "4=$p4 7=$p7 9=$p9" >"$out/pcrs"
	(umask 077 && printf '%s' "$VM_PASSPHRASE" >"$out/passphrase")
	: >"$out/empty.conf"
	rm -rf "$out/tpm" && cp -a "$VM_DIR/enrolled/tpm" "$out/tpm"
	mk_swtpm "$out/tpm"
	"$KEYSTRAP_BIN" enroll --device "$out/disk.raw" --pcrs "4:$p4,7:$p7,15:0" \
		--unlock-key-file "$out/passphrase" --config "$out/empty.conf" >&2 || die "enroll for the busybox image failed"
	vm_cleanup
	rm -rf "$out/tpm" "$out/passphrase" "$out/empty.conf"
	stamp "$name" "$key"
}

# mk_artifacts [attest]: the image and the disk enrolled for it, built by the first scenario
# that needs them while the others that do wait (vm/check.sh runs VM_JOBS scenarios at once).
# Both images are put together in the same tree (build/vm/mk-tree), hence one lock for them.
mk_artifacts() {
	{
		flock 9
		build_mk_initrd "$@"
	} 9>"$VM_DIR/mkinitcpio.lock"
	{
		flock 9
		build_mk_enrolled "$@"
	} 9>"$VM_DIR/mkenrolled${1:+-$1}.lock"
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
	mk_artifacts
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
	mk_artifacts
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

# Issue 6 scenario 6: scenario 1's happy path with the busybox hook in place of dracut. The
# attest flavour of the image adds a net hook (udhcpc) before keystrap and keystrap.conf naming
# the host's server (vm/server.sh); the server's policy takes its reference values from this
# image's own first boot.
mk_server_ready() {
	local d=$1
	rm -rf "$d" && mkdir -p "$d"
	vm_server_config "$d"
	# policy load refuses a group whose secret is not set yet.
	vm_server_secret "$d"
	vm_server_policy "$d" "$VM_ATTEST_PCRS" "$(cat "$VM_DIR/mkenrolled-attest/pcrs")" "$VM_SECRET_NAME"
	vm_server_start "$d"
	vm_server_enrol "$d" "$VM_DIR/enrolled/tpm" node1
}
# mk_audited DECISION: the server's audit log has an attest-finish record with that decision.
mk_audited() {
	vm_srv "$SRV" audit export | jq -r --arg d "$1" 'select(.action == "attest-finish" and .decision == $d) | .decision' |
		grep -q .
}

scenario_mk2() {
	if ! declare -F vm_server_pki >/dev/null; then
		N=$((N + 1)) PASS=$((PASS + 1))
		echo "ok $N - mkinitcpio busybox hook, attestation # SKIP no vm/server.sh (the host-side server harness)"
		return 0
	fi
	vm_server_pki
	mk_artifacts attest
	SRV=$VM_DIR/runs/mkinitcpio-attest.server
	mk_server_ready "$SRV"
	boot mkinitcpio-attest "$VM_DIR/mkenrolled-attest/disk.raw" BOOT_INITRD="$VM_DIR/mkinitcpio-attest.img" \
		BOOT_CMDLINE="$(MK_CMDLINE)"
	vm_server_stop "$SRV"
	came_up
	expect "no passphrase prompt" test "$(prompts)" = 0
	expect "the busybox init ran the net hook, then keystrap's" mk_before ':: running hook \[net\]' ':: running hook \[keystrap\]'
	expect "keystrap opened the root" console_has "opened as /dev/mapper/luks-$U"
	expect "keystrap locked PCR 15 before attesting" mk_before 'PCR 15 extended' 'certificate and key in keyring'
	expect "keystrap handoff put node1's credentials in the keyring" \
		console_has 'node node1: 1 secret\(s\), certificate and key in keyring'
	expect "the server's audit log: the quote accepted" mk_audited allow
	expect "the measurement log: $PHASES_ATTESTED, as through dracut" value_is phases "$PHASES_ATTESTED"
	expect "the cleanup hook measured leave-initrd after the handoff" \
		mk_before 'certificate and key in keyring' 'keystrap:leave-initrd'
	expect "the consumer service (uid 942) holds node1's certificate, valid, issued seconds ago, and the secret" \
		reported consumer "certificate for node1 valid, issued [0-9]+ s ago, secret $VM_SECRET_NAME matches sha256"
	ksvm "$RUN" consumer | sed 's/^/#   /'
	result "mkinitcpio busybox hook, attestation: unlock, lock, keystrap handoff to the host's server, the consumer proves its certificate and secret"
}

# Its twin: the server is down. keystrap handoff's bounded retries end in FailurePolicy=continue
# (the VM's keystrap.conf): said loudly, the root still opened and locked, nothing in the keyring.
scenario_mk2b() {
	if ! declare -F vm_server_pki >/dev/null; then
		N=$((N + 1)) PASS=$((PASS + 1))
		echo "ok $N - mkinitcpio busybox hook, server down # SKIP no vm/server.sh (the host-side server harness)"
		return 0
	fi
	vm_server_pki
	mk_artifacts attest
	boot mkinitcpio-server-down "$VM_DIR/mkenrolled-attest/disk.raw" BOOT_INITRD="$VM_DIR/mkinitcpio-attest.img" \
		BOOT_CMDLINE="$(MK_CMDLINE)"
	came_up
	expect "keystrap opened the root" console_has "opened as /dev/mapper/luks-$U"
	expect "keystrap locked PCR 15" pcr15_moved
	expect "keystrap said it could not reach the server" console_has "keystrap: cannot reach $VM_SERVER_URL/"
	expect "the failure policy said so loudly" console_has 'booting WITHOUT node credentials: attestation failed \(FailurePolicy=continue\)'
	expect "the hook went on: the cleanup hook measured leave-initrd" console_has 'PCR 12 extended with keystrap:leave-initrd'
	expect "the measurement log: $PHASES_UNATTESTED, as through dracut" value_is phases "$PHASES_UNATTESTED"
	expect "the consumer service found no certificate in the keyring" reported consumer 'no certificate'
	result "mkinitcpio busybox hook, server down: bounded retries, FailurePolicy=continue, root open, no credentials"
}

# Issue 13 through mkinitcpio: the attested keyslot opens the root from the busybox hook, whose
# net hook has brought the network up first. (A) The mk2 image and disk; in the booted guest
# keystrap enroll --attested with Offline=no, which leaves only the attested token. (B) The
# same disk again: no strict token to try, so the hook's keystrap unlock attests, the server
# releases its share, and the root opens unattended. Its twin is scenario 15 (the same unlock
# refused for a revoked node) and mk1b (the hook's fallback when keystrap opens nothing).
mk_share_released() {
	vm_srv "$SRV" audit export |
		jq -r 'select(.action == "disk-share-release" and .decision == "allow") | .decision' | grep -q .
}
scenario_mk3() {
	if ! declare -F vm_server_pki >/dev/null; then
		N=$((N + 1)) PASS=$((PASS + 1))
		echo "ok $N - mkinitcpio busybox hook, attested keyslot # SKIP no vm/server.sh (the host-side server harness)"
		return 0
	fi
	local d=$VM_DIR/runs/mk-attested.files
	vm_server_pki
	mk_artifacts attest
	rm -rf "$d" && mkdir -p "$d"
	attest_conf "$d/attest.conf" '' '[Unlock]' 'Offline=no'
	enroll_script "$d/enroll.sh"
	SRV=$VM_DIR/runs/mk-attested.server
	mk_server_ready "$SRV"
	boot mk-attested-enroll "$VM_DIR/mkenrolled-attest/disk.raw" BOOT_INITRD="$VM_DIR/mkinitcpio-attest.img" \
		BOOT_CMDLINE="$(MK_CMDLINE)" BOOT_SCRIPT="$d/enroll.sh" BOOT_VERIFY_CONF="$d/attest.conf"
	came_up
	expect "(A) keystrap opened the root with the strict token" console_has "opened as /dev/mapper/luks-$U"
	expect "(A) keystrap enroll --attested (Offline=no) succeeded" script_said '^enroll-rc: 0$'
	expect "(A) ... and left only the attested token" test "$(token_types "$RUN.data/disk.raw")" = keystrap-attested
	expect "(A) no share released yet" not mk_share_released
	boot mk-attested "$RUN.data/disk.raw" BOOT_INITRD="$VM_DIR/mkinitcpio-attest.img" BOOT_CMDLINE="$(MK_CMDLINE)"
	vm_server_stop "$SRV"
	came_up
	expect "(B) no passphrase prompt" test "$(prompts)" = 0
	expect "(B) the net hook ran before keystrap's" mk_before ':: running hook \[net\]' ':: running hook \[keystrap\]'
	expect "(B) keystrap opened the root" console_has "opened as /dev/mapper/luks-$U"
	expect "(B) ... after the server released its share (disk-share-release audited)" mk_share_released
	expect "(B) keystrap locked PCR 15" pcr15_moved
	expect "(B) the hook reported no error" mk_no_hook_error
	rm -rf "$VM_DIR/runs/mk-attested-enroll.data" "$d"
	result "mkinitcpio busybox hook, attested keyslot: Offline=no, the root opens through the server's share, unattended"
}
