# shellcheck shell=bash
# bats helpers for keystrap-server: a private CA (it signs the server's TLS certificate and the
# node certificates), a configuration, and a real server on 127.0.0.1 on a free port.
# Load after ../lib/swtpm (free_port, pcr_value).

KEYSTRAP_SERVER=${KEYSTRAP_SERVER:-$BATS_TEST_DIRNAME/../../build/asan/keystrap-server}
# swtpm_setup's local CA (/etc/swtpm-localca.conf): what certifies the swtpms' EKs.
EK_CA_DIR=${EK_CA_DIR:-/var/lib/swtpm-localca}

# server_pki DIR: the server CA, and a TLS certificate for 127.0.0.1 it signs.
server_pki() {
	local d=$1
	mkdir -p "$d"
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=keystrap-test-ca \
		-addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign \
		-keyout "$d/ca.key" -out "$d/ca.crt" 2>/dev/null || return 1
	openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=127.0.0.1 \
		-keyout "$d/tls.key" -out "$d/tls.csr" 2>/dev/null || return 1
	openssl x509 -req -in "$d/tls.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" -CAcreateserial -days 2 \
		-extfile <(printf 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n') \
		-out "$d/tls.crt" 2>/dev/null
}

# operator_key DIR NAME: an operator's ECDSA P-256 key pair, DIR/NAME.key and DIR/NAME.pub.
operator_key() {
	[ -f "$1/$2.pub" ] && return 0
	openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1/$2.key" 2>/dev/null &&
		openssl pkey -in "$1/$2.key" -pubout -out "$1/$2.pub"
}

# Two operator keys per test file (op1, op2), shared by every server the file starts, so that
# servers sharing one database trust the same policies.
OPERATOR_DIR=${OPERATOR_DIR:-${BATS_FILE_TMPDIR:-/tmp}/operators}

# server_config DIR PCRS [EXTRA]: DIR/server.json listening on $SRV_PORT, database
# $SRV_DATABASE (default DIR/keystrap.db), KEK $SRV_KEK (default DIR/kek, made by kek init if
# absent), operator keys op1 and op2 with threshold 2; then a policy pinning PCRS ("0 7") to
# the TPM's values now, signed by both and loaded (server_policy); the log key
# $OPERATOR_DIR/log.key (its verifier key in log.vkey). Extra JSON members may follow as $3.
server_config() {
	local d=$1 kek=${SRV_KEK:-$1/kek}
	mkdir -p "$OPERATOR_DIR"
	operator_key "$OPERATOR_DIR" op1 && operator_key "$OPERATOR_DIR" op2 || return 1
	[ -e "$kek" ] || "$KEYSTRAP_SERVER" kek init "$kek" >/dev/null || return 1
	# One log key per test file, as the operator keys: servers sharing a database keep one log.
	[ -e "$OPERATOR_DIR/log.key" ] ||
		"$KEYSTRAP_SERVER" log-key generate "$OPERATOR_DIR/log.key" --name keystrap.test/log >"$OPERATOR_DIR/log.vkey" ||
		return 1
	cat >"$d/server.json" <<JSON
{"listen":"127.0.0.1:$SRV_PORT","tls_certificate":"$d/tls.crt","tls_key":"$d/tls.key",
 "database":"${SRV_DATABASE:-$d/keystrap.db}","kek":"$kek","ek_ca":["$EK_CA_DIR/swtpm-localca-rootca-cert.pem","$EK_CA_DIR/issuercert.pem"],
 "ca_certificate":"$d/ca.crt","ca_key":"$d/ca.key","certificate_lifetime":600,"nonce_lifetime":${NONCE_LIFETIME:-30},
 "max_body":${MAX_BODY:-16384},"log_key":"$OPERATOR_DIR/log.key","operator_keys":["$OPERATOR_DIR/op1.pub","$OPERATOR_DIR/op2.pub"],"policy_threshold":2${3:+,$3}}
JSON
	server_policy "$d" "$2" >/dev/null
}

# policy_json PCRS VERSION [EXTRA]: a policy document pinning PCRS to the TPM's sha256 values
# now, valid for a day, minimum keystrap 0.1.0, 600 s credentials; extra members as $3; node
# groups and their secrets from $POLICY_GROUPS (default: group "default", no secrets).
policy_json() {
	local refs="" p groups=${POLICY_GROUPS:-'{"default":{"secrets":[]}}'}
	for p in $1; do
		refs+="${refs:+,}\"$p\":\"$(pcr_value sha256 "$p")\""
	done
	cat <<JSON
{"version":$2,"expires":"$(date -u -d '+1 day' +%Y-%m-%dT%H:%M:%SZ)","min_keystrap_version":"0.1.0",
 "credential_lifetime":600,"pcr_bank":"sha256","reference_pcrs":{$refs},
 "groups":$groups${3:+,$3}}
JSON
}

# policy_sign DIR FILE NAME...: FILE.NAME.sig, a detached signature by DIR/NAME.key over FILE.
policy_sign() {
	local d=$1 f=$2 k
	shift 2
	for k in "$@"; do
		openssl dgst -sha256 -sign "$d/$k.key" -out "$f.$k.sig" "$f" || return 1
	done
}

# server_policy DIR PCRS [EXTRA]: writes the next version of the policy (policy_json; versions
# count up per test file) to $OPERATOR_DIR/policy-vN.json, signs it with op1 and op2 and loads
# it into DIR's server; prints what policy load says.
server_policy() {
	local d=$1 o=$OPERATOR_DIR v
	v=$(($(cat "$o/policy.version" 2>/dev/null || echo 0) + 1))
	echo "$v" >"$o/policy.version"
	policy_json "$2" "$v" "${3:-}" >"$o/policy-v$v.json" || return 1
	policy_sign "$o" "$o/policy-v$v.json" op1 op2 || return 1
	"$KEYSTRAP_SERVER" policy load "$o/policy-v$v.json" --signature "$o/policy-v$v.json.op1.sig" \
		--signature "$o/policy-v$v.json.op2.sig" --config "$d/server.json"
}

# server_secret_policy VALUE: secret "db" set to VALUE (from stdin, as an operator would) and
# policy version 2 pinning PCRs 0 and 7 that gives it to the default group, signed and loaded.
server_secret_policy() {
	local f=$OPERATOR_DIR/policy-db.json
	printf '%s' "$1" | srv secret set db >/dev/null || return 1
	policy_json "0 7" 2 | sed 's/"secrets":\[\]/"secrets":["db"]/' >"$f"
	policy_sign "$OPERATOR_DIR" "$f" op1 op2 || return 1
	srv policy load "$f" --signature "$f.op1.sig" --signature "$f.op2.sig" >/dev/null
}

# server_start DIR: runs the server in the background; waits until /healthz answers (200, or
# 503 when the server cannot admit a node yet, e.g. with no policy loaded).
server_start() {
	local d=$1
	"$KEYSTRAP_SERVER" serve --config "$d/server.json" 2>>"$d/server.log" 3>&- &
	echo $! >"$d/server.pid"
	for _ in $(seq 100); do
		case $(curl -s -o /dev/null -w '%{http_code}' --cacert "$d/ca.crt" "https://127.0.0.1:$SRV_PORT/healthz" 2>/dev/null) in
		200 | 503) return 0 ;;
		esac
		kill -0 "$(cat "$d/server.pid")" 2>/dev/null || return 1
		sleep 0.05
	done
	return 1
}

# reload: SIGHUP to $SRV_DIR's server, then waits for the server's line about it (reloaded or reload-refused); prints it.
reload() {
	local n
	n=$(grep -c 'event=reload' "$SRV_DIR/server.log" || true)
	kill -HUP "$(cat "$SRV_DIR/server.pid")"
	for _ in $(seq 100); do
		[ "$(grep -c 'event=reload' "$SRV_DIR/server.log" || true)" -gt "$n" ] && break
		sleep 0.05
	done
	grep 'event=reload' "$SRV_DIR/server.log" | tail -1
}

# servers_stop_under DIR: server_stop for each server started in a directory below DIR (a test's
# own servers, left running by a failure).
servers_stop_under() {
	local f
	for f in "$1"/*/server.pid; do
		[ -e "$f" ] && server_stop "${f%/server.pid}"
	done
	return 0
}

# server_stop DIR: SIGTERM, then waits; returns the server's exit status when this shell
# started it (else 0 once it is gone).
server_stop() {
	local d=$1 pid rc=0
	[ -f "$d/server.pid" ] || return 0
	pid=$(cat "$d/server.pid")
	rm -f "$d/server.pid"
	kill -TERM "$pid" 2>/dev/null || return 0
	wait "$pid" 2>/dev/null || rc=$?
	if [ "$rc" -eq 127 ]; then
		rc=0
		while kill -0 "$pid" 2>/dev/null; do sleep 0.05; done
	fi
	return "$rc"
}

# post PATH FILE|-: POSTs a body to the server; prints the body, then the status on the last line.
post() {
	curl -s --cacert "$SRV_DIR/ca.crt" -H 'Content-Type: application/json' --data-binary "@$2" \
		-w '\n%{http_code}' "https://127.0.0.1:$SRV_PORT$1"
}

# ek_hash: the registry key of this TPM's RSA EK (SHA-256 of its TPMT_PUBLIC).
ek_hash() {
	local d=${BATS_TEST_TMPDIR:-$BATS_FILE_TMPDIR}
	tpm2_createek -G rsa -c "$d/ek.ctx" -u "$d/ek.pub" >/dev/null || return 1
	tpm2_flushcontext -t >/dev/null
	tail -c +3 "$d/ek.pub" | sha256sum | cut -d' ' -f1
}

srv() {
	"$KEYSTRAP_SERVER" "$@" --config "$SRV_DIR/server.json"
}

# approve_peer [UNIQUE]: the peer's start (its AK, kept in $BATS_FILE_TMPDIR/start.json for
# challenge) registers this TPM's EK, and the operator approves it as node1.example.
approve_peer() {
	"$PEER" start "${1:-$(head -c 32 /dev/urandom | xxd -p -c 64)}" >"$BATS_FILE_TMPDIR/start.json" &&
		post /v1/attest/start "$BATS_FILE_TMPDIR/start.json" >/dev/null &&
		srv node approve "$EK" --id node1.example >/dev/null
}

# challenge FILE: a start with the peer's AK ($BATS_FILE_TMPDIR/start.json); the challenge goes to FILE.
challenge() {
	local out
	out=$(post /v1/attest/start "$BATS_FILE_TMPDIR/start.json")
	[ "${out##*$'\n'}" = 200 ] || { echo "start: $out"; return 1; }
	printf '%s' "${out%$'\n'*}" >"$1"
}

# status_of OUTPUT: the HTTP status post printed last; body_of: the rest.
status_of() { echo "${1##*$'\n'}"; }
body_of() { echo "${1%$'\n'*}"; }

# handshake_facts CHALLENGE FINISH: what must never be in the store, and what may: the
# activation secret (the TPM's, through $PEER), the proof, the nonce; hex, on one line.
handshake_facts() {
	printf '%s %s %s\n' "$("$PEER" secret "$U" "$1")" "$(jq -r .proof "$2" | base64 -d | xxd -p -c 64)" \
		"$(jq -r .nonce "$1" | base64 -d | xxd -p -c 64)"
}

# forge_proofs VERIFIER NONCE FINISH: forged-1.json and forged-2.json, FINISH with the proofs a
# reader of the store would try: the stored verifier itself, and HMAC(verifier, label ‖ nonce).
forge_proofs() {
	local i=0 p
	{ printf keystrap-proof; printf '%s' "$2" | xxd -r -p; } >forge.msg
	for p in "$1" "$(openssl mac -digest SHA256 -macopt "hexkey:$1" -in forge.msg HMAC | tr A-F a-f)"; do
		i=$((i + 1))
		jq -c --arg p "$(printf '%s' "$p" | xxd -r -p | base64 -w0)" '.proof = $p' "$3" >"forged-$i.json"
	done
}

# holds VALUE FILE...: prints each FILE that holds VALUE raw, or as hex (either case) or base64
# text: where a database, a dump or a log could leak a secret.
holds() {
	local v=$1 hex b64 f
	shift
	hex=$(printf %s "$v" | xxd -p | tr -d '\n')
	b64=$(printf %s "$v" | base64 -w0)
	for f; do
		[ -f "$f" ] || continue
		if grep -qaF -e "$v" -e "$b64" "$f" || grep -qaiF -e "$hex" "$f"; then
			echo "$f"
		fi
	done
}

# kek_id_of FILE: the id of the KEK in FILE (kek init leaves an existing one as it is).
kek_id_of() {
	"$KEYSTRAP_SERVER" kek init "$1" | sed -n 's/.*(id \([0-9a-f]*\)).*/\1/p'
}

# kek_rotation_check DIR COUNT OLD-ID NEW-ID: after a kek rotate of DIR's store (DIR/server.json
# naming the KEK DIR/kek, DIR/new.json the new one, DIR/kek.new) was killed, exactly one of the
# two KEKs opens the store, and with it every one of its COUNT secret versions; then rotate run
# again leaves it under the new KEK, in place. Prints what the kill left: old (nothing
# committed), new (committed, the file not in place yet) or done; else why, and fails.
kek_rotation_check() {
	local d=$1 count=$2 old_id=$3 new_id=$4 out state
	local opens="opens every secret version in the store: $count"
	if out=$("$KEYSTRAP_SERVER" kek verify --config "$d/server.json" 2>&1) && [ -e "$d/kek.new" ]; then
		[ "$out" = "KEK '$d/kek' (id $old_id) $opens" ] || { echo "old: $out"; return 1; }
		if out=$("$KEYSTRAP_SERVER" kek verify --config "$d/new.json" 2>&1); then
			echo "the new KEK opens it too: $out"
			return 1
		fi
		state=old
	elif [ -e "$d/kek.new" ]; then
		[[ "$out" == "keystrap-server: cannot open the store '"*"': its secrets are under KEK id $new_id, and KEK '$d/kek' is id $old_id: not the store's KEK" ]] ||
			{ echo "new: $out"; return 1; }
		out=$("$KEYSTRAP_SERVER" kek verify --config "$d/new.json" 2>&1)
		[ "$out" = "KEK '$d/kek.new' (id $new_id) $opens" ] || { echo "new, with the new KEK: $out"; return 1; }
		state=new
	else
		[ "$out" = "KEK '$d/kek' (id $new_id) $opens" ] || { echo "done: $out"; return 1; }
		state="done"
	fi
	if [ -e "$d/kek.new" ] && ! out=$("$KEYSTRAP_SERVER" kek rotate --new "$d/kek.new" --config "$d/server.json" 2>&1); then
		echo "rotate again: $out"
		return 1
	fi
	out=$("$KEYSTRAP_SERVER" kek verify --config "$d/server.json" 2>&1)
	[ "$out" = "KEK '$d/kek' (id $new_id) $opens" ] || { echo "after rotate again: $out"; return 1; }
	echo "$state"
}

# soft_ek_ca DIR: DIR/ek-ca.{crt,key}, the EK manufacturer of build/bench/server-load's simulated
# nodes (server/soft-node.c): a CA of the test's own.
soft_ek_ca() {
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=soft-ek-ca \
		-addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign \
		-keyout "$1/ek-ca.key" -out "$1/ek-ca.crt" 2>/dev/null
}

# soft_server_config DIR DATABASE [EXTRA]: DIR/server.json for simulated nodes, listening on
# $SRV_PORT: DIR's PKI and ek-ca.crt, no rate limit (every node is 127.0.0.1), the log key and
# operator keys of server_config, EXTRA-JSON members; and, once per database, a policy for what
# the simulated nodes quote (PCRs 0 and 7 as zeros, no event log), signed by both and loaded.
soft_server_config() {
	local d=$1 zeros
	zeros=$(printf '00%.0s' {1..32})
	mkdir -p "$OPERATOR_DIR"
	operator_key "$OPERATOR_DIR" op1 && operator_key "$OPERATOR_DIR" op2 || return 1
	[ -e "$OPERATOR_DIR/log.key" ] ||
		"$KEYSTRAP_SERVER" log-key generate "$OPERATOR_DIR/log.key" --name keystrap.test/log >"$OPERATOR_DIR/log.vkey" ||
		return 1
	[ -e "$d/kek" ] || "$KEYSTRAP_SERVER" kek init "$d/kek" >/dev/null || return 1
	cat >"$d/server.json" <<JSON
{"listen":"127.0.0.1:$SRV_PORT","tls_certificate":"$d/tls.crt","tls_key":"$d/tls.key",
 "database":"$2","kek":"$d/kek","ek_ca":["$d/ek-ca.crt"],"ca_certificate":"$d/ca.crt","ca_key":"$d/ca.key",
 "certificate_lifetime":600,"rate_limit":0,"log_key":"$OPERATOR_DIR/log.key",
 "operator_keys":["$OPERATOR_DIR/op1.pub","$OPERATOR_DIR/op2.pub"],"policy_threshold":2${3:+,$3}}
JSON
	"$KEYSTRAP_SERVER" policy show --config "$d/server.json" >/dev/null 2>&1 && return 0
	cat >"$d/policy.json" <<JSON
{"version":1,"expires":"$(date -u -d '+1 day' +%Y-%m-%dT%H:%M:%SZ)","min_keystrap_version":"0.1.0",
 "credential_lifetime":600,"pcr_bank":"sha256","reference_pcrs":{"0":"$zeros","7":"$zeros"},
 "groups":{"default":{"secrets":[]}}}
JSON
	policy_sign "$OPERATOR_DIR" "$d/policy.json" op1 op2 || return 1
	"$KEYSTRAP_SERVER" policy load "$d/policy.json" --signature "$d/policy.json.op1.sig" \
		--signature "$d/policy.json.op2.sig" --config "$d/server.json" >/dev/null
}
