#!/usr/bin/env bash
# A local PostgreSQL cluster with pg_cron preloaded, listening on loopback only: PostgreSQL 15 from Debian's
# packages, or the server whose bin folder PG_BIN names (17: ../shared/tools/postgres17/build.sh prints it).
#
#   pg-cluster.sh init DIR DBNAME [--fast] [--no-cron] [--supabase]
#                                     create DIR (idempotent) and pick a free port
#   pg-cluster.sh start DIR           start it and create DBNAME if missing; print its URL (role postgres)
#   pg-cluster.sh stop DIR            stop it (fast shutdown)
#   pg-cluster.sh destroy DIR         stop it and delete DIR
#   pg-cluster.sh url DIR             print its URL (role postgres)
#   pg-cluster.sh admin-url DIR       print the URL of the bootstrap superuser (postgres, or supabase_admin)
#   pg-cluster.sh status DIR          exit 0 when running, 3 when not
#
# --supabase shapes the cluster as a Supabase project is: the bootstrap superuser is supabase_admin, and
# `postgres` (the role the URL names) is a NON-superuser with Supabase's roles, default privileges, schema
# auth and pg_cron grants (scripts/supabase/*.sql). Where Supabase's own extensions pg_net and supabase_vault
# are installed for this PostgreSQL (../shared/tools/supabase-extensions/build.sh, or built into the PostgreSQL
# 17 of ../shared/tools/postgres17), they are preloaded and created as on Supabase, with a Vault root key of the
# cluster's own (DIR/vault_key). Without --supabase, `postgres` is the superuser and neither is loaded.
#
# DIR holds pgdata/, server.log, port, dbname, password (and admin_password, mode with --supabase).
# initdb and pg_ctl refuse to run as root, so when invoked as root they run as the postgres OS user, who
# then owns DIR.
set -euo pipefail

PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cmd=${1:-}
dir=${2:-}

die() { echo "pg-cluster: $*" >&2; exit 2; }
[[ -n "$cmd" && -n "$dir" ]] || die "usage: pg-cluster.sh init|start|stop|destroy|url|admin-url|status DIR [DBNAME] [--fast] [--no-cron] [--supabase]"
[[ -x "$PG_BIN/initdb" ]] || die "PostgreSQL server binaries not found in $PG_BIN. Run: bash scripts/ensure-postgres.sh (15), or set PG_BIN to another server's bin folder"

as_owner() {
  if [[ $(id -u) -eq 0 ]]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

pick_port() {
  local port tries=0 span=30000 eph_low
  # Stay below the kernel's ephemeral range: a client socket's local port there would make the server's bind
  # fail later (EADDRINUSE) even though nothing listened on it when the port was picked.
  if read -r eph_low _ </proc/sys/net/ipv4/ip_local_port_range 2>/dev/null && (( eph_low > 21000 )); then
    span=$(( eph_low - 20000 ))
  fi
  while (( tries < 200 )); do
    port=$(( 20000 + RANDOM % span ))
    if [[ $port -ne 5432 ]] && ! port_in_use "$port"; then echo "$port"; return 0; fi
    tries=$((tries + 1))
  done
  die "no free TCP port found on 127.0.0.1"
}

supabase_mode() { [[ "$(cat "$dir/mode" 2>/dev/null)" == supabase ]]; }

# pg_net and supabase_vault built for the PostgreSQL of PG_BIN
supabase_extensions_installed() {
  local pkglib
  if [[ -x "$PG_BIN/pg_config" ]]; then pkglib=$("$PG_BIN/pg_config" --pkglibdir); else pkglib=$(cd "$PG_BIN/../lib" && pwd); fi
  [[ -f "$pkglib/pg_net.so" && -f "$pkglib/supabase_vault.so" ]]
}

url() {
  printf 'postgres://postgres:%s@127.0.0.1:%s/%s\n' "$(cat "$dir/password")" "$(cat "$dir/port")" "$(cat "$dir/dbname")"
}

admin_user() { if supabase_mode; then echo supabase_admin; else echo postgres; fi; }
admin_password() { if supabase_mode; then cat "$dir/admin_password"; else cat "$dir/password"; fi; }

admin_url() {
  printf 'postgres://%s:%s@127.0.0.1:%s/%s\n' "$(admin_user)" "$(admin_password)" "$(cat "$dir/port")" "$(cat "$dir/dbname")"
}

# psql as the bootstrap superuser on database $1, script on stdin, extra psql options after it
admin_psql() {
  local db=$1; shift
  PGPASSWORD=$(admin_password) psql -X -q -A -t -h 127.0.0.1 -p "$(cat "$dir/port")" -U "$(admin_user)" -d "$db" \
    -v ON_ERROR_STOP=1 "$@"
}

is_running() { [[ -f "$dir/pgdata/postmaster.pid" ]] && as_owner "$PG_BIN/pg_ctl" -D "$dir/pgdata" status >/dev/null 2>&1; }

case "$cmd" in
  init)
    dbname=${3:-}
    [[ -n "$dbname" ]] || die "init needs a database name"
    fast=0; cron=1; supabase=0
    for opt in "${@:4}"; do
      case "$opt" in
        --fast) fast=1 ;;
        --no-cron) cron=0 ;;
        --supabase) supabase=1 ;;
        *) die "unknown option $opt" ;;
      esac
    done
    if [[ -f "$dir/pgdata/PG_VERSION" ]]; then exit 0; fi
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    if [[ $(id -u) -eq 0 ]]; then chown postgres: "$dir"; fi
    as_owner test -w "$dir" || die "the postgres OS user cannot write to $dir; every parent folder must be searchable by it (chmod o+x) or choose another folder with NEOTOMA_HOME"
    as_owner bash -c "umask 077; head -c 18 /dev/urandom | base64 | tr '+/' 'xy' > '$dir/password'"
    echo "$dbname" | as_owner tee "$dir/dbname" >/dev/null
    pick_port | as_owner tee "$dir/port" >/dev/null
    bootstrap_user=postgres; bootstrap_pwfile="$dir/password"
    preload=()
    [[ $cron -eq 1 ]] && preload+=(pg_cron)
    if [[ $supabase -eq 1 ]] && supabase_extensions_installed; then
      preload+=(pg_net supabase_vault)
      # Vault's root key comes from a command (vault.getkey_script), as on Supabase; this one prints the cluster's own
      as_owner bash -c "umask 077; head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > '$dir/vault_key'"
      printf '#!/bin/sh\ncat %q\n' "$dir/vault_key" | as_owner tee "$dir/vault-getkey.sh" >/dev/null
      as_owner chmod 700 "$dir/vault-getkey.sh"
    fi
    if [[ $supabase -eq 1 ]]; then
      as_owner bash -c "umask 077; head -c 18 /dev/urandom | base64 | tr '+/' 'xy' > '$dir/admin_password'"
      echo supabase | as_owner tee "$dir/mode" >/dev/null
      bootstrap_user=supabase_admin; bootstrap_pwfile="$dir/admin_password"
    fi
    as_owner "$PG_BIN/initdb" -D "$dir/pgdata" -U "$bootstrap_user" --pwfile="$bootstrap_pwfile" \
      --auth-local=scram-sha-256 --auth-host=scram-sha-256 -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 \
      || { cat "$dir/initdb.log" >&2; die "initdb failed in $dir/pgdata"; }
    {
      echo "# neotoma-ops local cluster"
      echo "listen_addresses = '127.0.0.1'"
      echo "port = $(cat "$dir/port")"
      echo "unix_socket_directories = ''"
      echo "timezone = 'UTC'"
      echo "max_connections = 200"
      echo "max_worker_processes = 32"
      if (( ${#preload[@]} > 0 )); then
        echo "shared_preload_libraries = '$(IFS=,; echo "${preload[*]}")'"
      fi
      if [[ $cron -eq 1 ]]; then
        echo "cron.database_name = '$dbname'"
        # jobs run in background workers, so they need no password over TCP
        echo "cron.use_background_workers = on"
        echo "cron.max_running_jobs = 8"
      fi
      if [[ -f "$dir/vault-getkey.sh" ]]; then
        echo "pg_net.database_name = '$dbname'"
        echo "vault.getkey_script = '$dir/vault-getkey.sh'"
      fi
      if [[ $fast -eq 1 ]]; then
        # throwaway test cluster: durability is not needed
        echo "fsync = off"
        echo "synchronous_commit = off"
        echo "full_page_writes = off"
      fi
    } | as_owner tee -a "$dir/pgdata/postgresql.conf" >/dev/null
    ;;
  start)
    [[ -f "$dir/pgdata/PG_VERSION" ]] || die "no cluster in $dir; run init first"
    if ! is_running; then
      if ! as_owner "$PG_BIN/pg_ctl" -D "$dir/pgdata" -l "$dir/server.log" -w -t 60 start >/dev/null 2>&1; then
        echo "pg-cluster: PostgreSQL failed to start; last lines of $dir/server.log:" >&2
        tail -n 30 "$dir/server.log" >&2 || true
        exit 2
      fi
    fi
    dbname=$(cat "$dir/dbname")
    if supabase_mode && [[ ! -f "$dir/roles_created" ]]; then
      admin_psql postgres -v pw="$(cat "$dir/password")" -f "$SCRIPT_DIR/supabase/roles.sql" >/dev/null \
        || die "could not create the Supabase roles in $dir"
      as_owner touch "$dir/roles_created"
    fi
    # psql expands :'name' / :"name" only in scripts read from stdin, which also quotes them safely
    created=$(admin_psql postgres -v name="$dbname" <<'SQL'
SELECT NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = :'name') AS missing \gset
\if :missing
CREATE DATABASE :"name";
SELECT 'created';
\endif
SQL
) || die "could not create database $dbname"
    if supabase_mode && [[ "$created" == created ]]; then
      admin_psql "$dbname" -f "$SCRIPT_DIR/supabase/database.sql" >/dev/null \
        || die "could not shape database $dbname as a Supabase project"
    fi
    url
    ;;
  stop)
    if is_running; then
      as_owner "$PG_BIN/pg_ctl" -D "$dir/pgdata" -m fast -w -t 60 stop >/dev/null
    fi
    ;;
  destroy)
    if [[ -d "$dir/pgdata" ]] && is_running; then
      as_owner "$PG_BIN/pg_ctl" -D "$dir/pgdata" -m immediate -w -t 60 stop >/dev/null 2>&1 || true
    fi
    rm -rf "$dir"
    ;;
  url)
    url
    ;;
  admin-url)
    admin_url
    ;;
  status)
    is_running || exit 3
    ;;
  *)
    die "unknown command $cmd"
    ;;
esac
