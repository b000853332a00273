#!/usr/bin/env bash
# make bench-server: one keystrap-server (plain build, SQLite store on disk) against
# build/bench/server-load simulating BENCH_NODES nodes with software TPMs. Prints full
# handshakes per second, p50/p99 at fixed offered rates and at maximum throughput, with real
# evidence (a real machine's firmware event log and keystrap's CEL log, a policy pinning what
# they replay to) and, as a comparison in the same run, with no logs at all; the server's CPU per
# handshake as a multiple of the crypto floor (bench/crypto-floor.c: what the cryptography one
# attestation needs costs with OpenSSL on this machine), measured by server-load. Then it kills
# the server with SIGKILL mid-load, restarts it and checks that the audit chain verifies and
# that every certificate the load generator received has its audit record. Before that kill,
# the audit log's and envelope decryption's cost: the server at maximum without a log key,
# with it, with every node witnessing and with a secret released, in turn BENCH_COST_ROUNDS
# (2) times, and each step alone (build/bench/log-cost: leaf append, checkpoint, proofs, a
# secret's decryption) put per attestation against those runs. Not a test: a missed goal is
# reported, never fatal; a lost audit record makes it exit 1. BENCH_PG=1: one against two
# instances sharing one PostgreSQL database instead (bench/server-pg.bash).
set -euo pipefail

BUILD=${BUILD:-build}
NODES=${BENCH_NODES:-128}
# The offered rates of issue 15's figures (p50/p99 at each), then maximum throughput.
read -r -a RATES <<<"${BENCH_RATES:-500 1000}"
# A real machine's firmware log (59 events, sha1 and sha256, PCRs 0-9); the CEL log is made below.
EVENT_LOG=${BENCH_EVENT_LOG:-$PWD/tests/data/eventlogs/event-postcode.bin}
KEYSTRAP=$PWD/$BUILD/keystrap
SECONDS_EACH=${BENCH_SECONDS:-10}
CONCURRENCY=${BENCH_CONCURRENCY:-32}
SERVER=$PWD/$BUILD/keystrap-server
LOAD=$PWD/$BUILD/bench/server-load
# On disk, not tmpfs: the durable commits are the point.
DIR=$PWD/$BUILD/bench-server
# shellcheck source=bench/server-lib.bash
. bench/server-lib.bash

start() {
	"${1:-$SERVER}" serve --config "$DIR/server.json" 2>>"$DIR/server.log" &
	SRV_PID=$!
	for _ in $(seq 100); do
		curl -sf --cacert "$DIR/ca.crt" "https://127.0.0.1:$PORT/healthz" >/dev/null 2>&1 && return 0
		sleep 0.05
	done
	echo "bench-server: the server did not start; see $DIR/server.log" >&2
	exit 1
}

stop() {
	kill "$SRV_PID" 2>/dev/null || true
	wait "$SRV_PID" 2>/dev/null || true
	SRV_PID=
}

rm -rf "$DIR"
mkdir -p "$DIR"
PORT=$(free_port)
server_pki "$DIR"
# The simulated nodes' EK manufacturer CA and the server's configuration, signed policies by two
# operators (k = 2 of 2), as storm.bats has them (tests/lib/server.bash; it loads policy 1, for
# zero-log). All simulated nodes come from 127.0.0.1, so the per-address rate limit is off.
OPERATOR_DIR=$DIR/operators
soft_ek_ca "$DIR"
SRV_PORT=$PORT soft_server_config "$DIR" "$DIR/keystrap.db"

# The measurement log as the initrd writes it: keystrap measure on a TPM with a real machine's
# banks (swtpm, sha1 and sha256), the configuration and enter-initrd, before the attestation.
SWTPM_PCR_BANKS=sha1,sha256 swtpm_start "$DIR/tpm" || { echo "bench-server: swtpm does not start" >&2; exit 1; }
"$KEYSTRAP" measure --config dist/keystrap.conf.example --log "$DIR/measure.log" >/dev/null
"$KEYSTRAP" measure --phase enter-initrd --log "$DIR/measure.log" >/dev/null
swtpm_stop
REAL=(--event-log "$EVENT_LOG" --measure-log "$DIR/measure.log")

# policy_put FILE REFERENCE_PCRS [ALLOWED_EVENTS]: the next policy version, signed by both
# operators, loaded.
expires=$(date -u -d '+1 day' +%Y-%m-%dT%H:%M:%SZ)
# soft_server_config loaded policy 1.
POLICY_VERSION=1
policy_put() {
	POLICY_VERSION=$((POLICY_VERSION + 1))
	set -- "$POLICY_VERSION" "$@"
	jq -n --argjson v "$1" --arg e "$expires" --argjson pcrs "$3" --argjson events "${4:-null}" \
		'{version: $v, expires: $e, min_keystrap_version: "0.1.0", credential_lifetime: 600, pcr_bank: "sha256",
		  reference_pcrs: $pcrs} + (if $events then {allowed_events: $events} else {} end) +
		 {groups: {default: {secrets: []}}}' >"$2"
	policy_sign "$OPERATOR_DIR" "$2" op1 op2
	"$SERVER" policy load "$2" --signature "$2.op1.sig" --signature "$2.op2.sig" --config "$DIR/server.json" >/dev/null
}
# Real evidence: what the firmware log replays to pinned for PCRs 0, 2, 4, 7 and 9 (the
# operator guide's choice; the project's own replay, keystrap eventlog), PCR 12 checked by
# events (keystrap's phases and this configuration, SHA-256 of each event string).
REAL_PCRS=$("$KEYSTRAP" eventlog --json "$EVENT_LOG" | jq -c '.pcrs.sha256 | {"0": .["0"], "2": .["2"], "4": .["4"], "7": .["7"], "9": .["9"]}')
REAL_EVENTS=$(for e in enter-initrd attested leave-initrd "config:$(sha256sum <dist/keystrap.conf.example | cut -c1-64)"; do
	printf %s "keystrap:$e" | sha256sum | cut -c1-64
done | jq -R . | jq -sc '{"12": .}')
# Zero-log: no log, PCRs 0 and 7 quoted as zeros (what no log replays to), pinned as zeros.
zeros=$(printf '00%.0s' {1..32})
ZERO_PCRS="{\"0\":\"$zeros\",\"7\":\"$zeros\"}"

load() {
	"$LOAD" --url "https://127.0.0.1:$PORT" --ca "$DIR/ca.crt" --ek-ca-cert "$DIR/ek-ca.crt" \
		--ek-ca-key "$DIR/ek-ca.key" --nodes "$NODES" --concurrency "$CONCURRENCY" \
		--approve "$SERVER node approve --config $DIR/server.json" --floor "$DIR/floor" "$@"
}

echo "keystrap-server bench: $(nproc) cores, ${BENCH_PG:+PostgreSQL (below), not }SQLite (WAL; each batch fdatasynced on the sync thread before its replies) in $DIR, TLS 1.3 keep-alive,"
echo "$NODES simulated nodes (ECC P-256 EK/AK in software), $CONCURRENCY connections, ${SECONDS_EACH}s per run,"
echo "the server with workers $(nproc) (the default: the online CPUs) unless a mode says otherwise"
echo "load before: $(uptime)"
echo "crypto floor on this machine (build/bench/crypto-floor), every load of this run against it:"
"$PWD/$BUILD/bench/crypto-floor" "$DIR/floor" | sed 's/^/  /'
# BENCH_PG=1: one vs two instances on one PostgreSQL database instead (bench/server-pg.bash).
if [ -n "${BENCH_PG:-}" ]; then
	# shellcheck source=bench/server-pg.bash
	. bench/server-pg.bash
	exit 0
fi
rate_args=()
for r in "${RATES[@]}"; do rate_args+=(--rate "$r"); done
SUMMARY=$DIR/summary
: >"$SUMMARY"
echo "== real evidence: policy 2 pins PCRs 0 2 4 7 9 and checks PCR 12's events"
policy_put "$DIR/policy-real.json" "$REAL_PCRS" "$REAL_EVENTS"
start
load "${rate_args[@]}" --max --duration "$SECONDS_EACH" --server-pid "$SRV_PID" --summary "$SUMMARY" "${REAL[@]}"
echo "== zero-log (comparison): policy 3 pins PCRs 0 and 7 to zeros, nodes send no log"
policy_put "$DIR/policy-zero.json" "$ZERO_PCRS"
load "${rate_args[@]}" --max --duration "$SECONDS_EACH" --server-pid "$SRV_PID" --summary "$SUMMARY"
# The same server with workers 0 (every finish verified on the event loop's thread, as before
# the worker threads), same store, real evidence at each rate and at maximum: what the workers
# (workers $(nproc), the default, in the runs above) give on this machine, in one run.
if [ "${BENCH_WORKERS0:-1}" = 1 ]; then
	echo "== real evidence, workers 0 (the cryptography on the event loop's thread), same store"
	policy_put "$DIR/policy-real.json" "$REAL_PCRS" "$REAL_EVENTS"
	stop
	cp "$DIR/server.json" "$DIR/workers.json"
	jq '.workers = 0' "$DIR/workers.json" >"$DIR/server.json"
	start
	load "${rate_args[@]}" --max --duration "$SECONDS_EACH" --server-pid "$SRV_PID" --summary "$SUMMARY" \
		--mode "real evidence, workers 0" "${REAL[@]}"
	stop
	cp "$DIR/workers.json" "$DIR/server.json"
	start
fi
# Another keystrap-server binary (BENCH_BEFORE: say, main's before a change) on the same store,
# maximum throughput in both modes, for a before/after in one run.
if [ -n "${BENCH_BEFORE:-}" ]; then
	echo "== before: $BENCH_BEFORE, same store, maximum throughput"
	stop
	start "$BENCH_BEFORE"
	load --max --duration "$SECONDS_EACH" --server-pid "$SRV_PID" --summary "$SUMMARY" --mode "zero-log, before"
	policy_put "$DIR/policy-real.json" "$REAL_PCRS" "$REAL_EVENTS"
	load --max --duration "$SECONDS_EACH" --server-pid "$SRV_PID" --summary "$SUMMARY" --mode "real evidence, before" \
		"${REAL[@]}"
	stop
	start
fi
echo "load after:  $(uptime) (other work on this machine shows in these figures)"
# Side by side, one column per mode.
awk -F'\t' '
	{ if (!($1 in order)) { order[$1] = ++n; name[n] = $1 }
	  rate[$1, $2] = $3; p50[$1, $2] = $4; p99[$1, $2] = $5; cpu[$1, $2] = $6; fl[$1, $2] = $7
	  loop[$1, $2] = $8; work[$1, $2] = $9; gen[$1, $2] = $10
	  if ($2 != "max" && !($2 in runs)) { runs[$2] = 1; run[++nr] = $2 } }
	END {
		printf "%-26s", "side by side"; for (i = 1; i <= n; i++) printf " %-28s", name[i]; print ""
		printf "%-26s", "max handshakes/s"; for (i = 1; i <= n; i++) printf " %-28.1f", rate[name[i], "max"]; print ""
		for (k = 1; k <= nr; k++) {
			r = run[k]
			split(r, w, "[ /]"); offered = w[2]
			printf "%-26s", r " p50 / p99 ms"
			for (i = 1; i <= n; i++) {
				m = name[i]
				if (!((m, r) in rate)) s = "-"
				else if (rate[m, r] < 0.95 * offered) s = sprintf("not reached (%.0f/s)", rate[m, r])
				else s = sprintf("%.1f / %.1f", p50[m, r], p99[m, r])
				printf " %-28s", s
			}
			print ""
		}
		printf "%-26s", "CPU/handshake at max"
		for (i = 1; i <= n; i++) printf " %-28s", sprintf("%.2f ms = %.1fx floor %.2f", cpu[name[i], "max"], cpu[name[i], "max"] / fl[name[i], "max"], fl[name[i], "max"])
		print ""
		# That CPU by thread, and the load generator beside it on the same cores (server-load).
		row("loop thread at max", loop); row("workers at max", work); row("load generator at max", gen)
	}
	# row LABEL V: V at max in each mode; "-" where the server'"'"'s CPU is unknown or the line has no V.
	function row(label, v,   i, k) {
		printf "%-26s", label
		for (i = 1; i <= n; i++) {
			k = name[i] SUBSEP "max"
			printf " %-28s", (v[k] == "" || cpu[k] == 0 ? "-" : sprintf("%.2f ms / handshake", v[k]))
		}
		print ""
	}' "$SUMMARY"
# The rest of the run with real evidence again.
policy_put "$DIR/policy.json" "$REAL_PCRS" "$REAL_EVENTS"

# The audit log's cost, same run, same store, real evidence: no log key (records and their Merkle leaves,
# nothing signed), the log key (a checkpoint signed at every batch commit), and every node
# witnessing (its record's inclusion proof and a consistency proof from the first checkpoint).
# metric NAME: the server's counter NAME now (/metrics).
metric() {
	curl -sf --cacert "$DIR/ca.crt" "https://127.0.0.1:$PORT/metrics" | awk -v m="$1" '$1 == m { print $2 }'
}
# cost_run LABEL LOAD_ARGS...: one run at maximum, its lines shown; a line to $DIR/cost: LABEL,
# handshakes, handshakes/s, server CPU ms per handshake, audit records and commits during it,
# finish reply bytes on average.
: >"$DIR/cost"
cost_run() {
	local label=$1 out=$DIR/cost-$1 r0 r1 c0 c1
	shift
	r0=$(metric keystrap_audit_records_total) c0=$(metric keystrap_store_commits_total)
	load --max --duration "$SECONDS_EACH" --server-pid "$SRV_PID" "$@" >"$out"
	r1=$(metric keystrap_audit_records_total) c1=$(metric keystrap_store_commits_total)
	sed -n '/^max/,$p' "$out"
	printf '%s %s %s %s %s %s\n' "$label" \
		"$(sed -En 's|^max +([0-9]+) handshakes in +[0-9.]+ s = +([0-9.]+)/s.*|\1 \2|p' "$out")" \
		"$(sed -En 's/.*server CPU ([0-9.]+) ms per handshake.*/\1/p' "$out" | grep . || echo 0)" \
		"$((r1 - r0))" "$((c1 - c0))" \
		"$(sed -En 's/.*finish replies ([0-9]+) bytes on average.*/\1/p' "$out" | grep . || echo 0)" >>"$DIR/cost"
}
# policy_with FILE SECRETS: the real-evidence policy as the next version, the nodes' group
# given the secrets SECRETS (a JSON array), signed and loaded; the running server takes it.
policy_with() {
	POLICY_VERSION=$((POLICY_VERSION + 1))
	jq --argjson v "$POLICY_VERSION" --argjson s "$2" '.version = $v | .groups.default.secrets = $s' "$DIR/policy.json" >"$1"
	policy_sign "$OPERATOR_DIR" "$1" op1 op2
	"$SERVER" policy load "$1" --signature "$1.op1.sig" --signature "$1.op2.sig" --config "$DIR/server.json" >/dev/null
}
ROUNDS=${BENCH_COST_ROUNDS:-2}
# BENCH_COST_ROUNDS=0: no audit-log cost runs (nothing to average).
if [ "$ROUNDS" -eq 0 ]; then
	echo "audit log cost: not measured (BENCH_COST_ROUNDS=0)"
else
	echo "audit log cost, ${SECONDS_EACH}s at maximum each, one server at a time on the same store, the four"
	echo "in turn $ROUNDS times (this machine is shared: what runs beside it moves one run, less the mean):"
	cp "$DIR/server.json" "$DIR/signed.json"
	jq 'del(.log_key)' "$DIR/signed.json" >"$DIR/unsigned.json"
	# Envelope decryption: one secret in the nodes' group (its data key unwrapped and the value
	# decrypted per attestation, then sealed into the payload for the node's TPM).
	head -c 32 /dev/urandom | base64 | "$SERVER" secret set bench.secret --config "$DIR/server.json" >/dev/null
	for round in $(seq "$ROUNDS"); do
		stop
		cp "$DIR/unsigned.json" "$DIR/server.json"
		start
		echo "  [$round] no log key (records and their leaves, nothing signed):"
		cost_run unsigned "${REAL[@]}"
		stop
		cp "$DIR/signed.json" "$DIR/server.json"
		start
		echo "  [$round] log key, checkpoint per batch:"
		cost_run signed "${REAL[@]}"
		echo "  [$round] log key, every node witnessing:"
		cost_run witness "${REAL[@]}" --witness
		policy_with "$DIR/policy-secret.json" '["bench.secret"]'
		echo "  [$round] log key, one secret released per attestation (envelope decryption):"
		cost_run secret "${REAL[@]}"
		policy_with "$DIR/policy-nosecret.json" '[]'
	done
	LOG_SIZE=$("$SERVER" audit checkpoint --config "$DIR/server.json" | sed -n 2p)
	echo "  log size now $LOG_SIZE records;" \
		"checkpoints signed: $(grep -c 'audit checkpoint:' "$DIR/server.log") logged (at most one a second)"
	# Each step on its own (bench/log-cost.c), on fresh stores beside the server's, the log as long
	# as the server's now and batches of the size the signed run committed; then per attestation,
	# against the runs above.
	BATCH=$(awk '$1 == "signed" { r += $5; c += $6 } END { print c ? int((r + c - 1) / c) : 1 }' "$DIR/cost")
	"$PWD/$BUILD/bench/log-cost" "$DIR" "$DIR/kek" "$OPERATOR_DIR/log.key" --records "$LOG_SIZE" --batch "$BATCH" >"$DIR/log-cost"
	awk -v out="$DIR/log-cost" '
		BEGIN { while ((getline l < out) > 0) { split(l, w, " "); c[w[1]] = w[2] } }
		{ k[$1]++; n[$1] += $2; rate[$1] += $3; cpu[$1] += $4; recs[$1] += $5; commits[$1] += $6; reply[$1] += $7
		  lo[$1] = k[$1] == 1 || $3 < lo[$1] ? $3 : lo[$1]; hi[$1] = $3 > hi[$1] ? $3 : hi[$1] }
		END {
			for (m in k) { rate[m] /= k[m]; cpu[m] /= k[m]; reply[m] /= k[m] }
			rpa = recs["signed"] / n["signed"]; apc = n["signed"] / commits["signed"]
			printf "the log per attestation (build/bench/log-cost: each step alone, %d records, batches of %d records):\n", c["records"], c["batch"]
			printf "  records       %.2f per attestation (%d in %d attestations), %.1f attestations per commit (%d commits)\n", rpa, recs["signed"], n["signed"], apc, commits["signed"]
			printf "  leaf append   %.1f us a leaf (of a record'"'"'s %.1f us in the store) x %.2f = %.1f us per attestation, %.2f%% of its %.2f ms server CPU\n", c["leaf_us"], c["record_us"], rpa, c["leaf_us"] * rpa, 100 * c["leaf_us"] * rpa / (1e3 * cpu["signed"]), cpu["signed"]
			printf "  checkpoint    %.1f us a signature and its row / %.1f attestations a commit = %.1f us per attestation, %.2f%% of its CPU\n", c["checkpoint_us"], apc, c["checkpoint_us"] / apc, 100 * c["checkpoint_us"] / apc / (1e3 * cpu["signed"])
			printf "  proofs        inclusion %.1f hashes (a fresh record), consistency from size 1 %d: %d bytes raw, about %d in the JSON (base64);\n", c["inclusion_hashes"], c["consistency_hashes"], 32 * (c["inclusion_hashes"] + c["consistency_hashes"]), 47 * (c["inclusion_hashes"] + c["consistency_hashes"])
			printf "                read from the store in %.1f us, %.2f%% of the CPU per witnessing attestation; finish reply %d bytes\n", c["prove_us"], 100 * c["prove_us"] / (1e3 * cpu["witness"]), reply["witness"]
			printf "                witnessing against %d not (+%d, the checkpoint included)\n", reply["signed"], reply["witness"] - reply["signed"]
			printf "  envelope      %.1f us a secret read and decrypted (data key unwrapped, AES-256-GCM), %.2f%% of the CPU per attestation\n", c["secret_us"], 100 * c["secret_us"] / (1e3 * cpu["secret"])
			printf "  throughput    (mean of %d runs each, lowest-highest) no log key %.1f/s (%.0f-%.0f); log key %.1f/s (%.0f-%.0f) = %.3fx;\n", k["signed"], rate["unsigned"], lo["unsigned"], hi["unsigned"], rate["signed"], lo["signed"], hi["signed"], rate["signed"] / rate["unsigned"]
			printf "                witnessing %.1f/s (%.0f-%.0f) = %.3fx; one secret %.1f/s (%.0f-%.0f) = %.3fx of log key\n", rate["witness"], lo["witness"], hi["witness"], rate["witness"] / rate["unsigned"], rate["secret"], lo["secret"], hi["secret"], rate["secret"] / rate["signed"]
			printf "  CPU/handshake no log key %.2f ms; log key %.2f ms (%+.2f); witnessing %.2f ms (%+.2f); one secret %.2f ms (%+.2f)\n", cpu["unsigned"], cpu["signed"], cpu["signed"] - cpu["unsigned"], cpu["witness"], cpu["witness"] - cpu["unsigned"], cpu["secret"], cpu["secret"] - cpu["signed"]
		}' "$DIR/cost"
	echo "  load now: $(uptime) (a shared machine: the throughput ratios move with it, the steps alone less)"
fi

# SIGKILL mid-load: everything a node received must be in the audit log after a restart.
load --max --duration 6 --kill "$SRV_PID" --kill-after 3 --serials "$DIR/serials" "${REAL[@]}"
wait "$SRV_PID" 2>/dev/null || true
SRV_PID=
start
verify=$("$SERVER" audit verify --config "$DIR/server.json") || {
	echo "bench-server: audit verify FAILED after SIGKILL: $verify" >&2
	exit 1
}
echo "after SIGKILL  restarted; ${verify//$'\n'/; }"
"$SERVER" audit export --config "$DIR/server.json" |
	jq -r 'select(.action == "attest-finish" and .decision == "allow") | .reasons' |
	sed -n 's/^certificate \([0-9a-f]*\) issued.*/\1/p' | sort >"$DIR/audited"
sort "$DIR/serials" >"$DIR/received"
received=$(wc -l <"$DIR/received")
missing=$(comm -23 "$DIR/received" "$DIR/audited" | wc -l)
echo "               $received certificates received by the nodes in that run, $missing without an audit record"
[ "$missing" -eq 0 ]
