#!/usr/bin/env bash
# The test command (npm test): pgTAP files through pg_prove, then the vitest suites, in two modes, each
# against a throwaway cluster created for it and deleted afterwards:
#   plain     a local PostgreSQL where `postgres` is the superuser and neotoma-ops creates the v0.2.0 tables;
#   supabase  a Supabase-shaped cluster (scripts/pg-cluster.sh --supabase): the suite runs as the
#             non-superuser `postgres`, on Neotoma's own v0.2.0 tables (tests/fixtures/neotoma-v0.2.0),
#             with Supabase's default privileges and pg_cron grants.
# Modes run on PostgreSQL 15 (Debian's packages) and 17 (the major Supabase runs, from
# ../shared/tools/postgres17/build.sh beside the repository), in the combinations listed below. Where that tool
# is absent, 17 is reported as skipped with the reason, never counted. PG_BIN=<bin folder> instead runs the
# selected modes on that one server only.
# Usage: scripts/test.sh [all|plain|supabase] (default all). With DATABASE_URL set, that database is used
# in one mode (NEOTOMA_TEST_MODE, default plain). Prints one summary line per (major, mode) and ends with one
# line "N passed, N failed" summed over all of them, and exits non-zero on any failure.
set -uo pipefail
cd "$(dirname "$0")/.."

bash scripts/ensure-postgres.sh --test || exit 2

selection=${1:-all}
case "$selection" in
  all) modes=(plain supabase) ;;
  plain | supabase) modes=("$selection") ;;
  *) echo "usage: scripts/test.sh [all|plain|supabase]" >&2; exit 2 ;;
esac
if [[ -n "${DATABASE_URL:-}" ]]; then modes=("${NEOTOMA_TEST_MODE:-plain}"); fi

# The (major, mode) combinations: NEOTOMA_TEST_COMBINATIONS, default "15:plain 15:supabase 17:supabase" (17 is
# what Supabase runs; its plain mode adds little the cross-shape tests do not cover and would take CI past
# 15 minutes; "17:plain" adds it). The mode argument above filters them. servers: "MAJOR BIN" per major used;
# a major that cannot run here goes to skipped with its reason.
pg17_tool=${NEOTOMA_SHARED_DIR:-$(cd .. && pwd)/shared}/tools/postgres17/build.sh
combinations=(); servers=(); skipped=(); skipped_majors=" "
# the bin folder of a major in servers (empty when it has none)
bin_of() { local s; for s in "${servers[@]}"; do [[ ${s%% *} == "$1" ]] && echo "${s#* }"; done; return 0; }
if [[ -n "${DATABASE_URL:-}" ]]; then
  servers=("database $DATABASE_URL"); combinations=("database:${modes[0]}")
elif [[ -n "${PG_BIN:-}" ]]; then
  major=$("$PG_BIN/postgres" --version 2>/dev/null | sed -nE 's/.* ([0-9]+)(\.[0-9]+)+.*/\1/p')
  [[ -n "$major" ]] || { echo "PG_BIN=$PG_BIN: no PostgreSQL server there" >&2; exit 2; }
  servers=("$major $PG_BIN")
  for mode in "${modes[@]}"; do combinations+=("$major:$mode"); done
else
  for combination in ${NEOTOMA_TEST_COMBINATIONS:-15:plain 15:supabase 17:supabase}; do
    major=${combination%%:*} mode=${combination#*:}
    [[ $mode == plain || $mode == supabase ]] || { echo "NEOTOMA_TEST_COMBINATIONS: $combination: the mode is plain or supabase" >&2; exit 2; }
    [[ " ${modes[*]} " == *" $mode "* ]] || continue
    if [[ -z "$(bin_of "$major")" && $skipped_majors != *" $major "* ]]; then
      case "$major" in
        15) servers+=("15 /usr/lib/postgresql/15/bin") ;;
        17)
          if [[ -f "$pg17_tool" ]]; then
            bin=$(bash "$pg17_tool") || { echo "could not assemble PostgreSQL 17 with $pg17_tool" >&2; exit 2; }
            servers+=("17 $bin")
          else
            skipped_majors+="17 "
            skipped+=("PostgreSQL 17: SKIPPED, not run and not counted: $pg17_tool is missing (the shared tools are not beside this clone)")
          fi ;;
        *) echo "NEOTOMA_TEST_COMBINATIONS: no way to run PostgreSQL $major here (15 and 17 are supported)" >&2; exit 2 ;;
      esac
    fi
    [[ -n "$(bin_of "$major")" ]] && combinations+=("$major:$mode")
  done
fi
(( ${#skipped[@]} == 0 )) || printf '%s\n' "${skipped[@]}"

work=$(mktemp -d /tmp/neotoma-test.XXXXXX)
chmod 755 "$work"
cleanup() {
  local c s
  for c in "$work"/cluster-*; do
    # cluster-MAJOR-MODE, stopped by its own server's pg_ctl
    for s in "${servers[@]}"; do
      [[ -d "$c" && $c == "$work/cluster-${s%% *}-"* ]] && PG_BIN=${s#* } bash scripts/pg-cluster.sh destroy "$c" >/dev/null 2>&1
    done
  done
  rm -rf "$work"
}
trap cleanup EXIT

total_passed=0; total_failed=0; summary=()

# run_mode MODE MAJOR: prints its own results; adds to the totals (the server is $PG_BIN, exported)
run_mode() {
  local mode=$1 major=$2 cluster="$work/cluster-$2-$1" out="$work/$2-$1"
  local url admin_url label="PostgreSQL $2, $1"
  [[ $major == database ]] && label=$mode
  mkdir -p "$out"
  echo "=== $label ==="
  if [[ -n "${DATABASE_URL:-}" ]]; then
    url=$DATABASE_URL
    admin_url=${NEOTOMA_TEST_ADMIN_URL:-$DATABASE_URL}
  else
    local flags=(--fast)
    [[ $mode == supabase ]] && flags+=(--supabase)
    bash scripts/pg-cluster.sh init "$cluster" neotoma_test "${flags[@]}" || return 2
    url=$(bash scripts/pg-cluster.sh start "$cluster") || return 2
    admin_url=$(bash scripts/pg-cluster.sh admin-url "$cluster") || return 2
  fi

  if [[ $mode == supabase ]]; then
    # a live Neotoma v0.2.0 project: its own tables exist before neotoma-ops is installed
    psql -X -q -v ON_ERROR_STOP=1 "$url" -f tests/fixtures/neotoma-v0.2.0/schema.sql >"$out/fixture.log" 2>&1 \
      || { cat "$out/fixture.log" >&2; return 2; }
  fi
  DATABASE_URL=$url node dist/cli.js migrate up >"$out/migrate.log" 2>&1 \
    || { cat "$out/migrate.log" >&2; total_failed=$((total_failed + 1)); summary+=("$label: migrate up failed"); return 0; }
  # pgTAP is a test-only dependency, created by the bootstrap superuser (as an admin does on Supabase),
  # in schema extensions where that exists (on the role's search_path there), never by the migrations
  psql -X -q -v ON_ERROR_STOP=1 "$admin_url" >/dev/null <<'SQL' || return 2
SELECT to_regnamespace('extensions') IS NOT NULL AS has_extensions \gset
SELECT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'plpgsql_check') AS has_plpgsql_check \gset
\if :has_extensions
CREATE EXTENSION IF NOT EXISTS pgtap SCHEMA extensions;
\if :has_plpgsql_check
CREATE EXTENSION IF NOT EXISTS plpgsql_check SCHEMA extensions;
\endif
\else
CREATE EXTENSION IF NOT EXISTS pgtap;
\if :has_plpgsql_check
CREATE EXTENSION IF NOT EXISTS plpgsql_check;
\endif
\endif
SQL

  local pgtap_passed=0 pgtap_failed=0 prove_rc
  shopt -s nullglob
  local pgtap_files=(tests/pgtap/*.sql)
  if (( ${#pgtap_files[@]} > 0 )); then
    pg_prove --verbose --failures -d "$url" "${pgtap_files[@]}" >"$out/pgtap.out" 2>&1
    prove_rc=$?
    cat "$out/pgtap.out"
    # a skipped pgTAP test ("ok N # SKIP why") is not a pass
    pgtap_passed=$(grep -E '^ok [0-9]+' "$out/pgtap.out" | grep -cviE '# skip')
    pgtap_failed=$(grep -cE '^not ok [0-9]+' "$out/pgtap.out")
    # a file that died or broke its plan fails without a "not ok" line: each test it planned and did not run counts
    local planned ran
    while read -r planned ran; do
      (( planned > ran )) && pgtap_failed=$((pgtap_failed + planned - ran))
    done < <(sed -nE 's/.*You planned ([0-9]+) tests? but ran ([0-9]+).*/\1 \2/p' "$out/pgtap.out")
    if (( prove_rc != 0 && pgtap_failed == 0 )); then pgtap_failed=1; fi
  else
    echo "no pgTAP files in tests/pgtap" >&2
    pgtap_failed=1
  fi

  local vitest_rc vt_passed vt_failed vt_skipped
  DATABASE_URL=$url NEOTOMA_TEST_DATABASE_URL=$url NEOTOMA_TEST_ADMIN_URL=$admin_url NEOTOMA_TEST_MODE=$mode \
    npx vitest run --reporter=default --reporter=json --outputFile.json="$out/vitest.json"
  vitest_rc=$?
  # skipped tests are neither passed nor failed: they are counted apart, each suite with the reason in its title
  read -r vt_passed vt_failed vt_skipped < <(node -e '
    const fs = require("node:fs");
    try {
      const r = JSON.parse(fs.readFileSync(process.argv[1], "utf8"));
      const failedSuites = r.testResults.filter((f) => f.status === "failed" && f.assertionResults.length === 0).length;
      const skipped = r.testResults.flatMap((f) => f.assertionResults).filter((a) => a.status === "skipped" || a.status === "pending" || a.status === "todo");
      const why = [...new Set(skipped.map((a) => a.ancestorTitles.join(" > ")))];
      fs.writeFileSync(process.argv[2], why.map((w) => `skipped: ${w}\n`).join(""));
      console.log(r.numPassedTests, r.numFailedTests + failedSuites + (r.numTotalTests === 0 ? 1 : 0), skipped.length);
    } catch { console.log(0, 1, 0); }' "$out/vitest.json" "$out/skipped.txt")
  if (( vitest_rc != 0 && vt_failed == 0 )); then vt_failed=1; fi
  [[ -s "$out/skipped.txt" ]] && cat "$out/skipped.txt"

  # after every test of the mode: no usage counter of the shared test database has drifted from the truth
  local drift drift_passed=0 drift_failed=0
  drift=$(psql -X -q -A -t -v ON_ERROR_STOP=1 "$url" -c 'SELECT public.reconcile_storage_usage()' 2>&1)
  if [[ "$drift" == 0 ]]; then
    drift_passed=1; echo "ok - $label: reconcile_storage_usage() finds no drift after the suite"
  else
    drift_failed=1; echo "not ok - $label: reconcile_storage_usage() after the suite: $drift" >&2
  fi

  [[ -z "${DATABASE_URL:-}" ]] && bash scripts/pg-cluster.sh destroy "$cluster" >/dev/null 2>&1
  summary+=("$label: pgTAP ${pgtap_passed} passed, ${pgtap_failed} failed; vitest ${vt_passed} passed, ${vt_failed} failed, ${vt_skipped} skipped (not counted); no drift after the suite: $([[ $drift_failed == 0 ]] && echo yes || echo NO)")
  total_passed=$((total_passed + pgtap_passed + vt_passed + drift_passed))
  total_failed=$((total_failed + pgtap_failed + vt_failed + drift_failed))
}

for combination in "${combinations[@]}"; do
  major=${combination%%:*} mode=${combination#*:}
  [[ $major != database ]] && export PG_BIN=$(bin_of "$major")
  run_mode "$mode" "$major" || { echo "could not prepare the $mode test database on PostgreSQL $major" >&2; exit 2; }
done

echo
printf '%s\n' "${summary[@]}"
(( ${#skipped[@]} == 0 )) || printf '%s\n' "${skipped[@]}"
echo "${total_passed} passed, ${total_failed} failed"
(( total_failed == 0 ))
