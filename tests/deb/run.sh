#!/usr/bin/env bash
# make check-deb: the Debian packages as a distribution would build and ship them, in TAP.
# Two copies of the tree at different paths each build with dpkg-buildpackage; lintian finds
# no error; the binaries are bit-identical (plain make and the packages); the packages install
# into a fresh Debian 12 root (mmdebstrap), and what they installed runs there.
set -uo pipefail
src=$(cd "$(dirname "$0")/../.." && pwd)
T=$(mktemp -d /tmp/keystrap-deb.XXXXXX)
SRV_PID=
cleanup() {
	[ -n "$SRV_PID" ] && kill "$SRV_PID" 2>/dev/null
	[ -n "$SRV_PID" ] && wait "$SRV_PID" 2>/dev/null
	[ -n "${KEEP:-}" ] || rm -rf "$T"
}
trap cleanup EXIT
n=0 failed=0
ok() {
	n=$((n + 1))
	echo "ok $n - $1"
}
notok() {
	n=$((n + 1)) failed=$((failed + 1))
	echo "not ok $n - $1"
	[ -f "$T/log" ] && sed 's/^/# /' "$T/log" | tail -n 30
}
check() {
	local what=$1
	shift
	if "$@" >"$T/log" 2>&1; then ok "$what"; else notok "$what"; fi
}

# copy_tree DIR: the working tree's tracked and new files, as a fresh clone would have them.
copy_tree() {
	mkdir -p "$1"
	(cd "$src" && git ls-files -co --exclude-standard -z | tar --null -T - -cf -) | tar -C "$1" -xf -
}
A=$T/a/keystrap B=$T/a-much-longer-build-path/src/keystrap
copy_tree "$A" && copy_tree "$B"

# Both cores (the output does not depend on it); the suites run in CI, not in the package build.
build_debs() { (cd "$1" && DEB_BUILD_OPTIONS="parallel=$(nproc) nocheck" dpkg-buildpackage -us -uc -b); }
echo "1..7"
check "dpkg-buildpackage builds keystrap, keystrap-dracut and keystrap-server (first tree)" build_debs "$A"
check "... and again from a second tree at another path" build_debs "$B"
check "lintian finds no error in the packages" lintian --fail-on error "$T/a/keystrap_"*"_amd64.changes"

# same_debs: every package's files, dbgsym (whose DWARF would name the build path) included.
same_debs() {
	local d f
	for d in "$T"/a/*.deb; do
		f=$T/a-much-longer-build-path/src/$(basename "$d")
		cmp "$d" "$f" || { echo "$(basename "$d") differs between the two build paths"; return 1; }
	done
}
check "the packages built in two paths are bit-identical" same_debs

same_make() {
	make -s -C "$A" -j2 build/keystrap build/keystrap-server WERROR=-Werror &&
		make -s -C "$B" -j2 build/keystrap build/keystrap-server WERROR=-Werror &&
		cmp "$A/build/keystrap" "$B/build/keystrap" && cmp "$A/build/keystrap-server" "$B/build/keystrap-server"
}
check "plain make in two paths builds bit-identical keystrap and keystrap-server" same_make

root=$T/root
install_debs() {
	local incl=() d
	for d in "$T"/a/keystrap_*.deb "$T"/a/keystrap-server_*.deb "$T"/a/keystrap-dracut_*.deb; do
		incl+=("--include=$d")
	done
	mmdebstrap --quiet --variant=minbase --hook-dir=/usr/share/mmdebstrap/hooks/file-mirror-automount \
		"${incl[@]}" bookworm "$root" "${KEYSTRAP_DEB_MIRROR:-http://deb.debian.org/debian}"
}
check "the three packages install into a fresh Debian 12 root with their dependencies" install_debs

# smoke: the installed keystrap reads a real firmware log; the installed server, as its own
# user, answers on loopback; the dracut module and the service user are in place.
smoke() {
	cp "$src/tests/data/eventlogs/event-arch-linux.bin" "$root/tmp/log.bin"
	# Read whole (grep -q would close the pipe early, and pipefail would call that a failure).
	if ! chroot "$root" /usr/sbin/keystrap eventlog --json /tmp/log.bin >"$T/eventlog.json" ||
		! grep -q EV_SEPARATOR "$T/eventlog.json"; then
		echo "the installed keystrap does not replay a firmware log"
		return 1
	fi
	[ -f "$root/usr/lib/dracut/modules.d/59keystrap/module-setup.sh" ] || { echo "no dracut module"; return 1; }
	grep -q '^keystrap-server:' "$root/etc/passwd" || { echo "no keystrap-server user"; return 1; }
	[ "$(stat -c %a "$root/etc/keystrap-server")" = 750 ] ||
		{ echo "/etc/keystrap-server is $(stat -c %a "$root/etc/keystrap-server"), not 750"; return 1; }
	# The server's PKI is made on the host (the root has no openssl) and owned by its user.
	local etc=$root/etc/keystrap-server port=$((20000 + RANDOM % 10000))
	(
		cd "$etc" &&
			openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=ca \
				-addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign \
				-keyout ca.key -out ca.crt &&
			openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=127.0.0.1 \
				-addext subjectAltName=IP:127.0.0.1 -keyout tls.key -out tls.crt &&
			openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out op.key &&
			openssl pkey -in op.key -pubout -out op.pub && rm op.key && cp tls.crt ek-ca.pem
	) 2>/dev/null || { echo "cannot make the server's PKI"; return 1; }
	cat >"$etc/server.json" <<JSON
{"listen":"127.0.0.1:$port","tls_certificate":"/etc/keystrap-server/tls.crt","tls_key":"/etc/keystrap-server/tls.key",
 "database":"/var/lib/keystrap-server/keystrap.db","kek":"/etc/keystrap-server/kek","ek_ca":["/etc/keystrap-server/ek-ca.pem"],
 "ca_certificate":"/etc/keystrap-server/ca.crt","ca_key":"/etc/keystrap-server/ca.key",
 "operator_keys":["/etc/keystrap-server/op.pub"],"policy_threshold":1}
JSON
	mkdir -p "$root/var/lib/keystrap-server"
	chroot "$root" /usr/sbin/keystrap-server kek init /etc/keystrap-server/kek >/dev/null || { echo "kek init failed"; return 1; }
	chroot "$root" chown -R keystrap-server: /var/lib/keystrap-server /etc/keystrap-server/ca.key /etc/keystrap-server/tls.key \
		/etc/keystrap-server/kek
	chmod 600 "$etc/ca.key" "$etc/tls.key"
	chmod 700 "$root/var/lib/keystrap-server"
	chroot --userspec=keystrap-server:keystrap-server "$root" /usr/sbin/keystrap-server serve \
		--config /etc/keystrap-server/server.json 2>"$T/server.err" &
	SRV_PID=$!
	local _
	for _ in $(seq 50); do
		curl -s --cacert "$etc/tls.crt" "https://127.0.0.1:$port/healthz" -o "$T/health" && break
		sleep 0.2
	done
	cat "$T/health" "$T/server.err"
	[ -s "$T/health" ] && [ "$(chroot "$root" stat -c %U:%a /var/lib/keystrap-server/keystrap.db)" = keystrap-server:600 ]
}
if [ -d "$root" ]; then check "what the packages installed runs there: keystrap, keystrap-server as its user" smoke
else notok "what the packages installed runs there (nothing installed)"; fi
[ "$failed" -eq 0 ]
