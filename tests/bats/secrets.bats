#!/usr/bin/env bats
# The disk key itself: recovered from the token with tpm2-tools as an independent oracle
# (proving the format: TPM2B_PRIVATE || TPM2B_PUBLIC under systemd's storage primary, the
# LUKS passphrase being base64 of the 32 bytes), then searched for everywhere keystrap
# could leak it: stdout, stderr (at debug level), the argv and environment of any exec,
# every byte it writes or reads (the TPM socket included: the unseal travels encrypted), and
# every file under the test's directories but the LUKS image. The oracle keeps the key in
# shell variables and pipes only, so it cannot plant what is searched for.

load ../lib/swtpm

setup_file() {
	swtpm_start
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

# Prints the hex of what token 0's blob unseals to, using tpm2-tools only: systemd's ECC
# storage primary, the blob split at the TPM2B_PRIVATE's 2-byte big-endian size, a policy
# session satisfying PolicyPCR over the token's bank and PCRs.
oracle_key_hex() {
	local d=$BATS_TEST_TMPDIR/oracle tok n sel
	mkdir -p "$d"
	tok=$(cryptsetup token export --token-id 0 "$IMG")
	jq -r '."tpm2-blob"' <<<"$tok" | base64 -d >"$d/blob"
	n=$((0x$(head -c 2 "$d/blob" | xxd -p)))
	head -c $((n + 2)) "$d/blob" >"$d/sealed.priv"
	tail -c +$((n + 3)) "$d/blob" >"$d/sealed.pub"
	sel=$(jq -r '."tpm2-pcr-bank" + ":" + (."tpm2-pcrs" | map(tostring) | join(","))' <<<"$tok")
	tpm2_createprimary -Q -C o -g sha256 -G ecc256:aes128cfb -c "$d/primary.ctx" \
		-a 'restricted|decrypt|fixedtpm|fixedparent|sensitivedataorigin|userwithauth'
	tpm2_flushcontext -t
	tpm2_load -Q -C "$d/primary.ctx" -u "$d/sealed.pub" -r "$d/sealed.priv" -c "$d/sealed.ctx"
	tpm2_flushcontext -t
	tpm2_startauthsession --policy-session -S "$d/session.ctx"
	tpm2_policypcr -Q -S "$d/session.ctx" -l "$sel"
	tpm2_unseal -c "$d/sealed.ctx" -p "session:$d/session.ctx" | xxd -p -c 256
	tpm2_flushcontext -t >/dev/null 2>&1
	tpm2_flushcontext -l >/dev/null 2>&1
	return 0
}

# Runs keystrap under strace (every exec with argv and environment, every byte written or
# read, as hex), at debug log level; NAME.out, NAME.err and NAME.strace land in the test dir.
# LeakSanitizer cannot run under ptrace, so only leak detection is off here.
traced() {
	local name=$1
	shift
	KEYSTRAP_LOG_LEVEL=debug ASAN_OPTIONS=detect_leaks=0 \
		strace -f -v -xx -s 65536 -o "$name.strace" \
		-e trace=execve,execveat,write,writev,pwrite64,read,readv,pread64,sendto,sendmsg,recvfrom,recvmsg \
		"$KEYSTRAP" "$@" >"$name.out" 2>"$name.err"
}

# leaks HEX: lists every file under the test directories (the LUKS image aside) that holds
# the key as text (hex or base64, any case) or as raw bytes, or whose strace shows it.
leaks() {
	local hex=$1 b64 b64hex f
	b64=$(xxd -r -p <<<"$hex" | base64 -w0)
	b64hex=$(printf %s "$b64" | xxd -p | tr -d '\n')
	while IFS= read -r -d '' f; do
		[ "$f" = "$IMG" ] && continue
		if grep -qiF -e "$hex" -e "$b64hex" "$f" || grep -qF -e "$b64" "$f" ||
			xxd -p "$f" | tr -d '\n' | grep -qiF -e "$hex" -e "$b64hex" ||
			sed 's/\\x//g' "$f" | tr -d '\n' | grep -qiF -e "$hex" -e "$b64hex"; then
			echo "$f"
		fi
	done < <(find "$BATS_TEST_TMPDIR" "$BATS_FILE_TMPDIR" -type f -print0)
}

@test "tpm2-tools unseals the blob to 32 bytes whose base64 opens the keyslot; after lock it cannot" {
	"$KEYSTRAP" enroll --device "$IMG" --unlock-key-file "$KEY"
	hex=$(oracle_key_hex)
	[ "${#hex}" -eq 64 ]
	b64=$(xxd -r -p <<<"$hex" | base64 -w0)
	printf %s "$b64" | cryptsetup open --test-passphrase --key-slot 1 --key-file - "$IMG"
	# Twins: the raw bytes are not the passphrase, and after lock the TPM refuses the oracle too.
	run bash -c 'xxd -r -p <<<"$1" | cryptsetup open --test-passphrase --key-slot 1 --key-file - "$2"' _ "$hex" "$IMG"
	[ "$status" -ne 0 ]
	reboot_after
	"$KEYSTRAP" lock
	[ -z "$(oracle_key_hex 2>/dev/null)" ]
}

@test "the key appears nowhere: output, debug log, exec argv/env, bytes written or read, files" {
	traced enroll enroll --device "$IMG" --unlock-key-file "$KEY"
	traced unlock unlock --device "$IMG" --dry-run
	reboot_after
	# Activation too, where device-mapper exists (elsewhere it fails after unsealing, which is
	# a path worth tracing as well).
	traced activate unlock --device "$IMG" --name "keystrap-secrets-$$" || true
	cryptsetup close "keystrap-secrets-$$" 2>/dev/null || true
	hex=$(oracle_key_hex)
	[ "${#hex}" -eq 64 ]

	# What was traced is what the user saw: it worked, with debug logging on.
	[ "$(cat enroll.out)" = "enrolled $IMG: keyslot 1, token 0, PCRs 7,15 (sha256), primary ecc" ]
	[ "$(cat unlock.out)" = "$IMG: token 0 unseals a key that opens keyslot 1 (dry run)" ]
	debug=$(printf %s KEYSTRAP_LOG_LEVEL=debug | xxd -p | tr -d '\n')
	for t in enroll unlock activate; do
		# keystrap starts no other program: its own exec is the only argv and environment.
		[ "$(grep -c 'execve' "$t.strace")" -eq 1 ]
		grep 'execve' "$t.strace" | sed 's/\\x//g' | grep -q "$debug"
	done

	run leaks "$hex"
	[ "$status" -eq 0 ]
	[ -z "$output" ]
}

@test "the search itself works: a traced read of the key, raw bytes, base64 and hex are all caught" {
	"$KEYSTRAP" enroll --device "$IMG" --unlock-key-file "$KEY"
	hex=$(oracle_key_hex)
	[ "${#hex}" -eq 64 ]
	b64=$(xxd -r -p <<<"$hex" | base64 -w0)
	printf %s "$b64" | strace -f -xx -s 65536 -e trace=read -o control.strace \
		cryptsetup open --test-passphrase --key-slot 1 --key-file - "$IMG"
	xxd -r -p <<<"$hex" >raw.bin
	printf 'key: %s\n' "$b64" >b64.txt
	tr a-f A-F <<<"$hex" >hex.txt
	run leaks "$hex"
	[ "$(sort <<<"$output" | xargs -n1 basename | xargs)" = "b64.txt control.strace hex.txt raw.bin" ]
}

@test "a recovery key is in one write to stdout and nowhere else: stderr, debug log, argv/env, other I/O, files, the header" {
	traced recovery enroll --device "$IMG" --unlock-key-file "$KEY" --recovery-key
	key=$(cat recovery.out)
	[[ $key =~ ^([cbdefghijklnrtuv]{8}-){7}[cbdefghijklnrtuv]{8}$ ]]
	printf %s "$key" | cryptsetup open --test-passphrase --key-slot 2 --key-file - "$IMG"
	khex=$(printf %s "$key" | xxd -p | tr -d '\n')
	plain=${key//-/}
	phex=$(printf %s "$plain" | xxd -p | tr -d '\n')
	# The 32 random bytes the key encodes, as hex.
	raw=$(tr cbdefghijklnrtuv 0123456789abcdef <<<"$plain")

	# The one system call that carries it (as text, with or without dashes) is its write to stdout.
	[ "$(sed 's/\\x//g' recovery.strace | grep -ciF -e "$khex" -e "$phex")" -eq 1 ]
	sed 's/\\x//g' recovery.strace | grep -iF "$khex" | grep -qE "^[0-9]+ +write\\(1, \"$khex\", 71\\)"
	[ "$(grep -c 'execve' recovery.strace)" -eq 1 ]
	# The files that hold it as text: what stdout went to, and the trace of that write.
	[ "$(grep -rlF "$key" "$BATS_TEST_TMPDIR" "$BATS_FILE_TMPDIR" | xargs -n1 basename)" = "recovery.out" ]
	! grep -qF -e "$khex" -e "$phex" recovery.err || false
	# Its bytes nowhere, in any encoding: not in a file, a trace, nor the LUKS header.
	run leaks "$raw"
	[ "$status" -eq 0 ]
	[ -z "$output" ]
	! grep -aqF -e "$key" -e "$plain" "$IMG" || false
	! xxd -p "$IMG" | tr -d '\n' | grep -qiF -e "$raw" -e "$khex" || false
}
