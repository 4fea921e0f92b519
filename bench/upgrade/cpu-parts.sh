#!/usr/bin/env bash
# The CPU-bound parts of the upgrade, alone, on several servers and the same data: the hash check of 1,000,000
# rows (a regular expression per row, as the validation of sources_content_hash_sha256_lowercase_hex), the
# floor's aggregate over them, and 1,000,000 PL/pgSQL calls. The servers take turns, REPS rounds; prints the best
# time of each query per server (ms). Tells what a major changes from what a build changes
# (docs/benchmarks.md, "PostgreSQL 15 and 17 side by side").
# Usage: bash bench/upgrade/cpu-parts.sh [REPS] [BIN_FOLDER...]   (default 5; Debian's 15 and, where the shared
#        tools are beside the repository, their 17)
set -euo pipefail
cd "$(dirname "$0")/../.."
reps=${1:-5}; shift || true
bins=("$@")
if (( ${#bins[@]} == 0 )); then
  bins=(/usr/lib/postgresql/15/bin)
  [[ -f ../shared/tools/postgres17/build.sh ]] && bins+=("$(bash ../shared/tools/postgres17/build.sh)")
fi
work=$(mktemp -d /tmp/neotoma-bench-cpu.XXXXXX)
chmod 755 "$work"
cleanup() { local i; for i in "${!bins[@]}"; do PG_BIN=${bins[$i]} bash scripts/pg-cluster.sh destroy "$work/c$i" >/dev/null 2>&1 || true; done; rm -rf "$work"; }
trap cleanup EXIT
urls=()
for i in "${!bins[@]}"; do
  PG_BIN=${bins[$i]} bash scripts/pg-cluster.sh init "$work/c$i" neotoma --fast --no-cron >/dev/null
  urls+=("$(PG_BIN=${bins[$i]} bash scripts/pg-cluster.sh start "$work/c$i")")
  psql -X -q -v ON_ERROR_STOP=1 "${urls[$i]}" <<'SQL'
CREATE TABLE h AS SELECT md5(i::text) || md5((-i)::text) AS content_hash, i % 100000 AS user_no, i::bigint AS size
  FROM generate_series(1, 1000000) i;
VACUUM ANALYZE h;
CREATE FUNCTION plus_one(x integer) RETURNS integer LANGUAGE plpgsql AS $$ BEGIN RETURN x + 1; END $$;
SQL
done
for ((rep = 0; rep < reps; rep++)); do
  for i in "${!bins[@]}"; do
    # server-side clock around each query; no parallel workers, so one core per query on every server
    psql -X -q -t -A -v ON_ERROR_STOP=1 "${urls[$i]}" <<'SQL' 2>&1 | sed "s/^/$i /" >>"$work/times"
SET max_parallel_workers_per_gather = 0;
DO $$
DECLARE t0 timestamptz; n bigint;
BEGIN
  t0 := clock_timestamp(); SELECT count(*) INTO n FROM h WHERE content_hash ~ '^[0-9a-f]{64}$';
  RAISE NOTICE 'regex %', extract(epoch FROM clock_timestamp() - t0) * 1000;
  t0 := clock_timestamp(); SELECT count(*) INTO n FROM (SELECT user_no, sum(size), count(*) FROM h GROUP BY user_no) x;
  RAISE NOTICE 'aggregate %', extract(epoch FROM clock_timestamp() - t0) * 1000;
  t0 := clock_timestamp(); SELECT sum(plus_one(i)) INTO n FROM generate_series(1, 1000000) i;
  RAISE NOTICE 'plpgsql %', extract(epoch FROM clock_timestamp() - t0) * 1000;
END $$;
SQL
  done
done
for i in "${!bins[@]}"; do
  psql -X -q -t -A "${urls[$i]}" -c 'SELECT version()'
  for q in regex aggregate plpgsql; do
    best=$(sed -n "s/^$i .*NOTICE:  $q //p" "$work/times" | sort -g | head -1)
    printf '  %s %.0f ms' "$q" "$best"
  done
  echo
done
