# shellcheck shell=bash
# keystrap-server on the host for the VM scenarios (source after vm/lib.sh). QEMU's user
# networking shows the host's loopback to the guest as 10.0.2.2, so a server bound to
# 127.0.0.1:VM_SERVER_PORT is https://10.0.2.2:VM_SERVER_PORT from inside the guest, and no
# one else can reach it. Its PKI is cached in build/vm/server-pki (the CA goes into the
# initramfs, so a new CA means a new initramfs); everything else lives in a per-run directory:
#   vm_server_pki                    the CA and a TLS certificate for IP 10.0.2.2 and 127.0.0.1
#   vm_stage_attest STAGE            keystrap.conf ([Attest] Server=, CA=) and the CA in STAGE
#   vm_server_config DIR             DIR/server.json (operator keys op1, op2; threshold 2)
#   vm_server_policy DIR PCRS REFS S a signed policy with reference values REFS ("4=hex ...")
#                                    giving group default the secret S; loaded
#   vm_server_sign_load DIR FILE     FILE signed by both operators and loaded (a draft)
#   vm_server_secret DIR             a fresh random secret VM_SECRET_NAME (secret set)
#   vm_server_start DIR | _stop DIR  the daemon (killed by PID with the rest on exit)
#   vm_server_enrol DIR TPMSTATE ID  the node's first contact (its enrollment request) from a
#                                    copy of its TPM, then `node approve --id ID`
#   vm_srv DIR ARGS...               an admin command against DIR's server
#   vm_server_ready DIR              all of it for the enrolled guest: policy with the enroll
#                                    boot's PCRs as reference, a secret, start, node1 approved
# Used by vm/check.sh and vm/demo.sh, and meant for any other boot scenario (mkinitcpio).

KEYSTRAP_SERVER_BIN=${KEYSTRAP_SERVER_BIN:-$VM_SRC/build/keystrap-server}
VM_SERVER_PORT=${VM_SERVER_PORT:-47443}
VM_SERVER_URL=https://10.0.2.2:$VM_SERVER_PORT
VM_SERVER_CA=/etc/keystrap/server-ca.pem
# What the server asks the guest to quote: kernel (4), Secure Boot state (7), command line and
# initrd (9); their reference values come from the enroll boot (build/vm/enrolled/pcrs).
# shellcheck disable=SC2034 # used by the scripts that source this one
VM_ATTEST_PCRS=4,7,9
# The secret the policy gives group "default" (node1's), and the consumer checks.
VM_SECRET_NAME=vm-secret
VM_PKI=$VM_DIR/server-pki
# swtpm_setup's local CA (/etc/swtpm-localca.conf): it certified the guest TPM's EK.
VM_EK_CA_DIR=${VM_EK_CA_DIR:-/var/lib/swtpm-localca}

vm_server_pki() {
	local d=$VM_PKI
	fresh server-pki v1 && return 0
	say "server-pki/: the attestation server's CA and TLS certificate"
	rm -rf "$d" && mkdir -p "$d"
	(
		umask 077
		openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650 \
			-subj /CN=keystrap-vm-ca -addext basicConstraints=critical,CA:TRUE \
			-addext keyUsage=critical,keyCertSign,cRLSign -keyout "$d/ca.key" -out "$d/ca.crt"
		openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=10.0.2.2 \
			-keyout "$d/tls.key" -out "$d/tls.csr"
		openssl x509 -req -in "$d/tls.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" -CAcreateserial \
			-days 3650 -out "$d/tls.crt" -extfile <(printf '%s\n' \
			'subjectAltName=IP:10.0.2.2,IP:127.0.0.1' 'extendedKeyUsage=serverAuth')
	) >"$d/openssl.log" 2>&1 || die "server PKI: $(tail -n 3 "$d/openssl.log")"
	chmod 644 "$d/ca.crt" "$d/tls.crt"
	stamp server-pki v1
}

# The audit log's key, shared by every scenario's server as the KEK is, made once (the
# guest pins its verifier key); its own stamp, so the CA and what is built on it stay.
vm_log_key() {
	fresh log-key v1 && [ -f "$VM_PKI/log.vkey" ] && return 0
	mkdir -p "$VM_PKI"
	rm -f "$VM_PKI/log.key" "$VM_PKI/log.vkey"
	"$KEYSTRAP_SERVER_BIN" log-key generate "$VM_PKI/log.key" --name keystrap-vm/log >"$VM_PKI/log.vkey" ||
		die "cannot make the log key"
	stamp log-key v1
}

# The guest's keystrap.conf: public, so it goes into the initramfs as it is. The guest
# witnesses the server's audit log (LogKey=). The credentials go to uid/gid 942, the
# harness's consumer service (vm/guest/consumer).
vm_attest_conf() {
	vm_log_key
	printf '%s\n' '# keystrap VM harness: attest to the host (QEMU user networking).' \
		'[Attest]' "Server=$VM_SERVER_URL" "CA=$VM_SERVER_CA" "LogKey=$(cat "$VM_PKI/log.vkey")" 'Timeout=30' \
		'FailurePolicy=continue' '' '[Handoff]' 'Owner=942' 'Group=942'
}

vm_stage_attest() {
	local stage=$1
	mkdir -p "$stage/etc/keystrap"
	vm_attest_conf >"$stage/etc/keystrap/keystrap.conf"
	install -m644 "$VM_PKI/ca.crt" "$stage$VM_SERVER_CA"
}

# Two operator keys (threshold 2: each policy needs both signatures), cached next to the PKI.
vm_operator_keys() {
	local d=$VM_DIR/operators k
	mkdir -p "$d"
	for k in op1 op2; do
		[ -f "$d/$k.pub" ] && continue
		if ! (umask 077 && openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$d/$k.key" 2>/dev/null &&
			openssl pkey -in "$d/$k.key" -pubout -out "$d/$k.pub" 2>/dev/null); then
			die "cannot make operator key $k"
		fi
	done
}

# Every scenario's server starts from a copy of one database, so they share one KEK, kept with
# the PKI. Made whole, then linked into place: of scenarios racing to make it, the first link
# wins and no one replaces it.
vm_server_config() {
	local d=$1 o=$VM_DIR/operators
	mkdir -p "$d"
	vm_operator_keys
	if [ ! -f "$VM_PKI/kek" ]; then
		(umask 077 && head -c 32 /dev/urandom >"$VM_PKI/kek.$$") || die "cannot make the KEK"
		ln "$VM_PKI/kek.$$" "$VM_PKI/kek" 2>/dev/null || true
		rm -f "$VM_PKI/kek.$$"
	fi
	cat >"$d/server.json" <<-JSON
		{"listen":"127.0.0.1:$VM_SERVER_PORT","tls_certificate":"$VM_PKI/tls.crt","tls_key":"$VM_PKI/tls.key",
		 "database":"$d/keystrap.db","kek":"$VM_PKI/kek","ek_ca":["$VM_EK_CA_DIR/swtpm-localca-rootca-cert.pem","$VM_EK_CA_DIR/issuercert.pem"],
		 "ca_certificate":"$VM_PKI/ca.crt","ca_key":"$VM_PKI/ca.key","nonce_lifetime":60,"max_body":1048576,
		 "log_key":"$VM_PKI/log.key",
		 "operator_keys":["$o/op1.pub","$o/op2.pub"],"policy_threshold":2}
	JSON
}

# vm_server_policy DIR PCRS REFS [SECRET-NAME]: a policy pinning PCRS to REFS ("4=hex 7=hex
# ..."), credentials for an hour, group "default" receiving SECRET-NAME; signed by both
# operators and loaded into DIR's database.
vm_server_policy() {
	local d=$1 pcrs=$2 refs=$3 secret=${4:-} json="" p v f=$1/policy.json
	for p in ${pcrs//,/ }; do
		v=$(tr ' ' '\n' <<<"$refs" | sed -n "s/^$p=//p")
		[ -n "$v" ] || die "no reference value for PCR $p"
		json+="${json:+,}\"$p\":\"${v,,}\""
	done
	cat >"$f" <<-JSON
		{"version":1,"expires":"$(date -u -d '+1 day' +%Y-%m-%dT%H:%M:%SZ)","min_keystrap_version":"0.1.0",
		 "credential_lifetime":3600,"pcr_bank":"sha256","reference_pcrs":{$json},
		 "groups":{"default":{"secrets":[${secret:+\"$secret\"}]}}}
	JSON
	vm_server_sign_load "$d" "$f"
}

# vm_server_sign_load DIR FILE: both operators sign FILE's exact bytes (2 of 2); DIR's server
# loads it.
vm_server_sign_load() {
	local d=$1 f=$2 p
	for p in op1 op2; do
		openssl dgst -sha256 -sign "$VM_DIR/operators/$p.key" -out "$f.$p.sig" "$f" || die "cannot sign the policy"
	done
	vm_srv "$d" policy load "$f" --signature "$f.op1.sig" --signature "$f.op2.sig" >>"$d/admin.log" 2>&1 ||
		die "policy load failed: $(tail -n 2 "$d/admin.log")"
}

vm_srv() {
	local d=$1
	shift
	"$KEYSTRAP_SERVER_BIN" "$@" --config "$d/server.json"
}

port_busy() { ss -Hltn "sport = :$1" | grep -q .; }

vm_server_start() {
	local d=$1 pid
	[ -x "$KEYSTRAP_SERVER_BIN" ] || die "no keystrap-server at $KEYSTRAP_SERVER_BIN (make build/keystrap-server)"
	port_busy "$VM_SERVER_PORT" && die "port $VM_SERVER_PORT is in use (VM_SERVER_PORT=... picks another)"
	"$KEYSTRAP_SERVER_BIN" serve --config "$d/server.json" 2>>"$d/server.log" &
	pid=$!
	VM_PIDS+=("$pid")
	echo "$pid" >"$d/server.pid"
	for _ in $(seq 100); do
		curl -sf --cacert "$VM_PKI/ca.crt" "https://127.0.0.1:$VM_SERVER_PORT/healthz" >/dev/null 2>&1 && return 0
		kill -0 "$pid" 2>/dev/null || die "keystrap-server did not start: $(tail -n 3 "$d/server.log")"
		sleep 0.1
	done
	die "keystrap-server did not answer /healthz (see $d/server.log)"
}

vm_server_stop() {
	local d=$1 pid
	[ -f "$d/server.pid" ] || return 0
	pid=$(cat "$d/server.pid")
	rm -f "$d/server.pid"
	kill -TERM "$pid" 2>/dev/null || { vm_forget "$pid"; return 0; }
	wait "$pid" 2>/dev/null || true
	vm_forget "$pid"
}

# vm_server_enrol DIR TPMSTATE ID: what a new node's first boot does — its attest is refused
# and leaves an enrollment request — done from the host with a copy of the node's TPM state,
# then what the operator does: find the request in `node list` and approve it.
vm_server_enrol() {
	local d=$1 id=$3 tpm port pid ek
	tpm=$d/enrol-tpm
	rm -rf "$tpm" && cp -a "$2" "$tpm"
	# Two free loopback ports (TPM and control); other suites pick ports too, so retry.
	for _ in 1 2 3 4 5; do
		port=$(shuf -i 20000-60000 -n 1)
		port_busy "$port" || port_busy $((port + 1)) && continue
		swtpm socket --tpm2 --tpmstate dir="$tpm" --server type=tcp,port="$port",bindaddr=127.0.0.1 \
			--ctrl type=tcp,port=$((port + 1)),bindaddr=127.0.0.1 --flags not-need-init,startup-clear \
			2>>"$d/enrol.log" &
		pid=$!
		VM_PIDS+=("$pid")
		for _ in $(seq 50); do
			kill -0 "$pid" 2>/dev/null || break
			(exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break 2
			sleep 0.1
		done
		wait "$pid" 2>/dev/null || true
	done
	KEYSTRAP_TCTI="swtpm:host=127.0.0.1,port=$port" "$KEYSTRAP_BIN" attest \
		--server "https://127.0.0.1:$VM_SERVER_PORT" --ca "$VM_PKI/ca.crt" >/dev/null 2>>"$d/enrol.log" || true
	kill "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
	rm -rf "$tpm"
	# Columns: ID, EK (in full with --full), GROUP, STATE, ...; a pending request has no id yet.
	ek=$(vm_srv "$d" node list --full | awk '$4 == "requested" { print $2; exit }')
	[ -n "$ek" ] || die "the node's first contact left no enrollment request: $(tail -n 2 "$d/enrol.log")"
	vm_srv "$d" node approve "$ek" --id "$id" --group default >>"$d/enrol.log" || die "node approve $ek failed"
	echo "$ek" >"$d/ek-hash"
}

# vm_server_ready DIR: a running server that knows the enrolled guest as node1 and expects
# the PCR values its enroll boot reported.
vm_server_ready() {
	local d=$1
	rm -rf "$d" && mkdir -p "$d"
	vm_server_config "$d"
	# policy load refuses a group whose secret is not set yet.
	vm_server_secret "$d"
	vm_server_policy "$d" "$VM_ATTEST_PCRS" "$(cat "$VM_DIR/enrolled/pcrs")" "$VM_SECRET_NAME"
	vm_server_start "$d"
	vm_server_enrol "$d" "$VM_DIR/enrolled/tpm" node1
}

# vm_server_secret DIR: a fresh random secret VM_SECRET_NAME, given to `secret set` on its
# standard input; the harness keeps only its SHA-256 (VM_SECRET_SHA256, for the consumer) and,
# for the leak scan, the value in VM_SECRET (a shell variable: never exported, argv or a file).
# shellcheck disable=SC2034 # VM_SECRET_SHA256 goes to the tools disk (vm/lib.sh)
vm_server_secret() {
	VM_SECRET=$(head -c 64 /dev/urandom | base64 -w0 | tr -dc 'A-Za-z0-9' | head -c 40)
	VM_SECRET_SHA256=$(printf '%s' "$VM_SECRET" | sha256sum | cut -d' ' -f1)
	printf '%s' "$VM_SECRET" | vm_srv "$1" secret set "$VM_SECRET_NAME" >>"$1/admin.log" 2>&1 ||
		die "secret set failed: $(tail -n 2 "$1/admin.log")"
}
