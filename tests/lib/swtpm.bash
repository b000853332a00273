# shellcheck shell=bash
# Shared bats helpers: a private swtpm per test file on a free port, LUKS2 images,
# and the tools under test. Every test talks to a real swtpm; there is no mock TPM.

KEYSTRAP=${KEYSTRAP:-$BATS_TEST_DIRNAME/../../build/keystrap}
export TSS2_LOG=all+none

# free_port: a port P such that nothing listens on P or P+1 (swtpm's control port), from
# KEYSTRAP_TEST_PORTS (LOW-HIGH, HIGH excluded; default 10000-32000, below the kernel's
# ephemeral range 32768+, since a port some client connection is using cannot be bound and
# the probe does not see it). tests/bats/run.sh gives each shard a range of its own, so that
# two files running at once never pick one port. Within one bats run the pairs are handed out
# in turn (a counter in BATS_RUN_TMPDIR, under flock), from a random start: two calls before
# either port is bound (a file's server and its swtpm) never get the same pair.
free_port() {
	local range=${KEYSTRAP_TEST_PORTS:-10000-32000} lo hi
	lo=${range%-*} hi=${range#*-}
	if ! [[ $lo =~ ^[0-9]+$ && $hi =~ ^[0-9]+$ ]] || [ $((hi - lo)) -lt 2 ] || [ "$hi" -gt 65536 ]; then
		echo "free_port: KEYSTRAP_TEST_PORTS=$range is not LOW-HIGH with room for a pair" >&2
		return 1
	fi
	if [ -z "${BATS_RUN_TMPDIR:-}" ]; then
		free_port_from "$lo" "$hi" ""
		return
	fi
	(
		flock 9 || exit 1
		free_port_from "$lo" "$hi" "$BATS_RUN_TMPDIR/free-port.next"
	) 9>>"$BATS_RUN_TMPDIR/free-port.lock"
}

# free_port_from LOW HIGH [COUNTER]: the first free pair from the pair COUNTER names on (the
# counter moves past it), or from a random pair without one.
free_port_from() {
	local lo=$1 hi=$2 state=$3 pairs next p
	pairs=$(((hi - lo) / 2))
	next=$(cat "$state" 2>/dev/null) || next=
	[[ $next =~ ^[0-9]+$ ]] || next=$((RANDOM % pairs))
	for _ in $(seq 50); do
		[ -n "$state" ] || next=$((RANDOM % pairs))
		p=$((lo + 2 * (next % pairs)))
		next=$(((next + 1) % pairs))
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null &&
			! (exec 3<>"/dev/tcp/127.0.0.1/$((p + 1))") 2>/dev/null; then
			[ -z "$state" ] || echo "$next" >"$state"
			echo "$p"
			return 0
		fi
	done
	return 1
}

# swtpm_start [DIR]: new TPM (EK certificate included) unless DIR already holds state.
# SWTPM_PCR_BANKS (default sha256) lists the active PCR banks, e.g. "sha1,sha256".
swtpm_start() {
	export SWTPM_DIR=${1:-$BATS_FILE_TMPDIR/tpm}
	mkdir -p "$SWTPM_DIR"
	if [ ! -e "$SWTPM_DIR/tpm2-00.permall" ]; then
		swtpm_setup --tpm2 --tpmstate "$SWTPM_DIR" --create-ek-cert --create-platform-cert \
			--pcr-banks "${SWTPM_PCR_BANKS:-sha256}" --overwrite >/dev/null 2>&1 || return 1
	fi
	export SWTPM_PORT
	SWTPM_PORT=$(free_port)
	swtpm socket --tpm2 --tpmstate dir="$SWTPM_DIR" \
		--server type=tcp,port="$SWTPM_PORT",bindaddr=127.0.0.1 \
		--ctrl type=tcp,port=$((SWTPM_PORT + 1)),bindaddr=127.0.0.1 \
		--flags not-need-init,startup-clear --daemon --pid file="$SWTPM_DIR/pid" 3>&- || return 1
	for _ in $(seq 50); do
		(exec 3<>"/dev/tcp/127.0.0.1/$SWTPM_PORT") 2>/dev/null && break
		sleep 0.05
	done
	export KEYSTRAP_TCTI="swtpm:host=127.0.0.1,port=$SWTPM_PORT"
	export TPM2TOOLS_TCTI=$KEYSTRAP_TCTI
	export SD_TPM2_DEVICE=$KEYSTRAP_TCTI
	# keystrap's measurement log explains this TPM's PCRs, so it lives and dies with them.
	export KEYSTRAP_MEASURE_LOG=$SWTPM_DIR/tpm2-measure.log
}

swtpm_stop() {
	local pid
	[ -n "${SWTPM_DIR:-}" ] && [ -f "$SWTPM_DIR/pid" ] || return 0
	pid=$(cat "$SWTPM_DIR/pid")
	swtpm_ioctl --tcp "127.0.0.1:$((SWTPM_PORT + 1))" -s >/dev/null 2>&1 || kill "$pid" 2>/dev/null
	for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
	kill -9 "$pid" 2>/dev/null || true
	while kill -0 "$pid" 2>/dev/null; do sleep 0.05; done
	rm -f "$SWTPM_DIR/pid"
	return 0
}

# Power-cycles the TPM (swtpm's CMD_INIT, what QEMU sends on reset; the process and port
# stay): PCRs back to their boot values, as at the next boot. The OS sends TPM2_Shutdown
# first, as a clean reboot does: without it the TPM counts a dictionary-attack failure per
# reboot and locks out after three.
swtpm_reboot() {
	tpm2_shutdown >/dev/null 2>&1
	swtpm_ioctl --tcp "127.0.0.1:$((SWTPM_PORT + 1))" -i >/dev/null || return 1
	tpm2_startup -c >/dev/null 2>&1
	rm -f "$KEYSTRAP_MEASURE_LOG"
}

# make_luks IMAGE KEYFILE: a fresh LUKS2 image whose keyslot 0 opens with KEYFILE.
make_luks() {
	truncate -s 20M "$1"
	[ -f "$2" ] || head -c 32 /dev/urandom | base64 >"$2"
	chmod 600 "$2"
	cryptsetup luksFormat --type luks2 --pbkdf pbkdf2 --pbkdf-force-iterations 1000 \
		--batch-mode --key-file "$2" "$1"
}

# header_sum IMAGE: checksum of the whole LUKS2 header area (JSON, keyslots, tokens).
header_sum() {
	head -c 16M "$1" | sha256sum | cut -d' ' -f1
}

# systemd 252 leaves sessions (and, on failure, objects) loaded, counting on a resource
# manager to flush them; a bare swtpm has three slots of each, so flush after every use.
sd_flush() {
	tpm2_flushcontext -t >/dev/null 2>&1
	tpm2_flushcontext -l >/dev/null 2>&1
	return 0
}

# sd_token_open IMAGE: systemd's own token plugin unseals and checks the keyslot.
sd_token_open() {
	local rc=0
	"$BATS_TEST_DIRNAME/../../build/sd-token-open" "$1" "$KEYSTRAP_TCTI" || rc=$?
	sd_flush
	return "$rc"
}

# keyslots IMAGE / tokens IMAGE: the keyslot / token numbers in use, e.g. "0 1".
keyslots() {
	cryptsetup luksDump --dump-json-metadata "$1" | jq -r '.keyslots | keys | join(" ")'
}
tokens() {
	cryptsetup luksDump --dump-json-metadata "$1" | jq -r '.tokens | keys | join(" ")'
}

# token_edit IMAGE ID JQ-FILTER [JQ-ARGS...]: replaces token ID by a jq-edited copy of itself.
# systemd's token plugin would refuse to import a malformed systemd-tpm2 token; a hostile or
# buggy writer does not ask it, so neither does this.
token_edit() {
	local img=$1 id=$2 filter=$3 json
	shift 3
	json=$(cryptsetup token export --token-id "$id" "$img" | jq -c "$@" "$filter") || return 1
	cryptsetup token remove --token-id "$id" "$img" || return 1
	printf '%s' "$json" | cryptsetup --disable-external-tokens token import --token-id "$id" "$img"
}

# unlock_must_fail IMAGE [ARGS...]: `keystrap unlock --dry-run` exits 1 and leaves the header
# exactly as it was; $output and $lines hold what it said.
# shellcheck disable=SC2154 # status and output are set by bats' run
unlock_must_fail() {
	local img=$1 before
	shift
	before=$(header_sum "$img")
	run "$KEYSTRAP" unlock --device "$img" --dry-run "$@"
	if [ "$status" -ne 1 ]; then
		echo "unlock exited $status, not 1: $output"
		return 1
	fi
	if [ "$(header_sum "$img")" != "$before" ]; then
		echo "unlock changed the header of $img"
		return 1
	fi
}

# For setup(): in the test's own directory, a fresh LUKS2 image $IMG whose keyslot 0 opens
# with the key file $KEY.
luks_setup() {
	cd "$BATS_TEST_TMPDIR" || return 1
	IMG=$BATS_TEST_TMPDIR/disk.img
	KEY=$BATS_TEST_TMPDIR/key
	make_luks "$IMG" "$KEY"
}

# A test that moves PCRs calls reboot_after; reboot_if_asked, in teardown, then gives the
# next test boot-time PCRs again.
reboot_after() {
	REBOOT=1
}

reboot_if_asked() {
	if [ -n "${REBOOT:-}" ]; then swtpm_reboot; fi
}

# pcr_extend PCR [BANKS]: extends PCR in each listed bank (default: sha1 and sha256; the TPM
# ignores a digest for a bank it has not allocated), as firmware measuring something would.
pcr_extend() {
	local spec=() b
	reboot_after
	for b in ${2:-sha1 sha256}; do
		case $b in
		sha1) spec+=("sha1=$(printf '%040x' 1)") ;;
		sha256) spec+=("sha256=$(printf '%064x' 1)") ;;
		esac
	done
	tpm2_pcrextend "$1:$(IFS=,; echo "${spec[*]}")"
}

# pcr_value BANK PCR: the PCR's current value in hex.
pcr_value() {
	tpm2_pcrread -Q -o "$BATS_TEST_TMPDIR/pcr.bin" "$1:$2" && xxd -p -c 64 "$BATS_TEST_TMPDIR/pcr.bin"
}

# da_lockout: puts the TPM into dictionary-attack lockout with one failed authorization of a
# DA-protected object; da_lockout_clear undoes it and restores the default parameters.
da_lockout() {
	tpm2_dictionarylockout -s -n 1 -t 600 -l 600 || return 1
	tpm2_createprimary -Q -C o -p right -c "$BATS_TEST_TMPDIR/da.ctx" || return 1
	tpm2_flushcontext -t
	if tpm2_create -Q -C "$BATS_TEST_TMPDIR/da.ctx" -P wrong -u "$BATS_TEST_TMPDIR/da.pub" \
		-r "$BATS_TEST_TMPDIR/da.priv" 2>/dev/null; then
		return 1
	fi
	tpm2_flushcontext -t
	tpm2_getcap properties-variable | grep -q 'inLockout: *1'
}

da_lockout_clear() {
	tpm2_dictionarylockout -c
	tpm2_dictionarylockout -s -n 3 -t 1000 -l 1000
}

# Fault injection into a command's writes of one image. LeakSanitizer cannot run under
# ptrace: the runs under strace go without it.
# fault_points IMAGE CMD...: runs CMD once and prints "SYSCALL N" for each write, pwrite64,
# fsync and fdatasync it made on IMAGE: the points to break, in order of kind.
fault_points() {
	local img=$1 sc n calls=$BATS_TEST_TMPDIR/fault-calls.txt
	shift
	ASAN_OPTIONS=detect_leaks=0 strace -f -qq -o "$calls" -P "$img" -e trace=write,pwrite64,fsync,fdatasync \
		"$@" >/dev/null 2>&1 || return 1
	for sc in write pwrite64 fsync fdatasync; do
		n=$(grep -cE "^[0-9]+ +$sc\(" "$calls" || true)
		[ "$n" -eq 0 ] || seq -f "$sc %g" 1 "$n"
	done
}

# fault_hows I: the failures tried at the Ith fault point. Each point fails once, EIO and SIGKILL
# in turn, so that both the undo and the next run's repair are exercised along the run within the
# suite's time; FAULTS=all tries both at every point.
fault_hows() {
	if [ "${FAULTS:-}" = all ]; then
		echo error=EIO signal=SIGKILL
	elif [ $(($1 % 2)) -eq 1 ]; then
		echo error=EIO
	else
		echo signal=SIGKILL
	fi
}

# inject_fault IMAGE SYSCALL N HOW CMD...: runs CMD with its Nth SYSCALL on IMAGE made to fail
# or killed (HOW: error=EIO, error=ENOSPC, signal=SIGKILL); CMD's exit status.
inject_fault() {
	local img=$1 sc=$2 n=$3 how=$4
	shift 4
	ASAN_OPTIONS=detect_leaks=0 strace -f -qq -o /dev/null -P "$img" -e trace="$sc" -e inject="$sc:$how:when=$n" "$@"
}

# What enroll, --replace and reseal leave in a header, checked with cryptsetup as the oracle.
# no_orphans IMAGE: every keyslot but 0 is bound to a systemd-tpm2 token, every token is a
# systemd-tpm2 token bound to a keyslot, and no pending record is left.
no_orphans() {
	local meta
	meta=$(cryptsetup luksDump --dump-json-metadata "$1") || return 1
	jq -e '(.tokens | to_entries | all(.value.type == "systemd-tpm2" and (.value.keyslots | length) == 1)) and
		([.tokens[].keyslots[]] | sort) == ([.keyslots | keys[] | select(. != "0")] | sort)' \
		<<<"$meta" >/dev/null || { echo "orphan in $1: $(jq -c '[.keyslots | keys, .tokens]' <<<"$meta")"; return 1; }
}

# tpm_tokens IMAGE: each systemd-tpm2 token as TOKEN:KEYSLOTS, e.g. "0:1 2:3".
tpm_tokens() {
	cryptsetup luksDump --dump-json-metadata "$1" |
		jq -r '[.tokens | to_entries[] | select(.value.type == "systemd-tpm2") | "\(.key):\(.value.keyslots | join(","))"] | join(" ")'
}

# replace_invariant IMAGE: what a cut-short --replace may leave. Every keyslot but 0 is bound
# to a token or named by a pending record, and a systemd-tpm2 token bound to a keyslot exists.
replace_invariant() {
	local meta
	meta=$(cryptsetup luksDump --dump-json-metadata "$1") || return 1
	jq -e '([.tokens[].keyslots[]] + [.tokens[] | select(.type == "keystrap-pending") | ."keystrap-keyslot"]) as $named |
		all(.keyslots | keys[] | select(. != "0"); . as $k | $named | index($k)) and
		any(.tokens[]; .type == "systemd-tpm2" and (.keyslots | length) == 1)' <<<"$meta" >/dev/null ||
		{ echo "invariant broken in $1: $(jq -c '[.keyslots | keys, .tokens]' <<<"$meta")"; return 1; }
}
