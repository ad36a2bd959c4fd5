//! The resolved training configuration of a run (what `run.toml` and the CLI flags fill).

use crate::curriculum::Curriculum;
use crate::mos::MosWeights;
use crate::optim::AdamWConfig;
use crate::schedule::Decay;
use fairrec_lm::adapter::AdapterConfig;
use fairrec_lm::mos::Routing;
use fairrec_lm::pool::{Capture, Pooling};
use fairrec_lm::prompt::PromptInit;

/// A training method: what a run makes trainable, on which copies of the data, with which
/// losses. The engine's methods (`lora`, `full`, `prompt-tuning`, `p-tuning`) train on the original
/// prompts with `L_LLM`; paper A's methods (Sec. 5.1) are LoRA compositions:
///
/// | method | template | copies of each sample | adapter | loss |
/// |---|---|---|---|---|
/// | `ins-tuning` | Ins-Tuning | original + counterfactual | LoRA | `L_LLM` |
/// | `cf` | LLM Rec | original + counterfactual | LoRA | `L_LLM` |
/// | `diff` | LLM Rec | original (+ neutral anchor) | LoRA | `L_LLM + L_diff` |
/// | `cf-diff` | LLM Rec | original + counterfactual (+ neutral anchor) | LoRA | `L_LLM + L_diff` (Eq. 7) |
/// | `moe` | LLM Rec | as cf-diff + single-attribute auxiliary copies | LoRA-MoE (Eq. 10-12) | Eq. 7 |
/// | `cl-moe` | LLM Rec | as moe | LoRA-MoE | SuperLoss of Eq. 7 per copy (Eq. 13-19) |
///
/// Ins-Tuning trains on the counterfactually augmented data: the paper says that with that
/// augmentation Jiang et al.'s frequency weights become uniform and the method "reverts to
/// standard instruction tuning" (our reading; Sec. 5.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Method {
    /// LoRA adapters on the target modules.
    Lora,
    /// Every weight.
    Full,
    /// A soft prompt of virtual tokens.
    PromptTuning,
    /// Virtual tokens through a trainable prompt encoder (p-tuning, MLP).
    PTuning,
    InsTuning,
    Cf,
    Diff,
    CfDiff,
    Moe,
    ClMoe,
    /// Paper B's Mixture-of-Stereotypes soft prompts ([`fairrec_lm::mos`]).
    Mos,
    /// Paper B's item-side baseline IFairLRS: LoRA on the answer loss with per-sample
    /// weights from the item groups' shares ([`crate::ifairlrs`]).
    IFairLrs,
    /// Paper B's user-side baseline: LoRA on the answer loss plus the divergence between
    /// the answers with and without the stated attribute ([`crate::fairllm`]).
    FairLlm,
    /// Paper B's counterfactually fair prompting baseline: prompt tuning against an
    /// attribute discriminator through gradient reversal ([`crate::up5`]).
    Up5,
}

/// Which augmented copies of a training sample a method trains on (see
/// `fairrec_data::augment`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Copies {
    pub counterfactual: bool,
    /// The neutral copy, as the anchor of `L_diff`.
    pub neutral: bool,
    /// Single-attribute auxiliary copies (multi-attribute scenarios only).
    pub auxiliary: bool,
}

impl Method {
    pub const ALL: [Method; 14] = [
        Method::Lora,
        Method::Full,
        Method::PromptTuning,
        Method::PTuning,
        Method::InsTuning,
        Method::Cf,
        Method::Diff,
        Method::CfDiff,
        Method::Moe,
        Method::ClMoe,
        Method::Mos,
        Method::IFairLrs,
        Method::FairLlm,
        Method::Up5,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Method::Lora => "lora",
            Method::Full => "full",
            Method::PromptTuning => "prompt-tuning",
            Method::PTuning => "p-tuning",
            Method::InsTuning => "ins-tuning",
            Method::Cf => "cf",
            Method::Diff => "diff",
            Method::CfDiff => "cf-diff",
            Method::Moe => "moe",
            Method::ClMoe => "cl-moe",
            Method::Mos => "mos",
            Method::IFairLrs => "ifairlrs",
            Method::FairLlm => "fairllm",
            Method::Up5 => "up5",
        }
    }

    /// One of paper A's fairness methods (as opposed to the engine's plain methods).
    pub fn is_paper_a(self) -> bool {
        !matches!(
            self,
            Method::Lora
                | Method::Full
                | Method::PromptTuning
                | Method::PTuning
                | Method::Mos
                | Method::IFairLrs
                | Method::FairLlm
                | Method::Up5
        )
    }

    /// A conventional paradigm (Table V's LoRA, p-tuning, prompt tuning, full-model
    /// tuning): trained on NTP, or on NTP + paper B's fairness loss
    /// ([`TrainConfig::fairness_weight`]).
    pub fn is_paradigm(self) -> bool {
        matches!(
            self,
            Method::Lora | Method::Full | Method::PromptTuning | Method::PTuning
        )
    }

    /// One of paper B's methods: they need one sensitive attribute and its stereotype
    /// groups ([`StereotypeSettings`]).
    pub fn is_paper_b(self) -> bool {
        matches!(
            self,
            Method::Mos | Method::IFairLrs | Method::FairLlm | Method::Up5
        )
    }

    /// The copies of each training sample the method trains on.
    pub fn copies(self) -> Copies {
        use Method::*;
        Copies {
            counterfactual: matches!(self, InsTuning | Cf | CfDiff | Moe | ClMoe),
            neutral: matches!(self, Diff | CfDiff | Moe | ClMoe),
            auxiliary: matches!(self, Moe | ClMoe),
        }
    }

    /// The paper's settings as a starting configuration (Sec. 5.1): LoRA r 16, alpha 32,
    /// dropout 0.05 (q/v for the LoRA methods; 3 experts on the FFN linear layers for
    /// MoE and CL-MoE), lr 3e-4 for one sensitive attribute and 5e-4 for several, 5
    /// epochs, `L_diff` with weight 1 where the method has it, the curriculum for CL-MoE.
    /// The engine's methods keep [`TrainConfig::default`].
    pub fn defaults(self, multi_attribute: bool) -> TrainConfig {
        let mut c = TrainConfig {
            method: self,
            ..TrainConfig::default()
        };
        if self == Method::Mos {
            // Ours (paper B's values are lost): experts start from vocabulary rows, and a
            // prompt's learning rate is higher than an adapter's.
            c.prompt_init = PromptInit::SampleVocab;
            c.lr = 1e-2;
            return c;
        }
        if !self.is_paper_a() {
            return c;
        }
        c.lr = if multi_attribute { 5e-4 } else { 3e-4 };
        c.epochs = 5;
        let moe = matches!(self, Method::Moe | Method::ClMoe);
        c.lora = AdapterConfig {
            dropout: 0.05,
            experts: if moe { 3 } else { 1 },
            ..AdapterConfig::lora(
                16,
                32.0,
                if moe {
                    &["gate_proj", "up_proj", "down_proj"]
                } else {
                    &["q_proj", "v_proj"]
                },
            )
        };
        if self.copies().neutral {
            c.objective.diff_weight = 1.0;
        }
        if self == Method::ClMoe {
            c.objective.curriculum = Some(Curriculum::default());
        }
        c
    }
}

impl std::str::FromStr for Method {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Method::ALL
            .into_iter()
            .find(|m| m.name() == s)
            .ok_or_else(|| {
                format!(
                    "method `{s}`: expected one of {}",
                    Method::ALL.map(|m| m.name()).join(", ")
                )
            })
    }
}

/// The losses beyond `L_LLM` (paper A).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ObjectiveConfig {
    /// Weight of `L_diff` (Eq. 6; Eq. 7 has 1). 0: no `L_diff`.
    pub diff_weight: f64,
    /// Which hidden state `L_diff` compares (default: the final layer's state at the last
    /// prompt token; READING.md).
    pub capture: Capture,
    /// Also train the neutral copy on `L_LLM` (by default it is only `L_diff`'s anchor).
    pub ntp_neutral: bool,
    /// SuperLoss curriculum (CL-MoE).
    pub curriculum: Option<Curriculum>,
    /// Weight of the load-balance loss on the routers (MoE; 0: none).
    pub balance_weight: f64,
}

impl Default for ObjectiveConfig {
    fn default() -> Self {
        ObjectiveConfig {
            diff_weight: 0.0,
            capture: Capture {
                layer: None,
                pooling: Pooling::Last,
            },
            ntp_neutral: false,
            curriculum: None,
            balance_weight: 0.0,
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
    /// `lambda` of UP5's gradient reversal (method `up5`; ours: 1).
    #[serde(default = "one")]
    pub adversary_weight: f64,
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

/// The stereotype groups of paper B's methods: the values of one sensitive attribute, and
/// the items that join a group by their stereotype z-score in the train split
/// (`fairrec_metrics::stereotype`).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct StereotypeSettings {
    /// The sensitive attribute whose values are the stereotype groups.
    pub attribute: String,
    /// Its values, sorted (filled from the data).
    pub groups: Vec<String>,
    /// Items whose stereotype z-score exceeds this belong to a group.
    pub z_threshold: f64,
}

impl Default for StereotypeSettings {
    fn default() -> Self {
        StereotypeSettings {
            attribute: String::new(),
            groups: Vec::new(),
            z_threshold: 1.0,
        }
    }
}

/// MoS's shape, routing and loss weights (paper B; definitions in [`fairrec_lm::mos`]).
/// The virtual tokens per expert and their initialisation are `virtual_tokens` and
/// `prompt_init`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct MosSettings {
    /// Prompt experts `K` (ours: 4).
    pub experts: usize,
    /// Experts kept per group input (Eq. 8; paper B's default top-1).
    pub top_k: usize,
    pub routing: Routing,
    /// The reweighting layer (Eq. 9); off: the groups' routes are averaged.
    pub reweight: bool,
    /// `lambda_f`, `lambda_d` (Eq. 15).
    pub weights: MosWeights,
}

impl Default for MosSettings {
    fn default() -> Self {
        MosSettings {
            experts: 4,
            top_k: 1,
            routing: Routing::Top,
            reweight: true,
            weights: MosWeights::default(),
        }
    }
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
            objective: ObjectiveConfig::default(),
            mos: MosSettings::default(),
            stereotype: StereotypeSettings::default(),
            divergence_weight: 1.0,
            encoder_hidden_size: 0,
            adversary_weight: 1.0,
            fairness_weight: 0.0,
        }
    }
}

impl TrainConfig {
    /// Does the run need one sensitive attribute's stereotype groups (paper B's methods,
    /// or a paradigm trained with the fairness loss)?
    pub fn needs_stereotype(&self) -> bool {
        self.method.is_paper_b() || self.fairness_weight > 0.0
    }

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
        let o = &self.objective;
        if !(o.diff_weight >= 0.0 && o.balance_weight >= 0.0) {
            return bad("loss weights must be >= 0");
        }
        if let Some(c) = &o.curriculum {
            if !(c.lambda > 0.0 && c.delta > 0.0 && c.delta < 1.0 && c.classes > 1.0) {
                return bad("curriculum: lambda > 0, delta in (0, 1) and classes > 1 are required");
            }
        }
        if o.diff_weight > 0.0 && !self.method.copies().neutral {
            return bad("L_diff needs the neutral copies: use diff, cf-diff, moe or cl-moe");
        }
        let m = &self.mos;
        if self.method == Method::Mos && (m.experts == 0 || m.top_k == 0 || m.top_k > m.experts) {
            return bad("MoS needs at least one expert and 1 <= top-k <= experts");
        }
        if !(m.weights.fairness >= 0.0
            && m.weights.diversity >= 0.0
            && m.weights.balance >= 0.0
            && self.divergence_weight >= 0.0
            && self.adversary_weight >= 0.0
            && self.fairness_weight >= 0.0)
        {
            return bad("loss weights must be >= 0");
        }
        if self.fairness_weight > 0.0 && !self.method.is_paradigm() {
            return bad("fairness_weight applies to lora, full, prompt-tuning and p-tuning (mos has its own)");
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
    pub fn fingerprint(&self) -> String {
        let json = serde_json::to_string(self).unwrap_or_default();
        let h = fairrec_core::fnv1a64(json.as_bytes());
        format!("{h:016x}")
    }
}
