#!/usr/bin/env bash
# Run `fairrec bench` and bench/torch_bench.py on the same shapes, one after the other on
# the same machine, and print a ratio table (fairrec / PyTorch tokens/s and peak memory),
# with both programs' GFLOP/s (the same model-FLOP count for both, `step_gflop`) as a
# share of the CPU's f32 FMA peak, measured first by `fairrec bench --mode peak`.
#
#   bench/run.sh                       # every shape of issue 7
#   SHAPES=smollm2-135m SIZES="4x256" bench/run.sh
#   PYTHON=/path/to/venv/bin/python bench/run.sh
#   REPEATS=2 STEPS=2 bench/run.sh     # each program twice per shape, alternating; best run
#   DTYPE=bf16 bench/run.sh            # bf16 weights in both programs (fairrec --dtype bf16,
#                                      # torch --dtype bfloat16); % of the bf16 dot peak
#
# Each row of the table is each program's best run (highest tokens/s; memory: its highest
# peak over the runs); the runs' tokens/s are listed below it. On a shared VM step times
# move by 10-20% between runs, so use REPEATS >= 2 for figures you report.
#
# Needs a Python with torch, transformers and peft (see bench/NOTES.md). Results (JSON lines)
# go to bench/out/<date>.jsonl.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
SHAPES=${SHAPES:-"smollm2-135m qwen2-0.5b"}
SIZES=${SIZES:-"4x256 8x128"}
MODES=${MODES:-"score train"}
STEPS=${STEPS:-3}
REPEATS=${REPEATS:-1}
DTYPE=${DTYPE:-f32}
case "$DTYPE" in
  f32) TORCH_DTYPE=float32 ;;
  bf16) TORCH_DTYPE=bfloat16 ;;
  *) echo "DTYPE must be f32 or bf16, not $DTYPE" >&2; exit 2 ;;
esac
cargo build --release -p fairrec >&2
mkdir -p bench/out
log=bench/out/$(date +%Y%m%d-%H%M%S).jsonl
target/release/fairrec -q bench --mode peak | tail -1 > "$log"
for shape in $SHAPES; do
  for size in $SIZES; do
    b=${size%x*}; s=${size#*x}
    for mode in $MODES; do
      for _ in $(seq "$REPEATS"); do
        target/release/fairrec -q bench --shape "$shape" --mode "$mode" --batch "$b" --seq "$s" --steps "$STEPS" --dtype "$DTYPE" | tail -1 >> "$log"
        "$PYTHON" bench/torch_bench.py --shape "$shape" --mode "$mode" --batch "$b" --seq "$s" --steps "$STEPS" --dtype "$TORCH_DTYPE" 2>/dev/null | tail -1 >> "$log"
      done
    done
  done
done
"$PYTHON" - "$log" "$DTYPE" <<'PY'
import json, sys
peak, *rows = [json.loads(l) for l in open(sys.argv[1])]
dtype = sys.argv[2]
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
flags = next((l.split(":", 1)[1].split() for l in open("/proc/cpuinfo") if l.startswith("flags")), [])
simd = [f for f in flags if f.startswith(("avx", "fma", "amx"))]
print(f"host: {cpu}; {' '.join(simd)}")
bf16 = f", bf16 dot products {peak['bf16_dot']:.1f}" if peak.get('bf16_dot') else ""
print(f"f32 FMA peak: {peak['gflops']:.1f} GFLOP/s with {peak['threads']} threads{bf16}")
# bf16 runs are measured against the bf16 dot-product peak where the CPU has one.
ceiling = (peak.get('bf16_dot') or peak['gflops']) if dtype == 'bf16' else peak['gflops']
print(f"weights: {dtype}; % of peak against {ceiling:.1f} GFLOP/s")
runs = {}
for r in rows:
    runs.setdefault((r['model'], r['batch'], r['seq'], r['mode']), {}).setdefault(r['program'], []).append(r)
print(f"{'shape':14} {'size':8} {'mode':6} {'fairrec tok/s':>13} {'torch tok/s':>12} {'ratio':>6} {'fairrec GiB':>11} {'torch GiB':>9} {'mem ratio':>9} {'fairrec %peak':>13} {'torch %peak':>11} {'goal needs %peak':>16}")
goal = {'score': 1.5, 'train': 1.25}  # issue 7's speed goals, x PyTorch's tokens/s
for (model, b, s, mode), by in runs.items():
    a, t = (max(by[p], key=lambda r: r['tokens_per_s']) for p in ('fairrec', 'pytorch'))
    gib = {p: max(r['peak_rss_gib'] for r in by[p]) for p in ('fairrec', 'pytorch')}
    share = lambda r: 100 * a['step_gflop'] / r['step_s'] / ceiling
    print(f"{model:14} {str(b)+'x'+str(s):8} {mode:6} {a['tokens_per_s']:13.1f} {t['tokens_per_s']:12.1f} "
          f"{a['tokens_per_s']/t['tokens_per_s']:6.2f} {gib['fairrec']:11.2f} {gib['pytorch']:9.2f} {gib['fairrec']/gib['pytorch']:9.2f} "
          f"{share(a):13.1f} {share(t):11.1f} {goal[mode] * share(t):16.1f}")
print("goal needs %peak: the share of the peak at which fairrec would run at the goal ratio")
print("tokens/s of every run (fairrec | PyTorch):")
for (model, b, s, mode), by in runs.items():
    tps = lambda p: ", ".join(f"{r['tokens_per_s']:.1f}" for r in by[p])
    print(f"  {model} {b}x{s} {mode}: {tps('fairrec')} | {tps('pytorch')}")
print(f"(raw results: {sys.argv[1]})")
PY
