//! Adapter files against Python `peft`: the committed fixture (made by
//! `tests/fixtures/peft/make_peft_fixture.py`) holds a tiny random Llama in HF format, a LoRA
//! adapter (B non-zero) and a prompt-tuning adapter written by peft, and the logits PyTorch
//! computes with each. fairrec must load them and reproduce the logits, and what fairrec
//! writes must load back to the same model.

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use fairrec_lm::peft;
use fairrec_lm::tokenizer::Tok;
use fairrec_lm::tuning::Tuning;
use fairrec_lm::{Llama, LlamaConfig};
use std::path::{Path, PathBuf};

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/peft")
}

fn base() -> Llama {
    let dir = fixture().join("base");
    let text = std::fs::read_to_string(dir.join("config.json")).unwrap();
    let cfg = LlamaConfig::from_hf_json(&text).unwrap();
    let w = candle_core::safetensors::load(dir.join("model.safetensors"), &Device::Cpu).unwrap();
    Llama::new(&cfg, VarBuilder::from_tensors(w, DType::F32, &Device::Cpu)).unwrap()
}

fn reference() -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(fixture().join("logits.json")).unwrap()).unwrap()
}

fn ids(r: &serde_json::Value) -> Tensor {
    let rows: Vec<Vec<u32>> = serde_json::from_value(r["ids"].clone()).unwrap();
    Tensor::new(rows, &Device::Cpu).unwrap()
}

/// Logits at every token position, `[B][T][V]`.
fn logits(m: &Llama, x: &Tensor) -> Vec<Vec<Vec<f32>>> {
    let f = m.forward(x, None).unwrap();
    f.last
        .broadcast_matmul(&m.head().t().unwrap())
        .unwrap()
        .to_vec3()
        .unwrap()
}

fn max_diff(a: &[Vec<Vec<f32>>], b: &serde_json::Value) -> f64 {
    let b: Vec<Vec<Vec<f32>>> = serde_json::from_value(b.clone()).unwrap();
    assert_eq!(a.len(), b.len());
    let mut d = 0f64;
    for (x, y) in a.iter().flatten().zip(b.iter().flatten()) {
        assert_eq!(x.len(), y.len());
        for (p, q) in x.iter().zip(y) {
            d = d.max((p - q).abs() as f64);
        }
    }
    d
}

fn tok() -> Tok {
    Tok::bytes_only(&[], None).unwrap()
}

#[test]
fn base_model_matches_pytorch() {
    let r = reference();
    let d = max_diff(&logits(&base(), &ids(&r)), &r["base"]);
    assert!(d < 1e-4, "max |logit diff| {d}");
}

/// The fixture can tell: its weights are large enough (0.3 scale) that a model with a
/// wrong rotary base, or without rotary embeddings, misses PyTorch's logits by far more
/// than the tests' 1e-4 tolerance.
#[test]
fn the_fixture_fails_a_model_with_a_wrong_rotary() {
    let r = reference();
    let dir = fixture().join("base");
    let text = std::fs::read_to_string(dir.join("config.json")).unwrap();
    let w = candle_core::safetensors::load(dir.join("model.safetensors"), &Device::Cpu).unwrap();
    // rope_theta 1e12 leaves every position nearly unrotated; 20000 is a wrong base.
    for theta in [20_000.0, 1e12] {
        let mut cfg = LlamaConfig::from_hf_json(&text).unwrap();
        cfg.rope_theta = theta;
        let m = Llama::new(
            &cfg,
            VarBuilder::from_tensors(w.clone(), DType::F32, &Device::Cpu),
        )
        .unwrap();
        let d = max_diff(&logits(&m, &ids(&r)), &r["base"]);
        assert!(d > 1e-2, "rope_theta {theta}: max |logit diff| only {d}");
    }
}

#[test]
fn peft_lora_loads_and_matches_pytorch() {
    let r = reference();
    let mut m = base();
    let t = peft::load(&fixture().join("lora"), &mut m, &tok()).unwrap();
    let Tuning::Adapters(set) = &t else {
        panic!("expected LoRA")
    };
    assert_eq!(set.cfg.r, 4);
    assert_eq!(set.modules.len(), 6); // q, v, up in 2 layers
    let d = max_diff(&logits(&m, &ids(&r)), &r["lora"]);
    assert!(d < 1e-4, "max |logit diff| {d}");
    // and it is not the base model
    assert!(max_diff(&logits(&m, &ids(&r)), &r["base"]) > 1e-2);
}

#[test]
fn peft_prompt_tuning_loads_and_matches_pytorch() {
    let r = reference();
    let mut m = base();
    let t = peft::load(&fixture().join("prompt"), &mut m, &tok()).unwrap();
    assert!(matches!(t, Tuning::Prompt { .. }));
    assert_eq!(m.soft_prompt.as_ref().unwrap().len(), 3);
    let d = max_diff(&logits(&m, &ids(&r)), &r["prompt"]);
    assert!(d < 1e-4, "max |logit diff| {d}");
}

#[test]
fn what_fairrec_writes_has_peft_layout_and_loads_back() {
    let r = reference();
    for kind in ["lora", "prompt"] {
        let mut m = base();
        let t = peft::load(&fixture().join(kind), &mut m, &tok()).unwrap();
        // kept under CARGO_TARGET_TMPDIR so that `make_peft_fixture.py check DIR` can load
        // it in Python peft
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("fairrec-written-{kind}"));
        peft::save(&t, &m, "tiny", &dir).unwrap();
        // same tensor names and shapes as peft's own file
        let theirs = candle_core::safetensors::load(
            fixture().join(kind).join(peft::WEIGHTS_FILE),
            &Device::Cpu,
        )
        .unwrap();
        let ours =
            candle_core::safetensors::load(dir.join(peft::WEIGHTS_FILE), &Device::Cpu).unwrap();
        let mut a: Vec<_> = theirs
            .iter()
            .map(|(k, v)| (k.clone(), v.dims().to_vec()))
            .collect();
        let mut b: Vec<_> = ours
            .iter()
            .map(|(k, v)| (k.clone(), v.dims().to_vec()))
            .collect();
        a.sort();
        b.sort();
        assert_eq!(a, b, "{kind}");
        // the config fields peft reads agree
        let cfg = |p: &Path| -> serde_json::Value {
            serde_json::from_str(&std::fs::read_to_string(p.join(peft::CONFIG_FILE)).unwrap())
                .unwrap()
        };
        let (c1, c2) = (cfg(&fixture().join(kind)), cfg(&dir));
        for key in [
            "peft_type",
            "task_type",
            "r",
            "lora_alpha",
            "use_rslora",
            "num_virtual_tokens",
            "token_dim",
            "num_transformer_submodules",
        ] {
            let num = |v: Option<&serde_json::Value>| v.and_then(|x| x.as_f64());
            match (num(c1.get(key)), num(c2.get(key))) {
                (Some(x), Some(y)) => assert_eq!(x, y, "{kind}: {key}"),
                _ => assert_eq!(c1.get(key), c2.get(key), "{kind}: {key}"),
            }
        }
        // the file is the typed config of what was saved, and reads back as it
        let written = peft::read_config(&dir.join(peft::CONFIG_FILE)).unwrap();
        assert_eq!(written, peft::config(&t, &m, "tiny").unwrap(), "{kind}");
        // loads back into a fresh model to the same logits
        let mut m2 = base();
        peft::load(&dir, &mut m2, &tok()).unwrap();
        let d = max_diff(&logits(&m2, &ids(&r)), &r[kind]);
        assert!(d < 1e-4, "{kind}: max |logit diff| {d}");
    }
}

#[test]
fn damaged_adapter_files_are_named() {
    let out = tempfile::tempdir().unwrap();
    let dir = out.path();
    std::fs::copy(
        fixture().join("lora").join(peft::CONFIG_FILE),
        dir.join(peft::CONFIG_FILE),
    )
    .unwrap();
    // weights of the prompt adapter under a LoRA config: every LoRA key is missing
    std::fs::copy(
        fixture().join("prompt").join(peft::WEIGHTS_FILE),
        dir.join(peft::WEIGHTS_FILE),
    )
    .unwrap();
    let e = peft::load(dir, &mut base(), &tok())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("adapter_model.safetensors") && e.contains("prompt_embeddings"),
        "{e}"
    );
    std::fs::write(dir.join(peft::CONFIG_FILE), "{\"peft_type\": \"IA3\"}").unwrap();
    let e = peft::load(dir, &mut base(), &tok())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("adapter_config.json") && e.contains("IA3"),
        "{e}"
    );
}
