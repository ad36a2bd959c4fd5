//! `--dtype` (issue 24), CPU side: a bf16 base runs candle's composed ops on the CPU, the
//! same ops a GPU runs, so the mixed-precision policy is checked here: trainable variables
//! stay f32 whatever the base's dtype, a few training steps of each kind of method over a
//! bf16 base move its variables as the f32 run does, and audits of the two agree within
//! bf16's precision. Full fine-tuning refuses a half-precision base before writing anything.

mod common;
use candle_core::{DType, Device, Tensor};
use common::*;
use std::collections::BTreeMap;
use std::path::Path;

fn adapter(run: &Path) -> BTreeMap<String, Tensor> {
    let f = run.join("adapter/adapter_model.safetensors");
    candle_core::safetensors::load(&f, &Device::Cpu)
        .unwrap()
        .into_iter()
        .collect()
}

/// Every variable concatenated, f32.
fn flat(w: &BTreeMap<String, Tensor>) -> Vec<f32> {
    w.values()
        .flat_map(|t| {
            t.to_dtype(DType::F32)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap()
        })
        .collect()
}

fn train(model: &Path, data: &Path, method: &str, steps: &str, dtype: &str, out: &Path) {
    ok(&[
        "train",
        "--model",
        p(model),
        "--data",
        p(data),
        "--method",
        method,
        "--max-steps",
        steps,
        "--limit-train",
        "16",
        "--no-eval",
        "--dtype",
        dtype,
        "--out",
        p(out),
    ]);
}

fn p_yes(audit: &Path) -> Vec<f64> {
    std::fs::read_to_string(audit.join("predictions.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["p_yes"]
                .as_f64()
                .unwrap()
        })
        .collect()
}

/// Train `method` 2 steps in f32 and over a bf16 base from the same start; compare.
fn check(t: &Path, model: &Path, data: &Path, method: &str) {
    let run = |name: &str| t.join(format!("{method}-{name}"));
    // Each run's own start (a prompt initialised from the embedding table starts from the
    // bf16 table's rows over a bf16 base).
    for d in ["f32", "bf16"] {
        train(model, data, method, "0", d, &run(&format!("init-{d}")));
        train(model, data, method, "2", d, &run(d));
    }
    let [i32_, full, i16_, half] =
        ["init-f32", "f32", "init-bf16", "bf16"].map(|n| adapter(&run(n)));
    for (k, v) in &half {
        assert_eq!(
            v.dtype(),
            DType::F32,
            "{method}: {k} trained over bf16 is not f32"
        );
    }
    assert_eq!(
        half.keys().collect::<Vec<_>>(),
        full.keys().collect::<Vec<_>>()
    );
    // The update of the bf16 run against the f32 run's: the same direction and size (bf16
    // rounds the gradients to ~3 significant digits; a variable left out, a wrong cast or a
    // gradient lost would turn the direction or zero it).
    let (i32_, f, i16_, h) = (flat(&i32_), flat(&full), flat(&i16_), flat(&half));
    let (mut dot, mut nf, mut nh) = (0f64, 0f64, 0f64);
    for (((i, f), j), h) in i32_.iter().zip(&f).zip(&i16_).zip(&h) {
        let (a, b) = (f64::from(f - i), f64::from(h - j));
        (dot, nf, nh) = (dot + a * b, nf + a * a, nh + b * b);
    }
    assert!(nf > 0.0, "{method}: the f32 run did not move");
    let cos = dot / (nf.sqrt() * nh.sqrt());
    let ratio = (nh / nf).sqrt();
    eprintln!("{method}: update cosine {cos:.4}, size ratio {ratio:.4}");
    assert!(
        cos > 0.95,
        "{method}: bf16 update cosine {cos} with the f32 one"
    );
    assert!(
        (0.9..1.1).contains(&ratio),
        "{method}: bf16 update {ratio}x the f32 one"
    );
    let run_json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run("bf16").join("run.json")).unwrap()).unwrap();
    assert_eq!(
        (run_json["device"].as_str(), run_json["dtype"].as_str()),
        (Some("cpu"), Some("bf16"))
    );
    // The f32 run's adapter audited over an f32 and a bf16 base agree within bf16's
    // precision.
    let mut ps = Vec::new();
    for d in ["f32", "bf16"] {
        let out = t.join(format!("{method}-audit-{d}"));
        let adapter_dir = run("f32").join("adapter");
        let mut args = audit_argv(model, data, "4", &out);
        args.extend(["--adapter", p(&adapter_dir), "--dtype", d]);
        ok(&args);
        let rec: serde_json::Value =
            serde_json::from_slice(&std::fs::read(out.join("run.json")).unwrap()).unwrap();
        assert_eq!(rec["dtype"], d);
        ps.push(p_yes(&out));
    }
    let worst = ps[0]
        .iter()
        .zip(&ps[1])
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max);
    eprintln!(
        "{method}: audit max |dP(Yes)| {worst:.5} over {} prompts",
        ps[0].len()
    );
    // bf16 keeps 8 bits of mantissa (relative step 0.004): a few roundings per block move
    // P(Yes) by ~0.01-0.02 on this model; a wrong op or a lost adapter moves it by more.
    assert!(
        !ps[0].is_empty() && worst < 0.03,
        "{method}: bf16 audit off by {worst}"
    );
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
