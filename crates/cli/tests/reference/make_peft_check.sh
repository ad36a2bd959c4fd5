#!/usr/bin/env bash
# Adapters that fairrec TRAINED, checked by Python peft (issue 29 item 5): trains a LoRA
# and a prompt-tuning adapter on SmolLM2-135M-Instruct (the shared GGUF) for two steps on
# a synthetic world (no licensed data goes into committed weights), keeps them under peft-check/{lora,prompt}/, then loads each in transformers +
# peft (make_peft_check.py) and records P(Yes) and the answer logits for a few prompts in
# peft_check.json, with the SHA-256 of the adapter files checked. The test
# `fairrec_trained_adapters_match_python_peft` (crates/cli/tests/train_cli.rs) scores the
# same prompts with `fairrec score --adapter` and compares.
#
#   python -m venv env && env/bin/pip install torch transformers peft gguf
#   PYTHON=env/bin/python bash make_peft_check.sh [SHARED_DIR]     (from this directory)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
shared=$(cd "${1:-$here/../../../../../shared}" && pwd)
py=${PYTHON:-python3}
root=$(cd "$here/../../../.." && pwd)
(cd "$root" && cargo build --release -p fairrec)
bin="$root/target/release/fairrec"
gguf="$shared/models/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$bin" data synth --out "$tmp/raw" --users 60 --items 80 --seed 5
"$bin" data prepare --dataset ml-100k --raw "$tmp/raw" --out "$tmp/data" \
    --protocol cl-moe --max-liked 3 --max-disliked 3
common=(--model "$gguf" --data "$tmp/data" --limit-train 8 --max-steps 2 --batch-size 1
    --no-eval --seed 5)
"$bin" train --method lora --lora-r 1 --lora-targets q_proj,v_proj --lr 0.003 \
    "${common[@]}" --out "$tmp/lora"
"$bin" train --method prompt-tuning --virtual-tokens 4 --lr 0.3 "${common[@]}" --out "$tmp/prompt"
for k in lora prompt; do
    rm -rf "$here/peft-check/$k"
    mkdir -p "$here/peft-check/$k"
    cp "$tmp/$k/adapter/adapter_config.json" "$tmp/$k/adapter/adapter_model.safetensors" \
        "$here/peft-check/$k/"
done
"$py" "$here/make_peft_check.py" "$gguf" "$here/peft-check" > "$here/peft_check.json"
echo "wrote $here/peft_check.json"
