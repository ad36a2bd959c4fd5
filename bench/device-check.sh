#!/usr/bin/env bash
# The GPU device check of issue 24, on a GPU machine that has the NVIDIA driver and a
# Python with PyTorch (whose pip CUDA libraries the binary loads) but no Rust: it compiles
# nothing. Runs, in order, within ~8 minutes:
#   1. the GPU tests (crates/cli/tests/gpu.rs: engine parity, every kind of method trained
#      and audited on CUDA against the CPU, the quickstart's figures on CUDA against the CPU's);
#   2. `fairrec quickstart --device cuda` at its default size, timed;
#   3. the short form of bench/gpu.sh (SmolLM2 and Qwen2-1.5B shapes, 4x256, bf16, score and
#      train, against PyTorch + transformers + peft on the same GPU);
#   4. only when asked (CHECKS=4, a second call: ~3 minutes): a random-weight Qwen2-7B-shaped
#      bf16 checkpoint written to /tmp and loaded onto the GPU, with the host's peak RSS;
#   5. only when asked (CHECKS=5, a call of its own; issue 30): the paper-scale grids'
#      next cells (GRIDS, default experiments/paper-b-table4-ml100k-gpu.toml then
#      experiments/paper-a-table2-sushi3-gpu.toml) for GRID_SECONDS (default 480), resumed
#      from RUNS (default target/cuda/runs: carry it) and brought back as $OUT/runs.tar.gz
#      (untar it into RUNS for the next call; commit the finished cells as
#      experiments/results/README.md says). The data and SmolLM2 come from the checkout's
#      shared/ (FAIRREC_DATA=shared/data, FAIRREC_MODELS=shared/models), which the device
#      tool copies and .gitignore keeps out of git: before the call,
#        mkdir -p shared/data shared/models && cp -r ../shared/data/{sushi3,ml-100k} shared/data/ \
#          && cp -r ../shared/models/smollm2-135m-instruct shared/models/
#      (the datasets' licenses forbid committing them; the GGUF, 98 MB, is over carry's 64 MiB).
# CHECKS (default "1 2 3") picks the steps. Each step has a timeout, so that steps 1-3 end
# within the device tool's 10 minutes.
# Everything goes to one directory ($OUT where the device tool sets it, else
# bench/out/device-check-<time>), at most 8 files: summary.md first.
#
#   bench/build-cuda.sh                  # on the CPU machine: builds target/cuda/bundle
#   bench/device-check.sh [BUNDLE_DIR]   # on the GPU machine (default target/cuda/bundle)
set -uo pipefail
cd "$(dirname "$0")/.."
BUNDLE=${1:-target/cuda/bundle}
OUT=${OUT:-bench/out/device-check-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT"
SUMMARY=$OUT/summary.md
CHECKS=${CHECKS:-"1 2 3"}
want() { case " $CHECKS " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }
T0=$(date +%s)
say() { echo "$*" | tee -a "$SUMMARY"; }
elapsed() { echo $(($(date +%s) - T0)); }

[ -f "$BUNDLE/fairrec.gz" ] && [ -f "$BUNDLE/gpu-tests.gz" ] || {
  echo "no $BUNDLE/fairrec.gz and gpu-tests.gz: run bench/build-cuda.sh on the CPU machine first" >&2
  exit 2
}
BIN=$(mktemp -d)
for f in fairrec gpu-tests random-checkpoint; do
  [ -f "$BUNDLE/$f.gz" ] && gunzip -c "$BUNDLE/$f.gz" > "$BIN/$f" && chmod +x "$BIN/$f"
done
export FAIRREC_BIN=$BIN/fairrec
PYTHON=${PYTHON:-python3}
# The CUDA libraries the binary links (cuBLAS, cuRAND, NVRTC, the runtime) from the Python's
# pip packages.
libs=$("$PYTHON" - <<'PY'
import glob, os, site
dirs = set()
for root in site.getsitepackages() + [site.getusersitepackages()]:
    for name in ("libcublas.so.*", "libcurand.so.*", "libnvrtc.so.*", "libcudart.so.*"):
        for f in glob.glob(os.path.join(root, "nvidia", "**", name), recursive=True):
            dirs.add(os.path.dirname(f))
print(":".join(sorted(dirs)))
PY
)
export LD_LIBRARY_PATH=$libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}

{
  echo "# fairrec device check, $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo
  echo "- GPU: $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 | head -1)"
  echo "- CUDA (driver): $(nvidia-smi 2>/dev/null | grep -o 'CUDA Version: [0-9.]*' | head -1)"
  echo "- bundle: $(tr '\n' ';' < "$BUNDLE/built.txt" 2>/dev/null)"
  echo "- CUDA libraries from: ${libs:-none found}"
  echo
} > "$SUMMARY"
nvidia-smi > "$OUT/nvidia-smi.txt" 2>&1

# 1. GPU tests, one at a time (they share the one GPU).
if want 1; then
say "## 1. GPU tests (crates/cli/tests/gpu.rs)"
timeout 240 "$BIN/gpu-tests" --test-threads 1 --nocapture > "$OUT/gpu-tests.log" 2>&1
rc=$?
say ""
say '```'
grep -E '^test |test result|panicked|skipped|vs Place|quickstart .*: F1' "$OUT/gpu-tests.log" | tee -a "$SUMMARY" > /dev/null
say '```'
say "exit $rc after $(elapsed)s"
say ""
fi

# 2. The quickstart on the GPU at its default size.
if want 2; then
say "## 2. fairrec quickstart --device cuda"
qs=$(mktemp -d)/qs
t=$(date +%s)
timeout 180 "$BIN/fairrec" quickstart --device cuda --out "$qs" > "$OUT/quickstart.log" 2>&1
rc=$?
say "exit $rc, wall $(($(date +%s) - t))s"
[ "$rc" -eq 0 ] || { say '```'; tail -5 "$OUT/quickstart.log" | tee -a "$SUMMARY" > /dev/null; say '```'; }
if [ -f "$qs/report.md" ]; then
  cp "$qs/report.md" "$OUT/quickstart-report.md"
  "$PYTHON" - "$qs" <<'PY' | tee -a "$SUMMARY"
import glob, json, os, sys
qs = sys.argv[1]
for cell in sorted(glob.glob(os.path.join(qs, "cells", "**", "cell.json"), recursive=True)):
    c = json.load(open(cell))
    run = os.path.join(os.path.dirname(cell), "audit", "run.json")
    r = json.load(open(run)) if os.path.exists(run) else {}
    tps = r.get("tokens", 0) / max(r.get("scoring_seconds", 0) or 1e-9, 1e-9)
    print(f"- {c['method']}: F1 {c['metrics'].get('f1')}, {c.get('device')} {c.get('dtype')} {c.get('gpu', '')}, "
          f"audit {r.get('prompts')} prompts in {r.get('scoring_seconds', 0):.1f}s ({tps:.0f} tokens/s), cell {c['seconds']:.0f}s")
PY
fi
say ""
fi

# 3. The short form of bench/gpu.sh.
if want 3; then
say "## 3. bench/gpu.sh (short form)"
FAIRREC=$BIN/fairrec LOG=$OUT/gpu-bench.jsonl SHAPES=${SHAPES:-"smollm2-135m qwen2-1.5b"} \
  SIZES=${SIZES:-4x256} STEPS=${STEPS:-5} PYTHON=$PYTHON \
  timeout 150 bash bench/gpu.sh > "$OUT/gpu-bench.txt" 2>&1
rc=$?
say '```'
tee -a "$SUMMARY" < "$OUT/gpu-bench.txt" > /dev/null
say '```'
say "exit $rc after $(elapsed)s"
fi

# 4. Loading a 7B bf16 checkpoint onto the GPU: the host's peak RSS (issue 24 asks < ~20 GB).
if want 4; then
  shape=${SHAPE_7B:-qwen2-7b}
  say ""
  say "## 4. $shape bf16 checkpoint loaded onto the GPU"
  ck=${CHECKPOINT_DIR:-/tmp/fairrec-$shape-bf16}
  t=$(date +%s)
  timeout 240 "$BIN/random-checkpoint" "$shape" bf16 "$ck" 2>&1 | tee -a "$SUMMARY"
  say "written in $(($(date +%s) - t))s"
  timeout 120 "$BIN/fairrec" -q bench --model "$ck" --device cuda --dtype bf16 --mode score \
    --batch 1 --seq 32 --steps 1 2>&1 | tail -1 | tee -a "$SUMMARY"
  rm -rf "$ck"
fi

# 5. The paper-scale grids, resumed (issue 30, part 2). SIGKILL at the deadline: a grid run
# killed at any instant continues exactly (guarantee 3 in the README).
if want 5; then
  say ""
  say "## 5. paper-scale grids for ${GRID_SECONDS:-480}s"
  export FAIRREC_DATA=${FAIRREC_DATA:-$PWD/shared/data}
  export FAIRREC_MODELS=${FAIRREC_MODELS:-$PWD/shared/models}
  RUNS=${RUNS:-target/cuda/runs}
  mkdir -p "$RUNS"
  end=$(($(date +%s) + ${GRID_SECONDS:-480}))
  for f in ${GRIDS:-experiments/paper-b-table4-ml100k-gpu.toml experiments/paper-a-table2-sushi3-gpu.toml}; do
    left=$((end - $(date +%s)))
    [ "$left" -gt 30 ] || break
    name=$(basename "$f" .toml)
    timeout --signal=KILL "$left" "$BIN/fairrec" experiment run "$f" --out "$RUNS/$name" > "$OUT/$name.log" 2>&1
    rc=$?
    say "- $name: exit $rc (137: stopped at the deadline), $(grep -c '^done' "$OUT/$name.log") cell(s) finished in this call"
  done
  tar czf "$OUT/runs.tar.gz" -C "$RUNS" --exclude='./*/raw' .
  say "runs.tar.gz: $(du -h "$OUT/runs.tar.gz" | cut -f1)"
fi
say "the whole check took $(elapsed)s"
