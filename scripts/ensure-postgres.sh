#!/usr/bin/env bash
# Makes sure PostgreSQL 15, pg_cron, pgTAP and pg_prove are installed (Debian packages); with --test also what
# the test suite runs against: pgbouncer (the pooler tests), prometheus (promtool, for the alert rules) and
# plpgsql_check (the static check of every PL/pgSQL function).
# Installs what is missing when run as root; otherwise prints the exact command and exits 2.
set -euo pipefail

packages=(${NEOTOMA_PG_PACKAGES:-postgresql-15 postgresql-15-cron postgresql-15-pgtap libtap-parser-sourcehandler-pgtap-perl})
if [[ "${1:-}" == --test ]]; then packages+=(pgbouncer prometheus postgresql-15-plpgsql-check); fi

missing=()
for pkg in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
  [[ "$status" == "install ok installed" ]] || missing+=("$pkg")
done

if [[ ${#missing[@]} -eq 0 ]]; then
  exit 0
fi

if [[ $(id -u) -ne 0 ]]; then
  {
    echo "neotoma-ops: these Debian packages are missing: ${missing[*]}."
    echo "Install them as root, then run the command again:"
    echo "  sudo apt-get update && sudo apt-get install -y ${missing[*]}"
  } >&2
  exit 2
fi

echo "neotoma-ops: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
