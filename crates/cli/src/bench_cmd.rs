//! `fairrec bench`: time scoring or LoRA training on synthetic token batches of exactly the
//! shape asked (batch x seq), for a real model or a named architecture with random weights.
//! Train mode is LoRA r 8 (alpha 16) on q_proj/v_proj with the answer-token loss at the
//! last position and an AdamW step, as `bench/torch_bench.py` does in PyTorch + peft.
//! Peak mode measures the CPU's f32 FMA and bf16 dot-product throughput
//! ([`fairrec_lm::flops::peaks`]); every step's
//! line carries its model FLOPs, so GFLOP/s can be set against that ceiling.

use anyhow::{bail, Result};
use candle_core::{DType, Tensor};
use clap::Args;
use fairrec_core::Rng;
use fairrec_lm::adapter::AdapterConfig;
use fairrec_lm::config::LlamaConfig;
use fairrec_train::engine::objective::answer_nll;
use fairrec_train::engine::optim::{AdamWConfig, Optimizer};
use std::path::PathBuf;
use std::time::Instant;

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// A GGUF file or HF directory; or use --shape for random weights.
    #[arg(long, conflicts_with = "shape")]
    pub model: Option<PathBuf>,
    /// A named architecture with random weights: smollm2-135m, qwen2-0.5b, qwen2-1.5b, qwen2-7b.
    #[arg(long)]
    pub shape: Option<String>,
    /// score, train, or peak (the CPU's f32 FMA and bf16 dot-product throughput with every core; no model).
    #[arg(long, default_value = "score")]
    pub mode: String,
    #[arg(long, default_value_t = 4)]
    pub batch: usize,
    #[arg(long, default_value_t = 256)]
    pub seq: usize,
    /// Timed steps (after one untimed warm-up step).
    #[arg(long, default_value_t = 3)]
    pub steps: usize,
    /// cpu, auto, or cuda / cuda:N (a build with `--features cuda`).
    #[arg(long, default_value = "cpu")]
    pub device: fairrec_lm::device::DeviceSpec,
    /// auto (bf16 on a GPU that computes in it, else f32), f32, bf16 or f16: frozen weights in it; LoRA variables stay f32.
    #[arg(long, default_value = "auto")]
    pub dtype: fairrec_lm::device::DTypeSpec,
}

/// The configuration of a named architecture ([`LlamaConfig::named`]).
pub fn shape(name: &str) -> Result<LlamaConfig> {
    LlamaConfig::named(name).map_err(|e| anyhow::anyhow!("--shape {e}"))
}

/// Peak resident memory of this process (VmHWM), in bytes.
pub fn peak_rss() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Threads the CPU kernels use (`RAYON_NUM_THREADS` or the machine's cores: candle's and
/// the fused kernels' gemm split their work over that many).
fn threads() -> usize {
    candle_core::utils::get_num_threads()
}

pub fn run(a: &BenchArgs) -> Result<()> {
    for (flag, v) in [("--batch", a.batch), ("--seq", a.seq), ("--steps", a.steps)] {
        if v == 0 {
            bail!("{flag} 0: at least 1");
        }
    }
    if a.mode == "peak" {
        if a.device != fairrec_lm::device::DeviceSpec::Cpu {
            bail!("--mode peak measures the CPU; drop --device {}", a.device);
        }
        // f32 FMA on ymm and (AVX-512F) zmm, bf16 dot products (AVX512_BF16); `gflops` is
        // the widest f32 FMA's (`fairrec_lm::flops::Peak`).
        let mut v = serde_json::to_value(fairrec_lm::flops::peaks(threads())?)?;
        (v["program"], v["mode"]) = ("fairrec".into(), "peak".into());
        say!("{v}");
        return Ok(());
    }
    let device = a.device.resolve()?;
    let dtype = a.dtype.resolve(&device);
    let t_load = Instant::now();
    let mut model = match (&a.model, &a.shape) {
        (Some(p), _) => {
            fairrec_lm::load::load(p, &device, dtype)?
                .into_decoder("bench")?
                .model
        }
        // Seeded weights on the CPU (the same on every machine); the device's own
        // generator elsewhere (a 7B model would take minutes from our stream).
        (None, Some(s)) if device.is_cpu() && dtype == DType::F32 => {
            fairrec_lm::random::random_model(&shape(s)?, 0, 0.02, &device)?
        }
        (None, Some(s)) => {
            fairrec_lm::random::device_random_model(&shape(s)?, 0.02, &device, dtype)?
        }
        (None, None) => bail!("give --model or --shape"),
    };
    device.synchronize()?;
    let load_s = t_load.elapsed().as_secs_f64();
    let mut rng = Rng::derive(0, "bench-tokens");
    let v = model.cfg.vocab_size as u64;
    let ids: Vec<u32> = (0..a.batch * a.seq).map(|_| rng.below(v) as u32).collect();
    let x = Tensor::from_vec(ids, (a.batch, a.seq), &device)?;
    let last = vec![a.seq - 1; a.batch];
    let targets: Vec<u32> = (0..a.batch).map(|_| rng.below(v) as u32).collect();
    let mut times = Vec::new();
    match a.mode.as_str() {
        "score" => {
            for _ in 0..=a.steps {
                let t = Instant::now();
                let h = model.forward_at(&x, None, &last)?;
                let l = model.token_logits(&h, &targets[..2.min(targets.len())])?;
                l.to_vec2::<f32>()?;
                times.push(t.elapsed().as_secs_f64());
            }
        }
        "train" => {
            let set =
                model.attach_adapters(&AdapterConfig::lora(8, 16.0, &["q_proj", "v_proj"]), 0)?;
            let mut opt = Optimizer::adamw(set.named_vars(), AdamWConfig::default())?;
            for _ in 0..=a.steps {
                let t = Instant::now();
                let logits = model.head_logits(&model.forward_at(&x, None, &last)?)?;
                let loss = answer_nll(&logits, &targets)?.mean_all()?;
                let g = loss.backward()?;
                let grads = opt
                    .vars()
                    .map(|(name, var)| {
                        g.get(var.as_tensor())
                            .cloned()
                            .ok_or_else(|| anyhow::anyhow!("no gradient for {name}"))
                    })
                    .collect::<Result<Vec<_>>>()?;
                opt.step(&grads, 1e-4)?;
                device.synchronize()?;
                times.push(t.elapsed().as_secs_f64());
            }
        }
        o => bail!("--mode `{o}`: expected score, train or peak"),
    }
    let timed = &times[1..];
    let mean = timed.iter().sum::<f64>() / timed.len().max(1) as f64;
    let tokens = (a.batch * a.seq) as f64;
    let flop = fairrec_lm::flops::step_flops(&model.cfg, a.batch, a.seq, a.mode == "train");
    say!(
        "{}",
        serde_json::json!({
            "program": "fairrec", "mode": a.mode, "model": a.model.as_ref().map(|p| p.display().to_string()).or(a.shape.clone()),
            "batch": a.batch, "seq": a.seq, "device": fairrec_lm::device::name(&device), "dtype": fairrec_lm::device::dtype_name(dtype), "steps": timed.len(), "threads": threads(),
            "load_s": load_s, "step_s": mean, "tokens_per_s": tokens / mean, "step_times_s": timed,
            "step_gflop": flop / 1e9, "gflops": flop / 1e9 / mean,
            "peak_rss_bytes": peak_rss(), "peak_rss_gib": peak_rss().map(|b| b as f64 / (1u64 << 30) as f64),
        })
    );
    Ok(())
}
