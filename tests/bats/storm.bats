#!/usr/bin/env bats
# keystrap-server beyond capacity (issue 15, "overload behaves"): a reboot storm of simulated
# nodes (build/bench/server-load --storm: the software TPM of server/soft-node.c, each request
# on a new connection, busy answers waited out as keystrap attest does, retry_wait_ms) against a
# real server on loopback. Every node must attest, the overload path (503 + Retry-After) must
# have been taken, and the audit log must hold one record per certificate and verify; a SIGKILL
# in the middle of the storm loses no record a node was answered with. Idle connections by the
# ten thousand leave the server's memory bounded and a node still served.

load ../lib/swtpm
load ../lib/server

LOAD=$BATS_TEST_DIRNAME/../../build/bench/server-load
HOLD=$BATS_TEST_DIRNAME/../lib/conn-hold.py
# The storm: more nodes at once than the sanitizer build of the server turns around within
# max_queue_delay on this machine's two cores.
STORM_NODES=${STORM_NODES:-240}
# The memory bound: what one idle connection may add to the server, KiB (measured: 36 KiB
# in the sanitizer build, 11.7 KiB in the plain one).
RSS_PER_CONNECTION_KIB=${RSS_PER_CONNECTION_KIB:-48}

setup_file() {
	[ -x "$LOAD" ] || skip "build/bench/server-load is not built (make build/bench/server-load)"
	export SRV_DIR=$BATS_FILE_TMPDIR/srv SRV_PORT
	SRV_PORT=$(free_port)
	server_pki "$SRV_DIR"
	soft_ek_ca "$SRV_DIR"
}

setup() {
	cd "$BATS_TEST_TMPDIR"
}

teardown() {
	[ -z "${HOLDER:-}" ] || kill "$HOLDER" 2>/dev/null || true
	[ -z "${LOADER:-}" ] || kill "$LOADER" 2>/dev/null || true
	[ ! -e "$BATS_TEST_TMPDIR/srv/server.pid" ] || server_stop "$BATS_TEST_TMPDIR/srv" || true
}

# storm_server EXTRA-JSON: a server of this test's own (its own database) on $SRV_PORT with the
# file's PKI (soft_server_config), EXTRA-JSON added to its configuration.
storm_server() {
	local d=$BATS_TEST_TMPDIR/srv
	mkdir -p "$d"
	cp "$SRV_DIR"/{ca,tls,ek-ca}.{crt,key} "$d/"
	SRV_PORT=$(free_port)
	soft_server_config "$d" "$d/keystrap.db" "$1"
	server_start "$d"
	STORM=$d
}

# storm_load ARGS...: the storm against $STORM's server, every node approved in one command.
storm_load() {
	"$LOAD" --url "https://127.0.0.1:$SRV_PORT" --ca "$STORM/ca.crt" --ek-ca-cert "$STORM/ek-ca.crt" \
		--ek-ca-key "$STORM/ek-ca.key" --nodes "$STORM_NODES" --concurrency "$STORM_NODES" --storm \
		--approve-batch --approve "$KEYSTRAP_SERVER node approve --config $STORM/server.json" "$@"
}

# audit_count ACTION DECISION: how many records of that kind the audit log holds.
audit_count() {
	"$KEYSTRAP_SERVER" audit export --config "$STORM/server.json" |
		jq -s --arg a "$1" --arg d "$2" '[.[] | select(.action == $a and .decision == $d)] | length'
}

@test "a reboot storm beyond capacity converges: every node attests, 503s with Retry-After were answered, one audit record each" {
	# Beyond capacity whatever the server's speed: 240 nodes at once are more than a few ms of
	# work for its loop and its workers alike (at 20 ms a fast server absorbed them whole).
	storm_server '"max_queue_delay":2,"retry_after":1,"max_connections_per_address":4096'
	run storm_load --duration 50 --serials serials --server-pid "$(cat "$STORM/server.pid")"
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" == *"storm          $STORM_NODES nodes, $STORM_NODES at a time, new connections: $STORM_NODES attested in"* ]]
	[[ "$output" == *", 0 failed;"* ]]
	# The overload path was taken: busy answers, each a 503 (no rate limit here).
	[[ "$output" =~ \(503:\ ([0-9]+), ]]
	[ "${BASH_REMATCH[1]}" -gt 0 ]
	# One certificate per node, one record per certificate, and the chain verifies.
	[ "$(sort -u serials | wc -l)" -eq "$STORM_NODES" ]
	[ "$(audit_count attest-finish allow)" -eq "$STORM_NODES" ]
	[ "$(audit_count overload deny)" -gt 0 ]
	"$KEYSTRAP_SERVER" audit export --config "$STORM/server.json" >audit.jsonl
	while read -r serial; do
		grep -q "$serial" audit.jsonl || { echo "no record names $serial"; return 1; }
	done <serials
	run "$KEYSTRAP_SERVER" audit verify --config "$STORM/server.json"
	[ "$status" -eq 0 ]
	# Refused cheaply: the log line of the audited 503s, and the metric counting them all.
	grep -q 'action=overload decision=deny' "$STORM/server.log"
	run curl -s --cacert "$STORM/ca.crt" "https://127.0.0.1:$SRV_PORT/metrics"
	[[ "$output" =~ keystrap_overload_refused_total\ ([0-9]+) ]]
	[ "${BASH_REMATCH[1]}" -gt 0 ]
	# Both queues the refusals read, in time, for the operator's graphs.
	[[ "$output" == *"# TYPE keystrap_event_loop_lag_seconds gauge"* ]]
	[[ "$output" =~ keystrap_workers_queue_wait_seconds\ [0-9.]+ ]]
}

@test "... its twin: the same storm under a max_queue_delay it never reaches gets no 503 at all" {
	storm_server '"max_queue_delay":60000,"max_connections_per_address":4096'
	run storm_load --duration 50 --server-pid "$(cat "$STORM/server.pid")"
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" == *" $STORM_NODES attested in"* ]]
	[[ "$output" == *"(503: 0, 429: 0)"* ]]
	[ "$(audit_count overload deny)" -eq 0 ]
}

@test "SIGKILL in the middle of the storm loses no record: every answered certificate has its record, the log verifies, every node attests after the restart" {
	storm_server '"max_queue_delay":20,"retry_after":1,"max_connections_per_address":4096'
	pid=$(cat "$STORM/server.pid")
	storm_load --duration 50 --serials serials --kill "$pid" --kill-after 1.5 >storm.out 2>&1 &
	LOADER=$!
	# The server dies; the same one starts again on its store, and the nodes find it.
	while kill -0 "$pid" 2>/dev/null; do
		kill -0 "$LOADER" 2>/dev/null || { cat storm.out; echo "the storm ended without killing the server"; return 1; }
		sleep 0.05
	done
	wait "$pid" 2>/dev/null || true
	server_start "$STORM"
	rc=0
	wait "$LOADER" || rc=$?
	LOADER=
	cat storm.out
	[ "$rc" -eq 0 ]
	grep -q "killed with SIGKILL after" storm.out
	[[ "$(cat storm.out)" == *" $STORM_NODES attested in"* ]]
	# Every certificate a node was answered with, before or after the kill, has its record.
	"$KEYSTRAP_SERVER" audit export --config "$STORM/server.json" >audit.jsonl
	[ "$(sort -u serials | wc -l)" -eq "$STORM_NODES" ]
	while read -r serial; do
		grep -q "$serial" audit.jsonl || { echo "no record names $serial"; return 1; }
	done <serials
	# At least one allowed finish per node; more only where a reply was lost with the server.
	[ "$(audit_count attest-finish allow)" -ge "$STORM_NODES" ]
	run "$KEYSTRAP_SERVER" audit verify --config "$STORM/server.json"
	echo "$output"
	[ "$status" -eq 0 ]
}

# rss PID: the process's resident set, KiB, from /proc.
rss() {
	awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"
}

@test "10,000 idle connections (1,000 of them through TLS) keep the server's memory bounded, and a fresh node attests" {
	# The server's open-file limit raised for them (it raises its soft limit to this hard one).
	ulimit -n 24000 2>/dev/null || ulimit -n "$(ulimit -Hn)"
	[ "$(ulimit -n)" -ge 10200 ] || skip "the open-file limit $(ulimit -n) cannot be raised to 10200"
	storm_server '"max_connections":12000,"max_connections_per_address":12000,"request_timeout":120'
	pid=$(cat "$STORM/server.pid")
	before=$(rss "$pid")
	python3 "$HOLD" idle "$SRV_PORT" "$STORM/ca.crt" 10000 1000 status &
	HOLDER=$!
	for _ in $(seq 1200); do
		[ -e status ] && break
		kill -0 "$HOLDER" || { echo "the holder died"; return 1; }
		sleep 0.05
	done
	[ "$(cat status)" = "opened=10000 tls=1000" ]
	# Every one is the server's, not the kernel's backlog's.
	[ "$(ls "/proc/$pid/fd" | wc -l)" -gt 10000 ]
	held=$(rss "$pid")
	echo "RSS: $before KiB idle, $held KiB with 10,000 connections open ($(((held - before) * 1024 / 10000)) bytes per connection)"
	[ $((held - before)) -lt $((RSS_PER_CONNECTION_KIB * 10000)) ]
	# A node that comes now is served.
	STORM_NODES=1 run storm_load --duration 20
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" == *" 1 attested in"* ]]
}

@test "max_queue_delay and retry_after out of range: refused by name, one line, exit 1; at their bounds, accepted" {
	storm_server ''
	server_stop "$STORM"
	for kv in '"max_queue_delay":0' '"max_queue_delay":60001' '"retry_after":0' '"retry_after":3601'; do
		sed "s|\"policy_threshold\":2|\"policy_threshold\":2,$kv|" "$STORM/server.json" >bad.json
		run "$KEYSTRAP_SERVER" policy show --config bad.json
		[ "$status" -eq 1 ]
		[ "${#lines[@]}" -eq 1 ]
		case $kv in
		*max_queue_delay*) [ "$output" = "keystrap-server: bad.json: 'max_queue_delay' is not a number from 1 to 60000" ] ;;
		*) [ "$output" = "keystrap-server: bad.json: 'retry_after' is not a number from 1 to 3600" ] ;;
		esac
	done
	for kv in '"max_queue_delay":1,"retry_after":3600' '"max_queue_delay":60000,"retry_after":1'; do
		sed "s|\"policy_threshold\":2|\"policy_threshold\":2,$kv|" "$STORM/server.json" >ok.json
		"$KEYSTRAP_SERVER" policy show --config ok.json >/dev/null
	done
}
