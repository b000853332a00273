#!/usr/bin/env bats
# The operator's fleet workflow (issue 16 item 4) on a real server (SQLite store) with real
# swtpm nodes: EKs approved from an inventory before they ever asked, approve/revoke/show by
# EK hash or node id, node list with a header, last attestation and certificate expiry, --json
# parsed with jq field by field. Every refusal has its positive twin.

load ../lib/swtpm
load ../lib/server

setup_file() {
	swtpm_start "$BATS_FILE_TMPDIR/other"
	export OTHER_DIR=$SWTPM_DIR OTHER_PORT=$SWTPM_PORT OTHER_TCTI=$KEYSTRAP_TCTI
	swtpm_start
	export SRV_DIR=$BATS_FILE_TMPDIR/srv SRV_PORT
	SRV_PORT=$(free_port)
	server_pki "$SRV_DIR"
	server_config "$SRV_DIR" "0 7"
	server_start "$SRV_DIR"
	export EK EK_OTHER
	EK=$("$KEYSTRAP" status --ek)
	EK_OTHER=$(KEYSTRAP_TCTI=$OTHER_TCTI "$KEYSTRAP" status --ek)
}

teardown_file() {
	server_stop "$SRV_DIR" || true
	swtpm_stop
	SWTPM_DIR=$OTHER_DIR SWTPM_PORT=$OTHER_PORT swtpm_stop
}

setup() {
	cd "$BATS_TEST_TMPDIR"
	mkdir -p out
}

attest() {
	"$KEYSTRAP" attest --server "https://127.0.0.1:$SRV_PORT" --ca "$SRV_DIR/ca.crt" --out-dir out "$@"
}

# The registry as node list --json shows it: "STATE NODE-ID GROUP" for one EK.
row() {
	srv node list --json | jq -r --arg ek "$1" '.[] | select(.ek_hash == $ek) | "\(.state) \(.node_id) \(.group)"'
}

@test "an inventory file with a malformed line approves nothing and names the line and its value" {
	printf '# rack 12, from the vendor manifest\n%s  # web-1\n\n%s\nnot-an-ek\n' "$EK" "$EK_OTHER" >inv.txt
	run srv node approve --file inv.txt --group web
	[ "$status" -eq 1 ]
	[ "$output" = "keystrap-server: inv.txt:5: 'not-an-ek' is not an EK hash (64 lower-case hex digits): nothing approved" ]
	# Upper case is not the form the server prints: refused too, so two spellings never make two nodes.
	printf '%s\n' "${EK^^}" >upper.txt
	run srv node approve --file upper.txt
	[ "$output" = "keystrap-server: upper.txt:1: '${EK^^}' is not an EK hash (64 lower-case hex digits): nothing approved" ]
	run srv node approve --file /nonexistent
	[ "$status" -eq 1 ]
	[ "$output" = "keystrap-server: cannot read '/nonexistent': No such file or directory" ]
	run srv node approve --file inv.txt --group 'bad group'
	[ "$output" = "keystrap-server: 'bad group' is not a group name ([A-Za-z0-9._-], at most 32)" ]
	# Nothing was approved, nothing recorded.
	[ "$(srv node list --json)" = "[]" ]
	[[ "$(srv audit export)" != *node-approve* ]]
	# A file and an EK at once, or --reinstate with a file: usage errors.
	run srv node approve "$EK" --file inv.txt
	[ "$status" -eq 2 ]
	run srv node approve --file inv.txt --reinstate
	[ "$status" -eq 2 ]
}

@test "a pre-approved EK is admitted at its first attestation; an EK not in the inventory waits as pending" {
	printf '# rack 12\n%s  # web-1\n\n%s\n' "$EK" "$EK" >inv.txt
	run srv node approve --file inv.txt --group web
	[ "$status" -eq 0 ]
	[ "$output" = "1 EKs approved from inv.txt (1 pre-approved: admitted at their first attestation)" ]
	[ "$(row "$EK")" = "approved node-${EK:0:16} web" ]
	# Never seen: no peer, no attestation, no certificate.
	[ "$(srv node show "$EK" --json | jq -c '[.peer, .attested_us, .cert_serial, .cert_not_after, .history[0].action]')" = \
		'[null,null,null,null,"node-approve"]' ]
	run attest
	[ "$status" -eq 0 ]
	[ "$output" = "keystrap: attested as node-${EK:0:16}" ]
	# The negative twin: the other TPM is in no inventory.
	KEYSTRAP_TCTI=$OTHER_TCTI run attest
	[ "$status" -eq 5 ]
	[ "$output" = "keystrap: the server refused the attestation start (HTTP 403): node is not approved: enrollment request recorded for EK $EK_OTHER" ]
	[ "$(row "$EK_OTHER")" = "requested null default" ]
	# The same inventory again changes nothing and is no error.
	run srv node approve --file inv.txt
	[ "$output" = "1 EKs approved from inv.txt (0 pre-approved: admitted at their first attestation)" ]
}

@test "node show --json: the certificate the node holds (serial, expiry), last attestation, history with decisions" {
	rm -rf out && mkdir out
	before=$(date +%s)
	attest >/dev/null
	serial=$(openssl x509 -in out/node.crt -noout -serial | cut -d= -f2)
	end=$(date -d "$(openssl x509 -in out/node.crt -noout -enddate | cut -d= -f2)" +%s)
	run srv node show "$EK" --json
	[ "$status" -eq 0 ]
	[ "$(jq -r .ek_hash <<<"$output")" = "$EK" ]
	[ "$(jq -r .node_id <<<"$output")" = "node-${EK:0:16}" ]
	[ "$(jq -r .state <<<"$output")" = approved ]
	[ "$(jq -r .group <<<"$output")" = web ]
	[ "$(jq -r '.cert_serial | ascii_upcase' <<<"$output")" = "${serial^^}" ]
	[ "$(jq -r .cert_not_after <<<"$output")" = "$end" ]
	[ "$(jq -r '.attested_us / 1000000 | floor' <<<"$output")" -ge "$before" ]
	[ "$(jq -r '.reset_count >= 0' <<<"$output")" = true ]
	# Newest first: this attestation (with its serial), the earlier one, the pre-approval last.
	[ "$(jq -r '.history[0] | "\(.action) \(.decision) \(.serial | ascii_upcase)"' <<<"$output")" = "attest-finish allow ${serial^^}" ]
	[ "$(jq -r '[.history[].action] | last' <<<"$output")" = node-approve ]
	[ "$(jq -r '[.history[] | select(.decision != "allow")] | length' <<<"$output")" = 0 ]
	# By node id, the same node; the text form says the same.
	[ "$(srv node show "node-${EK:0:16}" --json | jq -r .ek_hash)" = "$EK" ]
	run srv node show "node-${EK:0:16}"
	[ "${lines[0]}" = "id:            node-${EK:0:16}" ]
	[ "${lines[1]}" = "ek:            $EK" ]
	[[ "$output" == *$'\n'"certificate:   ${serial,,}, expires "*" UTC"$'\n'* || "$output" == *$'\n'"certificate:   ${serial^^}, expires "*" UTC"$'\n'* ]]
	[[ "$output" == *"attest-finish  allow  certificate "* ]]
	# A refused attestation is in the history with its reason.
	KEYSTRAP_TCTI=$OTHER_TCTI attest >/dev/null 2>&1 || true
	run srv node show "$EK_OTHER" --json
	[ "$(jq -r '.history[0] | "\(.action) \(.decision) \(.reasons)"' <<<"$output")" = \
		"attest-start deny node is not approved yet: its enrollment request (EK $EK_OTHER) awaits an operator" ]
	[ "$(jq -r '.history[0].serial' <<<"$output")" = null ]
}

@test "node show and revoke of an unknown node or EK: one line, exit 1; neither an EK nor an id: one line" {
	zero=$(printf '%064d' 0)
	run srv node show "$zero"
	[ "$status" -eq 1 ]
	[ "$output" = "keystrap-server: no node with EK hash $zero" ]
	run srv node show nosuch.example --json
	[ "$status" -eq 1 ]
	[ "$output" = "keystrap-server: no node with id 'nosuch.example'" ]
	run srv node revoke nosuch.example
	[ "$status" -eq 1 ]
	[ "$output" = "keystrap-server: no node with id 'nosuch.example'" ]
	run srv node approve nosuch.example
	[ "$status" -eq 1 ]
	[ "$output" = "keystrap-server: no node with id 'nosuch.example'" ]
	run srv node show 'Not An Id'
	[ "$status" -eq 1 ]
	[ "$output" = "keystrap-server: 'Not An Id' is neither an EK hash (64 lower-case hex digits) nor a node id" ]
	run srv node show
	[ "$status" -eq 2 ]
	# An id that reads as an EK hash would make "node show ID" ambiguous: refused.
	run srv node approve "$EK_OTHER" --id "$(printf '%064d' 5)"
	[ "$status" -eq 1 ]
	[ "$output" = "keystrap-server: '$(printf '%064d' 5)' is an EK hash, not a node id" ]
	# The positive twin: what exists is found.
	run srv node show "$EK_OTHER"
	[ "$status" -eq 0 ]
}

@test "approve and revoke take the node id; approving a revoked node is refused and recorded until --reinstate" {
	run srv node approve "$EK_OTHER" --id other.example
	[ "$output" = "$EK_OTHER approved other.example" ]
	run srv node revoke other.example
	[ "$status" -eq 0 ]
	[ "$output" = "$EK_OTHER revoked other.example" ]
	KEYSTRAP_TCTI=$OTHER_TCTI run attest
	[ "$output" = "keystrap: the server refused the attestation start (HTTP 403): node is revoked" ]
	for arg in other.example "$EK_OTHER"; do
		run srv node approve "$arg"
		[ "$status" -eq 1 ]
		[ "$output" = "keystrap-server: node other.example (EK $EK_OTHER) is revoked: approving it again takes --reinstate" ]
	done
	# In an inventory too: the whole file is refused, naming the line; the other EK in it is untouched.
	printf '%s\n%s\n' "$(printf '%064d' 7)" "$EK_OTHER" >inv.txt
	run srv node approve --file inv.txt
	[ "$status" -eq 1 ]
	[ "$output" = "keystrap-server: inv.txt:2: node other.example (EK $EK_OTHER) is revoked: approving it again takes --reinstate: nothing approved" ]
	run srv node show "$(printf '%064d' 7)"
	[ "$status" -eq 1 ]
	[ "$(row "$EK_OTHER")" = "revoked other.example default" ]
	[ "$(srv audit export | jq -s '[.[] | select(.action == "node-approve" and .decision == "deny" and .ek_hash == "'"$EK_OTHER"'")] | length')" = 3 ]
	# --reinstate only for what is revoked.
	run srv node approve "$EK" --reinstate
	[ "$status" -eq 1 ]
	[ "$output" = "keystrap-server: --reinstate: node node-${EK:0:16} (EK $EK) is approved, not revoked" ]
	run srv node approve other.example --reinstate
	[ "$output" = "$EK_OTHER approved other.example" ]
	KEYSTRAP_TCTI=$OTHER_TCTI run attest
	[ "$output" = "keystrap: attested as other.example" ]
}

@test "node list: a header, id, short EK (full with --full), group, state, last attested, certificate expiry" {
	run srv node list
	[ "$status" -eq 0 ]
	[ "${lines[0]}" = "ID                       EK               GROUP        STATE     LAST ATTESTED           CERT EXPIRES" ]
	[ "${#lines[@]}" -eq 3 ]
	[[ "${lines[1]}" =~ ^node-${EK:0:16}\ +${EK:0:16}\ web\ +approved\ +20[0-9-]+\ [0-9:]+\ UTC\ 20[0-9-]+\ [0-9:]+\ UTC$ ]]
	[[ "${lines[2]}" =~ ^other.example\ +${EK_OTHER:0:16}\ default\ +approved\ +20 ]]
	run srv node list --full
	[[ "${lines[0]}" == "ID                       EK                                                               GROUP "* ]]
	[[ "${lines[1]}" == "node-${EK:0:16} "*" $EK web "* ]]
	# --json: every node, full EK, the certificate's expiry in Unix seconds.
	run srv node list --json
	[ "$(jq length <<<"$output")" = 2 ]
	[ "$(jq -r '.[0] | [.ek_hash, .node_id, .group, .state, (.attested_us > 0), (.cert_not_after > now), (.cert_serial | length > 0)] | @tsv' <<<"$output")" = \
		"$EK	node-${EK:0:16}	web	approved	true	true	true" ]
	run srv node list --id x
	[ "$status" -eq 2 ]
	run srv node list --reinstate
	[ "$status" -eq 2 ]
}

@test "a database from before gains the new columns when opened; its nodes keep their state" {
	d=$BATS_TEST_TMPDIR/old
	mkdir -p "$d"
	sqlite3 "$d/keystrap.db" "CREATE TABLE nodes (ek_hash TEXT PRIMARY KEY, node_id TEXT UNIQUE,
		state TEXT NOT NULL CHECK (state IN ('requested','approved','revoked')), requested_us INTEGER NOT NULL,
		changed_us INTEGER NOT NULL, peer TEXT NOT NULL, reset_count INTEGER NOT NULL DEFAULT -1,
		restart_count INTEGER NOT NULL DEFAULT -1, grp TEXT NOT NULL DEFAULT 'default');
		INSERT INTO nodes VALUES ('$EK', 'old.example', 'approved', 1, 1, '127.0.0.1:1', 3, 4, 'web');
		CREATE TABLE certificates (serial TEXT PRIMARY KEY, ek_hash TEXT NOT NULL, not_after INTEGER NOT NULL);
		INSERT INTO certificates VALUES ('0a', '$EK', 5);"
	chmod 600 "$d/keystrap.db"
	sed "s|\"database\":\"[^\"]*\"|\"database\":\"$d/keystrap.db\"|" "$SRV_DIR/server.json" >"$d/server.json"
	run "$KEYSTRAP_SERVER" node list --json --config "$d/server.json"
	[ "$status" -eq 0 ]
	[ "$(jq -c '.[0] | [.node_id, .state, .group, .reset_count, .attested_us, .cert_serial]' <<<"$output")" = '["old.example","approved","web",3,null,null]' ]
	[ "$(sqlite3 "$d/keystrap.db" "SELECT group_concat(name) FROM pragma_table_info('nodes') WHERE name LIKE '%att%' OR name LIKE 'cert%'")" = \
		"attested_us,cert_serial,cert_not_after" ]
	# The certificates kept before their notBefore was: it reads 0 (unknown).
	[ "$(sqlite3 "$d/keystrap.db" "SELECT serial, not_before, not_after FROM certificates")" = "0a|0|5" ]
	[ "$(sqlite3 "$d/keystrap.db" "SELECT count(*) FROM sqlite_master WHERE name IN ('nodes_requested', 'audit_ek', 'audit_shares')")" = 3 ]
	# Opened again: nothing added twice.
	run "$KEYSTRAP_SERVER" node list --config "$d/server.json"
	[ "$status" -eq 0 ]
}

@test "opening a store that has every column takes no writer lock: node list answers while another process writes" {
	# Another writer (as a server's batch would be) holds the database's write lock for 20 s.
	python3 -c 'import sqlite3, sys, time
c = sqlite3.connect(sys.argv[1], isolation_level=None)
c.execute("BEGIN IMMEDIATE")
open(sys.argv[2], "w").close()
time.sleep(20)' "$SRV_DIR/keystrap.db" locked &
	pid=$!
	for _ in $(seq 100); do [ -e locked ] && break; sleep 0.1; done
	[ -e locked ]
	t0=$(date +%s%N)
	run srv node list --json
	t1=$(date +%s%N)
	kill "$pid"
	wait "$pid" 2>/dev/null || true
	[ "$status" -eq 0 ]
	[ "$(jq -r type <<<"$output")" = array ]
	# Well under the 5 s the store waits for a writer (a lock taken at open would wait it out, then fail).
	[ $(((t1 - t0) / 1000000)) -lt 2500 ]
}

@test "10,000 nodes: node list, --json and node show answer fast (figures in the log)" {
	d=$BATS_TEST_TMPDIR/big
	mkdir -p "$d"
	sed "s|\"database\":\"[^\"]*\"|\"database\":\"$d/keystrap.db\"|" "$SRV_DIR/server.json" >"$d/server.json"
	"$KEYSTRAP_SERVER" node list --config "$d/server.json" >/dev/null
	# Distinct first digits (an odd multiplier is a bijection mod 2^32), so distinct default ids.
	seq 10000 | awk '{ printf "%08x%056x\n", ($1 * 2654435761) % 4294967296, $1 }' >inv.txt
	t0=$(date +%s%N)
	run "$KEYSTRAP_SERVER" node approve --file inv.txt --config "$d/server.json"
	t1=$(date +%s%N)
	[ "$output" = "10000 EKs approved from inv.txt (10000 pre-approved: admitted at their first attestation)" ]
	"$KEYSTRAP_SERVER" node list --config "$d/server.json" >list.txt
	t2=$(date +%s%N)
	"$KEYSTRAP_SERVER" node list --json --config "$d/server.json" >list.json
	t3=$(date +%s%N)
	"$KEYSTRAP_SERVER" node show "$(sed -n 5000p inv.txt)" --json --config "$d/server.json" >show.json
	t4=$(date +%s%N)
	[ "$(wc -l <list.txt)" -eq 10001 ]
	[ "$(jq length list.json)" -eq 10000 ]
	[ "$(jq -r .node_id show.json)" = "node-$(sed -n 5000p inv.txt | cut -c1-16)" ]
	echo "# approve --file 10000: $(((t1 - t0) / 1000000)) ms, list: $(((t2 - t1) / 1000000)) ms, list --json: $(((t3 - t2) / 1000000)) ms, show: $(((t4 - t3) / 1000000)) ms" >&3
	# Under the sanitizers on a shared 2-core machine: generous bounds, still far from a scan per row.
	[ $(((t2 - t1) / 1000000)) -lt 5000 ]
	[ $(((t4 - t3) / 1000000)) -lt 2000 ]
}
