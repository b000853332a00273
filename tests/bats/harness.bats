#!/usr/bin/env bats
# The test harness itself: a suite that crashes, aborts or goes missing must be counted as
# failed, never as passed. Throw-away binaries built here (an aborting unit test, a crashing
# fuzz target) go through the real runners: tests/unit/run.sh (make check-unit),
# tests/fuzz/run.sh (make check-fuzz) and the counting of tests/run-all.sh (make check).

REPO=$(cd "$BATS_TEST_DIRNAME/../.." && pwd)

setup() {
	cd "$BATS_TEST_TMPDIR"
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
	[ "${lines[0]}" = "1..2" ]
	[[ "${lines[1]}" == "ok 1 - fuzz fuzz-clean: "*" no crash" ]]
	[ "${lines[2]}" = "not ok 2 - fuzz fuzz-crash crashed" ]
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
