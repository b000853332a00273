#!/usr/bin/env bats
# keystrap predict (issue 13 item 4): the PCRs the next boot measures, found by digest in the
# real firmware logs of tests/data/eventlogs. The oracle is tpm2_eventlog on the log the next
# boot would write (tests/lib/eventlog-edit.pl swap= puts the new digests where the old ones
# were), with the new digests computed independently: sha256sum, osslsigncode for
# Authenticode, python3 for GRUB's and systemd-boot's command-line measurements; and a real
# swtpm extended with that log; keystrap-server's policy parser takes the --json fragment.
# Every positive case has its negative twin.

load ../lib/swtpm
load ../lib/firmware
load ../lib/server

LOGS=$BATS_TEST_DIRNAME/../data/eventlogs
EDIT=$BATS_TEST_DIRNAME/../lib/eventlog-edit.pl
PE_MAKE=$BATS_TEST_DIRNAME/../lib/pe-make.py
SEP=df3f619804a92fdb4057192dc43dd748ea778adc52bc498ce80524c014b81119 # sha256 of the separator
NEW=$(printf 'predict test' | sha256sum | cut -c1-64)

setup_file() {
	export SWTPM_PCR_BANKS=sha256
	swtpm_start
}

teardown_file() {
	swtpm_stop
}

setup() {
	cd "$BATS_TEST_TMPDIR"
}

# "bank pcr hex" for every PCR keystrap predict --json gives a value (tpm2_eventlog's form).
predicted() {
	jq -r '.pcrs | to_entries[] | .key as $b | .value | to_entries[] | select(.value) | "\($b) \(.key) \(.value)"' <<<"$1"
}

# "bank pcr" for every PCR keystrap predict --json says it cannot know.
unknown() {
	jq -r '.pcrs | to_entries[] | .key as $b | .value | to_entries[] | select(.value == null) | "\($b) \(.key)"' <<<"$1"
}

# A PCR of the swtpm in bank sha256, in lower-case hex.
tpm_pcr() {
	tpm2_pcrread "sha256:$1" | sed -n 's/.*0x//p' | tr A-F a-f
}

# "pcr alg digest" for every digest of every extending event, as tpm2_eventlog reads the log
# (each event starts with its PCRIndex, in the legacy SHA-1 format too).
oracle_digests() {
	tpm2_eventlog "$1" 2>/dev/null | awk '
		/^  PCRIndex:/ { pcr = $2; type = "" }
		/^  EventType:/ { type = $2 }
		/^  - AlgorithmId:/ { alg = $3 }
		/^    Digest:/ { d = $2; gsub(/"/, "", d); if (type != "EV_NO_ACTION") print pcr, alg, d }'
}

# The full digest of event N (from 0) in bank ALG of LOG, as tpm2_eventlog reads it.
event_digest() {
	tpm2_eventlog "$1" 2>/dev/null | awk -v n="$2" -v alg="$3" '
		BEGIN { e = -1 }
		/^  PCRIndex:/ { e++ }
		/^  - AlgorithmId:/ { a = $3 }
		/^    Digest:/ && e == n && a == alg { d = $2; gsub(/"/, "", d); print d; exit }'
}

# Authenticode sha256 of a PE image by osslsigncode: sign a copy, read the digest it computes.
authenticode() {
	[ -e key.pem ] || openssl req -x509 -newkey rsa:2048 -nodes -keyout key.pem -out cert.pem \
		-subj /CN=predict -days 1 2>/dev/null
	osslsigncode sign -h sha256 -certs cert.pem -key key.pem -in "$1" -out "$1.signed" >/dev/null
	osslsigncode verify -in "$1.signed" 2>/dev/null | awk '/^Calculated message digest/ { print tolower($5) }'
}

# The sorted PCRs keystrap says change in bank, as "4 9".
changed() {
	jq -r --arg b "$2" '.changed[$b] | map(tostring) | join(" ")' <<<"$1"
}

# kernel_logs: old.efi and new.efi (PE images), this.bin (the shim+GRUB log as if this boot had
# measured old.efi: its Authenticode digest at PCR 4's events 90 and 91, its plain digest at
# GRUB's PCR 9 event 89) and next.bin (the same with new.efi's digests): the oracle's next boot.
kernel_logs() {
	local f=$LOGS/event-moklisttrusted.bin
	python3 "$PE_MAKE" old.efi old && python3 "$PE_MAKE" new.efi new || return 1
	old_a=$(authenticode old.efi) new_a=$(authenticode new.efi)
	old_p=$(sha256sum <old.efi | cut -c1-64) new_p=$(sha256sum <new.efi | cut -c1-64)
	[ ${#old_a} -eq 64 ] && [ ${#new_a} -eq 64 ] && [ "$old_a" != "$old_p" ] || return 1
	perl "$EDIT" "$f" this.bin "swap=$(event_digest "$f" 90 sha256):$old_a" "swap=$(event_digest "$f" 89 sha256):$old_p" &&
		perl "$EDIT" this.bin next.bin "swap=$old_a:$new_a" "swap=$old_p:$new_p"
}

@test "with nothing replaced the prediction is the log's own replay, for every sample log" {
	for f in "$LOGS"/*.bin; do
		run "$KEYSTRAP" predict --event-log "$f" --json
		[ "$status" -eq 0 ] || { echo "$f: $output" >&2; return 1; }
		[ "$(predicted "$output")" = "$(oracle_pcrs "$f")" ] || { echo "$f differs from tpm2_eventlog" >&2; return 1; }
		[ "$(jq -c '[.changed[]] | add' <<<"$output")" = "[]" ]
	done
}

@test "a digest in the log replaced by another: exactly its events' PCRs change, as tpm2_eventlog replays the swapped log" {
	# The last kernel or EFI application each log measured, and the separator (PCRs 0-7).
	for spec in event-arch-linux.bin:23 event-bootorder.bin:26 event-moklisttrusted.bin:91 \
		event-sd-boot-fedora37.bin:25 event-postcode.bin:3 event-arch-linux.bin:sep event-bootorder.bin:sep; do
		f=$LOGS/${spec%%:*} n=${spec##*:}
		old=$SEP
		[ "$n" = sep ] || old=$(event_digest "$f" "$n" sha256)
		[ ${#old} -eq 64 ]
		want_pcrs=$(oracle_digests "$f" | awk -v d="$old" '$3 == d { print $1 }' | sort -nu | xargs)
		[ -n "$want_pcrs" ]
		perl "$EDIT" "$f" next.bin "swap=$old:$NEW"
		run "$KEYSTRAP" predict --event-log "$f" --replace "$old=$NEW" --json
		[ "$status" -eq 0 ]
		[ "$(changed "$output" sha256)" = "$want_pcrs" ] || { echo "$spec: $(changed "$output" sha256) != $want_pcrs" >&2; return 1; }
		# sha256 as the next boot's log replays; the sha1 bank of a changed PCR cannot be
		# known from a sha256 digest and says so; every other PCR is what the log has now.
		want=$(oracle_pcrs next.bin | awk -v p=" $want_pcrs " '$1 == "sha256" || index(p, " " $2 " ") == 0')
		[ "$(predicted "$output")" = "$want" ] || { echo "$spec: prediction differs from the swapped log" >&2; return 1; }
		if jq -e '.pcrs.sha1' <<<"$output" >/dev/null; then
			[ "$(unknown "$output" | grep '^sha1 ' | cut -d' ' -f2 | xargs)" = "$want_pcrs" ]
		fi
		# The twin: the prediction is not just the old replay.
		[ "$(predicted "$output")" != "$(oracle_pcrs "$f")" ]
	done
	# A sha1-only log, replaced by a sha1 digest.
	f=$LOGS/event-uefi-sha1-log.bin old=$(event_digest "$f" 15 sha1) new=$(printf x | sha1sum | cut -c1-40)
	perl "$EDIT" "$f" next.bin "swap=$old:$new"
	run "$KEYSTRAP" predict --event-log "$f" --replace "$old=$new" --json
	[ "$status" -eq 0 ]
	[ "$(predicted "$output")" = "$(oracle_pcrs next.bin)" ]
	[ "$(changed "$output" sha1)" = 4 ]
}

@test "a kernel file replaced by another: its Authenticode digest in PCR 4 and GRUB's file digest in PCR 9 both follow" {
	kernel_logs
	python3 "$PE_MAKE" other.efi other
	run "$KEYSTRAP" predict --event-log this.bin --replace old.efi=new.efi --json
	[ "$status" -eq 0 ]
	[ "$(predicted "$output")" = "$(oracle_pcrs next.bin)" ]
	[ "$(changed "$output" sha256)" = "4 9" ]
	[ "$(jq -c '.replaced' <<<"$output")" = '[{"old":"old.efi","new":"new.efi","events":3,"pcrs":[4,9]}]' ]
	prediction=$output
	# OLD as the digests the log has, NEW as the file: the event's type says which digest of
	# it the firmware (PE image load: Authenticode) or GRUB (a file it read: plain) takes.
	run "$KEYSTRAP" predict --event-log this.bin --replace "$old_a=new.efi" --replace "$old_p=new.efi" --json
	[ "$status" -eq 0 ]
	[ "$(predicted "$output")" = "$(oracle_pcrs next.bin)" ]

	# The next boot in a TPM: extended with the log it writes, it holds what was predicted.
	replay_firmware next.bin
	for i in 0 1 2 3 4 5 6 7 8 9 14; do
		[ "$(tpm_pcr "$i")" = "$(jq -r --arg i "$i" '.pcrs.sha256[$i]' <<<"$prediction")" ] ||
			{ echo "PCR $i differs from the TPM" >&2; return 1; }
	done
	swtpm_reboot

	# Twins: another new image predicts other values; the text form marks what changes.
	run "$KEYSTRAP" predict --event-log this.bin --replace old.efi=other.efi --json
	[ "$status" -eq 0 ]
	[ "$(predicted "$output")" != "$(oracle_pcrs next.bin)" ]
	run "$KEYSTRAP" predict --event-log this.bin --replace old.efi=new.efi
	[ "$status" -eq 0 ]
	[[ "$output" == *"# 'old.efi' (sha256 $old_p, Authenticode $old_a) replaced by 'new.efi': 3 events (the first: event 89), PCR 4,9"* ]]
	[[ "$output" == *"  4  : 0x$(jq -r '.pcrs.sha256["4"]' <<<"$prediction")  (changes)"* ]]
	[[ "$output" == *"  7  : 0x$(jq -r '.pcrs.sha256["7"]' <<<"$prediction")"$'\n'* ]]
	! grep -q '^  7  : .*(changes)' <<<"$output" || false
	[ "${lines[-1]}" = "PCRs that change: 4,9" ]
}

@test "an initrd file replaced: the kernel's PCR 9 initrd event takes its plain digest" {
	head -c 4096 /dev/urandom >initrd-old && head -c 5000 /dev/urandom >initrd-new
	f=$LOGS/event-sd-boot-fedora37.bin
	perl "$EDIT" "$f" this.bin "swap=$(event_digest "$f" 25 sha256):$(sha256sum <initrd-old | cut -c1-64)"
	perl "$EDIT" this.bin next.bin "swap=$(sha256sum <initrd-old | cut -c1-64):$(sha256sum <initrd-new | cut -c1-64)"
	run "$KEYSTRAP" predict --event-log this.bin --replace initrd-old=initrd-new --json
	[ "$status" -eq 0 ]
	[ "$(predicted "$output")" = "$(oracle_pcrs next.bin)" ]
	[ "$(changed "$output" sha256)" = 9 ]
	# A PE image can stand in where a plain digest was measured; not the other way round.
	python3 "$PE_MAKE" new.efi new
	run "$KEYSTRAP" predict --event-log this.bin --replace initrd-old=new.efi --json
	[ "$status" -eq 0 ]
	[ "$(jq -r '.pcrs.sha256["9"]' <<<"$output")" != "$(oracle_pcrs next.bin | awk '$2 == 9 { print $3 }')" ]
	python3 "$PE_MAKE" old.efi old
	perl "$EDIT" "$f" pe.bin "swap=$(event_digest "$f" 25 sha256):$(authenticode old.efi)"
	run "$KEYSTRAP" predict --event-log pe.bin --replace old.efi=initrd-new
	[ "$status" -eq 1 ]
	[ "$output" = "keystrap: 'initrd-new' is not a PE image, but 'old.efi' was measured as one (event 25, PCR 9)" ]
}

@test "replacing a digest or a file with itself predicts the current values" {
	for f in "$LOGS"/event-arch-linux.bin "$LOGS"/event-moklisttrusted.bin "$LOGS"/event-uefi-sha1-log.bin; do
		d=$(oracle_digests "$f" | awk 'NR == 3 { print $3 }')
		run "$KEYSTRAP" predict --event-log "$f" --replace "$d=$d" --json
		[ "$status" -eq 0 ]
		[ "$(predicted "$output")" = "$(oracle_pcrs "$f")" ]
		[ "$(jq -c '[.changed[]] | add' <<<"$output")" = "[]" ]
		[ "$(jq -r '.replaced[0].events' <<<"$output")" -ge 1 ]
	done
	python3 "$PE_MAKE" old.efi old
	f=$LOGS/event-moklisttrusted.bin
	perl "$EDIT" "$f" this.bin "swap=$(event_digest "$f" 90 sha256):$(authenticode old.efi)"
	run "$KEYSTRAP" predict --event-log this.bin --replace old.efi=old.efi
	[ "$status" -eq 0 ]
	[ "${lines[-1]}" = "PCRs that change: none" ]
}

@test "--cmdline: GRUB's kernel_cmdline and linux command events measure the new command line" {
	for log in event-bootorder.bin event-moklisttrusted.bin event-postcode.bin; do
		f=$LOGS/$log
		# What GRUB measured (tpm2_eventlog's reading of the event data), and the oracle's
		# digests of the old and the new text in each bank.
		old=$(tpm2_eventlog "$f" 2>/dev/null | sed -n 's/^ *"kernel_cmdline: \(.*\)\\0"$/\1/p')
		path=${old%% *}
		[ -n "$old" ] && [ "$path" != "$old" ]
		for cmdline in "BOOT_IMAGE=/vmlinuz-next root=/dev/vda1 ro quiet" "root=/dev/vda1 ro"; do
			if [[ "$cmdline" == BOOT_IMAGE=* ]]; then new=${cmdline#BOOT_IMAGE=}; else new="$path $cmdline"; fi
			edits=$(python3 -c '
import hashlib, sys
old, new = sys.argv[1], sys.argv[2]
for alg in sys.argv[3:]:
    for pre in ("", "linux "):
        print("swap=%s:%s" % (hashlib.new(alg, (pre + old).encode()).hexdigest(), hashlib.new(alg, (pre + new).encode()).hexdigest()))
' "$old" "$new" $(oracle_digests "$f" | awk '{ print $2 }' | sort -u))
			# The oracle's digest of what GRUB measured is the one in the log, for both events.
			[ "$(for e in $edits; do o=${e#swap=}; oracle_digests "$f" | grep -c " ${o%%:*}$"; done | sort -u)" = 1 ]
			# shellcheck disable=SC2086 # one edit a word
			perl "$EDIT" "$f" next.bin $edits
			run "$KEYSTRAP" predict --event-log "$f" --cmdline "$cmdline" --json
			[ "$status" -eq 0 ]
			[ "$(predicted "$output")" = "$(oracle_pcrs next.bin)" ] || { echo "$log '$cmdline'" >&2; return 1; }
			[ "$(changed "$output" sha256)" = 8 ]
			[ "$(jq -c '.cmdline | [.events, .pcrs, .forms]' <<<"$output")" = '[2,[8],["GRUB kernel_cmdline","GRUB linux command"]]' ]
		done
		# The twin: the same command line predicts the current PCR 8.
		run "$KEYSTRAP" predict --event-log "$f" --cmdline "BOOT_IMAGE=$old" --json
		[ "$status" -eq 0 ]
		[ "$(predicted "$output")" = "$(oracle_pcrs "$f")" ]
	done
}

@test "--cmdline: systemd-boot's (PCR 8) and systemd-stub's (PCR 12) UTF-16 load options" {
	for spec in "event-arch-linux.bin:8:initrd=\\intel-ucode.img initrd=\\initramfs-linux-lts.img cryptdevice=UUID=5465369a-996d-42ca-9ad4-91d0082e0b34:cryptroot root=/dev/mapper/cryptroot rw intel_iommu=on iommu=pt l1tf=off" \
		"event-sd-boot-fedora37.bin:12: console=ttyS0 console=tty0 efi=debug "; do
		log=${spec%%:*} rest=${spec#*:} pcr=${rest%%:*} old=${rest#*:}
		f=$LOGS/$log
		for cmdline in "root=/dev/vda1 quiet" "caf$(printf '\xc3\xa9') key=$(printf '\xf0\x9f\x94\x91')" "$old"; do
			edits=$(python3 -c '
import hashlib, sys
old, new = sys.argv[1], sys.argv[2]
for alg in sys.argv[3:]:
    m = lambda s: hashlib.new(alg, s.encode("utf-16-le") + b"\0\0").hexdigest()
    print("swap=%s:%s" % (m(old), m(new)))
' "$old" "$cmdline" $(oracle_digests "$f" | awk '{ print $2 }' | sort -u))
			# The oracle's digest of the old text is the one in the log.
			oracle_digests "$f" | grep -q " $(sed -n '1s/^swap=\([0-9a-f]*\):.*/\1/p' <<<"$edits")$"
			# shellcheck disable=SC2086 # one edit a word
			perl "$EDIT" "$f" next.bin $edits
			run "$KEYSTRAP" predict --event-log "$f" --cmdline "$cmdline" --json
			[ "$status" -eq 0 ]
			[ "$(predicted "$output")" = "$(oracle_pcrs next.bin)" ] || { echo "$log '$cmdline'" >&2; return 1; }
			if [ "$cmdline" = "$old" ]; then want=""; else want=$pcr; fi
			[ "$(changed "$output" sha256)" = "$want" ]
			[ "$(jq -r '.cmdline.forms[0]' <<<"$output")" = "UTF-16 load options (systemd-boot, systemd-stub)" ]
		done
	done
	run "$KEYSTRAP" predict --event-log "$LOGS/event-sd-boot-fedora37.bin" --cmdline "$(printf 'a\xffb')"
	[ "$status" -eq 1 ]
	[ "$output" = "keystrap: the command line is not valid UTF-8" ]
}

# stub_log CMDLINE FORM OUT: event-uefiaction.bin (sha1, sha256, sha384, sha512) with the Linux EFI stub's
# LoadOptions event (PCR 9, tagged 0x8F3B22ED, "LOADED_IMAGE::LoadOptions") appended, its
# digests python3's hashes of CMDLINE encoded as FORM: utf-16-le or utf-8, +nul with its NUL.
stub_log() {
	local hex
	hex=$(python3 -c '
import sys
s, form = sys.argv[1], sys.argv[2]
enc, _, nul = form.partition("+")
print((s.encode(enc) + ("\0".encode(enc) if nul else b"")).hex())' "$1" "$2") || return 1
	perl "$EDIT" "$LOGS/event-uefiaction.bin" "$3" "tag-of=9:8f3b22ed:$hex:LOADED_IMAGE::LoadOptions"
}

STUB_FORM="Linux EFI stub load options"

@test "--cmdline: the Linux EFI stub's LoadOptions event is recomputed in the form this boot's command line reproduces" {
	# OVMF direct boot: the load options are UTF-16 with their NUL, and QEMU's initrd=initrd
	# is in them and in /proc/cmdline; the kernel's /proc/cmdline ends in a newline.
	cur="console=ttyS0 root=/dev/vda1 initrd=initrd"
	new="console=ttyS0 root=/dev/vda2 caf$(printf '\xc3\xa9') key=$(printf '\xf0\x9f\x94\x91') initrd=initrd"
	printf '%s\n' "$cur" >cmdline
	stub_log "$cur" utf-16-le+nul this.bin
	stub_log "$new" utf-16-le+nul next.bin
	[ "$(oracle_pcrs next.bin | awk '$2 == 9 { print $1 }' | xargs)" = "sha1 sha256 sha384 sha512" ]
	run "$KEYSTRAP" predict --event-log this.bin --cmdline "$new" --current-cmdline cmdline --json
	[ "$status" -eq 0 ]
	[ "$(predicted "$output")" = "$(oracle_pcrs next.bin)" ]
	[ "$(changed "$output" sha256) $(changed "$output" sha1)" = "9 9" ]
	[ "$(jq -c '.cmdline | [.events, .pcrs, .forms, .unsupported_event]' <<<"$output")" = \
		'[1,[9],["'"$STUB_FORM"' (UTF-16 with NUL, matched against the current command line)"],null]' ]
	run "$KEYSTRAP" predict --event-log this.bin --cmdline "$new" --current-cmdline cmdline
	[ "$status" -eq 0 ]
	[ "${lines[1]}" = "# command line: 1 event ($STUB_FORM (UTF-16 with NUL, matched against the current command line)), PCR 9" ]
	# The twin: the current command line again predicts the current PCRs.
	run "$KEYSTRAP" predict --event-log this.bin --cmdline "$cur" --current-cmdline cmdline --json
	[ "$status" -eq 0 ]
	[ "$(predicted "$output")" = "$(oracle_pcrs this.bin)" ]
	[ "$(predicted "$output")" != "$(oracle_pcrs next.bin)" ]

	# The other forms the stub could have hashed, each found by the digest alone (the file
	# without its newline this time).
	printf '%s' "$cur" >cmdline
	for form in utf-16-le:"UTF-16 without NUL" utf-8+nul:"UTF-8 with NUL" utf-8:"UTF-8 without NUL"; do
		stub_log "$cur" "${form%%:*}" this.bin
		stub_log "$new" "${form%%:*}" next.bin
		run "$KEYSTRAP" predict --event-log this.bin --cmdline "$new" --current-cmdline cmdline --json
		[ "$status" -eq 0 ] || { echo "$form: $output" >&2; return 1; }
		[ "$(predicted "$output")" = "$(oracle_pcrs next.bin)" ] || { echo "$form differs" >&2; return 1; }
		[ "$(jq -r '.cmdline.forms[0]' <<<"$output")" = "$STUB_FORM (${form#*:}, matched against the current command line)" ]
	done
}

@test "--cmdline: a current command line that does not reproduce the EFI stub's digest, or in two forms: said, PCR 9 unknown, exit 1" {
	cur="console=ttyS0 root=/dev/vda1 initrd=initrd"
	stub_log "$cur" utf-16-le+nul this.bin
	# Not this boot's text: a CONFIG_CMDLINE or bootconfig the kernel added is not in the
	# load options; here the initrd=initrd the stub hashed is missing.
	printf '%s\n' "console=ttyS0 root=/dev/vda1" >cmdline
	run "$KEYSTRAP" predict --event-log this.bin --cmdline "root=/dev/vda2" --current-cmdline cmdline --json
	[ "$status" -eq 1 ]
	[ "${lines[-1]}" = "keystrap: event 2 (PCR 9) measured the command line as the Linux EFI stub's LoadOptions, which keystrap cannot recompute: the current command line (cmdline) reproduces its digest in no form keystrap knows; PCR 9 is unknown (give its digest with --replace OLD=NEW)" ]
	run "$KEYSTRAP" predict --event-log this.bin --cmdline "root=/dev/vda2" --current-cmdline cmdline --json --allow-unmatched
	[ "$status" -eq 0 ]
	[ "$(unknown "${output%%keystrap:*}" | awk '$2 == 9' | xargs)" = "sha1 9 sha256 9 sha384 9 sha512 9" ]
	[ "$(jq -c '.cmdline | [.events, .forms, .unsupported_event]' <<<"${output%%keystrap:*}")" = '[0,[],2]' ]
	# An empty command line is the same bytes in UTF-16 and UTF-8 without a NUL: which one
	# the next boot uses is not known.
	: >cmdline
	stub_log "" utf-8 empty.bin
	run "$KEYSTRAP" predict --event-log empty.bin --cmdline "root=/dev/vda2" --current-cmdline cmdline
	[ "$status" -eq 1 ]
	[ "${lines[-1]}" = "keystrap: event 2 (PCR 9) measured the command line as the Linux EFI stub's LoadOptions, which keystrap cannot recompute: the current command line (cmdline) reproduces its digest in more than one form; PCR 9 is unknown (give its digest with --replace OLD=NEW)" ]
	# With its NUL the two encodings differ again: predicted.
	stub_log "" utf-8+nul empty.bin
	run "$KEYSTRAP" predict --event-log empty.bin --cmdline "root=/dev/vda2" --current-cmdline cmdline
	[ "$status" -eq 0 ]
}

@test "--current-cmdline: unreadable or no text, one line naming it, exit 1; without --cmdline, exit 2" {
	stub_log "quiet" utf-16-le+nul this.bin
	run "$KEYSTRAP" predict --event-log this.bin --cmdline quiet --current-cmdline /nonexistent/cmdline
	[ "$status" -eq 1 ]
	[ "$output" = "keystrap: cannot read the current command line '/nonexistent/cmdline': No such file or directory" ]
	printf 'quiet\0x' >cmdline
	run "$KEYSTRAP" predict --event-log this.bin --cmdline quiet --current-cmdline cmdline
	[ "$status" -eq 1 ]
	[ "$output" = "keystrap: 'cmdline' is no command line: it holds a NUL byte" ]
	run "$KEYSTRAP" predict --event-log this.bin --current-cmdline cmdline
	[ "$status" -eq 2 ]
	[ "${lines[0]}" = "keystrap: --current-cmdline without --cmdline" ]
	# The twin: a readable command line that reproduces the digest.
	printf 'quiet\n' >cmdline
	run "$KEYSTRAP" predict --event-log this.bin --cmdline quiet --current-cmdline cmdline
	[ "$status" -eq 0 ]
	[ "${lines[-1]}" = "PCRs that change: none" ]
}

@test "--cmdline measured in a form keystrap cannot recompute, or not at all: said, the PCR unknown, exit 1" {
	# The Linux EFI stub's tagged LoadOptions event (OVMF direct boot) does not say what it
	# hashed, and this machine's /proc/cmdline is not what this one did (its own text).
	perl "$EDIT" "$LOGS/event-moklisttrusted.bin" stub.bin "tag=9:8f3b22ed:LOADED_IMAGE::LoadOptions"
	run "$KEYSTRAP" predict --event-log stub.bin --cmdline "root=/dev/vda1" --json
	[ "$status" -eq 1 ]
	[ "${lines[-1]}" = "keystrap: event 97 (PCR 9) measured the command line as the Linux EFI stub's LoadOptions, which keystrap cannot recompute: the current command line (/proc/cmdline) reproduces its digest in no form keystrap knows; PCR 9 is unknown (give its digest with --replace OLD=NEW)" ]
	run "$KEYSTRAP" predict --event-log stub.bin --cmdline "root=/dev/vda1" --json --allow-unmatched
	[ "$status" -eq 0 ]
	[ "$(jq -r '.pcrs.sha256["9"], .cmdline.unsupported_event, (.policy.reference_pcrs | has("9"))' <<<"${output%%keystrap:*}")" = $'null\n97\nfalse' ]
	[ "$(jq -c '.changed.sha256' <<<"${output%%keystrap:*}")" = "[8,9]" ]
	# Its twin: without --cmdline that event is replayed as it is.
	run "$KEYSTRAP" predict --event-log stub.bin --json
	[ "$status" -eq 0 ]
	[ "$(predicted "$output")" = "$(oracle_pcrs stub.bin)" ]

	run "$KEYSTRAP" predict --event-log "$LOGS/event-uefi-sha1-log.bin" --cmdline "quiet"
	[ "$status" -eq 1 ]
	[ "${lines[-1]}" = "keystrap: no event in the log measured the kernel command line in a form keystrap knows (systemd-boot, systemd-stub, GRUB): --cmdline not applied" ]
	run "$KEYSTRAP" predict --event-log "$LOGS/event-uefi-sha1-log.bin" --cmdline "quiet" --allow-unmatched
	[ "$status" -eq 0 ]
	[ "${lines[-2]}" = "PCRs that change: none" ]
}

@test "an OLD that matches no event is named with its digests, exit 1 unless --allow-unmatched" {
	f=$LOGS/event-arch-linux.bin
	run "$KEYSTRAP" predict --event-log "$f" --replace "$NEW=$SEP"
	[ "$status" -eq 1 ]
	[ "${lines[-1]}" = "keystrap: '$NEW' (sha256 $NEW) matched no event in the log: not replaced" ]
	run "$KEYSTRAP" predict --event-log "$f" --replace "$NEW=$SEP" --replace "$SEP=$SEP" --allow-unmatched --json
	[ "$status" -eq 0 ]
	[ "$(predicted "${output%%keystrap:*}")" = "$(oracle_pcrs "$f")" ]
	[ "$(jq -c '[.replaced[].events]' <<<"${output%%keystrap:*}")" = "[0,8]" ]
	python3 "$PE_MAKE" a.efi a
	run "$KEYSTRAP" predict --event-log "$f" --replace a.efi=a.efi
	[ "$status" -eq 1 ]
	[ "${lines[-1]}" = "keystrap: 'a.efi' (sha256 $(sha256sum <a.efi | cut -c1-64), Authenticode $(authenticode a.efi)) matched no event in the log: not replaced" ]
	# A sha1 digest in a log with both banks matches by its sha1 digest.
	old=$(event_digest "$f" 23 sha1)
	run "$KEYSTRAP" predict --event-log "$f" --replace "$old=$(printf x | sha1sum | cut -c1-40)" --json
	[ "$status" -eq 0 ]
	[ "$(changed "$output" sha1)" = 4 ]
	[ "$(jq -r '.pcrs.sha256["4"]' <<<"$output")" = null ]
}

@test "bad input: one line naming the value, exit 1; a malformed command line, exit 2" {
	f=$LOGS/event-arch-linux.bin
	run "$KEYSTRAP" predict --event-log "$f" --replace "/nonexistent/vmlinuz=$NEW"
	[ "$status" -eq 1 ]
	[ "$output" = "keystrap: cannot read '/nonexistent/vmlinuz': No such file or directory" ]
	run "$KEYSTRAP" predict --event-log "$f" --replace "$SEP=/nonexistent/new"
	[ "$status" -eq 1 ]
	[ "$output" = "keystrap: cannot read '/nonexistent/new': No such file or directory" ]
	run "$KEYSTRAP" predict --event-log "$f" --replace "abcd=$NEW"
	[ "$status" -eq 1 ]
	[ "$output" = "keystrap: 'abcd' is neither a file nor a digest in hex of 40, 64, 96 or 128 digits (it has 4)" ]
	run "$KEYSTRAP" predict --event-log "$f" --replace "$SEP=${NEW}0"
	[ "$status" -eq 1 ]
	[ "$output" = "keystrap: '${NEW}0' is neither a file nor a digest in hex of 40, 64, 96 or 128 digits (it has 65)" ]
	run "$KEYSTRAP" predict --event-log /nonexistent.bin
	[ "$status" -eq 1 ]
	[ "$output" = "keystrap: cannot read event log '/nonexistent.bin': No such file or directory" ]
	head -c 1000 "$f" >cut.bin
	run "$KEYSTRAP" predict --event-log cut.bin
	[ "$status" -eq 1 ]
	[[ "$output" == "keystrap: cut.bin: offset "* ]] && [ "${#lines[@]}" -eq 1 ]
	for bad in "$SEP" "=$NEW" "$SEP="; do
		run "$KEYSTRAP" predict --event-log "$f" --replace "$bad"
		[ "$status" -eq 2 ]
		[ "${lines[0]}" = "keystrap: --replace '$bad' is not OLD=NEW" ]
	done
	run "$KEYSTRAP" predict --event-log "$f" extra
	[ "$status" -eq 2 ]
	[ "${lines[0]}" = "keystrap: unexpected argument 'extra'" ]
	args=()
	for _ in $(seq 17); do args+=(--replace "$SEP=$SEP"); done
	run "$KEYSTRAP" predict --event-log "$f" "${args[@]}"
	[ "$status" -eq 2 ]
	[ "${lines[0]}" = "keystrap: at most 16 --replace" ]
	# Their twin: the same command, well-formed, succeeds.
	run "$KEYSTRAP" predict --event-log "$f" --replace "$SEP=$NEW"
	[ "$status" -eq 0 ]
}

@test "--json policy fragment: the sha256 PCRs the server may pin (0-15 but 12 and 15), as predicted" {
	run "$KEYSTRAP" predict --event-log "$LOGS/event-sd-boot-fedora37.bin" --cmdline quiet --json
	[ "$status" -eq 0 ]
	[ "$(jq -r '.policy.pcr_bank' <<<"$output")" = sha256 ]
	[ "$(jq -r '.policy.reference_pcrs | keys_unsorted | join(",")' <<<"$output")" = "0,1,2,3,4,5,6,7,9" ]
	jq -e '.policy.reference_pcrs | to_entries | all(.value | test("^[0-9a-f]{64}$"))' <<<"$output" >/dev/null
	jq -e '. as $r | .policy.reference_pcrs | to_entries | all(.value == $r.pcrs.sha256[.key])' <<<"$output" >/dev/null
	# A sha1-only log's fragment is in its only bank.
	run "$KEYSTRAP" predict --event-log "$LOGS/event-uefi-sha1-log.bin" --json
	[ "$(jq -r '.policy.pcr_bank, (.policy.reference_pcrs["4"] | length)' <<<"$output")" = $'sha1\n40' ]
}

@test "predict with nothing replaced equals the PCRs of a TPM extended with the log" {
	f=$LOGS/event-moklisttrusted.bin
	replay_firmware "$f"
	run "$KEYSTRAP" predict --event-log "$f" --json
	[ "$status" -eq 0 ]
	for i in 0 1 2 3 4 5 6 7 8 9 14; do
		[ "$(tpm_pcr "$i")" = "$(jq -r --arg i "$i" '.pcrs.sha256[$i]' <<<"$output")" ]
	done
	# The twin: one more extend and PCR 4 no longer is what the log predicts.
	tpm2_pcrextend "4:sha256=$NEW"
	[ "$(tpm_pcr 4)" != "$(jq -r '.pcrs.sha256["4"]' <<<"$output")" ]
	swtpm_reboot
}

@test "--json policy fragment: keystrap-server takes it as the next policy's reference values" {
	export SRV_DIR=$BATS_TEST_TMPDIR/srv SRV_PORT
	SRV_PORT=$(free_port)
	server_pki "$SRV_DIR"
	server_config "$SRV_DIR" "0 7"
	kernel_logs
	run "$KEYSTRAP" predict --event-log this.bin --replace old.efi=new.efi --json
	[ "$status" -eq 0 ]
	want4=$(oracle_pcrs next.bin | awk '$1 == "sha256" && $2 == 4 { print $3 }')
	want9=$(oracle_pcrs next.bin | awk '$1 == "sha256" && $2 == 9 { print $3 }')
	# The next version: PCRs 4 and 9 from the fragment, as an operator would keep them.
	policy_json "" 2 | jq --argjson p "$(jq .policy <<<"$output")" \
		'.pcr_bank = $p.pcr_bank | .reference_pcrs = ($p.reference_pcrs | {"4": .["4"], "9": .["9"]})' >draft.json
	run srv policy diff 1 draft.json
	[ "$status" -eq 0 ]
	[[ "$output" == *"PCR 4 reference value added: $want4"* ]]
	[[ "$output" == *"PCR 9 reference value added: $want9"* ]]
	policy_sign "$OPERATOR_DIR" draft.json op1 op2
	run srv policy load draft.json --signature draft.json.op1.sig --signature draft.json.op2.sig
	[ "$status" -eq 0 ]
	[[ "$output" == "policy version 2 loaded: signed by 2 of 2 operator keys"* ]]
	# The twin: a digest one hex digit short is refused by the same parser.
	jq '.version = 3 | .reference_pcrs["4"] |= .[1:]' draft.json >short.json
	policy_sign "$OPERATOR_DIR" short.json op1 op2
	run srv policy load short.json --signature short.json.op1.sig --signature short.json.op2.sig
	[ "$status" -ne 0 ]
	[[ "$output" == *"policy field 'reference_pcrs' PCR 4 is not a sha256 digest in hex"* ]]
}
