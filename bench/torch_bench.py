"""PyTorch + transformers + peft counterpart of `fairrec bench`: the same shapes, the same
work per step, one JSON line out.

score: a forward pass over a [batch, seq] batch of random token ids with the LM head only at
       the last position (`logits_to_keep=1`, the cheapest form transformers offers), no grad.
train: LoRA r 8, alpha 16 on q_proj/v_proj (peft), cross-entropy of a random target token
       at the last position, backward, AdamW step.

Random weights (std 0.02) for the named architecture, f32 (or --dtype bfloat16, built in
that dtype), torch threads = the machine's cores unless --threads, --device cpu or cuda.
Peak memory is the process's max RSS (ru_maxrss), like fairrec's VmHWM; on CUDA also
torch's max_memory_allocated after the build (bench/gpu.sh samples nvidia-smi for both
programs); run one mode per process.

    python torch_bench.py --shape smollm2-135m --mode train --batch 4 --seq 256 --steps 3
"""
import argparse
import json
import os
import resource
import time

import torch
from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

SHAPES = {
    # hidden, intermediate, layers, heads, kv heads, vocab, rope theta, tied, qwen
    "smollm2-135m": (576, 1536, 30, 9, 3, 49152, 100000.0, True, False),
    "qwen2-0.5b": (896, 4864, 24, 14, 2, 151936, 1000000.0, True, True),
    "qwen2-1.5b": (1536, 8960, 28, 12, 2, 151936, 1000000.0, True, True),
    "qwen2-7b": (3584, 18944, 28, 28, 4, 152064, 1000000.0, False, True),
}


def build(shape, dtype, device):
    h, i, l, nh, nkv, v, theta, tied, qwen = SHAPES[shape]
    kw = dict(
        vocab_size=v, hidden_size=h, intermediate_size=i, num_hidden_layers=l,
        num_attention_heads=nh, num_key_value_heads=nkv, rope_theta=theta,
        tie_word_embeddings=tied, max_position_embeddings=8192, initializer_range=0.02,
        rms_norm_eps=1e-6 if qwen else 1e-5,
    )
    cfg = Qwen2Config(**kw) if qwen else LlamaConfig(**kw)
    cfg._attn_implementation = "sdpa"
    torch.manual_seed(0)
    # Built directly in `dtype` on the device: an f32 build cast afterwards would leave the
    # f32 copy in the CUDA caching allocator and count against PyTorch's peak memory.
    default = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            m = (Qwen2ForCausalLM if qwen else LlamaForCausalLM)(cfg)
    finally:
        torch.set_default_dtype(default)
    if str(device).startswith("cuda"):
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    return m.to(dtype)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shape", default="smollm2-135m", choices=sorted(SHAPES))
    ap.add_argument("--mode", default="score", choices=["score", "train"])
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    dtype = getattr(torch, a.dtype)
    t0 = time.perf_counter()
    model = build(a.shape, dtype, a.device)
    load_s = time.perf_counter() - t0
    g = torch.Generator().manual_seed(0)
    v = model.config.vocab_size
    ids = torch.randint(0, v, (a.batch, a.seq), generator=g).to(a.device)
    targets = torch.randint(0, v, (a.batch,), generator=g).to(a.device)
    sync = torch.cuda.synchronize if a.device.startswith("cuda") else (lambda: None)
    times = []
    if a.mode == "score":
        model.eval()
        with torch.no_grad():
            for _ in range(a.steps + 1):
                t = time.perf_counter()
                out = model(input_ids=ids, logits_to_keep=1).logits[:, -1, :2]
                out.cpu()
                sync()
                times.append(time.perf_counter() - t)
    else:
        from peft import LoraConfig, get_peft_model

        model = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0,
                                                 target_modules=["q_proj", "v_proj"]))
        model.train()
        opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
        for _ in range(a.steps + 1):
            t = time.perf_counter()
            logits = model(input_ids=ids, logits_to_keep=1).logits[:, -1, :].float()
            loss = torch.nn.functional.cross_entropy(logits, targets)
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            sync()
            times.append(time.perf_counter() - t)
    timed = times[1:]
    mean = sum(timed) / len(timed)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    out = {
        "program": "pytorch", "mode": a.mode, "model": a.shape, "batch": a.batch, "seq": a.seq,
        "steps": len(timed), "threads": a.threads, "load_s": load_s, "step_s": mean,
        "tokens_per_s": a.batch * a.seq / mean, "step_times_s": timed, "peak_rss_bytes": peak,
        "peak_rss_gib": peak / 2**30, "torch": torch.__version__,
    }
    if a.device.startswith("cuda"):
        out["peak_gpu_bytes"] = torch.cuda.max_memory_allocated()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
