//! Helpers shared by the engine's tests: a tiny seeded model, a fixed batch and its logits.
#![allow(dead_code)]

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use fairrec_lm::random::random_weights;
use fairrec_lm::{Llama, LlamaConfig};

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
