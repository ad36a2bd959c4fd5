//! Seeded random weights for a configuration, under the HF checkpoint keys (tiny models for
//! tests and the quickstart; also a way to time big shapes without their weights).

use crate::config::LlamaConfig;
use crate::error::Result;
use candle_core::{Device, Tensor};
use fairrec_core::Rng;
use std::collections::HashMap;

/// Every tensor of a model of `cfg`: projections `N(0, std^2)`, norms 1.
pub fn random_weights(
    cfg: &LlamaConfig,
    seed: u64,
    std: f64,
    device: &Device,
) -> Result<HashMap<String, Tensor>> {
    let mut rng = Rng::derive(seed, "random-weights");
    let mut out = HashMap::new();
    let normal = |shape: &[usize], rng: &mut Rng| -> Result<Tensor> {
        let n: usize = shape.iter().product();
        let v: Vec<f32> = (0..n).map(|_| (rng.normal() * std) as f32).collect();
        Ok(Tensor::from_vec(v, shape, device)?)
    };
    let (h, i, hd) = (cfg.hidden_size, cfg.intermediate_size, cfg.head_dim());
    let (nh, nkv) = (cfg.num_attention_heads, cfg.kv_heads());
    out.insert(
        "model.embed_tokens.weight".into(),
        normal(&[cfg.vocab_size, h], &mut rng)?,
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
            out.insert(format!("{p}.{name}.weight"), normal(&shape, &mut rng)?);
            if cfg.qkv_bias()
                && ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"].contains(&name)
            {
                out.insert(format!("{p}.{name}.bias"), normal(&[shape[0]], &mut rng)?);
            }
        }
        for norm in ["input_layernorm", "post_attention_layernorm"] {
            out.insert(
                format!("{p}.{norm}.weight"),
                Tensor::ones(h, candle_core::DType::F32, device)?,
            );
        }
    }
    out.insert(
        "model.norm.weight".into(),
        Tensor::ones(h, candle_core::DType::F32, device)?,
    );
    if !cfg.tie_word_embeddings {
        out.insert(
            "lm_head.weight".into(),
            normal(&[cfg.vocab_size, h], &mut rng)?,
        );
    }
    Ok(out)
}

/// A model of `cfg` with [`random_weights`].
pub fn random_model(
    cfg: &LlamaConfig,
    seed: u64,
    std: f64,
    device: &Device,
) -> Result<crate::model::Llama> {
    let w = random_weights(cfg, seed, std, device)?;
    crate::model::Llama::new(
        cfg,
        candle_nn::VarBuilder::from_tensors(w, candle_core::DType::F32, device),
    )
}
