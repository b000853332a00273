#!/usr/bin/env bash
# Seeds fuzz-eventlog with real firmware logs: the copies kept in the repository, plus the
# shared test data next to the checkout when there is any (the tests never need it).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../../.." && pwd)
cp "$repo"/tests/data/eventlogs/*.bin "$1/"
if [ -d "$repo/../shared/testdata/eventlogs" ]; then
	for f in "$repo"/../shared/testdata/eventlogs/*.bin; do
		[ -e "$f" ] && cp "$f" "$1/shared-$(basename "$f")"
	done
fi
exit 0
