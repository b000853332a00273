#!/usr/bin/env bash
# make bench-dashboard: what each dashboard page costs with BENCH_NODES (default 10,000) nodes
# and BENCH_AUDIT (default 1,000,000) audit records in the store. One SQLite store on disk,
# its rows written with sqlite3 straight into the tables the pages read (nodes and audit; the
# audit log's Merkle tables do not matter to a read page, and its verification fails, which
# the pages show), a signed policy loaded; the node page's node has 20 certificates, 50
# disk-share records and 50 refusals naming two PCRs each besides its 100 records. The server
# runs with admin_listen on a Unix socket; each page is fetched BENCH_RUNS (default 15) times
# with curl --unix-socket, interleaved with the nodes' GET /healthz over TLS (the peer: the
# cheapest answer the server gives), and the median, min and max of curl's time_total is
# printed per page. Not a test; a page that does not answer 200 exits 1.
set -euo pipefail

BUILD=${BUILD:-build}
NODES=${BENCH_NODES:-10000}
AUDIT=${BENCH_AUDIT:-1000000}
RUNS=${BENCH_RUNS:-15}
SERVER=$PWD/$BUILD/keystrap-server
DIR=$PWD/$BUILD/bench-dashboard
# shellcheck source=bench/server-lib.bash
. bench/server-lib.bash

rm -rf "$DIR"
mkdir -p "$DIR/operators"
SOCK=$(mktemp -u /tmp/ksbench.XXXXXX.sock)
PORT=$(free_port)
server_pki "$DIR"
operator_key "$DIR/operators" op1
operator_key "$DIR/operators" op2
"$SERVER" kek init "$DIR/kek" >/dev/null
cat >"$DIR/server.json" <<JSON
{"listen":"127.0.0.1:$PORT","tls_certificate":"$DIR/tls.crt","tls_key":"$DIR/tls.key",
 "database":"$DIR/keystrap.db","kek":"$DIR/kek","ek_ca":["$DIR/ca.crt"],"admin_listen":"unix:$SOCK",
 "ca_certificate":"$DIR/ca.crt","ca_key":"$DIR/ca.key","operator_keys":["$DIR/operators/op1.pub","$DIR/operators/op2.pub"]}
JSON
cat >"$DIR/policy.json" <<JSON
{"version":1,"expires":"$(date -u -d '+1 day' +%Y-%m-%dT%H:%M:%SZ)","min_keystrap_version":"0.1.0",
 "credential_lifetime":600,"pcr_bank":"sha256","reference_pcrs":{"7":"$(printf '%064d' 0)"},
 "groups":{"default":{"secrets":["db"]}}}
JSON
for k in op1 op2; do
	openssl dgst -sha256 -sign "$DIR/operators/$k.key" -out "$DIR/policy.json.$k.sig" "$DIR/policy.json"
done
printf 'bench-value' | "$SERVER" secret set db --config "$DIR/server.json" >/dev/null
"$SERVER" policy load "$DIR/policy.json" --signature "$DIR/policy.json.op1.sig" \
	--signature "$DIR/policy.json.op2.sig" --config "$DIR/server.json" >/dev/null

now=$(date +%s)
t0=$(date +%s%N)
sqlite3 "$DIR/keystrap.db" <<SQL
BEGIN;
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $NODES)
INSERT INTO nodes (ek_hash, node_id, state, requested_us, changed_us, peer, attested_us, cert_serial, cert_not_after)
SELECT printf('%064x', i), printf('node-%05d.example', i), CASE WHEN i % 50 = 0 THEN 'revoked' ELSE 'approved' END,
       ($now - 86400) * 1000000 + i, ($now - 3600) * 1000000, '192.0.2.1', ($now - i % 7200) * 1000000,
       printf('%040x', i), $now + 600 FROM n;
WITH RECURSIVE a(i) AS (SELECT (SELECT COALESCE(MAX(seq), 0) + 1 FROM audit) UNION ALL SELECT i + 1 FROM a
                        WHERE i < $AUDIT + (SELECT COALESCE(MAX(seq), 0) FROM audit))
INSERT INTO audit (seq, time_us, peer, ek_hash, node_id, action, decision, reasons, prev_hash, hash)
SELECT i, ($now - 86400) * 1000000 + i * 80, '192.0.2.1', printf('%064x', i % $NODES + 1),
       printf('node-%05d.example', i % $NODES + 1), CASE WHEN i % 2 THEN 'attest-start' ELSE 'attest-finish' END,
       CASE WHEN i % 10 = 0 THEN 'deny' ELSE 'allow' END, CASE WHEN i % 10 = 0 THEN 'pcr 7 differs' ELSE '' END,
       zeroblob(32), zeroblob(32) FROM a;
-- The node page's node (node-05000) as a busy one is: 20 certificates kept, then 50 disk-share
-- records and 50 refusals naming two PCRs each in full (what its drift view reads), newest.
WITH RECURSIVE k(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM k WHERE i < 19)
INSERT INTO certificates (serial, ek_hash, not_before, not_after)
SELECT printf('%040x', 1000000 + i), printf('%064x', 5000), $now - 300 - i * 300, $now + 600 - i * 300 FROM k;
WITH RECURSIVE k(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM k WHERE i < 100)
INSERT INTO audit (seq, time_us, peer, ek_hash, node_id, action, decision, reasons, prev_hash, hash)
SELECT (SELECT MAX(seq) FROM audit) + i, $now * 1000000 + i, '192.0.2.1', printf('%064x', 5000), 'node-05000.example',
       CASE WHEN i % 2 THEN 'disk-share-release' ELSE 'attest-finish' END, 'deny',
       CASE WHEN i % 2 THEN 'volume 0b3f6f1e-4c1a-4d7e-9a55-2f6a1c9e8d01: node is revoked'
       ELSE printf('PCR 4 (sha256) is %064x, policy 1 wants %064x; PCR 7 (sha256) is %064x, policy 1 wants %064x', i, 0, i, 0) END,
       zeroblob(32), zeroblob(32) FROM k;
COMMIT;
SQL
echo "store: $NODES nodes, $AUDIT audit records written in $((($(date +%s%N) - t0) / 1000000)) ms ($(du -m "$DIR/keystrap.db" | cut -f1) MB)"

"$SERVER" serve --config "$DIR/server.json" 2>"$DIR/server.log" &
SRV_PID=$!
for _ in $(seq 600); do
	[ -S "$SOCK" ] && curl -s -o /dev/null --unix-socket "$SOCK" http://localhost/ && break
	sleep 0.1
done

# One figure per page: curl's time_total, seconds.
page() {
	curl -s -o /dev/null -w '%{http_code} %{time_total}\n' --unix-socket "$SOCK" "http://localhost$1"
}
healthz() {
	curl -s -o /dev/null -w '%{http_code} %{time_total}\n' --cacert "$DIR/ca.crt" "https://127.0.0.1:$PORT/healthz"
}
pages=(/ "/nodes" "/nodes?page=50" "/nodes?page=99" "/nodes/node-05000.example" /policy /secrets /audit
	"/audit?before=500000" "/audit?before=100" "/?format=json" "/nodes?format=json")
declare -A times
for _ in $(seq "$RUNS"); do
	for p in healthz "${pages[@]}"; do
		if [ "$p" = healthz ]; then r=$(healthz); else r=$(page "$p"); fi
		case $r in 200\ * | 503\ *) ;; *) echo "$p: $r" >&2; exit 1 ;; esac
		[ "$p" = healthz ] || [ "${r%% *}" = 200 ] || { echo "$p: $r" >&2; exit 1; }
		times[$p]+="${r#* } "
	done
done
printf '%-28s %9s %9s %9s   (ms, %d runs, curl time_total)\n' page median min max "$RUNS"
for p in healthz "${pages[@]}"; do
	# shellcheck disable=SC2086
	printf '%s\n' ${times[$p]} | sort -g | awk -v p="$p" '{ t[NR] = $1 * 1000 }
		END { printf "%-28s %9.2f %9.2f %9.2f\n", (p == "healthz" ? "/healthz (nodes port, TLS)" : p), t[int((NR + 1) / 2)], t[1], t[NR] }'
done
stop
rm -f "$SOCK"
