#!/usr/bin/env bash
# Benchmark of public.cleanup_stale_interpretations(): 1,000 stale runs among 10,000 and among 1,000,000
# runs (plus 200 live runs each time). Own throwaway cluster; the pg_cron sweep is unscheduled there so that
# only the measured calls run. Prints one line per table size: median/min/max of REPS timed calls (server-side
# clock, the call alone) and the ratio of the medians. Usage: bash bench/timeouts/run.sh [REPS]  (default 7;
# PG_BIN=<bin folder> for another server than Debian's PostgreSQL 15)
set -euo pipefail
cd "$(dirname "$0")/../.."
reps=${1:-7}
stale=1000
active=200

npm run build --silent
work=$(mktemp -d /tmp/neotoma-bench-timeouts.XXXXXX)
chmod 755 "$work"
trap 'bash scripts/pg-cluster.sh destroy "$work/c" >/dev/null 2>&1; rm -rf "$work"' EXIT
bash scripts/pg-cluster.sh init "$work/c" neotoma --fast >/dev/null
url=$(bash scripts/pg-cluster.sh start "$work/c")
DATABASE_URL=$url node dist/cli.js migrate up >/dev/null
echo "PostgreSQL $(psql -X -q -t -A "$url" -c 'SHOW server_version')"
psql -X -q -v ON_ERROR_STOP=1 "$url" -c "SELECT cron.unschedule(jobid) FROM cron.job" >/dev/null

# The quota refunds alone, to attribute time: the set-based refund the sweep uses (one call for the 1,000 runs)
# and, for comparison, 1,000 calls of public.refund_interpretation_quota(); both rolled back. Prints "SET ONE".
time_refunds() {
  psql -X -q -t -A "$url" <<'SQL' 2>&1 | sed -n 's/.*NOTICE:  //p'
DO $$
DECLARE t0 timestamptz; t_set numeric; r record; v_users uuid[]; v_at timestamptz[];
BEGIN
  SELECT array_agg(user_id), array_agg(created_at) INTO v_users, v_at FROM public.interpretation_runs
   WHERE status IN ('pending', 'running') AND timeout_at < now();
  t0 := clock_timestamp();
  PERFORM neotoma_ops.quota_refund_interpretations(v_users, v_at);
  t_set := round((extract(epoch FROM clock_timestamp() - t0) * 1000)::numeric, 2);
  UPDATE public.storage_usage SET interpretation_count_month = 50;
  t0 := clock_timestamp();
  FOR r IN SELECT user_id, created_at FROM public.interpretation_runs
            WHERE status IN ('pending', 'running') AND timeout_at < now() LOOP
    PERFORM public.refund_interpretation_quota(r.user_id, r.created_at);
  END LOOP;
  RAISE NOTICE '% %', t_set, round((extract(epoch FROM clock_timestamp() - t0) * 1000)::numeric, 2);
  RAISE EXCEPTION USING ERRCODE = 'P0001', MESSAGE = 'rolled back';
END $$;
SQL
}

time_one() {
  psql -X -q -t -A -v ON_ERROR_STOP=1 "$url" <<'SQL'
DO $$
DECLARE t0 timestamptz; n integer;
BEGIN
  t0 := clock_timestamp();
  n := public.cleanup_stale_interpretations();
  RAISE NOTICE '% %', n, round((extract(epoch FROM clock_timestamp() - t0) * 1000)::numeric, 2);
END $$;
SQL
}

declare -A medians
for total in 10000 1000000; do
  psql -X -q -v ON_ERROR_STOP=1 -v total=$total -v stale=$stale -v active=$active "$url" -f bench/timeouts/load.sql
  times=()
  for ((r = 0; r < reps; r++)); do
    out=$(time_one 2>&1 | sed -n 's/.*NOTICE:  //p')
    n=${out%% *}; ms=${out##* }
    [[ "$n" == "$stale" ]] || { echo "expected $stale runs failed, got $n" >&2; exit 1; }
    times+=("$ms")
    psql -X -q -v ON_ERROR_STOP=1 "$url" -f bench/timeouts/reset.sql
  done
  refunds=()
  for ((r = 0; r < 3; r++)); do refunds+=("$(time_refunds)"); done
  sorted=$(printf '%s\n' "${times[@]}" | sort -g)
  median=$(echo "$sorted" | sed -n "$(( (reps + 1) / 2 ))p")
  medians[$total]=$median
  printf 'runs=%-8s stale=%s failed per call=%s  median=%s ms  min=%s ms  max=%s ms  (n=%s)\n' \
    "$total" "$stale" "$stale" "$median" "$(echo "$sorted" | head -1)" "$(echo "$sorted" | tail -1)" "$reps"
  set_ms=$(printf '%s\n' "${refunds[@]}" | awk '{print $1}' | sort -g | sed -n 2p)
  one_ms=$(printf '%s\n' "${refunds[@]}" | awk '{print $2}' | sort -g | sed -n 2p)
  printf '          quota refunds alone (median of 3): one set-based call for the %s runs %s ms; %s single calls %s ms\n' \
    "$stale" "$set_ms" "$stale" "$one_ms"
done
node -e 'const [a,b]=process.argv.slice(1).map(Number); console.log(`ratio 1,000,000 / 10,000 = ${(b/a).toFixed(2)}`)' \
  "${medians[10000]}" "${medians[1000000]}"
psql -X -q "$url" -c "SELECT version()" -t -A
