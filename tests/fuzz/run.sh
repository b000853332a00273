#!/usr/bin/env bash
# Runs each libFuzzer target for a bounded time from its seed corpus; one TAP line each. The
# corpus is temporary; what a target fails on (crash, leak, timeout, OOM) is kept next to the
# binary, in crashes/NAME/ (build/fuzz/crashes/ for make check-fuzz), and its path printed,
# so that it can be replayed (FUZZER FILE) and turned into a seed and a unit test.
# Usage: run.sh SECONDS FUZZER...
set -uo pipefail
secs=$1
shift
here=$(cd "$(dirname "$0")" && pwd)
n=0 rc=0
echo "1..$#"
for f in "$@"; do
	n=$((n + 1))
	name=$(basename "$f")
	corpus=$(mktemp -d)
	crashes=$(cd "$(dirname "$f")" && pwd)/crashes/$name
	mkdir -p "$crashes"
	before=$(find "$crashes" -type f | sort)
	seeds="$here/seeds/${name#fuzz-}"
	[ -d "$seeds" ] && cp -r "$seeds/." "$corpus/"
	[ -x "$here/seeds/${name#fuzz-}.sh" ] && "$here/seeds/${name#fuzz-}.sh" "$corpus"
	if out=$("$f" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
		-artifact_prefix="$crashes/" "$corpus" 2>&1); then
		runs=$(grep -oE 'stat::number_of_executed_units: *[0-9]+' <<<"$out" | grep -oE '[0-9]+$')
		echo "ok $n - fuzz $name: ${runs:-?} inputs in ${secs}s, no crash"
	else
		echo "not ok $n - fuzz $name crashed"
		grep -E 'ERROR|SUMMARY' <<<"$out" | head -n 4 | sed 's/^/#   /'
		new=$(comm -13 <(echo "$before") <(find "$crashes" -type f | sort))
		if [ -n "$new" ]; then
			while IFS= read -r a; do echo "#   reproducer: $a (replay: $f $a)"; done <<<"$new"
		else
			echo "#   no reproducer was written; the fuzzer said:"
			tail -n 5 <<<"$out" | sed 's/^/#   /'
		fi
		rc=1
	fi
	rm -rf "$corpus"
	rmdir --ignore-fail-on-non-empty "$crashes" "${crashes%/*}"
done
exit $rc
