# shellcheck shell=bash
# bats helpers for a process whose clock is off (libfaketime), as an initramfs RTC often is.
# Only the process started through them sees the shifted clock: the kernel (key timeouts), the
# swtpm and the server keep the real one, unless the server itself is started through one.

FAKETIME_LIB=${FAKETIME_LIB:-$(find /usr/lib -path '*/faketime/libfaketime.so.1' -print -quit 2>/dev/null)}

# clock_preload BINARY: the LD_PRELOAD value that shifts BINARY's clock. A sanitizer build
# insists that its runtime comes first in the library list, so libasan goes before
# libfaketime when BINARY links it (the interceptors then chain: libfaketime, ASan, libc).
clock_preload() {
	local asan
	asan=$(ldd "$1" 2>/dev/null | awk '$1 ~ /^libasan/ { print $3 }')
	echo "${asan:+$asan }$FAKETIME_LIB"
}

# clock_offset OFFSET: OFFSET as libfaketime reads it, "@DATE" (start there and run on) made
# the same offset in seconds from now. libfaketime parses an "@" date with mktime on its first
# clock_gettime, which can come from inside ASan's allocator (it times its regions): mktime's
# tzset allocates, and the allocator deadlocks on its own lock. An offset needs no parsing.
clock_offset() {
	local d
	case $1 in
	@*)
		d=$(($(date -u -d "${1#@}" +%s) - $(date +%s)))
		[ "$d" -lt 0 ] && echo "$d" || echo "+$d"
		;;
	*) echo "$1" ;;
	esac
}

# with_clock OFFSET BINARY ARGS...: BINARY with its clock at OFFSET (libfaketime syntax: "-2m",
# "+1h", or "@2001-01-01 00:00:00" (UTC) to start there and run on). Monotonic time stays
# real, so timeouts and backoff behave.
with_clock() {
	local offset
	offset=$(clock_offset "$1")
	shift
	LD_PRELOAD=$(clock_preload "$1") FAKETIME=$offset FAKETIME_DONT_FAKE_MONOTONIC=1 "$@"
}

# clock_wrapper OFFSET BINARY FILE: FILE, an executable that runs BINARY through with_clock
# (for helpers that take a binary's path, such as $KEYSTRAP_SERVER for server_start).
clock_wrapper() {
	printf '#!/bin/sh\nLD_PRELOAD="%s" FAKETIME="%s" FAKETIME_DONT_FAKE_MONOTONIC=1 exec "%s" "$@"\n' \
		"$(clock_preload "$2")" "$(clock_offset "$1")" "$2" >"$3" && chmod +x "$3"
}

# clock_skip: skips the test when libfaketime is not installed (tools/install-deps.sh adds it).
clock_skip() {
	[ -f "${FAKETIME_LIB:-/nonexistent}" ] || skip "libfaketime is not installed"
}
