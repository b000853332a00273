#!/usr/bin/env bats
# The test harness itself: a suite that crashes, aborts or goes missing must be counted as
# failed, never as passed. Throw-away binaries built here (an aborting unit test, a crashing
# fuzz target) go through the real runners: tests/unit/run.sh (make check-unit),
# tests/fuzz/run.sh (make check-fuzz), tests/bats/run.sh (make check-bats) and the counting
# of tests/run-all.sh (make check).

bats_require_minimum_version 1.5.0 # run --separate-stderr

REPO=$(cd "$BATS_TEST_DIRNAME/../.." && pwd)
RUNNER=$REPO/tests/bats/run.sh
# What run.sh counts for a file not in its table.
DEFAULT_WEIGHT=$(sed -n 's/^DEFAULT_WEIGHT=//p' "$RUNNER")

setup() {
	cd "$BATS_TEST_TMPDIR"
	# tests/bats/run.sh as make check-bats runs it, whatever this run was given; its shards
	# cut their ports from this range, which the throwaway files below never bind.
	export BATS_JOBS=2 KEYSTRAP_TEST_PORTS=20000-20400
}

# unit NAME BODY: a unit test binary NAME whose main() runs BODY, built with tests/unit/tap.h.
unit() {
	printf '#include <stdlib.h>\n#include "tap.h"\nint main(void)\n{\n%s\n}\n' "$2" >"$1.c"
	"${CC:-cc}" -std=gnu11 -I"$REPO/tests/unit" "$1.c" -o "$1"
}

@test "check-unit: a binary that aborts before any TAP fails the run and gets a 'not ok' line, first or last" {
	unit test-aaa-abort 'abort();'
	unit test-mid 'CHECK(1, "passes"); return TAP_DONE();'
	unit test-zzz-abort 'CHECK(1, "passes, then"); fflush(stdout); abort();'
	run bash "$REPO/tests/unit/run.sh" ./test-aaa-abort ./test-mid ./test-zzz-abort
	[ "$status" -eq 1 ]
	[ "${lines[0]}" = "not ok - test-aaa-abort: killed by signal 6 after 0 checks" ]
	[ "${lines[1]}" = "ok 1 - test-mid.c: passes" ]
	[ "${lines[2]}" = "1..1" ]
	[ "${lines[3]}" = "ok 1 - test-zzz-abort.c: passes, then" ]
	[ "${lines[4]}" = "not ok - test-zzz-abort: killed by signal 6 after 1 checks" ]
	[ "${#lines[@]}" -eq 5 ]
	# The twin: binaries that finish cleanly pass, with no line added.
	run bash "$REPO/tests/unit/run.sh" ./test-mid ./test-mid
	[ "$status" -eq 0 ]
	[ "$output" = "$(printf 'ok 1 - test-mid.c: passes\n1..1\nok 1 - test-mid.c: passes\n1..1')" ]
}

@test "check-unit: an exit before the plan, a failing status with every check passed, a plan not kept" {
	unit early 'CHECK(1, "one"); exit(0);'
	unit sanitizer 'CHECK(1, "one"); (void)TAP_DONE(); return 23;'
	unit failing 'CHECK(0, "broken"); return TAP_DONE();'
	run bash "$REPO/tests/unit/run.sh" ./early
	[ "$status" -eq 1 ]
	[ "${lines[1]}" = "not ok - early: exited 0 after 1 checks without reaching its plan" ]
	run bash "$REPO/tests/unit/run.sh" ./sanitizer
	[ "$status" -eq 1 ]
	[ "${lines[2]}" = "not ok - sanitizer: exited 23 although every check passed (see its stderr)" ]
	# A check that fails is its own "not ok": nothing is added.
	run bash "$REPO/tests/unit/run.sh" ./failing
	[ "$status" -eq 1 ]
	[ "$output" = "$(printf 'not ok 1 - failing.c: broken (line 5)\n1..1')" ]
}

@test "run-all.sh: a crashed unit binary and a TAP test that never reported reach the failed count" {
	unit test-aaa-abort 'abort();'
	unit test-mid 'CHECK(1, "passes"); return TAP_DONE();'
	unit test-zzz-abort 'abort();'
	mkdir -p tree/tests
	cp "$REPO/tests/run-all.sh" tree/tests/
	# Suites as make targets: the unit runner, a bats-like run whose plan promised 3 tests of
	# which 1 was killed without a line, and a clean one.
	cat >tree/Makefile <<-EOF
		check-unit:
		@bash $REPO/tests/unit/run.sh $PWD/test-aaa-abort $PWD/test-mid $PWD/test-zzz-abort
		check-killed:
		@printf '1..3\nok 1 a\nnot ok 2 b\n'; exit 1
		check-clean:
		@printf '1..2\nok 1 a\nok 2 b\n'
	EOF
	sed -i 's/^@/\t@/' tree/Makefile
	run bash tree/tests/run-all.sh check-unit check-killed check-clean
	[ "$status" -eq 1 ]
	# unit: 1 passed, 2 aborted; killed: 1 passed, 1 failed, 1 never reported; clean: 2 passed.
	[ "${lines[-1]}" = "4 passed, 4 failed" ]
	[[ "$output" == *"not ok - make check-killed: 1 planned tests never reported"* ]]
	# Each suite's time, as a TAP comment that counts as neither.
	[ "$(grep -cE '^# make check-(unit|killed|clean) took [0-9]+ s$' <<<"$output")" -eq 3 ]
	run bash tree/tests/run-all.sh check-clean
	[ "$status" -eq 0 ]
	[ "${lines[-1]}" = "2 passed, 0 failed" ]
}

@test "check-fuzz: a crash's reproducer is kept in crashes/NAME/ and replays; a clean run keeps nothing" {
	command -v "${CLANG:-clang}" >/dev/null || skip "no clang"
	mkdir fuzz
	printf '#include <stdint.h>\n#include <stdlib.h>\n%s\n' \
		'int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) { if (n) abort(); return 0; }' >crash.c
	printf '#include <stdint.h>\n#include <stddef.h>\n%s\n' \
		'int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) { (void)d; (void)n; return 0; }' >clean.c
	"${CLANG:-clang}" -g -fsanitize=fuzzer crash.c -o fuzz/fuzz-crash || skip "clang has no libFuzzer"
	"${CLANG:-clang}" -g -fsanitize=fuzzer clean.c -o fuzz/fuzz-clean
	run bash "$REPO/tests/fuzz/run.sh" 1 fuzz/fuzz-clean fuzz/fuzz-crash
	[ "$status" -eq 1 ]
	[ "${lines[0]}" = "1..3" ]
	[[ "${lines[1]}" == "ok 1 - fuzz fuzz-clean: "*" no crash" ]]
	[ "${lines[2]}" = "not ok 2 - fuzz fuzz-crash crashed" ]
	[ "${lines[-1]}" = "ok 3 - the seed directories hold only named seeds" ]
	local f
	f=$(sed -nE 's/^#   reproducer: ([^ ]+) \(replay: .*\)$/\1/p' <<<"$output")
	[[ "$f" == "$PWD/fuzz/crashes/fuzz-crash/crash-"* ]]
	# Still there after the run, and it is the input that crashes.
	[ -s "$f" ]
	run fuzz/fuzz-crash "$f"
	[ "$status" -ne 0 ]
	[[ "$output" == *"deadly signal"* ]]
	[ ! -e fuzz/crashes/fuzz-clean ]
}

@test "check-fuzz: a libFuzzer corpus file in a seed directory fails the run, named; named seeds pass" {
	command -v "${CLANG:-clang}" >/dev/null || skip "no clang"
	mkdir -p tree/tests/fuzz/seeds/clean fuzz
	cp "$REPO/tests/fuzz/run.sh" tree/tests/fuzz/
	printf 'x' >tree/tests/fuzz/seeds/clean/named
	printf '#include <stdint.h>\n#include <stddef.h>\n%s\n' \
		'int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) { (void)d; (void)n; return 0; }' >clean.c
	"${CLANG:-clang}" -g -fsanitize=fuzzer clean.c -o fuzz/fuzz-clean || skip "clang has no libFuzzer"
	run bash tree/tests/fuzz/run.sh 1 fuzz/fuzz-clean
	[ "$status" -eq 0 ]
	[ "${lines[-1]}" = "ok 2 - the seed directories hold only named seeds" ]
	printf 'y' >tree/tests/fuzz/seeds/clean/95cb0bfd2977c761298d9624e4b4d4c72a39974a
	run bash tree/tests/fuzz/run.sh 1 fuzz/fuzz-clean
	[ "$status" -eq 1 ]
	[ "${lines[2]}" = "not ok 2 - the seed directories hold only named seeds" ]
	[ "${lines[3]}" = "#   a libFuzzer corpus file: seeds/clean/95cb0bfd2977c761298d9624e4b4d4c72a39974a" ]
}

# vm_jobs_tree: vm/check.sh as it is, beside stand-ins for what it sources (no guest, no build):
# scenarios that pass, fail, crash, hang, or each serve their name on 127.0.0.1:47443.
vm_jobs_tree() {
	mkdir -p tree/vm
	cp "$REPO/vm/check.sh" tree/vm/
	cat >tree/vm/build.sh <<-'SH'
		VM_SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
		VM_DIR=$VM_SRC/vmdir VM_TIMEOUT=300 VM_VERBOSE=${VM_VERBOSE:-} VM_PIDS=()
		say() { printf 'vm: %s\n' "$*" >&2; }
		die() { say "$*"; exit 1; }
		vm_cleanup() { local p; for p in "${VM_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; VM_PIDS=(); }
		trap vm_cleanup EXIT
		trap 'exit 130' INT TERM
		vm_build() { mkdir -p "$VM_DIR/runs"; }
		vm_uuid() { echo uuid; }
		vm_server_ready() { VM_SECRET='not in env'; }
		vm_server_stop() { :; }
	SH
	cat >tree/vm/mkinitcpio.sh <<-'SH'
		tap() { N=$((N + 1)); if [ "$1" = ok ]; then PASS=$((PASS + 1)); echo "ok $N - $2"; else FAIL=$((FAIL + 1)); echo "not ok $N - $2"; fi; }
		scenario_slow() { sleep 2; say "slow said"; tap ok slow; }
		scenario_fast() { tap ok fast; }
		scenario_bad() { tap no bad; }
		scenario_crash() { say "crashing"; exit 3; }
		scenario_hang() { sleep 600 & VM_PIDS+=($!); echo $! >"$VM_DIR/hang.pid"; sleep 600; tap ok hang; }
		scenario_secret() { [ "$VM_SECRET" = 'not in env' ] && ! env | grep -q 'not in env' && tap ok secret || tap no secret; }
		serve() {
			mkdir -p "$VM_DIR/www-$1" && echo "$1" >"$VM_DIR/www-$1/who"
			busybox httpd -f -p 127.0.0.1:47443 -h "$VM_DIR/www-$1" & VM_PIDS+=($!)
			sleep 2 # both are up now, each in its own namespace or one refused
			[ "$(curl -s http://127.0.0.1:47443/who)" = "$1" ] && tap ok "$1 saw itself" || tap no "$1 saw $(curl -s http://127.0.0.1:47443/who)"
		}
		scenario_netA() { serve A; }
		scenario_netB() { serve B; }
	SH
}

@test "vm-check VM_JOBS=2: TAP in scenario order, numbered as one after the other; a crash is a 'not ok'" {
	vm_jobs_tree
	run env VM_SCENARIOS="slow fast bad crash secret" bash tree/vm/check.sh
	[ "$status" -eq 1 ]
	[ "${lines[0]}" = "vm: build ready after 0s" ]
	[ "${lines[1]}" = "vm: slow said" ]
	[ "${lines[2]}" = "ok 1 - slow" ]
	[ "${lines[3]}" = "ok 2 - fast" ]
	[ "${lines[4]}" = "not ok 3 - bad" ]
	[ "${lines[5]}" = "vm: crashing" ]
	[ "${lines[6]}" = "not ok 4 - scenario crash ended without a result (exit status 3)" ]
	[ "${lines[9]}" = "ok 5 - secret" ]
	[ "${lines[-1]}" = "3 passed, 2 failed" ]
	# The twin: one at a time in this shell, the same lines.
	run env VM_JOBS=1 VM_SCENARIOS="slow fast bad secret" bash tree/vm/check.sh
	[ "$status" -eq 1 ]
	[ "$(grep -E '^(not )?ok' <<<"$output")" = "$(printf 'ok 1 - slow\nok 2 - fast\nnot ok 3 - bad\nok 4 - secret')" ]
	[ "${lines[-1]}" = "3 passed, 1 failed" ]
	run env VM_JOBS=0 bash tree/vm/check.sh
	[ "$status" -eq 1 ]
	[ "$output" = "vm: VM_JOBS=0: want how many scenarios boot at a time (1 or more)" ]
}

@test "vm-check VM_JOBS=2: a scenario that hangs is stopped after VM_JOB_TIMEOUT, fails, and leaves nothing running" {
	vm_jobs_tree
	run env VM_JOB_TIMEOUT=3 VM_SCENARIOS="hang fast" bash tree/vm/check.sh
	[ "$status" -eq 1 ]
	[[ "$output" == *"vm: scenario hang: no result after 3s (VM_JOB_TIMEOUT); stopping it"* ]]
	[ "$(grep -E '^(not )?ok' <<<"$output")" = "$(printf '%s\n' \
		'not ok 1 - scenario hang ended without a result (exit status 130, stopped after 3s)' 'ok 2 - fast')" ]
	[ "${lines[-1]}" = "1 passed, 1 failed" ]
	# Gone, or a zombie its new parent has yet to reap: given a moment on a loaded machine.
	pid=$(cat tree/vmdir/hang.pid)
	for _ in $(seq 50); do
		[ -e "/proc/$pid" ] && [ "$(awk '{ print $3 }' "/proc/$pid/stat" 2>/dev/null)" != Z ] || break
		sleep 0.1
	done
	[ ! -e "/proc/$pid" ] || [ "$(awk '{ print $3 }' "/proc/$pid/stat" 2>/dev/null)" = Z ]
}

@test "vm-check VM_JOBS=2: each scenario has a loopback of its own, its 127.0.0.1:47443 neither the other's nor the host's" {
	unshare --net true 2>/dev/null || skip "no network namespaces here"
	vm_jobs_tree
	# All of it in a namespace of the test's own: the host's port 47443 stays out of it.
	mkdir www && echo host >www/who
	run unshare --net bash -c 'ip link set lo up && { busybox httpd -f -p 127.0.0.1:47443 -h www & h=$!; } &&
		VM_SCENARIOS="netA netB" bash tree/vm/check.sh; rc=$?; kill $h; exit $rc'
	[ "$status" -eq 0 ]
	[ "$(grep -E '^(not )?ok' <<<"$output")" = "$(printf 'ok 1 - A saw itself\nok 2 - B saw itself')" ]
	# The twin: one at a time, in the namespace the host server is in, both see it.
	run unshare --net bash -c 'ip link set lo up && { busybox httpd -f -p 127.0.0.1:47443 -h www & h=$!; } &&
		VM_JOBS=1 VM_SCENARIOS="netA netB" bash tree/vm/check.sh; rc=$?; kill $h; exit $rc'
	[ "$status" -eq 1 ]
	[ "$(grep -E '^(not )?ok' <<<"$output")" = "$(printf 'not ok 1 - A saw host\nnot ok 2 - B saw host')" ]
}

@test "make: the guest trees under build/vm (dracut's modules.d is a directory) stay out of the dependency files read" {
	mkdir -p b/vm/dracut/modules.d b/vm-bench/x.d b/obj
	echo 'not make at all' >b/vm/junk.d
	run make -s -C "$REPO" BUILD="$PWD/b" -n deps
	[ "$status" -eq 0 ]
	# The twin: a dependency file of the build itself is still read.
	echo '$(error b/obj/x.d was read)' >b/obj/x.d
	run make -s -C "$REPO" BUILD="$PWD/b" -n deps
	[ "$status" -ne 0 ]
	[[ "$output" == *"b/obj/x.d was read"* ]]
}

# ---- make check-bats: tests/bats/run.sh --------------------------------------------------------

# test_file FILE LINE...: a throwaway bats file (printf: a line of this file that began with
# @test would be a test of this file, bats' preprocessor does not skip here-documents).
test_file() {
	printf '%s\n' "${@:2}" >"$1"
}

# shard_files DIR: throwaway bats files in DIR, none in run.sh's table (each counts its
# DEFAULT_WEIGHT): one.bats (2 tests, one prints its shard's ports), two.bats (a pass and a
# skip), three.bats (3 tests, one prints its shard's ports).
shard_files() {
	mkdir -p "$1"
	test_file "$1/one.bats" '@test "one a" { true; }' \
		'@test "one b" { echo "# ports ${KEYSTRAP_TEST_PORTS:-unset}" >&3; }'
	test_file "$1/two.bats" '@test "two a" { true; }' '@test "two b" { skip "skipped on purpose"; }'
	test_file "$1/three.bats" '@test "three a" { echo "# ports ${KEYSTRAP_TEST_PORTS:-unset}" >&3; }' \
		'@test "three b" { true; }' '@test "three c" { true; }'
}

# bare CMD...: CMD without this bats run's BATS_* variables (its directories, its test's
# name), as make check-bats starts the runner; BATS_JOBS stays.
bare() {
	local v unset=()
	for v in "${!BATS_@}"; do [ "$v" = BATS_JOBS ] || unset+=(-u "$v"); done
	env "${unset[@]}" "$@"
}

# sharded FILE...: the runner over throwaway files, in a session of its own (a test below that
# kills its process group can then take no more than the runner with it); its TAP in $output,
# its stderr in $stderr.
sharded() {
	run --separate-stderr bare setsid -w bash "$RUNNER" "$@"
}

# results: the TAP result lines of $output.
results() { grep -E '^(not )?ok ' <<<"$output"; }

# numbers ERE: the numbers of the results whose description matches ERE, on one line.
numbers() { results | grep -E "^(not )?ok [0-9]+ $1" | sed -E 's/^(not )?ok ([0-9]+).*/\2/' | paste -sd' '; }

# run_all_on RECIPE: tests/run-all.sh's count over a make target whose recipe is RECIPE.
run_all_on() {
	mkdir -p tree/tests
	cp "$REPO/tests/run-all.sh" tree/tests/
	printf 'check-x:\n\t@%s\n' "$1" >tree/Makefile
	run bare bash tree/tests/run-all.sh check-x
}

@test "check-bats: two shards at once print one plan and each result once, numbered in turn; one shard prints what bats does" {
	shard_files t
	sharded t/one.bats t/two.bats t/three.bats
	[ "$status" -eq 0 ]
	[ "${lines[0]}" = "1..7" ]
	[ "$(grep -cE '^1\.\.' <<<"$output")" -eq 1 ]
	[ "$(results | cut -d' ' -f2 | paste -sd' ')" = "1 2 3 4 5 6 7" ]
	[ "$(results | cut -d' ' -f3- | sort | paste -sd,)" = \
		"one a,one b,three a,three b,three c,two a,two b # skip skipped on purpose" ]
	# Each file's results one after the other.
	[[ "$(numbers three)" =~ ^([0-9]+)\ ([0-9]+)\ ([0-9]+)$ ]]
	[ "${BASH_REMATCH[2]}" -eq $((BASH_REMATCH[1] + 1)) ] && [ "${BASH_REMATCH[3]}" -eq $((BASH_REMATCH[1] + 2)) ]
	# Each shard has a port range of its own: the two halves of the one given.
	[ "$(grep '^# ports' <<<"$output" | sort | paste -sd,)" = "# ports 20000-20200,# ports 20200-20400" ]
	# Each shard's time, on stderr.
	[[ "$stderr" =~ "run.sh: shard 1 took "[0-9]+" s (the table: ~$((2 * DEFAULT_WEIGHT)) s), bats exited 0: one.bats two.bats" ]]
	# The twin: one shard is one bats over the files in name order, line for line.
	BATS_JOBS=1 sharded t/one.bats t/two.bats t/three.bats
	[ "$status" -eq 0 ]
	[ "$output" = "$(bare bats --tap t/one.bats t/three.bats t/two.bats)" ]
}

@test "check-bats: run-all.sh counts the merged stream exactly; a failing test in one shard is its 'not ok' with its diagnostics, and exit 1" {
	shard_files t
	run_all_on "bash $RUNNER $PWD/t/one.bats $PWD/t/two.bats $PWD/t/three.bats"
	[ "$status" -eq 0 ]
	[ "${lines[-1]}" = "7 passed, 0 failed" ]
	test_file t/two.bats '@test "two a" { true; }' '@test "two fails" { echo "what went wrong"; false; }'
	sharded t/one.bats t/two.bats t/three.bats
	[ "$status" -eq 1 ]
	[ "$(results | grep -c '^not ok')" -eq 1 ]
	results | grep -qE '^not ok [0-9]+ two fails$'
	# Its diagnostics come right after it, before the next result.
	[ "$(grep -A3 -E '^not ok [0-9]+ two fails$' <<<"$output" | tail -n 1)" = "# what went wrong" ]
	run_all_on "bash $RUNNER $PWD/t/one.bats $PWD/t/two.bats $PWD/t/three.bats"
	[ "$status" -eq 1 ]
	[ "${lines[-1]}" = "6 passed, 1 failed" ]
}

@test "check-bats: a shard whose bats is killed mid-run fails each test its plan promised that never reported; the other shard's all report" {
	shard_files t
	test_file t/killed.bats '@test "killed a" { true; }' \
		'@test "killed b: kills the process group of its shard" { [ -n "${KEEP:-}" ] || kill -KILL 0; }' \
		'@test "killed c" { true; }'
	# Four files of one weight, longest first then by name: killed.bats and three.bats in
	# shard 1, one.bats and two.bats in shard 2. Shard 1 is killed during its second test.
	sharded t/killed.bats t/one.bats t/two.bats t/three.bats
	[ "$status" -eq 1 ]
	[ "${lines[0]}" = "1..10" ]
	[ "$(results | wc -l)" -eq 10 ]
	[ "$(results | grep -c '^not ok [0-9]* - shard 1: a test its plan promised never reported (bats killed by signal 9)$')" -eq 5 ]
	[ "$(numbers 'killed a')" = 1 ]
	[ "$(numbers '(one|two) ')" = "7 8 9 10" ]
	[[ "$output" == *"#   its last result: ok 1 killed a"* ]]
	run_all_on "setsid -w bash $RUNNER $PWD/t/killed.bats $PWD/t/one.bats $PWD/t/two.bats $PWD/t/three.bats"
	[ "$status" -eq 1 ]
	[ "${lines[-1]}" = "5 passed, 5 failed" ]
	# The twin: the same files, nothing killed: all pass.
	KEEP=1 sharded t/killed.bats t/one.bats t/two.bats t/three.bats
	[ "$status" -eq 0 ]
	[ "$(results | grep -c '^ok ')" -eq 10 ]
}

@test "check-bats: a shard whose bats crashes before its plan fails every test bats counts in its files" {
	shard_files t
	# A bats that counts as the real one does, and dies of SIGSEGV when it should run tests.
	cat >crashing-bats <<-'EOF'
		#!/bin/bash
		[ "$1" = --count ] && exec bats "$@"
		[ -z "${CRASH:-}" ] || kill -SEGV $$
		exec bats "$@"
	EOF
	chmod +x crashing-bats
	CRASH=1 BATS=$PWD/crashing-bats sharded t/one.bats t/two.bats t/three.bats
	[ "$status" -eq 1 ]
	[ "${lines[0]}" = "1..7" ]
	[ "$(results | wc -l)" -eq 7 ]
	[ "$(results | grep -c '^not ok [0-9]* - shard [12]: a test its plan promised never reported (bats killed by signal 11)$')" -eq 7 ]
	# The twin: the same stand-in, no crash.
	BATS=$PWD/crashing-bats sharded t/one.bats t/two.bats t/three.bats
	[ "$status" -eq 0 ]
	[ "$(results | grep -c '^ok ')" -eq 7 ]
}

@test "check-bats --list: the same shards each time, every file once and measured, balanced, the TOGETHER group in one shard" {
	run bash "$RUNNER" --list
	[ "$status" -eq 0 ]
	first=$output
	run bash "$RUNNER" --list
	[ "$output" = "$first" ]
	[ "${#lines[@]}" -eq 2 ]
	# Every file once, and every file in the table (a new one: add it, docs/testing.md).
	[ "$(grep -oE '[a-z0-9-]+\.bats' <<<"$output" | sort | paste -sd' ')" = \
		"$(cd "$REPO/tests/bats" && printf '%s\n' *.bats | sort | paste -sd' ')" ]
	[[ "$output" != *"not in run.sh's table"* ]] || false
	# The kernel keyring files share a shard.
	ring=$(grep ' keyring\.bats' <<<"$output")
	for f in handoff revocation witness; do [[ "$ring" == *" $f.bats"* ]]; done
	# Balanced as longest-first does: the loads differ by no more than the heaviest item (a
	# file, or the TOGETHER group as a whole).
	local -A w=()
	while IFS='=' read -r k v; do w[${k:1:-1}]=$v; done < <(grep -oE '\[[a-z0-9-]+\]=[0-9]+' "$RUNNER")
	heaviest=$(printf '%s\n' "${w[@]}" | sort -n | tail -n 1)
	group=$((w[handoff] + w[keyring] + w[revocation] + w[witness]))
	[ "$group" -le "$heaviest" ] || heaviest=$group
	read -r l1 l2 < <(sed -nE 's/^shard [12] \(~([0-9]+) s.*/\1/p' <<<"$output" | paste -sd' ')
	diff=$((l1 - l2))
	[ "${diff#-}" -le "$heaviest" ]
	# The twins: two files of no group and one weight go one to each shard, while two TOGETHER
	# files (throwaway ones of those names) share one; one shard takes all; no shard is refused.
	shard_files t
	run bash "$RUNNER" --list t/one.bats t/two.bats
	[ "$status" -eq 0 ]
	[ "${lines[0]}" = "shard 1 (~$DEFAULT_WEIGHT s, ports 20000-20200): one.bats" ]
	[ "${lines[1]}" = "shard 2 (~$DEFAULT_WEIGHT s, ports 20200-20400): two.bats" ]
	[ "${lines[2]}" = "# one.bats is not in run.sh's table: counted as $DEFAULT_WEIGHT s until measured" ]
	touch t/keyring.bats t/handoff.bats
	run bash "$RUNNER" --list t/keyring.bats t/handoff.bats
	[ "$status" -eq 0 ]
	[ "$output" = "shard 1 (~$((w[handoff] + w[keyring])) s, ports 20000-20200): handoff.bats keyring.bats" ]
	BATS_JOBS=1 run bash "$RUNNER" --list t/one.bats t/two.bats
	[ "${lines[0]}" = "shard 1 (~$((2 * DEFAULT_WEIGHT)) s, ports 20000-20400): one.bats two.bats" ]
	BATS_JOBS=0 run bash "$RUNNER" --list
	[ "$status" -eq 2 ]
	[ "$output" = "run.sh: BATS_JOBS=0: want how many shards run at once (1 or more)" ]
}

@test "free_port: pairs from KEYSTRAP_TEST_PORTS in turn, none twice before the range wraps; a pair in use is skipped" {
	export BATS_RUN_TMPDIR=$PWD/run KEYSTRAP_TEST_PORTS=9300-9308
	mkdir run
	# shellcheck source=tests/lib/swtpm.bash
	. "$REPO/tests/lib/swtpm.bash"
	# Four pairs from wherever the run starts, then the first again.
	read -r a b c d e < <(for _ in 1 2 3 4 5; do free_port; done | paste -sd' ')
	[ "$(printf '%s\n' "$a" "$b" "$c" "$d" | sort -n | paste -sd' ')" = "9300 9302 9304 9306" ]
	[ "$e" = "$a" ]
	echo 1 >run/free-port.next
	[ "$(free_port)" = 9302 ]
	# The twin: something listening on the next pair's second port: that pair is skipped.
	echo 1 >run/free-port.next
	python3 -c 'import socket, time
s = socket.socket(); s.bind(("127.0.0.1", 9303)); s.listen(); print("up", flush=True); time.sleep(30)' >listener.out &
	listener=$!
	for _ in $(seq 50); do [ -s listener.out ] && break; sleep 0.1; done
	got=$(free_port)
	kill "$listener"
	[ "$got" = 9304 ]
	[ "$(cat run/free-port.next)" = 3 ]
	KEYSTRAP_TEST_PORTS=9300-9301 run free_port
	[ "$status" -eq 1 ]
	[ "$output" = "free_port: KEYSTRAP_TEST_PORTS=9300-9301 is not LOW-HIGH with room for a pair" ]
}
