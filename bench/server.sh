#!/usr/bin/env bash
# make bench-server: one keystrap-server (plain build, SQLite store on disk) against
# build/bench/server-load simulating BENCH_NODES nodes with software TPMs. Prints full
# handshakes per second, p50/p99 at a fixed offered rate and at maximum throughput, then kills
# the server with SIGKILL mid-load, restarts it and checks that the audit chain verifies and
# that every certificate the load generator received has its audit record. Not a test: a
# missed goal is reported, never fatal; a lost audit record makes it exit 1.
set -euo pipefail

BUILD=${BUILD:-build}
NODES=${BENCH_NODES:-128}
RATE=${BENCH_RATE:-500}
# A rate this machine sustains, to show latency below saturation next to the goal's 500/s.
LOW_RATE=${BENCH_LOW_RATE:-50}
SECONDS_EACH=${BENCH_SECONDS:-10}
CONCURRENCY=${BENCH_CONCURRENCY:-32}
SERVER=$PWD/$BUILD/keystrap-server
LOAD=$PWD/$BUILD/bench/server-load
# On disk, not tmpfs: the durable commits are the point.
DIR=$PWD/$BUILD/bench-server
# shellcheck source=bench/server-lib.bash
. bench/server-lib.bash

start() {
	"$SERVER" serve --config "$DIR/server.json" 2>>"$DIR/server.log" &
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
# The simulated nodes' EK manufacturer CA, the server's configuration and the policy for what
# server-load quotes (PCRs 0 and 7 as zeros, no event log), signed by two operators (k = 2 of 2),
# as storm.bats has them (tests/lib/server.bash). All simulated nodes come from 127.0.0.1, so
# the per-address rate limit is off.
OPERATOR_DIR=$DIR/operators
soft_ek_ca "$DIR"
SRV_PORT=$PORT soft_server_config "$DIR" "$DIR/keystrap.db"

load() {
	"$LOAD" --url "https://127.0.0.1:$PORT" --ca "$DIR/ca.crt" --ek-ca-cert "$DIR/ek-ca.crt" \
		--ek-ca-key "$DIR/ek-ca.key" --nodes "$NODES" --concurrency "$CONCURRENCY" \
		--approve "$SERVER node approve --config $DIR/server.json" "$@"
}

echo "keystrap-server bench: $(nproc) cores, SQLite (WAL, synchronous=FULL) in $DIR, TLS 1.3 keep-alive,"
echo "$NODES simulated nodes (ECC P-256 EK/AK in software), $CONCURRENCY connections, ${SECONDS_EACH}s per run"
start
load --rate "$LOW_RATE" --rate "$RATE" --max --duration "$SECONDS_EACH" --server-pid "$SRV_PID"

# The audit log's cost, same run, same store: no log key (records and their Merkle leaves,
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
load --max --duration "$SECONDS_EACH" --server-pid "$SRV_PID" | sed -n '/^max/,$p'
stop
cp "$DIR/signed.json" "$DIR/server.json"
start
echo "  log key, checkpoint per batch:"
load --max --duration "$SECONDS_EACH" --server-pid "$SRV_PID" | sed -n '/^max/,$p'
echo "  log key, every node witnessing:"
load --max --duration "$SECONDS_EACH" --server-pid "$SRV_PID" --witness | sed -n '/^max/,$p'
# Envelope decryption: the same, with one secret in the nodes' group (its data key unwrapped
# and the value decrypted per attestation, then sealed into the payload for the node's TPM).
head -c 32 /dev/urandom | base64 | "$SERVER" secret set bench.secret --config "$DIR/server.json" >/dev/null
jq '.version = 2 | .groups.default.secrets = ["bench.secret"]' "$DIR/policy.json" >"$DIR/policy-secret.json"
policy_sign "$OPERATOR_DIR" "$DIR/policy-secret.json" op1 op2
"$SERVER" policy load "$DIR/policy-secret.json" --signature "$DIR/policy-secret.json.op1.sig" \
	--signature "$DIR/policy-secret.json.op2.sig" --config "$DIR/server.json" >/dev/null
echo "  log key, one secret released per attestation (envelope decryption):"
load --max --duration "$SECONDS_EACH" --server-pid "$SRV_PID" | sed -n '/^max/,$p'
echo "  log size now $("$SERVER" audit checkpoint --config "$DIR/server.json" | sed -n 2p) records;" \
	"checkpoints signed: $(grep -c 'audit checkpoint:' "$DIR/server.log") logged (at most one a second)"

# SIGKILL mid-load: everything a node received must be in the audit log after a restart.
load --max --duration 6 --kill "$SRV_PID" --kill-after 3 --serials "$DIR/serials"
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
