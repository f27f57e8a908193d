# Sourced by every script that builds mcp_filter.wasm: makes sure the pinned
# toolchain has the wasm32-wasip1 target. rust-toolchain.toml names it, but
# rustup adds a pinned target only when it installs the toolchain itself: a
# machine that already had Rust 1.95 without it fails with "can't find crate
# for `core`".
#
#   ensure_wasm_target

ensure_wasm_target() {
  local root libdir
  root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
  libdir="$(cd "$root" && rustc --print target-libdir --target wasm32-wasip1 2>/dev/null)"
  if [ -n "$libdir" ] && ls "$libdir"/libcore-*.rlib >/dev/null 2>&1; then
    return 0
  fi
  echo "rust: adding the wasm32-wasip1 target to the pinned toolchain"
  if ! (cd "$root" && rustup target add wasm32-wasip1); then
    echo "cannot add the wasm32-wasip1 target (rustup target add wasm32-wasip1 needs to reach static.rust-lang.org)" >&2
    return 1
  fi
}
