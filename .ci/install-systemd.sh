#!/usr/bin/env bash
# systemd-analyze checks the rendered service unit (test/service/systemd.test.ts, .ci/pack-smoke.sh).
# Only the package is needed, not a running systemd: CI runs as root in a container without one.
# Idempotent: does nothing when systemd-analyze is already there.
set -euo pipefail
if command -v systemd-analyze >/dev/null 2>&1; then
  echo "install-systemd: $(systemd-analyze --version | head -n 1); nothing to do."
  exit 0
fi
# shellcheck source=apt.sh
source "$(dirname "$0")/apt.sh"
apt_install systemd
command -v systemd-analyze >/dev/null 2>&1 || { echo "install-systemd: systemd-analyze still missing" >&2; exit 1; }
echo "install-systemd: installed $(systemd-analyze --version | head -n 1)"
