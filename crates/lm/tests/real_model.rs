//! The real SmolLM2-135M-Instruct GGUF (read from `FAIRREC_MODELS`): the tokenizer rebuilt
//! from its metadata and the dequantized, un-permuted weights must make a model that knows
//! facts.

mod common;
use candle_core::{Device, Tensor};
use common::{assert_cast_of, weights_of};
use fairrec_lm::load::load_gguf;
use std::io::Write;
use std::path::PathBuf;

/// Say that a test was skipped, visibly (the stderr handle bypasses libtest's capture);
/// under CI (`CI` set) a missing model fails the test instead.
fn skipped(why: &str) {
    if std::env::var_os("CI").is_some() {
        panic!("{why}: CI must run every test (../shared beside the clone)");
    }
    let _ = writeln!(std::io::stderr(), "SKIPPED: {why}");
}

fn model_path() -> Option<PathBuf> {
    let Some(root) = std::env::var_os("FAIRREC_MODELS") else {
        skipped("FAIRREC_MODELS is not set, so the real SmolLM2 GGUF cannot be read (CI sets it to ../shared/models)");
        return None;
    };
    let p = PathBuf::from(root).join("smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf");
    if !p.exists() {
        skipped(&format!("{} does not exist", p.display()));
        return None;
    }
    Some(p)
}

#[test]
fn smollm2_gguf_knows_capitals() {
    let Some(path) = model_path() else { return };
    let m = load_gguf(&path, &Device::Cpu, candle_core::DType::F32).unwrap();
    let cfg = &m.model.cfg;
    assert_eq!(
        (
            cfg.num_hidden_layers,
            cfg.hidden_size,
            cfg.num_attention_heads,
            cfg.kv_heads(),
            cfg.vocab_size
        ),
        (30, 576, 9, 3, 49152)
    );
    assert!(cfg.tie_word_embeddings);
    let tok = &m.tokenizer;
    assert_eq!(
        tok.encode("<|im_start|>").unwrap().len(),
        1,
        "control tokens are single tokens"
    );
    // digits split one by one (llama.cpp's `smollm` pre-tokenizer)
    assert_eq!(tok.encode("2024").unwrap().len(), 4);
    assert_eq!(
        tok.decode(&tok.encode("Hello, world! Misérables").unwrap())
            .unwrap(),
        "Hello, world! Misérables"
    );
    for (prompt, want) in [
        ("The capital of France is", " Paris"),
        ("The capital of Germany is", " Berlin"),
    ] {
        let ids = tok.encode(prompt).unwrap();
        let t = Tensor::new(ids.as_slice(), &Device::Cpu)
            .unwrap()
            .unsqueeze(0)
            .unwrap();
        let f = m.model.forward(&t, None).unwrap();
        let logits = m.model.logits_at(&f.last, &[ids.len() - 1]).unwrap();
        let best = logits.argmax(1).unwrap().to_vec1::<u32>().unwrap()[0];
        assert_eq!(tok.decode(&[best]).unwrap(), want, "{prompt}");
    }
}

#[test]
fn smollm2_scores_yes_no_with_its_chat_template() {
    use fairrec_lm::score::{AnswerSpace, PromptFormat, Scorer};
    let Some(path) = model_path() else { return };
    let m = load_gguf(&path, &Device::Cpu, candle_core::DType::F32).unwrap();
    let s = Scorer::new(
        &m.model,
        &m.tokenizer,
        PromptFormat::Chat,
        AnswerSpace::Auto,
    )
    .unwrap();
    assert!(
        s.render("x").unwrap().ends_with("<|im_start|>assistant\n"),
        "{}",
        s.render("x").unwrap()
    );
    assert_eq!(m.tokenizer.decode(&[s.yes, s.no]).unwrap(), "YesNo");
    // SmolLM2-135M (4-bit) has little Yes/No factual signal of its own, so the checks here
    // are independent recomputations, not the model's judgement.
    let prompts: Vec<String> = [
        "Is Paris the capital of France? Answer \"Yes\" or \"No\".",
        "Do cats bark?",
    ]
    .map(String::from)
    .to_vec();
    let p = s.p_yes(&prompts, 2).unwrap();
    let ids = s.encode(&prompts).unwrap();
    for (i, row) in ids.iter().enumerate() {
        // Full-vocabulary logits of the prompt alone, softmax over the two answer ids.
        let x = Tensor::new(row.as_slice(), &Device::Cpu)
            .unwrap()
            .unsqueeze(0)
            .unwrap();
        let f = m.model.forward(&x, None).unwrap();
        let full = m
            .model
            .logits_at(&f.last, &[row.len() - 1])
            .unwrap()
            .squeeze(0)
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let (y, n) = (
            f64::from(full[s.yes as usize]),
            f64::from(full[s.no as usize]),
        );
        let want = 1.0 / (1.0 + (n - y).exp());
        assert!((p[i] - want).abs() < 1e-4, "{i}: {} vs {want}", p[i]);
    }
    // Greedy decoding through the chat template answers a factual question.
    let ids = m
        .tokenizer
        .encode(&s.render("What is the capital of France?").unwrap())
        .unwrap();
    let out = m.model.greedy(&ids, 7, &[]).unwrap();
    let text = m.tokenizer.decode(&out).unwrap();
    assert!(text.starts_with("The capital of France is Paris"), "{text}");
}

#[test]
fn smollm2_gguf_dequantises_straight_into_bf16_as_a_cast_of_the_f32_load() {
    let Some(path) = model_path() else { return };
    let dtype = candle_core::DType::BF16;
    let mut full = load_gguf(&path, &Device::Cpu, candle_core::DType::F32)
        .unwrap()
        .model;
    let mut half = load_gguf(&path, &Device::Cpu, dtype).unwrap().model;
    assert_eq!(half.embed_tokens.dtype(), dtype);
    let (full, half) = (weights_of(&mut full), weights_of(&mut half));
    assert_eq!(
        full.len(),
        30 * 9 + 2,
        "30 blocks of 9 tensors, the embedding and the norm"
    );
    assert_cast_of(&half, &full, dtype);
}
