#!/usr/bin/env bash
# systemd-analyze checks the rendered service unit (test/service/systemd.test.ts, .ci/pack-smoke.sh).
# Only the package is needed, not a running systemd: CI runs as root in a container without one.
# Idempotent: does nothing when systemd-analyze is already there.
set -euo pipefail
if command -v systemd-analyze >/dev/null 2>&1; then
  echo "install-systemd: $(systemd-analyze --version | head -n 1); nothing to do."
  exit 0
fi
SUDO=""
if [[ "$(id -u)" -ne 0 ]]; then
  command -v sudo >/dev/null 2>&1 || { echo "install-systemd: not root and no sudo" >&2; exit 1; }
  SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
# One apt-get update per CI run (.ci/run sets SSMTUN_CI_TMP), shared with install-postgres.sh.
marker="${SSMTUN_CI_TMP:-}/apt-updated"
if [[ -z "${SSMTUN_CI_TMP:-}" || ! -f "$marker" ]]; then
  $SUDO apt-get update
  [[ -z "${SSMTUN_CI_TMP:-}" ]] || touch "$marker"
fi
$SUDO apt-get install -y --no-install-recommends systemd
command -v systemd-analyze >/dev/null 2>&1 || { echo "install-systemd: systemd-analyze still missing" >&2; exit 1; }
echo "install-systemd: installed $(systemd-analyze --version | head -n 1)"
