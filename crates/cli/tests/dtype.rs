//! `--dtype` (issues 24 and 28), CPU side: a bf16 base on the CPU keeps its weights in bf16
//! and its hidden states in f32 (the fused kernels, each product's input rounded to bf16;
//! the composed path that a GPU runs is checked against f32 in `fairrec-lm`'s `half.rs`):
//! trainable variables stay f32 whatever the base's dtype, a few training steps of each
//! kind of method over a bf16 base move its variables as the f32 run does, and audits over
//! the two bases agree within bf16's precision. Full fine-tuning refuses a half-precision
//! base before writing anything.

mod common;
use common::parity::{compare, Place, CPU_F32};
use common::*;
use std::path::Path;

const CPU_BF16: Place = Place {
    device: "cpu",
    dtype: "bf16",
};

/// bf16 rounds the gradients to ~3 significant digits: the update keeps its direction
/// (a variable left out, a wrong cast or a lost gradient would turn it or zero it) and its
/// size. bf16 keeps 8 bits of mantissa (relative step 0.004): a few roundings per block move
/// P(Yes) by ~0.01-0.02 on this model; a wrong op or a lost adapter moves it by more.
fn check(t: &Path, model: &Path, data: &Path, method: &str) {
    let c = compare(t, model, data, method, CPU_F32, CPU_BF16);
    assert!(c.cosine > 0.95, "{method}: bf16 update cosine {}", c.cosine);
    assert!(
        (0.9..1.1).contains(&c.ratio),
        "{method}: bf16 update {}x",
        c.ratio
    );
    assert!(c.p_yes < 0.03, "{method}: bf16 audit off by {}", c.p_yes);
}

#[test]
fn training_over_a_bf16_base_keeps_f32_variables_and_follows_the_f32_run() {
    let t = tempfile::tempdir().unwrap();
    let (data, model) = data_and_model(t.path(), "12");
    for method in ["lora", "p-tuning", "cl-moe"] {
        check(t.path(), &model, &data, method);
    }
    let b = t.path().join("mos");
    std::fs::create_dir_all(&b).unwrap();
    let data_b = prepared_world(&b, "12", "50", &["--protocol", "mos"]);
    for method in ["mos", "prompt-tuning"] {
        check(&b, &model, &data_b, method);
    }
}

#[test]
fn full_fine_tuning_refuses_a_half_precision_base_before_writing() {
    let t = tempfile::tempdir().unwrap();
    let (data, model) = data_and_model(t.path(), "12");
    let out = t.path().join("full");
    let e = fails(&[
        "train",
        "--model",
        p(&model),
        "--data",
        p(&data),
        "--method",
        "full",
        "--dtype",
        "bf16",
        "--out",
        p(&out),
    ]);
    assert!(
        e.contains("--dtype bf16 with --method full") && e.contains("--dtype f32"),
        "{e}"
    );
    assert!(!out.exists(), "a refused run wrote {}", out.display());
    let e = fails(&[
        "score",
        "--model",
        p(&model),
        "--prompt",
        "Hi?",
        "--dtype",
        "fp32",
    ]);
    assert!(
        e.contains("--dtype") && e.contains("expected auto, f32, bf16 or f16"),
        "{e}"
    );
}
