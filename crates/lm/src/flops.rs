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

/// Iterations of a peak loop per thread and repetition (12 instructions each).
const PEAK_ITERS: u64 = 50_000_000;

/// The CPU's arithmetic ceilings in GFLOP/s with every thread asked for, each the best of
/// three repetitions of twelve independent register-only chains (enough to cover the
/// instruction latency; no memory access): what `fairrec bench --mode peak` prints and
/// `bench/run.sh` divides both programs' GFLOP/s by.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Peak {
    pub threads: usize,
    /// f32 FMA on 256-bit registers (`vfmadd231ps ymm`, AVX2 + FMA).
    pub f32_avx2: f64,
    /// f32 FMA on 512-bit registers (`vfmadd231ps zmm`), where the CPU has AVX-512F. Zen 4
    /// runs a 512-bit FMA as two 256-bit halves, so it matches `f32_avx2` there.
    pub f32_avx512: Option<f64>,
    /// bf16 pair dot products into f32 (`vdpbf16ps zmm`: 16 lanes x 2 products and 2 adds
    /// = 64 FLOP an instruction), where the CPU has AVX512_BF16: the ceiling of a bf16
    /// matmul with f32 accumulation (twice `f32_avx512` on Zen 4, half of it on Sapphire
    /// Rapids, whose bf16 speed is in AMX instead).
    pub bf16_dot: Option<f64>,
    /// The widest f32 FMA's figure: the f32 ceiling ("% of peak" columns).
    pub gflops: f64,
}

/// [`Peak`] with `threads` threads; an error on a CPU without AVX2 and FMA.
pub fn peaks(threads: usize) -> Result<Peak> {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::is_x86_feature_detected as has;
        if !(has!("avx2") && has!("fma")) {
            return Err(LmError::Invalid(
                "--mode peak measures AVX2 FMA throughput; this CPU has no AVX2/FMA".into(),
            ));
        }
        let threads = threads.max(1);
        // SAFETY (each call): the kernel's features were detected just before.
        let f32_avx2 = measure(threads, 12.0 * 16.0, || unsafe { fma_ymm(PEAK_ITERS) });
        let f32_avx512 = has!("avx512f")
            .then(|| measure(threads, 12.0 * 32.0, || unsafe { fma_zmm(PEAK_ITERS) }));
        let bf16_dot = (has!("avx512f") && has!("avx512bf16"))
            .then(|| measure(threads, 12.0 * 64.0, || unsafe { dpbf16_zmm(PEAK_ITERS) }));
        let gflops = f32_avx2.max(f32_avx512.unwrap_or(0.0));
        Ok(Peak {
            threads,
            f32_avx2,
            f32_avx512,
            bf16_dot,
            gflops,
        })
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = threads;
        Err(LmError::Invalid(
            "--mode peak measures AVX2 FMA throughput and runs on x86_64 only".into(),
        ))
    }
}

/// GFLOP/s of `kernel` (`flop_per_iter` FLOP in each of its [`PEAK_ITERS`] iterations) on
/// `threads` threads started together, best of three.
#[cfg(target_arch = "x86_64")]
fn measure(threads: usize, flop_per_iter: f64, kernel: impl Fn() + Sync) -> f64 {
    let mut best = 0.0f64;
    for _ in 0..3 {
        let start = std::sync::Barrier::new(threads + 1);
        let t0 = std::thread::scope(|s| {
            for _ in 0..threads {
                s.spawn(|| {
                    start.wait();
                    kernel();
                });
            }
            start.wait();
            Instant::now()
        });
        let secs = t0.elapsed().as_secs_f64();
        best = best.max(PEAK_ITERS as f64 * flop_per_iter * threads as f64 / secs / 1e9);
    }
    best
}

/// `unsafe fn $name(n)`: `n` iterations of twelve independent `$op`s on the `$r`
/// registers (r0..r11 += r14 * r15, zeros), with the target features `$features`.
macro_rules! chains {
    ($name:ident, $features:literal, $zero:literal, $op:literal, $r:literal) => {
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = $features)]
        unsafe fn $name(n: u64) {
            // SAFETY: register-only arithmetic; every vector register is clobbered.
            unsafe {
                std::arch::asm!(
                    concat!($zero, " ", $r, "14, ", $r, "14, ", $r, "14"),
                    concat!($zero, " ", $r, "15, ", $r, "15, ", $r, "15"),
                    "2:",
                    concat!($op, " ", $r, "0, ", $r, "14, ", $r, "15"),
                    concat!($op, " ", $r, "1, ", $r, "14, ", $r, "15"),
                    concat!($op, " ", $r, "2, ", $r, "14, ", $r, "15"),
                    concat!($op, " ", $r, "3, ", $r, "14, ", $r, "15"),
                    concat!($op, " ", $r, "4, ", $r, "14, ", $r, "15"),
                    concat!($op, " ", $r, "5, ", $r, "14, ", $r, "15"),
                    concat!($op, " ", $r, "6, ", $r, "14, ", $r, "15"),
                    concat!($op, " ", $r, "7, ", $r, "14, ", $r, "15"),
                    concat!($op, " ", $r, "8, ", $r, "14, ", $r, "15"),
                    concat!($op, " ", $r, "9, ", $r, "14, ", $r, "15"),
                    concat!($op, " ", $r, "10, ", $r, "14, ", $r, "15"),
                    concat!($op, " ", $r, "11, ", $r, "14, ", $r, "15"),
                    "dec r11",
                    "jnz 2b",
                    inout("r11") n => _,
                    clobber_abi("C"),
                    options(nostack, nomem),
                );
            }
        }
    };
}

chains!(fma_ymm, "avx2,fma", "vxorps", "vfmadd231ps", "ymm");
chains!(fma_zmm, "avx512f", "vpxord", "vfmadd231ps", "zmm");
chains!(
    dpbf16_zmm,
    "avx512f,avx512bf16",
    "vpxord",
    "vdpbf16ps",
    "zmm"
);

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
            use std::arch::is_x86_feature_detected as has;
            let p = peaks(1).unwrap();
            assert!(p.f32_avx2.is_finite() && p.f32_avx2 > 0.5, "{p:?}");
            // Each kernel is measured exactly where its features are.
            assert_eq!(p.f32_avx512.is_some(), has!("avx512f"), "{p:?}");
            assert_eq!(p.bf16_dot.is_some(), has!("avx512f") && has!("avx512bf16"));
            assert_eq!(p.gflops, p.f32_avx2.max(p.f32_avx512.unwrap_or(0.0)));
            // A 512-bit FMA does at least a 256-bit one's arithmetic per instruction. A bf16
            // dot product does twice a 512-bit FMA's arithmetic: at the same instruction rate
            // on Zen 4 (measured 2x the FLOP/s), at a quarter of it on an Intel Sapphire
            // Rapids-class Xeon (measured 0.50x the FLOP/s on 2026-12-06). A FLOP count off
            // by a factor of two fails these.
            if let Some(zmm) = p.f32_avx512 {
                assert!(zmm > 0.7 * p.f32_avx2, "{p:?}");
            }
            if let (Some(bf16), Some(zmm)) = (p.bf16_dot, p.f32_avx512) {
                // SAFETY: CPUID leaf 0 exists on every x86-64 CPU (`__cpuid` is a safe
                // function on newer toolchains, hence the allow).
                #[allow(unused_unsafe)]
                let v = unsafe { std::arch::x86_64::__cpuid(0) };
                let intel = [v.ebx, v.edx, v.ecx] == [0x756e_6547, 0x4965_6e69, 0x6c65_746e];
                let floor = if intel { 0.35 } else { 1.3 };
                assert!(bf16 > floor * zmm, "{p:?}");
            }
            return;
        }
        assert!(peaks(1).is_err());
    }
}
