#!/usr/bin/env bash
# Seeds fuzz-eventlog with real firmware logs: the copies kept in the repository, the quirks
# real firmware adds to them (tests/lib/eventlog-edit.pl), plus the shared test data next to
# the checkout when there is any (the tests never need it).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../../.." && pwd)
cp "$repo"/tests/data/eventlogs/*.bin "$1/"
edit="$repo/tests/lib/eventlog-edit.pl"
perl "$edit" "$1/event-arch-linux.bin" "$1/quirk-no-action-pcr-ffffffff.bin" no-action=4294967295
perl "$edit" "$1/event-uefi-sha1-log.bin" "$1/quirk-sha1-no-action-pcr-ffffffff.bin" no-action=4294967295 pad=40
perl "$edit" "$1/event-arch-linux.bin" "$1/quirk-padding.bin" pad=4096
perl "$edit" "$1/event-sd-boot-fedora37.bin" "$1/quirk-sha3-declared.bin" alg=0x27:32
perl "$edit" "$1/event-arch-linux.bin" "$1/quirk-double-separator.bin" dup=10
if [ -d "$repo/../shared/testdata/eventlogs" ]; then
	for f in "$repo"/../shared/testdata/eventlogs/*.bin; do
		[ -e "$f" ] && cp "$f" "$1/shared-$(basename "$f")"
	done
fi
exit 0
