#!/usr/bin/env bats
# Revocation that reaches running nodes (issue 16 item 3), on this host: a real keystrap-server
# (SQLite), two swtpm nodes, real kernel keyrings. The CRL the server publishes (GET /v1/crl,
# /v1/crl.pem, `ca crl`) is checked with stock openssl: signed by the CA, nextUpdate, the
# revoked node's certificates refused by `openssl verify -crl_check`, the other node's accepted.
# keystrap verify on the revoked node empties its keyring, so the consumer can no longer read
# its secret, while the other node keeps working. Negative twins: a server that cannot be
# reached and a refusal for another reason leave the keyring as it was; a reinstated node is
# out of the next CRL.

load ../lib/swtpm
load ../lib/server
load ../lib/clock

# Consumer uids of this file alone: a uid other suites use (65534) may see their keyrings too.
CONSUMER=64711
CONSUMER_B=64712

setup_file() {
	command -v keyctl >/dev/null || skip "keyctl (keyutils) is not installed"
	swtpm_start "$BATS_FILE_TMPDIR/b"
	export B_DIR=$SWTPM_DIR B_PORT=$SWTPM_PORT B_TCTI=$KEYSTRAP_TCTI B_LOG=$KEYSTRAP_MEASURE_LOG
	swtpm_start
	export SRV_DIR=$BATS_FILE_TMPDIR/srv SRV_PORT EK EK_B SECRET
	SRV_PORT=$(free_port)
	server_pki "$SRV_DIR"
	server_config "$SRV_DIR" "0 7"
	SECRET="keystrap-revocation-$(head -c 12 /dev/urandom | xxd -p)"
	server_secret_policy "$SECRET"
	server_start "$SRV_DIR"
	EK=$("$KEYSTRAP" status --ek)
	EK_B=$(KEYSTRAP_TCTI=$B_TCTI "$KEYSTRAP" status --ek)
	srv node approve "$EK" --id node-a >/dev/null
	srv node approve "$EK_B" --id node-b >/dev/null
}

teardown_file() {
	server_stop "$SRV_DIR" || true
	swtpm_stop
	SWTPM_DIR=$B_DIR SWTPM_PORT=$B_PORT swtpm_stop
}

setup() {
	keyctl new_session >/dev/null
	export KEYSTRAP_KEYRING=session
	cd "$BATS_TEST_TMPDIR"
	conf keystrap.conf "https://127.0.0.1:$SRV_PORT" "$CONSUMER"
	conf keystrap-b.conf "https://127.0.0.1:$SRV_PORT" "$CONSUMER_B"
}

teardown() {
	keyctl clear @s >/dev/null 2>&1 || true
	swtpm_reboot
	# A test that stopped halfway leaves node A revoked: the next one starts from an approved node.
	srv node approve node-a --reinstate >/dev/null 2>&1 || true
}

# conf FILE SERVER OWNER
conf() {
	printf '[Attest]\nServer=%s\nCA=%s\nTimeout=5\nRetries=0\n[Handoff]\nOwner=%s\nGroup=%s\n' \
		"$2" "$SRV_DIR/ca.crt" "$3" "$3" >"$1"
}

as_consumer() {
	# keyctl's own "Joined session keyring" line goes; what the command says stays.
	setpriv --reuid="${UID_AS:-$CONSUMER}" --regid="${UID_AS:-$CONSUMER}" --clear-groups \
		keyctl session - sh -c 'exec "$@" 2>&1' sh "$@" 2>/dev/null
}

# node_b SCRIPT: node B's steps in a session keyring of their own (its TPM, its log, its consumer).
node_b() {
	KEYSTRAP_TCTI=$B_TCTI TPM2TOOLS_TCTI=$B_TCTI KEYSTRAP_MEASURE_LOG=$B_LOG UID_AS=$CONSUMER_B \
		keyctl session - bash -c "$(declare -f as_consumer); $1"
}

crl_get() {
	curl -s --fail --cacert "$SRV_DIR/ca.crt" -o "$2" "https://127.0.0.1:$SRV_PORT$1"
}

crl_number() {
	openssl crl -in "$1" -noout -crlnumber | sed 's/^crlNumber=0x//'
}

serial_of() {
	openssl x509 -in "$1" -noout -serial | sed 's/^serial=//'
}

@test "the CRL: DER and PEM, signed by the CA, with nextUpdate and a number; ca crl makes the same list" {
	crl_get /v1/crl crl.der
	crl_get /v1/crl.pem crl.pem
	# The same CRL in both encodings, and a signature that verifies with the CA's key.
	openssl crl -in crl.der -inform DER -outform PEM | cmp - crl.pem
	run openssl crl -in crl.pem -CAfile "$SRV_DIR/ca.crt" -noout
	[ "$status" -eq 0 ]
	[[ "$output" == *"verify OK"* ]]
	run openssl crl -in crl.pem -noout -text
	[[ "$output" == *"Issuer: CN = keystrap-test-ca"* ]]
	[[ "$output" == *"X509v3 Authority Key Identifier"* ]]
	[[ "$output" == *"No Revoked Certificates."* ]]
	next=$(openssl crl -in crl.pem -noout -nextupdate | sed 's/^nextUpdate=//')
	last=$(openssl crl -in crl.pem -noout -lastupdate | sed 's/^lastUpdate=//')
	# A day ahead by default; thisUpdate backdated 300 s like the certificates.
	[ $(($(date -d "$next" +%s) - $(date -d "$last" +%s))) -eq $((86400 + 300)) ]
	[ -n "$(crl_number crl.pem)" ]
	curl -s --cacert "$SRV_DIR/ca.crt" -D headers -o /dev/null "https://127.0.0.1:$SRV_PORT/v1/crl"
	grep -qi '^content-type: application/pkix-crl' headers
	# Twin: the signature does not verify with another CA.
	mkdir other && server_pki other
	run openssl crl -in crl.pem -CAfile other/ca.crt -noout
	[[ "$output" != *"verify OK"* ]]
	# The admin command: to stdout (DER, or PEM), and written over a file with its number said.
	srv ca crl | openssl crl -inform DER -CAfile "$SRV_DIR/ca.crt" -noout 2>&1 | grep -q "verify OK"
	srv ca crl --pem | openssl crl -CAfile "$SRV_DIR/ca.crt" -noout 2>&1 | grep -q "verify OK"
	run srv ca crl --pem --out published.pem
	[ "$status" -eq 0 ]
	[[ "$output" =~ ^CRL\ [0-9]+\ listing\ 0\ certificates\ written\ to\ published.pem,\ next\ update\ ....-..-..T ]]
	[ "$(stat -c %a published.pem)" = 644 ]
	# Every CRL made has a number above the ones before, whichever process made it.
	[ $((16#$(crl_number published.pem))) -gt $((16#$(crl_number crl.pem))) ]
}

@test "a refusal for another reason, or no server at all, leaves the keyring as it was" {
	"$KEYSTRAP" handoff --config keystrap.conf 2>/dev/null
	ring=$(keyctl search @s keyring keystrap)
	# Nobody listening: verify fails, nothing is touched.
	conf down.conf "https://127.0.0.1:$(free_port)" "$CONSUMER"
	run "$KEYSTRAP" verify --config down.conf
	[ "$status" -eq 4 ]
	[[ "$output" == *"cannot reach"* ]]
	[[ "$output" == *": no answer from the server in time (unreachable or busy)"* ]]
	[[ "$output" != *revoked* ]]
	[ "$(keyctl search @s keyring keystrap)" = "$ring" ]
	[ "$(as_consumer "$KEYSTRAP" get secret:db)" = "$SECRET" ]
	# Refused for its boot state (PCR 7 moved): reported, and still nothing is touched.
	tpm2_pcrextend 7:sha256=$(printf '%064d' 7) >/dev/null
	run "$KEYSTRAP" verify --config keystrap.conf
	[ "$status" -eq 5 ]
	[[ "$output" == *"the server refused the attestation (HTTP 403): event log does not replay to quoted PCR 7"* ]]
	[[ "$output" == *"attestation to https://127.0.0.1:$SRV_PORT: refused by the server"* ]]
	[[ "$output" != *revoked* ]]
	[ "$(keyctl search @s keyring keystrap)" = "$ring" ]
	[ "$(as_consumer "$KEYSTRAP" get secret:db)" = "$SECRET" ]
}

# canned CERT KEY MODE: tests/lib/https-canned.py answering MODE with that TLS certificate; sets CANNED_PORT.
canned() {
	python3 "$BATS_TEST_DIRNAME/../lib/https-canned.py" "$1" "$2" "$3" >canned.port &
	CANNED_PID=$!
	for _ in $(seq 100); do
		[ -s canned.port ] && break
		sleep 0.05
	done
	CANNED_PORT=$(cat canned.port)
	[ -n "$CANNED_PORT" ]
}

canned_stop() {
	kill "$CANNED_PID" 2>/dev/null
	wait "$CANNED_PID" 2>/dev/null || true
	rm -f canned.port
}

@test "'node is revoked' from an impostor without the server's TLS key changes nothing; from the server's key it is believed" {
	"$KEYSTRAP" handoff --config keystrap.conf 2>/dev/null
	ring=$(keyctl search @s keyring keystrap)
	mkdir other && server_pki other
	canned other/tls.crt other/tls.key revoked
	conf impostor.conf "https://127.0.0.1:$CANNED_PORT" "$CONSUMER"
	run "$KEYSTRAP" verify --config impostor.conf
	canned_stop
	# A certificate the pinned CA did not sign: this node's failure (1), as for keystrap attest.
	[ "$status" -eq 1 ]
	[[ "$output" == *"attestation to https://127.0.0.1:$CANNED_PORT: failed on this node"* ]]
	[[ "$output" == *"cannot reach https://127.0.0.1:$CANNED_PORT"* ]]
	[[ "$output" != *"revoked:"* ]]
	[ "$(keyctl search @s keyring keystrap)" = "$ring" ]
	[ "$(as_consumer "$KEYSTRAP" get secret:db)" = "$SECRET" ]
	# Twin: the same answer over TLS with the server's own key (the pinned CA's) empties it.
	canned "$SRV_DIR/tls.crt" "$SRV_DIR/tls.key" revoked
	conf pinned.conf "https://127.0.0.1:$CANNED_PORT" "$CONSUMER"
	run "$KEYSTRAP" verify --config pinned.conf
	canned_stop
	[ "$status" -eq 5 ]
	[[ "$output" == *"attestation to https://127.0.0.1:$CANNED_PORT: refused by the server: this node is revoked"* ]]
	[[ "$output" == *"revoked: https://127.0.0.1:$CANNED_PORT says node node-a is revoked"* ]]
	run as_consumer "$KEYSTRAP" get secret:db
	[ "$status" -eq 1 ]
	[[ "$output" == *"was revoked"* ]]
}

@test "revoke: the next verify empties that node's keyring and the CRL refuses its certificates; the other node keeps working" {
	# Node A attests twice (a boot and a renewal): two certificates, both still valid.
	"$KEYSTRAP" handoff --config keystrap.conf 2>/dev/null
	as_consumer "$KEYSTRAP" get certificate >a1.crt
	"$KEYSTRAP" handoff --config keystrap.conf 2>/dev/null
	for _ in 1 2 3 4 5 6 7 8 9 10; do
		as_consumer "$KEYSTRAP" get certificate >a2.crt
		cmp -s a1.crt a2.crt || break
		sleep 0.2
	done
	! cmp -s a1.crt a2.crt || false
	node_b "$KEYSTRAP"' handoff --config keystrap-b.conf 2>/dev/null && as_consumer '"$KEYSTRAP"' get certificate' >b.crt
	openssl x509 -in b.crt -noout -subject | grep -q 'CN = node-b'
	# Before: verify passes, the CRL refuses nobody (the twin of what follows).
	run "$KEYSTRAP" verify --config keystrap.conf
	[ "$status" -eq 0 ]
	[[ "$output" == *"attestation to https://127.0.0.1:$SRV_PORT: accepted, node node-a"* ]]
	crl_get /v1/crl.pem before.pem
	openssl verify -crl_check -CAfile "$SRV_DIR/ca.crt" -CRLfile before.pem a2.crt

	# The operator revokes node A with the admin CLI, another process: the running server's
	# very next CRL lists both of A's certificates, under a higher number.
	srv node revoke node-a >/dev/null
	crl_get /v1/crl.pem after.pem
	[ $((16#$(crl_number after.pem))) -gt $((16#$(crl_number before.pem))) ]
	listed=$(openssl crl -in after.pem -noout -text | awk '/Serial Number:/ { print toupper($3) }' | sort)
	# Both of the node's certificates (and the ones its verify runs were issued and wiped), not B's.
	grep -qx "$(serial_of a1.crt)" <<<"$listed"
	grep -qx "$(serial_of a2.crt)" <<<"$listed"
	! grep -qx "$(serial_of b.crt)" <<<"$listed" || false
	run openssl verify -crl_check -CAfile "$SRV_DIR/ca.crt" -CRLfile after.pem a2.crt
	[ "$status" -ne 0 ]
	[[ "$output" == *"certificate revoked"* ]]
	run openssl verify -crl_check -CAfile "$SRV_DIR/ca.crt" -CRLfile after.pem a1.crt
	[[ "$output" == *"certificate revoked"* ]]
	openssl verify -crl_check -CAfile "$SRV_DIR/ca.crt" -CRLfile after.pem b.crt
	# The same list from ca crl, DER.
	srv ca crl >admin.der
	[ "$(openssl crl -inform DER -in admin.der -noout -text | awk '/Serial Number:/ { print toupper($3) }' | sort)" = "$listed" ]

	# Until verify runs, the node still holds what it was given.
	[ "$(as_consumer "$KEYSTRAP" get secret:db)" = "$SECRET" ]
	run "$KEYSTRAP" verify --config keystrap.conf
	[ "$status" -eq 5 ]
	[[ "$output" == *"the server refused the attestation start (HTTP 403): node is revoked"* ]]
	[[ "$output" == *"attestation to https://127.0.0.1:$SRV_PORT: refused by the server: this node is revoked"* ]]
	[[ "$output" == *"revoked: https://127.0.0.1:$SRV_PORT says node node-a is revoked; its certificate, key and secrets are gone from the keyring"* ]]
	for what in secret:db certificate key chain; do
		run as_consumer "$KEYSTRAP" get "$what"
		[ "$status" -eq 1 ]
		[ "${#lines[@]}" -eq 1 ]
		[[ "$output" =~ ^keystrap:\ node\ node-a\ was\ revoked\ by\ https://127.0.0.1:$SRV_PORT\ \(seen\ ....-..-..\ ..:..:..\ UTC\):\ its\ certificate,\ key\ and\ secrets\ are\ no\ longer\ served$ ]]
	done
	run as_consumer "$KEYSTRAP" get --bundle
	[ "$status" -eq 1 ]
	[[ "$output" == *"was revoked"* ]]
	# Root's view: one status key, nothing else, and status says revoked.
	ring=$(keyctl search @s keyring keystrap)
	[ "$(keyctl rdescribe "$ring" | cut -d';' -f5)" = keystrap ]
	[ "$(keyctl list "$ring" | grep -c 'user: ')" -eq 1 ]
	keyctl list "$ring" | grep -q 'user: status$'
	run "$KEYSTRAP" status
	[[ "$output" == *"revoked:     by the server, seen at "* ]]
	as_consumer "$KEYSTRAP" get status | grep -qx 'result=revoked'
	# A second verify says it is still revoked and keeps the first time.
	seen=$(as_consumer "$KEYSTRAP" get status | grep '^revoked_at=')
	run "$KEYSTRAP" verify --config keystrap.conf
	[ "$status" -eq 5 ]
	[[ "$output" == *"revoked: still, since "* ]]
	[ "$(as_consumer "$KEYSTRAP" get status | grep '^revoked_at=')" = "$seen" ]

	# Node B: verify accepted, its consumer reads its secret.
	run node_b "$KEYSTRAP"' handoff --config keystrap-b.conf 2>/dev/null && '"$KEYSTRAP"' verify --config keystrap-b.conf && as_consumer '"$KEYSTRAP"' get secret:db'
	[ "$status" -eq 0 ]
	[[ "$output" == *"accepted, node node-b"* ]]
	[ "${lines[-1]}" = "$SECRET" ]

	# Reinstated: out of the next CRL (again at once, from another process), and a handoff
	# brings the credentials back.
	srv node approve node-a --reinstate >/dev/null
	crl_get /v1/crl.pem reinstated.pem
	[ $((16#$(crl_number reinstated.pem))) -gt $((16#$(crl_number after.pem))) ]
	openssl crl -in reinstated.pem -noout -text | grep -q "No Revoked Certificates."
	"$KEYSTRAP" handoff --config keystrap.conf 2>/dev/null
	[ "$(as_consumer "$KEYSTRAP" get secret:db)" = "$SECRET" ]
}

@test "a renewal the server refuses as revoked empties the keyring too; a restarted server's CRL still lists the node" {
	"$KEYSTRAP" handoff --config keystrap.conf 2>/dev/null
	as_consumer "$KEYSTRAP" get certificate >a.crt
	srv node revoke node-a >/dev/null
	crl_get /v1/crl.pem before-restart.pem
	server_stop "$SRV_DIR"
	server_start "$SRV_DIR"
	crl_get /v1/crl.pem after-restart.pem
	[ $((16#$(crl_number after-restart.pem))) -gt $((16#$(crl_number before-restart.pem))) ]
	run openssl verify -crl_check -CAfile "$SRV_DIR/ca.crt" -CRLfile after-restart.pem a.crt
	[[ "$output" == *"certificate revoked"* ]]
	# SIGHUP: the reloaded server signs a new one, still listing it.
	kill -HUP "$(cat "$SRV_DIR/server.pid")"
	sleep 0.5
	crl_get /v1/crl.pem reloaded.pem
	[ $((16#$(crl_number reloaded.pem))) -gt $((16#$(crl_number after-restart.pem))) ]
	run openssl verify -crl_check -CAfile "$SRV_DIR/ca.crt" -CRLfile reloaded.pem a.crt
	[[ "$output" == *"certificate revoked"* ]]
	# The renewal timer's run, not due yet: it does not ask the server, the keyring stays.
	run "$KEYSTRAP" handoff --renew --config keystrap.conf
	[ "$status" -eq 0 ]
	[[ "$output" == *"renewal not due"* ]]
	[ "$(as_consumer "$KEYSTRAP" get secret:db)" = "$SECRET" ]
	# Six minutes on, past half the 600 s lifetime: due, refused as revoked, the keyring emptied.
	clock_skip
	run with_clock +6m "$KEYSTRAP" handoff --renew --config keystrap.conf
	[ "$status" -eq 5 ]
	[[ "$output" == *"keystrap: renewal refused: the server says this node is revoked; its credentials are gone from the keyring"* ]]
	run as_consumer "$KEYSTRAP" get secret:db
	[ "$status" -eq 1 ]
	[[ "$output" == *"node node-a was revoked by"* ]]
	run with_clock +6m "$KEYSTRAP" handoff --renew --config keystrap.conf
	[ "$status" -eq 5 ]
	[[ "$output" == *"keystrap: renewal refused: this node is still revoked; its keyring holds no credentials"* ]]
}

@test "bad inputs: one line each" {
	run srv ca crl --out ''
	[ "$status" -eq 1 ]
	[ "$output" = "keystrap-server: --out '' names no file" ]
	run srv ca crl --out /nonexistent/dir/crl.pem
	[ "$status" -eq 1 ]
	[ "${#lines[@]}" -eq 1 ]
	[[ "$output" == "keystrap-server: cannot write the CRL to '/nonexistent/dir/crl.pem': No such file or directory" ]]
	run srv ca crl extra
	[ "$status" -eq 2 ]
	run srv ca show --pem
	[ "$status" -eq 2 ]
	run curl -s --cacert "$SRV_DIR/ca.crt" -X POST -D - -o body "https://127.0.0.1:$SRV_PORT/v1/crl"
	[[ "$output" == *" 405"* ]]
	[[ "$output" == *"Allow: GET"* ]]
	[ "$(cat body)" = '{"error":"only GET is allowed here"}' ]
	run curl -s --cacert "$SRV_DIR/ca.crt" -o /dev/null -w '%{http_code}' "https://127.0.0.1:$SRV_PORT/v1/crl.der"
	[ "$output" = 404 ]
	# HEAD: the headers a GET has, no body.
	run curl -s --cacert "$SRV_DIR/ca.crt" -I "https://127.0.0.1:$SRV_PORT/v1/crl.pem"
	[[ "$output" == *" 200"* ]]
	[[ "$output" == *"Content-Type: application/x-pem-file"* ]]
	[[ "$output" == *"Cache-Control: no-store"* ]]
	# A CA whose keyUsage has no cRLSign: refused, naming it (consumers would refuse its CRL).
	mkdir nocrl
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=no-crl-ca \
		-addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign \
		-keyout nocrl/ca.key -out nocrl/ca.crt 2>/dev/null
	sed -e "s|$SRV_DIR/ca.crt|$PWD/nocrl/ca.crt|" -e "s|$SRV_DIR/ca.key|$PWD/nocrl/ca.key|" "$SRV_DIR/server.json" >nocrl.json
	run "$KEYSTRAP_SERVER" ca crl --config nocrl.json
	[ "$status" -eq 1 ]
	[ "$output" = "keystrap-server: no CRL: the CA (CN = no-crl-ca) may not sign CRLs: its keyUsage has no cRLSign" ]
	# crl_lifetime: out of range refused by name; in range, nextUpdate follows it.
	sed 's|"policy_threshold":2|"policy_threshold":2,"crl_lifetime":10|' "$SRV_DIR/server.json" >short.json
	run "$KEYSTRAP_SERVER" ca crl --config short.json
	[ "$status" -eq 1 ]
	[[ "$output" == *"'crl_lifetime' is not a number from 300 to 2592000"* ]]
	sed 's|"policy_threshold":2|"policy_threshold":2,"crl_lifetime":600|' "$SRV_DIR/server.json" >ten.json
	"$KEYSTRAP_SERVER" ca crl --pem --config ten.json >ten.pem
	next=$(openssl crl -in ten.pem -noout -nextupdate | sed 's/^nextUpdate=//')
	last=$(openssl crl -in ten.pem -noout -lastupdate | sed 's/^lastUpdate=//')
	[ $(($(date -d "$next" +%s) - $(date -d "$last" +%s))) -eq 900 ]
}
