//! fairrec's trainer, and every training method of both papers, from prepared samples to a
//! trained adapter. In pipeline order:
//!
//! 1. [`engine`]: the loop (AdamW with warmup and linear or cosine decay, gradient
//!    accumulation and clipping, seeded determinism, per-epoch validation with early
//!    stopping, crash-safe checkpoints with exact resume, a NaN/inf guard), the answer loss.
//! 2. [`config`]: [`TrainConfig`] (everything that decides a result) and [`RunSpec`] (what
//!    a run directory needs to resume).
//! 3. [`encode`]: samples -> prompts -> token ids.
//! 4. [`methods`]: one module per method or family (the paradigms; paper A's CF, Diff,
//!    CF-Diff, LoRA-MoE, CL-MoE, Ins-Tuning; paper B's MoS and the IFairLRS, FaiRLLM and
//!    UP5 baselines), each declaring what it trains, on which copies, with which loss;
//!    [`method`] lists their names.
//! 5. [`fit`] and [`run`]: the run directory's protocol and the entry point a program calls.

pub mod audit;
pub mod config;
pub mod cot;
pub mod encode;
pub mod engine;
pub mod error;
pub mod fit;
pub mod method;
pub mod methods;
pub mod run;
pub mod tensorboard;

pub use config::{RunSpec, TrainConfig};
pub use error::{Result, TrainError};
pub use method::Method;
