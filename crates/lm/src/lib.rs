//! fairrec's LM engine on candle, in the order a model is used:
//!
//! 1. Models in candle's style: [`layers`] (shared), [`llama`] (Llama, Qwen2, SmolLM),
//!    [`t5`] (T5 / Flan-T5), one handle on either ([`backbone`]), [`ops`] (fused CPU
//!    kernels with hand-written backward), loading from HF directories or GGUF files and
//!    saving whole models ([`load`], [`save`], [`gguf`], [`tokenizer`],
//!    [`builtin`], [`random`]); what a step costs and the CPU can do ([`flops`]).
//! 2. What training attaches: LoRA and LoRA-MoE ([`adapter`]), soft prompts and p-tuning
//!    ([`prompt`], on any [`host::PromptHost`]), MoS's mixture of prompts ([`mos`]), the
//!    umbrella over them ([`tuning`]) and PEFT's file format ([`peft`], [`weights`]).
//! 3. Scoring: P(Yes) of prompts ([`score`]), many at once ([`batch`]), hidden states for
//!    paper A's `L_diff` ([`pool`]), and `no_grad` ([`grad`]); generation through a
//!    key/value cache ([`kv`], `fairrec serve`).

pub mod adapter;
pub mod alibi;
pub mod backbone;
pub mod batch;
pub mod builtin;
pub mod chat;
pub mod config;
pub mod device;
pub mod error;
pub mod flops;
pub mod generate;
pub mod gguf;
pub mod grad;
pub mod host;
pub mod hub;
pub mod kv;
pub mod layers;
pub mod llama;
pub mod load;
pub mod mos;
pub mod ops;
pub mod peft;
pub mod pool;
pub mod prompt;
pub mod random;
pub mod save;
pub mod score;
pub mod t5;
pub mod tokenizer;
pub mod tuning;
pub mod weights;

pub use backbone::{Backbone, Model};
pub use config::LlamaConfig;
pub use error::{LmError, Result};
pub use host::PromptHost;
pub use llama::Llama;
