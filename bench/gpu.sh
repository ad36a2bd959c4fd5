#!/usr/bin/env bash
# The GPU side of issue 7: `fairrec bench --device cuda` and bench/torch_bench.py on the same
# GPU, the same shapes, one after the other, with the GPU's memory in use sampled by
# nvidia-smi every 20 ms while each program runs (the same external measure for both: it
# counts what each framework's allocator holds, not only live tensors).
#
#   FAIRREC=target/release/fairrec bench/gpu.sh                 # built with --features cuda
#   SHAPES="qwen2-7b" SIZES="4x256" DTYPES=bf16 bench/gpu.sh
#
# Needs a Python with torch, transformers and peft, and nvidia-smi. JSON lines go to
# $LOG (default bench/out/gpu-<date>.jsonl); the ratio table is printed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
FAIRREC=${FAIRREC:-target/release/fairrec}
SHAPES=${SHAPES:-"smollm2-135m qwen2-0.5b qwen2-1.5b qwen2-7b"}
SIZES=${SIZES:-"4x256 8x128"}
MODES=${MODES:-"score train"}
DTYPES=${DTYPES:-"bf16"}
STEPS=${STEPS:-10}
mkdir -p bench/out
LOG=${LOG:-bench/out/gpu-$(date +%Y%m%d-%H%M%S).jsonl}

# run_sampled CMD...: run CMD with the GPU memory sampled; prints CMD's last line with
# "gpu_peak_mib" (peak memory.used minus the idle reading) added.
run_sampled() {
  local idle samples pid line peak
  idle=$(nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits | head -1)
  samples=$(mktemp)
  nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 20 > "$samples" &
  pid=$!
  line=$("$@" 2>/dev/null | tail -1) || true
  kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null || true
  peak=$(sort -n "$samples" | tail -1)
  rm -f "$samples"
  [ -n "$line" ] || line='{"error": "no output"}'
  "$PYTHON" -c 'import json,sys; d=json.loads(sys.argv[1]); d["gpu_peak_mib"]=int(sys.argv[2])-int(sys.argv[3]); print(json.dumps(d))' \
    "$line" "${peak:-0}" "$idle"
}

torch_dtype() { [ "$1" = bf16 ] && echo bfloat16 || echo float32; }

for dtype in $DTYPES; do
  for shape in $SHAPES; do
    for size in $SIZES; do
      b=${size%x*}; s=${size#*x}
      for mode in $MODES; do
        ours=$(run_sampled "$FAIRREC" -q bench --device cuda --dtype "$dtype" --shape "$shape" \
          --mode "$mode" --batch "$b" --seq "$s" --steps "$STEPS")
        theirs=$(run_sampled "$PYTHON" bench/torch_bench.py --device cuda --dtype "$(torch_dtype "$dtype")" \
          --shape "$shape" --mode "$mode" --batch "$b" --seq "$s" --steps "$STEPS")
        echo "$ours" >> "$LOG"; echo "$theirs" >> "$LOG"
        echo "$shape $size $mode $dtype done" >&2
      done
    done
  done
done
"$PYTHON" - "$LOG" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
print(f"{'shape':14} {'size':6} {'dtype':5} {'mode':6} {'fairrec tok/s':>13} {'torch tok/s':>12} {'ratio':>6} {'fairrec MiB':>11} {'torch MiB':>9} {'mem ratio':>9}")
for a, b in zip(rows[::2], rows[1::2]):
    if "tokens_per_s" not in a or "tokens_per_s" not in b:
        print(f"failed: {a.get('error', '')} {b.get('error', '')}")
        continue
    print(f"{a['model']:14} {str(a['batch'])+'x'+str(a['seq']):6} {a.get('dtype', ''):5} {a['mode']:6} {a['tokens_per_s']:13.0f} {b['tokens_per_s']:12.0f} "
          f"{a['tokens_per_s']/b['tokens_per_s']:6.2f} {a['gpu_peak_mib']:11d} {b['gpu_peak_mib']:9d} {a['gpu_peak_mib']/max(b['gpu_peak_mib'],1):9.2f}")
print(f"(raw results: {sys.argv[1]})")
PY
