//! fairrec's LM engine on candle: Llama-family decoders (Llama, Qwen2, SmolLM/SmolLM2)
//! loaded from HF directories or GGUF files, tokenizers, and Yes/No scoring.

pub mod adapter;
pub mod builtin;
pub mod config;
pub mod error;
pub mod gguf;
pub mod grad;
pub mod host;
pub mod load;
pub mod model;
pub mod mos;
pub mod ops;
pub mod peft;
pub mod pool;
pub mod prompt;
pub mod random;
pub mod score;
pub mod t5;
pub mod tokenizer;
pub mod tuning;

pub use config::LlamaConfig;
pub use error::{LmError, Result};
pub use host::PromptHost;
pub use model::Llama;
