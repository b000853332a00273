#!/usr/bin/env bats
# keystrap's HTTPS client (common/https.c) on its own, against a TLS server that answers as
# keystrap-server does and in each way a server, or whoever took its place, can misbehave:
# TLS 1.2 only, a certificate from another CA or for another address, a redirect, a transfer
# coding, an answer too large or cut short, a stall, a trickle, no HTTP at all. Each failure is
# one line naming the cause, within the deadline given.

load ../lib/swtpm
load ../lib/server

POST=${HTTPS_POST:-$BATS_TEST_DIRNAME/../../build/asan/https-post}
CANNED=$BATS_TEST_DIRNAME/../lib/https-canned.py

setup_file() {
	export PKI=$BATS_FILE_TMPDIR/pki OTHER=$BATS_FILE_TMPDIR/other
	server_pki "$PKI"
	server_pki "$OTHER"
	# The right CA, but a certificate for another address.
	openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=127.0.0.2 \
		-keyout "$PKI/wrong-name.key" -out "$PKI/wrong-name.csr" 2>/dev/null
	openssl x509 -req -in "$PKI/wrong-name.csr" -CA "$PKI/ca.crt" -CAkey "$PKI/ca.key" -CAcreateserial -days 2 \
		-extfile <(printf 'subjectAltName=IP:127.0.0.2\n') -out "$PKI/wrong-name.crt" 2>/dev/null
	# The right CA and address, but valid for one day where the CA is valid for two.
	openssl x509 -req -in "$PKI/tls.csr" -CA "$PKI/ca.crt" -CAkey "$PKI/ca.key" -CAcreateserial -days 1 \
		-extfile <(printf 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n') -out "$PKI/short.crt" 2>/dev/null
}

canned_stop() {
	if [ -n "${CANNED_PID:-}" ]; then
		kill "$CANNED_PID" 2>/dev/null
		wait "$CANNED_PID" 2>/dev/null || true
	fi
	CANNED_PID=
}

teardown() {
	canned_stop
}

# canned MODE [CERT KEY] [--tls12]: starts the server; sets PORT.
canned() {
	local mode=$1 crt=${2:-$PKI/tls.crt} key=${3:-$PKI/tls.key}
	python3 "$CANNED" "$crt" "$key" "$mode" "${@:4}" >"$BATS_TEST_TMPDIR/port" &
	CANNED_PID=$!
	for _ in $(seq 100); do
		[ -s "$BATS_TEST_TMPDIR/port" ] && break
		sleep 0.05
	done
	PORT=$(cat "$BATS_TEST_TMPDIR/port")
	[ -n "$PORT" ]
}

# post [TIMEOUT-MS] [MAX]: POSTs a small JSON body to the canned server with the right CA.
post_it() {
	run "$POST" "https://127.0.0.1:$PORT/v1/attest/start" "$PKI/ca.crt" "${1:-5000}" "${2:-65536}" <<<'{"hello":"server"}'
}

@test "a good answer: status, body and the server's Date, no Retry-After" {
	canned ok
	post_it
	[ "$status" -eq 0 ]
	[ "${lines[0]}" = "status 200" ]
	[ "${lines[1]}" = "retry-after -1" ]
	[ "${lines[2]}" = "date $(date -u -d '2026-12-02 10:00:00' +%s)" ]
	[ "${lines[3]}" = '{"ok":true}' ]
}

@test "the request as sent: one POST, Host with the port, an exact Content-Length, Connection: close" {
	canned echo
	post_it
	[ "$status" -eq 0 ]
	[[ $output == *"POST /v1/attest/start HTTP/1.1"$'\r'* ]]
	[[ $output == *"Host: 127.0.0.1:$PORT"$'\r'* ]]
	[[ $output == *"Content-Length: 19"$'\r'* ]]
	[[ $output == *"Connection: close"$'\r'* ]]
	[[ $output == *'{"hello":"server"}' ]]
}

@test "a 503 comes back as an answer with its Retry-After, for the caller to honour" {
	canned busy
	post_it
	[ "$status" -eq 0 ]
	[ "${lines[0]}" = "status 503" ]
	[ "${lines[1]}" = "retry-after 7" ]
}

@test "a server that speaks only TLS 1.2 is refused in the handshake" {
	canned ok "$PKI/tls.crt" "$PKI/tls.key" --tls12
	post_it
	[ "$status" -eq 1 ]
	[[ ${lines[0]} == "error ECONNRESET"*"the TLS handshake with 127.0.0.1 failed"* ]]
}

@test "a certificate from another CA does not verify against the pinned one" {
	canned ok "$OTHER/tls.crt" "$OTHER/tls.key"
	post_it
	[ "$status" -eq 1 ]
	[[ ${lines[0]} == "error EKEYREJECTED verify=20:"*"does not verify against '$PKI/ca.crt'"* ]]
}

@test "... and its twin: the right CA, but a certificate for another address" {
	canned ok "$PKI/wrong-name.crt" "$PKI/wrong-name.key"
	post_it
	[ "$status" -eq 1 ]
	[[ ${lines[0]} == "error EKEYREJECTED verify=64:"*"IP address mismatch"* ]]
}

@test "a redirect is not followed: the 302 is the answer" {
	canned redirect
	post_it
	[ "$status" -eq 0 ]
	[ "${lines[0]}" = "status 302" ]
}

@test "a transfer coding, no HTTP at all: refused, naming what was wrong" {
	canned chunked
	post_it
	[ "$status" -eq 1 ]
	[[ ${lines[0]} == "error EPROTO"*"transfer coding"* ]]
	canned_stop
	canned garbage
	post_it
	[ "$status" -eq 1 ]
	[[ ${lines[0]} == "error EPROTO"*"not an HTTP/1.x response"* ]]
}

@test "an answer larger than the limit is refused; the same answer within a larger limit is read" {
	canned big
	post_it 5000 65536
	[ "$status" -eq 1 ]
	[[ ${lines[0]} == "error EMSGSIZE"* ]]
	post_it 5000 2000000
	[ "$status" -eq 0 ]
	[ "${lines[0]}" = "status 200" ]
}

@test "an answer cut short of its Content-Length is refused; one framed by close_notify is read" {
	canned short
	post_it
	[ "$status" -eq 1 ]
	[[ ${lines[0]} == "error ECONNRESET"*"before its answer was complete"* ]]
	canned_stop
	canned no-length
	post_it
	[ "$status" -eq 0 ]
	[ "${lines[3]}" = '{"framed":"by close_notify"}' ]
}

@test "a server that stalls, or trickles its answer, is given up on at the one deadline" {
	canned stall
	t0=$(date +%s%N)
	post_it 1500
	t=$((($(date +%s%N) - t0) / 1000000))
	echo "stall: ${t} ms"
	[ "$status" -eq 1 ]
	[[ ${lines[0]} == "error ETIMEDOUT"*"timed out"* ]]
	[ "$t" -lt 4000 ]
	canned_stop
	canned trickle
	t0=$(date +%s%N)
	post_it 1500
	t=$((($(date +%s%N) - t0) / 1000000))
	echo "trickle: ${t} ms"
	[ "$status" -eq 1 ]
	[[ ${lines[0]} == "error ETIMEDOUT"* ]]
	[ "$t" -lt 4000 ]
}

@test "nobody listening: connection refused, naming the address" {
	p=$(free_port)
	run "$POST" "https://127.0.0.1:$p/" "$PKI/ca.crt" 3000 65536 <<<'{}'
	[ "$status" -eq 1 ]
	[[ ${lines[0]} == "error ECONNREFUSED"*"cannot connect to 127.0.0.1 port $p: Connection refused"* ]]
}

@test "URLs that are not https://HOST[:PORT]/PATH, or would smuggle a header, are refused before connecting" {
	for u in "http://127.0.0.1:1/" "https://" "https://127.0.0.1:0/" "https://127.0.0.1:99999/" \
		"https://127.0.0.1:1/a b" $'https://127.0.0.1:1/a\r\nX-Evil: 1' "https://user@127.0.0.1/"; do
		run "$POST" "$u" "$PKI/ca.crt" 3000 65536 <<<'{}'
		[ "$status" -eq 1 ] || { echo "accepted: $u"; return 1; }
		[[ ${lines[0]} == "error EINVAL"* ]] || { echo "$u: $output"; return 1; }
	done
}

@test "a CA file that does not exist: named" {
	canned ok
	run "$POST" "https://127.0.0.1:$PORT/" "$BATS_TEST_TMPDIR/nope.pem" 3000 65536 <<<'{}'
	[ "$status" -eq 1 ]
	[[ ${lines[0]} == "error ENOENT"*"cannot load the server CA '$BATS_TEST_TMPDIR/nope.pem'"* ]]
}

@test "a certificate outside its validity on this clock: the code and the period, so the caller can name the clock" {
	canned ok
	# libfaketime shifts this process's clock three days on; the certificates are valid for two.
	ASAN_OPTIONS=verify_asan_link_order=0 run faketime -f '+3d' "$POST" "https://127.0.0.1:$PORT/" "$PKI/ca.crt" 5000 65536 <<<'{}'
	[ "$status" -eq 1 ]
	[[ ${lines[0]} == "error EKEYREJECTED verify=10:"*"certificate has expired"* ]]
	# Both have expired; OpenSSL checks the chain from its root down, so the first to fail is the CA,
	# whose period can start a second before the leaf's.
	nb=$(date -u -d "$(openssl x509 -in "$PKI/ca.crt" -noout -startdate | cut -d= -f2)" +%s)
	na=$(date -u -d "$(openssl x509 -in "$PKI/ca.crt" -noout -enddate | cut -d= -f2)" +%s)
	[ "${lines[1]}" = "certificate valid $nb..$na" ] || { echo "got: $output, want $nb..$na"; false; }
}

@test "a server certificate expired under a CA still valid: the server certificate's own period" {
	canned ok "$PKI/short.crt" "$PKI/tls.key"
	ASAN_OPTIONS=verify_asan_link_order=0 run faketime -f '+36h' "$POST" "https://127.0.0.1:$PORT/" "$PKI/ca.crt" 5000 65536 <<<'{}'
	[ "$status" -eq 1 ]
	[[ ${lines[0]} == "error EKEYREJECTED verify=10:"*"certificate has expired"* ]]
	nb=$(date -u -d "$(openssl x509 -in "$PKI/short.crt" -noout -startdate | cut -d= -f2)" +%s)
	na=$(date -u -d "$(openssl x509 -in "$PKI/short.crt" -noout -enddate | cut -d= -f2)" +%s)
	[ $((na - nb)) -eq 86400 ]
	[ "${lines[1]}" = "certificate valid $nb..$na" ] || { echo "got: $output, want $nb..$na"; false; }
}
