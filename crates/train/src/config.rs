//! The resolved training configuration of a run (what `run.toml` and the CLI flags fill).

use crate::optim::AdamWConfig;
use crate::schedule::Decay;
use fairrec_lm::adapter::AdapterConfig;
use fairrec_lm::prompt::PromptInit;

/// What a run makes trainable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Method {
    /// LoRA adapters on the target modules.
    Lora,
    /// Every weight.
    Full,
    /// A soft prompt of virtual tokens.
    PromptTuning,
}

impl Method {
    pub fn name(self) -> &'static str {
        match self {
            Method::Lora => "lora",
            Method::Full => "full",
            Method::PromptTuning => "prompt-tuning",
        }
    }
}

impl std::str::FromStr for Method {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "lora" => Ok(Method::Lora),
            "full" => Ok(Method::Full),
            "prompt-tuning" => Ok(Method::PromptTuning),
            o => Err(format!(
                "method `{o}`: expected lora, full or prompt-tuning"
            )),
        }
    }
}

/// Everything that decides a run's result.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TrainConfig {
    pub method: Method,
    /// Peak learning rate.
    pub lr: f64,
    pub schedule: Decay,
    /// Fraction of the optimizer steps spent warming up.
    pub warmup_ratio: f64,
    pub epochs: usize,
    /// Stop after this many optimizer steps (counts toward the schedule's length).
    pub max_steps: Option<u64>,
    /// Examples per forward pass.
    pub batch_size: usize,
    /// Forward passes per optimizer step.
    pub grad_accum: usize,
    /// Clip the global gradient norm to this (0: no clipping).
    pub max_grad_norm: f64,
    pub adamw: AdamWConfig,
    pub seed: u64,
    /// Stop when the valid AUC has not improved for this many epochs.
    pub early_stopping: Option<usize>,
    /// Write a checkpoint every this many optimizer steps (and at every epoch end).
    pub checkpoint_every: u64,
    /// Score the valid split after every epoch.
    pub eval: bool,
    /// LoRA (method `lora`).
    pub lora: AdapterConfig,
    /// Virtual tokens (method `prompt-tuning`).
    pub virtual_tokens: usize,
    pub prompt_init: PromptInit,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            method: Method::Lora,
            lr: 3e-4,
            schedule: Decay::Linear,
            warmup_ratio: 0.05,
            epochs: 1,
            max_steps: None,
            batch_size: 4,
            grad_accum: 1,
            max_grad_norm: 1.0,
            adamw: AdamWConfig::default(),
            seed: 0,
            early_stopping: None,
            checkpoint_every: 50,
            eval: true,
            lora: AdapterConfig {
                dropout: 0.05,
                ..AdapterConfig::lora(8, 16.0, &["q_proj", "v_proj"])
            },
            virtual_tokens: 20,
            prompt_init: PromptInit::Text(
                "Predict whether the user will like the item. Answer Yes or No.".into(),
            ),
        }
    }
}

impl TrainConfig {
    /// Reject values that cannot train.
    pub fn validate(&self) -> crate::Result<()> {
        let bad = |m: &str| Err(crate::TrainError::Config(m.into()));
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return bad("lr must be a positive number");
        }
        if self.batch_size == 0 || self.grad_accum == 0 || self.epochs == 0 {
            return bad("batch_size, grad_accum and epochs must be at least 1");
        }
        if !(0.0..1.0).contains(&self.warmup_ratio) {
            return bad("warmup_ratio must be in [0, 1)");
        }
        if self.checkpoint_every == 0 {
            return bad("checkpoint_every must be at least 1");
        }
        if !(0.0..1.0).contains(&self.lora.dropout) {
            return bad("LoRA dropout must be in [0, 1)");
        }
        Ok(())
    }

    /// A fingerprint of everything that decides the result (64-bit FNV-1a of the JSON
    /// form, in hex); a checkpoint only resumes a run of the same fingerprint.
    pub fn fingerprint(&self) -> String {
        let json = serde_json::to_string(self).unwrap_or_default();
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in json.bytes() {
            h ^= b as u64;
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        format!("{h:016x}")
    }
}
