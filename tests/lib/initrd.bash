# shellcheck shell=bash
# The initrd flavours on the host, each calling the real keystrap against whatever TPM
# KEYSTRAP_TCTI names:
#
# - mkinitcpio's busybox hook (hooks/keystrap): hook runs it in busybox ash the way
#   mkinitcpio's /init does (sourced, then run_hook, later run_cleanuphook).
# - the systemd initrd that dist/dracut/59keystrap and mkinitcpio's sd-keystrap build, with systemd
#   itself deciding what runs: the units as 'make install-units' lays them out (what both
#   tools copy into the image), keystrap-generator and systemd-cryptsetup-generator run for a
#   given kernel command line and keystrap.conf, and 'systemd --test' computes the boot
#   transaction of a target from them (initrd_boot). initrd_run then executes keystrap's
#   ExecStart= lines in an order that transaction allows, with systemd's failure rule (a job
#   whose Requires=, Requisite= or BindsTo= unit failed is not run). Needs root (a private
#   mount namespace: /etc gets an overlay with /etc/initrd-release and the test's
#   keystrap.conf, /proc/cmdline the test's command line) and runs systemd --test as nobody:
#   it refuses root.
#
# Both read the test's keystrap.conf, $BATS_TEST_TMPDIR/keystrap.conf, when there is one. The
# VM scenarios of vm/check.sh boot the same hook and units for real.

INITRD_SRC=$BATS_TEST_DIRNAME/../..
HOOK=$INITRD_SRC/dist/mkinitcpio/hooks/keystrap
INITRD_SYSTEMD=${INITRD_SYSTEMD:-/lib/systemd/systemd}
INITRD_CRYPTSETUP_GENERATOR=${INITRD_CRYPTSETUP_GENERATOR:-/lib/systemd/system-generators/systemd-cryptsetup-generator}

# ---- the busybox hook ----------------------------------------------------------------------

# hook_path DIR: what the image's PATH offers the hook, in DIR: busybox applets, and keystrap.
hook_path() {
	BBIN=$1
	mkdir -p "$BBIN"
	for a in findfs modprobe sleep; do ln -sf "$(command -v busybox)" "$BBIN/$a"; done
	ln -sf "$(readlink -f "$KEYSTRAP")" "$BBIN/keystrap"
}

# hook CMDLINE [FN...]: sources the hook in busybox ash with mkinitcpio's msg, err and
# launch_interactive_shell, then calls each FN (default run_hook) as /init does, under bats'
# run. PATH starts with HOOK_PATH (default BBIN, from hook_path).
hook() {
	local cmdline=$1
	shift
	printf '%s\n' "$cmdline" >"$BATS_TEST_TMPDIR/cmdline"
	# A fresh libblkid cache, as in an initramfs: the host's /run/blkid may still map this
	# test's loop device to the previous test's volume.
	# shellcheck disable=SC2016 # expanded by busybox sh
	run env PATH="${HOOK_PATH:-$BBIN}:$PATH" BLKID_FILE="$BATS_TEST_TMPDIR/blkid.tab" \
		KEYSTRAP_TEST_CONF="$BATS_TEST_TMPDIR/keystrap.conf" busybox sh -c '
		msg() { [ "${quiet}" != "y" ] && echo "$@"; }
		err() { echo "ERROR: $@"; }
		launch_interactive_shell() { echo "emergency shell $*"; exit 99; }
		# This host is not an initramfs: mounts are reported, not made.
		mount() { echo "mount $*"; }
		keystrap_cmdline=$1
		shift
		. "$0"
		keystrap_conf=$KEYSTRAP_TEST_CONF
		for fn in "$@"; do "$fn"; echo "$fn returned $?"; done' \
		"$HOOK" "$BATS_TEST_TMPDIR/cmdline" "${@:-run_hook}"
}

# ---- both ----------------------------------------------------------------------------------

# luks_volume: a LUKS2 image whose systemd-tpm2 token keystrap enrolled against PCRs 7 and
# 15 (still zero), on a loop device (LOOP; the caller detaches it) with UUID UUID.
luks_volume() {
	IMG=$BATS_TEST_TMPDIR/root.img KEY=$BATS_TEST_TMPDIR/key
	make_luks "$IMG" "$KEY" >/dev/null
	# Its own (empty) configuration: whatever /etc/keystrap holds on this host stays out of it.
	: >"$BATS_TEST_TMPDIR/enroll.conf"
	"$KEYSTRAP" enroll --device "$IMG" --unlock-key-file "$KEY" --pcrs 7,15:0 \
		--config "$BATS_TEST_TMPDIR/enroll.conf" >/dev/null
	# shellcheck disable=SC2034 # the caller's
	UUID=$(cryptsetup luksUUID "$IMG")
	# shellcheck disable=SC2034
	LOOP=$(losetup -f --show "$IMG" 2>/dev/null) || skip "no loop device available here"
}

# measured PHASE: how many times keystrap's measurement log records keystrap:PHASE.
measured() { grep -c "\"keystrap:$1\"" "$KEYSTRAP_MEASURE_LOG" 2>/dev/null || true; }

# logged: "PCR EVENT" for each record of keystrap's measurement log, in order.
logged() { [ ! -f "$KEYSTRAP_MEASURE_LOG" ] || jq -r '"\(.pcr) \(.content.string)"' "$KEYSTRAP_MEASURE_LOG"; }

# ---- the systemd initrd --------------------------------------------------------------------

# initrd_setup: a fresh tree in INITRD (a new directory under /tmp, readable by nobody, which
# systemd --test runs as), or skip when this host cannot give one.
initrd_setup() {
	[ "$(id -u)" = 0 ] || skip "needs root for a private mount namespace"
	[ -x "$INITRD_SYSTEMD" ] || skip "no $INITRD_SYSTEMD"
	INITRD=$(mktemp -d /tmp/keystrap-initrd.XXXXXX)
	chmod 755 "$INITRD"
	mkdir -p "$INITRD"/{upper,work,gen,bin}
	# The generator asks keystrap (config get) what keystrap.conf says; the image's is on PATH.
	ln -s "$(readlink -f "$KEYSTRAP")" "$INITRD/bin/keystrap"
	: >"$INITRD/upper/initrd-release"
	make -s -C "$INITRD_SRC" install-units DESTDIR="$INITRD/root" >/dev/null
	unshare -m sh -c "mount -t overlay overlay -o lowerdir=/etc,upperdir=$INITRD/upper,workdir=$INITRD/work /etc" ||
		skip "no overlay mount in a private namespace here"
}

initrd_teardown() {
	[ -z "${INITRD:-}" ] || rm -rf "$INITRD"
}

# initrd_ns CMD...: CMD in the initrd's view of the host: /etc/initrd-release, only the test's
# keystrap.conf (if any) under /etc/keystrap, its /proc/cmdline.
initrd_ns() {
	# shellcheck disable=SC2016 # expanded by the inner shell
	unshare -m sh -ec '
		mount -t overlay overlay -o "lowerdir=/etc,upperdir=$0/upper,workdir=$0/work" /etc
		mkdir -p /etc/keystrap
		mount -t tmpfs -o mode=755 tmpfs /etc/keystrap
		[ ! -f "$1" ] || cp "$1" /etc/keystrap/keystrap.conf
		mount --bind "$0/cmdline" /proc/cmdline
		shift
		exec "$@"' "$INITRD" "$BATS_TEST_TMPDIR/keystrap.conf" "$@"
}

# initrd_boot CMDLINE [TARGET...]: the generators' output for CMDLINE, then the transaction of
# each TARGET (default: initrd.target, then initrd-switch-root.target, which
# initrd-cleanup.service isolates once initrd.target is reached) as systemd computes it, in
# $INITRD/dump.TARGET. $INITRD/order lists the units with a start job in an order they allow
# (a unit once), $INITRD/edges each "A B" where B waits for A (a later transaction's units
# wait for the target of the one before), $INITRD/exec "UNIT<TAB>COMMAND" for each
# ExecStart=, $INITRD/deps "UNIT TYPE OTHER" for Wants=, Requires=, Requisite=, BindsTo=.
initrd_boot() {
	local cmdline=$1 t prev='' targets=("${@:2}")
	[ ${#targets[@]} -gt 0 ] || targets=(initrd.target initrd-switch-root.target)
	printf '%s\n' "$cmdline" >"$INITRD/cmdline"
	rm -rf "$INITRD/gen" "$INITRD"/{order,edges,exec,deps,units,dump.*} && mkdir "$INITRD/gen"
	touch "$INITRD"/{order,edges,exec,deps,units}
	initrd_ns env PATH="$INITRD/bin:$PATH" sh "$INITRD/root/usr/lib/systemd/system-generators/keystrap-generator" \
		"$INITRD/gen" "$INITRD/gen" "$INITRD/gen" 2>"$INITRD/generator.err"
	# systemd reads PID 1's command line in a container; this is how it is told the initrd's.
	initrd_ns env SYSTEMD_PROC_CMDLINE="$cmdline" SYSTEMD_IN_INITRD=1 "$INITRD_CRYPTSETUP_GENERATOR" \
		"$INITRD/gen" "$INITRD/gen" "$INITRD/gen"
	chmod -R a+rX "$INITRD"
	for t in "${targets[@]}"; do
		(cd "$INITRD" && setpriv --reuid=65534 --regid=65534 --clear-groups \
			env SYSTEMD_IN_INITRD=1 SYSTEMD_UNIT_PATH="$INITRD/gen:$INITRD/root/usr/lib/systemd/system:" \
			"$INITRD_SYSTEMD" --system --test --unit="$t" --no-pager) \
			>"$INITRD/dump.$t" 2>"$INITRD/dump.err" || { cat "$INITRD/dump.err"; return 1; }
		initrd_parse "$INITRD/dump.$t" "$prev"
		prev=$t
	done
}

# initrd_parse DUMP PREV: adds DUMP's transaction to order, edges, exec and deps; its units
# wait for PREV, when given.
initrd_parse() {
	awk -v dir="$INITRD" -v prev="$2" '
		# What an earlier dump described already: its jobs, and every unit it listed.
		BEGIN {
			while ((getline l < (dir "/order")) > 0) placed[l] = 1
			while ((getline l < (dir "/units")) > 0) known[l] = 1
		}
		/^\t-> Unit / {
			u = substr($0, 10); sub(/:$/, "", u); exec = ""
			if (!(u in known)) print u >> (dir "/units")
			old = u in known
			next
		}
		/^\t\t(After|Before|Wants|Requires|Requisite|BindsTo): / {
			t = $1; sub(/:$/, "", t)
			if (t == "After") after[u, $2] = 1
			else if (t == "Before") after[$2, u] = 1
			else if (!old) print u, t, $2 >> (dir "/deps")
			next
		}
		/^\t\t-> Exec/ { exec = $2; next }
		/^\t\t\tCommand Line: / && exec == "ExecStart:" && !old {
			print u "\t" substr($0, index($0, ": ") + 2) >> (dir "/exec")
			next
		}
		/^\t\t\tAction: / && $NF == "start" && !(u in placed) { job[u] = 1 }
		END {
			for (k in after) {
				split(k, p, SUBSEP)
				if ((p[1] in job) && (p[2] in job)) {
					print p[2], p[1] >> (dir "/edges")
					indeg[p[1]]++
					out[p[2]] = out[p[2]] " " p[1]
				}
			}
			n = 0
			for (j in job) {
				n++
				if (prev != "") print prev, j >> (dir "/edges")
			}
			# Kahn: the lowest name first among the ready ones, for a reproducible order.
			for (done = 0; done < n;) {
				best = ""
				for (j in job)
					if (!(j in placed) && !indeg[j] && (best == "" || j < best)) best = j
				if (best == "") { print "ordering cycle" > "/dev/stderr"; exit 1 }
				placed[best] = 1
				print best >> (dir "/order")
				done++
				m = split(out[best], s, " ")
				for (i = 1; i <= m; i++) indeg[s[i]]--
			}
		}' "$1"
}

# initrd_has_job UNIT: the transaction starts UNIT.
initrd_has_job() { grep -qxF -- "$1" "$INITRD/order"; }

# initrd_ordered A B: B's start waits, directly or through other jobs, for A's to finish.
initrd_ordered() {
	local seen=" $1 " next todo=("$1") x
	while [ ${#todo[@]} -gt 0 ]; do
		x=${todo[0]}
		todo=("${todo[@]:1}")
		while read -r next; do
			[ "$next" = "$2" ] && return 0
			[[ $seen == *" $next "* ]] && continue
			seen+="$next "
			todo+=("$next")
		done < <(A=$x awk '$1 == ENVIRON["A"] { print $2 }' "$INITRD/edges")
	done
	return 1
}

# initrd_run [KILL]: keystrap's units of the transaction in $INITRD/order, each ExecStart= as
# systemd would run it (/usr/sbin/keystrap being $KEYSTRAP; its output in $INITRD/journal),
# the next only once it has finished; "UNIT STATUS" for each in $INITRD/ran (STATUS: its exit status, or "dependency"
# when systemd would have failed it unrun). A unit named KILL meets a stalled TPM and is
# SIGKILLed, as systemd does when TimeoutStartSec= and then TimeoutStopSec= run out.
initrd_run() {
	local kill=${1:-} unit cmd rc dep failed=" " pid
	local -x BLKID_FILE=$BATS_TEST_TMPDIR/blkid.tab
	: >"$INITRD/ran"
	: >"$INITRD/journal"
	while read -r unit; do
		[[ $unit == keystrap-* ]] || continue
		rc=0
		while read -r dep; do
			[[ $failed == *" $dep "* ]] && rc=dependency
		done < <(U=$unit awk '$1 == ENVIRON["U"] && $2 ~ /^(Requires|Requisite|BindsTo)$/ { print $3 }' "$INITRD/deps")
		if [ "$rc" = 0 ]; then
			while IFS=$'\t' read -r _ cmd; do
				cmd=${cmd/#\/usr\/sbin\/keystrap /$KEYSTRAP }
				if [ "$unit" = "$kill" ]; then
					kill -STOP "$(cat "$SWTPM_DIR/pid")"
					rm -f "$INITRD/killed.pid"
					# shellcheck disable=SC2016,SC2086 # systemd's word splitting: no quotes in these lines
					initrd_ns sh -c 'echo $$ >"$0"; exec "$@"' "$INITRD/killed.pid" $cmd >>"$INITRD/journal" 2>&1 &
					pid=$!
					# It blocks at its first TPM command, however long it waits.
					sleep 1
					kill -KILL "$(cat "$INITRD/killed.pid")"
					wait "$pid" || rc=$?
					kill -CONT "$(cat "$SWTPM_DIR/pid")"
				else
					# shellcheck disable=SC2086
					initrd_ns $cmd >>"$INITRD/journal" 2>&1 || rc=$?
				fi
				[ "$rc" = 0 ] || break
			done < <(U=$unit awk -F '\t' '$1 == ENVIRON["U"]' "$INITRD/exec")
		fi
		echo "$unit $rc" >>"$INITRD/ran"
		if initrd_failure "$unit" "$rc"; then failed+="$unit "; fi
	done <"$INITRD/order"
}

# initrd_failure UNIT STATUS: systemd counts STATUS as UNIT's failure (SuccessExitStatus= of
# its unit file aside).
initrd_failure() {
	local ok
	[ "$2" != 0 ] || return 1
	[ "$2" = dependency ] && return 0
	ok=$(sed -n 's/^SuccessExitStatus=//p' "$INITRD/root/usr/lib/systemd/system/${1%%@*}"* 2>/dev/null)
	[[ " $ok " != *" $2 "* ]]
}
