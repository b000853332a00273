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
	promtool check rules "$DEST/usr/local/share/keystrap/prometheus/keystrap.rules.yml" >/dev/null
	jq -e .panels "$DEST/usr/local/share/keystrap/grafana/keystrap.json" >/dev/null
}

@test "the service's ExecStart follows SBINDIR, and it is a notify service with an owner-only umask" {
	[ -n "$UNIT" ]
	grep -qx 'ExecStart=/usr/local/sbin/keystrap-server serve --config /etc/keystrap-server/server.json' "$UNIT"
	grep -qx 'Type=notify' "$UNIT"
	grep -qx 'UMask=0077' "$UNIT"
	grep -qx 'User=keystrap-server' "$UNIT"
}

# execstarts DEST: "UNIT ExecStart=…" for every unit make install put under DEST.
execstarts() {
	local f
	find "$1" -name '*.service' | while read -r f; do
		grep '^ExecStart=' "$f" | sed "s|^|${f##*/} |"
	done
}

@test "make install PREFIX=/opt/x SBINDIR=/opt/x/sbin: every unit it installs runs /opt/x/sbin's binaries, from pkg-config's unit directory" {
	dest=$BATS_TEST_TMPDIR/opt
	make -s -C "$SRC" install DESTDIR="$dest" PREFIX=/opt/x SBINDIR=/opt/x/sbin >/dev/null
	unitdir=$(pkg-config --variable=systemdsystemunitdir systemd)
	execstarts "$dest"
	[ "$(execstarts "$dest" | sort)" = "$(printf '%s\n' \
		'keystrap-renew.service ExecStart=/opt/x/sbin/keystrap handoff --renew' \
		'keystrap-server-probe.service ExecStart=/opt/x/sbin/keystrap-server probe --config /etc/keystrap-server/server.json --identity /var/lib/keystrap-server/probe --textfile /var/lib/prometheus/node-exporter/keystrap-probe.prom' \
		'keystrap-server.service ExecStart=/opt/x/sbin/keystrap-server serve --config /etc/keystrap-server/server.json' \
		'keystrap-verify.service ExecStart=/opt/x/sbin/keystrap verify')" ]
	for u in keystrap-renew.service keystrap-renew.timer keystrap-verify.service keystrap-verify.timer keystrap-server.service \
		keystrap-server-probe.service keystrap-server-probe.timer; do
		[ -f "$dest$unitdir/$u" ] || { echo "no $unitdir/$u"; false; }
	done
	[ -x "$dest/opt/x/sbin/keystrap" ]
	! grep -r '@SBINDIR@' "$dest" || false
}

@test "... and its twin: installed again with the default prefix after it, the units name /usr/local/sbin, not /opt/x" {
	dest=$BATS_TEST_TMPDIR/again
	make -s -C "$SRC" install DESTDIR="$BATS_TEST_TMPDIR/opt" PREFIX=/opt/x SBINDIR=/opt/x/sbin >/dev/null
	make -s -C "$SRC" install DESTDIR="$dest" PREFIX=/usr/local >/dev/null
	execstarts "$dest"
	[ "$(execstarts "$dest" | grep -c ' ExecStart=/usr/local/sbin/keystrap')" -eq 4 ]
	! execstarts "$dest" | grep -q /opt/x || false
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

@test "the probe's oneshot service runs as the server's user, rated 2.0 or lower; its timer every minute, both verified by systemd-analyze" {
	probe=$(find "$DEST" -name keystrap-server-probe.service)
	timer=$(find "$DEST" -name keystrap-server-probe.timer)
	grep -qx 'Type=oneshot' "$probe"
	grep -qx 'User=keystrap-server' "$probe"
	grep -qx 'OnUnitActiveSec=1min' "$timer"
	e=$(exposure "$probe")
	echo "exposure $e"
	awk -v e="$e" 'BEGIN { exit !(e <= 2.0) }'
	# Its twin: without the sandbox it rates above 2.0.
	sed '/^# Sandbox/,$d' "$probe" >"$BATS_TEST_TMPDIR/bare.service"
	e=$(exposure "$BATS_TEST_TMPDIR/bare.service")
	echo "bare exposure $e"
	awk -v e="$e" 'BEGIN { exit !(e > 2.0) }'
	run systemd-analyze verify --man=no "$timer"
	echo "$output"
	[ "$status" -eq 0 ]
}

@test "sysusers.d creates the service's user, with its state directory as home" {
	root=$BATS_TEST_TMPDIR/sysroot
	mkdir -p "$root/etc"
	cp -a "$DEST/usr" "$root/"
	systemd-sysusers --root="$root" >/dev/null 2>&1
	grep -q '^keystrap-server:x:[0-9]*:[0-9]*:keystrap attestation server:/var/lib/keystrap-server:' "$root/etc/passwd"
}

@test "installed man pages carry the Makefile's VERSION and a date" {
	v=$(sed -n 's/^VERSION *:= *//p' "$SRC/Makefile")
	for m in "$DEST"/usr/local/share/man/man*/*; do
		head -1 "$m" | grep -Eq "^\.TH [^ ]+ [0-9] \"[0-9]{4}-[0-9]{2}-[0-9]{2}\" \"keystrap $v\"" ||
			{ echo "$m: $(head -1 "$m")"; return 1; }
	done
	[ "$(ls "$DEST"/usr/local/share/man/man*/* | wc -l)" -eq "$(ls "$SRC"/man/*.[0-9] | wc -l)" ]
}

# complete WORDS...: what bash completion offers for the last word, with the built binaries.
complete_words() {
	PATH=$SRC/build:$PATH bash -c '. "$0"; COMP_WORDS=("${@}"); COMP_CWORD=$(($# - 1)); _keystrap; printf "%s\n" "${COMPREPLY[@]}"' \
		"$DEST/usr/local/share/bash-completion/completions/keystrap" "$@"
}

@test "bash completion offers the verbs, subcommands and options the binaries' --help lists" {
	[ "$(complete_words keystrap enr)" = enroll ]
	complete_words keystrap enroll --d | grep -qx -- --device
	complete_words keystrap-server node a | grep -qx approve
	complete_words keystrap-server policy load --sig | grep -qx -- --signature
	[ "$(complete_words keystrap config g)" = get ]
	complete_words keystrap config get --c | grep -qx -- --config
	complete_words keystrap-server node list --j | grep -qx -- --json
}

@test "... and its twin: nothing for a verb or option that does not exist" {
	[ -n "$(complete_words keystrap enroll --d)" ]
	[ -z "$(complete_words keystrap frobnicate)" ]
	[ -z "$(complete_words keystrap enroll --frob)" ]
}

# A pkg-config that knows none of the server's libraries, as on a node-only build host.
node_only_pkg_config() {
	cat >"$BATS_TEST_TMPDIR/pkg-config" <<'SH'
#!/bin/sh
for a; do case $a in libevent*|sqlite3|libpq|libsystemd) echo "no $a here" >&2; exit 1 ;; esac; done
exec pkg-config "$@"
SH
	chmod +x "$BATS_TEST_TMPDIR/pkg-config"
}

@test "SERVER=no builds and installs keystrap alone, without the server's libraries on the build host" {
	node_only_pkg_config
	make -s -C "$SRC" -j2 install SERVER=no PKG_CONFIG="$BATS_TEST_TMPDIR/pkg-config" \
		BUILD="$BATS_TEST_TMPDIR/build" DESTDIR="$BATS_TEST_TMPDIR/root" PREFIX=/usr >/dev/null
	[ -x "$BATS_TEST_TMPDIR/root/usr/sbin/keystrap" ]
	[ ! -e "$BATS_TEST_TMPDIR/root/usr/sbin/keystrap-server" ]
	[ -z "$(find "$BATS_TEST_TMPDIR/root" -name 'keystrap-server*')" ]
	[ ! -d "$BATS_TEST_TMPDIR/build/server" ]
	"$BATS_TEST_TMPDIR/root/usr/sbin/keystrap" --version
}

@test "... and its twin: by default the server is built, and needs its libraries" {
	make -s -C "$SRC" -n all BUILD="$BATS_TEST_TMPDIR/build" | grep -q 'keystrap-server'
	node_only_pkg_config
	run make -s -C "$SRC" -j2 all PKG_CONFIG="$BATS_TEST_TMPDIR/pkg-config" BUILD="$BATS_TEST_TMPDIR/build"
	[ "$status" -ne 0 ]
}
