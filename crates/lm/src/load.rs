//! Load a model and its tokenizer from a GGUF file or an HF directory.

pub use crate::backbone::Model;
use crate::config::LlamaConfig;
use crate::error::{LmError, Result};
use crate::llama::Llama;
use crate::tokenizer::Tok;
use candle_core::{DType, Device};
use candle_nn::VarBuilder;
use std::path::{Path, PathBuf};

/// A model ready to score, with where it came from.
pub struct Loaded<M = Llama> {
    pub model: M,
    pub tokenizer: Tok,
    pub path: PathBuf,
}

impl Loaded<Model> {
    /// The decoder, or an error saying that `what` needs one (T5 models score, through
    /// `audit` and `score`, and train prompts and LoRA).
    pub fn into_decoder(self, what: &str) -> Result<Loaded<Llama>> {
        match self.model {
            Model::Decoder(model) => Ok(Loaded {
                model,
                tokenizer: self.tokenizer,
                path: self.path,
            }),
            Model::T5(_) => Err(LmError::Model {
                path: self.path,
                message: format!(
                    "a T5 model: {what} needs a decoder-only model (Llama, Qwen2, SmolLM); T5 models score (audit, score) and train prompts (prompt tuning, p-tuning, MoS) and LoRA only"
                ),
            }),
        }
    }
}

/// Load a GGUF file (`*.gguf`) or an HF directory (`config.json`, `*.safetensors` with or
/// without `model.safetensors.index.json`, `tokenizer.json`, `tokenizer_config.json`): a
/// Llama-family decoder, or T5 when the directory's config says so ([`is_t5_dir`]), its
/// weights in `dtype` on `device`. Each tensor goes straight to `dtype` as it is read (no
/// f32 copy of the whole model is ever made): safetensors are memory-mapped and converted
/// tensor by tensor on the device, GGUF tensors dequantised one at a time.
pub fn load(path: &Path, device: &Device, dtype: DType) -> Result<Loaded<Model>> {
    let (model, tokenizer) = if path.is_dir() && is_t5_dir(path) {
        (
            Model::T5(load_t5(path, device, dtype)?),
            Tok::from_hf_dir(path)?,
        )
    } else {
        let l = if path.is_dir() {
            load_hf_dir(path, device, dtype)?
        } else {
            load_gguf(path, device, dtype)?
        };
        (Model::Decoder(l.model), l.tokenizer)
    };
    Ok(Loaded {
        model,
        tokenizer,
        path: path.to_path_buf(),
    })
}

/// Load a GGUF file, dequantized to `dtype`.
pub fn load_gguf(path: &Path, device: &Device, dtype: DType) -> Result<Loaded> {
    let g = crate::gguf::load(path, device, dtype)?;
    let tokenizer = Tok::from_gguf(&g.metadata)?;
    let vb = VarBuilder::from_tensors(g.tensors, dtype, device);
    let model = Llama::new(&g.config, vb).map_err(|e| LmError::Model {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    Ok(Loaded {
        model,
        tokenizer,
        path: path.to_path_buf(),
    })
}

fn shards(dir: &Path) -> Result<Vec<PathBuf>> {
    let index = dir.join("model.safetensors.index.json");
    if index.exists() {
        let text = std::fs::read_to_string(&index).map_err(|source| LmError::Io {
            path: index.clone(),
            source,
        })?;
        let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| LmError::Model {
            path: index.clone(),
            message: e.to_string(),
        })?;
        let map = v
            .get("weight_map")
            .and_then(|m| m.as_object())
            .ok_or_else(|| LmError::Model {
                path: index.clone(),
                message: "no `weight_map`".into(),
            })?;
        let mut files: Vec<String> = map
            .values()
            .filter_map(|f| f.as_str().map(str::to_string))
            .collect();
        files.sort();
        files.dedup();
        let paths: Vec<PathBuf> = files.iter().map(|f| dir.join(f)).collect();
        if let Some(missing) = paths.iter().find(|p| !p.exists()) {
            return Err(LmError::Model {
                path: missing.clone(),
                message: "shard named in model.safetensors.index.json is missing".into(),
            });
        }
        return Ok(paths);
    }
    let single = dir.join("model.safetensors");
    if single.exists() {
        return Ok(vec![single]);
    }
    Err(LmError::Model {
        path: dir.to_path_buf(),
        message: "no model.safetensors or model.safetensors.index.json".into(),
    })
}

/// Load an HF directory, its weights in `dtype`.
pub fn load_hf_dir(dir: &Path, device: &Device, dtype: DType) -> Result<Loaded> {
    let cfg_path = dir.join("config.json");
    let text = std::fs::read_to_string(&cfg_path).map_err(|source| LmError::Io {
        path: cfg_path.clone(),
        source,
    })?;
    let cfg = LlamaConfig::from_hf_json(&text).map_err(|message| LmError::Model {
        path: cfg_path.clone(),
        message,
    })?;
    let files = shards(dir)?;
    // SAFETY: the files are memory-mapped read-only; fairrec never writes to them while loaded.
    let vb = unsafe { VarBuilder::from_mmaped_safetensors(&files, dtype, device)? };
    let model = Llama::new(&cfg, vb).map_err(|e| LmError::Model {
        path: dir.to_path_buf(),
        message: e.to_string(),
    })?;
    Ok(Loaded {
        model,
        tokenizer: Tok::from_hf_dir(dir)?,
        path: dir.to_path_buf(),
    })
}

/// Whether the HF directory `dir` holds a T5-family model (`model_type` `t5` or a
/// `T5ForConditionalGeneration` architecture in its `config.json`).
pub fn is_t5_dir(dir: &Path) -> bool {
    let Ok(text) = std::fs::read_to_string(dir.join("config.json")) else {
        return false;
    };
    let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) else {
        return false;
    };
    v.get("model_type").and_then(|m| m.as_str()) == Some("t5")
        || v.get("architectures")
            .and_then(|a| a.as_array())
            .is_some_and(|a| {
                a.iter()
                    .any(|x| x.as_str() == Some("T5ForConditionalGeneration"))
            })
}

/// Load the weights of an HF T5 / Flan-T5 directory (`config.json`, safetensors) in `dtype`.
pub fn load_t5(dir: &Path, device: &Device, dtype: DType) -> Result<crate::t5::T5> {
    let cfg_path = dir.join("config.json");
    let text = std::fs::read_to_string(&cfg_path).map_err(|source| LmError::Io {
        path: cfg_path.clone(),
        source,
    })?;
    let cfg = crate::t5::T5Config::from_hf_json(&text).map_err(|message| LmError::Model {
        path: cfg_path.clone(),
        message,
    })?;
    let files = shards(dir)?;
    // SAFETY: as in `load_hf_dir`.
    let vb = unsafe { VarBuilder::from_mmaped_safetensors(&files, dtype, device)? };
    crate::t5::T5::new(&cfg, vb).map_err(|e| LmError::Model {
        path: dir.to_path_buf(),
        message: e.to_string(),
    })
}

/// The tokenizer (and chat template) alone of an HF directory (`tokenizer.json`,
/// `tokenizer_config.json`) or a GGUF file (its metadata; no tensor is read).
pub fn load_tokenizer(path: &Path) -> Result<Tok> {
    if path.is_dir() {
        return Tok::from_hf_dir(path);
    }
    let mut f = std::fs::File::open(path).map_err(|source| LmError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let content =
        candle_core::quantized::gguf_file::Content::read(&mut f).map_err(|e| LmError::Model {
            path: path.to_path_buf(),
            message: format!("not a tokenizer directory nor a readable GGUF file: {e}"),
        })?;
    Tok::from_gguf(&content.metadata)
}
