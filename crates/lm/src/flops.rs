//! What a bench step costs in arithmetic and what the machine can do at most: the model
//! FLOPs of a score or LoRA-train step (one count for both programs of `bench/run.sh`), and
//! the CPU's measured f32 FMA throughput, the ceiling that no gemm can pass.

use crate::config::LlamaConfig;
use crate::error::{LmError, Result};
use std::time::Instant;

/// LoRA rank of the bench's train mode (q_proj and v_proj).
pub const LORA_RANK: usize = 8;

/// Model FLOPs of one bench step on a `[b, t]` batch, counting a multiply-add as 2.
///
/// Per layer and token, the linear layers cost `2 (h q + 2 h kv + q h + 3 h i)` with
/// `q = heads * d`, `kv = kv_heads * d`; causal attention costs, per layer and batch row,
/// `Q K^T` and `P V` over the lower triangle (diagonal included): `2 * 2 heads d t(t+1)/2`;
/// the LM head runs at the last position only: `2 h vocab` per row. Score = that forward.
/// Train adds LoRA (rank [`LORA_RANK`] on q_proj, v_proj: `2 r (h + q) + 2 r (h + kv)` per
/// layer and token) and the backward: the input gradient of every frozen product (the same
/// FLOPs as its forward), four attention products (`dP`, `dV`, `dQ`, `dK`) and, for LoRA's
/// factors, input and weight gradients (twice their forward). It is the work the step
/// needs, not either program's exact work: fairrec recomputes `P` in backward (one more
/// `Q K^T`) and scores only the two answer rows of the head.
pub fn step_flops(c: &LlamaConfig, b: usize, t: usize, train: bool) -> f64 {
    let (h, i, l) = (
        c.hidden_size as f64,
        c.intermediate_size as f64,
        c.num_hidden_layers as f64,
    );
    let d = c.head_dim() as f64;
    let (q, kv) = (c.num_attention_heads as f64 * d, c.kv_heads() as f64 * d);
    let (b, t) = (b as f64, t as f64);
    let linear = b * t * l * 2.0 * (h * q + 2.0 * h * kv + q * h + 3.0 * h * i);
    let attention = b * l * 2.0 * c.num_attention_heads as f64 * d * t * (t + 1.0);
    let head = b * 2.0 * h * c.vocab_size as f64;
    if !train {
        return linear + attention + head;
    }
    let r = LORA_RANK as f64;
    let lora = b * t * l * 2.0 * r * ((h + q) + (h + kv));
    2.0 * linear + 3.0 * attention + 2.0 * head + 3.0 * lora
}

/// Iterations of the FMA loop per thread and repetition (12 FMAs of 8 lanes each).
const PEAK_ITERS: u64 = 50_000_000;

/// The CPU's f32 FMA throughput in GFLOP/s with `threads` threads: each runs twelve
/// independent `vfmadd231ps` chains on 256-bit registers (no memory access, enough chains
/// to cover the FMA latency), best of three repetitions. This is the ceiling of any f32
/// gemm on the machine; `bench/run.sh` divides both programs' GFLOP/s by it.
pub fn fma_peak_gflops(threads: usize) -> Result<f64> {
    #[cfg(target_arch = "x86_64")]
    {
        if !(std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("fma"))
        {
            return Err(LmError::Invalid(
                "--mode peak measures AVX2 FMA throughput; this CPU has no AVX2/FMA".into(),
            ));
        }
        let threads = threads.max(1);
        let mut best = 0.0f64;
        for _ in 0..3 {
            let start = std::sync::Barrier::new(threads + 1);
            let t0 = std::thread::scope(|s| {
                for _ in 0..threads {
                    s.spawn(|| {
                        start.wait();
                        // SAFETY: AVX2 and FMA were detected above.
                        unsafe { fma_chains(PEAK_ITERS) }
                    });
                }
                start.wait();
                Instant::now()
            });
            let secs = t0.elapsed().as_secs_f64();
            let flop = PEAK_ITERS as f64 * 12.0 * 16.0 * threads as f64;
            best = best.max(flop / secs / 1e9);
        }
        Ok(best)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = threads;
        Err(LmError::Invalid(
            "--mode peak measures AVX2 FMA throughput and runs on x86_64 only".into(),
        ))
    }
}

/// `n` iterations of twelve independent 256-bit FMAs (ymm0..ymm11 += ymm14 * ymm15).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn fma_chains(n: u64) {
    // SAFETY: register-only arithmetic; every register written is declared clobbered.
    unsafe {
        std::arch::asm!(
            "vxorps ymm14, ymm14, ymm14",
            "vxorps ymm15, ymm15, ymm15",
            "2:",
            "vfmadd231ps ymm0, ymm14, ymm15",
            "vfmadd231ps ymm1, ymm14, ymm15",
            "vfmadd231ps ymm2, ymm14, ymm15",
            "vfmadd231ps ymm3, ymm14, ymm15",
            "vfmadd231ps ymm4, ymm14, ymm15",
            "vfmadd231ps ymm5, ymm14, ymm15",
            "vfmadd231ps ymm6, ymm14, ymm15",
            "vfmadd231ps ymm7, ymm14, ymm15",
            "vfmadd231ps ymm8, ymm14, ymm15",
            "vfmadd231ps ymm9, ymm14, ymm15",
            "vfmadd231ps ymm10, ymm14, ymm15",
            "vfmadd231ps ymm11, ymm14, ymm15",
            "dec {n}",
            "jnz 2b",
            n = inout(reg) n => _,
            out("ymm0") _, out("ymm1") _, out("ymm2") _, out("ymm3") _,
            out("ymm4") _, out("ymm5") _, out("ymm6") _, out("ymm7") _,
            out("ymm8") _, out("ymm9") _, out("ymm10") _, out("ymm11") _,
            out("ymm14") _, out("ymm15") _,
            options(nostack, nomem),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The count for a config small enough to add up by hand: h 4, i 6, 2 layers, 2 heads
    /// of width 2, 1 kv head, vocab 10; batch 3 of 5 tokens.
    #[test]
    fn step_flops_adds_up_by_hand() {
        let mut c = LlamaConfig::tiny(10);
        c.hidden_size = 4;
        c.intermediate_size = 6;
        c.num_hidden_layers = 2;
        c.num_attention_heads = 2;
        c.num_key_value_heads = Some(1);
        c.head_dim = None;
        // Per token and layer: q 4x4, k 4x2, v 4x2, o 4x4, gate/up/down 3 x 4x6 = 120
        // multiply-adds; 15 tokens, 2 layers: 3600 multiply-adds = 7200 FLOPs.
        let linear = 7200.0;
        // Causal: a row of 5 tokens has 15 (query, key) pairs; per pair and head 2 (QK^T,
        // width 2) + 2 (PV) multiply-adds -> 2 heads * 15 * 4 = 120 multiply-adds per row
        // and layer; 3 rows, 2 layers: 720 -> 1440 FLOPs.
        let attention = 1440.0;
        // The head at one position per row: 3 * 4 * 10 multiply-adds.
        let head = 240.0;
        assert_eq!(step_flops(&c, 3, 5, false), linear + attention + head);
        // LoRA r 8: q (4 -> 8 -> 4) and v (4 -> 8 -> 2): 64 + 48 multiply-adds per token
        // and layer, 30 token-layers: 3360 -> 6720 FLOPs, three times over (forward, input
        // and weight gradients).
        let lora = 6720.0;
        assert_eq!(
            step_flops(&c, 3, 5, true),
            2.0 * linear + 3.0 * attention + 2.0 * head + 3.0 * lora
        );
    }

    #[test]
    fn fma_peak_is_measured_where_the_cpu_has_fma() {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("fma") && std::arch::is_x86_feature_detected!("avx2")
        {
            let one = fma_peak_gflops(1).unwrap();
            assert!(one.is_finite() && one > 0.5, "{one}");
            return;
        }
        assert!(fma_peak_gflops(1).is_err());
    }
}
