# Sourced by the .ci/install-*.sh scripts: `apt_install PKG...` as root (or through sudo), with at
# most one `apt-get update` per CI run (.ci/run sets SSMTUN_CI_TMP for the marker). Sets SUDO.
SUDO=""
if [[ "$(id -u)" -ne 0 ]]; then
  command -v sudo >/dev/null 2>&1 || { echo "$(basename "$0"): not root and no sudo; cannot install $*" >&2; exit 1; }
  SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive

apt_install() {
  local marker="${SSMTUN_CI_TMP:-}/apt-updated"
  if [[ -z "${SSMTUN_CI_TMP:-}" || ! -f "$marker" ]]; then
    $SUDO apt-get update
    [[ -z "${SSMTUN_CI_TMP:-}" ]] || touch "$marker"
  fi
  $SUDO apt-get install -y --no-install-recommends "$@"
}
