//! fairrec's data side: raw loaders for ML-1M, ML-100K, Sushi3 and Book-Crossing, the
//! protocols of paper A (CL-MoE) and paper B (MoS), the prompt templates and variants, the
//! counterfactual augmentation, and the synthetic stereotype world. No tensor code.
//!
//! Typical use: [`pipeline::prepare_dir`] (what `fairrec data prepare` runs), then
//! [`pipeline::read_split`] and [`prompt::render`] for each sample and
//! [`fairrec_core::Variant`].

pub mod attributes;
pub mod augment;
pub mod catalogue;
pub mod error;
pub mod fairllm;
pub mod loaders;
pub mod pipeline;
pub mod prompt;
pub mod protocol;
pub mod raw;
pub mod sample;
pub mod synth;
pub mod text;

pub use error::{DataError, Result};
pub use fairrec_core::Variant;
