#!/usr/bin/env bash
# make vm-check: boots the enrolled guest (vm/build.sh) through each scenario below and judges
# it only by what the guest printed on its serial console — keystrap's own lines, systemd's
# passphrase prompt, and the agent's "KSVM key: value" report — and, where the guest attests,
# by the host-side keystrap-server's audit log (vm/server.sh). Prints TAP and a closing
# "N passed, N failed". VM_SCENARIOS="1 3" runs a subset; VM_VERBOSE=1 shows the consoles.
# VM_JOBS scenarios boot at a time (default 2: one TCG vCPU each), each in a network namespace
# of its own (run_scenarios); VM_JOBS=1 runs them one after another in this shell.
set -euo pipefail
# shellcheck source=vm/build.sh
. "$(dirname "${BASH_SOURCE[0]}")/build.sh"
# shellcheck source=vm/mkinitcpio.sh
. "$(dirname "${BASH_SOURCE[0]}")/mkinitcpio.sh"

ZERO=0000000000000000000000000000000000000000000000000000000000000000
# What keystrap measures (its CEL log's phases, in order) in a boot that attests, and in one
# whose unlock or attestation fails: the same through dracut's units and mkinitcpio's hook.
PHASES_ATTESTED="enter-initrd volumes-unlocked attested leave-initrd"
PHASES_UNATTESTED="enter-initrd volumes-unlocked leave-initrd"
PROBLEMS=()
N=0 PASS=0 FAIL=0

# boot NAME DISK [VAR=VALUE...]: boots a fresh copy of the enrolled DISK (and of the enrolled
# TPM unless BOOT_TPM='' is given) with the production command line unless overridden.
boot() {
	local name=$1 disk=$2 data=$VM_DIR/runs/$1.data
	shift 2
	RUN=$VM_DIR/runs/$name
	rm -rf "$data" && mkdir -p "$data"
	cp --sparse=always "$disk" "$data/disk.raw"
	cp -a "$VM_DIR/enrolled/tpm" "$data/tpm"
	BOOTED=0
	(
		VM_PIDS=() # the boot's own; a server started for it is stopped by the scenario
		BOOT_DISK=$data/disk.raw BOOT_SRC='' BOOT_TPM=$data/tpm BOOT_INITRD=$VM_DIR/initrd.img
		BOOT_CMDLINE=$(vm_cmdline) BOOT_MODE=check
		for kv in "$@"; do declare "$kv"; done
		vm_boot "$RUN"
	) || BOOTED=$?
}

# The attestation server every scenario's server starts from: node1's first contact and the
# operator's approval, once per run; reference values from the enroll boot (enrolled/pcrs).
TEMPLATE=$VM_DIR/runs/server-template
server_template() {
	vm_server_ready "$TEMPLATE"
	vm_server_stop "$TEMPLATE"
}

# server_up NAME: a fresh copy of the template's server, listening for the next boot.
server_up() {
	SRV=$VM_DIR/runs/$1.server
	rm -rf "$SRV" && mkdir -p "$SRV"
	vm_server_config "$SRV"
	cp "$TEMPLATE"/keystrap.db* "$SRV/"
	vm_server_start "$SRV"
}
server_down() { vm_server_stop "$SRV"; }
# audited ACTION DECISION ERE: the server's audit log has such a record for node1's EK whose
# reasons match ERE.
audited() {
	vm_srv "$SRV" audit export | jq -r --arg a "$1" --arg d "$2" --arg ek "$(cat "$TEMPLATE/ek-hash")" \
		'select(.action == $a and .decision == $d and .ek_hash == $ek) | .reasons' | grep -Eq -- "$3"
}
log_verifies() { vm_srv "$SRV" audit verify >/dev/null 2>&1; }
# attest_failed WHY: keystrap handoff gave up with a line matching WHY, the failure policy
# (continue) said so on the console, the boot went on, and nothing reached the keyring.
attest_failed() {
	expect "keystrap said why ($1)" reported attest "keystrap: .*$1"
	expect "the failure policy said so loudly on the console" \
		console_has 'booting WITHOUT node credentials: .*FailurePolicy=continue'
	expect "keystrap handoff did not claim success" not_reported attest 'certificate and key in keyring'
	expect "the consumer service found no certificate in the keyring" reported consumer 'no certificate'
}

# secret_patterns: the known secret as the scan looks for it: raw, hex, base64, one a line.
secret_patterns() {
	printf '%s\n' "$VM_SECRET"
	printf '%s' "$VM_SECRET" | xxd -p | tr -d '\n'
	echo
	printf '%s' "$VM_SECRET" | base64 -w0
	echo
}
# absent_from FILE|DIR...: none of them holds the secret in any form (grep status 1: no match,
# and no file missing or unreadable).
absent_from() {
	local rc=0
	grep -raqiF -f <(secret_patterns) -- "$@" || rc=$?
	[ "$rc" -eq 1 ]
}

# leak_scan: after the happy path, the known secret's bytes (raw, hex, base64) are nowhere in
# the guest's journal, /run and /tmp (the agent's dump on the scan disk), the initramfs, the
# serial console, the host-side logs, or the server's database (sealed there under the KEK).
leak_scan() {
	local unpacked=$VM_DIR/runs/initrd-unpacked
	expect "the agent dumped the guest's journal, /run and /tmp" reported scan written
	expect "... and the dump holds the journal (the consumer's line)" \
		grep -aq 'keystrap-consumer: certificate for node1' "$RUN/scan.img"
	rm -rf "$unpacked" && mkdir -p "$unpacked"
	(cd "$unpacked" && lsinitrd --unpack "$VM_DIR/initrd.img" >/dev/null 2>&1) || true
	expect "the initramfs unpacked for the scan" test -x "$unpacked/usr/sbin/keystrap"
	expect "the secret is nowhere in the guest's journal, /run or /tmp" absent_from "$RUN/scan.img"
	expect "... nor in the initramfs" absent_from "$unpacked"
	expect "... nor on the serial console" absent_from "$RUN/serial.log" "$RUN/console.log"
	expect "... nor in the host-side logs (server, admin commands, enrollment, QEMU, swtpm)" \
		absent_from "$SRV/server.log" "$TEMPLATE/server.log" "$TEMPLATE/admin.log" \
		"$TEMPLATE/enrol.log" "$RUN/qemu.log" "$RUN/swtpm.log"
	expect "... nor in the server's database (sealed under the KEK)" \
		absent_from "$TEMPLATE/keystrap.db"
	expect "... while the scan finds it where it is in the clear (the scan's positive control)" \
		not absent_from <(printf '%s' "$VM_SECRET")
	rm -rf "$unpacked" "$RUN/scan.img"
}

expect() { # expect WHAT CMD...: WHAT is recorded as a failure unless CMD succeeds.
	local what=$1
	shift
	"$@" || PROBLEMS+=("$what")
}
reported() { # reported KEY ERE: some value the agent reported under KEY matches ERE.
	ksvm "$RUN" "$1" | grep -Eq -- "$2"
}
not_reported() { ! reported "$@"; }
pcr15_moved() {
	local v
	v=$(ksvm "$RUN" pcr15)
	[[ $v =~ ^[0-9A-Fa-f]{64}$ ]] && [ "$v" != "$ZERO" ]
}
value_is() { [ "$(ksvm "$RUN" "$1")" = "$2" ]; }
console_has() { grep -Eq -- "$1" "$RUN/console.log"; }
# first_line ERE: line number of the first console line matching ERE (0 when none).
first_line() { grep -nE -m1 -- "$1" "$RUN/console.log" | cut -d: -f1 || echo 0; }
prompts() { cat "$RUN/prompts"; }

came_up() {
	expect "the guest powered off by itself within ${VM_TIMEOUT}s" test "$BOOTED" = 0
	expect "multi-user.target is active" value_is target "multi-user.target active"
	expect "/ is /dev/mapper/luks-$U" value_is root "/dev/mapper/luks-$U"
	expect "the root is a LUKS2 volume" value_is root-type LUKS2
	expect "the agent finished its report" console_has 'KSVM done'
}

opened_by_keystrap() {
	expect "no passphrase prompt" test "$(prompts)" = 0
	expect "keystrap opened the root" reported keystrap "opened as /dev/mapper/luks-$U"
}

# fell_back WHY: keystrap refused with a line matching WHY, before systemd-cryptsetup's
# passphrase prompt, which the harness answered once.
fell_back() {
	local refused prompt
	refused=$(first_line "keystrap\[[0-9]+\]: keystrap: .*$1")
	prompt=$(first_line 'Please enter passphrase')
	expect "keystrap said why on the console ($1)" test "$refused" -gt 0
	expect "exactly one passphrase prompt, answered" test "$(prompts)" = 1
	expect "keystrap's error came before the prompt" test "$refused" -lt "$prompt"
	expect "keystrap did not open the root" not_reported keystrap 'opened as'
}

result() { # result DESCRIPTION: one TAP line for the scenario just judged.
	local p
	N=$((N + 1))
	if [ ${#PROBLEMS[@]} -eq 0 ]; then
		PASS=$((PASS + 1))
		echo "ok $N - $1 ($(cat "$RUN/seconds")s)"
		echo "#   $(ksvm "$RUN" boot)"
		rm -rf "$RUN.data" # the disk copy (~0.4 GB); a failure keeps it for a look
	else
		FAIL=$((FAIL + 1))
		echo "not ok $N - $1"
		for p in "${PROBLEMS[@]}"; do echo "#   expected: $p"; done
		echo "#   console: $RUN/console.log"
		grep -E 'KSVM|keystrap\[|Please enter' "$RUN/console.log" | tail -n 25 | sed 's/^/#     /'
	fi
	PROBLEMS=()
}

scenario_1() {
	server_up unattended
	boot unattended "$VM_DIR/enrolled/keystrap.raw" BOOT_SCAN=1
	server_down
	came_up
	expect "keystrap handed node1's credentials to the keyring in the initrd" \
		reported attest 'node node1: 1 secret\(s\), certificate and key in keyring'
	expect "the server's audit log: node1's quote accepted" audited attest-finish allow .
	expect "node1 witnessed the server's audit log: its keyring holds the checkpoint its reply was proved against" \
		reported witnessed '^keystrap-vm/log, [0-9]+ records, root '
	expect "... and the server's log verifies against the checkpoint it signed" log_verifies
	expect "keystrap measured leave-initrd" reported leave-initrd 'keystrap:leave-initrd'
	expect "the measurement log: $PHASES_ATTESTED" value_is phases "$PHASES_ATTESTED"
	expect "the consumer service (uid 942) holds node1's certificate, valid, issued seconds ago, and the secret" \
		reported consumer "certificate for node1 valid, issued [0-9]+ s ago, secret $VM_SECRET_NAME matches sha256"
	ksvm "$RUN" consumer | grep '^keystrap-consumer:' | sed 's/^/#   /' || true
	leak_scan
	say "attestation in the initrd took $(ksvm "$RUN" attest-seconds)s"
	opened_by_keystrap
	expect "systemd-cryptsetup then found the volume open" reported cryptsetup 'already active'
	expect "keystrap-lock extended PCR 15" reported lock 'PCR 15 extended'
	expect "PCR 15 is no longer zero" pcr15_moved
	expect "a second keystrap unlock in the booted guest fails" value_is relock-rc 1
	expect "... naming PCR 15" reported relock 'PCR 15'
	result "unattended boot: keystrap opens the root, PCR 15 locks it, attests to the host; the consumer proves its certificate and secret; the secret leaked nowhere"
}

scenario_2() {
	server_up tampered-cmdline
	boot tampered-cmdline "$VM_DIR/enrolled/keystrap.raw" BOOT_CMDLINE="$(vm_cmdline) ksvm.tampered=1"
	server_down
	came_up
	fell_back 'PCR 9 '
	expect "PCR 15 is no longer zero, the unlock having failed" pcr15_moved
	expect "the measurement log: $PHASES_UNATTESTED" value_is phases "$PHASES_UNATTESTED"
	attest_failed 'PCR 9'
	expect "the server's audit log: the quote refused, naming PCR 9" audited attest-finish deny 'PCR 9'
	expect "... and no quote accepted" not audited attest-finish allow .
	result "changed kernel command line: keystrap names PCR 9, passphrase fallback, the server refuses the quote naming PCR 9"
}

scenario_2b() {
	local img=$VM_DIR/runs/initrd-tampered.img
	# An extra cpio archive appended to the initramfs: the kernel unpacks it over the rest.
	rm -rf "$VM_DIR/runs/extra" && mkdir -p "$VM_DIR/runs/extra/etc"
	echo tampered >"$VM_DIR/runs/extra/etc/ksvm-tampered"
	cp "$VM_DIR/initrd.img" "$img"
	(cd "$VM_DIR/runs/extra" && echo etc/ksvm-tampered | cpio --quiet -o -H newc) >>"$img"
	boot tampered-initrd "$VM_DIR/enrolled/keystrap.raw" BOOT_INITRD="$img"
	came_up
	fell_back 'PCR 9 '
	result "changed initramfs: keystrap names PCR 9, passphrase fallback"
}

scenario_3() {
	boot no-tpm "$VM_DIR/enrolled/keystrap.raw" BOOT_TPM=''
	came_up
	fell_back 'no TPM'
	result "no TPM: keystrap says so, passphrase fallback"
}

scenario_4a() {
	boot systemd-enrolled "$VM_DIR/enrolled/systemd.raw"
	came_up
	opened_by_keystrap
	result "interop: a systemd-cryptenroll token unlocks through keystrap"
}

scenario_4b() {
	boot systemd-unlocks "$VM_DIR/enrolled/keystrap-nopcr9.raw" BOOT_CMDLINE="console=ttyS0 \
rd.luks.uuid=$U rd.luks.options=tpm2-device=auto root=/dev/mapper/luks-$U rw rd.shell=0 rd.emergency=poweroff"
	came_up
	expect "no passphrase prompt" test "$(prompts)" = 0
	expect "keystrap did not run" test -z "$(ksvm "$RUN" keystrap)"
	result "interop: a keystrap token unlocks through systemd-cryptsetup (tpm2-device=auto)"
}

scenario_5() {
	local disk=$VM_DIR/runs/corrupt-token.raw json before after
	cp --sparse=always "$VM_DIR/enrolled/keystrap.raw" "$disk"
	json=$VM_DIR/runs/corrupt-token.json
	cryptsetup token export --token-id 0 "$disk" | jq -c '."tpm2-blob" = "not base64!"' >"$json"
	# Without plugins: systemd's token plugin would validate, and refuse, the corrupted JSON.
	cryptsetup --disable-external-tokens token import --token-id 0 --token-replace \
		--json-file "$json" "$disk"
	before=$(head -c 16M "$disk" | sha256sum)
	boot corrupt-token "$disk"
	after=$(head -c 16M "$VM_DIR/runs/corrupt-token.data/disk.raw" | sha256sum)
	rm -f "$disk"
	came_up
	fell_back 'token 0 is malformed'
	expect "PCR 15 is no longer zero, the unlock having failed" pcr15_moved
	expect "the LUKS2 header is untouched" test "$before" = "$after"
	result "corrupted token JSON: clear error, passphrase fallback, header untouched"
}

scenario_6() {
	server_up revoked
	vm_srv "$SRV" node revoke "$(cat "$TEMPLATE/ek-hash")" >/dev/null
	boot revoked "$VM_DIR/enrolled/keystrap.raw"
	server_down
	came_up
	opened_by_keystrap
	attest_failed 'node is revoked'
	expect "the server's audit log: the revoked node refused" audited attest-start deny 'revoked'
	expect "... and no quote accepted" not audited attest-finish allow .
	result "revoked node: the server refuses and audits it, the boot continues without credentials"
}

# Revoked while it runs (issue 16 item 3): node1 boots and hands off; once its quote is in the
# audit log the operator revokes it; the guest's keystrap verify hears so within a few runs,
# takes the credentials out of the keyring, and the consumer, started again, reads nothing;
# the server's CRL lists the certificate the guest held.
# crl_lists CRL SERIAL: the CRL (PEM, checked under the server's CA) revokes that serial (hex).
crl_lists() {
	[[ $2 =~ ^[0-9A-Fa-f]+$ ]] || return 1
	openssl crl -in "$1" -CAfile "$VM_PKI/ca.crt" -noout 2>&1 | grep -q "verify OK" &&
		openssl crl -in "$1" -noout -text | grep -Eiq "^ *Serial Number: 0*$2\$"
}

scenario_8() {
	local conf=$VM_DIR/runs/revoke-live.verify.conf watcher serial
	server_up revoke-live
	printf '[Attest]\nServer=%s\nCA=/run/ksvm/server-ca.pem\nLogKey=%s\nTimeout=10\nRetries=1\n' \
		"$VM_SERVER_URL" "$(cat "$VM_PKI/log.vkey")" >"$conf"
	(
		for _ in $(seq 600); do
			audited attest-finish allow . && break
			sleep 0.5
		done
		vm_srv "$SRV" node revoke node1 >/dev/null 2>&1
	) &
	watcher=$!
	boot revoke-live "$VM_DIR/enrolled/keystrap.raw" BOOT_MODE=revoke BOOT_VERIFY_CONF="$conf"
	wait "$watcher" 2>/dev/null || true
	vm_srv "$SRV" ca crl --pem >"$VM_DIR/runs/revoke-live.crl.pem" 2>/dev/null || true
	serial=$(vm_srv "$SRV" node show node1 --json 2>/dev/null | jq -r '.cert_serial // empty')
	server_down
	came_up
	opened_by_keystrap
	expect "before the revocation, the consumer held node1's certificate and secret" \
		reported consumer "certificate for node1 valid"
	expect "keystrap verify in the running guest heard that node1 is revoked" reported verify 'revoked'
	expect "... and the consumer, started again, reads no certificate and not the secret" \
		reported consumer-after "no certificate: .*; secret:$VM_SECRET_NAME unreadable"
	expect "the server's audit log: the revocation, then the refused re-attestation" audited attest-start deny 'revoked'
	expect "the CRL the server publishes lists node1's certificate (serial ${serial:-unknown})" \
		crl_lists "$VM_DIR/runs/revoke-live.crl.pem" "$serial"
	say "verify heard it after $(ksvm "$RUN" verify-tries) run(s)"
	result "revoked while running: keystrap verify takes the credentials away, the consumer loses access"
}

# attest_conf FILE [LINES...]: [Attest] as the initrd has it, for keystrap in the booted guest
# (the tools disk's verify.conf), with LINES after it.
attest_conf() {
	local f=$1
	shift
	printf '[Attest]\nServer=%s\nCA=/run/ksvm/server-ca.pem\nLogKey=%s\nTimeout=10\nRetries=1\n' \
		"$VM_SERVER_URL" "$(cat "$VM_PKI/log.vkey")" >"$f"
	[ $# -eq 0 ] || printf '%s\n' "$@" >>"$f"
}

# enroll_script FILE [PREDICT-OLD PREDICT-NEW]: what the first boot runs after its report:
# keystrap enroll --attested against the host's server (verify.conf) and, given two initrd
# digests, the PCRs 4 and 9 keystrap predict says the boot with the new initrd, the new
# kernel (the tools disk's files/vmlinuz and files/vmlinuz.new) and the command line in
# files/cmdline will measure, and what it could not match.
enroll_script() {
	cat >"$1" <<-'SH'
		#!/bin/sh
		T=$(dirname "$0")
		"$T/keystrap" enroll --attested --config "$T/verify.conf" --device "UUID=$(cat "$T/uuid")" \
			--unlock-key-file "$T/passphrase" 2>&1
		echo "enroll-rc: $?"
	SH
	[ $# -eq 1 ] || cat >>"$1" <<-SH
		"\$T/keystrap" predict --replace $2=$3 --replace "\$T/files/vmlinuz=\$T/files/vmlinuz.new" \
			--cmdline "\$(cat "\$T/files/cmdline")" --allow-unmatched 2>&1 |
			awk '/matched no event/ { print "predict-unmatched: " \$0 }
				/^[a-z0-9_]+:\$/ { bank = \$1 } bank == "sha256:" && (\$1 == 4 || \$1 == 9) {
				sub(/^0x/, "", \$3); print "predicted-pcr" \$1 ": " \$3 }'
	SH
}
script_said() { ksvm "$RUN" script | grep -Eq -- "$1"; }
script_value() { ksvm "$RUN" script | sed -n "s/^$1: //p" | tail -n 1; }
token_types() { cryptsetup luksDump --dump-json-metadata "$1" | jq -r '[.tokens[].type] | sort | join(" ")'; }

# Issue 13: a fleet update without losing unattended boot. (A) node1 boots as enrolled and adds
# an attested keyslot; keystrap predict says what PCRs 4 and 9 the update will bring.
# (B) The update (the initramfs rebuilt: one file more, so PCR 9 moves; a kernel image that
# differs, the same one with a page appended: PCR 4 moves) with no new policy: the strict
# token fails, the server refuses the attestation naming PCRs 4 and 9 in full, the
# passphrase is the fallback. The operators draft the next policy from that refusal, sign it
# 2 of 2 and load it. (C) The same machine reboots unattended through the attested path and
# reseals its strict token to this boot. (D) The next boot, with the server down, unlocks
# offline. The update also changes the kernel command line: keystrap predict --cmdline finds
# the EFI stub's LoadOptions event by this boot's /proc/cmdline (keystrap-predict(8)).
scenario_14() {
	local d=$VM_DIR/runs/update img conf old new predicted measured drafted disk c_unlock c_boot
	local predicted4 measured4 drafted4 unmatched cmdline kernel=$d/files/vmlinuz.new
	rm -rf "$d" && mkdir -p "$d/extra/etc" "$d/files"
	cp "$(vmlinuz)" "$d/files/vmlinuz"
	{ cat "$(vmlinuz)" && head -c 4096 /dev/zero; } >"$kernel"
	img=$d/initrd.img
	echo update >"$d/extra/etc/ksvm-update"
	cp "$VM_DIR/initrd.img" "$img"
	(cd "$d/extra" && echo etc/ksvm-update | cpio --quiet -o -H newc) >>"$img"
	# The update's command line, as the guest's /proc/cmdline will show it (OVMF adds initrd=).
	cmdline="$(vm_cmdline) ksvm.update=1"
	echo "$cmdline initrd=initrd" >"$d/files/cmdline"
	old=$(sha256sum <"$VM_DIR/initrd.img" | cut -c1-64)
	new=$(sha256sum <"$img" | cut -c1-64)
	attest_conf "$d/attest.conf"
	enroll_script "$d/enroll.sh" "$old" "$new"
	server_up update

	boot update-enroll "$VM_DIR/enrolled/keystrap.raw" BOOT_SCRIPT="$d/enroll.sh" BOOT_VERIFY_CONF="$d/attest.conf" \
		BOOT_FILES="$d/files"
	came_up
	opened_by_keystrap
	expect "(A) keystrap enroll --attested succeeded in the booted guest" script_said '^enroll-rc: 0$'
	expect "... and the server stored this node's share for the volume" audited disk-share-store allow .
	predicted=$(script_value predicted-pcr9) predicted4=$(script_value predicted-pcr4)
	unmatched=$(script_value predict-unmatched)
	expect "(A) keystrap predict gave the updated boot's PCRs 4 and 9" test "${#predicted}${#predicted4}" = 6464
	disk=$RUN.data/disk.raw
	expect "(A) the volume has the strict and the attested token" \
		test "$(token_types "$disk")" = "keystrap-attested systemd-tpm2"

	boot update-refused "$disk" BOOT_INITRD="$img" BOOT_KERNEL="$kernel" BOOT_CMDLINE="$cmdline"
	came_up
	fell_back 'PCR 4 .*PCR 9 '
	measured=$(ksvm "$RUN" pcr9) measured4=$(ksvm "$RUN" pcr4)
	expect "(B) keystrap, without a policy for the update, asked the server for its share and was refused naming PCRs 4 and 9 in full" \
		reported keystrap 'refused.*PCR 4 \(sha256\) is [0-9a-f]{64}, policy [0-9]+ wants [0-9a-f]{64}.*PCR 9 \(sha256\) is [0-9a-f]{64}, policy [0-9]+ wants [0-9a-f]{64}'
	expect "(B) the server's audit log: the release refused, naming PCRs 4 and 9" audited attest-finish deny 'PCR 4 .*PCR 9'
	expect "(B) ... and no share released" not audited disk-share-release allow .
	expect "(B) the update's command line was the one predict was given" grep -q ' ksvm.update=1 ' "$RUN/console.log"
	expect "(e) keystrap predict on the first boot said the PCR 9 the update measured" \
		test "${predicted,,}" = "${measured,,}"
	# QEMU hands OVMF the kernel with its setup header filled in (the initrd's size among it),
	# so PCR 4 holds no file's digest: predict must say so, not guess.
	expect "(e) ... and said it found no event of the kernel file (QEMU's image is not the file)" \
		grep -Eq "files/vmlinuz' \(sha256 [0-9a-f]{64}, Authenticode [0-9a-f]{64}\) matched no event in the log" <<<"$unmatched"
	expect "(B) PCR 4 moved with the update" test "${measured4,,}" != "$(sed -n 's/^4=//p' "$VM_DIR/enrolled/pcrs" | tr A-F a-f)"
	vm_srv "$SRV" policy draft --from-node node1 --out "$d/policy-v2.json" >>"$SRV/admin.log" 2>&1
	drafted=$(jq -r '.reference_pcrs["9"] // empty' "$d/policy-v2.json" 2>/dev/null)
	drafted4=$(jq -r '.reference_pcrs["4"] // empty' "$d/policy-v2.json" 2>/dev/null)
	expect "(b) the draft from node1's refusal pins PCRs 4 and 9 to what the update measured" \
		test "${drafted,,} ${drafted4,,}" = "${measured,,} ${measured4,,}"
	(vm_server_sign_load "$SRV" "$d/policy-v2.json")
	expect "(b) the draft, signed 2 of 2, is the policy in force" \
		grep -q '^version 2' <(vm_srv "$SRV" policy show 2>/dev/null)

	boot update-attested "$RUN.data/disk.raw" BOOT_INITRD="$img" BOOT_KERNEL="$kernel" BOOT_CMDLINE="$cmdline"
	came_up
	opened_by_keystrap
	expect "(C) the strict token failed first, naming PCR 9" reported keystrap 'PCR 9 '
	expect "(C) the server released node1's share (audited)" audited disk-share-release allow .
	expect "(C) keystrap resealed the strict token to this boot" reported keystrap 'reseal'
	expect "(C) node1 attested and handed off" reported attest 'certificate and key in keyring'
	expect "(C) the volume still has one strict and one attested token" \
		test "$(token_types "$RUN.data/disk.raw")" = "keystrap-attested systemd-tpm2"
	c_unlock=$(ksvm "$RUN" unlock-seconds) c_boot=$(ksvm "$RUN" boot)
	server_down

	boot update-offline "$RUN.data/disk.raw" BOOT_INITRD="$img" BOOT_KERNEL="$kernel" BOOT_CMDLINE="$cmdline"
	came_up
	opened_by_keystrap
	expect "(D) with the server down, the resealed strict token opened the root" not reported keystrap 'PCR (4|9) '
	attest_failed 'cannot reach'
	# make bench-vm's figure (vm/bench.sh greps it): the same disk, initrd and TPM, one boot apart.
	say "figure: keystrap-unlock@ took ${c_unlock}s on the attested path (C), $(ksvm "$RUN" unlock-seconds)s with the resealed strict token (D); (C) $c_boot; (D) $(ksvm "$RUN" boot)"
	rm -rf "$VM_DIR"/runs/update-{enroll,refused,attested}.data "$d"
	result "fleet update (initramfs, kernel and command line): strict token fails, server refuses naming PCRs 4 and 9, a draft from the refusal signed 2-of-2 lets the same boot unlock through the attested path and reseal; the next boot unlocks offline; predict was right"
}

# Issue 13 (d): [Unlock] Offline=no keeps no strict token, so revocation always reaches the
# disk: node1 adds an attested keyslot (the enrollment removes the strict token), the operator
# revokes node1, and the next boot, its PCRs unchanged, gets no share and asks for the
# passphrase.
scenario_15() {
	local d=$VM_DIR/runs/offline-no
	rm -rf "$d" && mkdir -p "$d"
	attest_conf "$d/attest.conf" '' '[Unlock]' 'Offline=no'
	enroll_script "$d/enroll.sh"
	server_up offline-no
	boot offline-no-enroll "$VM_DIR/enrolled/keystrap.raw" BOOT_SCRIPT="$d/enroll.sh" BOOT_VERIFY_CONF="$d/attest.conf"
	came_up
	opened_by_keystrap
	expect "keystrap enroll --attested (Offline=no) succeeded" script_said '^enroll-rc: 0$'
	expect "... and left only the attested token" test "$(token_types "$RUN.data/disk.raw")" = keystrap-attested
	vm_srv "$SRV" node revoke node1 >>"$SRV/admin.log" 2>&1
	boot offline-no-revoked "$RUN.data/disk.raw"
	server_down
	came_up
	fell_back 'revoked'
	expect "the server's audit log: the revoked node refused" audited attest-start deny 'revoked'
	expect "... and no share released" not audited disk-share-release allow .
	rm -rf "$VM_DIR/runs/offline-no-enroll.data" "$d"
	result "Offline=no and a revoked node: no strict token, no share, the disk stays locked (passphrase prompt)"
}

scenario_7() {
	boot server-down "$VM_DIR/enrolled/keystrap.raw"
	came_up
	opened_by_keystrap
	attest_failed 'cannot reach'
	expect "attestation gave up within 60 s" awk -v s="$(ksvm "$RUN" attest-seconds)" 'BEGIN { exit !(s + 0 < 60) }'
	say "attestation gave up after $(ksvm "$RUN" attest-seconds)s"
	result "server down: bounded retries, then the failure policy; the boot completes"
}

not() { ! "$@"; }

# one_scenario S N: scenario S as TAP test N+1, in the network namespace run_scenarios made
# for it. There 127.0.0.1, which QEMU's user networking shows the guest as 10.0.2.2, is this
# scenario's alone: its server has VM_SERVER_PORT to itself, and a scenario that starts none
# (7, server down) reaches none. The template server's secret, which the leak scan looks for,
# comes on fd 3: it is never in the environment, an argument or a file.
one_scenario() {
	ip link set lo up || die "cannot bring up the loopback of scenario $1's network namespace"
	IFS= read -r VM_SECRET <&3 || true
	exec 3<&-
	VM_SECRET_SHA256=$(printf '%s' "$VM_SECRET" | sha256sum | cut -d' ' -f1)
	U=$(vm_uuid)
	N=$2
	"scenario_$1"
}

# The scenarios run_scenarios started and that have not ended, by index: each leads a process
# group of its own (setsid), which holds its QEMU, swtpm and server.
JOB_PIDS=()
jobs_stop() {
	local pid
	[ ${#JOB_PIDS[@]} -gt 0 ] || return 0
	for pid in "${JOB_PIDS[@]}"; do kill -TERM -- "-$pid" 2>/dev/null || true; done
	# Each one's shell then stops its QEMU, swtpm and server (vm_cleanup); after 10 s what is
	# left of the group is killed.
	for pid in "${JOB_PIDS[@]}"; do
		for _ in $(seq 50); do
			kill -0 -- "-$pid" 2>/dev/null || break
			sleep 0.2
		done
		kill -KILL -- "-$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	done
	JOB_PIDS=()
}
trap 'jobs_stop; vm_cleanup' EXIT

# run_scenarios S...: VM_JOBS of them at a time, each a new vm/check.sh (one_scenario) in a
# network namespace of its own (unshare --net) and a process group of its own (setsid, so it
# is stopped as a whole). Their TAP lines and diagnostics come out in the order given, numbered
# as one after the other would be. A scenario that ends without its TAP line (crashed, or
# stopped after VM_JOB_TIMEOUT seconds: vm_boot's own timeout should come first) fails.
run_scenarios() {
	local names=("$@") start=() rc=() stopped=() i pid next=0 shown=0 running=0 out
	local limit=${VM_JOB_TIMEOUT:-$((2 * VM_TIMEOUT + 300))} # mk1b may wait for mk1's build boot
	unshare --net true 2>/dev/null ||
		die "VM_JOBS=$VM_JOBS needs network namespaces (unshare --net, as root); VM_JOBS=1 runs one scenario at a time"
	export VM_DIR KEYSTRAP_BIN KEYSTRAP_SERVER_BIN VM_ACCEL VM_TIMEOUT VM_MEM VM_VERBOSE VM_MIRROR \
		VM_KERNEL_PKG VM_SERVER_PORT VM_EK_CA_DIR
	while [ "$shown" -lt ${#names[@]} ]; do
		while [ "$running" -lt "$VM_JOBS" ] && [ "$next" -lt ${#names[@]} ]; do
			out=$VM_DIR/runs/scenario-${names[next]}
			if [ -n "$VM_VERBOSE" ]; then
				setsid unshare --net bash "$VM_SRC/vm/check.sh" --scenario "${names[next]}" "$next" \
					3< <(printf '%s' "${VM_SECRET:-}") >"$out.tap" 2> >(sed -u "s/^/${names[next]}: /" >&2) &
			else
				setsid unshare --net bash "$VM_SRC/vm/check.sh" --scenario "${names[next]}" "$next" \
					3< <(printf '%s' "${VM_SECRET:-}") >"$out.tap" 2>"$out.err" &
			fi
			JOB_PIDS[next]=$!
			start[next]=$SECONDS
			next=$((next + 1)) running=$((running + 1))
		done
		sleep 1
		for i in "${!JOB_PIDS[@]}"; do
			pid=${JOB_PIDS[i]}
			if ! kill -0 "$pid" 2>/dev/null; then
				rc[i]=0
				wait "$pid" || rc[i]=$?
				unset "JOB_PIDS[i]"
				running=$((running - 1))
			elif [ $((SECONDS - start[i])) -ge $((limit + 30)) ]; then
				kill -KILL -- "-$pid" 2>/dev/null || true
			elif [ $((SECONDS - start[i])) -ge "$limit" ] && [ -z "${stopped[i]:-}" ]; then
				say "scenario ${names[i]}: no result after ${limit}s (VM_JOB_TIMEOUT); stopping it"
				stopped[i]=1
				kill -TERM -- "-$pid" 2>/dev/null || true
			fi
		done
		while [ "$shown" -lt ${#names[@]} ] && [ -n "${rc[shown]:-}" ]; do
			scenario_report "${names[shown]}" "$shown" "${rc[shown]}" "${stopped[shown]:+ after ${limit}s}"
			shown=$((shown + 1))
		done
	done
}

# scenario_report S I RC STOPPED: what scenario S (index I) printed, counted; no TAP line for
# it is a failure that says how the scenario ended.
scenario_report() {
	local out=$VM_DIR/runs/scenario-$1 n=$(($2 + 1)) p f
	[ -n "$VM_VERBOSE" ] || cat "$out.err" >&2
	cat "$out.tap"
	p=$(grep -c '^ok ' "$out.tap" || true)
	f=$(grep -c '^not ok ' "$out.tap" || true)
	if [ $((p + f)) -eq 0 ]; then
		echo "not ok $n - scenario $1 ended without a result (exit status $3${4:+, stopped$4})"
		if [ -n "$VM_VERBOSE" ]; then
			echo "#   its output: $out.tap (its diagnostics went to stderr, prefixed \"$1:\")"
		else
			echo "#   its output: $out.tap, $out.err"
			tail -n 5 "$out.err" | sed 's/^/#     /'
		fi
		f=1
	fi
	PASS=$((PASS + p)) FAIL=$((FAIL + f))
}

main() {
	local s t0=$SECONDS
	VM_JOBS=${VM_JOBS:-2}
	[[ $VM_JOBS =~ ^[1-9][0-9]*$ ]] || die "VM_JOBS=$VM_JOBS: want how many scenarios boot at a time (1 or more)"
	vm_build
	U=$(vm_uuid)
	server_template
	say "build ready after $((SECONDS - t0))s"
	if [ "$VM_JOBS" -eq 1 ]; then
		for s in ${VM_SCENARIOS:-$ALL_SCENARIOS}; do
			"scenario_$s"
		done
	else
		# shellcheck disable=SC2086 # a list of scenario names
		run_scenarios ${VM_SCENARIOS:-$ALL_SCENARIOS}
	fi
	say "vm-check took $((SECONDS - t0))s"
	echo "$PASS passed, $FAIL failed"
	[ "$FAIL" -eq 0 ]
}

ALL_SCENARIOS="14 15 mk3 1 2 2b 3 4a 4b 5 6 7 8 mk1 mk1b mk2"
if [ "${1:-}" = --scenario ]; then
	one_scenario "$2" "$3"
else
	main "$@"
fi
