#!/usr/bin/env bash
# make check-bats: the bats files (default every tests/bats/*.bats) in BATS_JOBS shards (default
# 2) at once, each shard one `bats --tap` over its files in turn, printed as one TAP stream: one
# plan (the sum of the shards' own), then each shard's lines in shard order, numbered as one
# after the other, each file's lines together. The first shard's lines come as they happen, the
# others' once the shards before them have ended. A test a shard's plan promised that never
# reported (its bats crashed or was killed) is a "not ok"; the exit status is nonzero when any
# test failed or any shard's bats did. Usage: run.sh [--list] [FILE...]; --list prints which
# shard runs which files, and runs nothing.
#
# Shards are balanced by what each file took alone (WEIGHT below), longest first onto the
# shard with the least so far; files that must not run at once (TOGETHER) go to one shard as
# one item. Each shard picks its ports from a range of its own (KEYSTRAP_TEST_PORTS, read by
# free_port in tests/lib/swtpm.bash). docs/testing.md says how to add a file.
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BATS=${BATS:-bats}
JOBS=${BATS_JOBS:-2}

# Seconds each file took alone, serially, against the ASan build (bats --tap FILE, one after
# the other, 27 min in all; measured on the 2-core machine CI runs on, two QEMU guests and other
# bats runs beside it: approximate, what counts is their proportions; dashboard and predict
# again after they grew). A file not listed counts DEFAULT_WEIGHT until it is measured and
# added (docs/testing.md).
DEFAULT_WEIGHT=30
declare -A WEIGHT=(
	[attest-crypto]=16 [attest]=71 [attested]=123 [audit-log]=10 [cli]=4 [config]=3
	[dashboard]=70 [disk-share]=20 [enroll]=222 [errors]=31 [eventlog]=65 [fleet]=20
	[handoff]=28 [harness]=44 [https]=19 [hwkeys]=60 [initrd]=42 [install]=67 [interop]=14
	[keyring]=29 [measure]=7 [metrics]=42 [mkinitcpio]=19 [policy-diff]=4 [policy]=25
	[predict]=19 [probe]=21 [reseal]=97 [revocation]=25 [rotation]=23 [secrets-at-rest]=21
	[secrets]=7 [server-http]=69 [server-pg]=94 [server]=32 [signed-policy]=16 [srk]=10
	[storm]=75 [tpm-deadline]=41 [unlock]=19 [wipe]=39 [witness]=19
)

# Files that share something two files running at once would collide on; each group goes to
# one shard, where its files run one after the other.
TOGETHER=(
	# Kernel keyrings: the keys they give uid 65534 count against that uid's key quota (200
	# keys, 20000 bytes), and keyring.bats reads and cleans root's user keyring.
	"handoff keyring revocation witness"
)

die() {
	echo "run.sh: $*" >&2
	exit 2
}

[[ $JOBS =~ ^[1-9][0-9]*$ ]] || die "BATS_JOBS=$JOBS: want how many shards run at once (1 or more)"

# The port range every shard's is cut from: KEYSTRAP_TEST_PORTS when given, else free_port's.
PORTS=${KEYSTRAP_TEST_PORTS:-10000-32000}
PORTS_LO=${PORTS%-*} PORTS_HI=${PORTS#*-}
if ! [[ $PORTS_LO =~ ^[0-9]+$ && $PORTS_HI =~ ^[0-9]+$ ]] || [ $(((PORTS_HI - PORTS_LO) / JOBS)) -lt 2 ]; then
	die "KEYSTRAP_TEST_PORTS=$PORTS: want LOW-HIGH with room for a pair of ports per shard"
fi

list=
if [ "${1:-}" = --list ]; then
	list=1
	shift
fi
if [ $# -gt 0 ]; then
	FILES=("$@")
else
	FILES=("$HERE"/*.bats)
fi

name() {
	local b=${1##*/}
	echo "${b%.bats}"
}

weight() {
	echo "${WEIGHT[$(name "$1")]:-$DEFAULT_WEIGHT}"
}

# assign: SHARD[k] (the files of shard k, one a line, by name) and LOAD[k] (their seconds),
# k from 0 to JOBS-1. An item is a TOGETHER group (those of its files that are given) or a
# file of no group; items go longest first (by name among equals), each to the shard with
# the least load (the first among equals): the same files and table give the same shards.
SHARD=() LOAD=()
assign() {
	local -A group_of=() items=()
	local g f n k best item w
	for g in "${TOGETHER[@]}"; do
		for n in $g; do group_of[$n]=$g; done
	done
	for f in "${FILES[@]}"; do
		n=$(name "$f")
		item=${group_of[$n]:-$n}
		items[$item]+="$f"$'\n'
	done
	for ((k = 0; k < JOBS; k++)); do SHARD[k]='' LOAD[k]=0; done
	while IFS=' ' read -r w item; do
		best=0
		for ((k = 1; k < JOBS; k++)); do
			[ "${LOAD[k]}" -lt "${LOAD[best]}" ] && best=$k
		done
		SHARD[best]+=${items[$item]}
		LOAD[best]=$((LOAD[best] + w))
	done < <(for item in "${!items[@]}"; do
		w=0
		while IFS= read -r f; do
			[ -z "$f" ] || w=$((w + $(weight "$f")))
		done <<<"${items[$item]}"
		echo "$w $item"
	done | LC_ALL=C sort -k1,1nr -k2)
	for ((k = 0; k < JOBS; k++)); do
		SHARD[k]=$(printf '%s' "${SHARD[k]}" | awk -F/ 'NF { print $NF "\t" $0 }' | LC_ALL=C sort | cut -f2-)
	done
}

# ports K: shard K's part of the port range (pairs never straddle two shards).
ports() {
	local span=$((((PORTS_HI - PORTS_LO) / JOBS) & ~1)) lo
	lo=$((PORTS_LO + $1 * span))
	if [ "$1" -eq $((JOBS - 1)) ]; then echo "$lo-$PORTS_HI"; else echo "$lo-$((lo + span))"; fi
}

assign

if [ -n "$list" ]; then
	for ((k = 0; k < JOBS; k++)); do
		[ -n "${SHARD[k]}" ] || continue
		printf 'shard %d (~%d s, ports %s):' $((k + 1)) "${LOAD[k]}" "$(ports "$k")"
		while IFS= read -r f; do printf ' %s' "${f##*/}"; done <<<"${SHARD[k]}"
		echo
	done
	for f in "${FILES[@]}"; do
		[ -n "${WEIGHT[$(name "$f")]:-}" ] ||
			echo "# ${f##*/} is not in run.sh's table: counted as $DEFAULT_WEIGHT s until measured"
	done
	exit 0
fi

TMP=$(mktemp -d)
RUNNING=() # shard index → its bats' PID (a process group of its own), until it has ended

# stop_shards: on any way out, each shard still running gets SIGTERM (its whole group), and
# what is left of it after 10 s is killed.
stop_shards() {
	local k pid
	for k in "${!RUNNING[@]}"; do
		[ -e "$TMP/$k.rc" ] || kill -TERM -- "-${RUNNING[k]}" 2>/dev/null || true
	done
	for k in "${!RUNNING[@]}"; do
		pid=${RUNNING[k]}
		for _ in $(seq 50); do
			kill -0 -- "-$pid" 2>/dev/null || break
			sleep 0.2
		done
		kill -KILL -- "-$pid" 2>/dev/null || true
	done
	wait 2>/dev/null
	rm -rf "$TMP"
}
trap 'stop_shards' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Each shard: a subshell that starts the shard's bats as the leader of a process group of its
# own (setsid: stopped as a whole, and a test that kills its group kills only its shard),
# writes its PID, waits for it and writes its exit status: K.rc exists once the shard ended.
for ((k = 0; k < JOBS; k++)); do
	[ -n "${SHARD[k]}" ] || continue
	mapfile -t files <<<"${SHARD[k]}"
	(
		export KEYSTRAP_TEST_PORTS
		KEYSTRAP_TEST_PORTS=$(ports "$k")
		setsid "$BATS" --tap "${files[@]}" </dev/null >"$TMP/$k.tap" 2>"$TMP/$k.err" &
		echo $! >"$TMP/$k.pid"
		rc=0 start=$SECONDS
		# (bash's own "Killed" line for a shard killed outright stays out of the stream's stderr)
		{ wait $! || rc=$?; } 2>/dev/null
		echo $((SECONDS - start)) >"$TMP/$k.took"
		echo "$rc" >"$TMP/$k.rc"
	) &
	for _ in $(seq 100); do [ -s "$TMP/$k.pid" ] && break; sleep 0.05; done
	RUNNING[k]=$(cat "$TMP/$k.pid")
done

# The plan: each shard's own (bats prints it first), or, from a shard that ended without one,
# what bats counts in its files (or one a file, when even that fails).
PLANNED=() total=0
for k in "${!RUNNING[@]}"; do
	until p=$(grep -m1 -E '^1\.\.[0-9]+$' "$TMP/$k.tap") || [ -e "$TMP/$k.rc" ]; do sleep 0.1; done
	p=$(grep -m1 -E '^1\.\.[0-9]+$' "$TMP/$k.tap") || {
		mapfile -t files <<<"${SHARD[k]}"
		p=1..$("$BATS" --count "${files[@]}" 2>/dev/null) || p=1..${#files[@]}
		[[ $p =~ ^1\.\.[0-9]+$ ]] || p=1..${#files[@]}
	}
	PLANNED[k]=${p#1..}
	total=$((total + PLANNED[k]))
done
echo "1..$total"

# emit LINE: a shard's line as the merged stream has it: results renumbered, plans dropped.
N=0 FAILED=0 REPORTED=0
emit() {
	if [[ $1 =~ ^(ok|not\ ok)\ [0-9]+(\ .*)?$ ]]; then
		N=$((N + 1)) REPORTED=$((REPORTED + 1))
		[ "${BASH_REMATCH[1]}" = ok ] || FAILED=$((FAILED + 1))
		printf '%s %d%s\n' "${BASH_REMATCH[1]}" "$N" "${BASH_REMATCH[2]}"
	elif ! [[ $1 =~ ^1\.\.[0-9]+$ ]]; then
		printf '%s\n' "$1"
	fi
}

# follow K: shard K's TAP as it grows, through emit, until its bats has ended and all it
# wrote is read (a last line without its newline included).
follow() {
	local line buf='' ended='' fd
	exec {fd}<"$TMP/$1.tap"
	while :; do
		if IFS= read -r line <&"$fd"; then
			emit "$buf$line"
			buf=''
		else
			buf+=$line
			[ -z "$ended" ] || break
			if [ -e "$TMP/$1.rc" ]; then ended=1; else sleep 0.2; fi
		fi
	done
	[ -z "$buf" ] || emit "$buf"
	exec {fd}<&-
}

status=0
for k in "${!RUNNING[@]}"; do
	REPORTED=0
	follow "$k"
	rc=$(cat "$TMP/$k.rc")
	cat "$TMP/$k.err" >&2
	mapfile -t files <<<"${SHARD[k]}"
	echo "run.sh: shard $((k + 1)) took $(cat "$TMP/$k.took") s (the table: ~${LOAD[k]} s), bats exited $rc: ${files[*]##*/}" >&2
	how="exited $rc"
	[ "$rc" -le 128 ] || how="killed by signal $((rc - 128))"
	if [ "$REPORTED" -lt "${PLANNED[k]}" ]; then
		last=$(grep -E '^(ok|not ok) ' "$TMP/$k.tap" | tail -n 1)
		for ((i = REPORTED; i < PLANNED[k]; i++)); do
			N=$((N + 1)) FAILED=$((FAILED + 1))
			echo "not ok $N - shard $((k + 1)): a test its plan promised never reported (bats $how)"
		done
		echo "#   shard $((k + 1)) ran: ${files[*]##*/}"
		echo "#   its last result: ${last:-none}"
		tail -n 5 "$TMP/$k.err" | sed 's/^/#     /'
	elif [ "$REPORTED" -gt "${PLANNED[k]}" ]; then
		echo "# shard $((k + 1)) reported $REPORTED results for a plan of ${PLANNED[k]}"
		status=1
	fi
	[ "$rc" -eq 0 ] || status=1
	unset "RUNNING[k]"
done
[ "$FAILED" -eq 0 ] || status=1
[ "$status" -eq 0 ]
