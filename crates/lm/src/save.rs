//! Writing a whole model as an HF directory (`config.json`, `model.safetensors`, the
//! tokenizer files) that `load` and transformers read back: a full fine-tune's result,
//! the built-in model.

use crate::config::LlamaConfig;
use crate::error::{LmError, Result};
use crate::tokenizer::Tok;
use std::path::Path;

/// Save a model of `cfg` with weights `tensors` (HF checkpoint keys) and `tok` as an HF
/// directory (`config.json`, `model.safetensors`, `tokenizer.json`,
/// `tokenizer_config.json`) that [`load_hf_dir`] and transformers read; `dir` is replaced
/// as a whole, crash-safe.
pub fn save_hf_dir(
    cfg: &LlamaConfig,
    tensors: &[(String, candle_core::Tensor)],
    tok: &Tok,
    dir: &Path,
) -> Result<()> {
    // Baichuan saved apart (q, k, v) with its head normalised: the 7B layout is a Llama;
    // the 13B one stays Baichuan (ALiBi) with its NormHead off (the head is already
    // normalised, and trained as it is), read back by `load`, not by transformers.
    let saved = cfg.is_baichuan().then(|| LlamaConfig {
        model_type: Some(if cfg.alibi() { "baichuan" } else { "llama" }.into()),
        position_embedding: cfg.alibi().then(|| "alibi".into()),
        norm_head: cfg.alibi().then_some(false),
        ..cfg.clone()
    });
    let cfg = saved.as_ref().unwrap_or(cfg);
    let mut cfg_json = serde_json::to_value(cfg).map_err(|e| LmError::Invalid(e.to_string()))?;
    cfg_json["architectures"] = serde_json::json!([if cfg.qkv_bias() {
        "Qwen2ForCausalLM"
    } else {
        "LlamaForCausalLM"
    }]);
    write_hf_dir(&cfg_json, tensors, tok, dir)
}

/// Save a T5 model as an HF directory that [`load`] (and transformers) read back:
/// `config.json` (`model_type` `t5`), `model.safetensors`, the tokenizer files.
pub fn save_t5_dir(
    cfg: &crate::t5::T5Config,
    tensors: &[(String, candle_core::Tensor)],
    tok: &Tok,
    dir: &Path,
) -> Result<()> {
    let mut cfg_json = serde_json::to_value(cfg).map_err(|e| LmError::Invalid(e.to_string()))?;
    cfg_json["model_type"] = serde_json::json!("t5");
    cfg_json["architectures"] = serde_json::json!(["T5ForConditionalGeneration"]);
    write_hf_dir(&cfg_json, tensors, tok, dir)
}

/// The files of a saved model directory; [`save_hf_dir`] replaces the directory whole.
pub const OUTPUTS: fairrec_core::fs::Outputs<'static> = fairrec_core::fs::Outputs {
    what: "a model",
    files: &[
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
    ],
    whole_dir: true,
};

fn write_hf_dir(
    cfg_json: &serde_json::Value,
    tensors: &[(String, candle_core::Tensor)],
    tok: &Tok,
    dir: &Path,
) -> Result<()> {
    let name = |id: Option<u32>| id.and_then(|i| tok.inner.id_to_token(i));
    let tok_cfg = serde_json::json!({
        "chat_template": tok.chat_template,
        "bos_token": name(tok.bos),
        "eos_token": name(tok.eos),
        "tokenizer_class": "PreTrainedTokenizerFast",
    });
    let json = |v: &serde_json::Value| {
        serde_json::to_vec_pretty(v).map_err(|e| LmError::Invalid(e.to_string()))
    };
    let tok_json = tok
        .inner
        .to_string(false)
        .map_err(|e| LmError::Tokenizer(e.to_string()))?;
    let files: Vec<(&str, Vec<u8>)> = vec![
        ("config.json", json(cfg_json)?),
        (
            "model.safetensors",
            crate::weights::safetensors_bytes(tensors)?,
        ),
        ("tokenizer.json", tok_json.into_bytes()),
        ("tokenizer_config.json", json(&tok_cfg)?),
    ];
    let refs: Vec<(&str, &[u8])> = files.iter().map(|(n, b)| (*n, b.as_slice())).collect();
    fairrec_core::fs::replace_dir(dir, &refs).map_err(|source| LmError::Io {
        path: dir.to_path_buf(),
        source,
    })
}
