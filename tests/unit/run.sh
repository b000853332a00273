#!/usr/bin/env bash
# Runs each C unit test binary and passes its TAP through. A binary reports one line per check
# and ends with its plan ("1..N", tap.h); one that exits non-zero without a "not ok" line (a
# sanitizer report, a leak) or stops before its plan (abort, a signal, an exit() half-way)
# gets a "not ok" line of its own, so that neither this exit status nor a count of
# "not ok" lines can miss it, wherever it sorts. Usage: run.sh BINARY...
set -uo pipefail
rc=0
for t in "$@"; do
	name=$(basename "$t")
	out=$("$t")
	st=$?
	[ -n "$out" ] && printf '%s\n' "$out"
	failed=$(grep -cE '^not ok ' <<<"$out")
	checks=$(grep -cE '^(not )?ok ' <<<"$out")
	plan=$(tail -n 1 <<<"$out" | sed -nE 's/^1\.\.([0-9]+)$/\1/p')
	if [ "$st" -gt 128 ]; then
		why="killed by signal $((st - 128)) after $checks checks"
	elif [ -z "$plan" ]; then
		why="exited $st after $checks checks without reaching its plan"
	elif [ "$plan" -ne "$checks" ]; then
		why="planned $plan checks, reported $checks"
	elif [ "$st" -ne 0 ] && [ "$failed" -eq 0 ]; then
		why="exited $st although every check passed (see its stderr)"
	else
		why=
	fi
	[ -n "$why" ] && echo "not ok - $name: $why"
	{ [ "$st" -ne 0 ] || [ -n "$why" ]; } && rc=1
done
exit $rc
