//! fairrec's trainer on the LM engine: AdamW with warmup and linear or cosine decay,
//! gradient accumulation and clipping, seeded determinism, per-epoch validation with early
//! stopping, crash-safe checkpoints with exact resume, a NaN/inf guard, and the engine's
//! methods (LoRA, full fine-tuning, prompt tuning) and paper A's fairness methods (CF, Diff,
//! CF-Diff, LoRA-MoE, CL-MoE's SuperLoss curriculum, Ins-Tuning) and paper B's (MoS,
//! the IFairLRS, FaiRLLM-objective and UP5 baselines).

pub mod checkpoint;
pub mod config;
pub mod curriculum;
pub mod error;
pub mod fair;
pub mod fairllm;
pub mod ifairlrs;
pub mod method;
pub mod mos;
pub mod objective;
pub mod optim;
pub mod schedule;
pub mod stereo;
pub mod trainer;
pub mod up5;

pub use config::{Method, TrainConfig};
pub use error::{Result, TrainError};
