//! Seeded random weights for a configuration, under the HF checkpoint keys (tiny models for
//! tests and the quickstart; also a way to time big shapes without their weights).

use crate::config::LlamaConfig;
use crate::error::Result;
use candle_core::{DType, Device, Tensor};
use fairrec_core::Rng;
use std::collections::HashMap;

/// Every tensor of a model of `cfg`: projections `N(0, std^2)` from our seeded stream
/// (the same on every machine), norms 1, f32.
pub fn random_weights(
    cfg: &LlamaConfig,
    seed: u64,
    std: f64,
    device: &Device,
) -> Result<HashMap<String, Tensor>> {
    let mut rng = Rng::derive(seed, "random-weights");
    weights_with(cfg, DType::F32, device, |shape| {
        let n: usize = shape.iter().product();
        let v: Vec<f32> = (0..n).map(|_| (rng.normal() * std) as f32).collect();
        Ok(Tensor::from_vec(v, shape, device)?)
    })
}

/// As [`random_weights`] in `dtype`, drawn by the device's own generator (fast on a GPU,
/// not reproducible across devices): for timing big shapes.
pub fn device_random_weights(
    cfg: &LlamaConfig,
    std: f64,
    device: &Device,
    dtype: DType,
) -> Result<HashMap<String, Tensor>> {
    weights_with(cfg, dtype, device, |shape| {
        Ok(Tensor::randn(0f32, std as f32, shape, device)?.to_dtype(dtype)?)
    })
}

/// Every checkpoint key of `cfg` with `normal(shape)` for projections and ones for norms.
fn weights_with(
    cfg: &LlamaConfig,
    dtype: DType,
    device: &Device,
    mut normal: impl FnMut(&[usize]) -> Result<Tensor>,
) -> Result<HashMap<String, Tensor>> {
    let mut out = HashMap::new();
    let (h, i, hd) = (cfg.hidden_size, cfg.intermediate_size, cfg.head_dim());
    let (nh, nkv) = (cfg.num_attention_heads, cfg.kv_heads());
    out.insert(
        "model.embed_tokens.weight".into(),
        normal(&[cfg.vocab_size, h])?,
    );
    for l in 0..cfg.num_hidden_layers {
        let p = format!("model.layers.{l}");
        for (name, shape) in [
            ("self_attn.q_proj", [nh * hd, h]),
            ("self_attn.k_proj", [nkv * hd, h]),
            ("self_attn.v_proj", [nkv * hd, h]),
            ("self_attn.o_proj", [h, nh * hd]),
            ("mlp.gate_proj", [i, h]),
            ("mlp.up_proj", [i, h]),
            ("mlp.down_proj", [h, i]),
        ] {
            out.insert(format!("{p}.{name}.weight"), normal(&shape)?);
            if cfg.qkv_bias()
                && ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"].contains(&name)
            {
                out.insert(format!("{p}.{name}.bias"), normal(&[shape[0]])?);
            }
        }
        for norm in ["input_layernorm", "post_attention_layernorm"] {
            out.insert(
                format!("{p}.{norm}.weight"),
                Tensor::ones(h, dtype, device)?,
            );
        }
    }
    out.insert("model.norm.weight".into(), Tensor::ones(h, dtype, device)?);
    if !cfg.tie_word_embeddings {
        out.insert("lm_head.weight".into(), normal(&[cfg.vocab_size, h])?);
    }
    Ok(out)
}

/// A model of `cfg` with [`random_weights`].
pub fn random_model(
    cfg: &LlamaConfig,
    seed: u64,
    std: f64,
    device: &Device,
) -> Result<crate::llama::Llama> {
    let w = random_weights(cfg, seed, std, device)?;
    crate::llama::Llama::new(
        cfg,
        candle_nn::VarBuilder::from_tensors(w, DType::F32, device),
    )
}

/// A model of `cfg` with [`device_random_weights`] in `dtype` on `device`.
pub fn device_random_model(
    cfg: &LlamaConfig,
    std: f64,
    device: &Device,
    dtype: DType,
) -> Result<crate::llama::Llama> {
    let w = device_random_weights(cfg, std, device, dtype)?;
    crate::llama::Llama::new(cfg, candle_nn::VarBuilder::from_tensors(w, dtype, device))
}
