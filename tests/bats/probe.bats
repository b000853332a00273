#!/usr/bin/env bats
# Synthetic provisioning (issue 16 item 5): keystrap-server probe attests a probe node (a
# software TPM, server/soft-node.c) to a real keystrap-server over the nodes' HTTPS protocol and
# writes the result as a Prometheus textfile. The probe's EK CA is added to ek_ca as an operator
# would; the probe group's policy lists a secret the probe must never receive, while a real
# swtpm node of the default group, given the same secret by the same policy, receives it.
# Failures: an expired policy (exit 5, the server's reason quoted), a server that is not there
# (exit 4), and an identity the registry does not hold as an approved probe (exit 1, one line).

load ../lib/swtpm
load ../lib/server
load ../lib/firmware
load ../lib/prometheus

setup_file() {
	swtpm_start
	export SRV_DIR=$BATS_FILE_TMPDIR/srv SRV_PORT PROBE_DIR=$BATS_FILE_TMPDIR/probe EK SECRET PROBE_EK
	SRV_PORT=$(free_port)
	server_pki "$SRV_DIR"
	PROBE_EK=$("$KEYSTRAP_SERVER" probe init "$PROBE_DIR" | sed -n 's/^probe identity in .*: EK //p')
	# Room for a firmware event log in a finish, as attest.bats gives it.
	MAX_BODY=262144 server_config "$SRV_DIR" "0 7"
	# The operator adds the probe's EK CA to ek_ca.
	sed -i "s|\"ek_ca\":\[|\"ek_ca\":[\"$PROBE_DIR/ek-ca.crt\",|" "$SRV_DIR/server.json"
	SECRET="keystrap-probe-$(head -c 12 /dev/urandom | xxd -p)"
	printf '%s' "$SECRET" | srv secret set db >/dev/null
	POLICY_GROUPS='{"default":{"secrets":["db"]},"probe":{"secrets":["db"]}}' server_policy "$SRV_DIR" "0 7" >/dev/null
	server_start "$SRV_DIR"
	EK=$("$KEYSTRAP" status --ek)
	srv node approve "$EK" --id node-a >/dev/null
}

teardown_file() {
	server_stop "$SRV_DIR" || true
	swtpm_stop
}

setup() {
	cd "$BATS_TEST_TMPDIR"
}

teardown() {
	# A test that stopped halfway leaves its node_exporter and Prometheus: stopped by PID.
	[ ! -f "$BATS_TEST_TMPDIR/exporter.pid" ] || kill "$(cat "$BATS_TEST_TMPDIR/exporter.pid")" 2>/dev/null || true
	PROM_DIR=$BATS_TEST_TMPDIR/prom prom_stop
	swtpm_reboot
}

probe() {
	"$KEYSTRAP_SERVER" probe --config "$SRV_DIR/server.json" --identity "$PROBE_DIR" --textfile "$PWD/probe.prom" "$@"
}

metric() { sed -n "s/^$1 //p" probe.prom; }

@test "probe init: an owner-only EK, its certificate and the CA to trust; a second init in the same directory is refused" {
	[[ "$PROBE_EK" =~ ^[0-9a-f]{64}$ ]]
	[ "$(stat -c %a "$PROBE_DIR/ek.key")" = 600 ]
	run openssl verify -CAfile "$PROBE_DIR/ek-ca.crt" "$PROBE_DIR/ek.crt"
	[ "$output" = "$PROBE_DIR/ek.crt: OK" ]
	# The CA's key was never written: the directory holds nothing else that could sign.
	[ "$(ls "$PROBE_DIR" | sort | tr '\n' ' ')" = "ek-ca.crt ek.crt ek.key " ]
	run "$KEYSTRAP_SERVER" probe init "$PROBE_DIR"
	[ "$status" -eq 1 ] || { echo "$output"; false; }
	[ "$output" = "keystrap-server: probe init: $PROBE_DIR/ek.key exists: $PROBE_DIR holds a probe identity already" ]
}

@test "probe before approval: unknown, then approved outside the probe group: one line, exit 1, nothing asked of the server" {
	local before
	before=$(srv audit export | grep -c "$PROBE_EK" || true)
	run probe
	[ "$status" -eq 1 ] || { echo "$output"; false; }
	[ "$output" = "keystrap-server: probe: EK $PROBE_EK is unknown to the registry: approve it with node approve $PROBE_EK --id probe-1 --probe" ]
	# A probe that cannot start has failed as well: the metric says so.
	[ "$(metric keystrap_probe_success)" = 0 ]
	[ "$(metric keystrap_probe_duration_seconds)" = 0.000000 ]
	srv node approve "$PROBE_EK" --id probe-1 >/dev/null
	run probe
	[ "$status" -eq 1 ] || { echo "$output"; false; }
	[ "$output" = "keystrap-server: probe: node probe-1 (EK $PROBE_EK) is in group 'default', not a probe: approve it with --probe" ]
	[ "$(metric keystrap_probe_success)" = 0 ]
	# Only the operator's approval was recorded: no attestation of it.
	[ "$(srv audit export | grep -c "$PROBE_EK")" = $((before + 1)) ]
	[ "$(srv audit export | grep "$PROBE_EK" | grep -c attest || true)" = 0 ]
	run srv node approve probe-1 --group probe
	[ "$status" -eq 1 ] || { echo "$output"; false; }
	[ "$output" = "keystrap-server: group 'probe' is the probe nodes': approve a probe with --probe" ]
	run srv node approve probe-1 --probe --group default
	[ "$status" -eq 2 ] || { echo "$output"; false; }
	run srv node approve probe-1 --probe
	[ "$status" -eq 0 ] || { echo "$output"; false; }
	[ "$(srv node show probe-1 --json | jq -r .group)" = probe ]
}

@test "probe: attests over HTTPS, textfile success 1 with a latency > 0; the policy's secret for its group withheld, a real node of the default group gets it" {
	srv node approve "$PROBE_EK" --id probe-1 --probe >/dev/null
	run probe
	[ "$status" -eq 0 ] || { echo "$output"; false; }
	[[ "$output" =~ ^probe\ probe-1\ attested\ in\ [0-9.]+\ s:\ certificate\ [0-9A-F]+\ under\ policy\ [0-9]+,\ no\ secrets$ ]]
	[ "$(metric keystrap_probe_success)" = 1 ]
	awk '{ exit !($1 > 0 && $1 < 10) }' <<<"$(metric keystrap_probe_duration_seconds)"
	now=$(date +%s)
	ts=$(metric keystrap_probe_last_run_timestamp_seconds)
	[ "$ts" -le "$now" ] && [ "$ts" -gt $((now - 30)) ]
	[ "$(stat -c %a probe.prom)" = 644 ]
	# node_exporter's parser reads it: promtool checks the exposition format.
	run promtool check metrics <probe.prom
	[ "$status" -eq 0 ] || { echo "$output"; false; }
	# No temporary file beside it.
	[ "$(ls | tr '\n' ' ')" = "probe.prom " ]
	# Every probe metric the alert rules name is in it (metrics.bats checks the server's).
	for n in $(grep -ho 'keystrap_probe_[a-z_]*' "$BATS_TEST_DIRNAME/../../dist/prometheus/keystrap.rules.yml" | sort -u); do
		grep -q "^$n " probe.prom || { echo "$n is not in the textfile"; false; }
	done
	[ "$(grep -c '^keystrap_probe_[a-z_]* ' probe.prom)" = 3 ]
	# The server's record: an attestation of probe-1 that withheld the group's secrets.
	run bash -c "'$KEYSTRAP_SERVER' audit export --config '$SRV_DIR/server.json' | jq -r 'select(.node_id == \"probe-1\" and .action == \"attest-finish\") | .reasons' | tail -1"
	[[ "$output" == *"probe node: the group's secrets withheld"* ]]
	# The twin: a node of the default group, under the same policy, receives the secret.
	mkdir out
	run "$KEYSTRAP" attest --server "https://127.0.0.1:$SRV_PORT" --ca "$SRV_DIR/ca.crt" --out-dir out
	[ "$status" -eq 0 ] || { echo "$output"; false; }
	[ "$(cat out/secrets/db)" = "$SECRET" ]
}

@test "probe: an expired policy is the server's refusal, exit 5 with its reason, and success 0" {
	local o=$OPERATOR_DIR v exp
	srv node approve "$PROBE_EK" --id probe-1 --probe >/dev/null
	v=$(($(cat "$o/policy.version") + 1))
	echo "$v" >"$o/policy.version"
	exp=$(date -u -d '+2 seconds' +%Y-%m-%dT%H:%M:%SZ)
	policy_json "0 7" "$v" | jq -c --arg e "$exp" '.expires = $e' >short.json
	policy_sign "$o" short.json op1 op2
	srv policy load short.json --signature short.json.op1.sig --signature short.json.op2.sig >/dev/null
	run probe
	[ "$status" -eq 0 ] || { echo "$output"; false; }
	[ "$(metric keystrap_probe_success)" = 1 ]
	sleep 3
	run probe
	[ "$status" -eq 5 ] || { echo "$output"; false; }
	[ "$output" = "keystrap-server: probe probe-1: refused by the server at /v1/attest/start (503): 'policy version $v expired at $exp'" ]
	[ "$(metric keystrap_probe_success)" = 0 ]
	awk '{ exit !($1 > 0) }' <<<"$(metric keystrap_probe_duration_seconds)"
	# The next version: the probe passes again.
	POLICY_GROUPS='{"default":{"secrets":["db"]},"probe":{"secrets":["db"]}}' server_policy "$SRV_DIR" "0 7" >/dev/null
	run probe
	[ "$status" -eq 0 ] || { echo "$output"; false; }
	[ "$(metric keystrap_probe_success)" = 1 ]
}

@test "probe: a server that is not there is unreachable, exit 4, and success 0" {
	local port
	srv node approve "$PROBE_EK" --id probe-1 --probe >/dev/null
	port=$(free_port)
	run probe --url "https://127.0.0.1:$port" --timeout 2
	[ "$status" -eq 4 ] || { echo "$output"; false; }
	[[ "$output" == "keystrap-server: probe probe-1: cannot reach https://127.0.0.1:$port/v1/attest/start: "* ]]
	[ "$(echo "$output" | wc -l)" = 1 ]
	[ "$(metric keystrap_probe_success)" = 0 ]
	# The twin: the same probe against the server that is there.
	run probe --timeout 2
	[ "$status" -eq 0 ] || { echo "$output"; false; }
	[ "$(metric keystrap_probe_success)" = 1 ]
}

@test "probe: bad options and a broken identity are one line each" {
	run "$KEYSTRAP_SERVER" probe --config "$SRV_DIR/server.json" --timeout 0
	[ "$status" -eq 1 ] || { echo "$output"; false; }
	[ "$output" = "keystrap-server: --timeout '0' is not a number of seconds from 1 to 600" ]
	run "$KEYSTRAP_SERVER" probe
	[ "$status" -eq 2 ] || { echo "$output"; false; }
	run probe --identity "$PWD/none"
	[ "$status" -eq 1 ] || { echo "$output"; false; }
	[[ "$output" == "keystrap-server: probe identity: "*"$PWD/none/ek.key"*"(make one with keystrap-server probe init $PWD/none)" ]]
	mkdir open
	cp -p "$PROBE_DIR"/* open/
	chmod 644 open/ek.key
	run probe --identity "$PWD/open"
	[ "$status" -eq 1 ] || { echo "$output"; false; }
	[[ "$output" == "keystrap-server: probe identity: "*"open/ek.key"* ]]
	[ "$(echo "$output" | wc -l)" = 1 ]
}

# ms of one run of a command, whole process, wall clock; the command must succeed.
ms_of() {
	local t0 t1
	t0=$(date +%s%N)
	"$@" >/dev/null 2>&1 || return 1
	t1=$(date +%s%N)
	echo $(((t1 - t0) / 1000000))
}

median() { sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }

@test "figures: the probe against keystrap attest on the swtpm, interleaved, same server (printed)" {
	local p=() k=() inner=() i
	srv node approve "$PROBE_EK" --id probe-1 --probe >/dev/null
	mkdir out
	for i in $(seq 10); do
		p+=("$(ms_of probe)")
		inner+=("$(metric keystrap_probe_duration_seconds)")
		k+=("$(ms_of "$KEYSTRAP" attest --server "https://127.0.0.1:$SRV_PORT" --ca "$SRV_DIR/ca.crt" --out-dir out)")
		swtpm_reboot
	done
	[ "${#p[@]}" = 10 ] && [ "${#k[@]}" = 10 ]
	echo "# probe median $(printf '%s\n' "${p[@]}" | median) ms whole process ($(printf '%s\n' "${inner[@]}" | median) s start to result); keystrap attest (swtpm) median $(printf '%s\n' "${k[@]}" | median) ms; 10 runs each, interleaved; binaries of $(dirname "$KEYSTRAP_SERVER")" >&3
}

@test "probe with a golden machine's logs: a policy pinning real PCRs admits it; without the logs it is refused, exit 5, naming the PCR" {
	local fw=$BATS_TEST_DIRNAME/../data/eventlogs/event-arch-linux.bin
	srv node approve "$PROBE_EK" --id probe-1 --probe >/dev/null
	# The golden machine: this swtpm after the firmware's measurements and keystrap's enter-initrd.
	replay_firmware "$fw"
	"$KEYSTRAP" measure --phase enter-initrd >/dev/null
	cp "$KEYSTRAP_MEASURE_LOG" golden.cel
	POLICY_GROUPS='{"default":{"secrets":["db"]},"probe":{"secrets":["db"]}}' server_policy "$SRV_DIR" "0 7 12" >/dev/null
	# The twin first: no logs, PCRs of zeros, refused by the policy.
	run probe
	[ "$status" -eq 5 ] || { echo "$output"; false; }
	[[ "$output" == "keystrap-server: probe probe-1: refused by the server at /v1/attest/finish (403): 'PCR 0 "* ]]
	[ "$(metric keystrap_probe_success)" = 0 ]
	run probe --event-log "$fw" --measure-log golden.cel
	[ "$status" -eq 0 ] || { echo "$output"; false; }
	[ "$(metric keystrap_probe_success)" = 1 ]
	# The same logs in the identity directory are taken by default (as the timer's unit runs it).
	cp "$fw" "$PROBE_DIR/event-log"
	cp golden.cel "$PROBE_DIR/measure-log"
	run probe
	rm -f "$PROBE_DIR/event-log" "$PROBE_DIR/measure-log"
	[ "$status" -eq 0 ] || { echo "$output"; false; }
	# A log that does not parse: one line, exit 1, nothing sent.
	head -c 100 "$fw" >broken.bin
	run probe --event-log broken.bin
	[ "$status" -eq 1 ]
	[ "$output" = "keystrap-server: probe: broken.bin or (no measurement log) does not parse as a firmware event log and a CEL-JSON measurement log" ]
	# Back to the file's policy for whatever runs after: the swtpm rebooted, PCRs at their reset values.
	swtpm_reboot
	POLICY_GROUPS='{"default":{"secrets":["db"]},"probe":{"secrets":["db"]}}' server_policy "$SRV_DIR" "0 7" >/dev/null
}

@test "a real node_exporter exports the textfile and a real Prometheus reads it: success 1; failing, KeystrapProbeFailing pending for that instance" {
	command -v prometheus-node-exporter >/dev/null || skip "prometheus-node-exporter is not installed (tools/install-deps.sh)"
	command -v prometheus >/dev/null || skip "prometheus is not installed (tools/install-deps.sh)"
	local port
	export PROM_DIR=$BATS_TEST_TMPDIR/prom PROM_PORT
	srv node approve "$PROBE_EK" --id probe-1 --probe >/dev/null
	mkdir textfile
	port=$(free_port)
	prometheus-node-exporter --collector.disable-defaults --collector.textfile \
		--collector.textfile.directory="$PWD/textfile" --web.listen-address="127.0.0.1:$port" 2>exporter.log &
	echo $! >exporter.pid
	run probe --textfile "$PWD/textfile/keystrap-probe.prom"
	[ "$status" -eq 0 ] || { echo "$output"; false; }
	prom_start node "  - job_name: node
    static_configs:
      - targets: [\"127.0.0.1:$port\"]"
	prom_wait keystrap_probe_success 1
	[ "$(prom 'keystrap_probe_duration_seconds > 0')" != "" ]
	[ -z "$(alerts KeystrapProbeFailing pending)" ]
	# The server "gone": the probe fails, the next scrape says so, and the alert is on its way.
	run probe --textfile "$PWD/textfile/keystrap-probe.prom" --url "https://127.0.0.1:$(free_port)" --timeout 1
	[ "$status" -eq 4 ]
	prom_wait keystrap_probe_success 0
	alert_wait KeystrapProbeFailing pending "127.0.0.1:$port"
	[ -z "$(firing KeystrapProbeFailing)" ]
	prom_stop
	kill "$(cat exporter.pid)"
	rm exporter.pid
}
