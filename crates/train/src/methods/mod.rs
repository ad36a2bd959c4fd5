//! The training methods, one module per method or family. Each declares, in one place, what
//! a method makes trainable, on which copies of the data, with which template, defaults,
//! checks and losses ([`MethodDef`]); [`Method::def`] is the one `match` that maps a name
//! to its definition.
//!
//! | module | methods | trains | loss |
//! |---|---|---|---|
//! | [`plain`] | `lora`, `full`, `prompt-tuning`, `p-tuning` | LoRA / every weight / a soft prompt / p-tuning | `L_LLM` (+ paper B's Eq. 13 with `fairness_weight`) |
//! | [`paper_a`] | `ins-tuning`, `cf`, `diff`, `cf-diff`, `moe`, `cl-moe` | LoRA or LoRA-MoE on augmented copies | `L_LLM` + `L_diff` (Eq. 7), SuperLoss (Eq. 13-19) |
//! | [`mos`] | `mos` | a mixture of soft-prompt experts (paper B) | Eq. 12-15 |
//! | [`ifairlrs`] | `ifairlrs` | LoRA | weighted `L_LLM` |
//! | [`fairllm`] | `fairllm` | LoRA | `L_LLM` + divergence with/without the attribute |
//! | [`up5`] | `up5` | a soft prompt | `L_LLM` against an attribute discriminator |
//!
//! [`stereo`] is paper B's stereotype-aware fairness loss and the stereotype groups, shared
//! by MoS, IFairLRS, UP5 and the plain methods trained with `fairness_weight`.
//!
//! Adding a method: a name in [`crate::method`], a module here implementing [`MethodDef`],
//! and its arm in [`Method::def`].

pub mod fairllm;
pub mod ifairlrs;
pub mod mos;
pub mod paper_a;
pub mod plain;
pub mod stereo;
pub mod up5;

use crate::config::TrainConfig;
use crate::engine::trainer::Summary;
use crate::error::{Result, TrainError};
use crate::fit::Fit;
use crate::method::Method;
use fairrec_data::prompt::Template;
use fairrec_data::protocol::Protocol;
use fairrec_lm::device::DTypeSpec;
use fairrec_lm::prompt::{PromptInit, PromptShape};
use fairrec_lm::tokenizer::Tok;
use fairrec_lm::tuning::Tuning;
use fairrec_lm::Backbone;
use std::path::Path;

/// Where a method comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// A conventional paradigm (Table V's LoRA, p-tuning, prompt tuning, full-model
    /// tuning): NTP, or NTP + paper B's fairness loss (`fairness_weight`).
    Paradigm,
    /// One of paper A's fairness methods (Sec. 5.1).
    PaperA,
    /// One of paper B's methods: they need one sensitive attribute and its stereotype
    /// groups ([`stereo::StereotypeSettings`]).
    PaperB,
}

/// Which augmented copies of a training sample a method trains on (see
/// `fairrec_data::augment`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Copies {
    pub counterfactual: bool,
    /// The neutral copy, as the anchor of `L_diff`.
    pub neutral: bool,
    /// Single-attribute auxiliary copies (multi-attribute scenarios only).
    pub auxiliary: bool,
}

/// Everything one method decides.
pub trait MethodDef: Sync {
    fn family(&self) -> Family;
    /// The name in reports ("CL-MoE").
    fn label(&self) -> &'static str;
    /// The copies of each training sample it trains on (none: the original prompt only).
    fn copies(&self) -> Copies {
        Copies::default()
    }
    /// Its paper's settings over [`TrainConfig::default`] (`multi_attribute`: a scenario of
    /// two or more sensitive attributes).
    fn defaults(&self, _cfg: &mut TrainConfig, _multi_attribute: bool) {}
    /// Reject settings of its own that cannot train.
    fn validate(&self, _cfg: &TrainConfig) -> Result<()> {
        Ok(())
    }
    /// The template it trains and is audited with on data of `protocol`.
    fn template(&self, protocol: Protocol) -> Template {
        Template::default_for(protocol)
    }
    /// The revision of its definition: raised when a change makes the results trained
    /// under the earlier one stale (an experiment then reruns its cells).
    fn revision(&self) -> u32 {
        0
    }
    /// Its result is a whole model directory (full fine-tuning), not adapter files.
    fn saves_model(&self) -> bool {
        false
    }
    /// Make `model` trainable (seeded with `cfg.seed`).
    fn setup(&self, model: &mut dyn Backbone, tok: &Tok, cfg: &TrainConfig) -> Result<Tuning>;
    /// Build its training set and objective from the run's samples and train.
    fn fit(&self, f: &Fit) -> Result<Summary>;
}

impl Method {
    /// The method's definition: the one place a method's behaviour is looked up.
    pub fn def(self) -> &'static dyn MethodDef {
        match self {
            Method::Lora => &plain::LORA,
            Method::Full => &plain::FULL,
            Method::PromptTuning => &plain::PROMPT_TUNING,
            Method::PTuning => &plain::P_TUNING,
            Method::InsTuning => &paper_a::INS_TUNING,
            Method::Cf => &paper_a::CF,
            Method::Diff => &paper_a::DIFF,
            Method::CfDiff => &paper_a::CF_DIFF,
            Method::Moe => &paper_a::MOE,
            Method::ClMoe => &paper_a::CL_MOE,
            Method::Mos => &mos::MOS,
            Method::IFairLrs => &ifairlrs::IFAIRLRS,
            Method::FairLlm => &fairllm::FAIRLLM,
            Method::Up5 => &up5::UP5,
        }
    }

    pub fn family(self) -> Family {
        self.def().family()
    }

    /// One of paper A's fairness methods.
    pub fn is_paper_a(self) -> bool {
        self.family() == Family::PaperA
    }

    /// A conventional paradigm ([`Family::Paradigm`]).
    pub fn is_paradigm(self) -> bool {
        self.family() == Family::Paradigm
    }

    /// One of paper B's methods ([`Family::PaperB`]).
    pub fn is_paper_b(self) -> bool {
        self.family() == Family::PaperB
    }

    pub fn copies(self) -> Copies {
        self.def().copies()
    }

    pub fn label(self) -> &'static str {
        self.def().label()
    }

    /// The revision of the method's definition ([`MethodDef::revision`]).
    pub fn revision(self) -> u32 {
        self.def().revision()
    }

    /// Is the trained result a model directory (`--model`) rather than an adapter
    /// (`--adapter`)?
    pub fn saves_model(self) -> bool {
        self.def().saves_model()
    }

    /// The base's dtype when `asked` (`--dtype`): full fine-tuning trains every weight, and
    /// fairrec keeps trainable variables and their optimiser state in f32, so its base is
    /// f32 (`auto`) and a half-precision one is refused; the other methods train f32
    /// variables over a frozen base in the dtype asked.
    pub fn base_dtype(self, asked: DTypeSpec) -> Result<DTypeSpec> {
        match asked {
            _ if !self.saves_model() => Ok(asked),
            DTypeSpec::Auto | DTypeSpec::F32 => Ok(DTypeSpec::F32),
            other => Err(TrainError::Config(format!(
                "--dtype {other} with --method {}: full fine-tuning trains every weight, which fairrec keeps in f32 with its optimiser state; use --dtype f32 (or auto), or a PEFT method over a {other} base",
                self.name()
            ))),
        }
    }

    /// The method's starting configuration ([`MethodDef::defaults`]).
    pub fn defaults(self, multi_attribute: bool) -> TrainConfig {
        let mut c = TrainConfig {
            method: self,
            ..TrainConfig::default()
        };
        self.def().defaults(&mut c, multi_attribute);
        c
    }
}

/// Does the run need one sensitive attribute's stereotype groups (paper B's methods, or a
/// paradigm trained with the fairness loss)?
pub fn needs_stereotype(cfg: &TrainConfig) -> bool {
    cfg.method.is_paper_b() || cfg.fairness_weight > 0.0
}

/// Reject values that cannot train: [`TrainConfig::check_values`], the knobs of one family
/// set for a method of another, and the method's own checks.
pub fn validate(cfg: &TrainConfig) -> Result<()> {
    cfg.check_values()?;
    let bad = |m: &str| Err(TrainError::Config(m.into()));
    if cfg.objective.diff_weight > 0.0 && !cfg.method.copies().neutral {
        return bad("L_diff needs the neutral copies: use diff, cf-diff, moe or cl-moe");
    }
    if cfg.objective.diff_over != paper_a::loss::DiffOver::All && cfg.objective.diff_weight == 0.0 {
        return bad("diff_over applies where L_diff is on: diff, cf-diff, moe or cl-moe");
    }
    if cfg.fairness_weight > 0.0 && !cfg.method.is_paradigm() {
        return bad(
            "fairness_weight applies to lora, full, prompt-tuning and p-tuning (mos has its own)",
        );
    }
    let prompted = matches!(
        cfg.method,
        Method::PromptTuning | Method::PTuning | Method::Up5
    );
    if (cfg.prompt_submodules.is_some() || cfg.decoder_prompt) && !prompted {
        return bad(
            "prompt_submodules and decoder_prompt apply to prompt-tuning, p-tuning and up5",
        );
    }
    if !cfg.up5_input.is_stated() && cfg.method != Method::Up5 {
        return bad("up5_input applies to up5");
    }
    if cfg.decoder_prompt && cfg.prompt_submodules.is_some_and(|s| s != 2) {
        return bad("decoder_prompt puts the second of 2 blocks on the decoder: prompt_submodules must be 2");
    }
    cfg.method.def().validate(cfg)
}

/// Make `model` trainable as `cfg.method` asks (adapters seeded with `cfg.seed`).
pub fn setup(model: &mut dyn Backbone, tok: &Tok, cfg: &TrainConfig) -> Result<Tuning> {
    cfg.method.def().setup(model, tok, cfg)
}

/// LoRA (or LoRA-MoE) adapters as `cfg.lora` says.
pub(crate) fn adapters(model: &mut dyn Backbone, cfg: &TrainConfig) -> Result<Tuning> {
    Ok(Tuning::Adapters(
        model.attach_adapters(&cfg.lora, cfg.seed)?,
    ))
}

/// The prompt table's shape `cfg` asks of `model` (PEFT's default for the model where
/// `cfg` names none).
fn prompt_shape(model: &dyn Backbone, cfg: &TrainConfig) -> PromptShape {
    let default = model.host().default_prompt_shape().submodules;
    PromptShape {
        submodules: cfg
            .prompt_submodules
            .unwrap_or(if cfg.decoder_prompt { 2 } else { default }),
        decoder: cfg.decoder_prompt,
    }
}

/// A soft prompt of `cfg.virtual_tokens` (per block) initialised as `cfg.prompt_init`
/// says.
pub(crate) fn soft_prompt(
    model: &mut dyn Backbone,
    tok: &Tok,
    cfg: &TrainConfig,
) -> Result<Tuning> {
    let shape = prompt_shape(model, cfg);
    Ok(Tuning::Prompt {
        prompt: model.host_mut().attach_soft_prompt(
            tok,
            cfg.virtual_tokens,
            shape,
            &cfg.prompt_init,
            cfg.seed,
        )?,
        init: cfg.prompt_init.clone(),
    })
}

/// p-tuning's prompt encoder.
pub(crate) fn p_tuning(model: &mut dyn Backbone, cfg: &TrainConfig) -> Result<Tuning> {
    let shape = prompt_shape(model, cfg);
    Ok(Tuning::Prompt {
        prompt: model.host_mut().attach_p_tuning(
            cfg.virtual_tokens,
            shape,
            cfg.encoder_hidden_size,
            cfg.seed,
        )?,
        init: PromptInit::Random,
    })
}

/// Save what `tuning` trained into `dir`: PEFT files (`adapter_config.json`,
/// `adapter_model.safetensors`) for adapters and prompts; `config.json`,
/// `model.safetensors` and the tokenizer for full fine-tuning; and, where the method
/// grouped items by stereotype, its settings ([`stereo::STEREOTYPE_FILE`]).
pub fn save(
    tuning: &Tuning,
    model: &dyn Backbone,
    tok: &Tok,
    base: &str,
    cfg: &TrainConfig,
    dir: &Path,
) -> Result<()> {
    match tuning {
        Tuning::Full(vars) => {
            let tensors: Vec<_> = vars
                .iter()
                .map(|(k, v)| (k.clone(), v.as_tensor().clone()))
                .collect();
            model.save_dir(&tensors, tok, dir)?
        }
        _ => fairrec_lm::peft::save(tuning, model.host(), base, dir)?,
    }
    if needs_stereotype(cfg) {
        cfg.stereotype.save(dir)?;
    }
    Ok(())
}
