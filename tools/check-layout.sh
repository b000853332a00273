#!/usr/bin/env bash
# The tree's trust boundaries (docs/design.md, Layout), as TAP: each wing includes only its own
# headers and those of the wings below it, never another side's libraries, and each binary loads
# only its side's libraries. The compiler's include path enforces the first for "x.h" includes;
# this also catches a relative path around it and a system header of the wrong side.
# Usage: check-layout.sh BUILD_DIR
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
build=${1:-build}
n=0 failed=0
# Libraries each side must never reach: the node's TPM/disk stack, the server's network/store.
node_only='tss2/tss2_esys\.h|tss2/tss2_tctildr\.h|tss2/tss2_rc\.h|libcryptsetup\.h|blkid/'
server_only='event2/|sqlite3\.h|libpq-fe\.h|systemd/sd-'
# Only the server load benchmark links libcurl: keystrap speaks HTTPS with common/https.c.
bench_only='curl/'

report() { # NAME, then offending lines on stdin
	local bad
	bad=$(cat)
	n=$((n + 1))
	if [ -n "$bad" ]; then
		echo "not ok $n - $1"
		while IFS= read -r l; do echo "#   $l"; done <<<"$bad"
		failed=$((failed + 1))
	else
		echo "ok $n - $1"
	fi
}

# wing: its directory (files directly in it), the directories its "x.h" includes may resolve in.
check_wing() {
	local dir=$1 forbidden=$2
	shift 2
	local f h ok d
	for f in "$dir"/*.[ch]; do
		grep -n -E "^#include <($forbidden)" "$f" | sed "s|^|$f:|"
		grep -n -o -E '^#include "[^"]+"' "$f" | while IFS=: read -r line inc; do
			h=${inc#*\"}
			h=${h%\"}
			ok=
			case $h in */*) ;; *) for d in "$@"; do [ -f "$d/$h" ] && ok=1; done ;; esac
			[ -n "$ok" ] || echo "$f:$line: $inc (outside ${*})"
		done
	done
}

report "common/ includes only common/ and neither side's libraries" < <(check_wing common "$node_only|$server_only|$bench_only" common)
report "node/ includes only node/ and common/, never the server's libraries" < <(check_wing node "$server_only|$bench_only" node common)
report "node/cli/ includes only node/ and common/" < <(check_wing node/cli "$server_only|$bench_only" node/cli node common)
report "server/verify/ includes only itself and common/" < <(check_wing server/verify "$node_only|$server_only|$bench_only" server/verify common)
report "server/store/ includes only itself and common/, never the node's libraries" < <(check_wing server/store "$node_only|$bench_only" server/store common)
report "server/ never includes server/admin/ or node code" < <(check_wing server "$node_only|$bench_only" server server/verify server/store common)
report "server/admin/ never includes node code" < <(check_wing server/admin "$node_only|$bench_only" server/admin server server/verify server/store common)

needed() { readelf -d "$1" 2>/dev/null | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'; }
if [ -x "$build/keystrap" ]; then
	report "keystrap loads none of the server's libraries" < <(needed "$build/keystrap" | grep -E '^lib(event|sqlite3|pq|systemd)')
	# One TLS stack, OpenSSL's: libcurl brought a second (GnuTLS) and half of the closure.
	report "keystrap loads neither libcurl nor GnuTLS" < <(ldd "$build/keystrap" | grep -E '^\s*lib(curl|gnutls)')
else
	report "keystrap loads none of the server's libraries" <<<"$build/keystrap: not built"
	report "keystrap loads neither libcurl nor GnuTLS" <<<"$build/keystrap: not built"
fi
if [ -x "$build/keystrap-server" ]; then
	report "keystrap-server loads neither libcryptsetup, libblkid nor tss2-esys" < <(needed "$build/keystrap-server" |
		grep -E '^lib(cryptsetup|blkid|tss2-esys|tss2-tctildr|curl)')
else
	report "keystrap-server loads neither libcryptsetup, libblkid nor tss2-esys" <<<"$build/keystrap-server: not built"
fi
echo "1..$n"
[ "$failed" -eq 0 ]
