#!/usr/bin/env bash
# make bench-closure: what the initramfs carries for keystrap's TPM unlock, against the peer
# that does the same job, systemd-cryptsetup with its systemd-tpm2 token plugin, measured in
# the same run: every shared object each loads (ldd's transitive closure, plus what each
# dlopens: the TCTI for keystrap; the token plugin, the tss2 libraries and the TCTI that
# systemd 252 dlopens), their count and bytes, and the exec start-up time (the median of N
# runs of "--version", which loads and relocates everything and does nothing else; the two
# binaries' runs alternate).
# Figures, not a test. Goal (issue 12): keystrap's closure at most 0.65x the peer's bytes, and a
# start-up no slower than the peer's.
set -euo pipefail
BUILD=${BUILD:-build}
KEYSTRAP=${KEYSTRAP:-$BUILD/keystrap}
PEER=${PEER:-/lib/systemd/systemd-cryptsetup}
N=${N:-200}
multiarch=$(gcc -print-multiarch)
libdir=/usr/lib/$multiarch
tcti=$libdir/libtss2-tcti-device.so.0
plugin=$libdir/cryptsetup/libcryptsetup-token-systemd-tpm2.so

# closure FILE...: every file these load, resolved to the real file, one per line.
closure() {
	local f
	for f in "$@"; do
		readlink -f "$f"
		ldd "$f" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' | xargs -r readlink -f
	done | sort -u
}

bytes() { xargs -r stat -L -c %s | awk '{ s += $1 } END { print s + 0 }'; }

# once CMD...: one run's wall time, in microseconds.
once() {
	local t0 t1
	t0=$(date +%s%N)
	"$@" >/dev/null 2>&1 || true
	t1=$(date +%s%N)
	echo $(((t1 - t0) / 1000))
}

# median: of the numbers on stdin.
median() { sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }

# startup A B: the median wall time of N runs of "A --version" and of "B --version", taken in
# turn so that both see the same load on the machine; "A-MEDIAN B-MEDIAN" in microseconds.
startup() {
	local i
	for ((i = 0; i < N; i++)); do
		echo "a $(once "$1" --version)"
		echo "b $(once "$2" --version)"
	done >"$tmp/times"
	echo "$(awk '$1 == "a" { print $2 }' "$tmp/times" | median) $(awk '$1 == "b" { print $2 }' "$tmp/times" | median)"
}

[ -x "$KEYSTRAP" ] || { echo "bench-closure: no $KEYSTRAP (run make)" >&2; exit 1; }
# The binary as the initramfs carries it: dracut strips the debug information of what it
# installs (do_strip, on by default: strip -g), as dh_strip does for the package; the peer
# comes stripped already. STRIP=no measures the build's own file.
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
if [ "${STRIP:-yes}" = yes ]; then
	strip -g -o "$tmp/keystrap" "$KEYSTRAP"
	KEYSTRAP=$tmp/keystrap
fi
if [ ! -x "$PEER" ] || [ ! -f "$plugin" ]; then echo "bench-closure: no $PEER or $plugin (apt-get install systemd cryptsetup-bin)" >&2
	exit 1
fi

mapfile -t ks < <(closure "$KEYSTRAP" "$tcti")
mapfile -t sd < <(closure "$PEER" "$plugin" "$libdir"/libtss2-esys.so.0 "$libdir"/libtss2-rc.so.0 \
	"$libdir"/libtss2-mu.so.0 "$tcti")
ks_b=$(printf '%s\n' "${ks[@]}" | bytes)
sd_b=$(printf '%s\n' "${sd[@]}" | bytes)
read -r ks_t sd_t < <(startup "$KEYSTRAP" "$PEER")

printf '%-44s %6s %12s %14s\n' "" files bytes "start-up (us)"
printf '%-44s %6d %12d %14d\n' "keystrap$([ "${STRIP:-yes}" = yes ] && echo " (strip -g)") + TCTI" "${#ks[@]}" "$ks_b" "$ks_t"
printf '%-44s %6d %12d %14d\n' "systemd-cryptsetup + tpm2 plugin + tss2 + TCTI" "${#sd[@]}" "$sd_b" "$sd_t"
awk -v a="$ks_b" -v b="$sd_b" -v s="$ks_t" -v t="$sd_t" \
	'BEGIN { printf "ratio keystrap/peer: bytes %.2fx (goal <= 0.65x), start-up %.2fx (goal <= 1.00x), %d runs each\n", a / b, s / t, '"$N"' }'
if [ -n "${VERBOSE:-}" ]; then
	echo "keystrap loads:"
	printf '  %s\n' "${ks[@]}"
fi
