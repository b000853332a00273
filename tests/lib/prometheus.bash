# shellcheck shell=bash
# bats helpers for a real Prometheus: its own free loopback port and data directory under
# $PROM_DIR, scraping every second and evaluating dist/prometheus's rules every second, read
# back through its HTTP API. Load after ../lib/swtpm (free_port).

PROM_RULES=${PROM_RULES:-$BATS_TEST_DIRNAME/../../dist/prometheus/keystrap.rules.yml}

# prom_start JOB SCRAPE_CONFIGS: Prometheus with SCRAPE_CONFIGS (YAML list items, indented two
# spaces); waits until JOB's target is up.
prom_start() {
	mkdir -p "$PROM_DIR/data"
	PROM_PORT=$(free_port)
	cat >"$PROM_DIR/prometheus.yml" <<YML
global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files:
  - $PROM_RULES
scrape_configs:
$2
YML
	prometheus --config.file="$PROM_DIR/prometheus.yml" --storage.tsdb.path="$PROM_DIR/data" \
		--web.listen-address="127.0.0.1:$PROM_PORT" --log.level=warn 2>>"$PROM_DIR/log" &
	echo $! >"$PROM_DIR/pid"
	prom_wait "up{job=\"$1\"}" 1 || { cat "$PROM_DIR/log"; return 1; }
}

# prom_stop: the Prometheus prom_start started, by PID.
prom_stop() {
	[ ! -f "$PROM_DIR/pid" ] || kill "$(cat "$PROM_DIR/pid")" 2>/dev/null || true
	rm -f "$PROM_DIR/pid"
}

# prom QUERY: the value of the query's first series now (empty when it has none).
prom() {
	curl -s "http://127.0.0.1:$PROM_PORT/api/v1/query" --data-urlencode "query=$1" |
		jq -r '.data.result[0].value[1] // empty'
}

# prom_wait QUERY VALUE: until Prometheus has VALUE for QUERY (a scrape or two), at most 20 s;
# else prints what it had and fails.
prom_wait() {
	local v
	for _ in $(seq 200); do
		v=$(prom "$1" 2>/dev/null)
		[ "$v" = "$2" ] && return 0
		sleep 0.1
	done
	echo "$1: '$v', not '$2'"
	return 1
}

# alerts ALERT STATE: the instances ALERT is in STATE (pending, firing) for now, per Prometheus.
alerts() {
	curl -s "http://127.0.0.1:$PROM_PORT/api/v1/alerts" |
		jq -r --arg a "$1" --arg s "$2" '.data.alerts[] | select(.labels.alertname == $a and .state == $s) | .labels.instance'
}

# firing ALERT: the instances ALERT fires for now.
firing() { alerts "$1" firing; }

# alert_wait ALERT STATE INSTANCE: until ALERT is in STATE for INSTANCE (and no other), at most
# 10 s; else prints what Prometheus had and fails.
alert_wait() {
	local got
	for _ in $(seq 50); do
		got=$(alerts "$1" "$2")
		[ "$got" = "$3" ] && return 0
		sleep 0.2
	done
	echo "$1 $2 for '$got', not '$3'"
	return 1
}
