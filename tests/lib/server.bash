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

# server_config DIR PCRS: DIR/server.json with reference values for PCRS ("0 7") read from
# the TPM now (sha256), listening on $SRV_PORT. Extra JSON members may follow as $3.
server_config() {
	local d=$1 refs="" p
	for p in $2; do
		refs+="${refs:+,}\"$p\":\"$(pcr_value sha256 "$p")\""
	done
	cat >"$d/server.json" <<JSON
{"listen":"127.0.0.1:$SRV_PORT","tls_certificate":"$d/tls.crt","tls_key":"$d/tls.key",
 "database":"$d/keystrap.db","ek_ca":["$EK_CA_DIR/swtpm-localca-rootca-cert.pem","$EK_CA_DIR/issuercert.pem"],
 "ca_certificate":"$d/ca.crt","ca_key":"$d/ca.key","certificate_lifetime":600,"nonce_lifetime":${NONCE_LIFETIME:-30},
 "max_body":${MAX_BODY:-16384},"pcr_bank":"sha256","reference_pcrs":{$refs}${3:+,$3}}
JSON
}

# server_start DIR: runs the server in the background; waits until /healthz answers.
server_start() {
	local d=$1
	"$KEYSTRAP_SERVER" serve --config "$d/server.json" 2>>"$d/server.log" 3>&- &
	echo $! >"$d/server.pid"
	for _ in $(seq 100); do
		curl -sf --cacert "$d/ca.crt" "https://127.0.0.1:$SRV_PORT/healthz" >/dev/null 2>&1 && return 0
		kill -0 "$(cat "$d/server.pid")" 2>/dev/null || return 1
		sleep 0.05
	done
	return 1
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
