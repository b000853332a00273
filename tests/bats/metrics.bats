#!/usr/bin/env bats
# keystrap-server's metrics as an operator sees them (issue 16 item 2): a real server on
# loopback over a real swtpm, scraped every second by a real Prometheus (its own port, data
# directory and the rules of dist/prometheus), and read back through Prometheus's HTTP API:
# policy version, trust and expiry, /readyz, refusals by reason, nodes by last attestation,
# certificate expiry, the audit log's verification and the alert it raises.

load ../lib/swtpm
load ../lib/server
load ../lib/prometheus

PEER=$BATS_TEST_DIRNAME/../../build/asan/attest-peer
DIST=$BATS_TEST_DIRNAME/../../dist

setup_file() {
	command -v prometheus >/dev/null || skip "prometheus is not installed (tools/install-deps.sh)"
	swtpm_start
	export SRV_DIR=$BATS_FILE_TMPDIR/srv SRV_PORT PROM_PORT PROM_DIR=$BATS_FILE_TMPDIR/prom U EK
	SRV_PORT=$(free_port)
	server_pki "$SRV_DIR"
	server_config "$SRV_DIR" "0 7"
	server_start "$SRV_DIR"
	EK=$(ek_hash)
	U=$(head -c 32 /dev/urandom | xxd -p -c 64)
	"$PEER" start "$U" >"$BATS_FILE_TMPDIR/start.json"
	prom_start_server
}

teardown_file() {
	prom_stop
	server_stop "$SRV_DIR" || true
	swtpm_stop
}

setup() {
	cd "$BATS_TEST_TMPDIR"
}

# prom_start_server: Prometheus scraping the server over TLS (its CA).
prom_start_server() {
	prom_start keystrap "  - job_name: keystrap
    scheme: https
    tls_config:
      ca_file: $SRV_DIR/ca.crt
    static_configs:
      - targets: [\"127.0.0.1:$SRV_PORT\"]"
}

# ready: /readyz's status code, then its body.
ready() {
	curl -s -w '\n%{http_code}' --cacert "$SRV_DIR/ca.crt" "https://127.0.0.1:$SRV_PORT/readyz" | tac
}

# missing_metrics FILE...: every keystrap_ metric name the files use that the server's /metrics
# does not export (a histogram's _bucket, _sum and _count are its own lines there).
# The probe's metrics (keystrap_probe_*) are its textfile's, not the server's: probe.bats checks those.
missing_metrics() {
	local scrape n
	scrape=$(curl -s --cacert "$SRV_DIR/ca.crt" "https://127.0.0.1:$SRV_PORT/metrics")
	for n in $(grep -ho 'keystrap_[a-z_]*' "$@" | grep -v '^keystrap_probe_' | sort -u); do
		grep -qE "^$n(\{| )" <<<"$scrape" || echo "$n"
	done
}

@test "Prometheus reads the policy version the operators loaded; an under-signed version shows as untrusted, not in force" {
	local v
	v=$(cat "$OPERATOR_DIR/policy.version")
	prom_wait keystrap_policy_version "$v"
	prom_wait keystrap_policy_trusted 1
	prom_wait keystrap_ready 1
	server_policy "$SRV_DIR" "0 7" >/dev/null
	prom_wait keystrap_policy_version $((v + 1))
	prom_wait keystrap_policy_trusted 1
	run ready
	[ "$output" = "200
ok" ]
	# Twin: a version written into the database past the operators (its text changed under the
	# old signatures): the version moves, trust does not, and nothing is admitted.
	v=$((v + 1))
	sqlite3 "$SRV_DIR/keystrap.db" "INSERT INTO policies (version, loaded_us, text, signatures)
		SELECT $v + 1, loaded_us, replace(text, '\"version\":$v,', '\"version\":$((v + 1)),'), signatures
		FROM policies WHERE version = $v"
	prom_wait keystrap_policy_version $((v + 1))
	prom_wait keystrap_policy_trusted 0
	prom_wait keystrap_ready 0
	[ -z "$(prom keystrap_policy_expiry_timestamp_seconds)" ]
	run ready
	[ "$output" = "503
the stored policy version $((v + 1)) is signed by 0 of the required 2 operator keys" ]
	# Operators sign the next version: trusted again.
	echo $((v + 1)) >"$OPERATOR_DIR/policy.version"
	server_policy "$SRV_DIR" "0 7" >/dev/null
	prom_wait keystrap_policy_version $((v + 2))
	prom_wait keystrap_policy_trusted 1
	prom_wait keystrap_ready 1
}

@test "build info, and the CA's and TLS certificate's expiry as the files have them" {
	local ca tls
	prom_wait "keystrap_build_info{version=\"$("$KEYSTRAP_SERVER" --version | cut -d' ' -f2)\"}" 1
	[ -z "$(prom 'keystrap_build_info{version="0.0.0"}')" ]
	ca=$(date -d "$(openssl x509 -enddate -noout -in "$SRV_DIR/ca.crt" | cut -d= -f2)" +%s)
	tls=$(date -d "$(openssl x509 -enddate -noout -in "$SRV_DIR/tls.crt" | cut -d= -f2)" +%s)
	prom_wait 'keystrap_ca_certificate_expiry_timestamp_seconds{depth="0"}' "$ca"
	prom_wait keystrap_tls_certificate_expiry_timestamp_seconds "$tls"
	# One CA in the chain: no depth 1.
	[ -z "$(prom 'keystrap_ca_certificate_expiry_timestamp_seconds{depth="1"}')" ]
	# Both expire in 2 days: within the 14 days of the rules (their "for" is 5 minutes, so pending).
	prom_wait 'ALERTS{alertname="KeystrapTLSCertificateExpiring",alertstate="pending"}' 1
	prom_wait 'ALERTS{alertname="KeystrapCACertificateExpiring",alertstate="pending",depth="0"}' 1
}

@test "refusals are counted under their reason: a new EK's enrollment request, then not approved; an admitted start counts none" {
	local body
	prom_wait 'keystrap_refusals_total{reason="enrollment-requested"}' 0
	run post /v1/attest/start "$BATS_FILE_TMPDIR/start.json"
	[ "$(status_of "$output")" = 403 ]
	prom_wait 'keystrap_refusals_total{reason="enrollment-requested"}' 1
	prom_wait 'keystrap_refusals_total{reason="not-approved"}' 0
	run post /v1/attest/start "$BATS_FILE_TMPDIR/start.json"
	[ "$(status_of "$output")" = 403 ]
	prom_wait 'keystrap_refusals_total{reason="not-approved"}' 1
	prom_wait 'keystrap_refusals_total{reason="enrollment-requested"}' 1
	printf '{"nope":1}' >bad.json
	run post /v1/attest/start bad.json
	[ "$(status_of "$output")" = 400 ]
	prom_wait 'keystrap_refusals_total{reason="malformed"}' 1
	prom_wait keystrap_nodes_renewal_overdue 0
	# Approved: its start is a challenge, and no count moves.
	srv node approve "$EK" --id node1.example >/dev/null
	prom_wait 'keystrap_nodes{state="approved"}' 1
	prom_wait 'keystrap_nodes_last_attested{age="never"}' 1
	challenge "$BATS_FILE_TMPDIR/ch.json"
	prom_wait 'sum(keystrap_refusals_total)' 3
	# No label holds the EK or the peer.
	body=$(curl -s --cacert "$SRV_DIR/ca.crt" "https://127.0.0.1:$SRV_PORT/metrics")
	[[ "$body" != *"$EK"* ]]
	[[ "$body" != *127.0.0.1* ]]
	[ "$(grep -c '^keystrap_refusals_total{reason="[a-z-]*"} [0-9]*$' <<<"$body")" = 16 ]
}

@test "a node's attestation moves it from never attested to within the hour" {
	prom_wait 'keystrap_nodes_last_attested{age="1h"}' 0
	"$PEER" finish "$U" "$BATS_FILE_TMPDIR/ch.json" >finish.json
	run post /v1/attest/finish finish.json
	[ "$(status_of "$output")" = 200 ]
	prom_wait 'keystrap_nodes_last_attested{age="1h"}' 1
	prom_wait 'keystrap_nodes_last_attested{age="never"}' 0
	prom_wait 'keystrap_nodes_last_attested{age="1d"}' 0
	prom_wait keystrap_nodes_renewal_overdue 0
	# Its certificate's last attestation put a day back, and its expiry past: overdue.
	sqlite3 "$SRV_DIR/keystrap.db" "UPDATE nodes SET attested_us = attested_us - 86400000000 - 1000000,
		cert_not_after = cert_not_after - 86400"
	prom_wait 'keystrap_nodes_last_attested{age="7d"}' 1
	prom_wait 'keystrap_nodes_last_attested{age="1h"}' 0
	prom_wait keystrap_nodes_renewal_overdue 1
}

@test "an expired policy: /readyz 503 naming it, ready 0 in Prometheus, an approved node's start counted as policy-expired" {
	local o=$OPERATOR_DIR v exp
	v=$(($(cat "$o/policy.version") + 1))
	echo "$v" >"$o/policy.version"
	exp=$(date -u -d '+3 seconds' +%Y-%m-%dT%H:%M:%SZ)
	policy_json "0 7" "$v" | jq -c --arg e "$exp" '.expires = $e' >short.json
	policy_sign "$o" short.json op1 op2
	srv policy load short.json --signature short.json.op1.sig --signature short.json.op2.sig >/dev/null
	prom_wait keystrap_policy_version "$v"
	prom_wait keystrap_policy_expiry_timestamp_seconds "$(date -d "$exp" +%s)"
	run ready
	[ "$output" = "200
ok" ]
	prom_wait 'keystrap_refusals_total{reason="policy-expired"}' 0
	sleep 3
	run ready
	[ "$output" = "503
policy version $v expired at $exp" ]
	prom_wait keystrap_ready 0
	# Signed and valid: trusted, only past its expiry.
	prom_wait keystrap_policy_trusted 1
	run post /v1/attest/start "$BATS_FILE_TMPDIR/start.json"
	[ "$(status_of "$output")" = 503 ]
	prom_wait 'keystrap_refusals_total{reason="policy-expired"}' 1
	prom_wait 'keystrap_refusals_total{reason="policy-untrusted"}' 0
	# The next version: ready again, and the same start is a challenge.
	server_policy "$SRV_DIR" "0 7" >/dev/null
	run ready
	[ "$output" = "200
ok" ]
	prom_wait keystrap_ready 1
	run post /v1/attest/start "$BATS_FILE_TMPDIR/start.json"
	[ "$(status_of "$output")" = 200 ]
	prom_wait 'keystrap_refusals_total{reason="policy-expired"}' 1
}

@test "/readyz takes GET and HEAD only" {
	run curl -s -o /dev/null -w '%{http_code}' -I --cacert "$SRV_DIR/ca.crt" "https://127.0.0.1:$SRV_PORT/readyz"
	[ "$output" = 200 ]
	run curl -s -i -X POST --cacert "$SRV_DIR/ca.crt" "https://127.0.0.1:$SRV_PORT/readyz"
	[[ "$output" == "HTTP/1.1 405 "* ]]
	[[ "$output" == *"Allow: GET"* ]]
	[[ "$output" == *'{"error":"only GET is allowed here"}'* ]]
}

@test "every metric the rules and the dashboard name is in a real scrape; the rules load and pass their tests" {
	run missing_metrics "$DIST/prometheus/keystrap.rules.yml" "$DIST/grafana/keystrap.json"
	[ "$status" -eq 0 ]
	[ -z "$output" ]
	jq -e '.panels | length > 10' "$DIST/grafana/keystrap.json"
	# Twin: a name the server does not export is found.
	echo 'rate(keystrap_no_such_metric_total[5m])' >fake.yml
	run missing_metrics fake.yml
	[ "$output" = keystrap_no_such_metric_total ]
	run promtool check rules "$DIST/prometheus/keystrap.rules.yml"
	[ "$status" -eq 0 ]
	run promtool test rules "$DIST/prometheus/keystrap.rules.test.yml"
	[ "$status" -eq 0 ]
	# Prometheus itself evaluates every rule without error.
	run curl -s "http://127.0.0.1:$PROM_PORT/api/v1/rules"
	[ "$(jq '[.data.groups[].rules[]] | length' <<<"$output")" = 12 ]
	[ "$(jq '[.data.groups[].rules[] | select(.health != "ok")] | length' <<<"$output")" = 0 ]
}

@test "the audit log verifies; edited, the restarted server says it does not and Prometheus fires KeystrapAuditUnverified" {
	prom_wait keystrap_audit_verified 1
	[ -z "$(firing KeystrapAuditUnverified)" ]
	server_stop "$SRV_DIR"
	sqlite3 "$SRV_DIR/keystrap.db" "UPDATE audit SET reasons = 'edited' WHERE seq = 2"
	server_start "$SRV_DIR"
	grep -q 'event=audit-unverified reason="audit record 2 (after 1 verified) breaks the chain"' "$SRV_DIR/server.log"
	prom_wait keystrap_audit_verified 0
	alert_wait KeystrapAuditUnverified firing "127.0.0.1:$SRV_PORT"
	# The server still answers: a verification failure is an alert, not an outage.
	run ready
	[ "${lines[0]}" = 200 ]
}

# median_ms URL: the median of 21 GETs' total time (a new TLS connection each), in ms.
median_ms() {
	for _ in $(seq 21); do
		curl -s -o /dev/null -w '%{time_total}\n' --cacert "$SRV_DIR/ca.crt" "$1"
	done | sort -n | sed -n 11p | awk '{ printf "%.1f", $1 * 1000 }'
}

@test "10,000 nodes: the gauges count them all, and a scrape of /metrics costs about what /healthz does (figures in the log)" {
	local d=$BATS_TEST_TMPDIR/big port m h t0 t1
	mkdir -p "$d"
	port=$(free_port)
	sed -e "s|\"database\":\"[^\"]*\"|\"database\":\"$d/keystrap.db\"|" -e "s|127.0.0.1:$SRV_PORT|127.0.0.1:$port|" \
		"$SRV_DIR/server.json" >"$d/server.json"
	cp "$SRV_DIR"/{ca,tls}.{crt,key} "$d/"
	seq 10000 | awk '{ printf "%08x%056x\n", ($1 * 2654435761) % 4294967296, $1 }' >inv.txt
	"$KEYSTRAP_SERVER" node approve --file inv.txt --config "$d/server.json" >/dev/null
	# What the server's audit check reads at start and every 5 minutes: the same walk.
	t0=$(date +%s%N)
	"$KEYSTRAP_SERVER" audit verify --config "$d/server.json" >/dev/null
	t1=$(date +%s%N)
	echo "# audit verify of 10001 records: $(((t1 - t0) / 1000000)) ms" >&3
	SRV_PORT=$port server_start "$d"
	sleep 1.2 # the registry is counted every second
	run curl -s --cacert "$SRV_DIR/ca.crt" "https://127.0.0.1:$port/metrics"
	[[ "$output" == *$'\nkeystrap_nodes{state="approved"} 10000\n'* ]]
	[[ "$output" == *$'\nkeystrap_nodes_last_attested{age="never"} 10000\n'* ]]
	[[ "$output" == *$'\nkeystrap_nodes_last_attested{age="1h"} 0\n'* ]]
	[[ "$output" == *$'\nkeystrap_audit_verified 1\n'* ]]
	m=$(median_ms "https://127.0.0.1:$port/metrics")
	h=$(median_ms "https://127.0.0.1:$port/healthz")
	# The server's own time per answer, from its histogram: sum over count, in µs.
	run curl -s --cacert "$SRV_DIR/ca.crt" "https://127.0.0.1:$port/metrics"
	echo "# 10000 nodes, 10000 audit records: /metrics median $m ms, /healthz median $h ms (21 GETs each, new TLS connection each); in the server: $(awk '
		/^keystrap_request_duration_seconds_sum\{endpoint="\/(metrics|healthz)"/ { split($1, a, "\""); s[a[2]] = $2 }
		/^keystrap_request_duration_seconds_count\{endpoint="\/(metrics|healthz)"/ { split($1, a, "\""); c[a[2]] = $2 }
		END { for (e in s) printf "%s %.0f us, ", e, s[e] / c[e] * 1e6 }' <<<"$output")audit check $(sed -n 's/^keystrap_audit_check_duration_seconds //p' <<<"$output") s" >&3
	SRV_PORT=$port server_stop "$d"
	# Generous (sanitizers, a shared 2-core machine): the page does not scan the registry.
	awk -v m="$m" -v h="$h" 'BEGIN { exit !(m < 10 * h + 50) }'
}
