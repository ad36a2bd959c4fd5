//! The built-in model: a tokenizer trained on the data's text and a random tiny Llama in an
//! HF directory that the ordinary loader reads.

use candle_core::Device;
use fairrec_lm::builtin;
use fairrec_lm::score::{AnswerSpace, PromptFormat, Scorer};

fn texts() -> Vec<String> {
    (0..200)
        .map(|i| {
            format!(
                "Given the user's preference and unpreference, will the user like \"Movie {i} (19{})\"? Yes. No.",
                i % 90 + 10
            )
        })
        .collect()
}

#[test]
fn tokenizer_trained_on_the_text_round_trips_and_compresses() {
    let tok = builtin::train_tokenizer(&texts(), 600).unwrap();
    assert!(
        tok.vocab_size() <= 600 && tok.vocab_size() > 300,
        "{}",
        tok.vocab_size()
    );
    let s = "Given the user's preference, will the user like \"Movie 7 (1917)\"? Ünïcode ok";
    let ids = tok.encode(s).unwrap();
    assert_eq!(tok.decode(&ids).unwrap(), s);
    assert!(
        ids.len() < s.len() / 2,
        "{} tokens for {} bytes",
        ids.len(),
        s.len()
    );
    for (i, sp) in builtin::SPECIALS.iter().enumerate() {
        assert_eq!(tok.encode(sp).unwrap(), vec![i as u32], "{sp}");
    }
    assert_eq!(tok.eos, Some(0));
    // deterministic
    let again = builtin::train_tokenizer(&texts(), 600).unwrap();
    assert_eq!(again.encode(s).unwrap(), ids);
}

#[test]
fn builtin_model_directory_loads_and_scores() {
    let d = tempfile::tempdir().unwrap();
    let cfg = builtin::write(d.path(), &texts(), 500, 32, 2, 0).unwrap();
    let loaded =
        fairrec_lm::load::load_hf_dir(d.path(), &Device::Cpu, candle_core::DType::F32).unwrap();
    assert_eq!(loaded.model.cfg, cfg);
    assert_eq!(
        loaded.tokenizer.chat_template.as_deref(),
        Some(builtin::CHATML)
    );
    let s = Scorer::new(
        &loaded.model,
        &loaded.tokenizer,
        PromptFormat::Chat,
        AnswerSpace::Auto,
    )
    .unwrap();
    assert_ne!(s.yes, s.no);
    assert!(s.render("hi").unwrap().ends_with("<|im_start|>assistant\n"));
    let p = s.p_yes(&["will the user like it?".to_string()], 1).unwrap();
    assert!(p[0] > 0.0 && p[0] < 1.0);
    assert!(builtin::write(d.path(), &texts(), 500, 30, 2, 0).is_err());
}
