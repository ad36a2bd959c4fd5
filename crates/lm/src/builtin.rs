//! The built-in tiny model: a byte-level BPE tokenizer trained on the dataset's own prompt
//! text, a ChatML chat template, and a small Llama with seeded random weights, written as
//! an ordinary HF directory so that every command takes it as `--model DIR`. It knows
//! nothing until trained (full fine-tuning or LoRA); it exists so that the whole pipeline
//! runs in minutes without downloading a model.

use crate::config::LlamaConfig;
use crate::error::{LmError, Result};
use crate::tokenizer::Tok;
use candle_core::Device;
use std::path::Path;

/// ChatML, the template of SmolLM2 and Qwen2.
pub const CHATML: &str = "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

/// The special tokens (the first is end of text, used for padding).
pub const SPECIALS: [&str; 3] = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"];

/// Train a byte-level BPE of at most `vocab_size` tokens (256 bytes + specials + merges)
/// on `texts`; deterministic for the same texts.
pub fn train_tokenizer(texts: &[String], vocab_size: usize) -> Result<Tok> {
    use tokenizers::models::bpe::BpeTrainer;
    use tokenizers::pre_tokenizers::byte_level::ByteLevel;
    use tokenizers::AddedToken;
    // The trainer puts the special tokens first (ids 0, 1, 2), then the 256 bytes, then
    // the merges; starting from a tokenizer without added tokens keeps the ids consistent.
    let mut tok = Tok::bytes_only(&[], Some(CHATML.to_string()))?;
    let mut trainer: tokenizers::models::TrainerWrapper = BpeTrainer::builder()
        .vocab_size(vocab_size.max(256 + SPECIALS.len()))
        .min_frequency(2)
        .show_progress(false)
        .initial_alphabet(ByteLevel::alphabet().into_iter().collect())
        .special_tokens(
            SPECIALS
                .iter()
                .map(|s| AddedToken::from(s.to_string(), true))
                .collect(),
        )
        .build()
        .into();
    tok.inner
        .train(&mut trainer, texts.iter())
        .map_err(|e| LmError::Tokenizer(format!("training the tokenizer: {e}")))?;
    tok.eos = tok.inner.token_to_id(SPECIALS[0]);
    Ok(tok)
}

/// The built-in architecture for a vocabulary of `vocab` tokens.
pub fn config(vocab: usize, hidden: usize, layers: usize) -> LlamaConfig {
    LlamaConfig {
        hidden_size: hidden,
        intermediate_size: hidden * 2,
        num_hidden_layers: layers,
        num_attention_heads: 4,
        num_key_value_heads: Some(2),
        ..LlamaConfig::tiny(vocab)
    }
}

/// Write the built-in model (tokenizer trained on `texts`, random weights from `seed`)
/// as an HF directory.
pub fn write(
    dir: &Path,
    texts: &[String],
    vocab_size: usize,
    hidden: usize,
    layers: usize,
    seed: u64,
) -> Result<LlamaConfig> {
    if !hidden.is_multiple_of(4) || hidden == 0 || layers == 0 {
        return Err(LmError::Invalid(
            "the built-in model needs a hidden size divisible by 4 and at least one layer".into(),
        ));
    }
    let tok = train_tokenizer(texts, vocab_size)?;
    let cfg = config(tok.vocab_size(), hidden, layers);
    let w = crate::random::random_weights(&cfg, seed, 0.02, &Device::Cpu)?;
    let mut tensors: Vec<_> = w.into_iter().collect();
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    crate::save::save_hf_dir(&cfg, &tensors, &tok, dir)?;
    Ok(cfg)
}
