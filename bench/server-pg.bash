# shellcheck shell=bash
# BENCH_PG=1 make bench-server: one against two keystrap-server instances sharing one
# PostgreSQL database (a private cluster, tests/lib/postgres.bash), instead of the SQLite runs.
# Sourced by bench/server.sh once it has the PKI, the policies and the real evidence (REAL,
# policy_put, load's arguments). Each instance, each load generator and PostgreSQL is pinned
# with taskset (BENCH_PG_SERVER_CPUS, default "1 1": instance A, then B; BENCH_PG_LOAD_CPUS,
# default 0, the load generators and PostgreSQL), real evidence, SECONDS_EACH at maximum
# throughput. The load is the same for one instance and two: two load generators of
# BENCH_CONCURRENCY connections, BENCH_NODES/2 nodes each, both against A or one against each. Besides handshakes/s and each
# instance's CPU it samples pg_locks every millisecond for the share of the run in which
# some instance held the store's writer lock: that share is what limits how far instances can
# add up (their sum cannot pass the measured rate divided by it), whatever the cores.
# BENCH_BEFORE (another keystrap-server binary, say main's before a change) is measured alike.

# shellcheck source=tests/lib/postgres.bash
. tests/lib/postgres.bash
read -r -a PG_SERVER_CPUS <<<"${BENCH_PG_SERVER_CPUS:-1 1}"
PG_LOAD_CPUS=${BENCH_PG_LOAD_CPUS:-0}

PG_PIDS=()
pg_bench_stop() {
	local p
	for p in "${PG_PIDS[@]}"; do
		kill -TERM "$p" 2>/dev/null || true
		wait "$p" 2>/dev/null || true
	done
	PG_PIDS=()
}
trap 'pg_bench_stop; stop; pg_stop' EXIT

# The cluster and everything it forks on the load's CPUs: set on this shell while it starts.
taskset -p -c "$PG_LOAD_CPUS" $$ >/dev/null
pg_start
taskset -p -c "0-$(($(nproc) - 1))" $$ >/dev/null

# Instances a and b: the bench's PKI and KEK, the one database.
for i in a b; do
	mkdir -p "$DIR/$i"
	cp "$DIR"/{ca,tls}.{crt,key} "$DIR"/ek-ca.{crt,key} "$DIR/kek" "$DIR/$i/"
	# Throughput, not shedding, is measured: a loop stalled on the lock is not refused as overloaded.
	SRV_PORT=$(free_port) soft_server_config "$DIR/$i" "$PG_URL" '"max_queue_delay":60000' 
done
cp "$DIR/a/server.json" "$DIR/server.json" # policy_put and the approvals go through it
policy_put "$DIR/policy-pg.json" "$REAL_PCRS" "$REAL_EVENTS"

# pg_serve BINARY N: N instances (a, then b), each on its CPU; their PIDs in PG_PIDS.
pg_serve() {
	local bin=$1 n=$2 k i port
	for ((k = 0; k < n; k++)); do
		i=$([ "$k" = 0 ] && echo a || echo b)
		port=$(jq -r '.listen | sub(".*:"; "")' "$DIR/$i/server.json")
		taskset -c "${PG_SERVER_CPUS[$k]}" "$bin" serve --config "$DIR/$i/server.json" 2>>"$DIR/$i/server.log" &
		PG_PIDS+=($!)
		for _ in $(seq 100); do
			curl -sf --cacert "$DIR/ca.crt" "https://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break
			sleep 0.05
		done
	done
}

# lock_share SECONDS: the share of samples (one a millisecond) in which the writer lock was held.
lock_share() {
	pg_sql keystrap "DO \$\$DECLARE held int := 0; n int := 0; t0 timestamptz := clock_timestamp(); BEGIN
		WHILE clock_timestamp() < t0 + interval '$1 s' LOOP
			n := n + 1;
			IF EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted) THEN held := held + 1; END IF;
			PERFORM pg_sleep(0.001);
		END LOOP;
		RAISE NOTICE 'lock-share % %', held, n; END\$\$" 2>&1 | sed -n 's/.*lock-share \([0-9]*\) \([0-9]*\).*/\1 \2/p'
}

# pg_run_one LABEL BINARY N: N instances under the same load, two load generators of
# BENCH_CONCURRENCY connections each (against A and B, or both against A), at maximum for
# SECONDS_EACH; three lines.
pg_run_one() {
	local label=$1 bin=$2 n=$3 g i port loads=() total=0 rates="" cpus="" share r f c out rate=() pct=()
	pg_serve "$bin" "$n"
	for g in 0 1; do
		i=$([ "$g" = 1 ] && [ "$n" = 2 ] && echo b || echo a)
		port=$(jq -r '.listen | sub(".*:"; "")' "$DIR/$i/server.json")
		taskset -c "$PG_LOAD_CPUS" "$LOAD" --url "https://127.0.0.1:$port" --ca "$DIR/ca.crt" \
			--ek-ca-cert "$DIR/ek-ca.crt" --ek-ca-key "$DIR/ek-ca.key" --nodes "$((NODES / 2))" \
			--concurrency "$CONCURRENCY" --approve "$bin node approve --config $DIR/$i/server.json" \
			--floor "$DIR/floor" --max --duration "$SECONDS_EACH" --server-pid "${PG_PIDS[$([ "$i" = a ] && echo 0 || echo 1)]}" \
			"${REAL[@]}" >"$DIR/pg-$label-$n-$g.out" 2>&1 &
		loads+=($!)
	done
	# The sampler starts once the nodes have enrolled (a second or two) and the maximum run is on.
	sleep 3
	share=$(lock_share "$((SECONDS_EACH - 3))")
	for k in "${loads[@]}"; do wait "$k" || true; done
	for g in 0 1; do
		i=$([ "$g" = 1 ] && [ "$n" = 2 ] && echo b || echo a)
		out=$DIR/pg-$label-$n-$g.out
		r=$(sed -n 's/^max .* = *\([0-9.]*\)\/s;.*/\1/p' "$out")
		f=$(sed -n 's/^max .*; \([0-9]*\) failed.*/\1/p' "$out")
		c=$(sed -n 's/.*server CPU [0-9.]* ms per handshake (\([0-9]*\)% of one core).*/\1/p' "$out" | tail -n1)
		[ -n "$r" ] || { echo "bench-server: no result from load $g (instance $i); $out says:" >&2; tail -3 "$out" >&2; r=0; }
		total=$(awk -v t="$total" -v r="$r" 'BEGIN { print t + r }')
		rates+="${rates:+ + }$r/s via $i${f:+ ($f failed)}"
		rate[g]=$r pct[g]=${c:-0}
	done
	# One instance: both loads saw the same process (its share of a core once, over both rates).
	if [ "$n" = 1 ]; then
		cpus=$(awk -v p="${pct[0]}" -v r="$total" -v cpu="${PG_SERVER_CPUS[0]}" 'BEGIN {
			printf "a on CPU %s: %.0f%% of it, %.2f ms a handshake", cpu, p, (r > 0 ? 10 * p / r : 0) }')
	else
		for g in 0 1; do
			cpus+="${cpus:+; }$(awk -v p="${pct[g]}" -v r="${rate[g]}" -v i="$([ "$g" = 0 ] && echo a || echo b)" -v cpu="${PG_SERVER_CPUS[$g]}" 'BEGIN {
				printf "%s on CPU %s: %.0f%% of it, %.2f ms a handshake", i, cpu, p, (r > 0 ? 10 * p / r : 0) }')"
		done
	fi
	pg_bench_stop
	read -r held samples <<<"${share:-0 0}"
	printf '  %-22s %7.1f/s = %s\n' "$label, $n instance$([ "$n" = 1 ] || echo s)" "$total" "$rates"
	printf '  %-22s server CPU: %s\n' "" "$cpus"
	printf '  %-22s writer lock held %s\n' "" "$(awk -v h="$held" -v n="$samples" -v t="$total" 'BEGIN {
			if (n == 0) { print "(not sampled)"; exit }
			s = h / n; printf "in %.0f%% of %d samples", 100 * s, n
			if (s > 0) printf ": at most %.0f/s through it, however many instances and cores", t / s }')"
	printf '%s\t%s\t%s\n' "$label" "$n" "$total" >>"$DIR/pg-summary"
}

echo "== PostgreSQL: one vs two instances on one database, real evidence, maximum throughput, ${SECONDS_EACH}s each"
echo "   instances on CPUs ${PG_SERVER_CPUS[*]} (A, B), load generators and PostgreSQL on CPU $PG_LOAD_CPUS; ${CONCURRENCY} connections per instance"
: >"$DIR/pg-summary"
pg_run_one "this build" "$SERVER" 1
pg_run_one "this build" "$SERVER" 2
if [ -n "${BENCH_BEFORE:-}" ]; then
	pg_run_one "before" "$BENCH_BEFORE" 1
	pg_run_one "before" "$BENCH_BEFORE" 2
fi
awk -F'\t' '{ r[$1, $2] = $3; if (!($1 in seen)) { seen[$1] = 1; order[++n] = $1 } }
	END { for (i = 1; i <= n; i++) if (r[order[i], 1] > 0)
		printf "  %-28s two instances / one = %.2fx (goal >= 1.7x where the cores allow it)\n", order[i], r[order[i], 2] / r[order[i], 1] }' \
	"$DIR/pg-summary"
"$SERVER" audit verify --config "$DIR/a/server.json" | sed 's/^/  after the runs: /'
echo "load after:  $(uptime) (other work on this machine shows in these figures)"
