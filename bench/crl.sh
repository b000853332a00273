#!/usr/bin/env bash
# make bench-crl: what a CRL of BENCH_REVOKED (default 10,000) revoked certificates costs.
# One SQLite store on disk holding that many revoked nodes, each with one unexpired
# certificate; the same serials, revocation dates and CA key given to `openssl ca -gencrl`
# (its index.txt) as the peer. Prints each CRL's size (DER and PEM) and the median, min and
# max wall time over BENCH_RUNS runs, interleaved, of
#   - `keystrap-server ca crl` (a whole process: configuration, store and KEK opened, the
#     revoked set read, the number spent, signed) against `openssl ca -gencrl`;
#   - the running server's GET /v1/crl right after another process changed the revoked set
#     (regenerated) against the same GET again (cached), both over one TLS handshake each.
# Not a test; a CRL that does not verify or lists another number of certificates exits 1.
set -euo pipefail

BUILD=${BUILD:-build}
N=${BENCH_REVOKED:-10000}
RUNS=${BENCH_RUNS:-15}
SERVER=$PWD/$BUILD/keystrap-server
DIR=$PWD/$BUILD/bench-crl
# shellcheck source=bench/server-lib.bash
. bench/server-lib.bash

rm -rf "$DIR"
mkdir -p "$DIR/operators" "$DIR/openssl"
PORT=$(free_port)
server_pki "$DIR"
operator_key "$DIR/operators" op1
operator_key "$DIR/operators" op2
"$SERVER" kek init "$DIR/kek" >/dev/null
cat >"$DIR/server.json" <<JSON
{"listen":"127.0.0.1:$PORT","tls_certificate":"$DIR/tls.crt","tls_key":"$DIR/tls.key",
 "database":"$DIR/keystrap.db","kek":"$DIR/kek","ek_ca":["$DIR/ca.crt"],
 "ca_certificate":"$DIR/ca.crt","ca_key":"$DIR/ca.key","operator_keys":["$DIR/operators/op1.pub","$DIR/operators/op2.pub"]}
JSON
# The schema, made by the server's own first open.
"$SERVER" node list --config "$DIR/server.json" >/dev/null

# N revoked nodes, one certificate each (159-bit serials as pki_issue makes them), expiring in a
# day; the same entries for openssl ca's index.txt (revocation date as YYMMDDHHMMSSZ).
now=$(date +%s)
expiry=$(date -u -d "@$((now + 86400))" +%y%m%d%H%M%SZ)
revoked=$(date -u -d "@$((now - 60))" +%y%m%d%H%M%SZ)
od -An -vtx1 -w20 -N $((N * 20)) /dev/urandom | tr -d ' ' |
	awk -v now="$now" -v expiry="$expiry" -v rev="$revoked" -v db="$DIR/nodes.sql" -v idx="$DIR/openssl/index.txt" '
	BEGIN { print "BEGIN;" > db }
	{
		# Positive and 40 digits long, as pki_issue makes them: the first digit 1-7.
		s = toupper($0); s = (index("0123456789ABCDEF", substr(s, 1, 1)) % 7 + 1) substr(s, 2)
		ek = sprintf("%064x", NR)
		printf "INSERT INTO nodes (ek_hash, node_id, state, requested_us, changed_us, peer, cert_serial, cert_not_after) VALUES (\x27%s\x27, \x27node-%d\x27, \x27revoked\x27, %d, %d, \x27bench\x27, \x27%s\x27, %d);\n", ek, NR, (now - 120) * 1000000, (now - 60) * 1000000, s, now + 86400 > db
		printf "INSERT INTO certificates (serial, ek_hash, not_after) VALUES (\x27%s\x27, \x27%s\x27, %d);\n", s, ek, now + 86400 > db
		printf "R\t%s\t%s\t%s\tunknown\t/CN=node-%d\n", expiry, rev, s, NR > idx
	}
	END { print "COMMIT;" > db }'
sqlite3 "$DIR/keystrap.db" <"$DIR/nodes.sql"
echo 1000 >"$DIR/openssl/crlnumber"
cat >"$DIR/openssl/ca.cnf" <<CNF
[ca]
default_ca = bench
[bench]
database = $DIR/openssl/index.txt
crlnumber = $DIR/openssl/crlnumber
certificate = $DIR/ca.crt
private_key = $DIR/ca.key
default_md = sha256
default_crl_days = 1
crl_extensions = crl_ext
[crl_ext]
authorityKeyIdentifier = keyid:always
CNF

ours() { "$SERVER" ca crl --config "$DIR/server.json" --out "$DIR/keystrap.der" >/dev/null; }
peer() { openssl ca -gencrl -config "$DIR/openssl/ca.cnf" -out "$DIR/openssl.pem" 2>/dev/null; }
get() { curl -s --fail --cacert "$DIR/ca.crt" -o "$DIR/served.der" "https://127.0.0.1:$PORT/v1/crl"; }
# Another process changes the revoked set (a revocation's changed_us), as node revoke would.
touch_set() { sqlite3 "$DIR/keystrap.db" "PRAGMA busy_timeout = 5000; UPDATE nodes SET changed_us = changed_us + 1 WHERE ek_hash = '$(printf '%064x' 1)'" >/dev/null; }

# ms NAME CMD...: CMD's wall time in ms appended to $DIR/NAME.
ms() {
	local f=$DIR/t-$1 t0 t1
	shift
	t0=$EPOCHREALTIME
	"$@"
	t1=$EPOCHREALTIME
	awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f\n", (b - a) * 1000 }' >>"$f"
}

# stats NAME: "median M ms (min A, max B)".
stats() {
	sort -n "$DIR/t-$1" | awk '{ v[NR] = $1 } END { printf "median %.1f ms (min %.1f, max %.1f)", v[int((NR + 1) / 2)], v[1], v[NR] }'
}

ours
peer
"$SERVER" serve --config "$DIR/server.json" 2>>"$DIR/server.log" &
SRV_PID=$!
for _ in $(seq 100); do
	case $(curl -s -o /dev/null -w '%{http_code}' --cacert "$DIR/ca.crt" "https://127.0.0.1:$PORT/healthz") in
	200 | 503) break ;;
	esac
	sleep 0.05
done
get
for i in $(seq "$RUNS"); do
	if [ $((i % 2)) -eq 0 ]; then
		ms admin ours
		ms openssl peer
	else
		ms openssl peer
		ms admin ours
	fi
	touch_set
	ms regenerated get
	ms cached get
done

# Both CRLs verify with the CA and list all N certificates.
for f in keystrap.der served.der; do
	openssl crl -inform DER -in "$DIR/$f" -CAfile "$DIR/ca.crt" -noout 2>&1 | grep -q "verify OK" ||
		{ echo "bench-crl: $f does not verify" >&2; exit 1; }
	n=$(openssl crl -inform DER -in "$DIR/$f" -noout -text | grep -c 'Serial Number:')
	[ "$n" -eq "$N" ] || { echo "bench-crl: $f lists $n certificates, not $N" >&2; exit 1; }
done
openssl crl -in "$DIR/openssl.pem" -CAfile "$DIR/ca.crt" -noout 2>&1 | grep -q "verify OK"
openssl crl -in "$DIR/openssl.pem" -outform DER -out "$DIR/openssl.der"
cmp <(openssl crl -inform DER -in "$DIR/keystrap.der" -noout -text | awk '/Serial Number:/ { print $3 }' | sort) \
	<(openssl crl -inform DER -in "$DIR/openssl.der" -noout -text | awk '/Serial Number:/ { print $3 }' | sort) ||
	{ echo "bench-crl: the two CRLs list other serials" >&2; exit 1; }
"$SERVER" ca crl --pem --config "$DIR/server.json" >"$DIR/keystrap.pem"

size() { stat -c %s "$1"; }
echo "CRL of $N revoked certificates, $RUNS runs each, interleaved:"
echo "  size: keystrap $(size "$DIR/keystrap.der") B DER / $(size "$DIR/keystrap.pem") B PEM; openssl ca -gencrl $(size "$DIR/openssl.der") B DER / $(size "$DIR/openssl.pem") B PEM"
echo "  keystrap-server ca crl (whole process): $(stats admin)"
echo "  openssl ca -gencrl (whole process):     $(stats openssl)"
echo "  GET /v1/crl after the revoked set changed (regenerated): $(stats regenerated)"
echo "  GET /v1/crl again (cached):                              $(stats cached)"
