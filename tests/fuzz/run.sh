#!/usr/bin/env bash
# Runs each libFuzzer target for a bounded time from its seed corpus; one TAP line each.
# Usage: run.sh SECONDS FUZZER...
set -uo pipefail
secs=$1
shift
here=$(cd "$(dirname "$0")" && pwd)
n=0 rc=0
for f in "$@"; do
	n=$((n + 1))
	name=$(basename "$f")
	corpus=$(mktemp -d)
	seeds="$here/seeds/${name#fuzz-}"
	[ -d "$seeds" ] && cp -r "$seeds/." "$corpus/"
	[ -x "$here/seeds/${name#fuzz-}.sh" ] && "$here/seeds/${name#fuzz-}.sh" "$corpus"
	if out=$("$f" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
		-artifact_prefix="$corpus/" "$corpus" 2>&1); then
		runs=$(grep -oE 'stat::number_of_executed_units: *[0-9]+' <<<"$out" | grep -oE '[0-9]+$')
		echo "ok $n - fuzz $name: ${runs:-?} inputs in ${secs}s, no crash"
	else
		echo "not ok $n - fuzz $name crashed; reproducer:"
		grep -E 'ERROR|SUMMARY|Test unit written' <<<"$out" | head -n 5 | sed 's/^/#   /'
		rc=1
	fi
	rm -rf "$corpus"
done
exit $rc
