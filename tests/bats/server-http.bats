#!/usr/bin/env bats
# keystrap-server's HTTP surface (issue 5): per-address rate limiting (429 + Retry-After, an
# audit record), the cap on pending enrollment requests, /healthz, /metrics, 404/405/413 as
# JSON, keep-alive, SIGTERM and sd_notify. A real server on loopback over a real swtpm; a
# second loopback address (127.0.0.2) plays the flooding node.

load ../lib/swtpm
load ../lib/server

PEER=$BATS_TEST_DIRNAME/../../build/asan/attest-peer

setup_file() {
	swtpm_start
	export SRV_DIR=$BATS_FILE_TMPDIR/srv SRV_PORT U
	SRV_PORT=$(free_port)
	server_pki "$SRV_DIR"
	server_config "$SRV_DIR" "0 7"
	server_start "$SRV_DIR"
	U=$(head -c 32 /dev/urandom | xxd -p -c 64)
	"$PEER" start "$U" >"$BATS_FILE_TMPDIR/start.json"
}

teardown_file() {
	server_stop "$SRV_DIR" || true
	swtpm_stop
}

setup() {
	cd "$BATS_TEST_TMPDIR"
	mkdir -p out
}

teardown() {
	[ -z "${SRV2:-}" ] || server_stop "$SRV2" || true
	# The small file system the full-disk test made, once its server is gone.
	[ -z "${FULL:-}" ] || ! mountpoint -q "$FULL" || umount "$FULL"
	# What the SIGTERM test started, if it failed before stopping it.
	local p
	for p in $(cat "$BATS_TEST_TMPDIR"/srv3/*.pid 2>/dev/null); do
		kill "$p" 2>/dev/null || true
	done
}

# server2 EXTRA-JSON: a second server of this test's own (its own database), with EXTRA-JSON
# members added to the configuration; sets SRV2 (its directory) and SRV2_PORT.
server2() {
	SRV2=$BATS_TEST_TMPDIR/srv2
	mkdir -p "$SRV2"
	cp "$SRV_DIR"/{ca,tls}.{crt,key} "$SRV2/"
	SRV2_PORT=$(free_port)
	SRV_PORT=$SRV2_PORT server_config "$SRV2" "0 7" "$1"
	SRV_PORT=$SRV2_PORT server_start "$SRV2"
}

# req PORT [curl options...] URL-PATH: prints the status line, the headers we check, then the body.
req() {
	local port=$1
	shift
	curl -s --cacert "$SRV_DIR/ca.crt" -D headers -o body "${@:1:$#-1}" "https://127.0.0.1:$port${*: -1}"
	head -1 headers | tr -d '\r'
	grep -i -E '^(retry-after|allow|content-type):' headers | tr -d '\r' | sort
	cat body
}

@test "a flooding address gets 429 with Retry-After and an audit record; another address is unaffected" {
	server2 '"rate_limit":1,"rate_burst":3'
	local codes="" i
	for i in 1 2 3 4 5 6 7 8; do
		codes+="$(curl -s -o /dev/null -w '%{http_code}' --interface 127.0.0.2 --cacert "$SRV_DIR/ca.crt" \
			--data-binary "@$BATS_FILE_TMPDIR/start.json" "https://127.0.0.1:$SRV2_PORT/v1/attest/start") "
	done
	# The burst (3) passes to the handshake (an unapproved node: 403), the rest is refused.
	[ "$codes" = "403 403 403 429 429 429 429 429 " ]
	run req "$SRV2_PORT" --interface 127.0.0.2 --data-binary "@$BATS_FILE_TMPDIR/start.json" /v1/attest/start
	[ "${lines[0]}" = "HTTP/1.1 429 Too Many Requests" ]
	[ "${lines[1]}" = "Content-Type: application/json" ]
	[ "${lines[2]}" = "Retry-After: 1" ]
	[[ "${lines[3]}" == '{"error":"rate limited: too many requests from this address'* ]]
	# The positive twin: the same request from 127.0.0.1 meanwhile reaches the handshake.
	run req "$SRV2_PORT" --data-binary "@$BATS_FILE_TMPDIR/start.json" /v1/attest/start
	[ "${lines[0]}" = "HTTP/1.1 403 Forbidden" ]
	[ "${lines[2]}" = '{"error":"node is not approved yet: its enrollment request awaits an operator"}' ]
	# The refusals are recorded (at most one record per address and second, with the count).
	run "$KEYSTRAP_SERVER" audit export --config "$SRV2/server.json"
	[[ "$output" == *'"peer":"127.0.0.2:'*'"action":"rate-limit","decision":"deny","reasons":"rate limited: too many requests from this address (1 refused since the last record; rate_limit 1/s, rate_burst 3)"'* ]]
	run "$KEYSTRAP_SERVER" audit verify --config "$SRV2/server.json"
	[ "$status" -eq 0 ]
	grep -q 'event=request peer=127.0.0.2:[0-9]* path=/v1/attest/start status=429 action=rate-limit decision=deny' "$SRV2/server.log"
	# After Retry-After the address is served again.
	sleep 2
	run req "$SRV2_PORT" --interface 127.0.0.2 --data-binary "@$BATS_FILE_TMPDIR/start.json" /v1/attest/start
	[ "${lines[0]}" = "HTTP/1.1 403 Forbidden" ]
	run curl -s --cacert "$SRV_DIR/ca.crt" "https://127.0.0.1:$SRV2_PORT/metrics"
	[[ "$output" =~ $'\n'"keystrap_rate_limited_total "[0-9]+$'\n' ]]
	[[ "$output" == *$'\nkeystrap_http_requests_total{endpoint="/v1/attest/start",code="429"} '* ]]
}

@test "new EKs beyond max_pending_enrollments get 503 and nothing is recorded; approving one makes room" {
	server2 '"max_pending_enrollments":1'
	run "$KEYSTRAP" attest --server "https://127.0.0.1:$SRV2_PORT" --ca "$SRV_DIR/ca.crt" --out-dir out
	[[ "$output" == "keystrap: the server refused the attestation start (HTTP 403): node is not approved: enrollment request recorded for EK "* ]]
	# This TPM's ECC EK is another EK: the registry is full.
	run "$KEYSTRAP" attest --ek ecc384 --server "https://127.0.0.1:$SRV2_PORT" --ca "$SRV_DIR/ca.crt" --out-dir out
	[ "$status" -eq 1 ]
	[ "$output" = "keystrap: the server refused the attestation start (HTTP 503): enrollment requests are closed: 1 await an operator (max_pending_enrollments)" ]
	run "$KEYSTRAP_SERVER" audit export --config "$SRV2/server.json"
	[[ "$output" == *'"action":"attest-start","decision":"deny","reasons":"enrollment requests are closed: 1 await an operator (max_pending_enrollments)"'* ]]
	run "$KEYSTRAP_SERVER" node list --config "$SRV2/server.json"
	[ "${#lines[@]}" -eq 1 ]
	# The positive twin: once the operator approves the pending one, another EK may ask at
	# once: the cap counts what the registry holds now, not what it held at the last tick. The
	# other EK's start is made beforehand (a second swtpm) so that it follows the approval
	# within milliseconds.
	local tpm=("$SWTPM_DIR" "$SWTPM_PORT" "$KEYSTRAP_TCTI")
	swtpm_start "$BATS_TEST_TMPDIR/tpm2"
	"$PEER" start "$(head -c 32 /dev/urandom | xxd -p -c 64)" >other.json
	swtpm_stop
	SWTPM_DIR=${tpm[0]} SWTPM_PORT=${tpm[1]} KEYSTRAP_TCTI=${tpm[2]}
	"$KEYSTRAP_SERVER" node approve "${lines[0]%% *}" --config "$SRV2/server.json" >/dev/null
	out=$(SRV_PORT=$SRV2_PORT post /v1/attest/start other.json)
	[ "$(status_of "$out")" = 403 ]
	[[ "$(body_of "$out")" == '{"error":"node is not approved: enrollment request recorded for EK '* ]]
	# Full again, and the count is what the registry holds: one request waits.
	run "$KEYSTRAP" attest --ek ecc384 --server "https://127.0.0.1:$SRV2_PORT" --ca "$SRV_DIR/ca.crt" --out-dir out
	[ "$output" = "keystrap: the server refused the attestation start (HTTP 503): enrollment requests are closed: 1 await an operator (max_pending_enrollments)" ]
	run "$KEYSTRAP_SERVER" node list --config "$SRV2/server.json"
	[ "${#lines[@]}" -eq 2 ]
	[ "$(grep -c ' requested' <<<"$output")" -eq 1 ]
}

@test "one EK certificate in many re-encoded EKs cannot fill max_pending_enrollments: each is refused, a genuine new EK may still ask" {
	server2 '"max_pending_enrollments":2'
	run req "$SRV2_PORT" --data-binary "@$BATS_FILE_TMPDIR/start.json" /v1/attest/start
	[ "${lines[2]}" = '{"error":"node is not approved: enrollment request recorded for EK '"$(ek_hash | cut -c1-16)"'"}' ]
	# No TPM needed for these: the certified key, a random authPolicy each time.
	for _ in 1 2 3 4; do
		"$PEER" start "$U" "ek-policy=$(head -c 32 /dev/urandom | xxd -p -c 64)" >x.json
		run req "$SRV2_PORT" --data-binary @x.json /v1/attest/start
		[ "${lines[0]}" = "HTTP/1.1 403 Forbidden" ]
		[[ "${lines[2]}" == '{"error":"the EK is refused: authPolicy '*"' is not the EK template L-1's (rsa2048)\"}" ]]
	done
	run "$KEYSTRAP_SERVER" node list --config "$SRV2/server.json"
	[ "${#lines[@]}" -eq 1 ]
	# The positive twin: this TPM's genuine ECC EK is another EK, and there is room for it.
	run "$KEYSTRAP" attest --ek ecc384 --server "https://127.0.0.1:$SRV2_PORT" --ca "$SRV_DIR/ca.crt" --out-dir out
	[[ "$output" == "keystrap: the server refused the attestation start (HTTP 403): node is not approved: enrollment request recorded for EK "* ]]
	run "$KEYSTRAP_SERVER" node list --config "$SRV2/server.json"
	[ "${#lines[@]}" -eq 2 ]
}

@test "/healthz answers ok while the store answers, 503 with the reason once it does not" {
	run req "$SRV_PORT" /healthz
	[ "${lines[0]}" = "HTTP/1.1 200 OK" ]
	[ "${lines[1]}" = "Content-Type: text/plain; charset=utf-8" ]
	[ "${lines[2]}" = "ok" ]
	server2 ''
	# The database overwritten in place under the running server (the files it holds open).
	head -c 8192 /dev/urandom | dd of="$SRV2/keystrap.db" conv=notrunc status=none
	: >"$SRV2/keystrap.db-wal"
	dd if=/dev/zero of="$SRV2/keystrap.db-shm" bs=32768 count=1 conv=notrunc status=none
	run req "$SRV2_PORT" /healthz
	[ "${lines[0]}" = "HTTP/1.1 503 Service Unavailable" ]
	[[ "${lines[3]}" == "store unavailable: cannot read the policy: "* ]]
}

# health PORT: /healthz's status code, then its body.
health() {
	curl -s -w '\n%{http_code}' --cacert "$SRV_DIR/ca.crt" "https://127.0.0.1:$1/healthz" | tac
}

@test "/healthz fails, naming why, whenever a node could not be admitted: no policy, an expired one, one under-signed once an operator key is replaced" {
	local o=$OPERATOR_DIR v exp
	server2 ''
	run health "$SRV2_PORT"
	[ "$output" = "200
ok" ]
	sqlite3 "$SRV2/keystrap.db" "DELETE FROM policies"
	run health "$SRV2_PORT"
	[ "$output" = "503
no policy is loaded: nothing is released until operators load a signed one" ]
	# A policy that expires two seconds from now: healthy, then not.
	v=$(($(cat "$o/policy.version") + 1))
	echo "$v" >"$o/policy.version"
	exp=$(date -u -d '+2 seconds' +%Y-%m-%dT%H:%M:%SZ)
	policy_json "0 7" "$v" | jq -c --arg e "$exp" '.expires = $e' >short.json
	policy_sign "$o" short.json op1 op2
	"$KEYSTRAP_SERVER" policy load short.json --signature short.json.op1.sig --signature short.json.op2.sig \
		--config "$SRV2/server.json" >/dev/null
	run health "$SRV2_PORT"
	[ "${lines[0]}" = 200 ]
	sleep 3
	run health "$SRV2_PORT"
	[ "$output" = "503
policy version $v expired at $exp" ]
	# A policy signed by op1 and op2; then op2 is replaced by op3 in the configuration: 1 of 2.
	SRV_PORT=$SRV2_PORT server_policy "$SRV2" "0 7" >/dev/null
	v=$(cat "$o/policy.version")
	run health "$SRV2_PORT"
	[ "${lines[0]}" = 200 ]
	server_stop "$SRV2"
	operator_key "$o" op3
	jq --arg k "$o/op3.pub" '.operator_keys[1] = $k' "$SRV2/server.json" >k.json && mv k.json "$SRV2/server.json"
	SRV_PORT=$SRV2_PORT server_start "$SRV2"
	run health "$SRV2_PORT"
	[ "$output" = "503
the stored policy version $v is signed by 1 of the required 2 operator keys" ]
	# Twin: op1 and op3 sign the next version; the server can admit nodes again.
	policy_json "0 7" $((v + 1)) >next.json
	echo $((v + 1)) >"$o/policy.version"
	policy_sign "$o" next.json op1 op3
	"$KEYSTRAP_SERVER" policy load next.json --signature next.json.op1.sig --signature next.json.op3.sig \
		--config "$SRV2/server.json" >/dev/null
	run health "$SRV2_PORT"
	[ "$output" = "200
ok" ]
}

@test "/healthz fails while the disk under the database is full and attestations get 503; with room again both recover, one log line each way" {
	local out
	FULL=$BATS_TEST_TMPDIR/full
	mkdir -p "$FULL"
	mount -t tmpfs -o size=4m keystrap-full "$FULL" || skip "cannot mount a tmpfs here"
	SRV_DATABASE=$FULL/keystrap.db server2 ''
	run health "$SRV2_PORT"
	[ "${lines[0]}" = 200 ]
	# Every block taken: reads still work, no write can land.
	dd if=/dev/zero of="$FULL/filler" bs=64k status=none 2>/dev/null || true
	[ "$(df --output=avail "$FULL" | tail -n1 | tr -d ' ')" = 0 ]
	sleep 1.1 # the last probe's success no longer counts
	run health "$SRV2_PORT"
	[ "$output" = "503
store unavailable: cannot commit a decision: No space left on device" ]
	run curl -s -D headers --cacert "$SRV_DIR/ca.crt" --data-binary "@$BATS_FILE_TMPDIR/start.json" \
		"https://127.0.0.1:$SRV2_PORT/v1/attest/start"
	head -1 headers | grep -q '^HTTP/1.1 503'
	grep -qix 'retry-after: 1' <(tr -d '\r' <headers)
	[ "$output" = '{"error":"store unavailable: the decision could not be recorded"}' ]
	run health "$SRV2_PORT"
	[ "${lines[0]}" = 503 ]
	# Room again: healthy at the next probe, and the node's request is recorded.
	rm "$FULL/filler"
	run health "$SRV2_PORT"
	[ "$output" = "200
ok" ]
	out=$(SRV_PORT=$SRV2_PORT post /v1/attest/start "$BATS_FILE_TMPDIR/start.json")
	[ "$(status_of "$out")" = 403 ]
	[ "$(grep -c 'event=store-unavailable' "$SRV2/server.log")" = 1 ]
	grep -q 'event=store-unavailable reason="store unavailable: cannot commit a decision: No space left on device"' "$SRV2/server.log"
	[ "$(grep -c 'event=store-available' "$SRV2/server.log")" = 1 ]
	server_stop "$SRV2"
	SRV2=
	umount "$FULL"
}

@test "/metrics counts requests by endpoint and status, decisions, audit records and latency, and names no node" {
	post /v1/attest/start "$BATS_FILE_TMPDIR/start.json" >/dev/null
	post /v1/attest/start "$BATS_FILE_TMPDIR/start.json" >/dev/null
	curl -s --cacert "$SRV_DIR/ca.crt" "https://127.0.0.1:$SRV_PORT/nope" >/dev/null
	sleep 1.1 # the registry gauges are counted every second
	run req "$SRV_PORT" /metrics
	[ "${lines[0]}" = "HTTP/1.1 200 OK" ]
	[ "${lines[1]}" = "Content-Type: text/plain; version=0.0.4; charset=utf-8" ]
	[[ "$output" =~ $'\n''keystrap_http_requests_total{endpoint="/v1/attest/start",code="403"} '[2-9]$'\n' ]]
	[[ "$output" == *$'\nkeystrap_http_requests_total{endpoint="other",code="404"} 1\n'* ]]
	[[ "$output" =~ $'\n''keystrap_handshakes_total{step="start",decision="deny"} '[2-9]$'\n' ]]
	[[ "$output" =~ $'\n''keystrap_audit_records_total '[3-9]$'\n' ]]
	[[ "$output" == *$'\nkeystrap_nodes{state="requested"} 1\n'* ]]
	[[ "$output" =~ $'\n''keystrap_request_duration_seconds_count{endpoint="/v1/attest/start"} '[2-9]$'\n' ]]
	[[ "$output" == *$'\n''keystrap_request_duration_seconds_bucket{endpoint="/v1/attest/start",le="+Inf"} '* ]]
	# Aggregates only: the EK hash and the peer's address appear nowhere.
	local ek
	ek=$(ek_hash)
	[[ "$output" != *"$ek"* ]]
	[[ "$output" != *"127.0.0.1"* ]]
	# Every line is a comment or "name{labels} value" (what a Prometheus scraper parses).
	! grep -v -E '^(# (HELP|TYPE) .*|[a-z_]+(\{[a-z_]+="[^"]*"(,[a-z_]+="[^"]*")*\})? [0-9.e+-]+)$' body || false
}

@test "unknown paths get 404 and wrong methods 405 with Allow, as JSON, and both are recorded" {
	run req "$SRV_PORT" /v2/anything
	[ "${lines[0]}" = "HTTP/1.1 404 Not Found" ]
	[ "${lines[1]}" = "Content-Type: application/json" ]
	[ "${lines[2]}" = '{"error":"no such endpoint"}' ]
	run req "$SRV_PORT" /v1/attest/start
	[ "${lines[0]}" = "HTTP/1.1 405 Method Not Allowed" ]
	[ "${lines[1]}" = "Allow: POST" ]
	[ "${lines[3]}" = '{"error":"only POST is allowed here"}' ]
	run req "$SRV_PORT" -X DELETE /metrics
	[ "${lines[0]}" = "HTTP/1.1 405 Method Not Allowed" ]
	[ "${lines[1]}" = "Allow: GET" ]
	[ "${lines[3]}" = '{"error":"only GET is allowed here"}' ]
	run req "$SRV_PORT" -X PATCH --data x /v1/attest/finish
	[ "${lines[0]}" = "HTTP/1.1 405 Method Not Allowed" ]
	run srv audit export
	[[ "$output" == *'"action":"http","decision":"deny","reasons":"no such endpoint"'* ]]
	[[ "$output" == *'"action":"http","decision":"deny","reasons":"only GET is allowed here"'* ]]
	# The positive twins: the right method on each.
	run req "$SRV_PORT" /metrics
	[ "${lines[0]}" = "HTTP/1.1 200 OK" ]
	run req "$SRV_PORT" --data-binary "@$BATS_FILE_TMPDIR/start.json" /v1/attest/start
	[ "${lines[0]}" = "HTTP/1.1 403 Forbidden" ]
}

@test "an oversize body gets 413 as JSON and a record; one just under the limit is read" {
	head -c 16385 /dev/zero | tr '\0' ' ' >big.json
	run req "$SRV_PORT" --data-binary @big.json /v1/attest/finish
	[[ "${lines[0]}" == "HTTP/1.1 413 "* ]]
	[ "${lines[2]}" = '{"error":"request body of 16385 bytes is larger than 16384"}' ]
	head -c 16384 /dev/zero | tr '\0' ' ' >fits.json
	run req "$SRV_PORT" --data-binary @fits.json /v1/attest/finish
	[ "${lines[0]}" = "HTTP/1.1 400 Bad Request" ]
	run srv audit export
	[[ "$output" == *'"reasons":"request body of 16385 bytes is larger than 16384"'* ]]
}

@test "requests on one kept-alive connection are answered in order" {
	run curl -sv --cacert "$SRV_DIR/ca.crt" -o /dev/null -o /dev/null "https://127.0.0.1:$SRV_PORT/healthz" \
		"https://127.0.0.1:$SRV_PORT/metrics"
	[ "$status" -eq 0 ]
	[[ "$output" == *"Re-using existing connection"* ]]
	[ "$(grep -c '^< HTTP/1.1 200 OK' <<<"$output")" -eq 2 ]
}

@test "SIGTERM: READY=1 then STOPPING=1 to systemd, exit 0, a clean last log line" {
	local d=$BATS_TEST_TMPDIR/srv3 port pid rc=0
	mkdir -p "$d"
	cp "$SRV_DIR"/{ca,tls}.{crt,key} "$d/"
	port=$(free_port)
	SRV_PORT=$port server_config "$d" "0 7"
	# A notify socket of our own records what the server tells systemd.
	python3 -c '
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
open(sys.argv[2], "w").close()
with open(sys.argv[2], "a") as f:
    while True:
        m = s.recv(4096).decode()
        f.write(m.replace("\n", " ") + "\n")
        f.flush()
        if "STOPPING=1" in m:
            break
' "$d/notify.sock" "$d/notify.log" &
	local listener=$!
	echo "$listener" >"$d/listener.pid"
	for _ in $(seq 50); do [ -S "$d/notify.sock" ] && break; sleep 0.05; done
	NOTIFY_SOCKET=$d/notify.sock "$KEYSTRAP_SERVER" serve --config "$d/server.json" 2>"$d/server.log" &
	pid=$!
	echo "$pid" >"$d/server.pid"
	for _ in $(seq 100); do grep -q READY=1 "$d/notify.log" 2>/dev/null && break; sleep 0.05; done
	run curl -s --cacert "$SRV_DIR/ca.crt" "https://127.0.0.1:$port/healthz"
	[ "$output" = ok ]
	kill -TERM "$pid"
	wait "$pid" || rc=$?
	wait "$listener" || true
	rm -f "$d"/*.pid
	[ "$rc" -eq 0 ]
	[ "$(sed -n 1p "$d/notify.log")" = "READY=1 STATUS=listening on 127.0.0.1:$port" ]
	[ "$(sed -n 2p "$d/notify.log")" = "STOPPING=1" ]
	grep -q 'level=info event=stopping signal=TERM$' "$d/server.log"
	[[ "$(tail -1 "$d/server.log")" =~ ^time=[0-9T:.-]+Z\ level=info\ event=stopped$ ]]
	! grep -q 'level=error' "$d/server.log" || false
}
