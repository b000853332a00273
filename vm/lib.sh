# shellcheck shell=bash
# Shared by vm/*.sh: settings, the artifact cache under build/vm, and vm_boot, which boots the
# guest once under QEMU (OVMF, q35) with swtpm as its TPM and a hard timeout, reading and
# answering its serial console. Every QEMU and swtpm it starts is killed by PID on exit.

VM_SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VM_DIR=${VM_DIR:-$VM_SRC/build/vm}
KEYSTRAP_BIN=${KEYSTRAP_BIN:-$VM_SRC/build/keystrap}
VM_ACCEL=${VM_ACCEL:-tcg}
VM_TIMEOUT=${VM_TIMEOUT:-300}
VM_MEM=${VM_MEM:-1024}
VM_VERBOSE=${VM_VERBOSE:-}
# shellcheck disable=SC2034 # settings used by the scripts that source this one
VM_SUITE=bookworm
VM_MIRROR=${VM_MIRROR:-http://deb.debian.org/debian}
VM_KERNEL_PKG=${VM_KERNEL_PKG:-linux-image-cloud-amd64}
# shellcheck disable=SC2034
VM_PACKAGES=systemd,systemd-sysv,udev,kmod,e2fsprogs,cryptsetup-bin,tpm2-tools,libtss2-tcti-device0
OVMF_CODE=/usr/share/OVMF/OVMF_CODE_4M.fd
OVMF_VARS=/usr/share/OVMF/OVMF_VARS_4M.fd
# Keyslot 0's passphrase: a fixed test value, typed by the harness at the fallback prompt.
VM_PASSPHRASE=keystrap-vm-test-passphrase
# Bound by the root token: kernel image (4), Secure Boot state (7), the kernel command line and
# initrd as the EFI stub measures them (9), and PCR 15 still zero (keystrap lock moves it).
VM_PCRS=4,7,9,15:0

VM_PIDS=()

say() { printf 'vm: %s\n' "$*" >&2; }
die() {
	printf 'vm: %s\n' "$*" >&2
	exit 1
}

vm_cleanup() {
	local pid
	for pid in "${VM_PIDS[@]}"; do
		kill "$pid" 2>/dev/null || true
	done
	for pid in "${VM_PIDS[@]}"; do
		wait "$pid" 2>/dev/null || true
	done
	VM_PIDS=()
}
# vm_forget PID: PID has been waited for; vm_cleanup must not kill whatever gets its number next.
vm_forget() {
	local pid keep=()
	for pid in "${VM_PIDS[@]}"; do
		[ "$pid" = "$1" ] || keep+=("$pid")
	done
	VM_PIDS=("${keep[@]}")
}
trap vm_cleanup EXIT
trap 'exit 130' INT TERM

# fresh NAME KEY: the cached artifact NAME was built from inputs that hash to KEY.
fresh() { [ -f "$VM_DIR/$1.key" ] && [ "$(cat "$VM_DIR/$1.key")" = "$2" ]; }
stamp() { printf '%s\n' "$2" >"$VM_DIR/$1.key"; }
# key_of WORD|FILE...: one hash over strings and file contents.
key_of() {
	local a
	for a in "$@"; do
		if [ -f "$a" ]; then sha256sum <"$a"; else printf '%s\n' "$a"; fi
	done | sha256sum | cut -c1-16
}

kver() { cat "$VM_DIR/kernel/kver"; }
vmlinuz() { echo "$VM_DIR/kernel/boot/vmlinuz-$(kver)"; }
vm_uuid() { cat "$VM_DIR/installed/uuid"; }
# The production kernel command line: keystrap opens the root, systemd-cryptsetup falls back.
vm_cmdline() {
	local u
	u=$(vm_uuid)
	echo "console=ttyS0 rd.luks.uuid=$u rd.keystrap.root=UUID=$u root=/dev/mapper/luks-$u rw rd.shell=0 rd.emergency=poweroff"
}

# tools_disk DIR MODE: the small disk the guest agent runs from: what to do, and with what.
tools_disk() {
	local dir=$1 mode=$2 t=$1/tools
	mkdir -p "$t"
	printf '%s' "$mode" >"$t/mode"
	(umask 077 && printf '%s' "$VM_PASSPHRASE" >"$t/passphrase")
	printf '%s' "$VM_PCRS" >"$t/pcrs"
	[ -f "$VM_DIR/installed/uuid" ] && cp "$VM_DIR/installed/uuid" "$t/uuid"
	[ -n "${BOOT_UUID:-}" ] && printf '%s' "$BOOT_UUID" >"$t/uuid"
	install -m755 "$KEYSTRAP_BIN" "$t/keystrap"
	install -m755 "$VM_SRC/vm/guest/agent" "$VM_SRC/vm/guest/install" "$VM_SRC/vm/guest/bench" "$t/"
	# The consumer service and what it proves its credentials with: the host's openssl (the
	# guest has its libraries, not the tool), the server's CA, the expected secret's name and
	# SHA-256 — never the secret itself.
	install -m755 "$VM_SRC/vm/guest/consumer" /usr/bin/openssl "$t/"
	install -m644 "$VM_SRC/vm/guest/keystrap-consumer.service" "$t/"
	[ -f "$VM_DIR/server-pki/ca.crt" ] && install -m644 "$VM_DIR/server-pki/ca.crt" "$t/server-ca.pem"
	printf '%s\n' "${VM_SECRET_NAME:-none}" >"$t/secret-name"
	printf '%s\n' "${VM_SECRET_SHA256:-none}" >"$t/secret.sha256"
	[ -z "${BOOT_SCRIPT:-}" ] || install -m755 "$BOOT_SCRIPT" "$t/script"
	[ -z "${BOOT_VERIFY_CONF:-}" ] || install -m644 "$BOOT_VERIFY_CONF" "$t/verify.conf"
	# A scenario's own files for its script (e.g. kernel images for keystrap predict).
	local mb=16
	if [ -n "${BOOT_FILES:-}" ]; then
		rm -rf "$t/files" && cp -a "$BOOT_FILES" "$t/files"
		mb=$((mb + 2 * $(du -sm "$t/files" | cut -f1)))
	fi
	rm -f "$dir/tools.img"
	truncate -s "${mb}M" "$dir/tools.img"
	mkfs.ext4 -q -L ksvm-tools -d "$t" "$dir/tools.img"
}

swtpm_run() {
	local state=$1 sock=$2 log=$3
	rm -f "$sock"
	nice -n 10 swtpm socket --tpm2 --tpmstate dir="$state" --ctrl type=unixio,path="$sock" \
		--terminate --log file="$log",level=1 &
	VM_PIDS+=($!)
	for _ in $(seq 100); do
		[ -S "$sock" ] && return 0
		sleep 0.05
	done
	die "swtpm did not come up (see $log)"
}

# shellcheck disable=SC2054 # commas inside QEMU option values, not array separators
qemu_args() {
	local run=$1
	local accel=(-machine "q35,accel=$VM_ACCEL")
	[ "$VM_ACCEL" = kvm ] && accel+=(-cpu host) || accel+=(-cpu max)
	QEMU=(qemu-system-x86_64 -name keystrap-vm "${accel[@]}" -m "$VM_MEM" -smp 1
		-nodefaults -no-user-config -display none -no-reboot
		-drive "if=pflash,format=raw,readonly=on,file=$OVMF_CODE"
		-drive "if=pflash,format=raw,file=$run/vars.fd"
		-kernel "${BOOT_KERNEL:-$(vmlinuz)}" -initrd "$BOOT_INITRD" -append "$BOOT_CMDLINE"
		-drive "file=$BOOT_DISK,if=none,id=root,format=raw,cache=unsafe"
		-device virtio-blk-pci,drive=root,serial=ksvm-root
		-drive "file=$run/tools.img,if=none,id=tools,format=raw,readonly=on"
		-device virtio-blk-pci,drive=tools,serial=ksvm-tools
		# User networking: the host's loopback is 10.0.2.2 to the guest (keystrap-server,
		# vm/server.sh). No option ROM, so OVMF has no iPXE to load, measure or boot.
		-netdev user,id=net0 -device virtio-net-pci,netdev=net0,romfile=)
	if [ -n "${BOOT_SRC:-}" ]; then
		QEMU+=(-drive "file=$BOOT_SRC,if=none,id=src,format=qcow2"
			-device virtio-blk-pci,drive=src,serial=ksvm-src
			-drive "file=$BOOT_PAYLOAD,if=none,id=payload,format=raw,readonly=on"
			-device virtio-blk-pci,drive=payload,serial=ksvm-payload)
	fi
	# A scratch disk the agent writes the guest's journal, /run and /tmp to (leak scan).
	if [ -n "${BOOT_SCAN:-}" ]; then
		QEMU+=(-drive "file=$run/scan.img,if=none,id=scan,format=raw"
			-device virtio-blk-pci,drive=scan,serial=ksvm-scan)
	fi
	if [ -n "${BOOT_TPM:-}" ]; then
		QEMU+=(-chardev "socket,id=tpm,path=$run/swtpm.sock"
			-tpmdev emulator,id=tpm0,chardev=tpm -device tpm-crb,tpmdev=tpm0)
	fi
}

# vm_boot RUN: boots once as the BOOT_* variables say and waits until the guest powers off.
#   BOOT_DISK root disk (raw), BOOT_SRC the installer's own root (qcow2) and BOOT_PAYLOAD the
#   file system it installs (raw), both only for the installer boot, BOOT_TPM swtpm state
#   dir (empty: no TPM), BOOT_INITRD, BOOT_CMDLINE, BOOT_MODE (what the guest agent does),
#   BOOT_SCAN (non-empty: a scratch disk RUN/scan.img the agent dumps journal, /run, /tmp to).
# Every passphrase prompt on the console is answered (at most 3); RUN/prompts counts them.
# Serial console in RUN/serial.log. Returns 1 when the hard timeout (VM_TIMEOUT) hit.
vm_boot() {
	local run=$1 qpid cpid deadline answered=0 n rc=0 start
	rm -rf "$run" && mkdir -p "$run"
	cp "$OVMF_VARS" "$run/vars.fd"
	tools_disk "$run" "$BOOT_MODE"
	[ -z "${BOOT_SCAN:-}" ] || truncate -s 256M "$run/scan.img"
	[ -n "${BOOT_TPM:-}" ] && swtpm_run "$BOOT_TPM" "$run/swtpm.sock" "$run/swtpm.log"
	qemu_args "$run"
	mkfifo "$run/serial.in" "$run/serial.out"
	: >"$run/serial.log"
	cat "$run/serial.out" >"$run/serial.log" &
	cpid=$!
	VM_PIDS+=("$cpid")
	start=$SECONDS
	nice -n 10 "${QEMU[@]}" -chardev "pipe,id=ser0,path=$run/serial" -serial chardev:ser0 \
		>"$run/qemu.log" 2>&1 &
	qpid=$!
	VM_PIDS+=("$qpid")
	# Read-write: opening a FIFO that way never blocks, even if QEMU failed to start.
	exec {wfd}<>"$run/serial.in"
	[ -n "$VM_VERBOSE" ] && { tail -f "$run/serial.log" >&2 & VM_PIDS+=($!); }
	deadline=$((SECONDS + VM_TIMEOUT))
	while kill -0 "$qpid" 2>/dev/null; do
		if [ "$SECONDS" -ge "$deadline" ]; then
			say "$run: no power-off within ${VM_TIMEOUT}s; killing QEMU"
			kill "$qpid" 2>/dev/null
			rc=1
			break
		fi
		n=$(grep -c 'Please enter passphrase' "$run/serial.log" || true)
		if [ "$n" -gt "$answered" ] && [ "$answered" -lt 3 ]; then
			sleep 1 # let the agent finish drawing the prompt
			printf '%s\n' "$VM_PASSPHRASE" >&"$wfd"
			answered=$((answered + 1))
		fi
		sleep 0.5
	done
	wait "$qpid" || { [ "$rc" -ne 0 ] || { say "$run: QEMU failed: $(tail -n 3 "$run/qemu.log")"; rc=1; }; }
	exec {wfd}>&-
	# The reader ends at QEMU's exit; it only hangs if QEMU never opened the pipe.
	for _ in $(seq 20); do kill -0 "$cpid" 2>/dev/null || break; sleep 0.1; done
	vm_cleanup
	echo "$answered" >"$run/prompts"
	echo $((SECONDS - start)) >"$run/seconds"
	tr -d '\r' <"$run/serial.log" >"$run/console.log"
	return "$rc"
}

# ksvm RUN KEY: the values the guest agent reported as "KSVM KEY: value", one per line.
ksvm() {
	sed -n "s/^.*KSVM $2: //p" "$1/console.log"
}
