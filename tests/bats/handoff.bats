#!/usr/bin/env bats
# keystrap handoff end to end on this host: a real swtpm, a real keystrap-server on loopback,
# the attest handshake in-process, then the credentials in a real kernel keyring (the test's
# own session keyring, KEYSTRAP_KEYRING=session) read back by the consumer uid. Its negative
# twins: a server that is down under each failure policy, a consumer name the system cannot
# resolve, a config without a server.

load ../lib/swtpm
load ../lib/server
load ../lib/clock

PEER=$BATS_TEST_DIRNAME/../../build/asan/attest-peer
CONSUMER=65534

setup_file() {
	command -v keyctl >/dev/null || skip "keyctl (keyutils) is not installed"
	swtpm_start
	export SRV_DIR=$BATS_FILE_TMPDIR/srv SRV_PORT EK
	SRV_PORT=$(free_port)
	# Issued an hour ago, as a real server's are: a node minutes behind is within their validity.
	if [ -n "$FAKETIME_LIB" ]; then with_clock -1h server_pki "$SRV_DIR"; else server_pki "$SRV_DIR"; fi
	server_config "$SRV_DIR" "0 7"
	# The default group receives one secret, known to the test only through this file.
	export SECRET="keystrap-handoff-$(head -c 12 /dev/urandom | xxd -p)"
	server_secret_policy "$SECRET"
	server_start "$SRV_DIR"
	EK=$(ek_hash)
	approve_peer
}

teardown_file() {
	server_stop "$SRV_DIR" || true
	swtpm_stop
}

setup() {
	keyctl new_session >/dev/null
	export KEYSTRAP_KEYRING=session
	cd "$BATS_TEST_TMPDIR"
	conf "https://127.0.0.1:$SRV_PORT" continue
}

teardown() {
	keyctl clear @s >/dev/null 2>&1 || true
	swtpm_reboot
	rm -f "$KEYSTRAP_MEASURE_LOG"
}

# conf SERVER POLICY [OWNER]: keystrap.conf in the test directory.
conf() {
	printf '[Attest]\nServer=%s\nCA=%s\nTimeout=5\nRetries=%s\nFailurePolicy=%s\n[Handoff]\nOwner=%s\nGroup=%s\n' \
		"$1" "$SRV_DIR/ca.crt" "${RETRIES:-0}" "$2" "${3:-$CONSUMER}" "${3:-$CONSUMER}" >keystrap.conf
}

as_consumer() {
	setpriv --reuid=$CONSUMER --regid=$CONSUMER --clear-groups keyctl session - "$@" 2>/dev/null
}

@test "handoff attests and the consumer holds a certificate from the server's CA, for the key in the keyring" {
	run "$KEYSTRAP" handoff --config keystrap.conf
	[ "$status" -eq 0 ]
	[[ "$output" == *"keystrap: node node1.example: 1 secret(s), certificate and key in keyring "* ]]
	[[ "$output" != *"$SECRET"* ]]
	[ "$(as_consumer "$KEYSTRAP" get secret:db)" = "$SECRET" ]
	as_consumer "$KEYSTRAP" get certificate >node.crt
	openssl verify -CAfile "$SRV_DIR/ca.crt" node.crt
	as_consumer "$KEYSTRAP" get chain | cmp - "$SRV_DIR/ca.crt"
	# The key in the keyring is the certificate's (and never in the output above).
	[ "$(as_consumer "$KEYSTRAP" get key | openssl pkey -inform DER -pubout)" = \
		"$(openssl x509 -in node.crt -pubkey -noout)" ]
	priv=$(as_consumer "$KEYSTRAP" get key | openssl pkey -inform DER -noout -text |
		awk '/^priv:/ { f = 1; next } /^pub:/ { f = 0 } f' | tr -d ' :\n')
	[ ${#priv} -ge 62 ]
	[[ "$(printf '%s' "$output" | xxd -p | tr -d '\n')" != *"$priv"* ]]
	# Status: the server's facts, the expiry the server set (certificate_lifetime 600 s).
	run "$KEYSTRAP" status
	[ "$status" -eq 0 ]
	[[ "$output" == *"node:        node1.example"* ]]
	[[ "$output" == *"server:      https://127.0.0.1:$SRV_PORT"* ]]
	[[ "$output" =~ remaining:\ +(5[89][0-9]|600)\ s ]]
	[[ "$output" =~ secret:db\ +${#SECRET}\ bytes ]]
	[[ "$output" != *"$SECRET"* ]]
	ring=$(keyctl search @s keyring keystrap)
	grep -E "^$(printf '%08x' "$ring") " /proc/keys | awk '{ print $4 }' | grep -Eq '^(9|10)m$'
	as_consumer "$KEYSTRAP" get status | grep -Eq '^pcrs=sha256:0=[0-9a-f]{64},1='
	# The attested phase was measured by the handshake, after a verified reply.
	jq --seq -r '.content.string' "$KEYSTRAP_MEASURE_LOG" | grep -qx 'keystrap:attested'
	# Another uid gets nothing.
	run setpriv --reuid=4242 --regid=4242 --clear-groups keyctl session - "$KEYSTRAP" get certificate
	[ "$status" -ne 0 ]
	[[ "$output" == *"permission denied"* ]]
}

@test "server down, FailurePolicy=continue: bounded, says so loudly, exit 4 (unreachable), no keyring" {
	conf "https://127.0.0.1:$(free_port)" continue
	SECONDS=0
	run "$KEYSTRAP" handoff --config keystrap.conf
	[ "$status" -eq 4 ]
	[ "${#lines[@]}" -eq 3 ] # the configuration measured, why, what the boot does
	[ "$SECONDS" -lt 20 ]
	[[ "$output" == *"keystrap: cannot reach https://127.0.0.1:"* ]]
	[[ "$output" == *"*** booting WITHOUT node credentials: attestation failed (FailurePolicy=continue) ***"* ]]
	run keyctl search @s keyring keystrap
	[ "$status" -ne 0 ]
	run "$KEYSTRAP" status
	[ "$status" -eq 1 ]
}

@test "server down, FailurePolicy=emergency: exit 3; a previous keyring stays as it was" {
	"$KEYSTRAP" handoff --config keystrap.conf 2>/dev/null
	old=$(keyctl search @s keyring keystrap)
	conf "https://127.0.0.1:$(free_port)" emergency
	run "$KEYSTRAP" handoff --config keystrap.conf
	[ "$status" -eq 3 ]
	[[ "$output" == *"no node credentials: attestation failed; FailurePolicy=emergency stops the boot"* ]]
	[ "$(keyctl search @s keyring keystrap)" = "$old" ]
}

@test "renewal: a second handoff replaces the keyring in one step with a fresh certificate" {
	"$KEYSTRAP" handoff --config keystrap.conf 2>/dev/null
	old=$(keyctl search @s keyring keystrap)
	first=$(as_consumer "$KEYSTRAP" get certificate)
	run "$KEYSTRAP" handoff --config keystrap.conf
	[ "$status" -eq 0 ]
	new=$(keyctl search @s keyring keystrap)
	[ "$new" != "$old" ]
	[ "$(keyctl list @s | grep -c 'keyring: keystrap')" -eq 1 ]
	# The replaced keyring is invalidated at once, but the kernel reaps it asynchronously; a
	# reader racing that window may still get the previous (valid, unexpired) certificate.
	for _ in 1 2 3 4 5 6 7 8 9 10; do
		[ "$(as_consumer "$KEYSTRAP" get certificate)" != "$first" ] && break
		sleep 0.2
	done
	[ "$(as_consumer "$KEYSTRAP" get certificate)" != "$first" ]
	run keyctl rdescribe "$old"
	[ "$status" -ne 0 ]
}

@test "a consumer name the system does not know is refused before attesting; no server, no handoff" {
	conf "https://127.0.0.1:$SRV_PORT" continue no-such-user-here
	run "$KEYSTRAP" handoff --config keystrap.conf
	[ "$status" -eq 1 ]
	[[ "$output" == *"[Handoff] Owner='no-such-user-here' Group='no-such-user-here': no such user or group here (use numeric ids)"* ]]
	! grep -q keystrap:attested "$KEYSTRAP_MEASURE_LOG" 2>/dev/null || false
	printf '[Handoff]\nOwner=1\n' >keystrap.conf
	run "$KEYSTRAP" handoff --config keystrap.conf
	[ "$status" -eq 1 ]
	[[ "$output" == *"keystrap.conf: [Attest] Server= and CA= are needed to attest"* ]]
	run "$KEYSTRAP" handoff --bogus
	[ "$status" -eq 2 ]
}

@test "during a handoff the only file written is the measurement log; the secret is in no file, argv or environment" {
	touch marker
	sleep 1
	# LeakSanitizer cannot run under ptrace; SECRET is this file's own variable, not keystrap's.
	ASAN_OPTIONS=detect_leaks=0 env -u SECRET strace -f -qq -v -s 4096 -e trace=%file,execve,memfd_create -o trace \
		"$KEYSTRAP" handoff --config keystrap.conf 2>/dev/null
	[ "$(as_consumer "$KEYSTRAP" get secret:db)" = "$SECRET" ]
	written=$(grep -E 'O_WRONLY|O_RDWR|O_CREAT' trace | grep -v ENOENT | grep -oE '"[^"]+"' | sort -u)
	[ "$written" = "\"$KEYSTRAP_MEASURE_LOG\"" ] || { echo "written: $written"; false; }
	# A file made or moved by any other call (readlink only reads a name).
	! grep -E '^[0-9]+ +(rename|renameat2?|link|linkat|symlink|symlinkat|mknod|mknodat|memfd_create)\(' trace || false
	! grep -qF "$SECRET" trace || false
	rm -f trace
	while IFS= read -r -d '' f; do
		! grep -qF "$SECRET" "$f" 2>/dev/null || { echo "secret in $f"; false; }
	# The server's store holds it by design (this host plays the server too).
	done < <(find /run /tmp "$PWD" -xdev -type f -newer marker ! -path "$SRV_DIR/*" -print0 2>/dev/null)
}

@test "verify: no drift and a fresh accepted attestation; after PCR 7 moves, drift named locally and by the server's audit" {
	run "$KEYSTRAP" verify --config keystrap.conf
	[ "$status" -eq 1 ]
	[[ "$output" == *"keystrap: nothing to verify: no keystrap keyring with a status"* ]]
	"$KEYSTRAP" handoff --config keystrap.conf 2>/dev/null
	run "$KEYSTRAP" verify --config keystrap.conf
	[ "$status" -eq 0 ]
	[[ "$output" == *"no drift: PCRs 0-11, 13, 14 are as at the handoff"* ]]
	[[ "$output" == *"attestation to https://127.0.0.1:$SRV_PORT: accepted, node node1.example"* ]]
	# Negative twin: something measured into PCR 7 after the handoff (the policy pins it).
	tpm2_pcrextend "7:sha256=$(printf drift | sha256sum | cut -c1-64)"
	run "$KEYSTRAP" verify --config keystrap.conf
	# The server's refusal (5) says more than the drift seen here (1).
	[ "$status" -eq 5 ]
	[[ "$output" =~ drift:\ PCR\ 7\ changed\ since\ the\ handoff\ \(was\ [0-9a-f]{64},\ now\ [0-9a-f]{64}\) ]]
	[[ "$output" == *"attestation to https://127.0.0.1:$SRV_PORT: refused by the server"* ]]
	[[ "$output" != *revoked* ]]
	[[ "$output" == *"the server refused the attestation (HTTP 403): "*"PCR 7"* ]]
	srv audit export | tail -n 3 | grep -q 'PCR 7'
	# The credentials in the keyring are untouched by verify.
	[ "$(as_consumer "$KEYSTRAP" get secret:db)" = "$SECRET" ]
}

@test "verify exit status: 0 accepted, 1 a bad configuration or a drift the policy allows, 4 unreachable, never 4 on drift" {
	"$KEYSTRAP" handoff --config keystrap.conf 2>/dev/null
	run "$KEYSTRAP" verify --config keystrap.conf
	[ "$status" -eq 0 ]
	# A configuration without a server: this node's failure, 1, before any attestation.
	printf '[Attest]\nCA=%s\n' "$SRV_DIR/ca.crt" >noserver.conf
	run "$KEYSTRAP" verify --config noserver.conf
	[ "$status" -eq 1 ]
	[[ "$output" == *"noserver.conf: [Attest] Server= and CA= are needed to attest"* ]]
	[[ "$output" != *"attestation to"* ]]
	# Nobody listening on the port: 4, and said so.
	conf "https://127.0.0.1:$(free_port)" continue
	mv keystrap.conf down.conf
	conf "https://127.0.0.1:$SRV_PORT" continue
	run "$KEYSTRAP" verify --config down.conf
	[ "$status" -eq 4 ]
	[[ "$output" == *"no drift: "* ]]
	[[ "$output" == *": no answer from the server in time (unreachable or busy)"* ]]
	[[ "$output" != *revoked* ]]
	# PCR 9 moves, which this policy (0 7) does not pin: the server accepts, the drift is 1.
	tpm2_pcrextend "9:sha256=$(printf drift | sha256sum | cut -c1-64)"
	run "$KEYSTRAP" verify --config keystrap.conf
	[ "$status" -eq 1 ]
	[[ "$output" == *"drift: PCR 9 changed since the handoff"* ]]
	[[ "$output" == *"attestation to https://127.0.0.1:$SRV_PORT: accepted, node node1.example"* ]]
	# The same drift with no server to ask: still 1, not 4.
	run "$KEYSTRAP" verify --config down.conf
	[ "$status" -eq 1 ]
	[[ "$output" == *"drift: PCR 9 changed since the handoff"* ]]
	[[ "$output" == *": no answer from the server in time (unreachable or busy)"* ]]
	[ "$(as_consumer "$KEYSTRAP" get secret:db)" = "$SECRET" ]
}

@test "handoff --renew: not due while more than half the lifetime remains; due without credentials; never the emergency exit" {
	run "$KEYSTRAP" handoff --renew --config keystrap.conf
	[ "$status" -eq 0 ]
	ring=$(keyctl search @s keyring keystrap)
	run "$KEYSTRAP" handoff --renew --config keystrap.conf
	[ "$status" -eq 0 ]
	# On a loaded machine seconds pass, and the lifetime is the certificate's by the server's
	# clock read to the second (a second either way): anything above half is "not due".
	[[ "$output" =~ ^renewal\ not\ due:\ ([0-9]+)\ of\ ([0-9]+)\ s\ remain$ ]]
	left=${BASH_REMATCH[1]} life=${BASH_REMATCH[2]}
	[ "$life" -ge 598 ] && [ "$life" -le 602 ] && [ "$left" -le "$life" ] && [ "$((2 * left))" -ge "$life" ]
	[ "$(keyctl search @s keyring keystrap)" = "$ring" ]
	# Due (no credentials) but the server is down, under FailurePolicy=emergency: at runtime
	# that is a failed renewal (exit 4: the server is unreachable), not an emergency.
	keyctl clear @s
	conf "https://127.0.0.1:$(free_port)" emergency
	run "$KEYSTRAP" handoff --renew --config keystrap.conf
	[ "$status" -eq 4 ]
	[[ "$output" == *"keystrap: renewal failed; the current credentials stay until they expire"* ]]
}

@test "a boot the server refuses (PCR 7 moved): exit 5 under continue, 3 under emergency, 5 for a renewal" {
	tpm2_pcrextend "7:sha256=$(printf drift | sha256sum | cut -c1-64)"
	run "$KEYSTRAP" handoff --config keystrap.conf
	[ "$status" -eq 5 ]
	[[ "$output" == *"the server refused the attestation (HTTP 403): "*"PCR 7"* ]]
	[[ "$output" == *"*** booting WITHOUT node credentials: attestation failed (FailurePolicy=continue) ***"* ]]
	run "$KEYSTRAP" handoff --renew --config keystrap.conf
	[ "$status" -eq 5 ]
	[[ "$output" == *"keystrap: renewal failed; the current credentials stay until they expire"* ]]
	conf "https://127.0.0.1:$SRV_PORT" emergency
	run "$KEYSTRAP" handoff --config keystrap.conf
	[ "$status" -eq 3 ]
	run keyctl search @s keyring keystrap
	[ "$status" -ne 0 ]
}

# finishes: how many finishes the server has audited (each would have issued a certificate).
finishes() {
	srv audit export | jq -c 'select(.action == "attest-finish")' | wc -l
}

@test "an EK no operator approved: the handoff's console line quotes its full EK hash, what status --ek prints; exit 5" {
	ek=$("$KEYSTRAP" status --ek=ecc384)
	[[ "$ek" =~ ^[0-9a-f]{64}$ ]]
	run "$KEYSTRAP" handoff --ek ecc384 --config keystrap.conf
	[ "$status" -eq 5 ]
	[[ "$output" == *"node is not approved: enrollment request recorded for EK $ek"* ]]
	run "$KEYSTRAP" handoff --ek ecc384 --config keystrap.conf
	[ "$status" -eq 5 ]
	[[ "$output" == *"node is not approved yet: its enrollment request (EK $ek) awaits an operator"* ]]
	# The twin: approved by the hash the console showed, the same handoff attests.
	srv node approve "$ek" --id ecc.example >/dev/null
	run "$KEYSTRAP" handoff --ek ecc384 --config keystrap.conf
	[ "$status" -eq 0 ]
	"$KEYSTRAP" handoff --config keystrap.conf >/dev/null 2>&1
}

@test "a node clock minutes off (2 min behind, 4 min ahead) still hands off, and the keys live as long as the certificate" {
	clock_skip
	run with_clock -2m "$KEYSTRAP" handoff --config keystrap.conf
	[ "$status" -eq 0 ] || { echo "$output"; false; }
	as_consumer "$KEYSTRAP" get certificate | openssl verify -CAfile "$SRV_DIR/ca.crt"
	run with_clock +4m "$KEYSTRAP" handoff --config keystrap.conf
	[ "$status" -eq 0 ] || { echo "$output"; false; }
	[[ "$output" =~ expiring\ in\ (59[0-9]|600)\ s ]]
	# The kernel counts the timeout on its own (real) clock: the certificate's 600 s, not 360.
	ring=$(keyctl search @s keyring keystrap)
	grep -E "^$(printf '%08x' "$ring") " /proc/keys | awk '{ print $4 }' | grep -Eq '^(9|10)m$'
	run with_clock +4m "$KEYSTRAP" status
	[[ "$output" =~ remaining:\ +(5[89][0-9]|600)\ s ]]
	run with_clock +4m "$KEYSTRAP" handoff --renew --config keystrap.conf
	# On a loaded machine seconds pass, and the lifetime is the certificate's by the server's
	# clock read to the second (a second either way): anything above half is "not due".
	[[ "$output" =~ ^renewal\ not\ due:\ ([0-9]+)\ of\ ([0-9]+)\ s\ remain$ ]]
	left=${BASH_REMATCH[1]} life=${BASH_REMATCH[2]}
	[ "$life" -ge 598 ] && [ "$life" -le 602 ] && [ "$left" -le "$life" ] && [ "$((2 * left))" -ge "$life" ]
}

@test "a node clock years or an hour off fails closed naming the clock, before the server issues anything" {
	clock_skip
	before=$(finishes)
	# Years behind and ahead: the server's TLS certificate is outside its validity by this clock.
	for when in "@2001-01-01 00:00:00" "@2045-06-01 12:00:00"; do
		run with_clock "$when" "$KEYSTRAP" handoff --config keystrap.conf
		[ "$status" -eq 1 ]
		[[ "$output" == *"the server's TLS certificate is valid from $(date -u +%Y)-"*" but this node's clock says ${when:1:4}-"*": the local clock (RTC) is likely wrong"* ]]
		[[ "$output" != *"SSL peer certificate"* ]]
	done
	# An hour ahead: TLS still verifies, the server's Date says otherwise; no finish is sent.
	run with_clock +1h "$KEYSTRAP" handoff --config keystrap.conf
	[ "$status" -eq 1 ]
	[[ "$output" =~ this\ node\'s\ clock\ says\ .*\ but\ the\ server\'s\ says\ .*\(its\ Date\ header\):\ 36(0[0-9]|99|98)\ s\ ahead,\ more\ than\ the\ 300\ s\ keystrap\ tolerates ]]
	[[ "$output" == *"*** booting WITHOUT node credentials: attestation failed"* ]]
	[ "$(finishes)" -eq "$before" ]
	run keyctl search @s keyring keystrap
	[ "$status" -ne 0 ]
}

@test "a server clock an hour ahead of the node's: the node says it is behind, nothing issued; the same server at the right time works" {
	clock_skip
	server_stop "$SRV_DIR"
	clock_wrapper +1h "$KEYSTRAP_SERVER" "$BATS_TEST_TMPDIR/server-ahead"
	KEYSTRAP_SERVER=$BATS_TEST_TMPDIR/server-ahead server_start "$SRV_DIR"
	before=$(finishes)
	run "$KEYSTRAP" handoff --config keystrap.conf
	server_stop "$SRV_DIR"
	server_start "$SRV_DIR"
	[ "$status" -eq 1 ]
	[[ "$output" =~ :\ 3[56][0-9][0-9]\ s\ behind,\ more\ than\ the\ 300\ s ]]
	[ "$(finishes)" -eq "$before" ]
	run "$KEYSTRAP" handoff --config keystrap.conf
	[ "$status" -eq 0 ]
}

@test "a server whose clock is outside its node CA's validity issues nothing: an error naming its clock, audited" {
	clock_skip
	# A node CA that expired yesterday (the TLS certificate and the node's pinned CA stay valid).
	with_clock -3d openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 \
		-subj /CN=keystrap-expired-ca -addext basicConstraints=critical,CA:TRUE \
		-addext keyUsage=critical,keyCertSign,cRLSign -keyout old-ca.key -out old-ca.crt 2>/dev/null
	server_stop "$SRV_DIR"
	cp "$SRV_DIR/server.json" server.json.orig
	jq -c --arg c "$PWD/old-ca.crt" --arg k "$PWD/old-ca.key" '.ca_certificate = $c | .ca_key = $k' \
		server.json.orig >"$SRV_DIR/server.json"
	server_start "$SRV_DIR"
	run "$KEYSTRAP" handoff --config keystrap.conf
	server_stop "$SRV_DIR"
	cp server.json.orig "$SRV_DIR/server.json"
	server_start "$SRV_DIR"
	[ "$status" -eq 5 ]
	[[ "$output" == *"the server refused the attestation (HTTP 500): the server's clock is outside its CA certificate's validity: nothing issued"* ]]
	srv audit export | jq -c 'select(.action == "attest-finish")' | tail -n 1 | grep -q '"decision":"error".*outside its CA'
	run keyctl search @s keyring keystrap
	[ "$status" -ne 0 ]
}
