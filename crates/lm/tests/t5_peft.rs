//! Prompts on T5 against Python `peft` and transformers: the committed fixture (made by
//! `tests/fixtures/peft/make_t5_fixture.py`) holds a prompt-tuning adapter that `peft`
//! wrote for the tiny original-T5 model of `fixtures/t5/relu` with PEFT's seq2seq default
//! `num_transformer_submodules` 2 (a table of 2 x 3 rows), the answer logits PyTorch + peft
//! compute with it (the first block in front of the encoder input, the second unused), and
//! those transformers computes with the second block in front of the decoder input (PEFT
//! before 0.4).

use candle_core::{Device, Tensor};
use fairrec_lm::load::load_t5;
use fairrec_lm::peft;
use fairrec_lm::t5::T5;
use fairrec_lm::tokenizer::Tok;
use fairrec_lm::tuning::Tuning;
use std::path::{Path, PathBuf};

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn reference() -> serde_json::Value {
    let text = std::fs::read_to_string(fixture().join("peft/t5.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn base() -> T5 {
    load_t5(
        &fixture().join("t5/relu"),
        &Device::Cpu,
        candle_core::DType::F32,
    )
    .unwrap()
}

fn batch(r: &serde_json::Value) -> (Tensor, Tensor) {
    let t = |k: &str| {
        let rows: Vec<Vec<u32>> = serde_json::from_value(r[k].clone()).unwrap();
        Tensor::new(rows, &Device::Cpu).unwrap()
    };
    (t("ids"), t("mask"))
}

/// The largest difference between our answer logits and the reference's `[B][V]`.
fn max_err(m: &T5, r: &serde_json::Value, key: &str) -> f32 {
    let (ids, mask) = batch(r);
    let ours: Vec<Vec<f32>> = m
        .first_step_vocab_logits(&ids, &mask, None)
        .unwrap()
        .to_vec2()
        .unwrap();
    let want: Vec<Vec<f32>> = serde_json::from_value(r[key].clone()).unwrap();
    assert_eq!(ours.len(), want.len());
    ours.iter()
        .flatten()
        .zip(want.iter().flatten())
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max)
}

/// A copy of the fixture's adapter with `key` of its config set to `value`.
fn variant(key: &str, value: serde_json::Value) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let src = fixture().join("peft/t5-prompt");
    let mut cfg: serde_json::Value =
        serde_json::from_slice(&std::fs::read(src.join(peft::CONFIG_FILE)).unwrap()).unwrap();
    cfg[key] = value;
    let cfg = serde_json::to_vec(&cfg).unwrap();
    std::fs::write(dir.path().join(peft::CONFIG_FILE), cfg).unwrap();
    let weights = dir.path().join(peft::WEIGHTS_FILE);
    std::fs::copy(src.join(peft::WEIGHTS_FILE), weights).unwrap();
    dir
}

fn load(m: &mut T5, dir: &Path) -> Tuning {
    let tok = Tok::bytes_only(&[], None).unwrap();
    peft::load(dir, m, &tok).unwrap()
}

#[test]
fn a_peft_seq2seq_prompt_of_two_blocks_loads_and_scores_as_peft_does() {
    let r = reference();
    let mut m = base();
    let tuning = load(&mut m, &fixture().join("peft/t5-prompt"));
    let Tuning::Prompt { prompt, .. } = &tuning else {
        panic!("not a prompt")
    };
    assert_eq!(prompt.len(), 3, "virtual tokens per block");
    assert_eq!(prompt.shape.submodules, 2);
    assert_eq!(tuning.parameters(), 2 * 3 * 16, "both blocks are trainable");
    let err = max_err(&m, &r, "answer_logits");
    assert!(err < 1e-5, "answer logits differ from peft's by {err}");
    // Without the prompt the answer differs: the first block is really read.
    m.soft_prompt = None;
    assert!(max_err(&m, &r, "answer_logits") > 1e-3);

    // What fairrec writes is PEFT's file again: two blocks, the same table.
    let out = tempfile::tempdir().unwrap();
    let mut again = base();
    let t2 = load(&mut again, &fixture().join("peft/t5-prompt"));
    peft::save(&t2, &again, "../t5/relu", out.path()).unwrap();
    let cfg: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.path().join(peft::CONFIG_FILE)).unwrap())
            .unwrap();
    assert_eq!(cfg["num_transformer_submodules"], 2);
    assert_eq!(cfg["num_virtual_tokens"], 3);
    assert_eq!(cfg["task_type"], "SEQ_2_SEQ_LM");
    assert!(cfg.get("fairrec_decoder_prompt").is_none());
    let read = |d: &Path| {
        candle_core::safetensors::load(d.join(peft::WEIGHTS_FILE), &Device::Cpu).unwrap()
            ["prompt_embeddings"]
            .to_vec2::<f32>()
            .unwrap()
    };
    assert_eq!(read(out.path()), read(&fixture().join("peft/t5-prompt")));
}

#[test]
fn the_second_block_in_front_of_the_decoder_matches_transformers() {
    let r = reference();
    // The fixture's file, marked for the decoder (PEFT before 0.4).
    let dir = variant("fairrec_decoder_prompt", true.into());
    let mut m = base();
    let tuning = load(&mut m, dir.path());
    let err = max_err(&m, &r, "decoder_prompt_answer_logits");
    assert!(
        err < 1e-5,
        "answer logits differ from transformers' by {err}"
    );
    assert!(
        max_err(&m, &r, "answer_logits") > 1e-3,
        "the decoder block is read"
    );
    // Saved, the mark stays.
    let out = tempfile::tempdir().unwrap();
    peft::save(&tuning, &m, "base", out.path()).unwrap();
    let text = std::fs::read_to_string(out.path().join(peft::CONFIG_FILE)).unwrap();
    assert!(text.contains("\"fairrec_decoder_prompt\": true"), "{text}");
}

#[test]
fn two_blocks_are_refused_on_a_decoder_only_model_and_three_anywhere() {
    let dir = variant("num_transformer_submodules", 3.into());
    let tok = Tok::bytes_only(&[], None).unwrap();
    let err = peft::load(dir.path(), &mut base(), &tok)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("adapter_config.json") && err.contains("num_transformer_submodules"),
        "{err}"
    );
    let cfg = fairrec_lm::builtin::config(64, 16, 1);
    let mut llama = fairrec_lm::random::random_model(&cfg, 0, 0.02, &Device::Cpu).unwrap();
    use fairrec_lm::prompt::{PromptInit, PromptShape};
    use fairrec_lm::PromptHost;
    let two = PromptShape {
        submodules: 2,
        decoder: false,
    };
    let err = llama
        .attach_soft_prompt(&tok, 3, two, &PromptInit::Random, 0)
        .unwrap_err()
        .to_string();
    assert!(err.contains("decoder-only"), "{err}");
}
