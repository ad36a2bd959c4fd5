//! `fairrec score` on a T5 directory: the committed tiny Flan-layout T5 (see
//! `crates/lm/tests/fixtures/t5/make_tiny_t5.py`) with a word-level tokenizer written here so
//! that a prompt's words are exactly the reference's input ids; P(Yes) must be the softmax
//! of transformers' first-step logits at the "Yes" and "No" ids.

mod common;
use common::{fails, ok};
use std::path::{Path, PathBuf};

const YES: usize = 5;
const NO: usize = 17;

fn word(id: usize) -> String {
    match id {
        YES => "Yes".into(),
        NO => "No".into(),
        i => format!("w{i}"),
    }
}

/// The fixture's weights and config, plus `tokenizer.json` (word level, one word per id)
/// and a `tokenizer_config.json` whose chat template passes the prompt through.
fn t5_dir(tmp: &Path) -> (PathBuf, serde_json::Value) {
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../lm/tests/fixtures/t5/gated");
    let dir = tmp.join("t5");
    std::fs::create_dir_all(&dir).unwrap();
    for f in ["config.json", "model.safetensors"] {
        std::fs::copy(src.join(f), dir.join(f)).unwrap();
    }
    let vocab: serde_json::Map<String, serde_json::Value> =
        (0..64).map(|i| (word(i), serde_json::json!(i))).collect();
    let tok = serde_json::json!({
        "version": "1.0", "truncation": null, "padding": null, "added_tokens": [],
        "normalizer": null, "pre_tokenizer": {"type": "WhitespaceSplit"},
        "post_processor": null, "decoder": null,
        "model": {"type": "WordLevel", "vocab": vocab, "unk_token": "w2"},
    });
    std::fs::write(dir.join("tokenizer.json"), tok.to_string()).unwrap();
    let cfg =
        serde_json::json!({"chat_template": "{{ messages[0]['content'] }}", "eos_token": "w1"});
    std::fs::write(dir.join("tokenizer_config.json"), cfg.to_string()).unwrap();
    let text = std::fs::read_to_string(src.join("reference.json")).unwrap();
    (dir, serde_json::from_str(&text).unwrap())
}

#[test]
fn score_on_a_t5_directory_gives_transformers_first_step_answer() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, r) = t5_dir(tmp.path());
    let ids: Vec<Vec<usize>> = serde_json::from_value(r["input_ids"].clone()).unwrap();
    let mask: Vec<Vec<usize>> = serde_json::from_value(r["attention_mask"].clone()).unwrap();
    let logits: Vec<f64> = serde_json::from_value(r["logits"].clone()).unwrap();
    let (t_dec, v) = (7, 64);
    for b in 0..2 {
        let real = mask[b].iter().sum::<usize>();
        let prompt: Vec<String> = ids[b][..real].iter().map(|&i| word(i)).collect();
        let out = ok(&[
            "score",
            "--model",
            dir.to_str().unwrap(),
            "--answer-space",
            "none",
            "--prompt",
            &prompt.join(" "),
        ]);
        let got: serde_json::Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
        let at = |k: usize| logits[b * t_dec * v + k];
        let expected = 1.0 / (1.0 + (at(NO) - at(YES)).exp());
        let p = got["p_yes"].as_f64().unwrap();
        assert!((p - expected).abs() < 1e-5, "row {b}: {p} vs {expected}");
        assert_eq!(got["n_tokens"].as_u64().unwrap() as usize, real);
    }
}

#[test]
fn a_t5_model_refuses_adapters_and_training_with_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, _) = t5_dir(tmp.path());
    let e = fails(&[
        "score",
        "--model",
        dir.to_str().unwrap(),
        "--adapter",
        tmp.path().to_str().unwrap(),
        "--prompt",
        "w3",
    ]);
    assert!(e.contains("decoder-only") && e.contains("T5"), "{e}");
}
