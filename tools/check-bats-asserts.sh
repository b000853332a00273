#!/usr/bin/env bash
# A bats test fails on a command's status only where errexit applies, and bash's errexit ignores a
# pipeline negated with "!": "! grep -q secret log" in the middle of a test passes whatever grep
# finds. Every such line must say "|| false" (or use "run !"). One TAP line naming each offender.
# Usage: check-bats-asserts.sh [FILE...] (default: tests/bats/*.bats).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
[ $# -eq 0 ] && set -- tests/bats/*.bats
bad=$(grep -n -E '^\s*! ' "$@" | grep -v -E '\|\|')
if [ -n "$bad" ]; then
	echo "not ok 1 - every negated command in a bats test can fail the test"
	while IFS= read -r l; do echo "#   no '|| false': $l"; done <<<"$bad"
	exit 1
fi
echo "ok 1 - every negated command in a bats test can fail the test ($# files)"
