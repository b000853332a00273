#!/usr/bin/env bats
# Command-line conventions of both binaries, for every command their own --help lists:
# "CMD --help" prints a usage and exits 0; an unknown option is a usage error, exit 2.

KEYSTRAP=${KEYSTRAP:-$BATS_TEST_DIRNAME/../../build/asan/keystrap}
KEYSTRAP_SERVER=${KEYSTRAP_SERVER:-$BATS_TEST_DIRNAME/../../build/asan/keystrap-server}

# commands BIN: the commands BIN --help lists; for keystrap-server also its two-word commands
# ("node approve"), taken from each command's own usage lines.
commands() {
	local c
	for c in $("$1" --help | awk '/^Commands:/ { f = 1; next } f && /^  [a-z]/ { print $1 }'); do
		echo "$c"
		"$1" "$c" --help 2>/dev/null | awk -v b="$(basename "$1")" -v c="$c" \
			'{ for (i = 1; i < NF; i++) if ($i == b && $(i + 1) == c && $(i + 2) ~ /^[a-z]+$/) print c " " $(i + 2) }' | sort -u
	done
}

@test "every keystrap and keystrap-server command prints its usage for --help and exits 0" {
	local b c n=0
	for b in "$KEYSTRAP" "$KEYSTRAP_SERVER"; do
		while read -r c; do
			# shellcheck disable=SC2086 # two-word commands split on purpose
			run "$b" $c --help
			[ "$status" -eq 0 ] || { echo "$(basename "$b") $c --help: exit $status"; return 1; }
			[[ $output == *Usage:* ]] || { echo "$(basename "$b") $c --help: no usage"; return 1; }
			n=$((n + 1))
		done < <(commands "$b")
	done
	echo "$n commands"
	[ "$n" -ge 15 ]
}

@test "... and its twin: an unknown option is a usage error, exit 2, for every command" {
	local b c
	for b in "$KEYSTRAP" "$KEYSTRAP_SERVER"; do
		while read -r c; do
			# shellcheck disable=SC2086
			run "$b" $c --no-such-option
			[ "$status" -eq 2 ] || { echo "$(basename "$b") $c --no-such-option: exit $status"; return 1; }
		done < <(commands "$b")
	done
}
