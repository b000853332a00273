#!/usr/bin/env bats
# keystrap-server's HTTP surface (issue 5): per-address rate limiting (429 + Retry-After, an
# audit record), the cap on pending enrollment requests, /healthz, /metrics, 404/405/413 as
# JSON, keep-alive, SIGTERM and sd_notify. A real server on loopback over a real swtpm; a
# second loopback address (127.0.0.2) plays the flooding node.

load ../lib/swtpm
load ../lib/server

PEER=$BATS_TEST_DIRNAME/../../build/asan/attest-peer
HOLD=$BATS_TEST_DIRNAME/../lib/conn-hold.py
HTTPS_POST=$BATS_TEST_DIRNAME/../../build/asan/https-post

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
	[ -z "${HOLDER:-}" ] || kill "$HOLDER" 2>/dev/null || true
	# What the SIGTERM test started, if it failed before stopping it.
	local p
	for p in $(cat "$BATS_TEST_TMPDIR"/srv3/*.pid 2>/dev/null); do
		kill "$p" 2>/dev/null || true
	done
}

# server2 EXTRA-JSON: a second server of this test's own (its own database), with EXTRA-JSON
# members added to the configuration; sets SRV2 (its directory) and SRV2_PORT.
# server2_config EXTRA-JSON: the same, not started.
server2_config() {
	SRV2=$BATS_TEST_TMPDIR/srv2
	mkdir -p "$SRV2"
	cp "$SRV_DIR"/{ca,tls}.{crt,key} "$SRV2/"
	SRV2_PORT=$(free_port)
	SRV_PORT=$SRV2_PORT server_config "$SRV2" "0 7" "$1"
}

server2() {
	server2_config "$1"
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
	[ "${lines[2]}" = '{"error":"node is not approved yet: its enrollment request (EK '"$(ek_hash)"') awaits an operator"}' ]
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
	# This TPM's ECC EK is another EK: the registry is full. (--retries 0: keystrap would wait
	# the 60 s the 503's Retry-After asks.)
	run "$KEYSTRAP" attest --ek ecc384 --server "https://127.0.0.1:$SRV2_PORT" --ca "$SRV_DIR/ca.crt" --out-dir out --retries 0
	[ "$status" -eq 4 ]
	[ "$output" = "keystrap: the server refused the attestation start (HTTP 503): enrollment requests are closed: 1 await an operator (max_pending_enrollments)" ]
	run "$KEYSTRAP_SERVER" audit export --config "$SRV2/server.json"
	[[ "$output" == *'"action":"attest-start","decision":"deny","reasons":"enrollment requests are closed: 1 await an operator (max_pending_enrollments)"'* ]]
	run "$KEYSTRAP_SERVER" node list --full --config "$SRV2/server.json"
	[ "${#lines[@]}" -eq 2 ]
	# The positive twin: once the operator approves the pending one, another EK may ask at
	# once: the cap counts what the registry holds now, not what it held at the last tick. The
	# other EK's start is made beforehand (a second swtpm) so that it follows the approval
	# within milliseconds.
	local tpm=("$SWTPM_DIR" "$SWTPM_PORT" "$KEYSTRAP_TCTI")
	swtpm_start "$BATS_TEST_TMPDIR/tpm2"
	"$PEER" start "$(head -c 32 /dev/urandom | xxd -p -c 64)" >other.json
	swtpm_stop
	SWTPM_DIR=${tpm[0]} SWTPM_PORT=${tpm[1]} KEYSTRAP_TCTI=${tpm[2]}
	"$KEYSTRAP_SERVER" node approve "$(awk '{ print $2 }' <<<"${lines[1]}")" --config "$SRV2/server.json" >/dev/null
	out=$(SRV_PORT=$SRV2_PORT post /v1/attest/start other.json)
	[ "$(status_of "$out")" = 403 ]
	[[ "$(body_of "$out")" == '{"error":"node is not approved: enrollment request recorded for EK '* ]]
	# Full again, and the count is what the registry holds: one request waits.
	run "$KEYSTRAP" attest --ek ecc384 --server "https://127.0.0.1:$SRV2_PORT" --ca "$SRV_DIR/ca.crt" --out-dir out --retries 0
	[ "$output" = "keystrap: the server refused the attestation start (HTTP 503): enrollment requests are closed: 1 await an operator (max_pending_enrollments)" ]
	run "$KEYSTRAP_SERVER" node list --config "$SRV2/server.json"
	[ "${#lines[@]}" -eq 3 ]
	[ "$(grep -c ' requested' <<<"$output")" -eq 1 ]
}

@test "one EK certificate in many re-encoded EKs cannot fill max_pending_enrollments: each is refused, a genuine new EK may still ask" {
	server2 '"max_pending_enrollments":2'
	run req "$SRV2_PORT" --data-binary "@$BATS_FILE_TMPDIR/start.json" /v1/attest/start
	[ "${lines[2]}" = '{"error":"node is not approved: enrollment request recorded for EK '"$(ek_hash)"'"}' ]
	# No TPM needed for these: the certified key, a random authPolicy each time.
	for _ in 1 2 3 4; do
		"$PEER" start "$U" "ek-policy=$(head -c 32 /dev/urandom | xxd -p -c 64)" >x.json
		run req "$SRV2_PORT" --data-binary @x.json /v1/attest/start
		[ "${lines[0]}" = "HTTP/1.1 403 Forbidden" ]
		[[ "${lines[2]}" == '{"error":"the EK is refused: authPolicy '*"' is not the EK template L-1's (rsa2048)\"}" ]]
	done
	run "$KEYSTRAP_SERVER" node list --config "$SRV2/server.json"
	[ "${#lines[@]}" -eq 2 ]
	# The positive twin: this TPM's genuine ECC EK is another EK, and there is room for it.
	run "$KEYSTRAP" attest --ek ecc384 --server "https://127.0.0.1:$SRV2_PORT" --ca "$SRV_DIR/ca.crt" --out-dir out --retries 0
	[[ "$output" == "keystrap: the server refused the attestation start (HTTP 403): node is not approved: enrollment request recorded for EK "* ]]
	run "$KEYSTRAP_SERVER" node list --config "$SRV2/server.json"
	[ "${#lines[@]}" -eq 3 ]
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

# post_twice URL: keystrap's HTTPS client POSTs {} to URL, keeps the TLS session, and once
# twice_then is called POSTs again in the same process (tests/lib/https-post.c AGAIN); in the
# background, its output in $BATS_TEST_TMPDIR/twice, returning once the first answer is in.
post_twice() {
	"$HTTPS_POST" "$1" "$SRV_DIR/ca.crt" 5000 65536 "$BATS_TEST_TMPDIR/again" <<<'{}' >"$BATS_TEST_TMPDIR/twice" 2>&1 &
	TWICE=$!
	for _ in $(seq 100); do
		grep -q '^tls ' "$BATS_TEST_TMPDIR/twice" && return 0
		sleep 0.05
	done
	return 1
}

# twice_then HANDSHAKES: the second POST; both answered (400: {} is no start), the two
# handshakes as HANDSHAKES ("full resumed", "full full").
twice_then() {
	touch "$BATS_TEST_TMPDIR/again"
	wait "$TWICE"
	cat "$BATS_TEST_TMPDIR/twice"
	[ "$(grep -c '^status 400$' "$BATS_TEST_TMPDIR/twice")" -eq 2 ]
	[ "$(sed -n 's/^tls //p' "$BATS_TEST_TMPDIR/twice" | xargs)" = "$1" ]
}

@test "a node's second connection in one process resumes the first's TLS session (a ticket), also across a reload" {
	post_twice "https://127.0.0.1:$SRV_PORT/v1/attest/start"
	[[ "$(reload)" == *event=reloaded* ]]
	twice_then "full resumed"
}

@test "... its twin: a ticket from another instance of the server (restarted: new keys) is refused into a full handshake, and answered" {
	server2 ""
	post_twice "https://127.0.0.1:$SRV2_PORT/v1/attest/start"
	server_stop "$SRV2"
	SRV_PORT=$SRV2_PORT server_start "$SRV2"
	twice_then "full full"
}

@test "keystrap attest: the finish resumes the start's TLS session; a new process starts with a full handshake" {
	approved_server2 ""
	KEYSTRAP_LOG_LEVEL=debug run attest2
	[ "$status" -eq 0 ]
	[[ "$output" == *"/v1/attest/start answered 200 over a full TLS handshake"* ]]
	[[ "$output" == *"/v1/attest/finish answered 200 over a resumed TLS handshake"* ]]
}

# approved_server2 EXTRA-JSON: server2, with this TPM's EK approved there as node1.example;
# sets pid (the server's), n (its log's lines so far) and fds (the descriptors it holds now).
approved_server2() {
	server2 "$1"
	attest2 >/dev/null 2>&1 || true
	"$KEYSTRAP_SERVER" node approve "$("$KEYSTRAP_SERVER" node list --json --config "$SRV2/server.json" | jq -r '.[0].ek_hash')" \
		--id node1.example --config "$SRV2/server.json" >/dev/null
	pid=$(cat "$SRV2/server.pid")
	n=$(wc -l <"$SRV2/server.log")
	fds=$(ls "/proc/$pid/fd" | wc -l)
}

attest2() {
	"$KEYSTRAP" attest --server "https://127.0.0.1:$SRV2_PORT" --ca "$SRV_DIR/ca.crt" --out-dir out
}

# cpu_ticks PID: the user and system time PID has used, in clock ticks (1/100 s).
cpu_ticks() {
	awk '{ print $14 + $15 }' "/proc/$1/stat"
}

# not_spinning PID WHAT: PID uses under 0.5 s of CPU in the next 3 s (a spinning accept loop
# takes all of it); says how much, as WHAT.
not_spinning() {
	local t0 t1
	t0=$(cpu_ticks "$1")
	sleep 3
	t1=$(cpu_ticks "$1")
	echo "server CPU over 3 s $2: $((t1 - t0)) ticks" >&3
	[ $((t1 - t0)) -lt 50 ]
}

# timed_attest2: attest2, then the milliseconds it took on the last line.
timed_attest2() {
	local t0 rc=0
	t0=$(date +%s%N)
	attest2 || rc=$?
	echo "$((($(date +%s%N) - t0) / 1000000))"
	return "$rc"
}

# log_since N EVENT: how many EVENT lines the server2 log has after its first N lines.
log_since() {
	tail -n +"$(($1 + 1))" "$SRV2/server.log" | grep -c "event=$2 " || true
}

@test "idle connections beyond max_connections_per_address are closed at once, the server does not spin, a genuine node attests meanwhile; up to the cap all are kept" {
	local pid n fds
	approved_server2 '"max_connections_per_address":8'
	grep -q 'event=connection-limits nofile=[0-9]* max_connections=4096 max_connections_per_address=8 request_timeout=10s' "$SRV2/server.log"
	python3 "$HOLD" hold "$SRV2_PORT" 127.0.0.2 40 6 status &
	HOLDER=$!
	sleep 1.5
	[ "$(cat status)" = "opened=40 closed=32" ]
	not_spinning "$pid" "while held"
	# 127.0.0.1 is another address: its node is served as if nothing were held.
	run timed_attest2
	echo "attest while held: ${lines[-1]} ms" >&3
	[ "$status" -eq 0 ]
	[ "${lines[0]}" = "keystrap: attested as node1.example" ]
	[ "${lines[-1]}" -lt 3000 ]
	[ "$(cat status)" = "opened=40 closed=32" ]
	wait "$HOLDER"
	HOLDER=
	# 32 refusals in one burst: one line, whatever the count.
	[ "$(log_since "$n" connection-refused)" -eq 1 ]
	grep -q 'event=connection-refused peer=127.0.0.2 reason="max_connections_per_address 8 reached"$' "$SRV2/server.log"
	# The negative twin: as many as the cap are all kept.
	sleep 0.5
	python3 "$HOLD" hold "$SRV2_PORT" 127.0.0.2 8 2 status
	[ "$(cat status)" = "opened=8 closed=0" ]
	[ "$(log_since "$n" connection-refused)" -eq 1 ]
}

@test "at max_connections the server stops accepting instead of spinning; a persistent flood from many addresses delays a genuine node by request_timeouts, not for as long as it lasts" {
	local pid n fds
	approved_server2 '"max_connections":16,"max_connections_per_address":4,"request_timeout":1'
	python3 "$HOLD" hold "$SRV2_PORT" 127.0.0.2,127.0.0.3,127.0.0.4,127.0.0.5,127.0.0.6,127.0.0.7,127.0.0.8,127.0.0.9 \
		40 12 status refill &
	HOLDER=$!
	sleep 1.5
	not_spinning "$pid" "at max_connections"
	# 16 connections, and a moment's one the per-address cap is closing.
	[ "$(ls "/proc/$pid/fd" | wc -l)" -le $((fds + 17)) ]
	run timed_attest2
	echo "attest at max_connections: ${lines[-1]} ms ($(cat status))" >&3
	[ "$status" -eq 0 ]
	[ "${lines[0]}" = "keystrap: attested as node1.example" ]
	[ "${lines[-1]}" -lt 8000 ]
	kill "$HOLDER"
	HOLDER=
	# A pause and a timeout at most once a second each, with the count held back.
	[ "$(log_since "$n" accept-paused)" -le 9 ]
	[ "$(log_since "$n" connection-closed)" -le 9 ]
	grep -q 'event=accept-paused reason="max_connections 16 open"' "$SRV2/server.log"
	grep -q 'event=connection-closed peer=127.0.0.[2-9] reason="no whole request within request_timeout 1s" held_back=[0-9]*$' "$SRV2/server.log"
	# The negative twin: with the flood gone, 16 connections are all taken.
	sleep 1.5
	python3 "$HOLD" hold "$SRV2_PORT" 127.0.0.2,127.0.0.3,127.0.0.4,127.0.0.5 16 0.5 status
	[ "$(cat status)" = "opened=16 closed=0" ]
}

@test "accept() failing with EMFILE backs off instead of spinning, logs once a second, and serves again once descriptors are free" {
	local pid n fds
	approved_server2 '"request_timeout":2'
	# The descriptors a few connections more than the server holds now: accept() runs out
	# long before max_connections (clamped for the limit it started with).
	prlimit --pid "$pid" --nofile=$((fds + 4)):$((fds + 4))
	python3 "$HOLD" hold "$SRV2_PORT" 127.0.0.2 30 5 status &
	HOLDER=$!
	sleep 1
	not_spinning "$pid" "on EMFILE"
	wait "$HOLDER"
	HOLDER=
	[ "$(log_since "$n" accept-failed)" -ge 1 ]
	[ "$(log_since "$n" accept-failed)" -le 6 ]
	grep -q 'event=accept-failed reason="Too many open files"' "$SRV2/server.log"
	# Once the flood is gone the descriptors come back and a node is served at once.
	sleep 2.5
	run timed_attest2
	echo "attest after EMFILE: ${lines[-1]} ms" >&3
	[ "${lines[0]}" = "keystrap: attested as node1.example" ]
	[ "${lines[-1]}" -lt 3000 ]
}

@test "the open-file limit: the soft limit is raised to the hard one; max_connections is lowered below a low hard limit, logged; one too low to serve is refused at start; the new keys are strict" {
	server2_config ""
	local hard
	hard=$(ulimit -Hn)
	(ulimit -Sn 256 && SRV_PORT=$SRV2_PORT server_start "$SRV2")
	grep -q "level=info event=connection-limits nofile=$hard max_connections=4096 max_connections_per_address=128 request_timeout=10s$" "$SRV2/server.log"
	server_stop "$SRV2"
	: >"$SRV2/server.log"
	(ulimit -n 256 && SRV_PORT=$SRV2_PORT server_start "$SRV2")
	grep -q 'level=warning event=connection-limits nofile=256 max_connections=[12][0-9][0-9] configured=4096 max_connections_per_address=128 request_timeout=10s$' "$SRV2/server.log"
	server_stop "$SRV2"
	run bash -c "ulimit -n 40 && exec '$KEYSTRAP_SERVER' serve --config '$SRV2/server.json'"
	[ "$status" -eq 1 ]
	[[ "$output" == *"keystrap-server: the open-file limit 40 leaves no room for connections ("*" open, 32 kept for the store): raise it (LimitNOFILE=)" ]]
	local key value
	while read -r key value; do
		SRV_PORT=$SRV2_PORT server_config "$SRV2" "0 7" "\"$key\":$value" 2>/dev/null || true
		run "$KEYSTRAP_SERVER" serve --config "$SRV2/server.json"
		[ "$status" -eq 1 ]
		[[ "$output" == *"server.json: '$key' is not a number from 1 to "* ]]
	done <<-EOF
		max_connections 0
		max_connections 1048577
		max_connections_per_address 0
		request_timeout 3601
		request_timeout "10"
	EOF
}

@test "a TLS client trickling its request headers is closed after request_timeout; one that completes its request in time is answered" {
	server2 '"request_timeout":2'
	run python3 "$HOLD" trickle "$SRV2_PORT" "$SRV_DIR/ca.crt" 0.2
	echo "$output" >&3
	[[ "$output" =~ ^closed\ after\ (2\.[0-9]|3\.[0-4])\ s ]]
	grep -q 'event=connection-closed peer=127.0.0.1 reason="no whole request within request_timeout 2s"$' "$SRV2/server.log"
	# The negative twin: the same request sent within the timeout, slowly still.
	run python3 "$HOLD" trickle "$SRV2_PORT" "$SRV_DIR/ca.crt" 0.004
	[[ "$output" == "answered after "* ]]
}

@test "a connection the server cannot give TLS (SSL_new fails) is never served in plaintext: accepting waits until it can, then TLS as before" {
	server2_config ""
	# The fault is preloaded (the sanitizer's runtime then is not first: allowed here).
	LD_PRELOAD=$BATS_TEST_DIRNAME/../../build/ssl-new-fault.so SSL_NEW_FAULT=$BATS_TEST_TMPDIR/fault \
		ASAN_OPTIONS=verify_asan_link_order=0 SRV_PORT=$SRV2_PORT server_start "$SRV2"
	touch fault
	# The connection prepared before the fault is TLS: plaintext gets no answer from it; the
	# next cannot get TLS objects, so it is not accepted at all.
	local i
	for i in 1 2 3; do
		run curl -s --max-time 2 "http://127.0.0.1:$SRV2_PORT/healthz"
		[ "$status" -ne 0 ]
		[ -z "$output" ]
	done
	run curl -s --max-time 2 --cacert "$SRV_DIR/ca.crt" "https://127.0.0.1:$SRV2_PORT/healthz"
	[ "$status" -ne 0 ]
	[ "$(grep -c 'event=accept-paused reason="cannot prepare a connection: out of memory"' "$SRV2/server.log")" -le 8 ]
	grep -q 'event=accept-paused reason="cannot prepare a connection: out of memory"' "$SRV2/server.log"
	# The twin: once SSL_new works again, connections are accepted and served over TLS.
	rm fault
	run curl -s --max-time 5 --cacert "$SRV_DIR/ca.crt" "https://127.0.0.1:$SRV2_PORT/healthz"
	[ "$status" -eq 0 ]
	[ "$output" = ok ]
	run curl -s --max-time 2 "http://127.0.0.1:$SRV2_PORT/healthz"
	[ -z "$output" ]
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
