#!/usr/bin/env bash
# Runs every suite (the source rules, C unit tests under ASan/UBSan, bats against the sanitizer
# build, bounded fuzzing, the QEMU + swtpm boot scenarios) and ends with one line:
# "N passed, N failed". Each suite speaks TAP. Usage: run-all.sh [SUITE...] (make targets;
# default all of them).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1

log=$(mktemp -d)
suites=(check-cleanup check-unit check-bats check-fuzz check-deb vm-check)
[ $# -gt 0 ] && suites=("$@")
pass=0 fail=0

# The VM suite's guest artifacts (mmdebstrap, a kernel, installer and enroll boots at nice 10)
# build in the background from when the binaries exist, while the host suites run: vm-check
# then finds them cached. A failed prebuild costs nothing: vm-check builds what is missing and
# reports what fails.
prebuild=
prebuild_start() {
	[[ " ${suites[*]} " == *" vm-check "* ]] || return 0
	# Its own process group, so that an early exit stops every QEMU and swtpm it started.
	setsid make --no-print-directory -s vm-build >"$log/vm-build.log" 2>&1 &
	prebuild=$!
}
prebuild_wait() {
	[ -n "$prebuild" ] || return 0
	local t=$SECONDS
	wait "$prebuild" || echo "# the early guest build failed (vm-check builds again): $(tail -n 1 "$log/vm-build.log")"
	echo "# waited $((SECONDS - t)) s for the guest build"
	prebuild=
}
trap '[ -n "$prebuild" ] && kill -- -"$prebuild" 2>/dev/null; rm -rf "$log"' EXIT

for s in "${suites[@]}"; do
	[ "$s" = vm-check ] && prebuild_wait
	echo "== make $s"
	started=$SECONDS
	make --no-print-directory -s "$s" 2>"$log/$s.err" | tee "$log/$s.tap"
	rc=${PIPESTATUS[0]}
	p=$(grep -cE '^ok ' "$log/$s.tap")
	f=$(grep -cE '^not ok ' "$log/$s.tap")
	# A test its plan promised that never reported (a bats test killed outright) failed.
	planned=$(awk '/^1\.\.[0-9]+$/ { n += substr($0, 4) } END { print n + 0 }' "$log/$s.tap")
	if [ "$((p + f))" -lt "$planned" ]; then
		echo "not ok - make $s: $((planned - p - f)) planned tests never reported"
		f=$((planned - p))
	fi
	# A suite that dies before reporting (build error, crash) counts as a failure.
	if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
		f=1
		echo "not ok - make $s exited $rc"
		tail -n 20 "$log/$s.err"
	fi
	# Where a run's minutes went, for keeping the whole under its budget.
	echo "# make $s took $((SECONDS - started)) s"
	pass=$((pass + p))
	fail=$((fail + f))
	# check-cleanup has built both binaries: the guest build can start.
	[ "$s" = check-cleanup ] && prebuild_start
done
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
