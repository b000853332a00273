#!/usr/bin/env bash
# Runs each libFuzzer target for a bounded time from its seed corpus; one TAP line each. The
# corpus is temporary; what a target fails on (crash, leak, timeout, OOM) is kept next to the
# binary, in crashes/NAME/ (build/fuzz/crashes/ for make check-fuzz), and its path printed,
# so that it can be replayed (FUZZER FILE) and turned into a seed and a unit test.
# FUZZ_JOBS targets run at once (default 2: this is CPU-bound, one core each); their lines come
# out in the order given. Usage: run.sh SECONDS FUZZER...
set -uo pipefail
secs=$1
shift
here=$(cd "$(dirname "$0")" && pwd)
jobs=${FUZZ_JOBS:-2}
out_dir=$(mktemp -d)
trap 'rm -rf "$out_dir"' EXIT

# fuzz_one N FUZZER: its TAP line (and diagnostics) on stdout; exit 1 when it failed.
fuzz_one() {
	local n=$1 f=$2 name corpus crashes before seeds out runs new rc=0
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
	rmdir --ignore-fail-on-non-empty "$crashes" 2>/dev/null
	return $rc
}

echo "1..$(($# + 1))"
n=0
for f in "$@"; do
	n=$((n + 1))
	while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do wait -n; done
	fuzz_one "$n" "$f" >"$out_dir/$n" 2>&1 &
done
wait
rc=0
for i in $(seq 1 "$n"); do
	# A job that died without its line (killed, out of memory) is a failure too.
	grep -qE "^(not )?ok $i " "$out_dir/$i" || { echo "not ok $i - fuzz $(basename "${!i}") reported nothing"; rc=1; }
	cat "$out_dir/$i"
	grep -qE "^not ok $i " "$out_dir/$i" && rc=1
	# The shared crashes/ directory goes when no target left anything in it.
	rmdir --ignore-fail-on-non-empty "$(cd "$(dirname "${!i}")" && pwd)/crashes" 2>/dev/null
done
# Seeds are named for what they hold; a libFuzzer run pointed at a seed directory itself (not
# at a copy, as above) writes its corpus there under SHA-1 names, which must not be committed.
n=$((n + 1))
stray=$(find "$here/seeds" -type f -regextype posix-extended -regex '.*/[0-9a-f]{40}' | sort)
if [ -n "$stray" ]; then
	echo "not ok $n - the seed directories hold only named seeds"
	sed "s|^$here/|#   a libFuzzer corpus file: |" <<<"$stray" | head -n 5
	echo "#   $(wc -l <<<"$stray") in all; remove them (git rm) and keep the seeds that matter under a name"
	rc=1
else
	echo "ok $n - the seed directories hold only named seeds"
fi
exit $rc
