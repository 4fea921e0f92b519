#!/usr/bin/env bash
# The test command (npm test): pgTAP files through pg_prove, then the vitest suites, against a throwaway
# cluster created for this run and deleted afterwards (or against DATABASE_URL when it is set).
# Ends with one line "N passed, N failed" over both, and exits non-zero on any failure.
set -uo pipefail
cd "$(dirname "$0")/.."

bash scripts/ensure-postgres.sh || exit 2

work=$(mktemp -d /tmp/neotoma-test.XXXXXX)
chmod 755 "$work"
cluster="$work/cluster"
cleanup() {
  [[ -d "$cluster" ]] && bash scripts/pg-cluster.sh destroy "$cluster" >/dev/null 2>&1
  rm -rf "$work"
}
trap cleanup EXIT

if [[ -z "${DATABASE_URL:-}" ]]; then
  bash scripts/pg-cluster.sh init "$cluster" neotoma_test --fast || exit 2
  DATABASE_URL=$(bash scripts/pg-cluster.sh start "$cluster") || exit 2
  export NEOTOMA_TEST_CLUSTER_DIR="$cluster"
fi
export DATABASE_URL NEOTOMA_TEST_DATABASE_URL="$DATABASE_URL"

node dist/cli.js migrate up >"$work/migrate.log" 2>&1 || { cat "$work/migrate.log" >&2; echo "0 passed, 1 failed"; exit 1; }
# pgTAP is a test-only dependency: installed here, never by the migrations
psql -X -q -v ON_ERROR_STOP=1 "$DATABASE_URL" -c 'CREATE EXTENSION IF NOT EXISTS pgtap' >/dev/null || exit 2

pgtap_passed=0; pgtap_failed=0
shopt -s nullglob
pgtap_files=(tests/pgtap/*.sql)
if (( ${#pgtap_files[@]} > 0 )); then
  pg_prove --verbose --failures -d "$DATABASE_URL" "${pgtap_files[@]}" >"$work/pgtap.out" 2>&1
  prove_rc=$?
  cat "$work/pgtap.out"
  pgtap_passed=$(grep -cE '^ok [0-9]+' "$work/pgtap.out")
  pgtap_failed=$(grep -cE '^not ok [0-9]+' "$work/pgtap.out")
  # a file that died or broke its plan fails without a "not ok" line
  if (( prove_rc != 0 && pgtap_failed == 0 )); then pgtap_failed=1; fi
else
  echo "no pgTAP files in tests/pgtap" >&2
  pgtap_failed=1
fi

npx vitest run --reporter=default --reporter=json --outputFile.json="$work/vitest.json"
vitest_rc=$?
read -r vt_passed vt_failed < <(node -e '
  const fs = require("node:fs");
  try {
    const r = JSON.parse(fs.readFileSync(process.argv[1], "utf8"));
    const failedSuites = r.testResults.filter((f) => f.status === "failed" && f.assertionResults.length === 0).length;
    console.log(r.numPassedTests, r.numFailedTests + failedSuites + (r.numTotalTests === 0 ? 1 : 0));
  } catch { console.log(0, 1); }' "$work/vitest.json")
if (( vitest_rc != 0 && vt_failed == 0 )); then vt_failed=1; fi

passed=$((pgtap_passed + vt_passed))
failed=$((pgtap_failed + vt_failed))
echo
echo "pgTAP: ${pgtap_passed} passed, ${pgtap_failed} failed; vitest: ${vt_passed} passed, ${vt_failed} failed"
echo "${passed} passed, ${failed} failed"
(( failed == 0 ))
