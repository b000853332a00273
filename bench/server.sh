#!/usr/bin/env bash
# make bench-server: one keystrap-server (plain build, SQLite store on disk) against
# build/bench/server-load simulating BENCH_NODES nodes with software TPMs. Prints full
# handshakes per second, p50/p99 at fixed offered rates and at maximum throughput, with real
# evidence (a real machine's firmware event log and keystrap's CEL log, a policy pinning what
# they replay to) and, as a comparison in the same run, with no logs at all; the server's CPU per
# handshake as a multiple of the crypto floor (bench/crypto-floor.c: what the cryptography one
# attestation needs costs with OpenSSL on this machine), measured by server-load. Then it kills
# the server with SIGKILL mid-load, restarts it and checks that the audit chain verifies and
# that every certificate the load generator received has its audit record. Not a test: a
# missed goal is reported, never fatal; a lost audit record makes it exit 1.
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

echo "keystrap-server bench: $(nproc) cores, SQLite (WAL, synchronous=FULL) in $DIR, TLS 1.3 keep-alive,"
echo "$NODES simulated nodes (ECC P-256 EK/AK in software), $CONCURRENCY connections, ${SECONDS_EACH}s per run"
echo "load before: $(uptime)"
echo "crypto floor on this machine (build/bench/crypto-floor), every load of this run against it:"
"$PWD/$BUILD/bench/crypto-floor" "$DIR/floor" | sed 's/^/  /'
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
	}' "$SUMMARY"
# The rest of the run with real evidence again.
policy_put "$DIR/policy.json" "$REAL_PCRS" "$REAL_EVENTS"

# The audit log's cost, same run, same store, real evidence: no log key (records and their Merkle leaves,
# nothing signed), the log key (a checkpoint signed at every batch commit), and every node
# witnessing (its record's inclusion proof and a consistency proof from the first checkpoint).
stop() {
	kill "$SRV_PID" 2>/dev/null || true
	wait "$SRV_PID" 2>/dev/null || true
	SRV_PID=
}
echo "audit log cost, ${SECONDS_EACH}s at maximum each, one server at a time on the same store:"
cp "$DIR/server.json" "$DIR/signed.json"
jq 'del(.log_key)' "$DIR/signed.json" >"$DIR/unsigned.json"
stop
cp "$DIR/unsigned.json" "$DIR/server.json"
start
echo "  no log key:"
load --max --duration "$SECONDS_EACH" --server-pid "$SRV_PID" "${REAL[@]}" | sed -n '/^max/,$p'
stop
cp "$DIR/signed.json" "$DIR/server.json"
start
echo "  log key, checkpoint per batch:"
load --max --duration "$SECONDS_EACH" --server-pid "$SRV_PID" "${REAL[@]}" | sed -n '/^max/,$p'
echo "  log key, every node witnessing:"
load --max --duration "$SECONDS_EACH" --server-pid "$SRV_PID" "${REAL[@]}" --witness | sed -n '/^max/,$p'
# Envelope decryption: the same, with one secret in the nodes' group (its data key unwrapped
# and the value decrypted per attestation, then sealed into the payload for the node's TPM).
head -c 32 /dev/urandom | base64 | "$SERVER" secret set bench.secret --config "$DIR/server.json" >/dev/null
jq ".version = $((POLICY_VERSION + 1)) | .groups.default.secrets = [\"bench.secret\"]" "$DIR/policy.json" >"$DIR/policy-secret.json"
policy_sign "$OPERATOR_DIR" "$DIR/policy-secret.json" op1 op2
"$SERVER" policy load "$DIR/policy-secret.json" --signature "$DIR/policy-secret.json.op1.sig" \
	--signature "$DIR/policy-secret.json.op2.sig" --config "$DIR/server.json" >/dev/null
echo "  log key, one secret released per attestation (envelope decryption):"
load --max --duration "$SECONDS_EACH" --server-pid "$SRV_PID" "${REAL[@]}" | sed -n '/^max/,$p'
echo "  log size now $("$SERVER" audit checkpoint --config "$DIR/server.json" | sed -n 2p) records;" \
	"checkpoints signed: $(grep -c 'audit checkpoint:' "$DIR/server.log") logged (at most one a second)"

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
