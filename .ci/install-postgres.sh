#!/usr/bin/env bash
# Ensure PostgreSQL server binaries (initdb, pg_ctl, postgres) plus psql and pgbench are installed.
# The test suite starts its own throw-away clusters (test/helpers/postgres.ts), so any cluster that
# Debian's packaging creates and auto-starts is stopped and set to manual start.
# Idempotent: does nothing when everything is already present. Intended for Debian 12, run as root.
set -euo pipefail

log() { echo "install-postgres: $*"; }

find_bindir() { # highest-version /usr/lib/postgresql/<v>/bin with the server binaries
  local d
  for d in $(printf '%s\n' /usr/lib/postgresql/*/bin | sort -t/ -k4,4 -V -r); do
    if [[ -x "$d/initdb" && -x "$d/pg_ctl" && -x "$d/postgres" ]]; then
      echo "$d"
      return 0
    fi
  done
  return 1
}

have_tool() { # name bindir
  command -v "$1" >/dev/null 2>&1 || [[ -x "$2/$1" ]]
}

is_complete() {
  local bindir
  bindir="$(find_bindir)" || return 1
  have_tool psql "$bindir" && have_tool pgbench "$bindir"
}

if is_complete; then
  bindir="$(find_bindir)"
  log "PostgreSQL already installed in $bindir ($("$bindir/postgres" --version)); nothing to do."
  exit 0
fi

log "PostgreSQL server/client binaries missing; installing postgres via apt-get."
# shellcheck source=apt.sh
source "$(dirname "$0")/apt.sh"
apt_install postgresql postgresql-client

# Debian creates and starts a "main" cluster on 5432; the tests make their own, so stop it.
if command -v pg_lsclusters >/dev/null 2>&1; then
  while read -r ver name _port status _rest; do
    [[ -n "${ver:-}" ]] || continue
    if [[ "$status" == online* ]]; then
      log "stopping auto-started cluster $ver/$name"
      $SUDO pg_ctlcluster "$ver" "$name" stop || true
    fi
    conf="/etc/postgresql/$ver/$name/start.conf"
    if [[ -f "$conf" ]] && ! grep -qx manual "$conf"; then
      log "setting cluster $ver/$name to manual start"
      echo manual | $SUDO tee "$conf" >/dev/null
    fi
  done < <(pg_lsclusters -h 2>/dev/null || true)
fi
if command -v service >/dev/null 2>&1; then
  $SUDO service postgresql stop >/dev/null 2>&1 || true
fi

if ! is_complete; then
  log "installation finished but initdb/psql/pgbench are still missing" >&2
  exit 1
fi
bindir="$(find_bindir)"
log "installed PostgreSQL in $bindir ($("$bindir/postgres" --version))."
