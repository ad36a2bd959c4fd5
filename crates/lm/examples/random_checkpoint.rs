//! Write an HF model directory of a named shape with random weights (the device's
//! generator, not reproducible), to measure loading at that size without the real weights:
//!
//!     cargo run --release -p fairrec-lm --example random_checkpoint -- qwen2-1.5b bf16 DIR
//!     fairrec bench --model DIR --dtype bf16 --mode score --batch 1 --seq 32 --steps 1
//!
//! Shapes: `LlamaConfig::named`; dtype: f32, bf16 or f16. The tokenizer is a bytes-only one
//! (the benchmark feeds random token ids below the configuration's vocabulary).

use candle_core::{DType, Device};
use fairrec_lm::random::device_random_weights;
use fairrec_lm::tokenizer::Tok;
use fairrec_lm::LlamaConfig;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [shape, dtype, out] = args.as_slice() else {
        eprintln!("usage: random_checkpoint SHAPE f32|bf16|f16 OUT_DIR");
        std::process::exit(2);
    };
    let cfg = LlamaConfig::named(shape).unwrap_or_else(|e| panic!("shape {e}"));
    let dtype = match dtype.as_str() {
        "f32" => DType::F32,
        "bf16" => DType::BF16,
        "f16" => DType::F16,
        o => panic!("dtype `{o}`: expected f32, bf16 or f16"),
    };
    let out = std::path::Path::new(out);
    std::fs::create_dir_all(out).unwrap();
    let w = device_random_weights(&cfg, 0.02, &Device::Cpu, dtype).unwrap();
    candle_core::safetensors::save(&w, out.join("model.safetensors")).unwrap();
    std::fs::write(
        out.join("config.json"),
        serde_json::to_string(&cfg).unwrap(),
    )
    .unwrap();
    let tok = Tok::bytes_only(&["<|endoftext|>"], None).unwrap();
    tok.inner.save(out.join("tokenizer.json"), false).unwrap();
    std::fs::write(out.join("tokenizer_config.json"), "{}").unwrap();
    let bytes: usize = w
        .values()
        .map(|t| t.elem_count() * dtype.size_in_bytes())
        .sum();
    println!(
        "{shape} in {dtype:?}: {} tensors, {:.2} GB -> {}",
        w.len(),
        bytes as f64 / 1e9,
        out.display()
    );
}
