//! GFLOP/s of the frozen projection (`fairrec_lm::ops::frozen_linear`) on the CPU, f32
//! against bf16 weights (`--dtype bf16`), forward `x W^T` and input gradient `g W`, on the
//! projection shapes of SmolLM2-135M and Qwen2-0.5B at 1,024 rows (4 x 256 tokens):
//!
//!     cargo run --release -p fairrec-lm --example linear_speed [ROWS]
//!
//! Best of five after one warm-up; threads as candle's kernels use them.
use candle_core::{DType, Device, Tensor, Var};
use fairrec_lm::ops::{bf16, bf16::avx512_bf16, frozen_linear};
use std::time::Instant;

fn best(mut f: impl FnMut()) -> f64 {
    f();
    (0..5)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min)
}

fn main() -> candle_core::Result<()> {
    let rows: usize = std::env::args()
        .nth(1)
        .map_or(1024, |a| a.parse().expect("ROWS"));
    println!("AVX512_BF16 kernels: {}", avx512_bf16());
    let shapes = [
        ("smollm2 q/o", 576, 576),
        ("smollm2 gate/up", 1536, 576),
        ("smollm2 down", 576, 1536),
        ("qwen2-0.5b q/o", 896, 896),
        ("qwen2-0.5b gate/up", 4864, 896),
        ("qwen2-0.5b down", 896, 4864),
    ];
    println!("| shape [out, in] | f32 fwd | bf16 fwd | f32 grad | bf16 grad |");
    for (name, n, k) in shapes {
        let x = Var::from_tensor(&Tensor::randn(0f32, 1.0, (rows, k), &Device::Cpu)?)?;
        let w32 = Tensor::randn(0f32, 0.02, (n, k), &Device::Cpu)?;
        let g = Tensor::randn(0f32, 1.0, (rows, n), &Device::Cpu)?;
        let flop = 2.0 * (rows * n * k) as f64 / 1e9;
        let (xs, gs) = (
            x.as_tensor().flatten_all()?.to_vec1::<f32>()?,
            g.flatten_all()?.to_vec1::<f32>()?,
        );
        let wb = w32
            .flatten_all()?
            .to_dtype(DType::BF16)?
            .to_vec1::<half::bf16>()?;
        let (mut y, mut dx) = (vec![0f32; rows * n], vec![0f32; rows * k]);
        let cells = [
            best(|| drop(frozen_linear(x.as_tensor(), &w32).unwrap())),
            best(|| bf16::xwt(&mut y, &xs, &wb, (rows, n, k), false)),
            best(|| drop(g.matmul(&w32).unwrap())),
            best(|| bf16::gw(&mut dx, &gs, &wb, (rows, n, k))),
        ]
        .map(|s| flop / s);
        println!(
            "| {name} [{n}, {k}] | {:.0} | {:.0} | {:.0} | {:.0} |",
            cells[0], cells[1], cells[2], cells[3]
        );
    }
    println!("(GFLOP/s; fwd = x W^T, f32 through frozen_linear; grad = g W, f32 through candle's matmul)");
    Ok(())
}
