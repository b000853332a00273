#!/usr/bin/env bats
# The systemd initrd units and generator (dist/dracut/59keystrap and mkinitcpio's sd-keystrap ship
# the same ones), on the host: systemd-analyze verify for the unit files, systemd --test for
# the boot transaction the generators' output gives (what starts, and what waits for what),
# and keystrap's ExecStart= lines run in that order against a real swtpm and a real LUKS2
# volume on a loop device (tests/lib/initrd.bash). Then the same boots through mkinitcpio's
# busybox hook, and the two flavours' measurements compared.

load ../lib/swtpm
load ../lib/initrd

ZERO=0000000000000000000000000000000000000000000000000000000000000000
# keystrap's initrd units in the order they run, the one row every flavour must follow.
PHASES="keystrap-enter-initrd.service keystrap-unlock@ keystrap-lock.service keystrap-handoff.service keystrap-leave-initrd.service"

setup_file() {
	swtpm_start
	hook_path "$BATS_FILE_TMPDIR/bin"
	export BBIN
}

teardown_file() {
	swtpm_stop
}

setup() {
	initrd_setup
}

teardown() {
	initrd_teardown
	if [ -n "${LOOP:-}" ]; then losetup -d "$LOOP"; fi
	swtpm_reboot
}

# esc UUID: the UUID as systemd escapes it in a unit name.
esc() { printf '%s' "${1//-/\\x2d}"; }

# cmdline UUID: the production command line of the dracut guest (vm/lib.sh) for UUID.
cmdline() { echo "console=ttyS0 rd.luks.uuid=$1 rd.keystrap.root=UUID=$1 root=/dev/mapper/luks-$1 rw"; }

# keystrap_jobs: keystrap's units in the transaction, in the order initrd_boot found.
keystrap_jobs() { grep '^keystrap-' "$INITRD/order" | sed 's/@.*/@/'; }

@test "systemd-analyze verify accepts every initrd unit, the template's instance too, with no warning" {
	install -Dm755 "$KEYSTRAP" "$INITRD/root/usr/sbin/keystrap"
	cd "$INITRD/root/usr/lib/systemd/system"
	run env SYSTEMD_IN_INITRD=1 systemd-analyze verify --root="$INITRD/root" --man=no \
		keystrap-enter-initrd.service keystrap-lock.service keystrap-leave-initrd.service \
		keystrap-handoff.service "keystrap-unlock@$(esc 5465369a-996d-42ca-9ad4-91d0082e0b34).service"
	echo "$output"
	[ "$status" -eq 0 ]
	[ -z "$output" ]
	# Its negative twin: a misspelt dependency is only a warning to systemd, so it must be seen.
	sed -i 's/^Before=initrd.target/Befor=initrd.target/' keystrap-lock.service
	run env SYSTEMD_IN_INITRD=1 systemd-analyze verify --root="$INITRD/root" --man=no keystrap-lock.service
	[[ "$output" == *"Unknown key 'Befor'"* ]]
}

@test "the boot transaction: enter-initrd, unlock, lock, handoff, leave-initrd, each waiting for the one before" {
	u=5465369a-996d-42ca-9ad4-91d0082e0b34
	printf '[Attest]\nServer=https://127.0.0.1:1\nCA=/etc/keystrap/ca.pem\n' >"$BATS_TEST_TMPDIR/keystrap.conf"
	initrd_boot "$(cmdline "$u")"
	[ "$(keystrap_jobs | tr '\n' ' ')" = "$PHASES " ]
	unlock="keystrap-unlock@$(esc "$u").service"
	prev=
	for unit in keystrap-enter-initrd.service "$unlock" keystrap-lock.service keystrap-handoff.service \
		keystrap-leave-initrd.service; do
		[ -z "$prev" ] || initrd_ordered "$prev" "$unit" || { echo "$unit does not wait for $prev"; false; }
		prev=$unit
	done
	# keystrap first, then systemd-cryptsetup (the passphrase); the lock before the real root.
	initrd_ordered "$unlock" "systemd-cryptsetup@luks$(esc "-$u").service"
	initrd_ordered "systemd-cryptsetup@luks$(esc "-$u").service" keystrap-lock.service
	initrd_ordered keystrap-lock.service initrd-switch-root.target
	initrd_ordered keystrap-lock.service initrd.target
	# Wanted, never required: a failed unlock must not take the lock down with it.
	# (its slice is a default dependency of every service, and cannot fail)
	! grep -E "^keystrap-lock.service (Requires|Requisite|BindsTo) " "$INITRD/deps" | grep -vE ' [a-z-]*\.slice$' || false
	grep -qxF "$unlock Wants keystrap-lock.service" "$INITRD/deps"
}

@test "... nothing on the command line and no keystrap.conf: no unit of keystrap's starts" {
	initrd_boot "console=ttyS0 root=/dev/sda2"
	[ -z "$(keystrap_jobs)" ]
	initrd_boot "console=ttyS0 root=/dev/sda2" emergency.target
	[ -z "$(keystrap_jobs)" ]
}

@test "the generator reads keystrap.conf through keystrap config get: FailurePolicy=emergency gives handoff OnFailure=, and asking measures nothing" {
	printf '[Attest]\nServer = https://127.0.0.1:1 \nCA=/etc/keystrap/ca.pem\nFailurePolicy = emergency\n' \
		>"$BATS_TEST_TMPDIR/keystrap.conf"
	initrd_boot "console=ttyS0"
	initrd_has_job keystrap-handoff.service
	grep -qx 'OnFailure=emergency.target' "$INITRD/gen/keystrap-handoff.service.d/60-failure-policy.conf"
	# ... as systemd itself reads the unit with its drop-in.
	awk '/^\t-> Unit keystrap-handoff.service:/ { u = 1; next } /^\t-> Unit / { u = 0 }
		u && /^\t\tOnFailure: emergency.target/ { f = 1 } END { exit !f }' "$INITRD/dump.initrd.target"
	# The generator runs before any keystrap unit: what it asked did not touch PCR 12 or the log.
	[ "$(pcr_value sha256 12)" = "$ZERO" ]
	[ ! -e "$KEYSTRAP_MEASURE_LOG" ]
	# Its twin: the default (continue), handoff without OnFailure=.
	printf '[Attest]\nServer=https://127.0.0.1:1\nCA=/etc/keystrap/ca.pem\n' >"$BATS_TEST_TMPDIR/keystrap.conf"
	initrd_boot "console=ttyS0"
	initrd_has_job keystrap-handoff.service
	[ ! -e "$INITRD/gen/keystrap-handoff.service.d" ]
}

@test "a keystrap.conf keystrap refuses: the generator says why and starts handoff to fail under its name; a valid one without Server= starts none" {
	printf '[Attest]\nServer=http://127.0.0.1:1\nFailurePolicy=emergency\n' >"$BATS_TEST_TMPDIR/keystrap.conf"
	initrd_boot "console=ttyS0"
	cat "$INITRD/generator.err"
	grep -qxF "keystrap: /etc/keystrap/keystrap.conf:2: [Attest] Server=: 'http://127.0.0.1:1' is not an https:// URL with a host" \
		"$INITRD/generator.err"
	initrd_has_job keystrap-handoff.service
	# Nothing in a refused file is used, FailurePolicy= neither (keystrap handoff exits 1 on it).
	[ ! -e "$INITRD/gen/keystrap-handoff.service.d" ]
	# Its twin: valid, Server= only in a comment; no handoff, and nothing said.
	printf '[Unlock]\nLock=yes\n# Server=https://127.0.0.1:1\n' >"$BATS_TEST_TMPDIR/keystrap.conf"
	initrd_boot "console=ttyS0"
	run initrd_has_job keystrap-handoff.service
	[ "$status" -eq 1 ]
	initrd_has_job keystrap-enter-initrd.service
	[ ! -s "$INITRD/generator.err" ]
}

@test "emergency and rescue shells: the lock runs before the shell starts" {
	u=5465369a-996d-42ca-9ad4-91d0082e0b34
	for t in emergency rescue; do
		initrd_boot "$(cmdline "$u")" "$t.target"
		initrd_has_job keystrap-lock.service
		initrd_ordered keystrap-lock.service "$t.service"
	done
}

@test "unlock refused (PCR 7 changed): the lock still runs and PCR 15 leaves its boot value" {
	luks_volume
	initrd_boot "$(cmdline "$UUID")"
	tpm2_pcrextend "7:sha256=$(printf '%064d' 1)"
	initrd_run
	cat "$INITRD/ran" "$INITRD/journal"
	grep -qxF "keystrap-unlock@$(esc "$UUID").service 1" "$INITRD/ran"
	grep -qxF "keystrap-lock.service 0" "$INITRD/ran"
	[ "$(pcr_value sha256 15)" != "$ZERO" ]
	[ "$(measured volumes-unlocked)" = 1 ]
}

@test "... and its twin: the unseal works; locked once, after it" {
	luks_volume
	initrd_boot "$(cmdline "$UUID")"
	initrd_run
	cat "$INITRD/ran" "$INITRD/journal"
	grep -qxF "keystrap-lock.service 0" "$INITRD/ran"
	[ "$(measured volumes-unlocked)" = 1 ]
	# It unsealed (this host's device-mapper may still refuse the volume): no PCR named.
	! grep -q 'PCR mismatch' "$INITRD/journal" || false
	[ "$(pcr_value sha256 15)" != "$ZERO" ]
}

@test "keystrap unlock SIGKILLed on a stalled TPM (its timeout): the lock still runs and PCR 15 moves" {
	luks_volume
	initrd_boot "$(cmdline "$UUID")"
	initrd_run "keystrap-unlock@$(esc "$UUID").service"
	cat "$INITRD/ran" "$INITRD/journal"
	grep -qxF "keystrap-unlock@$(esc "$UUID").service 137" "$INITRD/ran"
	grep -qxF "keystrap-lock.service 0" "$INITRD/ran"
	[ "$(pcr_value sha256 15)" != "$ZERO" ]
}

@test "... and when the whole boot fails into the emergency shell, the lock runs there" {
	luks_volume
	initrd_boot "$(cmdline "$UUID")" emergency.target
	initrd_run
	grep -qxF "keystrap-lock.service 0" "$INITRD/ran"
	[ "$(pcr_value sha256 15)" != "$ZERO" ]
}

# ---- the same phases, in the same order, whichever initramfs tool built the image ----------

# flavour busybox|systemd CMDLINE: one boot of the initrd, from a power-on TPM, through
# mkinitcpio's busybox hook (run_hook, then run_cleanuphook) or the systemd units; prints
# "PCR EVENT" for each measurement keystrap logged, then "PCR12 VALUE".
flavour() {
	swtpm_reboot
	[ -z "${BAD_PCR7:-}" ] || tpm2_pcrextend "7:sha256=$(printf '%064d' 1)"
	if [ "$1" = busybox ]; then
		hook "$2" run_hook run_cleanuphook >&2
	else
		initrd_boot "$2"
		initrd_run
	fi
	logged
	echo "PCR12 $(pcr_value sha256 12)"
}

# server_conf: keystrap.conf naming a server nobody answers (handoff gives up, boot goes on).
server_conf() {
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=test-ca \
		-keyout /dev/null -out "$BATS_TEST_TMPDIR/ca.pem" 2>/dev/null
	printf '[Attest]\nServer=https://127.0.0.1:%s\nCA=%s\nTimeout=5\nRetries=1\n' \
		"$(free_port)" "$BATS_TEST_TMPDIR/ca.pem" >"$BATS_TEST_TMPDIR/keystrap.conf"
}

@test "busybox hook and systemd units measure the same phases in the same order: the CEL logs and PCR 12 agree" {
	luks_volume
	root="rd.luks.uuid=$UUID rd.keystrap.root=UUID=$UUID"
	# CASE | CMDLINE | KEYSTRAP.CONF | PCR 7 CHANGED | the phases both must log
	while IFS='|' read -r name cmd conf bad want; do
		rm -f "$BATS_TEST_TMPDIR/keystrap.conf"
		case $conf in
		server) server_conf ;;
		handoff) printf '[Handoff]\nOwner=65534\n' >"$BATS_TEST_TMPDIR/keystrap.conf" ;;
		esac
		cmd=${cmd//ROOT/$root}
		busybox=$(BAD_PCR7=$bad flavour busybox "$cmd")
		systemd=$(BAD_PCR7=$bad flavour systemd "$cmd")
		got=$(grep -v '^PCR12 ' <<<"$systemd" | sed 's/^[0-9]* keystrap://; s/^config:.*/config/' | tr '\n' ' ')
		echo "$name: busybox hook:"$'\n'"$busybox"$'\n'"systemd units:"$'\n'"$systemd"
		[ "$busybox" = "$systemd" ] || { echo "$name: the flavours differ"; false; }
		[ "$got" = "$want" ] || { echo "$name: logged '$got', not '$want'"; false; }
	done <<-EOF
		root, unseal refused|ROOT|none|1|enter-initrd volumes-unlocked leave-initrd 
		root, unseal works|ROOT|none||enter-initrd volumes-unlocked leave-initrd 
		root and a server, unreachable|ROOT|server||enter-initrd volumes-unlocked config leave-initrd 
		refused rd.keystrap.root=|rd.keystrap.root=/dev/sda2|none||enter-initrd volumes-unlocked leave-initrd 
		keystrap.conf only|console=ttyS0|handoff||enter-initrd leave-initrd 
		nothing asked for|console=ttyS0|none||
	EOF
}
