#!/usr/bin/env bats
# make install as a distribution runs it: every binary and man page under the prefix, and
# keystrap-server's service unit pointing at the binary it installed, sandboxed well enough
# that systemd-analyze rates its exposure 2.0 or lower, with the user it runs as.

SRC=$BATS_TEST_DIRNAME/../..

setup_file() {
	export DEST=$BATS_FILE_TMPDIR/root
	make -s -C "$SRC" install DESTDIR="$DEST" PREFIX=/usr/local >/dev/null
	UNIT=$(find "$DEST" -name keystrap-server.service)
	export UNIT
}

# exposure FILE: systemd-analyze's overall exposure level for a unit file, e.g. "1.2".
exposure() {
	systemd-analyze security --offline=yes "$1" 2>/dev/null |
		sed -n 's/^→ Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p'
}

@test "both binaries and their man pages land under the prefix" {
	[ -x "$DEST/usr/local/sbin/keystrap" ]
	[ -x "$DEST/usr/local/sbin/keystrap-server" ]
	[ -f "$DEST/usr/local/share/man/man8/keystrap-server.8" ]
	[ -f "$DEST/usr/local/share/doc/keystrap/keystrap-server.json.example" ]
	jq -e .listen "$DEST/usr/local/share/doc/keystrap/keystrap-server.json.example" >/dev/null
}

@test "the service's ExecStart follows SBINDIR, and it is a notify service with an owner-only umask" {
	[ -n "$UNIT" ]
	grep -qx 'ExecStart=/usr/local/sbin/keystrap-server serve --config /etc/keystrap-server/server.json' "$UNIT"
	grep -qx 'Type=notify' "$UNIT"
	grep -qx 'UMask=0077' "$UNIT"
	grep -qx 'User=keystrap-server' "$UNIT"
}

@test "systemd-analyze security rates the service's exposure 2.0 or lower" {
	e=$(exposure "$UNIT")
	echo "exposure $e"
	[ -n "$e" ]
	awk -v e="$e" 'BEGIN { exit !(e <= 2.0) }'
}

@test "... and its twin: the same unit without its sandbox rates above 2.0" {
	bare=$BATS_TEST_TMPDIR/keystrap-server.service
	sed '/^# Sandbox/,/^\[Install\]/{/^\[Install\]/!d}' "$UNIT" >"$bare"
	e=$(exposure "$bare")
	echo "exposure $e"
	awk -v e="$e" 'BEGIN { exit !(e > 2.0) }'
}

@test "sysusers.d creates the service's user, with its state directory as home" {
	root=$BATS_TEST_TMPDIR/sysroot
	mkdir -p "$root/etc"
	cp -a "$DEST/usr" "$root/"
	systemd-sysusers --root="$root" >/dev/null 2>&1
	grep -q '^keystrap-server:x:[0-9]*:[0-9]*:keystrap attestation server:/var/lib/keystrap-server:' "$root/etc/passwd"
}
