#!/usr/bin/env bats
# keystrap enroll against a real swtpm (sha1 and sha256 banks active): the keyslot and token
# it writes, checked with cryptsetup and tpm2-tools as oracles, each binding with the unlock
# that proves it and the PCR change that defeats it; then every way it must refuse without
# leaving anything behind.

load ../lib/swtpm

ZERO32=0000000000000000000000000000000000000000000000000000000000000000

setup_file() {
	SWTPM_PCR_BANKS=sha1,sha256 swtpm_start
}

teardown_file() {
	swtpm_stop
}

setup() {
	luks_setup
}

teardown() {
	reboot_if_asked
}

# The PolicyPCR digest tpm2-tools computes for SELECTION (e.g. sha256:7,15) and the PCR
# values in FILE (concatenated in index order).
createpolicy() {
	tpm2_createpolicy -Q --policy-pcr -l "$1" -f "$2" -L policy.bin && xxd -p -c 64 policy.bin
}

token_field() {
	cryptsetup token export --token-id "${2:-0}" "$IMG" | jq -c "$1"
}

@test "default: PCR 7 at its current value, PCR 15 at zero; the policy is what tpm2-tools computes" {
	pcr_extend 7 # firmware leaves PCR 7 non-zero: "current" must mean the TPM's value
	run "$KEYSTRAP" enroll --device "$IMG" --unlock-key-file "$KEY"
	[ "$status" -eq 0 ]
	[ "$output" = "enrolled $IMG: keyslot 1, token 0, PCRs 7,15 (sha256), primary ecc" ]
	[ "$(token_field '[.type, .keyslots, ."tpm2-pcrs", ."tpm2-pcr-bank", ."tpm2-primary-alg", ."tpm2-pin"]')" = \
		'["systemd-tpm2",["1"],[7,15],"sha256","ecc",false]' ]
	pcr7=$(pcr_value sha256 7)
	[ "$(token_field '."keystrap-pcr-values"."7"')" = "\"$pcr7\"" ]
	[ "$(token_field '."keystrap-pcr-values"."15"')" = "\"$ZERO32\"" ]
	xxd -r -p <<<"$pcr7$ZERO32" >values.bin
	[ "$(token_field '."tpm2-policy-hash"')" = "\"$(createpolicy sha256:7,15 values.bin)\"" ]
	run "$KEYSTRAP" unlock --device "$IMG" --dry-run
	[ "$status" -eq 0 ]
	[[ "$output" == *"token 0 unseals a key that opens keyslot 1"* ]]
}

@test "default twin: PCR 15 is bound at zero, not at its current value, so a moved PCR 15 refuses" {
	pcr_extend 15
	run "$KEYSTRAP" enroll --device "$IMG" --unlock-key-file "$KEY"
	[ "$status" -eq 0 ]
	[ "$(token_field '."keystrap-pcr-values"."15"')" = "\"$ZERO32\"" ]
	unlock_must_fail "$IMG"
	[[ "$output" == *"PCR mismatch (sha256): PCR 15 is "*" but policy wants 0000000000000000000000000000000000000000000000000000000000000000"* ]]
	[[ "$output" != *"PCR 7 "* ]]
	swtpm_reboot # PCR 15 back at zero, as at the next boot
	run "$KEYSTRAP" unlock --device "$IMG" --dry-run
	[ "$status" -eq 0 ]
}

@test "--pcrs 7 binds PCR 7 only: PCR 15 may move, PCR 7 may not" {
	run "$KEYSTRAP" enroll --device "$IMG" --unlock-key-file "$KEY" --pcrs 7
	[ "$status" -eq 0 ]
	[[ "$output" == *"PCRs 7 (sha256)"* ]]
	[ "$(token_field '."tpm2-pcrs"')" = "[7]" ]
	pcr_value sha256 7 | xxd -r -p >values.bin
	[ "$(token_field '."tpm2-policy-hash"')" = "\"$(createpolicy sha256:7 values.bin)\"" ]
	pcr_extend 15
	run "$KEYSTRAP" unlock --device "$IMG" --dry-run
	[ "$status" -eq 0 ]
	pcr_extend 7
	unlock_must_fail "$IMG"
	[[ "$output" == *"PCR mismatch (sha256): PCR 7 is "* ]]
}

@test "--pcrs 15:0 unseals while PCR 15 is at zero, and not after keystrap lock" {
	run "$KEYSTRAP" enroll --device "$IMG" --unlock-key-file "$KEY" --pcrs 15:0
	[ "$status" -eq 0 ]
	[ "$(token_field '."tpm2-pcrs"')" = "[15]" ]
	head -c 32 /dev/zero >values.bin
	[ "$(token_field '."tpm2-policy-hash"')" = "\"$(createpolicy sha256:15 values.bin)\"" ]
	run "$KEYSTRAP" unlock --device "$IMG" --dry-run
	[ "$status" -eq 0 ]
	reboot_after
	"$KEYSTRAP" lock
	unlock_must_fail "$IMG"
	[[ "$output" == *"PCR mismatch (sha256): PCR 15 is "* ]]
}

@test "--pcrs 11:HEX enrolls for a value PCR 11 does not hold yet; it unseals once it does" {
	# The value PCR 11 will hold after extending D once from zero: sha256(zero || D).
	d=$(printf '%064x' 11)
	want=$({ head -c 32 /dev/zero; xxd -r -p <<<"$d"; } | sha256sum | cut -d' ' -f1)
	run "$KEYSTRAP" enroll --device "$IMG" --unlock-key-file "$KEY" --pcrs "11:$want"
	[ "$status" -eq 0 ]
	[ "$(token_field '."keystrap-pcr-values"."11"')" = "\"$want\"" ]
	xxd -r -p <<<"$want" >values.bin
	[ "$(token_field '."tpm2-policy-hash"')" = "\"$(createpolicy sha256:11 values.bin)\"" ]
	unlock_must_fail "$IMG"
	[[ "$output" == *"PCR mismatch (sha256): PCR 11 is 0000000000000000000000000000000000000000000000000000000000000000 but policy wants $want"* ]]
	reboot_after
	tpm2_pcrextend "11:sha256=$d"
	run "$KEYSTRAP" unlock --device "$IMG" --dry-run
	[ "$status" -eq 0 ]
}

@test "--pcr-bank sha1: sha1 values, a sha256 policy over them as tpm2-tools computes it" {
	pcr_extend 7
	run "$KEYSTRAP" enroll --device "$IMG" --unlock-key-file "$KEY" --pcr-bank sha1
	[ "$status" -eq 0 ]
	[[ "$output" == *"PCRs 7,15 (sha1)"* ]]
	[ "$(token_field '."tpm2-pcr-bank"')" = '"sha1"' ]
	pcr7=$(pcr_value sha1 7)
	[ "$(token_field '."keystrap-pcr-values"."7"')" = "\"$pcr7\"" ]
	xxd -r -p <<<"${pcr7}0000000000000000000000000000000000000000" >values.bin
	[ "$(token_field '."tpm2-policy-hash"')" = "\"$(createpolicy sha1:7,15 values.bin)\"" ]
	run "$KEYSTRAP" unlock --device "$IMG" --dry-run
	[ "$status" -eq 0 ]
}

@test "a bank this TPM has not allocated (sha384) is refused, even with every value given" {
	before=$(header_sum "$IMG")
	for spec in 7,15 7:0; do
		run "$KEYSTRAP" enroll --device "$IMG" --unlock-key-file "$KEY" --pcr-bank sha384 --pcrs "$spec"
		[ "$status" -eq 1 ]
		[[ "$output" == "keystrap: cannot read PCRs "*" from bank sha384: the TPM does not support a required PCR bank" ]]
	done
	[ "$(header_sum "$IMG")" = "$before" ]
}

@test "--primary-alg rsa seals under the RSA primary; the same blob read as ecc does not load" {
	run "$KEYSTRAP" enroll --device "$IMG" --unlock-key-file "$KEY" --primary-alg rsa
	[ "$status" -eq 0 ]
	[[ "$output" == *"primary rsa" ]]
	[ "$(token_field '."tpm2-primary-alg"')" = '"rsa"' ]
	run "$KEYSTRAP" unlock --device "$IMG" --dry-run
	[ "$status" -eq 0 ]
	token_edit "$IMG" 0 '."tpm2-primary-alg" = "ecc"'
	unlock_must_fail "$IMG"
	[ "${#lines[@]}" -eq 1 ]
	[[ "$output" == *"token 0: the sealed key does not belong to this TPM's storage key"* ]]
}

@test "the existing key file still opens its keyslot; the new keyslot is cheap PBKDF2" {
	run "$KEYSTRAP" enroll --device "$IMG" --unlock-key-file "$KEY"
	[ "$status" -eq 0 ]
	cryptsetup open --test-passphrase --key-slot 0 --key-file "$KEY" "$IMG"
	[ "$(keyslots "$IMG")" = "0 1" ]
	kdf=$(cryptsetup luksDump --dump-json-metadata "$IMG" | jq -c '.keyslots."1".kdf | [.type, .iterations]')
	[ "$kdf" = '["pbkdf2",1000]' ]
	# Twin: the key file does not open the new keyslot (it holds a different key).
	run cryptsetup open --test-passphrase --key-slot 1 --key-file "$KEY" "$IMG"
	[ "$status" -ne 0 ]
}

@test "the existing passphrase can come on stdin; a wrong one adds nothing" {
	printf 'correct horse battery staple' >pass
	cryptsetup luksAddKey --batch-mode --pbkdf pbkdf2 --pbkdf-force-iterations 1000 --key-file "$KEY" "$IMG" pass
	before=$(header_sum "$IMG")
	run "$KEYSTRAP" enroll --device "$IMG" <<<"correct horse battery stable"
	[ "$status" -eq 1 ]
	[ "$output" = "keystrap: the existing passphrase does not open any keyslot of '$IMG'" ]
	[ "$(header_sum "$IMG")" = "$before" ]
	run "$KEYSTRAP" enroll --device "$IMG" <<<"correct horse battery staple"
	[ "$status" -eq 0 ]
	[[ "$output" == *"keyslot 2, token 0"* ]]
}

@test "bad --pcrs values: exit 2 quoting the bad item, volume untouched" {
	before=$(header_sum "$IMG")
	for spec in 24 7,7 11:zz "" 7,24 "7:${ZERO32}00"; do
		case $spec in
		7,7) bad=7 ;;
		7,24) bad=24 ;;
		*) bad=$spec ;;
		esac
		run "$KEYSTRAP" enroll --device "$IMG" --unlock-key-file "$KEY" --pcrs "$spec"
		[ "$status" -eq 2 ]
		[ "${lines[0]}" = "keystrap: --pcrs: '$bad' is not a PCR 0-23, optionally with :0 or :HEX (64 hex digits for sha256), listed once" ]
		[[ "${lines[1]}" == "Usage: keystrap enroll --device DEV"* ]]
	done
	run "$KEYSTRAP" enroll --device "$IMG" --unlock-key-file "$KEY" --pcr-bank sha1 --pcrs "7:$ZERO32"
	[ "$status" -eq 2 ]
	[[ "${lines[0]}" == *"'7:$ZERO32' is not a PCR 0-23, optionally with :0 or :HEX (40 hex digits for sha1)"* ]]
	[ "$(header_sum "$IMG")" = "$before" ]
}

@test "other usage errors exit 2 and name what was wrong" {
	before=$(header_sum "$IMG")
	run "$KEYSTRAP" enroll --device "$IMG" --unlock-key-file "$KEY" --pcr-bank md5
	[ "$status" -eq 2 ]
	[ "${lines[0]}" = "keystrap: --pcr-bank 'md5' is not one of sha1, sha256, sha384, sha512" ]
	run "$KEYSTRAP" enroll --device "$IMG" --unlock-key-file "$KEY" --primary-alg dsa
	[ "$status" -eq 2 ]
	[ "${lines[0]}" = "keystrap: --primary-alg 'dsa' is neither ecc nor rsa" ]
	run "$KEYSTRAP" enroll --unlock-key-file "$KEY"
	[ "$status" -eq 2 ]
	[ "${lines[0]}" = "keystrap: --device is required" ]
	run "$KEYSTRAP" enroll --device "$IMG" --unlock-key-file "$KEY" extra
	[ "$status" -eq 2 ]
	[ "${lines[0]}" = "keystrap: unexpected argument 'extra'" ]
	run "$KEYSTRAP" enroll --device "$IMG" --bogus
	[ "$status" -eq 2 ]
	[[ "$output" == *"keystrap: invalid option"* ]]
	[ "$(header_sum "$IMG")" = "$before" ]
	run "$KEYSTRAP" enroll --help
	[ "$status" -eq 0 ]
	[[ "${lines[0]}" == "Usage: keystrap enroll --device DEV"* ]]
}

@test "a wrong key file: exit 1, no keyslot, no token, header untouched" {
	head -c 32 /dev/urandom | base64 >wrong
	before=$(header_sum "$IMG")
	run "$KEYSTRAP" enroll --device "$IMG" --unlock-key-file wrong
	[ "$status" -eq 1 ]
	[ "$output" = "keystrap: the existing key file does not open any keyslot of '$IMG'" ]
	[ "$(header_sum "$IMG")" = "$before" ]
	[ "$(keyslots "$IMG")" = "0" ]
	[ "$(tokens "$IMG")" = "" ]
}

@test "a missing or empty key file: exit 1 naming the file" {
	before=$(header_sum "$IMG")
	run "$KEYSTRAP" enroll --device "$IMG" --unlock-key-file nonexistent
	[ "$status" -eq 1 ]
	[ "$output" = "keystrap: cannot read key file 'nonexistent': No such file or directory" ]
	: >empty
	run "$KEYSTRAP" enroll --device "$IMG" --unlock-key-file empty
	[ "$status" -eq 1 ]
	[ "$output" = "keystrap: cannot read key file 'empty': empty" ]
	[ "$(header_sum "$IMG")" = "$before" ]
}

@test "a LUKS1 volume, a file with no LUKS header, a missing device: one clear line, nothing written" {
	truncate -s 20M luks1.img
	cryptsetup luksFormat --type luks1 --pbkdf-force-iterations 1000 --batch-mode --key-file "$KEY" luks1.img
	sum=$(sha256sum <luks1.img)
	run "$KEYSTRAP" enroll --device luks1.img --unlock-key-file "$KEY"
	[ "$status" -eq 1 ]
	[ "$output" = "keystrap: 'luks1.img' is LUKS1; keystrap needs LUKS2 (cryptsetup convert --type luks2)" ]
	[ "$(sha256sum <luks1.img)" = "$sum" ]

	truncate -s 20M plain.img
	run "$KEYSTRAP" enroll --device plain.img --unlock-key-file "$KEY"
	[ "$status" -eq 1 ]
	[ "$output" = "keystrap: 'plain.img' is not a LUKS2 device: no LUKS header" ]
	[ "$(sha256sum <plain.img)" = "$(head -c 20M /dev/zero | sha256sum)" ]

	run "$KEYSTRAP" enroll --device missing.img --unlock-key-file "$KEY"
	[ "$status" -eq 1 ]
	[ "$output" = "keystrap: no such device 'missing.img'" ]
	[ ! -e missing.img ]
}

@test "all 32 token slots taken: refused before anything is written, no keyslot added" {
	for i in $(seq 0 31); do
		printf '{"type":"filler","keyslots":[]}' | cryptsetup token import --token-id "$i" "$IMG"
	done
	run "$KEYSTRAP" enroll --device "$IMG" --unlock-key-file "$KEY"
	[ "$status" -eq 1 ]
	[ "$output" = "keystrap: all 32 LUKS2 token slots of '$IMG' are in use; nothing was added (free one with 'cryptsetup token remove')" ]
	[ "$(keyslots "$IMG")" = "0" ]
	[ "$(cryptsetup luksDump --dump-json-metadata "$IMG" | jq -r '[.tokens[].type] | unique | join(",")')" = "filler" ]
	cryptsetup open --test-passphrase --key-slot 0 --key-file "$KEY" "$IMG"
	# Twin: with one token slot free, the same enroll lands in it.
	cryptsetup token remove --token-id 17 "$IMG"
	run "$KEYSTRAP" enroll --device "$IMG" --unlock-key-file "$KEY"
	[ "$status" -eq 0 ]
	[[ "$output" == *"keyslot 1, token 17"* ]]
}

@test "no TPM: exit 1 naming the TCTI, volume untouched" {
	before=$(header_sum "$IMG")
	KEYSTRAP_TCTI="swtpm:host=127.0.0.1,port=1" run "$KEYSTRAP" enroll --device "$IMG" --unlock-key-file "$KEY"
	[ "$status" -eq 1 ]
	[ "$output" = "keystrap: no TPM reachable via TCTI 'swtpm:host=127.0.0.1,port=1'" ]
	[ "$(header_sum "$IMG")" = "$before" ]
	[ "$(keyslots "$IMG")" = "0" ]
}

@test "enroll vets keystrap.conf first: a clean one passes, one holding a secret stops it before any write" {
	cp "$BATS_TEST_DIRNAME/../../dist/keystrap.conf.example" good.conf
	run "$KEYSTRAP" enroll --device "$IMG" --unlock-key-file "$KEY" --config good.conf
	[ "$status" -eq 0 ]

	luks_setup
	before=$(header_sum "$IMG")
	{ cat good.conf; echo "# recovery: $(head -c 32 /dev/urandom | xxd -p -c 64)"; } >leaky.conf
	run "$KEYSTRAP" enroll --device "$IMG" --unlock-key-file "$KEY" --config leaky.conf
	[ "$status" -eq 1 ]
	[ "${#lines[@]}" -eq 1 ]
	[[ "$output" == "keystrap: leaky.conf:"*"looks like"* ]]
	[ "$(header_sum "$IMG")" = "$before" ]
	[ "$(keyslots "$IMG")" = "0" ]
}

# LeakSanitizer cannot run under ptrace: the runs under strace go without it.

# no_orphans IMAGE: every keyslot but 0 is bound to a systemd-tpm2 token, every token is a
# systemd-tpm2 token bound to a keyslot, and no pending record is left.
no_orphans() {
	local meta
	meta=$(cryptsetup luksDump --dump-json-metadata "$1") || return 1
	jq -e '(.tokens | to_entries | all(.value.type == "systemd-tpm2" and (.value.keyslots | length) == 1)) and
		([.tokens[].keyslots[]] | sort) == ([.keyslots | keys[] | select(. != "0")] | sort)' \
		<<<"$meta" >/dev/null || { echo "orphan in $1: $(jq -c '[.keyslots | keys, .tokens]' <<<"$meta")"; return 1; }
}

# pending_record IMAGE SLOT: the record enroll writes before it adds keyslot SLOT, as token 0.
pending_record() {
	printf '{"type":"keystrap-pending","keyslots":[],"keystrap-keyslot":"%s"}' "$2" |
		cryptsetup token import --token-id 0 "$1"
}

# add_keyslot IMAGE SLOT PASSFILE [cryptsetup options]: a keyslot opened by PASSFILE.
add_keyslot() {
	local img=$1 slot=$2 pass=$3
	shift 3
	cryptsetup luksAddKey --batch-mode --key-file "$KEY" --key-slot "$slot" "$@" "$img" "$pass"
}

@test "every write and fsync of the image fails or is killed in turn: no orphan survives the next run" {
	command -v strace >/dev/null || skip "strace is not installed"
	cp "$IMG" clean.img
	# The image's writes and fsyncs in an enroll that succeeds: the points to break.
	ASAN_OPTIONS=detect_leaks=0 strace -f -qq -o calls.txt -P "$IMG" -e trace=write,pwrite64,fsync,fdatasync \
		"$KEYSTRAP" enroll --device "$IMG" --unlock-key-file "$KEY" >/dev/null
	declare -A count
	for sc in write pwrite64 fsync fdatasync; do count[$sc]=$(grep -cE "^[0-9]+ +$sc\(" calls.txt || true); done
	[ "${count[write]}" -ge 10 ]
	[ "${count[fsync]}" -ge 3 ]
	failed=0 repaired=0 runs=0
	for sc in write pwrite64 fsync fdatasync; do
		for n in $(seq 1 "${count[$sc]}"); do
			for how in error=EIO error=ENOSPC signal=SIGKILL; do
				cp clean.img "$IMG"
				runs=$((runs + 1))
				rc=0
				ASAN_OPTIONS=detect_leaks=0 strace -f -qq -o /dev/null -P "$IMG" -e trace="$sc" -e inject="$sc:$how:when=$n" \
					"$KEYSTRAP" enroll --device "$IMG" --unlock-key-file "$KEY" >out.txt 2>&1 || rc=$?
				case $rc/$how in
				0/*) ;;
				1/error=EIO) grep -q ": Input/output error; nothing was added$" out.txt ;;
				1/error=ENOSPC) grep -q ": No space left on device; nothing was added$" out.txt ;;
				137/signal=SIGKILL) ;;
				*) echo "$sc #$n $how: exit $rc: $(cat out.txt)"; return 1 ;;
				esac
				[ "$rc" -eq 0 ] || failed=$((failed + 1))
				cryptsetup open --test-passphrase --key-slot 0 --key-file "$KEY" "$IMG"
				run "$KEYSTRAP" enroll --device "$IMG" --unlock-key-file "$KEY"
				[ "$status" -eq 0 ] || { echo "$sc #$n $how: the next enroll: $output"; return 1; }
				if [[ "$output" == *"left by an interrupted keystrap enroll"* ]]; then
					repaired=$((repaired + 1))
				fi
				no_orphans "$IMG" || { echo "after $sc #$n $how"; return 1; }
				cryptsetup open --test-passphrase --key-slot 0 --key-file "$KEY" "$IMG"
			done
		done
	done
	echo "# $runs runs, $failed failed, $repaired repaired by the next enroll" >&3
	# Twin: the faults did land, and what the kills left was there for the next run to remove.
	[ "$failed" -gt "$((runs / 2))" ]
	[ "$repaired" -gt 0 ]
	run "$KEYSTRAP" unlock --device "$IMG" --dry-run
	[ "$status" -eq 0 ]
}

@test "a persistent write error: the message says what is left; the next run removes it" {
	command -v strace >/dev/null || skip "strace is not installed"
	# From the fourth write on (the pending record's first header copy is on the disk), every write fails.
	ASAN_OPTIONS=detect_leaks=0 run strace -f -qq -o /dev/null -P "$IMG" -e trace=write -e inject=write:error=EIO:when=4+ \
		"$KEYSTRAP" enroll --device "$IMG" --unlock-key-file "$KEY"
	[ "$status" -eq 1 ]
	[ "$output" = "keystrap: cannot add keyslot and token to '$IMG': Input/output error; what was written could not be removed now: keystrap enroll or unlock removes it when next run" ]
	[ "$(tokens "$IMG")" = "0" ]
	run "$KEYSTRAP" unlock --device "$IMG" --dry-run
	[ "$status" -eq 1 ]
	[ "${lines[0]}" = "keystrap: '$IMG' holds token 0 left by an interrupted keystrap enroll; keystrap enroll or unlock (without --dry-run) removes it" ]
	[ "$(tokens "$IMG")" = "0" ]
	run "$KEYSTRAP" enroll --device "$IMG" --unlock-key-file "$KEY"
	[ "$status" -eq 0 ]
	[ "${lines[0]}" = "keystrap: removed token 0 of '$IMG', left by an interrupted keystrap enroll" ]
	no_orphans "$IMG"
}

@test "unlock removes a keyslot an interrupted enroll left with its pending record; --dry-run only says so" {
	head -c 32 /dev/urandom | base64 >k1
	add_keyslot "$IMG" 1 k1 --pbkdf pbkdf2 --hash sha512 --pbkdf-force-iterations 1000
	pending_record "$IMG" 1
	before=$(header_sum "$IMG")
	run "$KEYSTRAP" unlock --device "$IMG" --dry-run
	[ "$status" -eq 1 ]
	[ "${lines[0]}" = "keystrap: '$IMG' holds keyslot 1 and token 0 left by an interrupted keystrap enroll; keystrap enroll or unlock (without --dry-run) removes them" ]
	[ "$(header_sum "$IMG")" = "$before" ]
	run "$KEYSTRAP" unlock --device "$IMG" --name keystrap-never-opened
	[ "$status" -eq 1 ]
	[ "${lines[0]}" = "keystrap: removed keyslot 1 and token 0 of '$IMG', left by an interrupted keystrap enroll" ]
	[ "$(keyslots "$IMG")" = "0" ]
	[ "$(tokens "$IMG")" = "" ]
	cryptsetup open --test-passphrase --key-slot 0 --key-file "$KEY" "$IMG"
}

@test "a pending record never takes a keyslot someone can use: other PBKDF, bound to a token, the last one" {
	# A human's keyslot (argon2id, cryptsetup's default) took the number after the crash.
	printf 'correct horse battery staple' >human
	add_keyslot "$IMG" 1 human
	pending_record "$IMG" 1
	run "$KEYSTRAP" enroll --device "$IMG" --unlock-key-file "$KEY"
	[ "$status" -eq 0 ]
	[ "${lines[0]}" = "keystrap: removed token 0 of '$IMG', left by an interrupted keystrap enroll" ]
	cryptsetup open --test-passphrase --key-slot 1 --key-file human "$IMG"

	# keystrap's PBKDF, but another tool's token is bound to it (systemd-cryptenroll's order).
	luks_setup
	head -c 32 /dev/urandom | base64 >k1
	add_keyslot "$IMG" 1 k1 --pbkdf pbkdf2 --hash sha512 --pbkdf-force-iterations 1000
	printf '{"type":"systemd-recovery","keyslots":["1"]}' | cryptsetup token import --token-id 5 "$IMG"
	pending_record "$IMG" 1
	run "$KEYSTRAP" enroll --device "$IMG" --unlock-key-file "$KEY"
	[ "$status" -eq 0 ]
	cryptsetup open --test-passphrase --key-slot 1 --key-file k1 "$IMG"
	[ "$(cryptsetup token export --token-id 5 "$IMG" | jq -c .keyslots)" = '["1"]' ]

	# keystrap's PBKDF and no token, but the only keyslot there is.
	luks_setup
	head -c 32 /dev/urandom | base64 >only
	cryptsetup luksFormat --type luks2 --pbkdf pbkdf2 --hash sha512 --pbkdf-force-iterations 1000 \
		--batch-mode --key-file only "$IMG"
	pending_record "$IMG" 0
	run "$KEYSTRAP" unlock --device "$IMG" --name keystrap-never-opened
	[ "$status" -eq 1 ]
	[ "${lines[0]}" = "keystrap: removed token 0 of '$IMG', left by an interrupted keystrap enroll" ]
	cryptsetup open --test-passphrase --key-slot 0 --key-file only "$IMG"
}

@test "a keystrap token whose keyslot is gone is removed; another tool's unbound token is not" {
	run "$KEYSTRAP" enroll --device "$IMG" --unlock-key-file "$KEY"
	[ "$status" -eq 0 ]
	run "$KEYSTRAP" enroll --device "$IMG" --unlock-key-file "$KEY"
	[ "$status" -eq 0 ]
	[[ "$output" == *"keyslot 2, token 1"* ]]
	# Token 1 as systemd-cryptenroll writes it: no keystrap-pcr-values.
	token_edit "$IMG" 1 'del(."keystrap-pcr-values")'
	cryptsetup luksKillSlot --batch-mode "$IMG" 1
	cryptsetup luksKillSlot --batch-mode "$IMG" 2
	[ "$(cryptsetup luksDump --dump-json-metadata "$IMG" | jq -c '[.tokens[].keyslots]')" = '[[],[]]' ]
	run "$KEYSTRAP" unlock --device "$IMG" --dry-run
	[ "$status" -eq 1 ]
	[ "${lines[0]}" = "keystrap: '$IMG' holds keystrap token 0, bound to no keyslot (its keyslot was removed); keystrap enroll or unlock (without --dry-run) removes it" ]
	[ "${lines[1]}" = "keystrap: $IMG token 1 is malformed: token is bound to no keyslot (its keyslot was removed)" ]
	[ "${#lines[@]}" -eq 2 ]
	run "$KEYSTRAP" enroll --device "$IMG" --unlock-key-file "$KEY"
	[ "$status" -eq 0 ]
	[ "${lines[0]}" = "keystrap: removed keystrap token 0 of '$IMG', bound to no keyslot (its keyslot was removed)" ]
	[[ "${lines[1]}" == "enrolled $IMG: keyslot 1, token 0,"* ]]
	[ "$(tokens "$IMG")" = "0 1" ]
	[ "$(cryptsetup token export --token-id 1 "$IMG" | jq -c .keyslots)" = '[]' ]
}
