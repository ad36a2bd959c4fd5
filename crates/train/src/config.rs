//! The resolved training configuration of a run (what `run.toml` and the CLI flags fill):
//! [`TrainConfig`] composes the engine's settings with each method's own (defined beside
//! its method in [`crate::methods`]), and [`RunSpec`] adds what a run directory needs to
//! resume (template, scenario, augmentation).

use crate::engine::optim::{AdafactorConfig, AdamWConfig, Rule};
use crate::engine::schedule::Decay;
use crate::method::Method;
use crate::methods::mos::loss::MosSettings;
use crate::methods::paper_a::loss::ObjectiveConfig;
use crate::methods::stereo::StereotypeSettings;
use fairrec_data::augment::AugmentConfig;
use fairrec_data::prompt::Template;
use fairrec_lm::adapter::AdapterConfig;
use fairrec_lm::prompt::PromptInit;
use fairrec_lm::score::PromptFormat;

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
    /// Train with Adafactor (paper B's optimiser) instead of AdamW; `adamw` is then unused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adafactor: Option<AdafactorConfig>,
    pub seed: u64,
    /// Stop when the valid AUC has not improved for this many epochs.
    pub early_stopping: Option<usize>,
    /// Write a checkpoint every this many optimizer steps (and at every epoch end).
    pub checkpoint_every: u64,
    /// Score the valid split after every epoch.
    pub eval: bool,
    /// LoRA (method `lora`).
    pub lora: AdapterConfig,
    /// Virtual tokens (methods `prompt-tuning`, `p-tuning`, and each MoS expert).
    pub virtual_tokens: usize,
    pub prompt_init: PromptInit,
    /// Paper A's losses.
    #[serde(default)]
    pub objective: ObjectiveConfig,
    /// Paper B's MoS (method `mos`).
    #[serde(default)]
    pub mos: MosSettings,
    /// Paper B's stereotype groups (paper B's methods, and the paradigms trained with
    /// `fairness_weight`).
    #[serde(default)]
    pub stereotype: StereotypeSettings,
    /// `lambda` of the FaiRLLM objective (method `fairllm`; ours: 1).
    #[serde(default = "one")]
    pub divergence_weight: f64,
    /// Hidden width of p-tuning's prompt encoder (0: the model's width, PEFT's default).
    #[serde(default)]
    pub encoder_hidden_size: usize,
    /// Prompt tuning and p-tuning: PEFT's `num_transformer_submodules`, the blocks of
    /// `virtual_tokens` rows in the prompt table (None: PEFT's default for the model, 2 on
    /// T5 and 1 on a decoder-only model; [`fairrec_lm::prompt::PromptShape`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_submodules: Option<usize>,
    /// Prompt tuning and p-tuning on T5: the second block goes in front of the decoder
    /// input (PEFT before 0.4) instead of nowhere (PEFT since 0.4).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub decoder_prompt: bool,
    /// `lambda` of UP5's gradient reversal (method `up5`; ours: 1).
    #[serde(default = "one")]
    pub adversary_weight: f64,
    /// The prompts UP5 trains on: stating the attribute (paper B) or neutral (UP5's own).
    #[serde(default, skip_serializing_if = "Up5Input::is_stated")]
    pub up5_input: Up5Input,
    /// `lambda_f` of paper B's stereotype-aware fairness loss (Eq. 13) on the conventional
    /// paradigms (`lora`, `full`, `prompt-tuning`, `p-tuning`): above 0 they train on
    /// NTP + this loss, as Table V trains them "using the same learning objectives" as
    /// MoS ([`crate::stereo::StereoLoss`]). 0: NTP only. MoS keeps its own in `mos.weights`.
    #[serde(default)]
    pub fairness_weight: f64,
}

fn one() -> f64 {
    1.0
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
            adafactor: None,
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
            objective: ObjectiveConfig::default(),
            mos: MosSettings::default(),
            stereotype: StereotypeSettings::default(),
            divergence_weight: 1.0,
            encoder_hidden_size: 0,
            prompt_submodules: None,
            decoder_prompt: false,
            adversary_weight: 1.0,
            up5_input: Up5Input::Stated,
            fairness_weight: 0.0,
        }
    }
}

impl TrainConfig {
    /// Reject values that cannot train, whatever the method (the method-aware checks are
    /// [`crate::methods::validate`]).
    pub fn check_values(&self) -> crate::Result<()> {
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
        let a = &self.adamw;
        if !((0.0..1.0).contains(&a.beta1) && (0.0..1.0).contains(&a.beta2)) {
            return bad("AdamW's beta1 and beta2 must be in [0, 1)");
        }
        if !(a.eps.is_finite()
            && a.eps > 0.0
            && a.weight_decay.is_finite()
            && a.weight_decay >= 0.0)
        {
            return bad("AdamW's eps must be positive and its weight decay >= 0 (both finite)");
        }
        if let Some(f) = &self.adafactor {
            let ok = [f.eps1, f.eps2, f.clip_threshold]
                .iter()
                .all(|x| x.is_finite() && *x > 0.0)
                && f.decay_rate.is_finite()
                && f.decay_rate < 0.0
                && f.beta1.is_none_or(|b| (0.0..1.0).contains(&b))
                && f.weight_decay.is_finite()
                && f.weight_decay >= 0.0;
            if !ok {
                return bad("Adafactor needs eps1, eps2 and clip_threshold > 0, decay_rate < 0, beta1 in [0, 1) and weight decay >= 0 (all finite)");
            }
        }
        if !(0.0..1.0).contains(&self.lora.dropout) {
            return bad("LoRA dropout must be in [0, 1)");
        }
        let o = &self.objective;
        if !(o.diff_weight >= 0.0 && o.balance_weight >= 0.0) {
            return bad("loss weights must be >= 0");
        }
        if let Some(c) = &o.curriculum {
            if !(c.lambda > 0.0 && c.delta > 0.0 && c.delta < 1.0 && c.classes > 1.0) {
                return bad("curriculum: lambda > 0, delta in (0, 1) and classes > 1 are required");
            }
        }
        let w = &self.mos.weights;
        if !(w.fairness >= 0.0
            && w.diversity >= 0.0
            && w.balance >= 0.0
            && self.divergence_weight >= 0.0
            && self.adversary_weight >= 0.0
            && self.fairness_weight >= 0.0)
        {
            return bad("loss weights must be >= 0");
        }
        if self
            .lora
            .top_k
            .is_some_and(|k| k == 0 || k > self.lora.experts)
        {
            return bad("top-k must be between 1 and the number of experts");
        }
        Ok(())
    }

    /// A fingerprint of everything that decides the result (64-bit FNV-1a of the JSON
    /// form, in hex); a checkpoint only resumes a run of the same fingerprint.
    /// The optimizer's update rule: Adafactor where configured, else AdamW.
    pub fn rule(&self) -> Rule {
        match self.adafactor {
            Some(f) => Rule::Adafactor(f),
            None => Rule::AdamW(self.adamw),
        }
    }

    pub fn fingerprint(&self) -> String {
        let json = serde_json::to_string(self).unwrap_or_default();
        let h = fairrec_core::fnv1a64(json.as_bytes());
        format!("{h:016x}")
    }
}

/// What `--resume` needs besides the training configuration: `train_config.json`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RunSpec {
    pub train: TrainConfig,
    pub template: Template,
    pub chat: bool,
    pub answer_space: String,
    pub limit_train: Option<usize>,
    pub limit_valid: Option<usize>,
    /// The scenario's sensitive attributes.
    #[serde(default)]
    pub attributes: Vec<String>,
    /// The augmentation of paper A's methods (`None` for the others).
    #[serde(default)]
    pub augment: Option<AugmentConfig>,
}

impl RunSpec {
    /// How prompts are fed: the model's chat template, or `Input: ...\nOutput:`.
    pub fn format(&self) -> PromptFormat {
        PromptFormat::of(self.chat)
    }
}

/// Which prompts UP5 trains on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Up5Input {
    /// The prompts that state the user's attribute (paper B's reading of its baseline).
    #[default]
    Stated,
    /// The neutral prompts (UP5's own setting).
    Neutral,
}

impl Up5Input {
    pub fn is_stated(&self) -> bool {
        *self == Up5Input::Stated
    }
}

impl std::str::FromStr for Up5Input {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "stated" => Ok(Up5Input::Stated),
            "neutral" => Ok(Up5Input::Neutral),
            _ => Err(format!("`{s}`: expected stated or neutral")),
        }
    }
}
