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
# shellcheck source=apt.sh
source "$(dirname "$0")/apt.sh"
apt_install mariadb-server mariadb-client
# Without systemd the package may still start a server through its init script; the tests need none.
if command -v service >/dev/null 2>&1; then
  $SUDO service mariadb stop >/dev/null 2>&1 || true
fi
have_server || { log "mariadbd still missing after the install" >&2; exit 1; }
log "installed $("$(mariadbd_bin)" --version)"
