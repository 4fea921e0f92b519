#!/usr/bin/env bash
# Benchmark of public.ops_metrics() on 1,000,000 interpretation runs, 100,000 queue rows and 100,000
# users (bench/ops/load.sql), in its own throwaway cluster with the pg_cron jobs paused. Prints the
# median/min/max server-side time of REPS calls after one warm-up call, and the same on the empty database
# side by side. Usage: bash bench/ops/run.sh [REPS]  (default 21)
set -euo pipefail
cd "$(dirname "$0")/../.."
reps=${1:-21}

npm run build --silent
work=$(mktemp -d /tmp/neotoma-bench-ops.XXXXXX)
chmod 755 "$work"
trap 'bash scripts/pg-cluster.sh destroy "$work/c" >/dev/null 2>&1; rm -rf "$work"' EXIT
bash scripts/pg-cluster.sh init "$work/c" neotoma --fast >/dev/null
url=$(bash scripts/pg-cluster.sh start "$work/c")
DATABASE_URL=$url node dist/cli.js migrate up >/dev/null
psql -X -q -v ON_ERROR_STOP=1 "$url" -c "UPDATE cron.job SET active = false" >/dev/null

measure() {
  psql -X -q -t -A -v ON_ERROR_STOP=1 -v reps="$reps" "$url" <<'SQL' 2>&1 | sed -n 's/.*NOTICE:  //p'
SELECT set_config('bench.reps', :'reps', false);
DO $$
DECLARE t0 timestamptz; ms double precision[] := '{}'; n integer;
BEGIN
  PERFORM count(*) FROM public.ops_metrics();   -- warm-up
  FOR i IN 1..current_setting('bench.reps')::integer LOOP
    t0 := clock_timestamp();
    SELECT count(*) INTO n FROM public.ops_metrics();
    ms := ms || extract(epoch FROM clock_timestamp() - t0) * 1000;
  END LOOP;
  RAISE NOTICE 'rows=% median=% ms min=% ms max=% ms (n=%)', n,
    round((SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY x) FROM unnest(ms) x)::numeric, 2),
    round((SELECT min(x) FROM unnest(ms) x)::numeric, 2), round((SELECT max(x) FROM unnest(ms) x)::numeric, 2),
    array_length(ms, 1);
END $$;
SQL
}

echo "empty database:  $(measure)"
start=$(date +%s)
psql -X -q -v ON_ERROR_STOP=1 "$url" -f bench/ops/load.sql
echo "loaded in $(( $(date +%s) - start )) s: $(psql -X -t -A "$url" -c "SELECT format('%s users, %s queue rows, %s runs', (SELECT count(*) FROM public.storage_usage), (SELECT count(*) FROM public.upload_queue), (SELECT count(*) FROM public.interpretation_runs))")"
echo "large database:  $(measure)"
echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB; $(psql -X -t -A "$url" -c 'SELECT version()' | cut -d, -f1)"
