#!/usr/bin/env bats
# keystrap-server's dashboard (issue 16 item 1) as an operator sees it: a real server over a
# real swtpm with admin_listen on a Unix socket, read with curl --unix-socket and with a real
# headless Chromium (through a socat bridge from a loopback port to the socket, as an operator
# would from their desk): screenshots at desktop and phone widths, and what the rendered DOM
# says: a revoked node shows as revoked, an expired policy as the cause of refusals, and a
# node id or reason carrying <script> is text, not an element.

load ../lib/swtpm
load ../lib/server
load ../lib/postgres

PEER=$BATS_TEST_DIRNAME/../../build/asan/attest-peer

setup_file() {
	command -v chromium >/dev/null || skip "chromium is not installed (tools/install-deps.sh)"
	command -v socat >/dev/null || skip "socat is not installed (tools/install-deps.sh)"
	swtpm_start
	# A socket path must fit in 108 bytes: its own short directory.
	export SRV_DIR=$BATS_FILE_TMPDIR/srv SRV_PORT ADMIN_DIR ADMIN BRIDGE_PORT U EK
	ADMIN_DIR=$(mktemp -d /tmp/ksdash.XXXXXX)
	ADMIN=$ADMIN_DIR/admin.sock
	SRV_PORT=$(free_port)
	server_pki "$SRV_DIR"
	server_config "$SRV_DIR" "0 7" "\"admin_listen\":\"unix:$ADMIN\""
	server_start "$SRV_DIR"
	EK=$(ek_hash)
	U=$(head -c 32 /dev/urandom | xxd -p -c 64)
	"$PEER" start "$U" >"$BATS_FILE_TMPDIR/start.json"
	BRIDGE_PORT=$(free_port)
	socat "TCP-LISTEN:$BRIDGE_PORT,bind=127.0.0.1,fork,reuseaddr" "UNIX-CONNECT:$ADMIN" 2>/dev/null &
	echo $! >"$ADMIN_DIR/socat.pid"
}

teardown_file() {
	[ ! -f "$ADMIN_DIR/socat.pid" ] || kill "$(cat "$ADMIN_DIR/socat.pid")" 2>/dev/null || true
	server_stop "$SRV_DIR" || true
	swtpm_stop
	[ -z "${ADMIN_DIR:-}" ] || rm -rf "$ADMIN_DIR"
}

setup() {
	cd "$BATS_TEST_TMPDIR"
}

# A test's own servers, their bridges and PostgreSQL, left running by a failure.
teardown() {
	local f
	for f in "$BATS_TEST_TMPDIR"/*/socat.pid; do
		[ ! -e "$f" ] || kill "$(cat "$f")" 2>/dev/null || true
	done
	servers_stop_under "$BATS_TEST_TMPDIR"
	[ -z "${PG_PID:-}" ] || pg_stop
}

# admin PATH [CURL-ARGS...]: the page through the admin socket; prints the body, then the status.
admin() {
	local p=$1
	shift
	curl -s --unix-socket "$ADMIN" -w '\n%{http_code}' "$@" "http://localhost$p"
}

# dom PATH: the DOM Chromium builds from the page (through the bridge), serialised.
dom() {
	chromium --headless=new --no-sandbox --disable-gpu --user-data-dir="$BATS_TEST_TMPDIR/chromium" \
		--dump-dom "http://127.0.0.1:$BRIDGE_PORT$1" 2>/dev/null
}

# shot PATH FILE WIDTH HEIGHT: a screenshot of the page at that window size.
shot() {
	chromium --headless=new --no-sandbox --disable-gpu --user-data-dir="$BATS_TEST_TMPDIR/chromium" \
		--hide-scrollbars --window-size="$3,$4" --screenshot="$2" "http://127.0.0.1:$BRIDGE_PORT$1" >/dev/null 2>&1
}

# png_size FILE: "WIDTH HEIGHT" from its IHDR, or nothing when it is not a PNG.
png_size() {
	python3 -c 'import struct,sys
b=open(sys.argv[1],"rb").read(24)
if b[:8]==b"\x89PNG\r\n\x1a\n" and b[12:16]==b"IHDR": print(*struct.unpack(">II",b[16:24]))' "$1"
}

# db SQL: straight into the server's SQLite store, as another writer would.
db() {
	sqlite3 -cmd '.timeout 5000' "$SRV_DIR/keystrap.db" "$1"
}

# own_server NAME: a server of the test's own (its store, admin socket and bridge), whose counts
# start from nothing; SRV_DIR, SRV_PORT, ADMIN and BRIDGE_PORT name it from then on, so admin,
# dom, post, srv and db read and write it. Another policy version in $POLICY_GROUPS if set.
own_server() {
	SRV_DIR=$BATS_TEST_TMPDIR/$1
	SRV_PORT=$(free_port)
	ADMIN=$ADMIN_DIR/$1.sock
	server_pki "$SRV_DIR"
	server_config "$SRV_DIR" "0 7" "\"admin_listen\":\"unix:$ADMIN\""
	server_start "$SRV_DIR"
	BRIDGE_PORT=$(free_port)
	socat "TCP-LISTEN:$BRIDGE_PORT,bind=127.0.0.1,fork,reuseaddr" "UNIX-CONNECT:$ADMIN" 2>/dev/null &
	echo $! >"$SRV_DIR/socat.pid"
	for _ in $(seq 50); do
		curl -s -o /dev/null "http://127.0.0.1:$BRIDGE_PORT/" && return 0
		sleep 0.1
	done
	return 1
}

# wait_json PATH FILTER VALUE: until the page's JSON says so (what the server's second tick counts).
wait_json() {
	for _ in $(seq 50); do
		[ "$(admin "$1?format=json" | head -n -1 | jq -r "$2")" = "$3" ] && return 0
		sleep 0.1
	done
	admin "$1?format=json"
	return 1
}

# wait_census FIELD VALUE: until the fleet page's JSON (the registry counted each second) says so.
wait_census() {
	wait_json / ".nodes.$1" "$2"
}

@test "the admin socket is owner-only, and the dashboard is not on the nodes' port" {
	[ -S "$ADMIN" ]
	[ "$(stat -c '%a %U' "$ADMIN")" = "600 $(id -un)" ]
	run admin /
	[ "$(status_of "$output")" = 200 ]
	# Twin: the nodes' port answers none of the admin pages.
	for p in / /nodes /policy /secrets /audit "/nodes/$EK"; do
		run curl -s -o /dev/null -w '%{http_code}' --cacert "$SRV_DIR/ca.crt" "https://127.0.0.1:$SRV_PORT$p"
		[ "$output" = 404 ]
	done
	# Another user cannot connect.
	run setpriv --reuid 65534 --regid 65534 --clear-groups curl -s -o /dev/null -w '%{http_code}' \
		--unix-socket "$ADMIN" http://localhost/
	[ "$output" = 000 ]
}

@test "admin_listen must be unix:/PATH: a TCP address is refused in one line, exit 1" {
	jq '.admin_listen = "127.0.0.1:9443"' "$SRV_DIR/server.json" >bad.json
	run "$KEYSTRAP_SERVER" serve --config bad.json
	[ "$status" -eq 1 ]
	[ "$output" = "keystrap-server: bad.json: 'admin_listen' is not unix:/ABSOLUTE/PATH (at most 107 bytes)" ]
	jq '.admin_listen = ""' "$SRV_DIR/server.json" >empty.json
	run "$KEYSTRAP_SERVER" serve --config empty.json
	[ "$status" -eq 1 ]
	[ "$output" = "keystrap-server: empty.json: 'admin_listen' is not a non-empty string" ]
}

@test "a revoked node shows as revoked, an approved one as approved: /nodes, /nodes/ID and the fleet's counts" {
	# This TPM asks (an enrollment request), is approved, then revoked; another node is approved.
	run post /v1/attest/start "$BATS_FILE_TMPDIR/start.json"
	srv node approve "$EK" --id bad-node.example >/dev/null
	srv node revoke "$EK" >/dev/null
	db "INSERT INTO nodes (ek_hash, node_id, state, requested_us, changed_us, peer)
	    VALUES ('$(printf good | sha256sum | cut -d' ' -f1)', 'good-node.example', 'approved', 1, 1, '192.0.2.1')"
	wait_census revoked 1
	wait_census approved 1
	run dom /nodes
	[ "$status" -eq 0 ]
	# The row a person reads: the node's name, then its state, rendered.
	[[ "$output" == *'bad-node.example</a></td><td class="state-revoked">revoked</td>'* ]]
	[[ "$output" == *'good-node.example</a></td><td class="state-approved">approved</td>'* ]]
	run dom "/nodes/$EK"
	[[ "$output" == *'<td class="state-revoked">revoked</td>'* ]]
	[[ "$output" == *'<td>node-revoke</td><td class="ok">allow</td><td>approved -&gt; revoked'* ]]
	run dom /nodes/good-node.example
	[[ "$output" == *'<td class="state-approved">approved</td>'* ]]
	[[ "$output" != *'class="state-revoked"'* ]]
	run dom /
	[[ "$output" == *'<div class="card" id="revoked"><b class="bad">1</b>revoked</div>'* ]]
	# Where the CRL is, on the fleet page: the nodes' listener, and what it says is true there.
	[[ "$output" == *"<p id=\"crl\">The CRL lists every unexpired certificate of the 1 revoked node, signed by the CA"* ]]
	run admin '/?format=json'
	url=$(body_of "$output" | jq -r .crl.url)
	[ "$url" = "https://127.0.0.1:$SRV_PORT/v1/crl.pem" ]
	curl -sf --cacert "$SRV_DIR/ca.crt" -o crl.pem "$url"
	openssl crl -in crl.pem -noout -CAfile "$SRV_DIR/ca.crt" 2>&1 | grep -q 'verify OK'
	# The same as JSON, by ?format=json and by Accept.
	run admin "/nodes/$EK?format=json"
	[ "$(status_of "$output")" = 200 ]
	[ "$(body_of "$output" | jq -r '.node.state, .node.node_id, .history[0].action')" = "revoked
bad-node.example
node-revoke" ]
	run admin /nodes -H 'Accept: application/json'
	[ "$(body_of "$output" | jq -r '[.nodes[] | "\(.node_id)=\(.state)"] | sort | join(" ")')" = \
		"bad-node.example=revoked good-node.example=approved" ]
	run admin /nodes/no-such-node
	[ "$(status_of "$output")" = 404 ]
}

@test "an expired policy shows as the cause of refusals, and its refusals by reason; the next version clears it" {
	local o=$OPERATOR_DIR v exp
	v=$(($(cat "$o/policy.version") + 1))
	echo "$v" >"$o/policy.version"
	exp=$(date -u -d '+8 seconds' +%Y-%m-%dT%H:%M:%SZ)
	policy_json "0 7" "$v" | jq -c --arg e "$exp" '.expires = $e' >short.json
	policy_sign "$o" short.json op1 op2
	srv policy load short.json --signature short.json.op1.sig --signature short.json.op2.sig >/dev/null
	# Twin: in force, no cause of refusals shown.
	run dom /
	[[ "$output" == *'Policy: <span class="ok">in force</span>, version '"$v"* ]]
	[[ "$output" != *refusal-cause* ]]
	while [ "$(date +%s)" -le "$(date -d "$exp" +%s)" ]; do sleep 0.2; done
	srv node approve "$EK" --reinstate >/dev/null
	run post /v1/attest/start "$BATS_FILE_TMPDIR/start.json"
	[ "$(status_of "$output")" = 503 ]
	run dom /
	[[ "$output" == *"<span class=\"bad\" id=\"refusal-cause\">Every node is refused: policy version $v expired at $exp</span>"* ]]
	[[ "$output" == *'<tr><td>policy-expired</td><td>1</td></tr>'* ]]
	run dom /policy
	[[ "$output" == *'<span class="bad">expired</span>'* ]]
	run admin '/policy?format=json'
	[ "$(body_of "$output" | jq -r '.state, .version, .expires, (.signers | length)')" = "expired
$v
$exp
2" ]
	server_policy "$SRV_DIR" "0 7" >/dev/null
	run dom /
	[[ "$output" == *'<span class="ok">in force</span>'* ]]
	[[ "$output" != *refusal-cause* ]]
}

@test "a node id and a reason carrying <script> are rendered as text, never as elements" {
	local evil='<script>document.title=1</script><img src=x onerror=alert(1)>' ek
	ek=$(printf evil | sha256sum | cut -d' ' -f1)
	db "INSERT INTO nodes (ek_hash, node_id, state, requested_us, changed_us, peer, grp)
	    VALUES ('$ek', '$evil', 'requested', 2, 2, '\"><script>alert(2)</script>', '<b>g</b>')"
	# A row another writer of the database made, its very key markup: escaped all the same.
	db "INSERT INTO nodes (ek_hash, node_id, state, requested_us, changed_us, peer)
	    VALUES ('\"><script>alert(5)</script>', NULL, 'requested', 2, 2, 'x')"
	db "INSERT INTO audit (seq, time_us, peer, ek_hash, node_id, action, decision, reasons, prev_hash, hash)
	    VALUES ((SELECT COALESCE(MAX(seq), 0) + 1 FROM audit), 3, '<script>alert(3)</script>', '$ek', '$evil',
	            'attest', 'deny', 'pcr 7: <script>alert(4)</script>', zeroblob(32), zeroblob(32))"
	for p in /nodes "/nodes/$ek" /audit; do
		run dom "$p"
		[ "$status" -eq 0 ]
		# What a person reads is the text itself...
		[[ "$output" == *'&lt;script&gt;document.title=1&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;'* ]]
		# ...and the DOM holds no element the text would have made.
		[[ "$output" != *'<script'* ]]
		[[ "$output" != *'<img'* ]]
		[[ "$output" != *'<b>g</b>'* ]]
	done
	run dom /audit
	[[ "$output" == *'pcr 7: &lt;script&gt;alert(4)&lt;/script&gt;'* ]]
	# As served: escaped in the HTML, plain in the JSON (where it is a string).
	run admin "/nodes/$ek"
	[[ "$output" == *'&quot;&gt;&lt;script&gt;alert(2)&lt;/script&gt;'* ]]
	[[ "$output" != *'<script'* ]]
	run admin "/nodes/$ek?format=json"
	[ "$(body_of "$output" | jq -r .node.node_id)" = "$evil" ]
	# And no script could run even so: the policy allows none.
	run curl -s -D - -o /dev/null --unix-socket "$ADMIN" http://localhost/
	[[ "$output" == *"Content-Security-Policy: default-src 'none'; style-src 'unsafe-inline'"* ]]
	run dom /nodes
	[[ "$output" == *'title="&quot;&gt;&lt;script&gt;alert(5)&lt;/script&gt;"'* ]]
	db "DELETE FROM nodes WHERE ek_hash IN ('$ek', '\"><script>alert(5)</script>')"
}

@test "screenshots at desktop and phone widths are PNGs of that size" {
	local p
	# The node page of this TPM (revoked above) too: there first, or the sizes prove nothing.
	run admin "/nodes/$EK"
	[ "$(status_of "$output")" = 200 ]
	for p in / /nodes /policy /secrets /audit "/nodes/$EK"; do
		shot "$p" desk.png 1280 900
		shot "$p" phone.png 390 844
		[ "$(png_size desk.png)" = "1280 900" ]
		[ "$(png_size phone.png)" = "390 844" ]
		[ "$(stat -c %s desk.png)" -gt 5000 ]
		[ "$(stat -c %s phone.png)" -gt 5000 ]
	done
	cp desk.png "$BATS_FILE_TMPDIR/audit-desktop.png"
	# Twin: a page that is not there gives no dashboard to see (404, not the fleet).
	run admin /nope
	[ "$(status_of "$output")" = 404 ]
	run dom /nope
	[[ "$output" != *'id="policy-state"'* ]]
}

@test "pages: 100 nodes a page with a next link, the audit log newest first, secrets without values" {
	db "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 250)
	    INSERT INTO nodes (ek_hash, node_id, state, requested_us, changed_us, peer)
	    SELECT printf('%064x', i), printf('bulk-%03d', i), 'approved', 1000 + i, 1000 + i, '192.0.2.9' FROM n"
	run admin '/nodes?format=json'
	[ "$(body_of "$output" | jq -r '(.nodes | length), .next')" = "100
1" ]
	run admin '/nodes?page=2&format=json'
	[ "$(body_of "$output" | jq -r '(.nodes | length) > 0, .next')" = "true
null" ]
	run dom /nodes
	[[ "$output" == *'<a id="next" href="/nodes?page=1">'* ]]
	run admin '/nodes?page=-1'
	[ "$(status_of "$output")" = 400 ]
	run admin '/audit?format=json'
	[ "$(body_of "$output" | jq -r '[.records[].seq] | length > 0 and . == (sort | reverse)')" = true ]
	[ "$(body_of "$output" | jq -r '.log.verification')" != "" ]
	# The checkpoint shown is the one the store holds, as audit checkpoint prints it.
	srv audit checkpoint >cp.txt
	body_of "$output" | jq -j '.log.checkpoint' >shown.txt
	cmp cp.txt shown.txt
	[ "$(body_of "$output" | jq -r '.log.checkpoint_size')" -ge 1 ]
	run dom /audit
	[[ "$output" == *'<pre id="checkpoint">'"$(head -1 cp.txt)"* ]]
	# Secrets: name and version shown, the value nowhere.
	printf 'hunter2-value' | srv secret set db.password >/dev/null
	run admin /secrets
	[[ "$output" == *'db.password'* ]]
	[[ "$output" != *'hunter2-value'* ]]
	run admin '/secrets?format=json'
	[ "$(body_of "$output" | jq -r '.secrets[] | select(.name == "db.password") | "\(.version) \(.state)"')" = "1 set" ]
	[[ "$output" != *'hunter2-value'* ]]
	run admin / -X POST
	[ "$(status_of "$output")" = 405 ]
	db "DELETE FROM nodes WHERE node_id LIKE 'bulk-%'"
}

@test "the same pages from a PostgreSQL store: nodes a page at a time, a node's history, the audit log newest first" {
	command -v pg_ctlcluster >/dev/null || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || skip "postgresql is not installed"
	pg_start
	local d=$BATS_TEST_TMPDIR/pg sock
	sock=$ADMIN_DIR/pg.sock
	mkdir -p "$d"
	cp "$SRV_DIR"/{ca,tls}.{crt,key} "$SRV_DIR/kek" "$d/"
	SRV_PORT=$(free_port) SRV_DATABASE=$PG_URL server_config "$d" "0 7" "\"admin_listen\":\"unix:$sock\""
	# 150 nodes from an inventory, through the store's own calls.
	seq 150 | awk '{ printf "%08x%056x\n", ($1 * 2654435761) % 4294967296, $1 }' >inv.txt
	"$KEYSTRAP_SERVER" node approve --file inv.txt --config "$d/server.json" >/dev/null
	SRV_PORT=$(jq -r .listen "$d/server.json" | cut -d: -f2) server_start "$d"
	for _ in $(seq 50); do [ -S "$sock" ] && break; sleep 0.1; done
	run curl -s --unix-socket "$sock" 'http://localhost/nodes?format=json'
	[ "$(jq -r '(.nodes | length), .next, .total, ([.nodes[].state] | unique | join(" "))' <<<"$output")" = "100
1
150
approved" ]
	jq -r '.nodes[].ek_hash' <<<"$output" >page0.txt
	run curl -s --unix-socket "$sock" 'http://localhost/nodes?page=1&format=json'
	[ "$(jq -r '(.nodes | length), .next' <<<"$output")" = "50
null" ]
	# The two pages are the inventory, each node once.
	jq -r '.nodes[].ek_hash' <<<"$output" | cat page0.txt - | sort | cmp - <(sort inv.txt)
	run curl -s --unix-socket "$sock" "http://localhost/nodes/$(sed -n 7p inv.txt)?format=json"
	[ "$(jq -r '.node.state, (.history | length) > 0, .history[0].action' <<<"$output")" = "approved
true
node-approve" ]
	# Its certificates and disk-share records from PostgreSQL: none, then the rows as stored.
	[ "$(jq -c '[.certificates, .disk_shares]' <<<"$output")" = '[[],[]]' ]
	pg_sql keystrap "INSERT INTO certificates (serial, ek_hash, not_before, not_after) VALUES
	    ('0b', '$(sed -n 7p inv.txt)', 1700000000, 1700000900), ('0c', '$(sed -n 7p inv.txt)', 1700000300, 1700001200)"
	run curl -s --unix-socket "$sock" "http://localhost/nodes/$(sed -n 7p inv.txt)?format=json"
	[ "$(jq -r '.certificates | map("\(.serial) \(.not_before) \(.not_after) \(.current)") | join(", ")' <<<"$output")" = \
		"0c 2023-11-14T22:18:20Z 2023-11-14T22:33:20Z false, 0b 2023-11-14T22:13:20Z 2023-11-14T22:28:20Z false" ]
	run curl -s --unix-socket "$sock" 'http://localhost/audit?format=json'
	[ "$(jq -r '[.records[].seq] | length == 100 and . == (sort | reverse)' <<<"$output")" = true ]
	local next
	next=$(jq -r .next <<<"$output")
	run curl -s --unix-socket "$sock" "http://localhost/audit?before=$next&format=json"
	[ "$(jq -r --argjson n "$next" '[.records[].seq] | length > 0 and all(. < $n)' <<<"$output")" = true ]
	# Twin: the PostgreSQL password is on no page.
	run curl -s --unix-socket "$sock" 'http://localhost/?format=json'
	[[ "$output" != *"$PG_PASSWORD"* ]]
}

@test "the policy page shows what changed from the version before, the same list policy diff gives" {
	local o=$OPERATOR_DIR v
	v=$(($(cat "$o/policy.version") + 1))
	echo "$v" >"$o/policy.version"
	policy_json "0" "$v" | jq -c '.credential_lifetime = 300' >next.json
	policy_sign "$o" next.json op1 op2
	srv policy load next.json --signature next.json.op1.sig --signature next.json.op2.sig >/dev/null
	run admin '/policy?format=json'
	# The version before this one that the store holds (a refused load takes no number).
	from=$(body_of "$output" | jq -r '.changes_from')
	[ "$from" -lt "$v" ] && [ "$from" -gt 0 ]
	[ "$(body_of "$output" | jq -c '.changes')" = "$(srv policy diff "$from" "$v" --json | jq -c '[.changes[] | select(.what != "signer")]')" ]
	run dom /policy
	[[ "$output" == *"<h2>Changes from version $from</h2>"* ]]
	[[ "$output" == *"<tr><td>reference</td><td>removed</td><td>pcr 7, value $(pcr_value sha256 7)</td></tr>"* ]]
	[[ "$output" == *"<tr><td>credential_lifetime</td><td>changed</td><td>from 600, to 300</td></tr>"* ]]
	# Twin: the same policy loaded again as the next version changes nothing.
	v=$((v + 1))
	echo "$v" >"$o/policy.version"
	jq -c --argjson v "$v" '.version = $v' next.json >same.json
	policy_sign "$o" same.json op1 op2
	srv policy load same.json --signature same.json.op1.sig --signature same.json.op2.sig >/dev/null
	run dom /policy
	[[ "$output" == *"<h2>Changes from version $((v - 1))</h2><p id=\"changes\">none</p>"* ]]
	server_policy "$SRV_DIR" "0 7" >/dev/null
}

@test "the chart: one refusal draws a refusal series with its legend, and the JSON's rates count it; a quiet fleet shows none" {
	own_server quiet
	# Twin first: nothing refused yet, so the chart has the requests' line alone.
	run admin '/?format=json'
	[ "$(body_of "$output" | jq -c '([.rates[].refusals | length] | add), .refusals, (.rates | length) >= 1')" = "0
{}
true" ]
	run dom /
	[[ "$output" == *'<svg id="rates" viewBox="0 0 620 170"'* ]]
	[ "$(grep -o 'id="series-[a-z-]*"' <<<"$output")" = 'id="series-requests"' ]
	[[ "$output" == *'requests</span></p>'* ]]
	[[ "$output" != *'refused: '* ]]
	# One refusal: a start whose body does not parse.
	echo '{' >bad.json
	run post /v1/attest/start bad.json
	[ "$(status_of "$output")" = 400 ]
	run admin '/?format=json'
	[ "$(body_of "$output" | jq -c '.rates[-1].refusals, .rates[-1].requests >= 1, .refusals')" = '{"malformed":1}
true
{"malformed":1}' ]
	run dom /
	[ "$(grep -o 'id="series-[a-z-]*"' <<<"$output" | tr '\n' ' ')" = 'id="series-requests" id="series-malformed" ' ]
	[[ "$output" == *'refused: malformed</span></p>'* ]]
	# Its last point (the minute under way) stands above the axis: 1, not 0.
	pts=$(grep -o '<polyline id="series-malformed"[^>]*' <<<"$output" | sed 's/.*points="//; s/ *"$//')
	last=${pts##* }
	[ "${last#*,}" -lt 150 ]
}

@test "the fleet's cards: attested in the last hour, never attested and expiring soon, each a known count; zero when no node is such" {
	own_server cards
	local now
	now=$(date +%s)
	# Twin first: nodes, none of them counted by the three cards. Not approved (a revoked one
	# attested a minute ago, expiring tomorrow; a request); approved, attested two days ago,
	# its certificate good for eight days more; approved, its certificate expired.
	db "INSERT INTO nodes (ek_hash, node_id, state, requested_us, changed_us, peer, attested_us, cert_serial, cert_not_after)
	    VALUES (printf('%064x', 1), 'r1', 'revoked', 1, 1, 'x', ($now - 60) * 1000000, 'a1', $now + 86400),
	           (printf('%064x', 2), NULL, 'requested', 2, 2, 'x', 0, '', 0),
	           (printf('%064x', 3), 'a3', 'approved', 3, 3, 'x', ($now - 2 * 86400) * 1000000, 'a3', $now + 8 * 86400),
	           (printf('%064x', 4), 'a4', 'approved', 4, 4, 'x', ($now - 2 * 86400) * 1000000, 'a4', $now - 10)"
	wait_census approved 2
	run admin '/?format=json'
	[ "$(body_of "$output" | jq -c '.nodes | [.attested_1h, .never_attested, .expiring_7d, .overdue, .revoked]')" = "[0,0,0,1,1]" ]
	run dom /
	[[ "$output" == *'<div class="card" id="attested_1h"><b>0</b>attested in the last hour</div>'* ]]
	[[ "$output" == *'<div class="card" id="never_attested"><b>0</b>approved, never attested</div>'* ]]
	[[ "$output" == *'<div class="card" id="expiring_7d"><b>0</b>certificates expiring within 7 days</div>'* ]]
	# Then 2 attested in the last hour (expiring in 10 minutes: also expiring soon), 3 approved
	# and never attested, 4 more attested a day ago expiring within the week.
	db "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 9)
	    INSERT INTO nodes (ek_hash, node_id, state, requested_us, changed_us, peer, attested_us, cert_serial, cert_not_after)
	    SELECT printf('%064x', 100 + i), 'n' || i, 'approved', 100 + i, 100 + i, 'x',
	           CASE WHEN i <= 2 THEN ($now - 600) * 1000000 WHEN i <= 5 THEN 0 ELSE ($now - 90000) * 1000000 END,
	           CASE WHEN i <= 5 AND i > 2 THEN '' ELSE printf('%x', 100 + i) END,
	           CASE WHEN i <= 2 THEN $now + 600 WHEN i <= 5 THEN 0 ELSE $now + 3 * 86400 END FROM n"
	wait_census approved 11
	run admin '/?format=json'
	[ "$(body_of "$output" | jq -c '.nodes | [.attested_1h, .never_attested, .expiring_7d, .overdue, .revoked]')" = "[2,3,6,1,1]" ]
	run dom /
	[[ "$output" == *'<div class="card" id="attested_1h"><b>2</b>attested in the last hour</div>'* ]]
	[[ "$output" == *'<div class="card" id="never_attested"><b>3</b>approved, never attested</div>'* ]]
	[[ "$output" == *'<div class="card" id="expiring_7d"><b class="warn">6</b>certificates expiring within 7 days</div>'* ]]
	[[ "$output" == *'<div class="card" id="overdue"><b class="bad">1</b>certificates expired, not renewed</div>'* ]]
}

@test "the secrets page in Chromium: name, version, groups and when it changed; its value on no page and in no JSON" {
	local value='s3cr3t-V4LUE-never-shown' p
	own_server secrets
	printf 'first-%s' "$value" | srv secret set app.token >/dev/null
	printf '%s' "$value" | srv secret set app.token >/dev/null
	printf 'other' | srv secret set unused >/dev/null
	POLICY_GROUPS='{"default":{"secrets":["app.token"]},"web":{"secrets":["app.token"]}}' server_policy "$SRV_DIR" "0 7" >/dev/null
	set_at=$(srv secret list --json | jq -r '.[] | select(.name == "app.token") | .set')
	[ -n "$set_at" ]
	run dom /secrets
	[ "$status" -eq 0 ]
	[[ "$output" == *"<tr><td>app.token</td><td>2</td><td>$set_at</td><td>set</td><td>default web </td></tr>"* ]]
	# Twin: a secret no group is given shows no group.
	[[ "$output" == *"<tr><td>unused</td><td>1</td><td>"*"</td><td>set</td><td></td></tr>"* ]]
	run admin '/secrets?format=json'
	[ "$(body_of "$output" | jq -c '.secrets[] | select(.name == "app.token") | [.version, .changed, .groups]')" = \
		"[2,\"$set_at\",[\"default\",\"web\"]]" ]
	# Every page, as served, as JSON and as Chromium renders it: no value, neither version's.
	db "INSERT INTO nodes (ek_hash, node_id, state, requested_us, changed_us, peer)
	    VALUES (printf('%064x', 8), 'x.example', 'approved', 1, 1, 'x')"
	for p in / /nodes /nodes/x.example /policy /secrets /audit "/audit?before=3"; do
		{
			admin "$p"
			echo
			if [[ $p == *\?* ]]; then admin "$p&format=json"; else admin "$p?format=json"; fi
			echo
			dom "$p"
		} >>all.txt
	done
	grep -q 'app.token' all.txt
	# Every one of them answered (200 is the status admin prints after each body).
	[ "$(grep -c '^200$' all.txt)" = 14 ]
	! grep -F -q "$value" all.txt || false
}

@test "the audit page shows verification failing once a record was edited in the database; passing before" {
	own_server edited
	srv node approve --file <(printf '%064x\n' 77) >/dev/null
	server_stop "$SRV_DIR"
	server_start "$SRV_DIR"
	wait_json /audit .log.verification verified
	run dom /audit
	[[ "$output" == *'<p id="audit-state">Audit log: <span class="ok">verified</span> (checked '* ]]
	# An insider edits a record (a refusal made an approval, say); the server's next check sees it.
	server_stop "$SRV_DIR"
	db "UPDATE audit SET reasons = reasons || ' (edited)' WHERE seq = (SELECT MAX(seq) FROM audit)"
	server_start "$SRV_DIR"
	wait_json /audit .log.verification failed
	run dom /audit
	[[ "$output" == *'<p id="audit-state">Audit log: <span class="bad">FAILED verification</span> (checked '* ]]
	run dom /
	[[ "$output" == *'<span class="bad">FAILED verification</span>'* ]]
}

@test "a node's page: its certificates (serial, notBefore, notAfter, which is current), disk-share rows and the PCRs its refusals named; none for a node without" {
	local vol=0b3f6f1e-4c1a-4d7e-9a55-2f6a1c9e8d01 share serial0 serial1 out v
	MAX_BODY=262144 own_server hist
	# Twin first: an approved node that never attested has none of the three.
	db "INSERT INTO nodes (ek_hash, node_id, state, requested_us, changed_us, peer)
	    VALUES (printf('%064x', 5), 'bare.example', 'approved', 1, 1, '192.0.2.5')"
	run admin '/nodes/bare.example?format=json'
	[ "$(body_of "$output" | jq -c '[.certificates, .disk_shares, .drift]')" = '[[],[],[]]' ]
	run dom /nodes/bare.example
	[[ "$output" == *'<table id="certificates">'*'<td colspan="4">none issued</td>'* ]]
	[[ "$output" == *'<table id="disk-shares">'*'<td colspan="6">none</td>'* ]]
	[[ "$output" == *'<p id="drift">No refusal in the history above named a PCR.</p>'* ]]
	# This TPM: two passing attestations, the second storing a disk share; then a boot the
	# next policy refuses (it wants other PCR 0 and 7 values) asking for it back.
	approve_peer "$U"
	challenge ch.json
	"$PEER" finish "$U" ch.json >finish.json
	out=$(post /v1/attest/finish finish.json)
	[ "$(status_of "$out")" = 200 ]
	body_of "$out" | jq -r .certificate >cert0.pem
	share=$(head -c 32 /dev/urandom | base64 -w0)
	challenge ch.json
	"$PEER" finish "$U" ch.json | jq -c --arg v "$vol" --arg s "$share" '. + {disk_share_put: {volume: $v, share: $s}}' >finish.json
	out=$(post /v1/attest/finish finish.json)
	[ "$(status_of "$out")" = 200 ]
	body_of "$out" | jq -r .certificate >cert1.pem
	v=$(($(cat "$OPERATOR_DIR/policy.version") + 1))
	echo "$v" >"$OPERATOR_DIR/policy.version"
	policy_json "0 7" "$v" | jq -c --arg a "$(printf '%064x' 10)" --arg b "$(printf '%064x' 11)" \
		'.reference_pcrs["0"] = $a | .reference_pcrs["7"] = $b' >moved.json
	policy_sign "$OPERATOR_DIR" moved.json op1 op2
	srv policy load moved.json --signature moved.json.op1.sig --signature moved.json.op2.sig >/dev/null
	challenge ch.json
	"$PEER" finish "$U" ch.json | jq -c --arg v "$vol" '. + {disk_shares_get: [$v]}' >finish.json
	out=$(post /v1/attest/finish finish.json)
	[ "$(status_of "$out")" = 403 ]
	run admin '/nodes/node1.example?format=json'
	body_of "$output" >node.json
	# The certificates as issued: serial and validity as openssl reads them from the PEMs.
	serial1=$(openssl x509 -in cert1.pem -noout -serial | cut -d= -f2 | tr A-F a-f)
	serial0=$(openssl x509 -in cert0.pem -noout -serial | cut -d= -f2 | tr A-F a-f)
	[ "$(jq -r '.certificates | map("\(.serial) \(.current)") | join(" ")' node.json)" = "$serial1 true $serial0 false" ]
	[ "$(jq -r .node.certificate_serial node.json)" = "$serial1" ]
	iso() { date -u -d "$(openssl x509 -in "$1" -noout "-$2" | cut -d= -f2)" +%Y-%m-%dT%H:%M:%SZ; }
	[ "$(jq -r '.certificates[0] | "\(.not_before) \(.not_after)"' node.json)" = "$(iso cert1.pem startdate) $(iso cert1.pem enddate)" ]
	[ "$(jq -r '.certificates[1] | "\(.not_before) \(.not_after)"' node.json)" = "$(iso cert0.pem startdate) $(iso cert0.pem enddate)" ]
	# The disk share's rows: the store, then the release refused, naming the volume.
	[ "$(jq -r '.disk_shares | map("\(.action) \(.decision)") | join(", ")' node.json)" = "disk-share-release deny, disk-share-store allow" ]
	[[ "$(jq -r '.disk_shares[0].reasons' node.json)" == "volume $vol: "* ]]
	# The drift: PCR 0, the value quoted and the one the policy wants, in full.
	[ "$(jq -c '[.drift[] | "\(.pcr) \(.bank) \(.value) \(.policy) \(.wants)"]' node.json)" = \
		"[\"0 sha256 $(pcr_value sha256 0) $v $(printf '%064x' 10)\",\"7 sha256 $(pcr_value sha256 7) $v $(printf '%064x' 11)\"]" ]
	[ "$(jq -r '.drift[0].seq' node.json)" = "$(jq -r '.history[] | select(.action == "attest-finish" and .decision == "deny") | .seq' node.json)" ]
	run dom /nodes/node1.example
	[[ "$output" == *"<tr><td>$serial1</td><td>$(iso cert1.pem startdate)</td><td>$(iso cert1.pem enddate)</td><td class=\"ok\">current</td></tr>"* ]]
	[[ "$output" == *"<tr><td>$serial0</td><td>$(iso cert0.pem startdate)</td><td>$(iso cert0.pem enddate)</td><td>superseded</td></tr>"* ]]
	[[ "$output" == *'<table id="disk-shares">'*'<td>disk-share-release</td><td class="bad">deny</td><td>volume '"$vol"': '* ]]
	[[ "$output" == *"<td>0</td><td>sha256</td><td><code>$(pcr_value sha256 0)</code></td><td>$v</td><td><code>$(printf '%064x' 10)</code></td></tr>"* ]]
	[[ "$output" == *"<td>7</td><td>sha256</td><td><code>$(pcr_value sha256 7)</code></td><td>$v</td><td><code>$(printf '%064x' 11)</code></td></tr>"* ]]
	[[ "$output" != *'<p id="drift">'* ]]
	# Twin: the passing attestations named no PCR, so the drift is that one refusal's alone.
	[ "$(jq '[.drift[].seq] | unique | length' node.json)" = 1 ]
}

@test "the drift view reads only judge's items: other text naming a PCR, or a digest that is not hex, is no drift; markup in it is text" {
	own_server driftbad
	local ek
	ek=$(printf '%064x' 6)
	db "INSERT INTO nodes (ek_hash, node_id, state, requested_us, changed_us, peer)
	    VALUES ('$ek', 'odd.example', 'approved', 1, 1, 'x')"
	# A refusal whose text is not judge's, an allow naming a PCR, and a refusal with one event
	# in judge's words beside a PCR that does not exist.
	local r
	for r in "5|deny|PCR 7 (sha256) is <b>zz</b>, policy 1 wants 00; PCR digest does not match the PCR values" \
		"6|allow|PCR 7 (sha256) is ab, policy 1 wants cd" \
		"7|deny|x; PCR 4 event 2 (sha256 0a0b) is not allowed by policy 3; PCR 24 (sha256) is ab, policy 3 wants cd"; do
		IFS='|' read -r t d why <<<"$r"
		db "INSERT INTO audit (seq, time_us, peer, ek_hash, node_id, action, decision, reasons, prev_hash, hash)
		    VALUES ((SELECT MAX(seq) + 1 FROM audit), $t, 'x', '$ek', 'odd.example', 'attest-finish', '$d', '$why',
		            zeroblob(32), zeroblob(32))"
	done
	run admin '/nodes/odd.example?format=json'
	[ "$(body_of "$output" | jq -c '[.drift[] | [.pcr, .event, .digest, .policy]]')" = '[[4,2,"0a0b",3]]' ]
	run dom /nodes/odd.example
	[[ "$output" == *'<td>4 event 2</td><td>sha256</td><td><code>0a0b</code></td><td>3</td><td>does not allow the event</td>'* ]]
	[[ "$output" != *'<b>zz'* ]]
}
