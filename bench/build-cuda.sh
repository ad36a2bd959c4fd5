#!/usr/bin/env bash
# Build the CUDA fairrec on a machine with no GPU and no CUDA toolkit (issue 24): NVIDIA's
# pip wheels laid out as a toolkit (nvcc, headers, cuBLAS, cuRAND, NVRTC, NVVM), a stub
# libcuda.so for the link (the real driver is loaded where the binary runs), then
# `cargo build --release --features cuda` of the binary and of the GPU test binary.
#
#   bench/build-cuda.sh          # compute capability 90 (H100, H200)
#   bench/build-cuda.sh 80       # A100
#
# A rerun reuses the toolkit ($FAIRREC_CUDA_HOME, default ~/.cache/fairrec/cuda-13.0) and
# the target directory ($CARGO_TARGET_DIR, default target/cuda). The first build took
# ~15 minutes on 2 cores on 2026-12-05 (candle's kernels are compiled by nvcc). Prints the
# paths and sizes of what it built, and bundles them in target/cuda/bundle/ (stripped,
# gzipped, with built.txt); bench/device-check.sh runs that bundle on a GPU machine. Needs
# python3 with pip (for the wheels), gcc and cargo.
set -euo pipefail
cd "$(dirname "$0")/.."
CAP=${1:-90}
case "$CAP" in '' | *[!0-9]*) echo "compute capability: a number such as 90 or 80, not \`$CAP\`" >&2; exit 2 ;; esac
TK=${FAIRREC_CUDA_HOME:-$HOME/.cache/fairrec/cuda-13.0}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target/cuda}
# The toolkit the GPU machines' driver (580, CUDA 13.0) runs.
WHEELS="nvidia-cuda-nvcc==13.0.88 nvidia-cuda-runtime==13.0.96 nvidia-cuda-crt==13.0.88
  nvidia-cuda-nvrtc==13.0.88 nvidia-cuda-cccl==13.0.85 nvidia-nvvm==13.0.88
  nvidia-cublas==13.1.0.3 nvidia-curand==10.4.0.35"
ROOT=$TK/nvidia/cu13

if [ ! -x "$ROOT/bin/nvcc" ] || [ ! -e "$ROOT/lib/stubs/libcuda.so" ]; then
  echo "laying out the CUDA toolkit in $TK (pip wheels, ~700 MB)" >&2
  mkdir -p "$TK/wheels"
  # shellcheck disable=SC2086
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.11 \
    --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform manylinux_2_12_x86_64 \
    --platform manylinux2010_x86_64 -d "$TK/wheels" $WHEELS
  for w in "$TK"/wheels/*.whl; do
    python3 -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])' "$w" "$TK"
  done
  chmod +x "$ROOT"/bin/* "$ROOT"/nvvm/bin/* 2>/dev/null || true
  # The libraries come versioned only (libcublas.so.13): the linker wants libcublas.so.
  for lib in "$ROOT"/lib/lib*.so.*; do
    base=${lib%%.so.*}.so
    [ -e "$base" ] || ln -s "$(basename "$lib")" "$base"
  done
  [ -e "$ROOT/lib64" ] || ln -s lib "$ROOT/lib64"
  # A stub driver library exporting every driver symbol cudarc declares (soname
  # libcuda.so.1, so that the binary loads the real driver where it runs). Each stub
  # answers CUDA_ERROR_NO_DEVICE (100), so that with the stub on LD_LIBRARY_PATH the
  # binary also runs, CPU only, on this machine (`--device cuda` then says no device).
  cudarc=$(ls -d "$HOME"/.cargo/registry/src/*/cudarc-0.19.* 2>/dev/null | tail -1)
  if [ -z "$cudarc" ]; then
    cargo fetch >/dev/null
    cudarc=$(ls -d "$HOME"/.cargo/registry/src/*/cudarc-0.19.* | tail -1)
  fi
  grep -ohE 'pub (unsafe )?fn cu[A-Za-z0-9_]+' "$cudarc/src/driver/sys/mod.rs" |
    sed -E 's/.* fn //' | sort -u | sed 's/.*/int &(void) { return 100; }/' > "$TK/libcuda-stub.c"
  mkdir -p "$ROOT/lib/stubs"
  gcc -shared -fPIC -Wl,-soname,libcuda.so.1 -o "$ROOT/lib/stubs/libcuda.so" "$TK/libcuda-stub.c"
  ln -sf libcuda.so "$ROOT/lib/stubs/libcuda.so.1"
fi

export PATH=$ROOT/bin:$PATH
export CUDA_ROOT=$ROOT CUDA_PATH=$ROOT CUDA_TOOLKIT_ROOT_DIR=$ROOT
export CUDA_COMPUTE_CAP=$CAP
export LIBRARY_PATH=$ROOT/lib:$ROOT/lib/stubs${LIBRARY_PATH:+:$LIBRARY_PATH}
export CPATH=$ROOT/include:$ROOT/include/cccl${CPATH:+:$CPATH}
nvcc --version | tail -2 >&2

cargo build --release -p fairrec --features cuda
# The GPU tests (crates/cli/tests/gpu.rs): the test binary's path from cargo's messages.
test_bin=$(cargo test --release -p fairrec --features cuda --test gpu --no-run \
  --message-format=json 2>/dev/null | python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "gpu" and m.get("executable"):
        print(m["executable"])')
# The random-checkpoint writer (CPU-only: it only writes files) for the 7B loading check.
cargo build --release -p fairrec-lm --example random_checkpoint
writer=$CARGO_TARGET_DIR/release/examples/random_checkpoint
bin=$CARGO_TARGET_DIR/release/fairrec
# The bundle bench/device-check.sh runs: both binaries stripped and gzipped (the device
# tool carries at most 64 MiB).
bundle=$CARGO_TARGET_DIR/bundle
mkdir -p "$bundle"
for pair in "fairrec:$bin" "gpu-tests:$test_bin" "random-checkpoint:$writer"; do
  name=${pair%%:*}
  strip -o "$bundle/$name" "${pair#*:}"
  gzip -9f "$bundle/$name"
done
out=$bundle/built.txt
{
  echo "fairrec $bin"
  echo "gpu-tests $test_bin"
  echo "compute-capability $CAP"
  echo "toolkit $(nvcc --version | tail -1)"
  echo "git $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
} > "$out"
ls -la "$bin" "$test_bin" "$writer" "$bundle" >&2
du -sh "$bundle" >&2
cat "$out"
