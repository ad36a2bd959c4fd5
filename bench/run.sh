#!/usr/bin/env bash
# Run `fairrec bench` and bench/torch_bench.py on the same shapes, one after the other on
# the same machine, and print a ratio table (fairrec / PyTorch tokens/s and peak memory).
#
#   bench/run.sh                       # every shape of issue 7
#   SHAPES=smollm2-135m SIZES="4x256" bench/run.sh
#   PYTHON=/path/to/venv/bin/python bench/run.sh
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
cargo build --release -p fairrec >&2
mkdir -p bench/out
log=bench/out/$(date +%Y%m%d-%H%M%S).jsonl
for shape in $SHAPES; do
  for size in $SIZES; do
    b=${size%x*}; s=${size#*x}
    for mode in $MODES; do
      ours=$(target/release/fairrec -q bench --shape "$shape" --mode "$mode" --batch "$b" --seq "$s" --steps "$STEPS" | tail -1)
      theirs=$("$PYTHON" bench/torch_bench.py --shape "$shape" --mode "$mode" --batch "$b" --seq "$s" --steps "$STEPS" 2>/dev/null | tail -1)
      echo "$ours" >> "$log"; echo "$theirs" >> "$log"
    done
  done
done
"$PYTHON" - "$log" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
print(f"{'shape':14} {'size':8} {'mode':6} {'fairrec tok/s':>13} {'torch tok/s':>12} {'ratio':>6} {'fairrec GiB':>11} {'torch GiB':>9} {'mem ratio':>9}")
for a, b in zip(rows[::2], rows[1::2]):
    print(f"{a['model']:14} {str(a['batch'])+'x'+str(a['seq']):8} {a['mode']:6} {a['tokens_per_s']:13.1f} {b['tokens_per_s']:12.1f} "
          f"{a['tokens_per_s']/b['tokens_per_s']:6.2f} {a['peak_rss_gib']:11.2f} {b['peak_rss_gib']:9.2f} {a['peak_rss_gib']/b['peak_rss_gib']:9.2f}")
print(f"(raw results: {sys.argv[1]})")
PY
