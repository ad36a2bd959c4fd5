//! Tokenizers: HF `tokenizer.json` files, or rebuilt from GGUF metadata (byte-level BPE of
//! the `gpt2` tokenizer model, with llama.cpp's pre-tokenizer named in
//! `tokenizer.ggml.pre`).

use crate::error::{LmError, Result};
use crate::gguf::{meta_str, meta_usize};
use candle_core::quantized::gguf_file::Value;
use serde_json::json;
use std::collections::HashMap;
use std::path::Path;

/// A tokenizer with the ids and chat template the model came with.
pub struct Tok {
    pub inner: tokenizers::Tokenizer,
    pub bos: Option<u32>,
    pub eos: Option<u32>,
    /// Jinja chat template, if the model has one.
    pub chat_template: Option<String>,
}

fn tok_err(e: impl std::fmt::Display) -> LmError {
    LmError::Tokenizer(e.to_string())
}

/// Build a tokenizer from its JSON document (`what` names where it came from). The
/// `tokenizers` crate panics on some malformed documents (an `unwrap` in its decoder
/// deserializer, 0.22); such a panic is turned into an error here, so that a damaged
/// `tokenizer.json` is reported, naming the file, never a crash.
fn parse_tokenizer(text: &str, what: &str) -> Result<tokenizers::Tokenizer> {
    let v: serde_json::Value = serde_json::from_str(text)
        .map_err(|e| tok_err(format!("{what}:{}: not JSON: {e}", e.line())))?;
    let parsed = std::panic::catch_unwind(|| serde_json::from_value::<tokenizers::Tokenizer>(v));
    match parsed {
        Ok(Ok(t)) => Ok(t),
        Ok(Err(e)) => Err(tok_err(format!("{what}: not a tokenizer: {e}"))),
        Err(_) => Err(tok_err(format!(
            "{what}: not a tokenizer (the tokenizers library could not read it)"
        ))),
    }
}

/// The pre-tokenizer JSON for llama.cpp's pre-tokenizer name.
fn pre_tokenizer(pre: &str) -> Result<serde_json::Value> {
    let byte_level = |use_regex: bool| json!({"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": use_regex});
    Ok(match pre {
        // llama.cpp: "\p{N}" then the GPT-2 regex = HF Digits(individual) + ByteLevel.
        "smollm" | "starcoder" | "refact" | "command-r" | "codeshell" => {
            json!({"type": "Sequence", "pretokenizers": [{"type": "Digits", "individual_digits": true}, byte_level(true)]})
        }
        "gpt-2" | "gpt2" | "default" | "mpt" | "olmo" => byte_level(true),
        "qwen2" => json!({"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"}, "behavior": "Isolated", "invert": false},
            byte_level(false)
        ]}),
        other => {
            return Err(LmError::Tokenizer(format!(
                "GGUF pre-tokenizer `{other}` is not supported (smollm, gpt2, qwen2, ...)"
            )))
        }
    })
}

/// GPT-2's reversible byte -> printable-char map used by byte-level BPE.
pub fn bytes_to_unicode() -> Vec<char> {
    let mut table = vec!['\0'; 256];
    let mut n = 0u32;
    for b in 0..256u32 {
        let printable =
            (33..=126).contains(&b) || (161..=172).contains(&b) || (174..=255).contains(&b);
        table[b as usize] = if printable {
            char::from_u32(b).unwrap_or('?')
        } else {
            n += 1;
            char::from_u32(255 + n).unwrap_or('?')
        };
    }
    table
}

impl Tok {
    /// A byte-level tokenizer without merges (one token per byte) plus `specials`, for tiny
    /// test models: ids 0..256 are the bytes, then the specials in order.
    pub fn bytes_only(specials: &[&str], chat_template: Option<String>) -> Result<Self> {
        let mut vocab: serde_json::Map<String, serde_json::Value> = bytes_to_unicode()
            .into_iter()
            .enumerate()
            .map(|(i, c)| (c.to_string(), json!(i)))
            .collect();
        let added: Vec<serde_json::Value> = specials
            .iter()
            .enumerate()
            .map(|(k, t)| {
                vocab.insert(t.to_string(), json!(256 + k));
                json!({"id": 256 + k, "content": t, "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true})
            })
            .collect();
        let doc = json!({
            "version": "1.0", "truncation": null, "padding": null, "added_tokens": added, "normalizer": null,
            "pre_tokenizer": pre_tokenizer("gpt2")?, "post_processor": null,
            "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
            "model": {"type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": null, "end_of_word_suffix": null,
                      "fuse_unk": false, "byte_fallback": false, "ignore_merges": false, "vocab": vocab, "merges": []},
        });
        let inner = parse_tokenizer(&doc.to_string(), "a bytes-only tokenizer")?;
        let eos = specials.first().map(|_| 256);
        Ok(Tok {
            inner,
            bos: None,
            eos,
            chat_template,
        })
    }

    /// Load an HF `tokenizer.json` (and `tokenizer_config.json` beside it, for the chat
    /// template and special tokens, when present).
    pub fn from_hf_dir(dir: &Path) -> Result<Self> {
        let path = dir.join("tokenizer.json");
        let text = std::fs::read_to_string(&path)
            .map_err(|e| tok_err(format!("{}: {e}", path.display())))?;
        let inner = parse_tokenizer(&text, &path.display().to_string())?;
        let mut tok = Tok {
            inner,
            bos: None,
            eos: None,
            chat_template: None,
        };
        if let Ok(text) = std::fs::read_to_string(dir.join("tokenizer_config.json")) {
            let cfg: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
                tok_err(format!(
                    "{}: {e}",
                    dir.join("tokenizer_config.json").display()
                ))
            })?;
            tok.chat_template = cfg
                .get("chat_template")
                .and_then(|v| v.as_str())
                .map(str::to_string);
            let id = |k: &str| {
                let t = cfg.get(k)?;
                let s = t
                    .as_str()
                    .or_else(|| t.get("content").and_then(|c| c.as_str()))?;
                tok.inner.token_to_id(s)
            };
            tok.bos = id("bos_token");
            tok.eos = id("eos_token");
        }
        Ok(tok)
    }

    /// Rebuild the tokenizer stored in GGUF metadata.
    pub fn from_gguf(md: &HashMap<String, Value>) -> Result<Self> {
        let model = meta_str(md, "tokenizer.ggml.model").unwrap_or("");
        if model != "gpt2" {
            return Err(LmError::Tokenizer(format!(
                "GGUF tokenizer model `{model}` is not supported (gpt2 byte-level BPE)"
            )));
        }
        let strings = |key: &str| -> Result<Vec<String>> {
            match md.get(key) {
                Some(Value::Array(a)) => a
                    .iter()
                    .map(|v| match v {
                        Value::String(s) => Ok(s.clone()),
                        _ => Err(tok_err(format!("{key}: not strings"))),
                    })
                    .collect(),
                _ => Err(tok_err(format!("GGUF metadata `{key}` missing"))),
            }
        };
        let tokens = strings("tokenizer.ggml.tokens")?;
        let merges = strings("tokenizer.ggml.merges")?;
        let types: Vec<i64> = match md.get("tokenizer.ggml.token_type") {
            Some(Value::Array(a)) => a
                .iter()
                .map(|v| match v {
                    Value::I32(x) => i64::from(*x),
                    Value::U32(x) => i64::from(*x),
                    _ => 1,
                })
                .collect(),
            _ => vec![1; tokens.len()],
        };
        let vocab: serde_json::Map<String, serde_json::Value> = tokens
            .iter()
            .enumerate()
            .map(|(i, t)| (t.clone(), json!(i)))
            .collect();
        let added: Vec<serde_json::Value> = tokens
            .iter()
            .enumerate()
            .filter(|(i, _)| matches!(types.get(*i), Some(3) | Some(4)))
            .map(|(i, t)| json!({"id": i, "content": t, "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": types[i] == 3}))
            .collect();
        let doc = json!({
            "version": "1.0", "truncation": null, "padding": null, "added_tokens": added, "normalizer": null,
            "pre_tokenizer": pre_tokenizer(meta_str(md, "tokenizer.ggml.pre").unwrap_or("default"))?,
            "post_processor": null,
            "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
            "model": {"type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": null, "end_of_word_suffix": null,
                      "fuse_unk": false, "byte_fallback": false, "ignore_merges": false, "vocab": vocab, "merges": merges},
        });
        let inner = parse_tokenizer(&doc.to_string(), "the GGUF tokenizer metadata")?;
        Ok(Tok {
            inner,
            bos: meta_usize(md, "tokenizer.ggml.bos_token_id").map(|v| v as u32),
            eos: meta_usize(md, "tokenizer.ggml.eos_token_id").map(|v| v as u32),
            chat_template: meta_str(md, "tokenizer.chat_template").map(str::to_string),
        })
    }

    /// Token ids of `text` (special tokens written in the text are recognised; no BOS added).
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        Ok(self
            .inner
            .encode(text, false)
            .map_err(tok_err)?
            .get_ids()
            .to_vec())
    }

    /// Text of `ids`.
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        self.inner.decode(ids, false).map_err(tok_err)
    }

    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }
}
