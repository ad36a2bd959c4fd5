//! GGUF files (llama and qwen2 architectures): metadata -> [`LlamaConfig`], tensors
//! dequantized (to the dtype asked for, one tensor at a time) and renamed to HF checkpoint
//! keys, tokenizer rebuilt from the metadata.
//!
//! llama.cpp's converter permutes the rows of `q_proj` and `k_proj` for its interleaved
//! rotary embedding: HF rows `(head, half, i)` are stored as `(head, i, half)`. fairrec
//! undoes that permutation on load, so one model implementation (half-split rotary, the HF
//! layout) serves both sources.

use crate::config::LlamaConfig;
use crate::error::{LmError, Result};
use candle_core::quantized::gguf_file::{Content, Value};
use candle_core::{DType, Device, Tensor};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// A GGUF file read into memory.
pub struct GgufModel {
    pub config: LlamaConfig,
    /// HF-named tensors in the dtype asked for.
    pub tensors: HashMap<String, Tensor>,
    pub metadata: HashMap<String, Value>,
}

fn err(path: &Path, message: impl Into<String>) -> LmError {
    LmError::Model {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

/// An integer metadata value, whatever integer type the file used.
pub fn meta_usize(md: &HashMap<String, Value>, key: &str) -> Option<usize> {
    Some(match md.get(key)? {
        Value::U8(v) => *v as usize,
        Value::I8(v) => *v as usize,
        Value::U16(v) => *v as usize,
        Value::I16(v) => *v as usize,
        Value::U32(v) => *v as usize,
        Value::I32(v) => *v as usize,
        Value::U64(v) => *v as usize,
        Value::I64(v) => *v as usize,
        _ => return None,
    })
}

fn meta_f64(md: &HashMap<String, Value>, key: &str) -> Option<f64> {
    match md.get(key)? {
        Value::F32(v) => Some(f64::from(*v)),
        Value::F64(v) => Some(*v),
        _ => None,
    }
}

/// A string metadata value.
pub fn meta_str<'a>(md: &'a HashMap<String, Value>, key: &str) -> Option<&'a str> {
    match md.get(key)? {
        Value::String(s) => Some(s),
        _ => None,
    }
}

/// Map a GGUF tensor name to the HF checkpoint key.
pub fn hf_name(gguf: &str) -> Option<String> {
    let fixed = match gguf {
        "token_embd.weight" => Some("model.embed_tokens.weight"),
        "output_norm.weight" => Some("model.norm.weight"),
        "output.weight" => Some("lm_head.weight"),
        _ => None,
    };
    if let Some(f) = fixed {
        return Some(f.to_string());
    }
    let rest = gguf.strip_prefix("blk.")?;
    let (layer, name) = rest.split_once('.')?;
    let (module, kind) = name.rsplit_once('.')?;
    let hf = match module {
        "attn_norm" => "input_layernorm",
        "ffn_norm" => "post_attention_layernorm",
        "attn_q" => "self_attn.q_proj",
        "attn_k" => "self_attn.k_proj",
        "attn_v" => "self_attn.v_proj",
        "attn_output" => "self_attn.o_proj",
        "ffn_gate" => "mlp.gate_proj",
        "ffn_up" => "mlp.up_proj",
        "ffn_down" => "mlp.down_proj",
        _ => return None,
    };
    Some(format!("model.layers.{layer}.{hf}.{kind}"))
}

/// Undo llama.cpp's q/k row permutation for `n_heads` heads (works for weights `[out, in]`
/// and biases `[out]`).
pub fn unpermute(t: &Tensor, n_heads: usize) -> Result<Tensor> {
    let dims = t.dims().to_vec();
    let out = dims[0];
    let half = out / n_heads / 2;
    let rest: Vec<usize> = dims[1..].to_vec();
    let mut shape = vec![n_heads, half, 2];
    shape.extend(&rest);
    let x = t.reshape(shape)?.transpose(1, 2)?.contiguous()?;
    Ok(x.reshape(dims)?)
}

/// Read a GGUF file, each tensor dequantized to f32 and cast to `dtype` before the next is
/// read (host memory holds one f32 tensor at a time beside the model in `dtype`).
pub fn load(path: &Path, device: &Device, dtype: DType) -> Result<GgufModel> {
    let io = |source| LmError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut f = std::fs::File::open(path).map_err(io)?;
    let content =
        Content::read(&mut f).map_err(|e| err(path, format!("not a readable GGUF file: {e}")))?;
    let md = &content.metadata;
    let arch = meta_str(md, "general.architecture")
        .unwrap_or("llama")
        .to_string();
    if arch != "llama" && arch != "qwen2" {
        return Err(err(
            path,
            format!("architecture `{arch}` is not supported (llama, qwen2)"),
        ));
    }
    let need = |k: &str| {
        meta_usize(md, &format!("{arch}.{k}"))
            .ok_or_else(|| err(path, format!("metadata `{arch}.{k}` missing")))
    };
    let n_vocab = match md.get("tokenizer.ggml.tokens") {
        Some(Value::Array(a)) => a.len(),
        _ => need("vocab_size")?,
    };
    let heads = need("attention.head_count")?;
    let config = LlamaConfig {
        vocab_size: n_vocab,
        hidden_size: need("embedding_length")?,
        intermediate_size: need("feed_forward_length")?,
        num_hidden_layers: need("block_count")?,
        num_attention_heads: heads,
        num_key_value_heads: Some(
            meta_usize(md, &format!("{arch}.attention.head_count_kv")).unwrap_or(heads),
        ),
        head_dim: None,
        rms_norm_eps: meta_f64(md, &format!("{arch}.attention.layer_norm_rms_epsilon"))
            .unwrap_or(1e-6),
        rope_theta: meta_f64(md, &format!("{arch}.rope.freq_base")).unwrap_or(10_000.0),
        tie_word_embeddings: !content.tensor_infos.contains_key("output.weight"),
        attention_bias: content.tensor_infos.contains_key("blk.0.attn_q.bias"),
        model_type: Some(arch.clone()),
        max_position_embeddings: meta_usize(md, &format!("{arch}.context_length")).unwrap_or(4096),
        position_embedding: None,
        norm_head: None,
    };
    config.validate().map_err(|m| err(path, m))?;
    let mut tensors = HashMap::new();
    let mut names: Vec<&String> = content.tensor_infos.keys().collect();
    names.sort();
    for name in names {
        let Some(hf) = hf_name(name) else {
            tracing::debug!("ignoring GGUF tensor {name}");
            continue;
        };
        let q = content
            .tensor(&mut f, name, device)
            .map_err(|e| err(path, format!("tensor `{name}`: {e}")))?;
        let mut t = q.dequantize(device)?;
        if arch == "llama" {
            if hf.contains("q_proj") {
                t = unpermute(&t, config.num_attention_heads)?;
            } else if hf.contains("k_proj") {
                t = unpermute(&t, config.kv_heads())?;
            }
        }
        tensors.insert(hf, t.to_dtype(dtype)?);
    }
    Ok(GgufModel {
        config,
        tensors,
        metadata: content.metadata.clone(),
    })
}

/// Where a model comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    Gguf(PathBuf),
    HfDir(PathBuf),
}
