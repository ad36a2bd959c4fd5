#!/usr/bin/env bash
# Peer check (issue 23, item 5; not CI): llama.cpp's server (PyPI `llama-cpp-python[server]`,
# which builds llama.cpp from source) on a GGUF, audited through `fairrec audit --endpoint`,
# against fairrec's direct audit of the same prompts on the same file. Prints the P(Yes)
# differences (llama.cpp computes in quantised arithmetic, fairrec dequantizes to f32), the
# agreement of the Yes/No decisions at 0.5 and both AUCs, as one JSON line.
#
#   pip install 'llama-cpp-python[server]'      # into the interpreter named by PYTHON
#   DATA=runs/ml100k PYTHON=venv/bin/python bench/llamacpp_check.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
FAIRREC=${FAIRREC:-target/release/fairrec}
GGUF=${GGUF:-../shared/models/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf}
DATA=${DATA:?DATA=a prepared dataset (fairrec data prepare)}
LIMIT=${LIMIT:-10}
PORT=${PORT:-8091}
OUT=${OUT:-bench/out/llamacpp-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT"
"$PY" -m llama_cpp.server --model "$GGUF" --model_alias peer --host 127.0.0.1 --port "$PORT" \
  --logits_all true --n_ctx 4096 --n_threads "$(nproc)" > "$OUT/server.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true' EXIT
for _ in $(seq 120); do
  curl -sf "http://127.0.0.1:$PORT/v1/models" > /dev/null && break
  kill -0 $pid 2> /dev/null || { cat "$OUT/server.log"; exit 1; }
  sleep 1
done
common=(--data "$DATA" --limit "$LIMIT" --bootstrap 20)
"$FAIRREC" -q audit --model "$GGUF" "${common[@]}" --out "$OUT/direct" > /dev/null
"$FAIRREC" -q audit --endpoint "http://127.0.0.1:$PORT/v1" --served-model peer --tokenizer "$GGUF" \
  --concurrency 1 "${common[@]}" --out "$OUT/served" > /dev/null
"$PY" - "$OUT" <<'PYEOF'
import json, sys
out = sys.argv[1]
read = lambda d: [json.loads(l) for l in open(f"{out}/{d}/predictions.jsonl")]
a, b = read("direct"), read("served")
assert [(x["sample_id"], x["variant"]) for x in a] == [(y["sample_id"], y["variant"]) for y in b]
d = sorted(abs(x["p_yes"] - y["p_yes"]) for x, y in zip(a, b))
agree = sum((x["p_yes"] >= 0.5) == (y["p_yes"] >= 0.5) for x, y in zip(a, b)) / len(a)
auc = lambda d: json.load(open(f"{out}/{d}/metrics.json"))["original"]["auc"]
served = json.load(open(f"{out}/served/run.json"))["served"]
print(json.dumps({"predictions": len(a), "max_abs_diff": d[-1], "mean_abs_diff": sum(d) / len(d),
                  "median_abs_diff": d[len(d) // 2], "decision_agreement": agree,
                  "auc_direct": auc("direct"), "auc_served": auc("served"),
                  "censored": served["traffic"]["censored"]}))
PYEOF
