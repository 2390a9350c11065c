#!/usr/bin/env bash
# The package as a user gets it: `npm pack` (prepack builds it), install the tarball into a temporary
# prefix with production dependencies only, and run the installed `ssmtun` from outside the clone:
# --help, demo --once, and `service install --dry-run` whose unit systemd-analyze must accept.
# Nothing of the clone may be referenced by the installed copy.
set -euo pipefail
cd "$(dirname "$0")/.."
repo="$PWD"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
log() { echo "pack-smoke: $*"; }

tarball="$(npm pack --silent --pack-destination "$tmp" | tail -n 1)"
log "packed $tarball ($(du -k "$tmp/$tarball" | cut -f1) KiB)"
listing="$(tar tzf "$tmp/$tarball")"
for f in package/dist/cli/index.js package/docs/config.md package/README.md package/systemd/ssmtun.service \
  package/launchd/dev.ssmtun.daemon.plist; do
  grep -qx "$f" <<<"$listing" || { log "missing from the package: $f"; exit 1; }
done
if grep -E '^package/(src|test|bench|\.ci)/' <<<"$listing"; then log "sources or tests in the package"; exit 1; fi

npm install -g --prefix "$tmp/prefix" --omit=dev --no-audit --no-fund --loglevel=error "$tmp/$tarball"
bin="$tmp/prefix/bin/ssmtun"
pkg="$tmp/prefix/lib/node_modules/ssmtun"
case "$(readlink -f "$bin")" in
  "$repo"/*) log "the installed ssmtun points into the clone"; exit 1 ;;
esac
[[ ! -e "$pkg/node_modules/pino-pretty" && ! -e "$pkg/node_modules/tsx" ]] || { log "dev dependencies installed"; exit 1; }
head -n 1 "$pkg/dist/cli/index.js" | grep -qx '#!/usr/bin/env node' || { log "no shebang"; exit 1; }

mkdir -p "$tmp/home"
cd "$tmp"
run() { env -i PATH="$(dirname "$(command -v node)"):/usr/sbin:/usr/bin:/sbin:/bin" HOME="$tmp/home" "$@"; }
run "$bin" --help | grep -q '^usage: ssmtun' || { log "--help failed"; exit 1; }
log "installed ssmtun --help ok"
run "$bin" demo --once
log "installed ssmtun demo --once ok"

run "$bin" service install --dry-run --platform linux >"$tmp/plan"
unit="$tmp/unit/ssmtun.service"
mkdir -p "$tmp/unit" "$tmp/rt"
awk '/^# \//{f = ($0 ~ /ssmtun\.service$/); next} /^\$ /{f=0} f' "$tmp/plan" >"$unit"
grep -q "^ExecStart=$(command -v node) $pkg/dist/cli/index.js daemon --config " "$unit" || {
  log "unexpected ExecStart:"; grep ExecStart "$unit"; exit 1; }
if command -v systemd-analyze >/dev/null 2>&1; then
  out="$(XDG_RUNTIME_DIR="$tmp/rt" systemd-analyze --user verify "$unit" 2>&1)" || { log "$out"; exit 1; }
  [[ -z "$out" ]] || { log "systemd-analyze: $out"; exit 1; }
  log "installed unit passes systemd-analyze verify"
elif [[ "${CI:-}" == "true" ]]; then
  log "systemd-analyze missing in CI"; exit 1
fi
log "ok"
