#!/usr/bin/env bats
# Keys in hardware (issue 14 item 3): the CA key and the KEK named by URIs and loaded through
# OpenSSL: a file (the default; a TSS2 PEM is a key the TPM wrapped), a key in the server's own TPM through the tpm2-openssl
# provider (an swtpm of its own, not the node's), or a key on a PKCS#11 token through libp11's
# engine (SoftHSM2 in a private token directory). Each CA key is one the test made and
# imported (pkcs11-tool, tpm2_import), so the test knows the secret it looks for: after a
# node attests, its certificate verifies against the CA certificate with openssl, and the key
# is in no file under the server's directory (with a file key, the same search finds it).
# A URI that does not load is one line naming it (never its PIN) and the reason, exit 1.

load ../lib/swtpm
load ../lib/server

P11_MODULE=/usr/lib/softhsm/libsofthsm2.so
PIN=1234

setup_file() {
	[ -e "$P11_MODULE" ] || skip "softhsm2 is not installed"
	# The server's TPM first (swtpm_start points the tools at the last one started: the node's).
	swtpm_start "$BATS_FILE_TMPDIR/srvtpm"
	export SRVTPM_DIR=$SWTPM_DIR SRVTPM_PORT=$SWTPM_PORT TPM2OPENSSL_TCTI=$KEYSTRAP_TCTI
	swtpm_start
	export SOFTHSM2_CONF=$BATS_FILE_TMPDIR/softhsm/softhsm2.conf ORACLE=$BATS_FILE_TMPDIR/oracle EK
	mkdir -p "$BATS_FILE_TMPDIR/softhsm/tokens" "$ORACLE"
	echo "directories.tokendir = $BATS_FILE_TMPDIR/softhsm/tokens" >"$SOFTHSM2_CONF"
	softhsm2-util --init-token --free --label keystrap --so-pin 5678 --pin "$PIN" >/dev/null
	EK=$(ek_hash)
}

teardown_file() {
	servers_stop_under "$BATS_FILE_TMPDIR"
	swtpm_stop
	SWTPM_DIR=$SRVTPM_DIR SWTPM_PORT=$SRVTPM_PORT swtpm_stop
}

setup() {
	cd "$BATS_TEST_TMPDIR"
	mkdir -p out
}

teardown() {
	servers_stop_under "$BATS_TEST_TMPDIR"
}

p11() {
	pkcs11-tool --module "$P11_MODULE" --token-label keystrap --login --pin "$PIN" "$@" >/dev/null 2>&1
}

# srv_tpm CMD...: a tpm2-tools command against the server's TPM.
srv_tpm() {
	TPM2TOOLS_TCTI=$TPM2OPENSSL_TCTI "$@"
}

# hsm_import KEY LABEL ID: the private key in PEM file KEY and its public half onto the token.
hsm_import() {
	openssl pkey -in "$1" -outform DER -out "$1.der" &&
		p11 --write-object "$1.der" --type privkey --label "$2" --id "$3" &&
		openssl pkey -in "$1" -pubout -outform DER -out "$1.der" &&
		p11 --write-object "$1.der" --type pubkey --label "$2" --id "$3"
	rm -f "$1.der"
}

# tpm_import KEY HANDLE: the private key in PEM file KEY into the server's TPM, persistent at
# HANDLE under an owner primary (tpm2-tools, the oracle: no keystrap code).
tpm_import() {
	local t=$BATS_FILE_TMPDIR/tpmwork g
	mkdir -p "$t"
	case $(openssl pkey -in "$1" -noout -text | head -1) in *RSA*) g=rsa ;; *) g=ecc ;; esac
	srv_tpm tpm2_createprimary -Q -C o -G ecc -c "$t/srk.ctx" && srv_tpm tpm2_flushcontext -t &&
		srv_tpm tpm2_import -Q -C "$t/srk.ctx" -G "$g" -i "$1" -u "$t/k.pub" -r "$t/k.priv" &&
		srv_tpm tpm2_flushcontext -t &&
		srv_tpm tpm2_load -Q -C "$t/srk.ctx" -u "$t/k.pub" -r "$t/k.priv" -c "$t/k.ctx" &&
		srv_tpm tpm2_evictcontrol -Q -C o -c "$t/k.ctx" "$2" && srv_tpm tpm2_flushcontext -t
}

# key_facts KEY: the private key's secret as text a file could hold it in: the PEM body's
# lines and the private scalar (or RSA private exponent) in hex.
key_facts() {
	grep -v -- ----- "$1"
	openssl pkey -in "$1" -noout -text | sed -n '/^priv\(ateExponent\)\?:/,/^[a-zA-Z]/p' | grep '^ ' |
		tr -d ' :\n'
	echo
}

# leaks DIR FACTS: each file under DIR holding one of the lines of FACTS (hex either case).
leaks() {
	grep -rlaiF -f "$2" "$1" || true
}

# hw_server DIR KIND: a server in DIR whose CA key is KIND: file (DIR/ca.key), hsm (imported
# onto the token as "ca-NAME") or tpm (imported into the server's TPM at 0x8100000N); the
# file key leaves DIR for $ORACLE/NAME.key either way but for "file". The node asks, and is
# approved as node-NAME.
hw_server() {
	local d=$1 name=${1##*/} uri
	export SRV_DIR=$d SRV_PORT
	SRV_PORT=$(free_port)
	server_pki "$d" && cp "$d/ca.key" "$ORACLE/$name.key" && key_facts "$d/ca.key" >"$ORACLE/$name.facts" || return 1
	case $2 in
	file) uri=$d/ca.key ;;
	hsm)
		hsm_import "$d/ca.key" "ca-$name" "$(printf '%s' "$name" | xxd -p)" || return 1
		uri="pkcs11:token=keystrap;object=ca-$name;type=private?pin-value=$PIN" ;;
	tpm)
		tpm_import "$d/ca.key" "$3" || return 1
		uri=handle:$3 ;;
	esac
	[ "$2" = file ] || rm "$d/ca.key"
	server_config "$d" "0 7" && jq --arg k "$uri" '.ca_key = $k' "$d/server.json" >"$d/s.json" &&
		mv "$d/s.json" "$d/server.json" && chmod 600 "$d/server.json" || return 1
	echo "$uri" >"$d/uri"
}

attest() {
	"$KEYSTRAP" attest --server "https://127.0.0.1:$SRV_PORT" --ca "$SRV_DIR/ca.crt" --out-dir out "$@"
}

# issued DIR: starts DIR's server, the node asks and is approved, attests into out/ and its
# certificate verifies against DIR/ca.crt (openssl verify), as does the CRL the server signs.
issued() {
	local out
	server_start "$1" || { cat "$1/server.log"; return 1; }
	attest >/dev/null 2>&1 || true
	srv node approve "$EK" --id "node-${1##*/}" >/dev/null
	out=$(attest 2>&1) && [ "$out" = "keystrap: attested as node-${1##*/}" ] || { echo "attest: $out"; return 1; }
	out=$(openssl verify -CAfile "$1/ca.crt" out/node.crt 2>&1) && [ "$out" = "out/node.crt: OK" ] ||
		{ echo "verify: $out"; return 1; }
	curl -s --fail --cacert "$1/ca.crt" -o out/crl.pem "https://127.0.0.1:$SRV_PORT/v1/crl.pem" &&
		out=$(openssl crl -in out/crl.pem -CAfile "$1/ca.crt" -noout 2>&1) && [ "$out" = "verify OK" ] ||
		{ echo "CRL: $out"; return 1; }
}

# serve_refused DIR: keystrap-server serve on DIR's configuration, which must not start.
serve_refused() {
	run timeout 20 "$KEYSTRAP_SERVER" serve --config "$1/server.json"
}

@test "CA key on a PKCS#11 token (SoftHSM2): node certificates verify against the CA; the key is in no file of the server's" {
	hw_server "$BATS_TEST_TMPDIR/hsm" hsm
	issued "$SRV_DIR"
	server_stop "$SRV_DIR"
	[ ! -e "$SRV_DIR/ca.key" ]
	# ca rotate writes key files: with the key on a token it says what to do instead, and changes nothing.
	run srv ca rotate
	[ "$status" -eq 1 ]
	[ "$output" = "keystrap-server: ca rotate replaces a CA key file, and 'pkcs11:token=keystrap;object=ca-hsm;type=private?pin-value=***' is in hardware: make the new key there, its certificate, and point ca_key and ca_certificate at them" ]
	run leaks "$SRV_DIR" "$ORACLE/hsm.facts"
	[ -z "$output" ]
	# Twin: another CA does not verify it, and the search finds a key where one is.
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=keystrap-test-ca \
		-keyout other.key -out other.crt 2>/dev/null
	run openssl verify -CAfile other.crt out/node.crt
	[ "$status" -ne 0 ]
	cp "$ORACLE/hsm.key" "$SRV_DIR/stray"
	run leaks "$SRV_DIR" "$ORACLE/hsm.facts"
	[ "$output" = "$SRV_DIR/stray" ]
}

@test "CA key in the server's TPM (tpm2-openssl, handle:): node certificates verify against the CA; the key is in no file of the server's" {
	hw_server "$BATS_TEST_TMPDIR/tpm" tpm 0x81000101
	issued "$SRV_DIR"
	# A reload loads the key again before the old one goes: the TPM's key still signs after it.
	run reload
	[[ "$output" == *"event=reloaded"* ]]
	rm -f out/node.crt
	run attest
	[ "$status" -eq 0 ]
	run openssl verify -CAfile "$SRV_DIR/ca.crt" out/node.crt
	[ "$output" = "out/node.crt: OK" ]
	server_stop "$SRV_DIR"
	run leaks "$SRV_DIR" "$ORACLE/tpm.facts"
	[ -z "$output" ]
	# Twin: the same key, the TPM's, is what signed: the node's TPM is not it (wrong TCTI: refused).
	TPM2OPENSSL_TCTI=$KEYSTRAP_TCTI serve_refused "$SRV_DIR"
	[ "$status" -eq 1 ]
	[ "${#lines[@]}" -eq 1 ]
	[[ "$output" == "keystrap-server: CA key 'handle:0x81000101': "* ]]
}

@test "CA key in a file, the default: a file the server can read is the key in a file (the search's twin); a loose one is refused" {
	hw_server "$BATS_TEST_TMPDIR/file" file
	issued "$SRV_DIR"
	server_stop "$SRV_DIR"
	run leaks "$SRV_DIR" "$ORACLE/file.facts"
	[ "$output" = "$SRV_DIR/ca.key" ]
	chmod 640 "$SRV_DIR/ca.key"
	serve_refused "$SRV_DIR"
	[ "$status" -eq 1 ]
	[ "$output" = "keystrap-server: CA key '$SRV_DIR/ca.key' has mode 0640: group or others can access it (chmod 600 it)" ]
	# file:PATH is the same file.
	chmod 600 "$SRV_DIR/ca.key"
	jq --arg k "file:$SRV_DIR/ca.key" '.ca_key = $k' "$SRV_DIR/server.json" >s.json && mv s.json "$SRV_DIR/server.json"
	server_start "$SRV_DIR"
}

@test "CA key as a TSS2 PEM file (wrapped by the server's TPM): node certificates verify; the file alone is no key; loose, refused" {
	d=$BATS_TEST_TMPDIR/tss2
	export SRV_DIR=$d SRV_PORT
	SRV_PORT=$(free_port)
	mkdir -p "$d"
	# The TPM makes the key (tpm2-openssl, as an operator would) and signs the CA and TLS certificates.
	(umask 077 && openssl genpkey -provider tpm2 -provider default -algorithm EC -pkeyopt group:P-256 -out "$d/ca.key" 2>/dev/null)
	[ "$(head -1 "$d/ca.key")" = "-----BEGIN TSS2 PRIVATE KEY-----" ]
	ossl_tpm=(-provider tpm2 -provider default -propquery '?provider=tpm2')
	openssl req -x509 "${ossl_tpm[@]}" -key "$d/ca.key" -days 2 -subj /CN=keystrap-tss2-ca \
		-addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign -out "$d/ca.crt"
	openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=127.0.0.1 \
		-keyout "$d/tls.key" -out "$d/tls.csr" 2>/dev/null
	openssl x509 -req "${ossl_tpm[@]}" -in "$d/tls.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" -CAcreateserial -days 2 \
		-extfile <(printf 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n') -out "$d/tls.crt" 2>/dev/null
	server_config "$d" "0 7"
	issued "$d"
	server_stop "$d"
	# Twin: the file is only the TPM's to use: with another TPM (the node's) it does not load.
	TPM2OPENSSL_TCTI=$KEYSTRAP_TCTI serve_refused "$d"
	[ "$status" -eq 1 ]
	[ "${#lines[@]}" -eq 1 ]
	[[ "$output" == "keystrap-server: CA key '$d/ca.key': "* ]]
	chmod 644 "$d/ca.key"
	serve_refused "$d"
	[ "$output" = "keystrap-server: CA key '$d/ca.key' has mode 0644: group or others can access it (chmod 600 it)" ]
}

# refused_as URI MESSAGE: with its CA key named URI, SRV_DIR's server does not start, and says
# MESSAGE (after "keystrap-server: CA key "), one line, exit 1.
refused_as() {
	jq --arg k "$1" '.ca_key = $k' "$SRV_DIR/server.json" >"$SRV_DIR/s.json" && mv "$SRV_DIR/s.json" "$SRV_DIR/server.json"
	serve_refused "$SRV_DIR"
	[ "$status" -eq 1 ] && [ "$output" = "keystrap-server: CA key $2" ] || { echo "status $status: $output"; return 1; }
}

@test "a CA key URI that does not load is one line naming it (never its PIN) and the reason; the server does not start" {
	hw_server "$BATS_TEST_TMPDIR/hsm0" hsm
	local p="pkcs11:token=keystrap;object"
	refused_as "$p=ca-hsm0;type=private?pin-value=9999" "'$p=ca-hsm0;type=private?pin-value=***': PIN incorrect"
	refused_as "$p=no-such-key;type=private?pin-value=$PIN" "'$p=no-such-key;type=private?pin-value=***': object not found"
	refused_as "pkcs11:token=no-such-token;object=ca-hsm0;type=private?pin-value=$PIN" \
		"'pkcs11:token=no-such-token;object=ca-hsm0;type=private?pin-value=***': object not found"
	refused_as handle:0x81000199 \
		"'handle:0x81000199': cannot load key (395 tpm:handle(1):the handle is not correct for the use)"
	refused_as vault:ca "'vault:ca': not a key this server can reach (PATH, file:, handle: or pkcs11:)"
	refused_as "$SRV_DIR/no-such.key" "'$SRV_DIR/no-such.key': no such file"
	# Another key on the token, not the certificate's: refused as such.
	openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out other.key 2>/dev/null
	hsm_import other.key other 7777
	printf %s "$PIN" >pin # the PIN alone: libp11 keeps a newline as part of it
	refused_as "$p=other;type=private?pin-source=file:$PWD/pin" \
		"'$p=other;type=private?pin-source=file:$PWD/pin' is not the key of '$SRV_DIR/ca.crt''s first certificate"
	# Twin: the right key, its PIN from a file, and module-path= naming the module: it starts.
	jq --arg k "$p=ca-hsm0;type=private?pin-source=file:$PWD/pin&module-path=$P11_MODULE" \
		'.ca_key = $k' "$SRV_DIR/server.json" >s.json && mv s.json "$SRV_DIR/server.json"
	server_start "$SRV_DIR"
	run attest
	[ "$status" -eq 5 ] # asked, not approved yet: the server runs and answers
}

# hsm_kek LABEL ID: a fresh EC P-256 key on the token that may derive (ECDH), the KEK's kind.
hsm_kek() {
	openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$BATS_TEST_TMPDIR/$1.key" 2>/dev/null &&
		openssl pkey -in "$BATS_TEST_TMPDIR/$1.key" -outform DER -out "$1.der" &&
		p11 --write-object "$1.der" --type privkey --label "$1" --id "$2" --usage-derive &&
		openssl pkey -in "$BATS_TEST_TMPDIR/$1.key" -pubout -outform DER -out "$1.der" &&
		p11 --write-object "$1.der" --type pubkey --label "$1" --id "$2" --usage-derive
	rm -f "$1.der"
}

# kek_server DIR KEK: a server in DIR (file CA key) whose KEK is the URI KEK, with a secret
# db.password ($SECRET) for group web, the node approved into it as node-NAME.
kek_server() {
	local d=$1
	export SRV_DIR=$d SRV_PORT SECRET
	SRV_PORT=$(free_port)
	SECRET=pw-$(head -c 12 /dev/urandom | xxd -p)
	server_pki "$d" && SRV_KEK=$2 server_config "$d" "0 7" || return 1
	printf '%s' "$SECRET" | srv secret set db.password >/dev/null || return 1
	POLICY_GROUPS='{"default":{"secrets":[]},"web":{"secrets":["db.password"]}}' server_policy "$d" "0 7" >/dev/null
	server_start "$d" || { cat "$d/server.log"; return 1; }
	attest >/dev/null 2>&1 || true
	srv node approve "$EK" --id "node-${d##*/}" --group web >/dev/null
}

@test "KEK on a PKCS#11 token: secrets round-trip to the node; the data keys are wrapped by ECDH under it; the store is refused without the token or with another key" {
	hsm_kek kek1 a1
	uri="pkcs11:token=keystrap;object=kek1;type=private?pin-value=$PIN"
	run "$KEYSTRAP_SERVER" kek init "$uri"
	[ "$status" -eq 0 ]
	[[ "$output" =~ ^"KEK 'pkcs11:token=keystrap;object=kek1;type=private?pin-value=***' is in hardware (id "([0-9a-f]{32})"): nothing to create"$ ]]
	id=${BASH_REMATCH[1]}
	kek_server "$BATS_TEST_TMPDIR/kek" "$uri"
	run attest
	[ "$status" -eq 0 ]
	[ "$(cat out/secrets/db.password)" = "$SECRET" ]
	# What the store holds: the KEK's id (the SHA-256 of its public key), an ephemeral public key, a seal.
	[ "$id" = "$(openssl pkey -in "$BATS_TEST_TMPDIR/kek1.key" -pubout -outform DER | sha256sum | cut -c1-32)" ]
	[ "$(sqlite3 "$SRV_DIR/keystrap.db" "SELECT kek_id, length(wrapped_key) FROM secret_versions")" = "$id|151" ]
	run srv kek verify
	[ "$status" -eq 0 ]
	[ "$output" = "KEK 'pkcs11:token=keystrap;object=kek1;type=private?pin-value=***' (id $id) opens every secret version in the store: 1" ]
	server_stop "$SRV_DIR"
	run holds "$SECRET" "$SRV_DIR"/keystrap.db*
	[ -z "$output" ]
	run leaks "$SRV_DIR" <(key_facts "$BATS_TEST_TMPDIR/kek1.key")
	[ -z "$output" ]
	# A copy of the store on a machine without the token: refused at start, naming the KEK.
	mkdir -p empty/tokens
	echo "directories.tokendir = $PWD/empty/tokens" >empty/softhsm2.conf
	SOFTHSM2_CONF=$PWD/empty/softhsm2.conf serve_refused "$SRV_DIR"
	[ "$status" -eq 1 ]
	[ "$output" = "keystrap-server: KEK 'pkcs11:token=keystrap;object=kek1;type=private?pin-value=***': object not found" ]
	# Another key on the token is another KEK: refused, both ids named.
	hsm_kek kek2 a2
	jq --arg k "pkcs11:token=keystrap;object=kek2;type=private?pin-value=$PIN" '.kek = $k' "$SRV_DIR/server.json" >other.json
	run timeout 20 "$KEYSTRAP_SERVER" serve --config other.json
	[ "$status" -eq 1 ]
	[[ "$output" == "keystrap-server: cannot open the store '$SRV_DIR/keystrap.db': its secrets are under KEK id $id, and KEK 'pkcs11:token=keystrap;object=kek2;type=private?pin-value=***' is id "*": not the store's KEK" ]]
	# A key that cannot wrap (the CA's kind, signing only, no derive): one line.
	openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out s.key 2>/dev/null
	hsm_import s.key sign-only 5151
	jq --arg k "pkcs11:token=keystrap;object=sign-only;type=private?pin-value=$PIN" '.kek = $k' "$SRV_DIR/server.json" >sign.json
	run timeout 20 "$KEYSTRAP_SERVER" serve --config sign.json
	[ "$status" -eq 1 ]
	[ "$output" = "keystrap-server: KEK 'pkcs11:token=keystrap;object=sign-only;type=private?pin-value=***' cannot unwrap: the key must allow ECDH (PKCS#11 CKA_DERIVE, a TPM key's decrypt attribute)" ]
	# Twin: with the token, the same store starts and the node gets its secret again.
	server_start "$SRV_DIR"
	rm -rf out && mkdir out
	run attest
	[ "$status" -eq 0 ]
	[ "$(cat out/secrets/db.password)" = "$SECRET" ]
}

@test "KEK in the server's TPM (handle:): secrets round-trip; kek rotate moves a file KEK's store there and back" {
	openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out tk.key 2>/dev/null
	tpm_import tk.key 0x81000102
	kek_server "$BATS_TEST_TMPDIR/tkek" "$BATS_TEST_TMPDIR/file.kek"
	server_stop "$SRV_DIR"
	run srv kek rotate --new handle:0x81000102
	[ "$status" -eq 0 ]
	[ "${lines[1]}" = "point 'kek' in $SRV_DIR/server.json at 'handle:0x81000102'" ]
	# Until the configuration says so, the file KEK no longer opens the store.
	serve_refused "$SRV_DIR"
	[ "$status" -eq 1 ]
	jq '.kek = "handle:0x81000102"' "$SRV_DIR/server.json" >s.json && mv s.json "$SRV_DIR/server.json"
	server_start "$SRV_DIR"
	run attest
	[ "$status" -eq 0 ]
	[ "$(cat out/secrets/db.password)" = "$SECRET" ]
	[ "$(sqlite3 "$SRV_DIR/keystrap.db" "SELECT length(wrapped_key) FROM secret_versions")" = 151 ]
	# Twin: the node's TPM does not hold it: refused, naming it.
	server_stop "$SRV_DIR"
	TPM2OPENSSL_TCTI=$KEYSTRAP_TCTI serve_refused "$SRV_DIR"
	[ "$status" -eq 1 ]
	[ "$output" = "keystrap-server: KEK 'handle:0x81000102': cannot load key (395 tpm:handle(1):the handle is not correct for the use)" ]
	# And back to a file.
	"$KEYSTRAP_SERVER" kek init back.kek >/dev/null
	run srv kek rotate --new "$PWD/back.kek"
	[ "$status" -eq 0 ]
	jq --arg k "$PWD/back.kek" '.kek = $k' "$SRV_DIR/server.json" >s.json && mv s.json "$SRV_DIR/server.json"
	run srv kek verify
	[ "$status" -eq 0 ]
	[[ "$output" == *"opens every secret version in the store: 1" ]]
	[ "$(sqlite3 "$SRV_DIR/keystrap.db" "SELECT length(wrapped_key) FROM secret_versions")" = 60 ]
}

# The audit log's key in hardware: an ECDSA P-256 key (note signature type 0x02; a TPM and
# Debian 12's libp11 have no Ed25519) the test makes and imports, so the oracle knows it. The
# verifier key nodes pin is computed here with openssl and sha256sum, from the C2SP/
# transparency-dev rule (KEYHASH: SHA-256 of the DER SubjectPublicKeyInfo alone), not by keystrap.

TLOG=$BATS_TEST_DIRNAME/../lib/tlog.py
LOG_NAME=keystrap.test/hwlog

# oracle_vkey NAME KEY: the note verifier key of the EC key in PEM file KEY under NAME.
oracle_vkey() {
	local der=$BATS_TEST_TMPDIR/spki.der
	openssl pkey -in "$2" -pubout -outform DER -out "$der" 2>/dev/null || return 1
	printf '%s+%s+%s\n' "$1" "$(sha256sum <"$der" | cut -c1-8)" "$({ printf '\002'; cat "$der"; } | base64 -w0)"
}

# ec_key NAME: a fresh EC P-256 key in $ORACLE/NAME.key, its secret's text in NAME.facts.
ec_key() {
	openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$ORACLE/$1.key" 2>/dev/null &&
		key_facts "$ORACLE/$1.key" >"$ORACLE/$1.facts"
}

# hw_key NAME KIND [HANDLE]: ec_key NAME onto the token as NAME (hsm) or into the server's TPM
# at HANDLE (tpm); its URI on stdout.
hw_key() {
	ec_key "$1" || return 1
	case $2 in
	hsm)
		hsm_import "$ORACLE/$1.key" "$1" "$(printf '%s' "$1" | xxd -p)" >/dev/null || return 1
		echo "pkcs11:token=keystrap;object=$1;type=private?pin-value=$PIN" ;;
	tpm)
		tpm_import "$ORACLE/$1.key" "$3" >/dev/null || return 1
		echo "handle:$3" ;;
	esac
}

# set_config DIR JQ: DIR's configuration changed by JQ.
set_config() {
	jq "${@:3}" "$2" "$1/server.json" >"$1/s.json" && mv "$1/s.json" "$1/server.json" && chmod 600 "$1/server.json"
}

# log_server DIR KIND [HANDLE]: a server in DIR (its CA key a file) whose log key is hw_key
# log-NAME KIND, named $LOG_NAME (log_name), on a store that log key has signed from its first
# record; the oracle's verifier key in DIR/log.vkey, the URI in DIR/uri.
log_server() {
	local d=$1 name=${1##*/} uri
	export SRV_DIR=$d SRV_PORT
	SRV_PORT=$(free_port)
	server_pki "$d" && server_config "$d" "0 7" || return 1
	uri=$(hw_key "log-$name" "$2" "${3:-}") && oracle_vkey "$LOG_NAME" "$ORACLE/log-$name.key" >"$d/log.vkey" || return 1
	set_config "$d" '.log_key = $k | .log_name = $n' --arg k "$uri" --arg n "$LOG_NAME" || return 1
	rm -f "$d"/keystrap.db*
	server_policy "$d" "0 7" >/dev/null || return 1
	echo "$uri" >"$d/uri"
}

# witnessed DIR: DIR's server started; the node asks, is approved as node-NAME, and attests
# pinning DIR/log.vkey (LogKey=) into out/: the ECDSA checkpoint and the proofs verify on the node.
witnessed() {
	local out
	server_start "$1" || { cat "$1/server.log"; return 1; }
	attest >/dev/null 2>&1 || true
	srv node approve "$EK" --id "node-${1##*/}" >/dev/null
	out=$(attest --log-key "$(cat "$1/log.vkey")" 2>&1) && [ "$out" = "keystrap: attested as node-${1##*/}" ] ||
		{ echo "attest: $out"; return 1; }
	[ "$(python3 "$TLOG" checkpoint out/checkpoint | cut -d' ' -f1)" = "$LOG_NAME" ]
}

# openssl_verifies NOTE VKEY: openssl checks NOTE's signature line of $LOG_NAME that bears
# VKEY's key hash with the key in VKEY (0x02 || DER SPKI), over SHA-256 of the note's text.
openssl_verifies() {
	local sig hash
	hash=$(cut -d+ -f2 <<<"$2")
	sed '/^$/,$d' "$1" >text
	for sig in $(sed -n "s|^— $LOG_NAME ||p" "$1"); do
		[ "$(base64 -d <<<"$sig" | head -c 4 | xxd -p)" = "$hash" ] && break
		sig=
	done
	[ -n "$sig" ] || return 1
	base64 -d <<<"$sig" | tail -c +5 >sig.der
	cut -d+ -f3- <<<"$2" | base64 -d | tail -c +2 | openssl pkey -pubin -inform DER -out pub.pem || return 1
	openssl dgst -sha256 -verify pub.pem -signature sig.der text >/dev/null 2>&1
}

# log_key_checks DIR: what both hardware log keys must show: log-key show prints the oracle's
# verifier key; audit verify passes with it; openssl verifies a checkpoint; a node holding one
# whose signature was changed, or pinning another key or a wrong key hash, refuses.
log_key_checks() {
	local d=$1 vkey other
	vkey=$(cat "$d/log.vkey")
	[[ "$vkey" =~ ^keystrap.test/hwlog\+[0-9a-f]{8}\+Aj[A-Za-z0-9+/]{121}=$ ]] || { echo "vkey $vkey"; return 1; }
	[ "$(srv log-key show)" = "$vkey" ] || { echo "log-key show: $(srv log-key show 2>&1)"; return 1; }
	[ "$("$KEYSTRAP_SERVER" log-key show "$(cat "$d/uri")" --name "$LOG_NAME")" = "$vkey" ] || return 1
	run srv audit verify --log-key "$vkey"
	[ "$status" -eq 0 ] || { echo "audit verify: $output"; return 1; }
	srv audit checkpoint >cp
	openssl_verifies cp "$vkey" || { echo "openssl does not verify"; cat cp; return 1; }
	# Twin: the text changed, openssl refuses the same signature.
	sed -i '2s/$/0/' cp
	! openssl_verifies cp "$vkey" || { echo "openssl verifies a changed checkpoint"; return 1; }
	# A signature changed (its last DER byte): the node holding it refuses, as does openssl.
	python3 - out/checkpoint >bad.cp <<'PY'
import base64, sys
lines = open(sys.argv[1], encoding="utf-8").read().split("\n")
for i, l in enumerate(lines):
    if l.startswith("\u2014 "):
        name, sig = l[2:].split(" ")
        raw = bytearray(base64.b64decode(sig)); raw[-1] ^= 1
        lines[i] = "\u2014 " + name + " " + base64.b64encode(bytes(raw)).decode()
sys.stdout.write("\n".join(lines))
PY
	! openssl_verifies bad.cp "$vkey" || return 1
	run attest --log-key "$vkey" --checkpoint bad.cp
	[ "$status" -eq 1 ] && [ "$output" = "keystrap: the checkpoint this node holds does not verify with the log key: the signature of '$LOG_NAME' does not verify" ] ||
		{ echo "tampered: $status $output"; return 1; }
	run attest --log-key "$vkey" --checkpoint out/checkpoint
	[ "$status" -eq 0 ] || { echo "held: $output"; return 1; }
	# Another key of the log's name, pinned: no signature of it. A wrong key hash: not a key.
	ec_key "other-${d##*/}" && other=$(oracle_vkey "$LOG_NAME" "$ORACLE/other-${d##*/}.key")
	run attest --log-key "$other"
	[ "$status" -eq 1 ] && [ "$output" = "keystrap: the server's checkpoint does not verify: the note carries no signature of '$LOG_NAME'" ] ||
		{ echo "other key: $status $output"; return 1; }
	run attest --log-key "$LOG_NAME+00000000+${vkey#*+*+}"
	[ "$status" -eq 1 ] && [ "$output" = "keystrap: [Attest] LogKey='$LOG_NAME+00000000+${vkey#*+*+}': the key id of '$LOG_NAME' does not match its key" ] ||
		{ echo "key hash: $status $output"; return 1; }
}

@test "log key on a PKCS#11 token (SoftHSM2): ECDSA checkpoints a witnessing node verifies, audit verify and openssl too; the key is in no file of the server's" {
	log_server "$BATS_TEST_TMPDIR/hlog" hsm
	witnessed "$SRV_DIR"
	log_key_checks "$SRV_DIR"
	server_stop "$SRV_DIR"
	run leaks "$SRV_DIR" "$ORACLE/log-hlog.facts"
	[ -z "$output" ]
	# Twin: the search finds the key where one is.
	cp "$ORACLE/log-hlog.key" "$SRV_DIR/stray"
	run leaks "$SRV_DIR" "$ORACLE/log-hlog.facts"
	[ "$output" = "$SRV_DIR/stray" ]
}

@test "log key in the server's TPM (tpm2-openssl, handle:): ECDSA checkpoints a witnessing node verifies, audit verify and openssl too; the key is in no file of the server's" {
	log_server "$BATS_TEST_TMPDIR/tlog" tpm 0x81000111
	witnessed "$SRV_DIR"
	# A reload loads the key again before the old one goes: it still signs.
	run reload
	[[ "$output" == *"event=reloaded"* ]]
	log_key_checks "$SRV_DIR"
	server_stop "$SRV_DIR"
	run leaks "$SRV_DIR" "$ORACLE/log-tlog.facts"
	[ -z "$output" ]
	# Twin: the node's TPM does not hold it: refused at start, naming it.
	TPM2OPENSSL_TCTI=$KEYSTRAP_TCTI serve_refused "$SRV_DIR"
	[ "$status" -eq 1 ]
	[ "$output" = "keystrap-server: log key 'handle:0x81000111': cannot load key (395 tpm:handle(1):the handle is not correct for the use)" ]
}

# log_refused_as JQ MESSAGE: with SRV_DIR's configuration changed by JQ the server does not
# start and says MESSAGE, one line, exit 1.
log_refused_as() {
	jq "$1" "$SRV_DIR/server.json" >"$BATS_TEST_TMPDIR/bad.json"
	run timeout 20 "$KEYSTRAP_SERVER" serve --config "$BATS_TEST_TMPDIR/bad.json"
	[ "$status" -eq 1 ] && [ "$output" = "keystrap-server: $2" ] || { echo "status $status: $output"; return 1; }
}

@test "a log key that does not load is one line naming it (never its PIN) and the reason; a key in hardware without log_name is refused; the server does not start" {
	log_server "$BATS_TEST_TMPDIR/hlog0" hsm
	local p="pkcs11:token=keystrap;object"
	log_refused_as '.log_key = "'"$p"'=log-hlog0;type=private?pin-value=9999"' \
		"log key '$p=log-hlog0;type=private?pin-value=***': PIN incorrect"
	log_refused_as '.log_key = "'"$p"'=no-such-key;type=private?pin-value='"$PIN"'"' \
		"log key '$p=no-such-key;type=private?pin-value=***': object not found"
	log_refused_as '.log_key = "handle:0x81000199"' \
		"log key 'handle:0x81000199': cannot load key (395 tpm:handle(1):the handle is not correct for the use)"
	log_refused_as '.log_key = "vault:log"' "log key 'vault:log': not a key this server can reach (PATH, file:, handle: or pkcs11:)"
	log_refused_as 'del(.log_name)' \
		"log key '$p=log-hlog0;type=private?pin-value=***' is not a note signer key file: 'log_name' names the log its checkpoints are of (set it in the configuration)"
	log_refused_as '.log_name = "bad name"' \
		"log key '$p=log-hlog0;type=private?pin-value=***': 'bad name' is not a note key name (1-128 bytes, no '+', no space)"
	# A note signer file names its log itself: log_name, where given, must say the same.
	log_refused_as '.log_key = "'"$OPERATOR_DIR/log.key"'"' \
		"the log key '$OPERATOR_DIR/log.key' is of the log 'keystrap.test/log', not 'log_name' '$LOG_NAME'"
	# Another EC key of the log's name: the store's checkpoint does not verify with it.
	other=$(hw_key other-log hsm)
	log_refused_as '.log_key = "'"$other"'"' \
		"the audit log does not match its checkpoint: the store's checkpoint does not verify with the log key '$LOG_NAME': the note carries no signature of '$LOG_NAME'; run keystrap-server audit verify"
	# Twin: the right key, its PIN from a file: it starts, and signs.
	printf %s "$PIN" >pin
	set_config "$SRV_DIR" '.log_key = $k' --arg k "$p=log-hlog0;type=private?pin-source=file:$PWD/pin"
	witnessed "$SRV_DIR"
}

@test "log key rotation from an Ed25519 file to an ECDSA key on a token: both sign during the overlap, each step on record; after the swap the old pin is refused" {
	export SRV_DIR=$BATS_TEST_TMPDIR/rot SRV_PORT
	SRV_PORT=$(free_port)
	server_pki "$SRV_DIR" && server_config "$SRV_DIR" "0 7"
	cp "$OPERATOR_DIR/log.vkey" "$SRV_DIR/log.vkey"
	cp "$OPERATOR_DIR/log.key" "$SRV_DIR/log.key"
	set_config "$SRV_DIR" '.log_key = $k' --arg k "$SRV_DIR/log.key"
	LOG_NAME=keystrap.test/log witnessed "$SRV_DIR"
	old=$(cat "$SRV_DIR/log.vkey")
	server_stop "$SRV_DIR"
	uri=$(hw_key next-log hsm)
	new=$(oracle_vkey keystrap.test/log "$ORACLE/next-log.key")
	# log-key rotate cannot move a key in hardware into place: the configuration names it.
	run srv log-key rotate --next "$uri"
	[ "$status" -eq 1 ]
	[ "$output" = "keystrap-server: 'pkcs11:token=keystrap;object=next-log;type=private?pin-value=***' is a key in hardware: set log_key_next to it in the configuration (and log_name), then run log-key rotate again" ]
	set_config "$SRV_DIR" '.log_key_next = $k' --arg k "$uri"
	run srv log-key rotate --next "$uri"
	[ "$status" -eq 0 ]
	[[ "${lines[0]}" == "next log key keystrap.test/log+${new:18:8} (sha256 "*") signs every checkpoint beside log key keystrap.test/log+${old:18:8} (sha256 "*") until log-key retire" ]]
	[ "${lines[-1]}" = "nodes pin: $new" ]
	srv audit checkpoint >overlap.cp
	[ "$(grep -c '^— keystrap.test/log ' overlap.cp)" = 2 ]
	LOG_NAME=keystrap.test/log openssl_verifies overlap.cp "$new"
	# Then a node pinning either key accepts the server's replies.
	server_start "$SRV_DIR"
	grep -q "log key rotation: checkpoints are signed by '$SRV_DIR/log.key' and the next key 'pkcs11:token=keystrap;object=next-log;type=private?pin-value=\*\*\*'" "$SRV_DIR/server.log"
	run grep -c "pin-value=$PIN" "$SRV_DIR/server.log"
	[ "$output" = 0 ]
	mkdir a b
	run attest --log-key "$old" --out-dir a
	[ "$status" -eq 0 ]
	run attest --log-key "$new" --out-dir b
	[ "$status" -eq 0 ]
	[ "$(grep -c '^— keystrap.test/log ' b/checkpoint)" = 2 ]
	[ "$(srv audit export | jq -r 'select(.action | startswith("log-key-")) | .action')" = log-key-next ]
	# retire renames files: for a key in hardware it says what to edit, and changes nothing.
	run srv log-key retire
	[ "$status" -eq 1 ]
	[ "$output" = "keystrap-server: the log key is in hardware, or its next one: point log_key at 'pkcs11:token=keystrap;object=next-log;type=private?pin-value=***', set log_name ('keystrap.test/log') and remove log_key_next in the configuration, then restart the server: it records the swap" ]
	# The swap, by the configuration.
	server_stop "$SRV_DIR"
	set_config "$SRV_DIR" '.log_key = .log_key_next | .log_name = "keystrap.test/log" | del(.log_key_next)'
	server_start "$SRV_DIR"
	[ "$(srv audit export | jq -r 'select(.action | startswith("log-key-")) | .action' | tr '\n' ' ')" = "log-key-next log-key-rotate " ]
	mkdir c d
	run attest --log-key "$new" --checkpoint b/checkpoint --out-dir c
	[ "$status" -eq 0 ]
	[ "$(grep -c '^— keystrap.test/log ' c/checkpoint)" = 1 ]
	LOG_NAME=keystrap.test/log openssl_verifies c/checkpoint "$new"
	run srv audit verify --log-key "$new"
	[ "$status" -eq 0 ]
	# Twin: the old pin is refused now.
	run attest --log-key "$old" --out-dir d
	[ "$status" -eq 1 ]
	[ "$output" = "keystrap: the server's checkpoint does not verify: the note carries no signature of 'keystrap.test/log'" ]
	run srv audit verify --log-key "$old"
	[ "$status" -eq 1 ]
}
