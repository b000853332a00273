#!/usr/bin/env bats
# keystrap eventlog: replay against the tpm2_eventlog oracle for every shared log, mutants
# (flipped bytes, truncations, appended garbage) that either replay like the oracle or fail
# naming an offset, the quirks of real firmware (tests/lib/eventlog-edit.pl) that replay like
# the log they were made from, and --verify against a real swtpm with its negative twin.

load ../lib/swtpm
load ../lib/firmware

LOGS=$BATS_TEST_DIRNAME/../data/eventlogs
EDIT=$BATS_TEST_DIRNAME/../lib/eventlog-edit.pl

setup_file() {
	export SWTPM_PCR_BANKS=sha1,sha256
	swtpm_start
}

teardown_file() {
	swtpm_stop
}

setup() {
	cd "$BATS_TEST_TMPDIR"
}

teardown() {
	# Only a test that started its own second swtpm has SECOND_TPM set, and SWTPM_DIR at it.
	[ -z "${SECOND_TPM:-}" ] || swtpm_stop
}

# The same from keystrap's text output (PCRs whose value the log determines).
keystrap_pcrs() {
	awk '/^[a-z0-9_]+:$/ { b = $1; sub(":", "", b); next }
	     /^  [0-9]+ *: 0x/ { split($0, a, ":"); gsub(/ /, "", a[1]); gsub(/ |0x/, "", a[2]); print b, a[1], a[2] }' <<<"$1"
}

# mutate FILE DIR OFFSET:XOR...: writes DIR/OFFSET-XOR.bin, FILE with that byte XORed, and
# prints "OFFSET-XOR TYPE" where TYPE is the aligned 32-bit word around it afterwards.
mutate() {
	perl -e '
		my ($file, $dir, @m) = @ARGV;
		open(my $in, "<:raw", $file) or die; local $/; my $d = <$in>;
		for (@m) {
			my ($o, $x) = split /:/;
			my $c = $d; substr($c, $o, 1) = chr(ord(substr($d, $o, 1)) ^ $x);
			open(my $out, ">:raw", "$dir/$o-$x.bin") or die; print $out $c; close $out;
			my $a = $o - $o % 4;
			printf "%d-%d %d\n", $o, $x, $a + 4 <= length($c) ? unpack("V", substr($c, $a, 4)) : 0;
		}' "$@"
}

# Whether OFFSET, in the log described by JSON, lies in what the replay never reads: an
# event's data, or its type field when the type is neither EV_NO_ACTION before nor after.
replay_ignores() {
	jq -e --argjson o "$2" --argjson t "$3" 'any(.events[];
		(.data_offset <= $o and $o < .data_offset + .data_size) or
		(.offset + 4 <= $o and $o < .offset + 8 and .type_value != 3 and $t != 3))' \
		<<<"$1" >/dev/null
}

# check_mutant ORIGINAL MUTANT [OFFSET TYPE]: the mutant replays exactly like the oracle, or
# keystrap refuses it with one line naming an offset. tpm2_eventlog also refuses logs whose
# event data it cannot print (a variable name that is not ASCII, a GPT event retyped from an
# action): keystrap may accept those only when the changed byte is one the replay never
# reads, and then its replay must be the original log's. TYPE is the event type the changed
# byte would make if it is a type field (3 for EV_NO_ACTION matters).
check_mutant() {
	local orig=$1 mutant=$2 offset=${3:-} type=${4:-0} want out
	local output status=0
	output=$("$KEYSTRAP" eventlog "$mutant" 2>&1) || status=$?
	if [[ "$output" == *Sanitizer* || "$output" == *"runtime error"* || $status -gt 1 ]]; then
		echo "crash on $mutant of $orig (offset ${offset:-none}, status $status): $output" >&2
		return 1
	fi
	if [ "$status" -eq 1 ]; then
		if [[ "$output" != *": offset "[0-9]*": "* || "$output" == *$'\n'* ]]; then
			echo "unclear refusal of $mutant of $orig: $output" >&2
			return 1
		fi
		return 0
	fi
	out=$(keystrap_pcrs "$output")
	# Zeros after the last event are padding to keystrap, events to tpm2_eventlog (or not
	# parseable): the replay is then that of the log without them.
	if [[ "${output%%$'\n'*}" =~ ", "([0-9]+)" bytes of zero padding"$ ]]; then
		head -c $(($(stat -c %s "$mutant") - BASH_REMATCH[1])) "$mutant" >"$mutant.unpadded"
		want=$(oracle_pcrs "$mutant.unpadded") && [ "$out" = "$want" ] && return 0
		echo "replay of $mutant of $orig without its padding differs from tpm2_eventlog's" >&2
		return 1
	fi
	if want=$(oracle_pcrs "$mutant"); then
		[ "$out" = "$want" ] && return 0
		echo "replay of $mutant of $orig (offset ${offset:-none}) differs from tpm2_eventlog:" >&2
		diff <(echo "$want") <(echo "$out") >&2
		return 1
	fi
	if [ -n "$offset" ] && replay_ignores "$ORIG_JSON" "$offset" "$type" &&
		[ "$out" = "$(oracle_pcrs "$orig")" ]; then
		return 0
	fi
	echo "keystrap accepts $mutant of $orig (offset ${offset:-none}) which tpm2_eventlog refuses" >&2
	return 1
}

@test "the replay of every shared log equals tpm2_eventlog's, bank by bank" {
	local n=0
	for f in "$LOGS"/*.bin; do
		run "$KEYSTRAP" eventlog "$f"
		[ "$status" -eq 0 ]
		want=$(oracle_pcrs "$f")
		[ -n "$want" ]
		[ "$(keystrap_pcrs "$output")" = "$want" ]
		n=$((n + 1))
	done
	[ "$n" -eq 9 ]
}

@test "both log formats and every bank the Spec ID declares are replayed" {
	run "$KEYSTRAP" eventlog "$LOGS/event-uefi-sha1-log.bin"
	[ "$status" -eq 0 ]
	[[ "${lines[0]}" == *"SHA-1 log, "* ]]
	[[ "$output" == *$'sha1:\n  0  : 0x3dcaea25dc86554d94b94aa5bc8f735a49212af8'* ]]
	[[ "$output" != *sha256* ]]
	# Declares sha1, sha256, sha384, sha512 but its one event carries sha1 and sha256 only.
	run "$KEYSTRAP" eventlog "$LOGS/event-uefiaction.bin"
	[ "$status" -eq 0 ]
	[[ "${lines[0]}" == *"crypto-agile log, 2 events"* ]]
	[[ "$output" == *"sha384:"$'\n'"  4  : unknown (the event at offset 77 has no sha384 digest)"* ]]
	[[ "$output" == *"sha512:"$'\n'"  4  : unknown (the event at offset 77 has no sha512 digest)"* ]]
}

@test "--json lists every event with its digests and a decoded description" {
	run "$KEYSTRAP" eventlog --json "$LOGS/event-arch-linux.bin"
	[ "$status" -eq 0 ]
	json=$output
	# As many events as the oracle numbers.
	[ "$(jq '.events | length' <<<"$json")" -eq "$(tpm2_eventlog "$LOGS/event-arch-linux.bin" 2>/dev/null | grep -c '^- EventNum:')" ]
	[ "$(jq -r '.format' <<<"$json")" = crypto-agile ]
	[ "$(jq -c '.banks' <<<"$json")" = '["sha1","sha256"]' ]
	jq -e '.events[0].type == "EV_NO_ACTION" and (.events[0].description | startswith("Spec ID Event03"))' <<<"$json"
	jq -e 'any(.events[]; .type == "EV_EFI_VARIABLE_DRIVER_CONFIG" and (.description | startswith("variable SecureBoot (8be4df61-93ca-11d2-aa0d-00e098032b8c)")))' <<<"$json"
	jq -e 'any(.events[]; .type == "EV_EFI_BOOT_SERVICES_APPLICATION" and (.description | endswith("\\vmlinuz-linux-lts")))' <<<"$json"
	jq -e 'any(.events[]; .type == "EV_SEPARATOR" and .description == "separator")' <<<"$json"
	jq -e 'any(.events[]; .type == "EV_IPL" and .pcr == 8)' <<<"$json"
	jq -e 'all(.events[] | select(.type != "EV_NO_ACTION"); .digests | map(.hashAlg) == ["sha1","sha256"])' <<<"$json"
	# The JSON PCRs are the text ones.
	[ "$(jq -r '.pcrs | to_entries[] | .key as $b | .value | to_entries[] | "\($b) \(.key) \(.value)"' <<<"$json")" = \
	  "$(keystrap_pcrs "$("$KEYSTRAP" eventlog "$LOGS/event-arch-linux.bin")")" ]
}

@test "--json decodes systemd-boot's tagged events and UCS-2 strings" {
	run "$KEYSTRAP" eventlog --json "$LOGS/event-sd-boot-fedora37.bin"
	[ "$status" -eq 0 ]
	jq -e 'any(.events[]; .type == "EV_EVENT_TAG" and .pcr == 9 and (.description | endswith("Linux initrd")))' <<<"$output"
	jq -e 'any(.events[]; .type == "EV_IPL" and .pcr == 12 and (.description | contains("console=ttyS0")))' <<<"$output"
}

@test "flipped bytes: each mutant replays like tpm2_eventlog or is refused naming its offset" {
	local n=0 f size offsets o m name type
	RANDOM=3
	for f in "$LOGS"/*.bin; do
		size=$(stat -c %s "$f")
		ORIG_JSON=$("$KEYSTRAP" eventlog --json "$f")
		# The headers (Spec ID event, first events) byte by byte in one log of each format,
		# and a fixed sample of offsets in every log; every byte flipped wholly, and where a
		# size or count starts, its low bit too (a near-valid value).
		case $f in
		*/event-arch-linux.bin) offsets=$(seq 0 99) ;;
		*/event-uefi-sha1-log.bin) offsets=$(seq 0 47) ;;
		*) offsets= ;;
		esac
		for _ in $(seq 20); do offsets="$offsets $(((RANDOM * 32768 + RANDOM) % size))"; done
		m=()
		for o in $offsets; do
			m+=("$o:255")
			[ $((o % 4)) -eq 0 ] && m+=("$o:1")
		done
		mkdir -p "$BATS_TEST_TMPDIR/m"
		while read -r name type; do
			check_mutant "$f" "$BATS_TEST_TMPDIR/m/$name.bin" "${name%-*}" "$type"
			n=$((n + 1))
		done < <(mutate "$f" "$BATS_TEST_TMPDIR/m" "${m[@]}")
		rm -rf "$BATS_TEST_TMPDIR/m"
	done
	echo "# $n mutants" >&3
}

@test "truncated logs: replay like tpm2_eventlog (at an event boundary) or refused naming the offset" {
	local n=0
	for f in "$LOGS"/*.bin; do
		size=$(stat -c %s "$f")
		for o in 0 1 31 32 33 $(seq 40 $((size / 12 + 1)) $((size - 1))) $((size - 1)); do
			[ "$o" -lt "$size" ] || continue
			head -c "$o" "$f" >"$BATS_TEST_TMPDIR/t.bin"
			check_mutant "$f" "$BATS_TEST_TMPDIR/t.bin"
			n=$((n + 1))
		done
	done
	echo "# $n truncations" >&3
}

@test "appended garbage, zeros, 0xff and a repeated last event: like tpm2_eventlog or refused" {
	for f in "$LOGS"/*.bin; do
		for g in zero ff random event; do
			cp "$f" "$BATS_TEST_TMPDIR/a.bin"
			case $g in
			zero) head -c 64 /dev/zero >>"$BATS_TEST_TMPDIR/a.bin" ;;
			ff) head -c 64 /dev/zero | tr '\0' '\377' >>"$BATS_TEST_TMPDIR/a.bin" ;;
			random) head -c 64 /dev/urandom >>"$BATS_TEST_TMPDIR/a.bin" ;;
			event) tail -c 80 "$f" >>"$BATS_TEST_TMPDIR/a.bin" ;;
			esac
			check_mutant "$f" "$BATS_TEST_TMPDIR/a.bin"
		done
	done
	# 32 zero bytes after a legacy log would be an all-zero EV_PREBOOT_CERT event to
	# tpm2_eventlog; the kernel ends a log there, and so does keystrap: padding, not extended.
	cp "$LOGS/event-uefi-sha1-log.bin" "$BATS_TEST_TMPDIR/z.bin"
	head -c 32 /dev/zero >>"$BATS_TEST_TMPDIR/z.bin"
	run "$KEYSTRAP" eventlog "$BATS_TEST_TMPDIR/z.bin"
	[ "$status" -eq 0 ]
	[[ "${lines[0]}" == *", 32 bytes of zero padding" ]]
	[ "$(keystrap_pcrs "$output")" = "$(oracle_pcrs "$LOGS/event-uefi-sha1-log.bin")" ]
	[ "$(keystrap_pcrs "$output")" != "$(oracle_pcrs "$BATS_TEST_TMPDIR/z.bin")" ]
}

# quirk IN OUT EDIT...: OUT is IN as real firmware also writes it, and replays like IN.
quirk() {
	local in=$1 out=$2
	shift 2
	perl "$EDIT" "$in" "$out" "$@"
	! cmp -s "$in" "$out" || false
	run "$KEYSTRAP" eventlog "$out"
	[ "$status" -eq 0 ] || { echo "$out ($*): $output" >&2; return 1; }
	[ "$(keystrap_pcrs "$output")" = "$(oracle_pcrs "$in")" ] || { echo "$out ($*) replays otherwise" >&2; return 1; }
}

# retype FILE EVENT TYPE: sets event number EVENT's type field (as keystrap --json numbers it).
retype() {
	local at
	at=$("$KEYSTRAP" eventlog --json "$1" | jq ".events[$2].offset + 4")
	printf "$(printf '\\x%02x' $(($3 & 255)) $(($3 >> 8 & 255)) $(($3 >> 16 & 255)) $(($3 >> 24)))" |
		dd of="$1" bs=1 seek="$at" conv=notrunc status=none
}

@test "real firmware quirks replay like the log they were made from; each twin is refused" {
	local arch=$LOGS/event-arch-linux.bin sha1=$LOGS/event-uefi-sha1-log.bin
	# Windows' boot manager: EV_NO_ACTION events on PCR 0xFFFFFFFF, in both formats.
	quirk "$arch" win.bin no-action=4294967295 no-action=4294967295:12
	quirk "$sha1" win1.bin no-action=4294967295
	run "$KEYSTRAP" eventlog --json win.bin
	jq -e '[.events[] | select(.pcr == 4294967295) | .type] == ["EV_NO_ACTION", "EV_NO_ACTION"]' <<<"$output"
	# A log area of fixed size: zero padding after the last event.
	quirk "$arch" pad.bin pad=4096
	quirk "$sha1" pad1.bin pad=100
	# An algorithm keystrap has no bank for (SHA3-256), declared with its digest size.
	quirk "$LOGS/event-sd-boot-fedora37.bin" sha3.bin alg=0x27:32
	run "$KEYSTRAP" eventlog --json sha3.bin
	jq -e '.banks == ["sha256"] and (.events[0].description | endswith("; not replayed: 0x0027"))' <<<"$output"
	# All of them at once.
	quirk "$arch" all.bin alg=0x27:48 no-action=4294967295:3 pad=17

	# Twins: an extending event on PCR 0xFFFFFFFF, a non-zero byte in the padding, a digest of
	# an algorithm the Spec ID event does not declare.
	cp win.bin bad.bin
	retype bad.bin 1 $((0x80000007))
	run "$KEYSTRAP" eventlog bad.bin
	[ "$status" -eq 1 ]
	[ "$output" = "keystrap: bad.bin: offset $(jq '.events[1].offset' <<<"$("$KEYSTRAP" eventlog --json win.bin)"): event 1: PCR index 4294967295 is out of range (0-23)" ]
	cp win1.bin bad1.bin
	retype bad1.bin 1 5
	run "$KEYSTRAP" eventlog bad1.bin
	[ "$status" -eq 1 ]
	[[ "$output" == *": event 1: PCR index 4294967295 is out of range (0-23)" ]]
	cp pad.bin badpad.bin
	printf '\001' >>badpad.bin
	run "$KEYSTRAP" eventlog badpad.bin
	[ "$status" -eq 1 ]
	[ "$output" = "keystrap: badpad.bin: offset $(stat -c %s "$arch"): event 25: event has no digests" ]
	perl "$EDIT" "$arch" undeclared.bin alg=0x27:32
	# The Spec ID event declares 0x0027 as 0x0099 instead: the events' 0x0027 digests are now unknown.
	spec_alg=$(($(od -An -tu4 -j56 -N4 undeclared.bin) * 4 + 32 + 28 - 4))
	printf '\x99' | dd of=undeclared.bin bs=1 seek="$spec_alg" conv=notrunc status=none
	run "$KEYSTRAP" eventlog undeclared.bin
	[ "$status" -eq 1 ]
	[[ "$output" == *": event 1: digest 0: algorithm 0x0027 is not one the Spec ID event declares" ]]
}

@test "a separator logged twice extends twice, as tpm2_eventlog replays it" {
	perl "$EDIT" "$LOGS/event-arch-linux.bin" dup.bin dup=10
	run "$KEYSTRAP" eventlog dup.bin
	[ "$status" -eq 0 ]
	[ "$(keystrap_pcrs "$output")" = "$(oracle_pcrs dup.bin)" ]
	[ "$(keystrap_pcrs "$output")" != "$(oracle_pcrs "$LOGS/event-arch-linux.bin")" ]
}

@test "malformed logs are refused with the byte offset and the reason, one line, exit 1" {
	# The event after the Spec ID event claims 4 GiB of data.
	cp "$LOGS/event-arch-linux.bin" "$BATS_TEST_TMPDIR/big.bin"
	spec=$((32 + $(od -An -tu4 -j28 -N4 "$LOGS/event-arch-linux.bin")))
	size_at=$((spec + 12 + 2 + 20 + 2 + 32))
	printf '\377\377\377\377' | dd of="$BATS_TEST_TMPDIR/big.bin" bs=1 seek="$size_at" conv=notrunc status=none
	run "$KEYSTRAP" eventlog "$BATS_TEST_TMPDIR/big.bin"
	[ "$status" -eq 1 ]
	[ "$output" = "keystrap: $BATS_TEST_TMPDIR/big.bin: offset $spec: event 1: event size 4294967295 runs past end of log (15579 bytes)" ]
	# Crypto-agile events whose Spec ID event is gone.
	tail -c +$((spec + 1)) "$LOGS/event-arch-linux.bin" >"$BATS_TEST_TMPDIR/nospec.bin"
	run "$KEYSTRAP" eventlog "$BATS_TEST_TMPDIR/nospec.bin"
	[ "$status" -eq 1 ]
	[[ "$output" == *"offset 0: event 0: crypto-agile events without the Spec ID Event03 event"* ]]
	# An empty log.
	: >"$BATS_TEST_TMPDIR/empty.bin"
	run "$KEYSTRAP" eventlog "$BATS_TEST_TMPDIR/empty.bin"
	[ "$status" -eq 1 ]
	[[ "$output" == *"offset 0: event 0: the log is empty" ]]
}

@test "usage errors exit 2; a missing log names the file" {
	run "$KEYSTRAP" eventlog --frobnicate
	[ "$status" -eq 2 ]
	run "$KEYSTRAP" eventlog a b
	[ "$status" -eq 2 ]
	[[ "$output" == *"unexpected argument 'b'"* ]]
	run "$KEYSTRAP" eventlog "$BATS_TEST_TMPDIR/nope.bin"
	[ "$status" -eq 1 ]
	[ "$output" = "keystrap: cannot read event log '$BATS_TEST_TMPDIR/nope.bin': No such file or directory" ]
	run "$KEYSTRAP" eventlog --help
	[ "$status" -eq 0 ]
	[[ "$output" == "Usage: keystrap eventlog"* ]]
}


@test "--verify passes when the TPM holds what the log replays to, and names the PCR that moved" {
	replay_firmware "$LOGS/event-arch-linux.bin"
	run "$KEYSTRAP" eventlog --verify "$LOGS/event-arch-linux.bin"
	[ "$status" -eq 0 ]
	[[ "$output" == *"the log replays to the TPM's PCRs 0,1,2,3,4,5,6,7,8 (sha1, sha256)"* ]]
	[[ "$output" == *$'sha256:\n  0  : ok 0x758b773d94feabf52ef5a4c00a7ad2c80d8d6e6d9d58756150be9bc973da9087'* ]]

	# Negative twin: one extension the log does not record.
	tpm2_pcrextend 4:sha256=0000000000000000000000000000000000000000000000000000000000000001
	run "$KEYSTRAP" eventlog --verify "$LOGS/event-arch-linux.bin"
	[ "$status" -eq 1 ]
	[[ "$output" == *"  4  : MISMATCH: log replays to 0x7672cbacaf6568fd1767a29cce541602ad91360dbd753a16b0d64021e619d65d, TPM has 0x"* ]]
	[ "${lines[-1]}" = "keystrap: the log does not replay to the TPM's PCRs: PCR 4 (sha256)" ]
	swtpm_reboot
}

@test "--verify: a log with Windows' EV_NO_ACTION events, an undeclared bank and padding matches the TPM" {
	perl "$EDIT" "$LOGS/event-arch-linux.bin" all.bin alg=0x27:48 no-action=4294967295:3 pad=17
	replay_firmware "$LOGS/event-arch-linux.bin"
	run "$KEYSTRAP" eventlog --verify all.bin
	[ "$status" -eq 0 ]
	[[ "${lines[-1]}" == "the log replays to the TPM's PCRs 0,1,2,3,4,5,6,7,8 (sha1, sha256)" ]]
	# Negative twin: the same log once the TPM holds one extension more.
	tpm2_pcrextend 0:sha1=0000000000000000000000000000000000000001
	run "$KEYSTRAP" eventlog --verify all.bin
	[ "$status" -eq 1 ]
	[ "${lines[-1]}" = "keystrap: the log does not replay to the TPM's PCRs: PCR 0 (sha1)" ]
	swtpm_reboot
}

@test "--verify checks only the banks the TPM has, and refuses a log that shares none" {
	# A second swtpm with the sha256 bank only, for this test (teardown stops it).
	SECOND_TPM=1 SWTPM_PCR_BANKS=sha256 swtpm_start "$BATS_TEST_TMPDIR/tpm256"
	SECOND_TPM=1
	replay_firmware "$LOGS/event-arch-linux.bin"
	run "$KEYSTRAP" eventlog --verify "$LOGS/event-arch-linux.bin"
	[ "$status" -eq 0 ]
	[[ "$output" == *"not active on the TPM, not checked: sha1"* ]]
	[[ "${lines[-1]}" == "the log replays to the TPM's PCRs 0,1,2,3,4,5,6,7,8 (sha256)" ]]
	run "$KEYSTRAP" eventlog --verify "$LOGS/event-uefi-sha1-log.bin"
	[ "$status" -eq 1 ]
	[ "${lines[-1]}" = "keystrap: the TPM has none of the banks the log records (sha1)" ]
}

@test "--verify refuses a log for another machine, naming every PCR that differs" {
	run "$KEYSTRAP" eventlog --verify "$LOGS/event-uefi-sha1-log.bin"
	[ "$status" -eq 1 ]
	[ "${lines[-1]}" = "keystrap: the log does not replay to the TPM's PCRs: PCR 0 (sha1), 1 (sha1), 2 (sha1), 3 (sha1), 4 (sha1), 5 (sha1), 6 (sha1), 7 (sha1)" ]
	[[ "$output" == *"  0  : MISMATCH: log replays to 0x3dcaea25dc86554d94b94aa5bc8f735a49212af8, TPM has 0x0000000000000000000000000000000000000000"* ]]
	[[ "$output" != *sha256* ]]
}
