#!/usr/bin/env bash
# make bench: keystrap unlock --dry-run against clevis luks pass, both bound to PCRs 7 and 15
# on one LUKS2 image and one swtpm. Prints timings, TPM command counts and sizes, then a
# summary against the targets of issue 2. Figures only: a missed target is reported, never
# fatal; a failed unlock is. Method: bench/README.md.
set -euo pipefail
export LC_ALL=C
cd "$(dirname "$0")/.."
root=$PWD
BUILD=${BUILD:-build}
RUNS=${BENCH_RUNS:-25}
WARMUP=${BENCH_WARMUP:-3}
TARGET_COMMANDS=8
TARGET_SPEEDUP=5
PCRS='{"pcr_bank":"sha256","pcr_ids":"7,15"}'

die() {
	echo "bench: $*" >&2
	exit 1
}

if ! [[ $RUNS =~ ^[0-9]+$ ]] || [ "$RUNS" -lt 20 ]; then
	die "BENCH_RUNS must be at least 20, not '$RUNS'"
fi
[[ $WARMUP =~ ^[0-9]+$ ]] || die "BENCH_WARMUP must be a number, not '$WARMUP'"

make --no-print-directory -s "$BUILD/keystrap" "$BUILD/bench/libtss2-tcti-count.so.0"
KEYSTRAP=$(realpath "$BUILD/keystrap")
countdir=$(realpath "$BUILD/bench")

# The bats helpers find the tree through BATS_TEST_DIRNAME; reuse them rather than copy them.
BATS_TEST_DIRNAME=$root/tests/bats
# shellcheck source=tests/lib/swtpm.bash
. "$root/tests/lib/swtpm.bash"

tmp=$(mktemp -d)
cleanup() {
	swtpm_stop
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

img=$tmp/disk.img
key=$tmp/disk.key

# elapsed_us T0 T1: $EPOCHREALTIME always has six decimals, so dropping the dot gives µs.
elapsed_us() {
	REPLY=$((10#${2/./} - 10#${1/./}))
}

# stats FILE: "median p90 min max" in ms of the µs values in FILE (p90 by nearest rank).
stats() {
	sort -n "$1" | awk '{ v[NR] = $1 }
		END {
			m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
			r = int(0.9 * NR); if (r < 0.9 * NR) r++
			printf "%.2f %.2f %.2f %.2f\n", m / 1000, v[r] / 1000, v[1] / 1000, v[NR] / 1000
		}'
}

# count_commands LOG CMD...: runs CMD with every TCTI it opens wrapped by the counting TCTI.
count_commands() {
	local log=$1 inner=$KEYSTRAP_TCTI
	shift
	: >"$log"
	KEYSTRAP_TCTI=count TPM2TOOLS_TCTI=count TCTI_COUNT_INNER=$inner TCTI_COUNT_LOG=$log \
		LD_LIBRARY_PATH=$countdir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH} "$@"
	[ -s "$log" ] || die "the counting TCTI saw no TPM connection from: $*"
}

# total LOG: sum of the per-process counts; names LOG: every command, in order.
total() { awk '{ n += $2 } END { print n + 0 }' "$1"; }
names() { cut -d: -f2- "$1" | tr '\n' ' ' | tr -s ' ' | sed 's/^ //; s/ $//'; }

keystrap_unlock() { "$KEYSTRAP" unlock --device "$img" --dry-run >/dev/null; }
clevis_pass() { clevis luks pass -d "$img" -s "$clevis_slot" >/dev/null; }

echo "== setup: one LUKS2 image, one swtpm"
swtpm_start "$tmp/tpm" || die "cannot start swtpm"
echo "swtpm (pid $(cat "$SWTPM_DIR/pid")) at $KEYSTRAP_TCTI"
make_luks "$img" "$key" || die "cannot create the LUKS2 image"
"$KEYSTRAP" enroll --device "$img" --unlock-key-file "$key" || die "keystrap enroll failed"
clevis luks bind -y -d "$img" -k "$key" tpm2 "$PCRS" || die "clevis luks bind failed"

json=$(cryptsetup luksDump --dump-json-metadata "$img")
keystrap_slot=$(jq -r '[.tokens[] | select(.type == "systemd-tpm2")][0].keyslots[0] // empty' <<<"$json")
clevis_slot=$(jq -r '[.tokens[] | select(.type == "clevis")][0].keyslots[0] // empty' <<<"$json")
[ -n "$keystrap_slot" ] || die "no systemd-tpm2 token after keystrap enroll"
[ -n "$clevis_slot" ] || die "no clevis token after clevis luks bind"
echo "keystrap: keyslot $keystrap_slot, PCRs 7+15 (sha256); clevis tpm2: keyslot $clevis_slot, $PCRS"

echo
echo "== check: both unlock (outside the timed loop)"
"$KEYSTRAP" unlock --device "$img" --dry-run || die "keystrap unlock --dry-run failed"
clevis luks pass -d "$img" -s "$clevis_slot" |
	cryptsetup open --test-passphrase --key-slot "$clevis_slot" --key-file - "$img" ||
	die "clevis luks pass did not yield a passphrase that opens keyslot $clevis_slot"
echo "clevis luks pass: its passphrase opens keyslot $clevis_slot (cryptsetup --test-passphrase)"

echo
echo "== timing: $WARMUP warm-up + $RUNS timed runs each, interleaved (order alternates)"
for ((i = 0; i < WARMUP; i++)); do
	keystrap_unlock || die "keystrap unlock --dry-run failed (warm-up $i)"
	clevis_pass || die "clevis luks pass failed (warm-up $i)"
done
: >"$tmp/keystrap.us"
: >"$tmp/clevis.us"
run_one() {
	local t0 t1
	t0=$EPOCHREALTIME
	"$1" || die "$2 failed (run $i)"
	t1=$EPOCHREALTIME
	elapsed_us "$t0" "$t1"
	echo "$REPLY" >>"$tmp/$3.us"
}
for ((i = 0; i < RUNS; i++)); do
	if ((i % 2 == 0)); then
		run_one keystrap_unlock "keystrap unlock --dry-run" keystrap
		run_one clevis_pass "clevis luks pass" clevis
	else
		run_one clevis_pass "clevis luks pass" clevis
		run_one keystrap_unlock "keystrap unlock --dry-run" keystrap
	fi
done
read -r ks_med ks_p90 ks_min ks_max < <(stats "$tmp/keystrap.us")
read -r cl_med cl_p90 cl_min cl_max < <(stats "$tmp/clevis.us")
ratio=$(awk -v a="$cl_med" -v b="$ks_med" 'BEGIN { printf "%.1f", a / b }')
printf '%-28s median %8s ms  p90 %8s ms  min %8s ms  max %8s ms\n' \
	"keystrap unlock --dry-run" "$ks_med" "$ks_p90" "$ks_min" "$ks_max" \
	"clevis luks pass" "$cl_med" "$cl_p90" "$cl_min" "$cl_max"
echo "ratio clevis / keystrap (medians): ${ratio}x"

echo
echo "== TPM commands per unlock (counting TCTI: $countdir/libtss2-tcti-count.so.0)"
count_commands "$tmp/keystrap.count" keystrap_unlock || die "keystrap unlock --dry-run failed (counted)"
ks_cmds=$(total "$tmp/keystrap.count")
echo "keystrap unlock --dry-run: $ks_cmds: $(names "$tmp/keystrap.count")"
count_commands "$tmp/clevis.count" clevis_pass || die "clevis luks pass failed (counted)"
cl_cmds=$(total "$tmp/clevis.count")
cl_procs=$(wc -l <"$tmp/clevis.count")
echo "clevis luks pass: $cl_cmds over $cl_procs tpm2-tools processes: $(names "$tmp/clevis.count")"
# Last, because it ends what this boot can unseal: the PCR 15 extend a real unlock adds.
count_commands "$tmp/lock.count" "$KEYSTRAP" lock >/dev/null || die "keystrap lock failed (counted)"
lock_cmds=$(total "$tmp/lock.count")
echo "keystrap lock (PCR 15 extend that a non-dry-run unlock adds): $lock_cmds: $(names "$tmp/lock.count")"

echo
echo "== size"
ks_size=$(stat -c %s "$KEYSTRAP")
strip -o "$tmp/keystrap.stripped" "$KEYSTRAP"
ks_stripped=$(stat -c %s "$tmp/keystrap.stripped")
echo "$BUILD/keystrap: $ks_size bytes ($ks_stripped stripped)"
clevis_pkgs=(clevis clevis-luks clevis-tpm2 tpm2-tools jose libjose0)
cl_size=0 cl_files=0
while read -r f; do
	if [ ! -f "$f" ] || [ -L "$f" ]; then
		continue
	fi
	cl_size=$((cl_size + $(stat -c %s "$f")))
	cl_files=$((cl_files + 1))
done < <(dpkg -L "${clevis_pkgs[@]}" 2>/dev/null | grep -v '^/usr/share/')
echo "clevis for the same job (${clevis_pkgs[*]}, outside /usr/share): $cl_size bytes in $cl_files files"
echo "(neither counts the shared libraries both load: libtss2-*, libcrypto, libcryptsetup, libjson-c)"

verdict() { if [ "$1" = 1 ]; then echo met; else echo "NOT met"; fi; }
speed_ok=$(awk -v r="$ratio" -v t="$TARGET_SPEEDUP" 'BEGIN { print (r >= t) }')
cmds_ok=$((ks_cmds <= TARGET_COMMANDS))
full_ok=$((ks_cmds + lock_cmds <= TARGET_COMMANDS))

echo
echo "== summary"
printf '%-42s %s\n' \
	"keystrap unlock --dry-run" "median $ks_med ms, p90 $ks_p90 ms ($RUNS runs)" \
	"clevis luks pass" "median $cl_med ms, p90 $cl_p90 ms ($RUNS runs)" \
	"speed-up (clevis / keystrap, medians)" "${ratio}x -- target: at least ${TARGET_SPEEDUP}x faster than clevis: $(verdict "$speed_ok")" \
	"TPM commands per unlock (unseal path)" "$ks_cmds -- target: at most $TARGET_COMMANDS TPM commands per unlock: $(verdict "$cmds_ok")" \
	"  with the PCR 15 lock of a real unlock" "$((ks_cmds + lock_cmds)) -- same target counted with the lock: $(verdict "$full_ok")" \
	"clevis TPM commands per unlock" "$cl_cmds in $cl_procs tpm2-tools processes" \
	"keystrap binary" "$ks_size bytes, $ks_stripped stripped" \
	"clevis + clevis-tpm2 + tpm2-tools + jose" "$cl_size bytes"
