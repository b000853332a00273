#!/usr/bin/env bats
# keystrap-server over PostgreSQL (issue 5, the shared-store case): a real PostgreSQL cluster on
# loopback, two real server instances (A and B, the sanitizer build) on their own ports sharing
# one database as they would behind a load balancer, real swtpms with EK certificates. A node
# enrols through one instance and attests through the other; a nonce is spent once across
# both; concurrent requests through both leave one unbroken audit chain. Secrets at rest
# (issue 14): pg_dump holds no value; a copy of the database with another KEK is refused; a
# KEK rotation through A while B still holds the old KEK, and one killed at every statement.

load ../lib/swtpm
load ../lib/server
load ../lib/postgres

PEER=$BATS_TEST_DIRNAME/../../build/asan/attest-peer

# instance NAME: a server sharing the PKI in $SRV_DIR and the database at $PG_URL, with a copy
# of the one KEK of its own (as on a machine of its own).
instance() {
	local d=$BATS_FILE_TMPDIR/$1 port
	mkdir -p "$d"
	cp "$SRV_DIR"/{ca,tls}.{crt,key} "$d/"
	[ -e "$SRV_DIR/kek" ] || "$KEYSTRAP_SERVER" kek init "$SRV_DIR/kek" >/dev/null || return 1
	cp -p "$SRV_DIR/kek" "$d/kek"
	port=$(free_port)
	SRV_PORT=$port SRV_DATABASE=$PG_URL server_config "$d" "0 7"
	SRV_PORT=$port server_start "$d" || return 1
	echo "$port" >"$d/port"
}

setup_file() {
	swtpm_start "$BATS_FILE_TMPDIR/other"
	export OTHER_DIR=$SWTPM_DIR OTHER_PORT=$SWTPM_PORT OTHER_TCTI=$KEYSTRAP_TCTI
	swtpm_start
	pg_start
	export SRV_DIR=$BATS_FILE_TMPDIR/pki A_DIR=$BATS_FILE_TMPDIR/a B_DIR=$BATS_FILE_TMPDIR/b A_PORT B_PORT
	server_pki "$SRV_DIR"
	instance a
	instance b
	A_PORT=$(cat "$A_DIR/port")
	B_PORT=$(cat "$B_DIR/port")
	export EK EK_OTHER U
	EK=$(ek_hash)
	EK_OTHER=$(TPM2TOOLS_TCTI=$OTHER_TCTI ek_hash)
	U=$(head -c 32 /dev/urandom | xxd -p -c 64)
	"$PEER" start "$U" >"$BATS_FILE_TMPDIR/start.json"
}

teardown_file() {
	server_stop "$A_DIR" || true
	server_stop "$B_DIR" || true
	pg_stop
	swtpm_stop
	SWTPM_DIR=$OTHER_DIR SWTPM_PORT=$OTHER_PORT swtpm_stop
}

setup() {
	cd "$BATS_TEST_TMPDIR"
	mkdir -p out
}

# A test that stopped PostgreSQL (SIGSTOP) and failed before resuming it: resumed here.
teardown() {
	if [ -e "$BATS_FILE_TMPDIR/pg-stopped" ]; then
		pg_signal CONT
		rm "$BATS_FILE_TMPDIR/pg-stopped"
	fi
	# The instances for simulated nodes, if a test started them.
	local i
	for i in c d; do
		[ ! -e "$BATS_TEST_TMPDIR/$i/server.pid" ] || server_stop "$BATS_TEST_TMPDIR/$i" || true
	done
}

# attest_at A|B [args]: keystrap attest through one instance.
attest_at() {
	local port
	port=$([ "$1" = A ] && echo "$A_PORT" || echo "$B_PORT")
	shift
	"$KEYSTRAP" attest --server "https://127.0.0.1:$port" --ca "$SRV_DIR/ca.crt" --out-dir out "$@"
}

# post_at A|B PATH FILE: post (tests/lib/server.bash) to one instance.
post_at() {
	local port
	port=$([ "$1" = A ] && echo "$A_PORT" || echo "$B_PORT")
	SRV_PORT=$port post "$2" "$3"
}

# admin A|B ARGS...: an admin command with that instance's configuration.
admin() {
	local d
	d=$([ "$1" = A ] && echo "$A_DIR" || echo "$B_DIR")
	shift
	"$KEYSTRAP_SERVER" "$@" --config "$d/server.json"
}

status_of() { echo "${1##*$'\n'}"; }
# statuses FILE...: the status line of each saved post output, one per line.
statuses() {
	local f
	for f; do status_of "$(cat "$f")"; done
}
body_of() { echo "${1%$'\n'*}"; }

# challenge_at A|B FILE: a start with the peer's AK through that instance.
challenge_at() {
	local out
	out=$(post_at "$1" /v1/attest/start "$BATS_FILE_TMPDIR/start.json")
	[ "${out##*$'\n'}" = 200 ] || { echo "start: $out"; return 1; }
	printf '%s' "${out%$'\n'*}" >"$2"
}

records() {
	admin A audit verify | sed -n 's/^audit log intact: \([0-9]*\) records.*/\1/p'
}

@test "a node enrols through A, an operator approves it, and it attests through B" {
	run attest_at A
	[ "$status" -eq 5 ]
	[ "$output" = "keystrap: the server refused the attestation start (HTTP 403): node is not approved: enrollment request recorded for EK $EK" ]
	# B sees the request A recorded: one registry.
	run admin B node list --full
	[[ "${lines[1]}" == "-"*" $EK default "*"requested -"* ]]
	run attest_at B
	[ "$output" = "keystrap: the server refused the attestation start (HTTP 403): node is not approved yet: its enrollment request (EK $EK) awaits an operator" ]
	run admin B node approve "$EK" --id node1.example
	[ "$output" = "$EK approved node1.example" ]
	run attest_at B
	[ "$status" -eq 0 ]
	[ "$output" = "keystrap: attested as node1.example" ]
	run openssl verify -CAfile "$SRV_DIR/ca.crt" out/node.crt
	[ "$output" = "out/node.crt: OK" ]
	run openssl x509 -in out/node.crt -noout -ext subjectAltName
	[[ "$output" == *"DNS:node1.example"* ]]
	grep -q 'action=attest-finish decision=allow ek='"$EK"' node=node1.example' "$B_DIR/server.log"
	# And through A as well.
	rm -f out/*
	run attest_at A
	[ "$output" = "keystrap: attested as node1.example" ]
	run admin A node list --full
	[[ "${lines[1]}" == "node1.example "*" $EK default "*"approved  20"*" UTC 20"*" UTC" ]]
}

@test "a boot state refused through A is kept in PostgreSQL: policy draft through B takes it; loaded, the node attests through A" {
	o=$OPERATOR_DIR
	v=$(($(cat "$o/policy.version") + 1))
	other=$(printf 'before the update' | sha256sum | cut -c1-64)
	policy_json "0 7" "$v" | jq -c --arg d "$other" '.reference_pcrs."7" = $d' >p.json
	policy_sign "$o" p.json op1 op2
	admin A policy load p.json --signature p.json.op1.sig --signature p.json.op2.sig >/dev/null
	run attest_at A
	[ "$status" -eq 5 ]
	[ "$output" = "keystrap: the server refused the attestation (HTTP 403): PCR 7 (sha256) is $(pcr_value sha256 7), policy $v wants $other" ]
	[ "$(pg_sql keystrap "SELECT policy_version FROM refusals WHERE ek_hash = '$EK'")" = "$v" ]
	run admin B policy draft --from-node node1.example --out draft.json
	[ "$status" -eq 0 ]
	[ "$(jq -r '[.version, .reference_pcrs."7"] | @tsv' draft.json)" = "$((v + 1))	$(pcr_value sha256 7)" ]
	policy_sign "$o" draft.json op1 op2
	admin B policy load draft.json --signature draft.json.op1.sig --signature draft.json.op2.sig >/dev/null
	echo $((v + 1)) >"$o/policy.version"
	run attest_at A
	[ "$output" = "keystrap: attested as node1.example" ]
}

@test "a nonce issued by A and finished at B passes once; the finish replayed at A is refused" {
	challenge_at A ch.json
	"$PEER" finish "$U" ch.json >finish.json
	run post_at B /v1/attest/finish finish.json
	[ "$(status_of "$output")" = 200 ]
	[ "$(body_of "$output" | jq -r .node_id)" = node1.example ]
	run post_at A /v1/attest/finish finish.json
	[ "$(status_of "$output")" = 403 ]
	[ "$(body_of "$output")" = '{"error":"nonce already used: a replayed or repeated finish"}' ]
	run post_at B /v1/attest/finish finish.json
	[ "$(body_of "$output")" = '{"error":"nonce already used: a replayed or repeated finish"}' ]
}

@test "the shared store holds no challenge secret: a verifier only; forged proofs at A spend nothing, the TPM's at B passes" {
	challenge_at A ch.json
	session=$(jq -r .session ch.json)
	"$PEER" finish "$U" ch.json >good.json
	read -r secret proof nonce < <(handshake_facts ch.json good.json)
	[[ "$secret" =~ ^[0-9a-f]{64}$ ]]
	# The whole row, as a database reader sees it.
	row=$(pg_sql keystrap "SELECT row_to_json(c) FROM challenges c WHERE session = '$session'")
	[ "$(jq -r .verifier <<<"$row")" = "\\x$(printf '%s' "$proof" | xxd -r -p | sha256sum | cut -d' ' -f1)" ]
	[ "$(jq -r .nonce <<<"$row")" = "\\x$nonce" ]
	[ "$(grep -c "$secret" <<<"$row")" = 0 ]
	[ "$(grep -c "$proof" <<<"$row")" = 0 ]
	forge_proofs "$(jq -r '.verifier | ltrimstr("\\x")' <<<"$row")" "$nonce" good.json
	for forged in forged-1.json forged-2.json; do
		run post_at A /v1/attest/finish "$forged"
		[ "$(status_of "$output")" = 403 ]
		[[ "$(body_of "$output")" == '{"error":"proof of activation does not match: '* ]]
	done
	run post_at B /v1/attest/finish good.json
	[ "$(status_of "$output")" = 200 ]
	# Spent: the verifier is wiped, and a replay at either instance is refused.
	[ "$(pg_sql keystrap "SELECT length(verifier), used FROM challenges WHERE session = '$session'")" = "0|1" ]
	run post_at A /v1/attest/finish good.json
	[ "$(body_of "$output")" = '{"error":"nonce already used: a replayed or repeated finish"}' ]
}

@test "the same finish sent to A and B at once is accepted by exactly one of them" {
	local i
	for i in 1 2 3 4; do
		challenge_at B "ch$i.json"
		"$PEER" finish "$U" "ch$i.json" >"finish$i.json"
	done
	for i in 1 2 3 4; do
		post_at A /v1/attest/finish "finish$i.json" >"a$i.out" &
		post_at B /v1/attest/finish "finish$i.json" >"b$i.out" &
	done
	wait
	for i in 1 2 3 4; do
		[ "$(statuses "a$i.out" "b$i.out" | sort | tr '\n' ' ')" = "200 403 " ]
		grep -qx '{"error":"nonce already used: a replayed or repeated finish"}' "a$i.out" "b$i.out"
	done
}

@test "concurrent requests through both instances leave one unbroken audit chain with every record" {
	local before i n=0
	before=$(records)
	[ -n "$before" ]
	# Full handshakes (the TPM answers one client at a time, so challenges are prepared first)...
	for i in 1 2 3 4 5 6; do
		challenge_at A "ch$i.json"
		"$PEER" finish "$U" "ch$i.json" >"finish$i.json"
	done
	n=$((n + 6 + 6))
	printf '{"version": "1",' >broken.json
	# ...then everything at once: finishes, starts and malformed requests through A and B.
	for i in 1 2 3 4 5 6; do
		if [ $((i % 2)) = 0 ]; then post_at A /v1/attest/finish "finish$i.json" >"f$i.out" &
		else post_at B /v1/attest/finish "finish$i.json" >"f$i.out" & fi
		post_at A /v1/attest/start "$BATS_FILE_TMPDIR/start.json" >"sa$i.out" &
		post_at B /v1/attest/start "$BATS_FILE_TMPDIR/start.json" >"sb$i.out" &
		post_at A /v1/attest/start broken.json >"xa$i.out" &
		post_at B /v1/attest/start broken.json >"xb$i.out" &
	done
	wait
	n=$((n + 6 * 4))
	[ "$(statuses f*.out | grep -xc 200)" -eq 6 ]
	[ "$(statuses s*.out | grep -xc 200)" -eq 12 ]
	[ "$(statuses x*.out | grep -xc 400)" -eq 12 ]
	run admin B audit verify
	[ "$status" -eq 0 ]
	[[ "${lines[0]}" =~ ^"audit log intact: "$((before + n))" records, root "[0-9a-f]{64}$ ]]
	# One log, not two: both instances signed checkpoints of the same tree, the newest covering all.
	[ "${lines[1]%% records*}" = "checkpoint: $((before + n))" ]
	# seq has no gap and no duplicate: one chain, not two interleaved.
	[ "$(pg_sql keystrap 'SELECT count(*), min(seq), max(seq) FROM audit')" = "$((before + n))|1|$((before + n))" ]
	[ "$(pg_sql keystrap 'SELECT count(*) FROM audit_tree WHERE level = 0')" = "$((before + n))" ]
	# Records removed from the end (leaves too) pass the chain, not the checkpoint.
	pg_sql keystrap "CREATE TABLE audit_keep AS SELECT * FROM audit WHERE seq > $((before + n - 2));
		CREATE TABLE tree_keep AS SELECT * FROM audit_tree WHERE level = 0 AND idx >= $((before + n - 2));
		DELETE FROM audit WHERE seq > $((before + n - 2)); DELETE FROM audit_tree WHERE level = 0 AND idx >= $((before + n - 2))" >/dev/null
	run admin A audit verify
	pg_sql keystrap "INSERT INTO audit SELECT * FROM audit_keep; INSERT INTO audit_tree SELECT * FROM tree_keep;
		DROP TABLE audit_keep; DROP TABLE tree_keep" >/dev/null
	[ "$status" -eq 1 ]
	[ "$output" = "keystrap-server: audit log broken: the signed checkpoint covers $((before + n)) records but the log has $((before + n - 2)) (records removed)" ]
	run admin A audit verify
	[ "$status" -eq 0 ]
}

@test "a revoked node is refused through either instance; reinstated, it attests again" {
	KEYSTRAP_TCTI=$OTHER_TCTI attest_at B 2>/dev/null || true
	run admin A node approve "$EK_OTHER" --id other
	[ "$output" = "$EK_OTHER approved other" ]
	KEYSTRAP_TCTI=$OTHER_TCTI run attest_at A
	[ "$output" = "keystrap: attested as other" ]
	run admin B node revoke "$EK_OTHER"
	[ "$output" = "$EK_OTHER revoked other" ]
	KEYSTRAP_TCTI=$OTHER_TCTI run attest_at A
	[ "$status" -eq 5 ]
	[ "$output" = "keystrap: the server refused the attestation start (HTTP 403): node is revoked" ]
	KEYSTRAP_TCTI=$OTHER_TCTI run attest_at B
	[ "$status" -eq 5 ]
	[ "$output" = "keystrap: the server refused the attestation start (HTTP 403): node is revoked" ]
	run admin A node list --full
	[[ "$output" == *"other "*" $EK_OTHER default "*"revoked   "* ]]
	# Approving it again is refused, at either instance, until the operator says --reinstate.
	run admin B node approve "$EK_OTHER"
	[ "$status" -eq 1 ]
	[ "$output" = "keystrap-server: node other (EK $EK_OTHER) is revoked: approving it again takes --reinstate" ]
	[ "$(pg_sql keystrap "SELECT decision FROM audit WHERE action = 'node-approve' AND ek_hash = '$EK_OTHER' ORDER BY seq DESC LIMIT 1")" = deny ]
	admin B node approve other --reinstate
	KEYSTRAP_TCTI=$OTHER_TCTI run attest_at B
	[ "$output" = "keystrap: attested as other" ]
	# A node id stays unique across instances.
	run admin A node approve "$EK_OTHER" --id node1.example
	[ "$status" -eq 1 ]
	[ "$output" = "keystrap-server: node id 'node1.example' belongs to another EK" ]
}

# crl_at A|B FILE: the instance's CRL, PEM; crl_number FILE: its cRLNumber in decimal.
crl_at() {
	local port
	port=$([ "$1" = A ] && echo "$A_PORT" || echo "$B_PORT")
	curl -s --fail --cacert "$SRV_DIR/ca.crt" -o "$2" "https://127.0.0.1:$port/v1/crl.pem"
}
crl_number() { echo $((16#$(openssl crl -in "$1" -noout -crlnumber | sed 's/^crlNumber=0x//'))); }

@test "PostgreSQL: a revocation through the admin CLI is in both instances' next CRL, numbered from one shared counter" {
	KEYSTRAP_TCTI=$OTHER_TCTI attest_at B 2>/dev/null || true
	admin A node approve "$EK_OTHER" --id other >/dev/null 2>&1 || admin A node approve other --reinstate >/dev/null
	KEYSTRAP_TCTI=$OTHER_TCTI attest_at A >/dev/null
	crl_at A a0.pem
	crl_at B b0.pem
	openssl verify -crl_check -CAfile "$SRV_DIR/ca.crt" -CRLfile b0.pem out/node.crt
	admin B node revoke other >/dev/null
	# Both instances' very next CRL, each made afresh from the store, under numbers that rise
	# whichever instance (or admin command) made the one before.
	crl_at A a1.pem
	crl_at B b1.pem
	[ "$(crl_number a1.pem)" -gt "$(crl_number b0.pem)" ]
	[ "$(crl_number b1.pem)" -gt "$(crl_number a1.pem)" ]
	admin A ca crl --pem --out admin.pem >/dev/null
	[ "$(crl_number admin.pem)" -eq $(($(crl_number b1.pem) + 1)) ]
	for f in a1.pem b1.pem; do
		run openssl verify -crl_check -CAfile "$SRV_DIR/ca.crt" -CRLfile "$f" out/node.crt
		[ "$status" -ne 0 ]
		[[ "$output" == *"certificate revoked"* ]]
	done
	[ "$(pg_sql keystrap "SELECT count(*) FROM certificates c JOIN nodes n USING (ek_hash) WHERE n.node_id = 'other'")" -ge 1 ]
	admin A node approve other --reinstate >/dev/null
	crl_at B b2.pem
	openssl crl -in b2.pem -noout -text | grep -q "No Revoked Certificates."
}

@test "audit verify and export read the shared log; an edited record in PostgreSQL is detected" {
	run admin A audit verify
	[ "$status" -eq 0 ]
	[ "$(admin A audit export)" = "$(admin B audit export)" ]
	[ "$(admin A audit export | jq -r .action | sort -u | tr '\n' ' ')" = "attest-finish attest-start node-approve node-reinstate node-revoke policy-load " ]
	orig=$(pg_sql keystrap "SELECT decision FROM audit WHERE seq = 2")
	pg_sql keystrap "UPDATE audit SET decision = 'forged' WHERE seq = 2"
	run admin B audit verify
	pg_sql keystrap "UPDATE audit SET decision = '$orig' WHERE seq = 2"
	[ "$status" -eq 1 ]
	[ "$output" = "keystrap-server: audit log broken: record 2 does not match its hash (edited)" ]
	run admin A audit verify
	[ "$status" -eq 0 ]
}

@test "a bad connection URI gives one clear line and exit 1; the password is never printed" {
	jq --arg db "postgresql://keystrap:wrong-password@127.0.0.1:$PG_PORT/keystrap" '.database = $db' \
		"$A_DIR/server.json" >badpw.json
	run "$KEYSTRAP_SERVER" node list --config badpw.json
	[ "$status" -eq 1 ]
	[ "$output" = "keystrap-server: cannot open the store 'postgresql://keystrap:***@127.0.0.1:$PG_PORT/keystrap': connection to server at \"127.0.0.1\", port $PG_PORT failed: FATAL:  password authentication failed for user \"keystrap\"" ]
	local nobody
	nobody=$(free_port)
	jq --arg db "postgres://keystrap@127.0.0.1:$nobody/keystrap?password=hunter2&connect_timeout=2" \
		'.database = $db' "$A_DIR/server.json" >nobody.json
	run "$KEYSTRAP_SERVER" audit verify --config nobody.json
	[ "$status" -eq 1 ]
	[ "$output" = "keystrap-server: cannot open the store 'postgres://keystrap@127.0.0.1:$nobody/keystrap?password=***&connect_timeout=2': connection to server at \"127.0.0.1\", port $nobody failed: Connection refused" ]
	run "$KEYSTRAP_SERVER" serve --config nobody.json
	[ "$status" -eq 1 ]
	[[ "$output" == *"cannot open the store"*"Connection refused" ]]
	[[ "$output" != *hunter2* ]]
	jq '.database = "mysql://db.example/keystrap"' "$A_DIR/server.json" >mysql.json
	run "$KEYSTRAP_SERVER" node list --config mysql.json
	[ "$status" -eq 1 ]
	[ "$output" = "keystrap-server: cannot open the store 'mysql://db.example/keystrap': not a path, sqlite:PATH or postgresql:// URI" ]
	# libpq's key=value form is not taken for a file name (it would hold the password in clear).
	jq --arg db "host=127.0.0.1 port=$PG_PORT dbname=keystrap password=hunter2" '.database = $db' \
		"$A_DIR/server.json" >kv.json
	run "$KEYSTRAP_SERVER" node list --config kv.json
	[ "$status" -eq 1 ]
	[ "$output" = "keystrap-server: cannot open the store: the database looks like libpq's key=value form, which is not taken: use a postgresql:// URI (or sqlite:PATH for a file with '=' in its name)" ]
	[ ! -e "host=127.0.0.1 port=$PG_PORT dbname=keystrap password=hunter2" ]
	# The running instances logged where their store is, without its password.
	grep -q "database=postgresql://keystrap:\*\*\*@127.0.0.1:$PG_PORT/keystrap" "$A_DIR/server.log"
	! grep -q "$PG_PASSWORD" "$A_DIR/server.log" "$B_DIR/server.log" || false
}

@test "both instances share one schema in PostgreSQL: bytea and bigint where SQLite has BLOB and INTEGER" {
	run pg_sql keystrap "SELECT table_name || '.' || column_name || ':' || data_type FROM information_schema.columns
		WHERE table_schema = 'public' AND column_name IN ('seq', 'hash', 'ciphertext', 'used', 'grp') ORDER BY 1"
	[ "$output" = "audit.hash:bytea
audit.seq:bigint
audit_tree.hash:bytea
challenges.used:bigint
disk_shares.ciphertext:bytea
nodes.grp:text
secret_versions.ciphertext:bytea" ]
	# One enrollment request per EK, whichever instance it came through.
	[ "$(pg_sql keystrap "SELECT count(*) FROM nodes WHERE ek_hash = '$EK'")" = 1 ]
}

healthz_at() {
	curl -s -o /dev/null -w '%{http_code}' --cacert "$SRV_DIR/ca.crt" "https://127.0.0.1:$1/healthz"
}

@test "PostgreSQL restarting under both instances: they answer 503 while it is down, then reconnect" {
	[ "$(healthz_at "$A_PORT")" = 200 ]
	pg_halt
	[ "$(healthz_at "$A_PORT")" = 503 ]
	[ "$(healthz_at "$B_PORT")" = 503 ]
	# No decision without its record: a node is refused, and nothing is issued.
	run attest_at A --retries 0
	[ "$status" -eq 4 ]
	[[ "$output" == *"(HTTP 503)"*"store unavailable"* ]]
	[ ! -e out/node.crt ]
	pg_run
	[ "$(healthz_at "$A_PORT")" = 200 ]
	[ "$(healthz_at "$B_PORT")" = 200 ]
	run attest_at B
	[ "$output" = "keystrap: attested as node1.example" ]
	run attest_at A
	[ "$output" = "keystrap: attested as node1.example" ]
	run admin A audit verify
	[ "$status" -eq 0 ]
}

# pg_signal SIG: SIG to the postmaster we started and to every backend it forked, by PID.
pg_signal() {
	local pm pid
	pm=$(cat "$PG_DIR/postmaster.pid.keystrap")
	for pid in $pm $(ps -o pid= --ppid "$pm"); do
		kill "-$1" "$pid"
	done
}

# timed_health PORT: /healthz's status and body on one line, then how long it took in ms.
timed_health() {
	local t0 out
	t0=$(date +%s%N)
	out=$(curl -s -m 30 -w ' %{http_code}' --cacert "$SRV_DIR/ca.crt" "https://127.0.0.1:$1/healthz" | tr '\n' ' ')
	echo "$out"
	echo $((($(date +%s%N) - t0) / 1000000))
}

@test "PostgreSQL stopped (SIGSTOP): /healthz fails within the deadline, then every answer is a quick 503; one log line as the outage begins and one as it ends" {
	local i t0 ms before_down before_up
	[ "$(healthz_at "$A_PORT")" = 200 ]
	before_down=$(grep -c 'event=store-unavailable' "$A_DIR/server.log" || true)
	before_up=$(grep -c 'event=store-available' "$A_DIR/server.log" || true)
	touch "$BATS_FILE_TMPDIR/pg-stopped"
	pg_signal STOP
	# The first call to find the database stopped waits out its deadline (3 s), not forever.
	run timed_health "$A_PORT"
	[[ "${lines[0]}" == "store unavailable: "*": Connection timed out  503" ]]
	[ "${lines[1]}" -lt 5000 ]
	# From then on the loop is never held: health and attestations get their 503 at once.
	for i in 1 2 3; do
		run timed_health "$A_PORT"
		[[ "${lines[0]}" == "store unavailable: "*": Connection timed out  503" ]]
		[ "${lines[1]}" -lt 1500 ]
	done
	for i in $(seq 10); do
		t0=$(date +%s%N)
		curl -s -D "h$i" -o "b$i" --cacert "$SRV_DIR/ca.crt" --data-binary "@$BATS_FILE_TMPDIR/start.json" \
			"https://127.0.0.1:$A_PORT/v1/attest/start"
		ms=$((($(date +%s%N) - t0) / 1000000))
		[ "$ms" -lt 1500 ]
		head -1 "h$i" | grep -q '^HTTP/1.1 503'
		grep -qix 'retry-after: 1' <(tr -d '\r' <"h$i")
		[ "$(cat "b$i")" = '{"error":"store unavailable"}' ]
	done
	run attest_at A --retries 0
	[ "$status" -eq 4 ]
	[[ "$output" == *"(HTTP 503)"*"store unavailable"* ]]
	[ ! -e out/node.crt ]
	pg_signal CONT
	rm "$BATS_FILE_TMPDIR/pg-stopped"
	# Back by itself: a reconnect step a second finds the database answering again.
	for i in $(seq 100); do
		[ "$(healthz_at "$A_PORT")" = 200 ] && break
		sleep 0.1
	done
	[ "$(healthz_at "$A_PORT")" = 200 ]
	run attest_at A
	[ "$output" = "keystrap: attested as node1.example" ]
	# One line as the outage began, one as it ended; none of the refused requests logged its own.
	[ "$(grep -c 'event=store-unavailable' "$A_DIR/server.log")" = $((before_down + 1)) ]
	[ "$(grep -c 'event=store-available' "$A_DIR/server.log")" = $((before_up + 1)) ]
	grep 'event=store-unavailable' "$A_DIR/server.log" | tail -n1 | grep -q 'reason="store unavailable: .*: Connection timed out"'
	grep 'event=store-available' "$A_DIR/server.log" | tail -n1 | grep -Eq 'after=[0-9]+\.[0-9]s$'
	# B went through the same outage and is back as well.
	for i in $(seq 100); do
		[ "$(healthz_at "$B_PORT")" = 200 ] && break
		sleep 0.1
	done
	[ "$(healthz_at "$B_PORT")" = 200 ]
}

# load_at A|B N: policy load of race-N.json (signed by both operators) through one instance.
load_at() {
	admin "$1" policy load "race-$2.json" --signature "race-$2.json.op1.sig" --signature "race-$2.json.op2.sig"
}

@test "policy loads racing through both instances: a version lands once, never one below the current" {
	local o=$OPERATOR_DIR v i
	v=$(($(cat "$o/policy.version") + 1))
	echo $((v + 2)) >"$o/policy.version"
	for i in 0 1 2; do
		policy_json "0 7" $((v + i)) >"race-$i.json"
		policy_sign "$o" "race-$i.json" op1 op2
	done
	load_at A 0 >a0.out 2>&1 &
	load_at B 0 >b0.out 2>&1 &
	wait
	[ "$(cat a0.out b0.out | grep -c "^policy version $v loaded")" -eq 1 ]
	[ "$(cat a0.out b0.out | grep -c "policy version $v is not newer than the current version $v")" -eq 1 ]
	# v+1 and v+2 at once: v+2 always lands, v+1 only if it got there first.
	load_at A 1 >a1.out 2>&1 &
	load_at B 2 >b2.out 2>&1 &
	wait
	grep -q "^policy version $((v + 2)) loaded" b2.out
	[ "$(pg_sql keystrap 'SELECT max(version) FROM policies')" = $((v + 2)) ]
	[ "$(pg_sql keystrap 'SELECT count(*) FROM policies a JOIN policies b ON a.loaded_us > b.loaded_us AND a.version < b.version')" = 0 ]
	run admin A audit verify
	[ "$status" -eq 0 ]
	# And the instances go on attesting under the newest policy.
	run attest_at B
	[ "$output" = "keystrap: attested as node1.example" ]
}

@test "a field name cut inside a UTF-8 character in the reason is still recorded: 400, not 503" {
	local before key
	before=$(records)
	# 'a' then 2-byte characters: the reason keeps 64 bytes of the name, half a character.
	key="a$(printf 'é%.0s' $(seq 40))"
	jq -c --arg k "$key" '.[$k] = 1' "$BATS_FILE_TMPDIR/start.json" >utf8.json
	run post_at A /v1/attest/start utf8.json
	[ "$(status_of "$output")" = 400 ]
	run post_at B /v1/attest/start utf8.json
	[ "$(status_of "$output")" = 400 ]
	run admin A audit verify
	[[ "${lines[0]}" == "audit log intact: $((before + 2)) records, root "* ]]
	[ "$(admin B audit export | tail -n 1 | jq -r .reasons)" = "unknown field 'a$(printf 'é%.0s' $(seq 31))�'" ]
}

@test "a writer holding the store's lock elsewhere: a request waits for it, then gets 503, and nothing half-done" {
	local before t0 t1 lock=7738725071487918448
	before=$(records)
	# Another session takes the advisory lock every batch needs to append its records, for 8 s.
	pg_sql keystrap "SELECT pg_advisory_lock($lock); SELECT pg_sleep(8); SELECT pg_advisory_unlock($lock)" >/dev/null &
	sleep 1
	t0=$(date +%s%N)
	run post_at A /v1/attest/start "$BATS_FILE_TMPDIR/start.json"
	t1=$(date +%s%N)
	[ "$(status_of "$output")" = 503 ]
	# Handled without the lock; its record could not be appended (the batch's sequencing).
	[ "$(body_of "$output")" = '{"error":"store unavailable: the decision could not be recorded"}' ]
	[ $(((t1 - t0) / 1000000)) -ge 4500 ]
	wait
	# Its twin once the lock is free: served, and the log holds exactly that one more record.
	run post_at A /v1/attest/start "$BATS_FILE_TMPDIR/start.json"
	[ "$(status_of "$output")" = 200 ]
	[ "$(records)" = $((before + 1)) ]
}

# pg_copy DB: a new database DB holding a dump of the shared one (no server uses it); prints its URL.
pg_copy() {
	pg_sql postgres "DROP DATABASE IF EXISTS $1" >/dev/null 2>&1
	pg_sql postgres "CREATE DATABASE $1" >/dev/null
	PGPASSFILE=$PG_DIR/pgpass "$PG_BIN/pg_dump" -h 127.0.0.1 -p "$PG_PORT" -U keystrap keystrap |
		PGPASSFILE=$PG_DIR/pgpass "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PG_PORT" -U keystrap \
			-d "$1" >/dev/null
	echo "${PG_URL%/keystrap}/$1"
}

@test "secrets in PostgreSQL are ciphertext: pg_dump holds no value, raw, hex or base64; either instance gives the node the current version" {
	local v1 v2 i
	v1=pg1-$(head -c 12 /dev/urandom | xxd -p) v2=pg2-$(head -c 12 /dev/urandom | xxd -p)
	printf '%s' "$v1" | admin A secret set pg.secret >/dev/null
	run admin B secret set pg.secret <<<"$v2"
	[ "$output" = "secret pg.secret version 2 stored ($((${#v2} + 1)) bytes)" ]
	POLICY_GROUPS='{"default":{"secrets":[]},"web":{"secrets":["pg.secret"]}}' server_policy "$A_DIR" "0 7" >/dev/null
	admin A node approve "$EK" --group web >/dev/null
	for i in A B; do
		rm -rf out && mkdir out
		run attest_at "$i"
		[ "$status" -eq 0 ]
		[ "$(cat out/secrets/pg.secret)" = "$v2" ]
	done
	[[ "$(admin A secret history pg.secret | tail -n1)" == "version 2 set "*" ($((${#v2} + 1)) bytes) current" ]]
	PGPASSFILE=$PG_DIR/pgpass "$PG_BIN/pg_dump" -h 127.0.0.1 -p "$PG_PORT" -U keystrap keystrap >dump.sql
	grep -q '^COPY public.secret_versions ' dump.sql
	for i in "$v1" "$v2"; do
		run holds "$i" dump.sql
		[ -z "$output" ]
	done
	[ "$(holds "$v2" out/secrets/pg.secret)" = out/secrets/pg.secret ]
	[ "$(pg_sql keystrap "SELECT version, size, length(ciphertext) - size, length(wrapped_key) FROM secret_versions
		WHERE name = 'pg.secret' ORDER BY version")" = "1|${#v1}|28|60
2|$((${#v2} + 1))|28|60" ]
	printf '%s' "$v2" | admin A secret set pg.secret >/dev/null
}

@test "a copy of the PostgreSQL database with another KEK: refused at start naming the KEK; with the store's KEK it opens; a value moved to another row fails with one line" {
	local url
	url=$(pg_copy kekcopy)
	"$KEYSTRAP_SERVER" kek init other.kek >/dev/null
	jq --arg db "$url" --arg k "$PWD/other.kek" '.database = $db | .kek = $k' "$A_DIR/server.json" >copy.json
	run timeout 20 "$KEYSTRAP_SERVER" serve --config copy.json
	[ "$status" -eq 1 ]
	[ "$output" = "keystrap-server: cannot open the store 'postgresql://keystrap:***@127.0.0.1:$PG_PORT/kekcopy': its secrets are under KEK id $(kek_id_of "$A_DIR/kek"), and KEK '$PWD/other.kek' is id $(kek_id_of other.kek): not the store's KEK" ]
	# Twin: the store's own KEK opens every version.
	jq --arg k "$A_DIR/kek" '.kek = $k' copy.json >own.json
	run "$KEYSTRAP_SERVER" kek verify --config own.json
	[ "$status" -eq 0 ]
	# pg.secret's newest version takes version 1's value and wrapped key: one line, no value.
	pg_sql kekcopy "UPDATE secret_versions SET (ciphertext, wrapped_key, size) =
		(SELECT ciphertext, wrapped_key, size FROM secret_versions WHERE name = 'pg.secret' AND version = 1)
		WHERE name = 'pg.secret' AND version = (SELECT max(version) FROM secret_versions WHERE name = 'pg.secret')"
	run "$KEYSTRAP_SERVER" kek verify --config own.json
	[ "$status" -eq 1 ]
	[[ "$output" =~ ^"keystrap-server: secret pg.secret version "[0-9]+" does not decrypt under KEK '$A_DIR/kek' (id "[0-9a-f]{32}"): its row was altered, or moved from another secret or version"$ ]]
	pg_sql postgres 'DROP DATABASE kekcopy' >/dev/null
}

@test "PostgreSQL: a disk share stored through A is released through B inside the sealed payload; pg_dump holds no share" {
	local share hex vol=0b3f6f1e-4c1a-4d7e-9a55-2f6a1c9e8d01 out
	share=$(head -c 32 /dev/urandom | base64 -w0)
	hex=$(base64 -d <<<"$share" | xxd -p -c 64)
	admin A node approve "$EK" >/dev/null 2>&1 || true
	challenge_at A ch.json
	"$PEER" finish "$U" ch.json | jq -c --arg v "$vol" --arg s "$share" '. + {disk_share_put: {volume: $v, share: $s}}' >put.json
	out=$(post_at A /v1/attest/finish put.json)
	[ "$(status_of "$out")" = 200 ]
	challenge_at B ch.json
	"$PEER" finish "$U" ch.json | jq -c --arg v "$vol" '. + {disk_shares_get: [$v]}' >get.json
	out=$(post_at B /v1/attest/finish get.json)
	[ "$(status_of "$out")" = 200 ]
	body_of "$out" >result.json
	run "$PEER" open "$U" ch.json result.json
	[ "$status" -eq 0 ]
	[[ "$output" == *"disk.$vol=$(base64 -d <<<"$share" | sha256sum | cut -d' ' -f1)"* ]]
	[ "$(pg_sql keystrap "SELECT count(*), length(ciphertext), length(wrapped_key) FROM disk_shares WHERE volume = '$vol' GROUP BY 2, 3")" = "1|60|60" ]
	PGPASSFILE=$PG_DIR/pgpass "$PG_BIN/pg_dump" -h 127.0.0.1 -p "$PG_PORT" -U keystrap keystrap >dump.sql
	grep -q '^COPY public.disk_shares ' dump.sql
	! grep -qiF -e "$hex" -e "$share" dump.sql || false
	[[ "$(admin B audit export | jq -c 'select(.action == "disk-share-release")' | tail -1)" == *'"decision":"allow","reasons":"volume '"$vol"': share released in the payload sealed to this TPM"'* ]]
}

@test "kek rotate through A while A and B serve: A takes the new KEK at once; B, its KEK file not replaced yet, answers 503 naming it, and a node that retries gets through once it is" {
	local pid rc=0 old_id new_id
	old_id=$(kek_id_of "$A_DIR/kek")
	"$KEYSTRAP_SERVER" kek init "$A_DIR/kek.new" >/dev/null
	new_id=$(kek_id_of "$A_DIR/kek.new")
	cp -p "$A_DIR/kek.new" b.kek # what goes to B's machine
	run admin A kek rotate --new "$A_DIR/kek.new"
	[ "$status" -eq 0 ]
	[[ "${lines[0]}" == *" data keys re-wrapped from KEK id $old_id to KEK id $new_id" ]]
	rm -rf out && mkdir out
	run attest_at A
	[ "$status" -eq 0 ]
	[ -s out/secrets/pg.secret ]
	rm -rf out && mkdir out
	run attest_at B --retries 0
	[ "$status" -ne 0 ]
	[[ "$output" == *"(HTTP 503): secret 'pg.secret' is wrapped by a KEK this server does not hold (a KEK rotation not yet in place here)" ]]
	[ ! -e out/secrets ]
	# Retry-After 5: the node's next try comes after B's KEK file is replaced.
	attest_at B --retries 2 >retry.out 2>&1 &
	pid=$!
	sleep 2
	cp -p b.kek "$B_DIR/kek.tmp" && mv "$B_DIR/kek.tmp" "$B_DIR/kek"
	wait "$pid" || rc=$?
	[ "$rc" -eq 0 ] || { cat retry.out; return 1; }
	[ -s out/secrets/pg.secret ]
	[ "$(admin B kek verify | sed 's/.*(id \([0-9a-f]*\)).*/\1/')" = "$new_id" ]
}

@test "kek rotate killed (SIGKILL) at every statement it sends, every answer it reads and its rename: the PostgreSQL store opens with the old KEK or the new one, every secret with it; rotate run again finishes" {
	command -v strace >/dev/null || skip "strace is not installed"
	local d=$BATS_TEST_TMPDIR/rot url n sc count rc state kept=0 committed=0 finished=0 old_id new_id calls
	mkdir -p "$d"
	url=$(pg_copy kekrot)
	cp -p "$A_DIR/kek" "$d/kek"
	jq --arg db "$url" --arg k "$d/kek" '.database = $db | .kek = $k' "$A_DIR/server.json" >"$d/server.json"
	for i in 1 2 3 4 5; do
		printf 'rot-%s' "$i" | "$KEYSTRAP_SERVER" secret set "rot$((i % 2))" --config "$d/server.json" >/dev/null
	done
	count=$("$KEYSTRAP_SERVER" kek verify --config "$d/server.json" | sed 's/.*: //')
	# The points to kill at, in a rotation that succeeds: before each statement is sent (sendto),
	# before each answer is read (recvfrom: the COMMIT sent, its answer not read, among them),
	# and the rename.
	"$KEYSTRAP_SERVER" kek init "$d/kek.new" >/dev/null
	calls=$BATS_TEST_TMPDIR/calls.txt
	ASAN_OPTIONS=detect_leaks=0 strace -f -qq -o "$calls" -e trace=sendto,recvfrom,rename \
		"$KEYSTRAP_SERVER" kek rotate --new "$d/kek.new" --config "$d/server.json" >/dev/null
	mapfile -t points < <(for sc in sendto recvfrom rename; do seq -f "$sc %g" 1 "$(grep -cE "^[0-9]+ +$sc\(" "$calls")"; done)
	[ "$(printf '%s\n' "${points[@]}" | grep -c '^sendto ')" -ge $((count + 8)) ]
	for p in "${points[@]}"; do
		read -r sc n <<<"$p"
		# From whichever KEK the last round left in place to a fresh one.
		rm -f "$d/kek.new"
		"$KEYSTRAP_SERVER" kek init "$d/kek.new" >/dev/null
		old_id=$(kek_id_of "$d/kek") new_id=$(kek_id_of "$d/kek.new")
		jq --arg k "$d/kek.new" '.kek = $k' "$d/server.json" >"$d/new.json"
		rc=0
		ASAN_OPTIONS=detect_leaks=0 strace -f -qq -o /dev/null -e trace="$sc" -e inject="$sc:signal=SIGKILL:when=$n" \
			"$KEYSTRAP_SERVER" kek rotate --new "$d/kek.new" --config "$d/server.json" >out.txt 2>&1 || rc=$?
		[ "$rc" -eq 137 ] || { echo "$sc #$n: exit $rc: $(cat out.txt)"; return 1; }
		state=$(kek_rotation_check "$d" "$count" "$old_id" "$new_id") || { echo "$sc #$n: $state"; return 1; }
		case $state in
		old) kept=$((kept + 1)) ;;
		new) committed=$((committed + 1)) ;;
		*) finished=$((finished + 1)) ;;
		esac
	done
	echo "# ${#points[@]} kill points: $kept under the old KEK, $committed committed but not in place, $finished done" >&3
	[ "$kept" -gt 0 ] && [ "$committed" -gt 0 ]
	pg_sql postgres 'DROP DATABASE kekrot' >/dev/null
}

@test "operator rotate on PostgreSQL: the new key's signature joins the stored ones; a server with the new key set trusts the policy, one with the old set still does" {
	o=$OPERATOR_DIR
	operator_key "$o" op3
	cp "$A_DIR/server.json" rotated.json
	v=$(cat "$o/policy.version")
	policy_sign "$o" "$o/policy-v$v.json" op3
	before=$(pg_sql keystrap "SELECT signatures FROM policies WHERE version = $v")
	# Under-signed for the new set (op2 only): refused, the row as it was.
	run "$KEYSTRAP_SERVER" operator rotate --remove "$o/op1.pub" --add "$o/op3.pub" --config rotated.json
	[ "$status" -eq 1 ]
	[[ "$output" == *"would be signed by 1 of the required 2 keys of the new set"* ]]
	[ "$(pg_sql keystrap "SELECT signatures FROM policies WHERE version = $v")" = "$before" ]
	run "$KEYSTRAP_SERVER" operator rotate --remove "$o/op1.pub" --add "$o/op3.pub" \
		--signature "$o/policy-v$v.json.op3.sig" --config rotated.json
	[ "$status" -eq 0 ]
	[ "$(pg_sql keystrap "SELECT json_array_length(signatures::json) FROM policies WHERE version = $v")" -eq 3 ]
	run "$KEYSTRAP_SERVER" policy show --config rotated.json
	[[ "$output" == *"signed-by "*"op2.pub"*"signed-by "*"op3.pub"*"state in force"* ]]
	[[ "$output" != *"op1.pub"* ]]
	# The instances, still on op1 and op2, trust it as before.
	run "$KEYSTRAP_SERVER" policy show --config "$B_DIR/server.json"
	[[ "$output" == *"signed-by "*"op1.pub"*"signed-by "*"op2.pub"*"state in force"* ]]
}

@test "PostgreSQL: an inventory approved through A (nothing on a malformed line) admits its EK at its first attestation through B" {
	# The other TPM as a machine the registry never saw: its row goes, as if it were new.
	pg_sql keystrap "DELETE FROM nodes WHERE ek_hash = '$EK_OTHER'"
	run admin B node show "$EK_OTHER"
	[ "$status" -eq 1 ]
	[ "$output" = "keystrap-server: no node with EK hash $EK_OTHER" ]
	printf '# rack 3\n%s\n%s\n' "$EK_OTHER" "${EK_OTHER:0:63}" >inv.txt
	run admin A node approve --file inv.txt
	[ "$status" -eq 1 ]
	[ "$output" = "keystrap-server: inv.txt:3: '${EK_OTHER:0:63}' is not an EK hash (64 lower-case hex digits): nothing approved" ]
	[ "$(pg_sql keystrap "SELECT count(*) FROM nodes WHERE ek_hash = '$EK_OTHER'")" = 0 ]
	printf '# rack 3\n%s\n' "$EK_OTHER" >inv.txt
	run admin A node approve --file inv.txt --group web
	[ "$output" = "1 EKs approved from inv.txt (1 pre-approved: admitted at their first attestation)" ]
	KEYSTRAP_TCTI=$OTHER_TCTI run attest_at B
	[ "$output" = "keystrap: attested as node-${EK_OTHER:0:16}" ]
	serial=$(openssl x509 -in out/node.crt -noout -serial | cut -d= -f2)
	run admin A node show "node-${EK_OTHER:0:16}" --json
	[ "$(jq -r '[.ek_hash, .state, .group, (.cert_serial | ascii_upcase), (.attested_us > 0), .peer] | @tsv' <<<"$output")" = \
		"$EK_OTHER	approved	web	${serial^^}	true	" ]
	[ "$(jq -r '.history[0] | "\(.action) \(.decision)"' <<<"$output")" = "attest-finish allow" ]
	[[ "$(jq -r '[.history[] | select(.action == "node-approve")][0].reasons' <<<"$output")" == "pre-approved -> approved, group web, by operator:"* ]]
	run admin B node list --full
	[[ "$output" == *$'\n'"node-${EK_OTHER:0:16} "*" $EK_OTHER web "*"approved  20"* ]]
	admin A node approve "$EK_OTHER" --id other --group default >/dev/null
}

@test "PostgreSQL: a store from before gains the new columns and indexes when opened; its nodes keep their state" {
	url=$(pg_copy legacy)
	pg_sql legacy "ALTER TABLE nodes DROP COLUMN attested_us, DROP COLUMN cert_serial, DROP COLUMN cert_not_after; DROP INDEX nodes_requested; DROP INDEX audit_ek; DROP INDEX audit_shares; ALTER TABLE certificates DROP COLUMN not_before"
	sed "s|\"database\":\"[^\"]*\"|\"database\":\"$url\"|" "$A_DIR/server.json" >legacy.json
	run "$KEYSTRAP_SERVER" node list --json --config legacy.json
	[ "$status" -eq 0 ]
	[ "$(jq -r --arg ek "$EK" '.[] | select(.ek_hash == $ek) | "\(.state) \(.node_id) \(.attested_us)"' <<<"$output")" = "approved node1.example null" ]
	[ "$(pg_sql legacy "SELECT string_agg(column_name, ',' ORDER BY column_name) FROM information_schema.columns WHERE table_name = 'nodes' AND (column_name LIKE 'cert%' OR column_name = 'attested_us')")" = \
		"attested_us,cert_not_after,cert_serial" ]
	[ "$(pg_sql legacy "SELECT count(*) FROM information_schema.columns WHERE table_name = 'certificates' AND column_name = 'not_before'")" = 1 ]
	[ "$(pg_sql legacy "SELECT count(*) FROM pg_indexes WHERE indexname IN ('nodes_requested', 'audit_ek', 'audit_shares')")" = 3 ]
	pg_sql postgres "DROP DATABASE legacy" >/dev/null
}

# soft_instance NAME EXTRA: an instance for simulated nodes (soft_server_config) on the
# database "storm" of the same cluster (its own policy: what the simulated nodes quote).
soft_instance() {
	local d=$BATS_TEST_TMPDIR/$1
	mkdir -p "$d"
	cp "$SRV_DIR"/{ca,tls}.{crt,key} "$BATS_TEST_TMPDIR"/ek-ca.{crt,key} "$d/"
	cp -p "$SRV_DIR/kek" "$d/kek"
	SRV_PORT=$(free_port)
	soft_server_config "$d" "${PG_URL%/keystrap}/storm" "$2" || return 1
	server_start "$d" || return 1
	echo "$SRV_PORT" >"$d/port"
}

# soft_storm NAME NODES: server-load --storm against instance NAME, every node approved there.
soft_storm() {
	local d=$BATS_TEST_TMPDIR/$1
	"$BATS_TEST_DIRNAME/../../build/bench/server-load" --url "https://127.0.0.1:$(cat "$d/port")" --ca "$d/ca.crt" \
		--ek-ca-cert "$d/ek-ca.crt" --ek-ca-key "$d/ek-ca.key" --nodes "$2" --concurrency "$2" --storm \
		--approve-batch --approve "$KEYSTRAP_SERVER node approve --config $d/server.json" --duration 50 \
		--serials "$BATS_TEST_TMPDIR/$1.serials"
}

@test "two instances under one storm each on one database: every node attests, one record per certificate, the log does not fork" {
	[ -x "$BATS_TEST_DIRNAME/../../build/bench/server-load" ] || skip "build/bench/server-load is not built"
	pg_sql postgres 'CREATE DATABASE storm' >/dev/null
	soft_ek_ca "$BATS_TEST_TMPDIR"
	soft_instance c '"max_connections_per_address":4096,"max_queue_delay":50,"retry_after":1'
	soft_instance d '"max_connections_per_address":4096,"max_queue_delay":50,"retry_after":1'
	soft_storm c 120 >c.out 2>&1 &
	local pc=$!
	soft_storm d 120 >d.out 2>&1 || { cat d.out; return 1; }
	wait "$pc" || { cat c.out; return 1; }
	cat c.out d.out
	grep -q ' 120 attested in' c.out
	grep -q ' 120 attested in' d.out
	"$KEYSTRAP_SERVER" audit export --config "$BATS_TEST_TMPDIR/c/server.json" >audit.jsonl
	[ "$(jq -s '[.[] | select(.action == "attest-finish" and .decision == "allow")] | length' audit.jsonl)" -eq 240 ]
	# Seq 1..N with no gap or repeat: one chain, whichever instance appended.
	[ "$(jq -s '[.[].seq] | (. == [range(1; length + 1)])' audit.jsonl)" = true ]
	cat c.serials d.serials | sort | uniq -d >dup
	[ ! -s dup ]
	while read -r serial; do
		grep -q "$serial" audit.jsonl || { echo "no record names $serial"; return 1; }
	done < <(cat c.serials d.serials)
	run "$KEYSTRAP_SERVER" audit verify --config "$BATS_TEST_TMPDIR/d/server.json"
	echo "$output"
	[ "$status" -eq 0 ]
}

# copy_instance NAME URL [JQ]: a server like A (its keys, its KEK) on the database at URL, in
# $BATS_TEST_TMPDIR/NAME (NAME c or d: teardown stops it), not started; COPY_PORT its port.
copy_instance() {
	local d=$BATS_TEST_TMPDIR/$1
	mkdir -p "$d"
	cp "$A_DIR/ca.crt" "$d/"
	COPY_PORT=$(free_port)
	jq --arg u "$2" --arg l "127.0.0.1:$COPY_PORT" '.database = $u | .listen = $l | '"${3:-.}" "$A_DIR/server.json" >"$d/server.json"
}

# witness_at A|B|PORT DIR [HELD]: a witnessing attestation (the log key pinned) through an
# instance, presenting the checkpoint HELD; the reply's checkpoint kept in DIR.
witness_at() {
	local port=$1
	[ "$1" = A ] && port=$A_PORT
	[ "$1" = B ] && port=$B_PORT
	mkdir -p "$2"
	"$KEYSTRAP" attest --server "https://127.0.0.1:$port" --ca "$SRV_DIR/ca.crt" --out-dir "$2" \
		--log-key "$(cat "$OPERATOR_DIR/log.vkey")" ${3:+--checkpoint "$3"}
}

cp_size() { python3 "$BATS_TEST_DIRNAME/../lib/tlog.py" checkpoint "$1" | cut -d' ' -f2; }

@test "a witnessing node attesting through A and B in turn: each reply's checkpoint extends the one it held, whichever instance signed either; audit verify passes from the first" {
	local i at held= size prev=0 out
	# A fresh boot: the measurement log each attestation adds to stays under max_body.
	swtpm_reboot
	for i in 1 2 3 4 5 6; do
		at=$([ $((i % 2)) = 1 ] && echo A || echo B)
		# The other instance appends meanwhile: the next checkpoint covers its records too.
		out=$(post_at "$([ "$at" = A ] && echo B || echo A)" /v1/attest/start "$BATS_FILE_TMPDIR/start.json")
		[ "$(status_of "$out")" = 200 ]
		run witness_at "$at" "w$i" "$held"
		echo "$i through $at: $output"
		[ "$status" -eq 0 ]
		[ "$output" = "keystrap: attested as node1.example" ]
		size=$(cp_size "w$i/checkpoint")
		[ "$size" -gt "$prev" ]
		# Its own record is in it: the newest allowed finish, from this instance.
		seq=$(admin A audit export | jq -r 'select(.action == "attest-finish" and .decision == "allow") | .seq' | tail -n1)
		[ "$size" -ge "$seq" ]
		prev=$size held=w$i/checkpoint
	done
	# The first checkpoint (A's) against the shared log as B reads it now: a prefix, no fork.
	run admin B audit verify --since w1/checkpoint
	[ "$status" -eq 0 ]
	[[ "${lines[0]}" == "audit log intact: "* ]]
}

@test "a witnessing node holding a checkpoint of the shared log refuses a copy of it that lost its newest records, through an instance on the copy; the live instances extend it" {
	local url held size
	# A fresh boot: the measurement log each attestation adds to stays under max_body.
	swtpm_reboot
	mkdir -p w0
	witness_at A w0
	held=w0/checkpoint
	size=$(cp_size "$held")
	url=$(pg_copy cut)
	pg_sql cut "DELETE FROM audit WHERE seq > $((size - 3)); DELETE FROM audit_tree; DELETE FROM checkpoint" >/dev/null
	copy_instance c "$url"
	SRV_PORT=$COPY_PORT server_start "$BATS_TEST_TMPDIR/c"
	grep -q "no signed checkpoint: signing one now" "$BATS_TEST_TMPDIR/c/server.log"
	run witness_at "$COPY_PORT" cut-out "$held"
	[ "$status" -eq 1 ]
	[[ "$output" =~ ^"keystrap: the server gave no consistency proof from the checkpoint this node holds ($size records) to its new one ("[0-9]+" records): its log lost records or forked"$ ]]
	[ ! -e cut-out/checkpoint ]
	# The twin: the shared log, through either instance, extends what the node holds.
	run witness_at B b-out "$held"
	[ "$status" -eq 0 ]
	run witness_at A a-out b-out/checkpoint
	[ "$status" -eq 0 ]
}

@test "PostgreSQL: policy rows deleted bring back no older policy: a server on that database refuses admission naming both versions, and audit verify says so" {
	local url v port
	# A fresh boot: the measurement log each attestation adds to stays under max_body.
	swtpm_reboot
	v=$(pg_sql keystrap 'SELECT max(version) FROM policies')
	[ "$v" -ge 2 ]
	url=$(pg_copy rolled)
	pg_sql rolled "DELETE FROM policies WHERE version = $v" >/dev/null
	copy_instance c "$url"
	run "$KEYSTRAP_SERVER" audit verify --config "$BATS_TEST_TMPDIR/c/server.json"
	[ "$status" -eq 1 ]
	[[ "$output" == "keystrap-server: audit log broken: the policy in the store (version $((v - 1))) is not the one record "*" says was loaded last (version $v): policy rows were removed or replaced" ]]
	SRV_PORT=$COPY_PORT server_start "$BATS_TEST_TMPDIR/c"
	run curl -s --cacert "$SRV_DIR/ca.crt" "https://127.0.0.1:$COPY_PORT/healthz"
	[[ "$output" == *"is not the one the audit log says was loaded last (version $v, record "*"): policy rows were removed or replaced"* ]]
	run attest_at A
	[ "$output" = "keystrap: attested as node1.example" ]
	# The twin: the shared database's policy is the logged one, through either instance.
	for port in "$A_PORT" "$B_PORT"; do
		run curl -s --cacert "$SRV_DIR/ca.crt" "https://127.0.0.1:$port/healthz"
		[ "$output" = ok ]
	done
	run admin B audit verify
	[ "$status" -eq 0 ]
}

# lock_holder SECONDS: a psql session elsewhere holding the store's lock that long (in the
# background, $! its PID); returns once it holds it.
lock_holder() {
	pg_sql keystrap "SELECT pg_advisory_lock(7738725071487918448); SELECT pg_sleep($1)" >/dev/null &
	for _ in $(seq 100); do
		[ "$(pg_sql keystrap "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted")" = 1 ] && return 0
		sleep 0.05
	done
	return 1
}

# waiting_written: how many server sessions wait for the store's lock having written already
# (a transaction id: the request's rows are in, its verification done).
waiting_written() {
	pg_sql keystrap "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'keystrap-server' AND
		wait_event_type = 'Lock' AND wait_event = 'advisory' AND backend_xid IS NOT NULL"
}

# other_node: the second swtpm's node approved (as "other"), and its start in start-other.json.
other_node() {
	KEYSTRAP_TCTI=$OTHER_TCTI attest_at B >/dev/null 2>&1 || true
	admin A node approve "$EK_OTHER" --id other >/dev/null 2>&1 || admin A node approve other --reinstate >/dev/null
	KEYSTRAP_TCTI=$OTHER_TCTI "$PEER" start "$U" >start-other.json
}

@test "verification holds no lock: while a session elsewhere holds the store's lock, finishes at A and B are both verified and their nonces spent, each waiting only to append its record; answered 200 once it is free" {
	local holder pa pb n sa sb out
	other_node
	challenge_at A cha.json
	"$PEER" finish "$U" cha.json >fa.json
	out=$(post_at B /v1/attest/start start-other.json)
	[ "$(status_of "$out")" = 200 ]
	body_of "$out" >chb.json
	KEYSTRAP_TCTI=$OTHER_TCTI "$PEER" finish "$U" chb.json >fb.json
	sa=$(jq -r .session cha.json) sb=$(jq -r .session chb.json)
	lock_holder 4
	holder=$!
	post_at A /v1/attest/finish fa.json >fa.out &
	pa=$!
	post_at B /v1/attest/finish fb.json >fb.out &
	pb=$!
	for _ in $(seq 30); do
		n=$(waiting_written)
		[ "$n" = 2 ] && break
		sleep 0.05
	done
	pg_sql keystrap "SELECT application_name, wait_event_type, wait_event, backend_xid, left(query, 50) FROM pg_stat_activity
		WHERE backend_type = 'client backend' AND application_name = 'keystrap-server'"
	# Both instances verified at once, the lock held by neither: each spent its nonce (the row
	# its uncommitted UPDATE holds) and waits for the lock only to append its record.
	[ "$n" = 2 ]
	run pg_sql keystrap "SELECT 1 FROM challenges WHERE session IN ('$sa', '$sb') FOR UPDATE NOWAIT"
	[ "$status" -ne 0 ]
	[[ "$output" == *"could not obtain lock on row"* ]]
	[ "$(pg_sql keystrap "SELECT sum(used) FROM challenges WHERE session IN ('$sa', '$sb')")" = 0 ]
	wait "$pa"
	wait "$pb"
	wait "$holder"
	[ "$(statuses fa.out fb.out | tr '\n' ' ')" = "200 200 " ]
	[ "$(pg_sql keystrap "SELECT sum(used) FROM challenges WHERE session IN ('$sa', '$sb')")" = 2 ]
	run admin A audit verify
	[ "$status" -eq 0 ]
}

@test "the lock held elsewhere past lock_timeout: a verified finish waiting to append its record answers 503 and nothing stands; its nonce unspent, the same finish then passes" {
	local holder t0 t1 before session
	before=$(records)
	challenge_at A ch.json
	"$PEER" finish "$U" ch.json >finish.json
	session=$(jq -r .session ch.json)
	lock_holder 8
	holder=$!
	t0=$(date +%s%N)
	run post_at A /v1/attest/finish finish.json
	t1=$(date +%s%N)
	[ "$(status_of "$output")" = 503 ]
	[ "$(body_of "$output")" = '{"error":"store unavailable: the decision could not be recorded"}' ]
	[ $(((t1 - t0) / 1000000)) -ge 4500 ]
	wait "$holder"
	[ "$(pg_sql keystrap "SELECT used FROM challenges WHERE session = '$session'")" = 0 ]
	[ "$(records)" = $((before + 1)) ]
	run post_at B /v1/attest/finish finish.json
	[ "$(status_of "$output")" = 200 ]
	[ "$(records)" = $((before + 2)) ]
}
