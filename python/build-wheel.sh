#!/usr/bin/env bash
# Build the fairrec wheel: the workspace's `fairrec` binary is copied into fairrec/_bin/
# (the wheel's `fairrec` command runs it), then maturin builds the `fairrec._native`
# module (crates/python) and packs both.
#   python/build-wheel.sh [OUT_DIR]      (default: target/wheels)
# Needs `maturin` on PATH (pip install maturin). PROFILE=dev builds both halves in cargo's
# dev profile (dependencies optimised, fairrec's own code not: quicker to build, for tests).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/.." && pwd)"
out="$(mkdir -p "${1:-$root/target/wheels}" && cd "${1:-$root/target/wheels}" && pwd)"
profile="${PROFILE:-release}"
command -v maturin >/dev/null || { echo "build-wheel.sh: maturin is not on PATH (pip install maturin)" >&2; exit 1; }
case "$profile" in
  release) (cd "$root" && cargo build --release --bin fairrec); bin="$root/target/release/fairrec"; flags=(--release) ;;
  dev) (cd "$root" && cargo build --bin fairrec); bin="$root/target/debug/fairrec"; flags=() ;;
  *) echo "build-wheel.sh: PROFILE must be release or dev, not $profile" >&2; exit 1 ;;
esac
mkdir -p "$here/fairrec/_bin"
# Line tables are for backtraces on the developer's machine; the wheel goes without.
strip -o "$here/fairrec/_bin/fairrec" "$bin" 2>/dev/null || cp "$bin" "$here/fairrec/_bin/fairrec"
chmod 755 "$here/fairrec/_bin/fairrec"
rm -f "$out"/fairrec-*.whl
(cd "$here" && maturin build "${flags[@]}" --out "$out" --compatibility linux --quiet 2>&1 | grep -v '^$' || true)
wheel="$(ls "$out"/fairrec-*.whl)"
echo "wheel: $wheel ($(du -h "$wheel" | cut -f1))"
