#!/usr/bin/env bash
# MariaDB server and client for the MySQL end-to-end tests (test/sim/rds-mysql.test.ts,
# test/e2e/mysql-login.test.ts). The tests start their own throw-away servers (src/sim/mariadb.ts), so
# the one Debian's packaging may start is stopped. Idempotent: does nothing when mariadbd is there.
set -euo pipefail
log() { echo "install-mariadb: $*"; }
have_server() { command -v mariadbd >/dev/null 2>&1 || [[ -x /usr/sbin/mariadbd ]]; }
mariadbd_bin() { command -v mariadbd 2>/dev/null || echo /usr/sbin/mariadbd; }
if have_server && command -v mariadb >/dev/null 2>&1 && command -v mariadb-install-db >/dev/null 2>&1; then
  log "$("$(mariadbd_bin)" --version); nothing to do."
  exit 0
fi
SUDO=""
if [[ "$(id -u)" -ne 0 ]]; then
  command -v sudo >/dev/null 2>&1 || { log "not root and no sudo; cannot install MariaDB" >&2; exit 1; }
  SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
# One apt-get update per CI run (.ci/run sets SSMTUN_CI_TMP), shared with install-postgres.sh and install-systemd.sh.
marker="${SSMTUN_CI_TMP:-}/apt-updated"
if [[ -z "${SSMTUN_CI_TMP:-}" || ! -f "$marker" ]]; then
  $SUDO apt-get update
  [[ -z "${SSMTUN_CI_TMP:-}" ]] || touch "$marker"
fi
$SUDO apt-get install -y --no-install-recommends mariadb-server mariadb-client
# Without systemd the package may still start a server through its init script; the tests need none.
if command -v service >/dev/null 2>&1; then
  $SUDO service mariadb stop >/dev/null 2>&1 || true
fi
have_server || { log "mariadbd still missing after the install" >&2; exit 1; }
log "installed $("$(mariadbd_bin)" --version)"
