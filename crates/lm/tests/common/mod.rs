//! Helpers shared by the engine's tests: a tiny seeded model, a fixed batch and its logits.
#![allow(dead_code)]

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use fairrec_lm::random::random_weights;
use fairrec_lm::tokenizer::Tok;
use fairrec_lm::{Llama, LlamaConfig};
use std::collections::HashMap;

/// A 2-layer, 32-wide Llama over 97 tokens with seeded weights (std 0.2) in `dtype`.
pub fn tiny(dtype: DType) -> Llama {
    let mut cfg = LlamaConfig::tiny(97);
    cfg.hidden_size = 32;
    cfg.intermediate_size = 48;
    let w = random_weights(&cfg, 7, 0.2, &Device::Cpu).unwrap();
    Llama::new(&cfg, VarBuilder::from_tensors(w, dtype, &Device::Cpu)).unwrap()
}

/// Two rows of five token ids.
pub fn ids() -> Tensor {
    Tensor::new(
        &[[3u32, 14, 15, 92, 65], [35, 89, 79, 32, 38]],
        &Device::Cpu,
    )
    .unwrap()
}

/// Full-vocabulary logits at the last position of [`ids`].
pub fn logits(m: &Llama) -> Tensor {
    let f = m.forward(&ids(), None).unwrap();
    m.logits_at(&f.last, &[4, 4]).unwrap()
}

/// `max |t|`.
pub fn max_abs(t: &Tensor) -> f32 {
    let m = t.abs().and_then(|a| a.max_all()).unwrap();
    m.to_scalar::<f32>().unwrap()
}

pub const CHATML: &str = "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

/// A tiny random Llama over a bytes-only tokenizer with a ChatML template: its
/// configuration, tokenizer and weights.
pub fn tiny_parts() -> (LlamaConfig, Tok, HashMap<String, Tensor>) {
    let tok = Tok::bytes_only(
        &["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        Some(CHATML.into()),
    )
    .unwrap();
    let cfg = LlamaConfig::tiny(tok.vocab_size());
    let w = random_weights(&cfg, 1, 0.1, &Device::Cpu).unwrap();
    (cfg, tok, w)
}

/// Save a model as an HF directory (config, tokenizer, template, `shards` safetensors).
pub fn save_hf(
    dir: &std::path::Path,
    cfg: &LlamaConfig,
    tok: &Tok,
    w: &HashMap<String, Tensor>,
    shards: usize,
) {
    std::fs::write(dir.join("config.json"), serde_json::to_string(cfg).unwrap()).unwrap();
    tok.inner.save(dir.join("tokenizer.json"), false).unwrap();
    std::fs::write(
        dir.join("tokenizer_config.json"),
        serde_json::json!({"chat_template": CHATML, "eos_token": "<|endoftext|>"}).to_string(),
    )
    .unwrap();
    let mut names: Vec<&String> = w.keys().collect();
    names.sort();
    if shards == 1 {
        candle_core::safetensors::save(w, dir.join("model.safetensors")).unwrap();
        return;
    }
    let mut map = serde_json::Map::new();
    for (k, chunk) in names.chunks(names.len().div_ceil(shards)).enumerate() {
        let file = format!("model-{:05}-of-{shards:05}.safetensors", k + 1);
        let part: HashMap<String, Tensor> = chunk
            .iter()
            .map(|n| ((*n).clone(), w[*n].clone()))
            .collect();
        candle_core::safetensors::save(&part, dir.join(&file)).unwrap();
        for n in chunk {
            map.insert((*n).clone(), serde_json::json!(file));
        }
    }
    std::fs::write(
        dir.join("model.safetensors.index.json"),
        serde_json::json!({"metadata": {}, "weight_map": map}).to_string(),
    )
    .unwrap();
}

/// Every weight of `m` by checkpoint key, as the model holds it (`make_trainable` copies).
pub fn weights_of(m: &mut dyn fairrec_lm::Backbone) -> std::collections::BTreeMap<String, Tensor> {
    m.make_trainable()
        .unwrap()
        .into_iter()
        .map(|(k, v)| (k, v.as_tensor().clone()))
        .collect()
}

/// `direct` (a model loaded straight into `dtype`) holds exactly the weights of `f32` (the
/// same file loaded in f32) cast to `dtype`, key for key.
pub fn assert_cast_of(
    direct: &std::collections::BTreeMap<String, Tensor>,
    f32: &std::collections::BTreeMap<String, Tensor>,
    dtype: DType,
) {
    assert_eq!(
        direct.keys().collect::<Vec<_>>(),
        f32.keys().collect::<Vec<_>>()
    );
    for (k, t) in direct {
        assert_eq!(t.dtype(), dtype, "{k}");
        let want = f32[k]
            .to_dtype(dtype)
            .unwrap()
            .to_dtype(DType::F32)
            .unwrap();
        let got = t.to_dtype(DType::F32).unwrap();
        assert_eq!(
            got.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            want.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            "{k}: loaded in {dtype:?} is not the f32 load cast"
        );
    }
}
