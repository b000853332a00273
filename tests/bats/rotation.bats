#!/usr/bin/env bats
# Rotation of the server's keys and the key-compromise drill (issue 14 item 4), and SIGHUP
# reloading the configuration and the CA bundle (issue 16 item 4): a real server (TLS 1.3,
# SQLite), three swtpm nodes attesting with keystrap attest, and openssl verify as the
# consumer that pins a bundle. The tests run in order and share the server: each leaves it
# with a working CA and configuration for the next.

load ../lib/swtpm
load ../lib/server
load ../lib/tpm2-node
load ../lib/clock

NODES="1 2 3"

setup_file() {
	local i
	for i in $NODES; do
		swtpm_start "$BATS_FILE_TMPDIR/tpm$i"
		eval "export TCTI$i=\$KEYSTRAP_TCTI PORT$i=\$SWTPM_PORT"
	done
	export SRV_DIR=$BATS_FILE_TMPDIR/srv SRV_PORT
	SRV_PORT=$(free_port)
	server_pki "$SRV_DIR"
	server_config "$SRV_DIR" "0 7"
	printf 'rotate-me' | "$KEYSTRAP_SERVER" secret set token --config "$SRV_DIR/server.json" >/dev/null
	POLICY_GROUPS='{"default":{"secrets":["token"]}}' server_policy "$SRV_DIR" "0 7" >/dev/null
	cp "$SRV_DIR/ca.crt" "$BATS_FILE_TMPDIR/ca0.crt"
	server_start "$SRV_DIR"
	# Each node asks once (refused, recorded) and an operator approves it.
	for i in $NODES; do
		KEYSTRAP_TCTI=$(tcti "$i") "$KEYSTRAP" attest --server "https://127.0.0.1:$SRV_PORT" --ca "$SRV_DIR/ca.crt" \
			--out-dir "$BATS_FILE_TMPDIR" >/dev/null 2>&1 || true
		TPM2TOOLS_TCTI=$(tcti "$i") srv node approve "$(TPM2TOOLS_TCTI=$(tcti "$i") ek_hash)" --id "node$i.example" >/dev/null
	done
}

teardown_file() {
	local i
	server_stop "$SRV_DIR" || true
	for i in $NODES; do
		SWTPM_DIR=$BATS_FILE_TMPDIR/tpm$i SWTPM_PORT=$(eval echo "\$PORT$i") swtpm_stop
	done
}

setup() {
	cd "$BATS_TEST_TMPDIR"
}

teardown() {
	reboot_if_asked
}

tcti() { eval echo "\$TCTI$1"; }

# attest_node I PIN DIR: node I attests pinning PIN for the server's TLS certificate; credentials to DIR.
attest_node() {
	mkdir -p "$3"
	KEYSTRAP_TCTI=$(tcti "$1") "$KEYSTRAP" attest --server "https://127.0.0.1:$SRV_PORT" --ca "$2" --out-dir "$3"
}

# tls_reissue CA KEY: the server's TLS certificate for 127.0.0.1, from that CA (its chain, CA
# included, after the leaf: nodes may pin the root above it).
tls_reissue() {
	openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=127.0.0.1 \
		-keyout "$SRV_DIR/tls.key.new" -out "$SRV_DIR/tls.csr" 2>/dev/null
	openssl x509 -req -in "$SRV_DIR/tls.csr" -CA "$1" -CAkey "$2" -CAcreateserial -days 2 \
		-extfile <(printf 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n') -out "$SRV_DIR/tls.crt.new" 2>/dev/null
	cat "$1" >>"$SRV_DIR/tls.crt.new"
	chmod 600 "$SRV_DIR/tls.key.new"
	mv "$SRV_DIR/tls.key.new" "$SRV_DIR/tls.key"
	mv "$SRV_DIR/tls.crt.new" "$SRV_DIR/tls.crt"
}

# unchanged: the CA in force is as it was (files and no leftovers beside them).
ca_sums() { sha256sum "$SRV_DIR/ca.crt" "$SRV_DIR/ca.key" 2>/dev/null; ls "$SRV_DIR" | grep -E '\.(new|previous)$' || true; }

# A keep-alive TLS connection that sends one request, waits for FILE to appear, sends another.
hold_connection() {
	python3 - "$SRV_PORT" "$SRV_DIR/ca.crt" "$1" <<'PY'
import os, socket, ssl, sys, time
port, ca, go = int(sys.argv[1]), sys.argv[2], sys.argv[3]
ctx = ssl.create_default_context(cafile=ca)
s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port)), server_hostname="127.0.0.1")
def ask():
    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    data = b""
    while b"\r\n\r\n" not in data:
        data += s.recv(4096)
    head, body = data.split(b"\r\n\r\n", 1)
    n = int([l.split(b":")[1] for l in head.split(b"\r\n") if l.lower().startswith(b"content-length")][0])
    while len(body) < n:
        body += s.recv(4096)
    return head.split(b" ")[1].decode()
print("first", ask(), flush=True)
open(go + ".ready", "w").close()
while not os.path.exists(go):
    time.sleep(0.05)
print("second", ask(), flush=True)
PY
}

@test "SIGHUP: a bad configuration is refused in one line and the one in force stays; a good one takes effect, open connections kept" {
	cp "$SRV_DIR/server.json" good.json
	attest_node 1 "$SRV_DIR/ca.crt" before
	end=$(date -d "$(openssl x509 -in before/node.crt -noout -enddate | cut -d= -f2)" +%s)
	[ $((end - $(date +%s))) -gt 400 ] # certificate_lifetime 600
	# Not JSON: refused, one line, naming the file.
	echo '{"listen":' >"$SRV_DIR/server.json"
	run reload
	[[ "$output" == *"event=reload-refused"*"config=$SRV_DIR/server.json"*"kept=\"the configuration in force\""* ]]
	[ "$(grep -c 'event=reload-refused' "$SRV_DIR/server.log")" -eq 1 ]
	# A chain file out of order (its root before the CA it issued).
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=bad-root \
		-addext basicConstraints=critical,CA:TRUE -keyout root.key -out root.crt 2>/dev/null
	openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=bad-inter -keyout inter.key -out inter.csr 2>/dev/null
	openssl x509 -req -in inter.csr -CA root.crt -CAkey root.key -CAcreateserial -days 2 \
		-extfile <(printf 'basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign\nsubjectKeyIdentifier=hash\n') -out inter.crt 2>/dev/null
	cat root.crt inter.crt >chain-reversed.pem
	chmod 600 inter.key
	sed -e "s|\"$SRV_DIR/ca.crt\"|\"$PWD/chain-reversed.pem\"|" -e "s|\"$SRV_DIR/ca.key\"|\"$PWD/inter.key\"|" good.json >"$SRV_DIR/server.json"
	run reload
	[[ "$output" == *"event=reload-refused"*"is out of order: certificate 2 (CN = bad-inter) did not issue certificate 1 (CN = bad-root)"* ]]
	# What cannot change without a restart.
	sed "s|127.0.0.1:$SRV_PORT|127.0.0.1:1|" good.json >"$SRV_DIR/server.json"
	run reload
	[[ "$output" == *"event=reload-refused"*"reason=\"'listen' changed: it takes a restart\""* ]]
	# Still the old configuration: nodes attest, certificates live 600 s.
	attest_node 1 "$SRV_DIR/ca.crt" refused
	end=$(date -d "$(openssl x509 -in refused/node.crt -noout -enddate | cut -d= -f2)" +%s)
	[ $((end - $(date +%s))) -gt 400 ]
	# A good change, with a connection open across it.
	sed 's|"certificate_lifetime":600|"certificate_lifetime":120|' good.json >"$SRV_DIR/server.json"
	hold_connection go >held.out &
	holder=$!
	for _ in $(seq 100); do [ -e go.ready ] && break; sleep 0.05; done
	run reload
	[[ "$output" == *"event=reloaded"*"ca=\"CA "*"chain of 1, 0 previous\""* ]]
	touch go
	wait "$holder"
	[ "$(cat held.out)" = "$(printf 'first 200\nsecond 200')" ]
	attest_node 1 "$SRV_DIR/ca.crt" after
	end=$(date -d "$(openssl x509 -in after/node.crt -noout -enddate | cut -d= -f2)" +%s)
	[ $((end - $(date +%s))) -le 120 ]
	cp good.json "$SRV_DIR/server.json"
	run reload
	[[ "$output" == *"event=reloaded"* ]]
	kill -0 "$(cat "$SRV_DIR/server.pid")"
	# Each reload is on record, refused or taken, with the CA it issues from.
	run srv audit export
	[ "$(grep -c '"action":"config-reload","decision":"deny"' <<<"$output")" -eq 3 ]
	[ "$(grep -c '"action":"config-reload","decision":"allow"' <<<"$output")" -eq 2 ]
	[[ "$output" == *"\"reasons\":\"$SRV_DIR/server.json reloaded: issuing from CA "*"(CN = keystrap-test-ca), chain of 1, 0 previous; 2 operator keys, threshold 2\""* ]]
	[[ "$output" == *"'listen' changed: it takes a restart; the configuration in force stays"* ]]
}

@test "ca rotate refuses a certificate not matching its key, a chain out of order and a key in use: one line, exit 1, the CA in force untouched" {
	before=$(ca_sums)
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=other \
		-addext basicConstraints=critical,CA:TRUE -keyout other.key -out other.crt 2>/dev/null
	openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out stray.key 2>/dev/null
	chmod 600 other.key stray.key
	run srv ca rotate --certificate other.crt --key stray.key
	[ "$status" -eq 1 ]
	[ "$output" = "keystrap-server: CA certificate 'other.crt' is not the certificate of key 'stray.key'" ]
	[ "$(ca_sums)" = "$before" ]
	# Root first, then the CA it issued: out of order.
	openssl req -new -key stray.key -subj /CN=inter -out inter.csr 2>/dev/null
	openssl x509 -req -in inter.csr -CA other.crt -CAkey other.key -CAcreateserial -days 2 \
		-extfile <(printf 'basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n') -out inter.crt 2>/dev/null
	cat other.crt inter.crt >reversed.pem
	run srv ca rotate --certificate reversed.pem --key stray.key
	[ "$status" -eq 1 ]
	[ "$output" = "keystrap-server: 'reversed.pem' is out of order: certificate 2 (CN = inter) did not issue certificate 1 (CN = other); the chain runs from the issuing CA to the root" ]
	[ "$(ca_sums)" = "$before" ]
	# The CA's own key under a new certificate: not a rotation.
	openssl req -x509 -new -key "$SRV_DIR/ca.key" -days 2 -subj /CN=same-key -addext basicConstraints=critical,CA:TRUE -out same.crt 2>/dev/null
	run srv ca rotate --certificate same.crt --key "$SRV_DIR/ca.key"
	[ "$status" -eq 1 ]
	[[ "$output" == "keystrap-server: the new CA's key "*" is already in use: it is the key of the current CA "*"(CN = keystrap-test-ca)" ]]
	[ "${#lines[@]}" -eq 1 ]
	[ "$(ca_sums)" = "$before" ]
	# A key anyone may read.
	chmod 644 stray.key
	run srv ca rotate --certificate inter.crt --key stray.key
	[ "$status" -eq 1 ]
	[[ "$output" == "keystrap-server: CA key 'stray.key' "*"mode 0644"* ]]
	[ "$(ca_sums)" = "$before" ]
	# Nothing to retire yet, and the refusals are on record.
	run srv ca retire
	[ "$status" -eq 1 ]
	[ "$output" = "keystrap-server: nothing to retire: there is no previous CA ('$SRV_DIR/ca.crt.previous' does not exist)" ]
	run srv audit export
	[ "$(grep -c '"action":"ca-rotate","decision":"deny"' <<<"$output")" -eq 4 ]
	[ "$(grep -c '"action":"ca-retire","decision":"deny"' <<<"$output")" -eq 1 ]
	# Still the CA in force (the positive twins, a chain in order and a key of its own, are the next test).
	run srv ca show
	[ "$output" = "issuing $(openssl x509 -in "$SRV_DIR/ca.crt" -outform DER | sha256sum | cut -c1-16) (CN = keystrap-test-ca) until $(date -u -d "$(openssl x509 -in "$SRV_DIR/ca.crt" -noout -enddate | cut -d= -f2)" +%Y-%m-%dT%H:%M:%SZ)" ]
}

# ca_state D NEXT OLD: which CA D's files hold after a kill: old, new, or half (the new
# certificate with its key still beside it as ca.key.new); anything else is a failure.
ca_state() {
	local d=$1 cert key
	cert=$(openssl x509 -in "$d/ca.crt" -noout -pubkey 2>/dev/null)
	key=$(openssl pkey -in "$d/ca.key" -pubout 2>/dev/null)
	if [ -n "$cert" ] && [ "$cert" = "$key" ]; then
		cmp -s "$d/ca.crt" "$2" && { echo new; return 0; }
		cmp -s "$d/ca.crt" "$3" && { echo old; return 0; }
	elif cmp -s "$d/ca.crt" "$2" && [ "$cert" = "$(openssl pkey -in "$d/ca.key.new" -pubout 2>/dev/null)" ]; then
		echo half
		return 0
	fi
	echo "certificate and key of no CA: $(ls "$d")"
	return 1
}

@test "ca rotate killed (SIGKILL) at every rename and fsync: the old CA, the new one, or the new certificate with its key beside it, which the server names; rotate run again finishes" {
	command -v strace >/dev/null || skip "strace is not installed"
	local d=$BATS_TEST_TMPDIR/ca calls=$BATS_TEST_TMPDIR/calls.txt sc n rc state points=() seen=""
	mkdir -p "$d/clean" db
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=before \
		-addext basicConstraints=critical,CA:TRUE -keyout "$d/clean/ca.key" -out "$d/clean/ca.crt" 2>/dev/null
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=after \
		-addext basicConstraints=critical,CA:TRUE -keyout next.key -out next.crt 2>/dev/null
	chmod 600 "$d/clean/ca.key" next.key
	jq --arg c "$d/ca.crt" --arg k "$d/ca.key" --arg db "$PWD/db/keystrap.db" \
		'.ca_certificate = $c | .ca_key = $k | .database = $db' "$SRV_DIR/server.json" >"$d/server.json"
	trace() {
		rm -f "$d"/ca.*
		cp -p "$d"/clean/* "$d/"
		ASAN_OPTIONS=detect_leaks=0 strace -f -qq -o "$calls" -P "$d/ca.crt" -P "$d/ca.key" -P "$d/ca.crt.new" \
			-P "$d/ca.key.new" -P "$d/ca.crt.previous" -P "$d/ca.crt.previous.new" -P "$d" "$@" \
			"$KEYSTRAP_SERVER" ca rotate --certificate next.crt --key next.key --config "$d/server.json"
	}
	trace -e trace=rename,fsync >/dev/null
	for sc in rename fsync; do
		n=$(grep -cE "^[0-9]+ +$sc\(" "$calls" || true)
		[ "$n" -gt 0 ] && mapfile -t -O "${#points[@]}" points < <(seq -f "$sc %g" 1 "$n")
	done
	[ "$(printf '%s\n' "${points[@]}" | grep -c '^rename ')" -eq 3 ]
	for p in "${points[@]}"; do
		read -r sc n <<<"$p"
		rc=0
		trace -e trace="$sc" -e inject="$sc:signal=SIGKILL:when=$n" >out.txt 2>&1 || rc=$?
		[ "$rc" -eq 137 ] || { echo "$sc #$n: exit $rc: $(cat out.txt)"; return 1; }
		state=$(ca_state "$d" next.crt "$d/clean/ca.crt") || { echo "$sc #$n: $state"; return 1; }
		seen+=" $state"
		if [ "$state" = half ]; then
			run "$KEYSTRAP_SERVER" serve --config "$d/server.json"
			[ "$status" -eq 1 ]
			[[ "$output" == *"is not the key of '$d/ca.crt''s first certificate (an interrupted ca rotate left it: run it again)" ]]
		fi
		run "$KEYSTRAP_SERVER" ca rotate --certificate next.crt --key next.key --config "$d/server.json"
		case $state in
		half) [[ "$output" == "CA rotation to "*"(CN = after) finished: the key an interrupted ca rotate left is in place"* ]] ;;
		new) [[ "$output" == *"is already in use: it is the key of the current CA"* ]] ;;
		old) [ "$status" -eq 0 ] ;;
		esac
		[ "$(ca_state "$d" next.crt "$d/clean/ca.crt")" = new ] || { echo "$sc #$n ($state): not finished: $output"; return 1; }
		[ "$(grep -c 'BEGIN CERTIFICATE' "$d/ca.crt.previous")" -eq 1 ]
		cmp "$d/ca.crt.previous" "$d/clean/ca.crt"
		[ -z "$(ls "$d" | grep '\.new$')" ] || { echo "$sc #$n: left $(ls "$d")"; return 1; }
	done
	echo "# ${#points[@]} kill points:$seen" >&3
	[[ "$seen" == *old* ]] && [[ "$seen" == *half* ]] && [[ "$seen" == *new* ]]
}

@test "CA rotation to an intermediate CA: during the overlap both CAs' certificates verify against the bundle; after ca retire only the new one's" {
	attest_node 1 "$SRV_DIR/ca.crt" old
	# An operator's offline root and the intermediate the server is to issue from.
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3 -subj /CN=fleet-root \
		-addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign -keyout root.key -out root.crt 2>/dev/null
	openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=fleet-issuing -keyout issuing.key -out issuing.csr 2>/dev/null
	openssl x509 -req -in issuing.csr -CA root.crt -CAkey root.key -CAcreateserial -days 2 \
		-extfile <(printf 'basicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n') -out issuing.crt 2>/dev/null
	chmod 600 issuing.key
	cat issuing.crt root.crt >chain.pem
	# Run as root, the new files keep the owners of the ones they replace (the service's user).
	chown daemon:daemon "$SRV_DIR/ca.key"
	chown bin:bin "$SRV_DIR/ca.crt"
	run srv ca rotate --certificate chain.pem --key issuing.key
	[ "$status" -eq 0 ]
	[[ "${lines[0]}" == "CA "*"(CN = keystrap-test-ca) replaced by CA "*"(CN = fleet-issuing); the old CA stays in the bundle until ca retire (its certificates expire by "* ]]
	cmp chain.pem "$SRV_DIR/ca.crt"
	cmp "$BATS_FILE_TMPDIR/ca0.crt" "$SRV_DIR/ca.crt.previous"
	[ "$(stat -c %a:%U:%G "$SRV_DIR/ca.key")" = 600:daemon:daemon ]
	[ "$(stat -c %U:%G "$SRV_DIR/ca.crt" "$SRV_DIR/ca.crt.previous")" = "$(printf 'bin:bin\nbin:bin')" ]
	[ ! -e "$SRV_DIR/ca.key.new" ]
	# Before the reload the server still issues from the old CA, which it holds.
	attest_node 2 "$BATS_FILE_TMPDIR/ca0.crt" unreloaded
	run openssl x509 -in unreloaded/node.crt -noout -issuer
	[ "$output" = "issuer=CN = keystrap-test-ca" ]
	run reload
	[[ "$output" == *"event=reloaded"*"(CN = fleet-issuing), chain of 2, 1 previous"* ]]
	# The old TLS certificate still verifies for nodes pinning the old CA: the overlap.
	attest_node 2 "$BATS_FILE_TMPDIR/ca0.crt" new
	run openssl x509 -in new/node.crt -noout -issuer
	[ "$output" = "issuer=CN = fleet-issuing" ]
	# The bundle: the chain, then the previous CA; both nodes' certificates verify against it.
	srv ca bundle >bundle.pem
	cmp bundle.pem new/chain.pem
	[ "$(grep -c 'BEGIN CERTIFICATE' bundle.pem)" -eq 3 ]
	run openssl verify -CAfile bundle.pem old/node.crt
	[ "$output" = "old/node.crt: OK" ]
	run openssl verify -CAfile bundle.pem new/node.crt
	[ "$output" = "new/node.crt: OK" ]
	# Nodes pinning the bundle for the server's TLS certificate accept it from either CA.
	attest_node 1 bundle.pem pinned-old-tls
	tls_reissue "$SRV_DIR/ca.crt" "$SRV_DIR/ca.key"
	run reload
	[[ "$output" == *"event=reloaded"* ]]
	attest_node 1 bundle.pem pinned-new-tls
	run attest_node 1 "$BATS_FILE_TMPDIR/ca0.crt" pinned-old-ca
	[ "$status" -ne 0 ]
	[[ "$output" == *"does not verify against '$BATS_FILE_TMPDIR/ca0.crt'"* ]]
	cp bundle.pem "$BATS_FILE_TMPDIR/pin.pem"
	# Retiring before the old CA's last certificate expires needs --force.
	run srv ca retire
	[ "$status" -eq 1 ]
	[[ "$output" == "keystrap-server: certificates from "*"(CN = keystrap-test-ca) may be valid until "*"certificate_lifetime 600 s): retire then, or now with --force, refusing them" ]]
	[ -e "$SRV_DIR/ca.crt.previous" ]
	# Its last certificates' expiry is the line: just before it still refused, after it retired.
	cp "$SRV_DIR/ca.crt.previous" previous.pem
	if [ -f "${FAKETIME_LIB:-/nonexistent}" ]; then
		run with_clock +590 "$KEYSTRAP_SERVER" ca retire --config "$SRV_DIR/server.json"
		[ "$status" -eq 1 ]
		run with_clock +610 "$KEYSTRAP_SERVER" ca retire --config "$SRV_DIR/server.json"
		[ "$status" -eq 0 ]
		[[ "${lines[0]}" == "CA "*"(CN = keystrap-test-ca) retired: out of the bundle" ]]
		[ ! -e "$SRV_DIR/ca.crt.previous" ]
		cp previous.pem "$SRV_DIR/ca.crt.previous"
	fi
	run srv ca retire --force
	[ "$status" -eq 0 ]
	[[ "${lines[0]}" == "CA "*"(CN = keystrap-test-ca) retired (forced): out of the bundle" ]]
	[ ! -e "$SRV_DIR/ca.crt.previous" ]
	run reload
	[[ "$output" == *"chain of 2, 0 previous"* ]]
	attest_node 3 bundle.pem newer
	[ "$(grep -c 'BEGIN CERTIFICATE' newer/chain.pem)" -eq 2 ]
	run openssl verify -CAfile newer/chain.pem old/node.crt
	[ "$status" -ne 0 ]
	run openssl verify -CAfile newer/chain.pem newer/node.crt
	[ "$output" = "newer/node.crt: OK" ]
	run srv audit export
	[[ "$output" == *'"action":"ca-rotate","decision":"allow"'*'(CN = fleet-issuing)'* ]]
	[[ "$output" == *'"action":"ca-retire","decision":"allow"'* ]]
}

@test "Key-compromise drill: the CA key is declared compromised; every node re-attests and gets a certificate from the new CA; the old CA's certificates are refused by consumers pinning the new bundle; every step is on record" {
	# Before: every node holds a certificate from the CA about to be declared compromised.
	cp "$SRV_DIR/ca.crt" compromised-chain.pem
	srv ca bundle >old-bundle.pem
	for i in $NODES; do
		attest_node "$i" "$BATS_FILE_TMPDIR/pin.pem" "old$i"
		run openssl verify -CAfile old-bundle.pem "old$i/node.crt"
		[ "$output" = "old$i/node.crt: OK" ]
	done
	# 1. A new CA at once, no overlap: the compromised one is out of the bundle.
	run srv ca rotate --compromised --subject "keystrap drill CA"
	[ "$status" -eq 0 ]
	[[ "${lines[0]}" == "CA "*"(CN = fleet-issuing) declared compromised and replaced by CA "*"(CN = keystrap drill CA): out of the bundle at once"* ]]
	[ ! -e "$SRV_DIR/ca.crt.previous" ]
	srv ca bundle >new-bundle.pem
	[ "$(grep -c 'BEGIN CERTIFICATE' new-bundle.pem)" -eq 1 ]
	# 2. The server's TLS certificate from the new CA too (the old key could sign a fake one),
	#    and the KEK rotated while at it; then a reload, no restart.
	tls_reissue "$SRV_DIR/ca.crt" "$SRV_DIR/ca.key"
	"$KEYSTRAP_SERVER" kek init "$SRV_DIR/kek.next" >/dev/null
	run srv kek rotate --new "$SRV_DIR/kek.next"
	[ "$status" -eq 0 ]
	run reload
	[[ "$output" == *"event=reloaded"*"(CN = keystrap drill CA), chain of 1, 0 previous"* ]]
	# 3. A node still pinning only the compromised CA's chain no longer trusts this server, from
	#    the first connection after the reload on (its finish would resume its start's session).
	run attest_node 1 compromised-chain.pem stale
	[ "$status" -ne 0 ]
	[[ "$output" == *"does not verify against 'compromised-chain.pem'"* ]]
	# 4. Every node, its pin replaced by the new bundle, re-attests: a certificate from the new
	#    CA, its secret still readable after the KEK rotation.
	for i in $NODES; do
		attest_node "$i" new-bundle.pem "new$i"
		run openssl x509 -in "new$i/node.crt" -noout -issuer
		[ "$output" = "issuer=CN = keystrap drill CA" ]
		[ "$(cat "new$i/secrets/token")" = rotate-me ]
		cmp new-bundle.pem "new$i/chain.pem"
		# A consumer pinning the new bundle: the new certificate passes, the old one fails.
		run openssl verify -CAfile new-bundle.pem "new$i/node.crt"
		[ "$output" = "new$i/node.crt: OK" ]
		run openssl verify -CAfile new-bundle.pem "old$i/node.crt"
		[ "$status" -ne 0 ]
		[[ "$output" == *"unable to get local issuer certificate"* ]]
		# ... and one still pinning the old bundle is the twin: it takes the old, not the new.
		run openssl verify -CAfile old-bundle.pem "old$i/node.crt"
		[ "$status" -eq 0 ]
		run openssl verify -CAfile old-bundle.pem "new$i/node.crt"
		[ "$status" -ne 0 ]
	done
	# 5. The log has each step, in order, and still verifies.
	run srv audit export
	rotate=$(grep -n '"action":"ca-rotate","decision":"allow".*declared compromised' <<<"$output" | cut -d: -f1)
	kek=$(grep -n '"action":"kek-rotate","decision":"allow"' <<<"$output" | cut -d: -f1)
	reloaded=$(grep -n '"action":"config-reload","decision":"allow".*(CN = keystrap drill CA)' <<<"$output" | cut -d: -f1)
	[ -n "$rotate" ] && [ -n "$kek" ] && [ "$rotate" -lt "$kek" ] && [ "$kek" -lt "$reloaded" ]
	for i in $NODES; do
		last=$(grep -n '"node_id":"node'"$i"'.example","action":"attest-finish","decision":"allow"' <<<"$output" | tail -1 | cut -d: -f1)
		[ "$last" -gt "$reloaded" ]
	done
	run srv audit verify
	[ "$status" -eq 0 ]
}

@test "operator rotate: the policy re-signed by the new key set; the removed key's signature stops counting; bad rotations refused, nothing changed" {
	o=$OPERATOR_DIR
	operator_key "$o" op3
	chown daemon:daemon "$SRV_DIR/server.json"
	chmod 640 "$SRV_DIR/server.json"
	cp -p "$SRV_DIR/server.json" before.json
	v=$(cat "$o/policy.version")
	p=$o/policy-v$v.json
	# Fewer keys than the threshold would remain.
	run srv operator rotate --remove "$o/op1.pub"
	[ "$status" -eq 1 ]
	[[ "$output" == "keystrap-server: removed "*"($o/op1.pub) would leave 1 operator key, fewer than policy_threshold 2: add one first" ]]
	# A key already in use, even the one being removed.
	run srv operator rotate --remove "$o/op1.pub" --add "$o/op1.pub"
	[ "$status" -eq 1 ]
	[[ "$output" == "keystrap-server: operator key '$o/op1.pub' ("*") is already in use: it is the configured '$o/op1.pub', which this rotation removes" ]]
	# Not re-signed: only op2 of the new set signed the policy in force.
	run srv operator rotate --remove "$o/op1.pub" --add "$o/op3.pub"
	[ "$status" -eq 1 ]
	[[ "$output" == "keystrap-server: policy version $v would be signed by 1 of the required 2 keys of the new set ("*"): sign it with the new keys (--signature)" ]]
	# The removed key's signature is no signature of the new set.
	run srv operator rotate --remove "$o/op1.pub" --add "$o/op3.pub" --signature "$p.op1.sig"
	[ "$status" -eq 1 ]
	[ "$output" = "keystrap-server: signature '$p.op1.sig' does not verify over the policy in force under any key of the new set" ]
	cmp before.json "$SRV_DIR/server.json"
	# Re-signed by the new key: done, the configuration names op2 and op3.
	policy_sign "$o" "$p" op3
	run srv operator rotate --remove "$o/op1.pub" --add "$o/op3.pub" --signature "$p.op3.sig"
	[ "$status" -eq 0 ]
	[[ "${lines[0]}" == "operator keys: removed "*", added "*"; policy version $v re-signed by "*", "* ]]
	run python3 -c 'import json,sys; print(" ".join(json.load(open(sys.argv[1]))["operator_keys"]))' "$SRV_DIR/server.json"
	[ "$output" = "$o/op2.pub $(realpath "$o/op3.pub")" ]
	[ "$(stat -c %a:%U:%G "$SRV_DIR/server.json")" = 640:daemon:daemon ]
	run reload
	[[ "$output" == *"event=reloaded"* ]]
	run srv policy show
	[[ "$output" == *"signed-by "*" $o/op2.pub"* ]]
	[[ "$output" == *"state in force"* ]]
	[[ "$output" != *"op1.pub"* ]]
	srv ca bundle >bundle.pem
	attest_node 1 bundle.pem ok
	# The next policy: signed by the removed key and one current key, it is one signature short.
	w=$((v + 1))
	echo "$w" >"$o/policy.version"
	policy_json "0 7" "$w" >"$o/next.json"
	policy_sign "$o" "$o/next.json" op1 op2 op3
	run srv policy load "$o/next.json" --signature "$o/next.json.op1.sig" --signature "$o/next.json.op2.sig"
	[ "$status" -eq 1 ]
	[ "$output" = "keystrap-server: signature '$o/next.json.op1.sig' does not verify under any configured operator key" ]
	run srv policy load "$o/next.json" --signature "$o/next.json.op2.sig" --signature "$o/next.json.op3.sig"
	[ "$status" -eq 0 ]
	run srv audit export
	[[ "$output" == *'"action":"operator-rotate","decision":"allow"'* ]]
	[ "$(grep -c '"action":"operator-rotate","decision":"deny"' <<<"$output")" -eq 4 ]
}
