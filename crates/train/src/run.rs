//! A training run, from a prepared dataset and a loaded model to a trained adapter: resolve
//! the [`RunSpec`] (or read it back to resume), make the model trainable as the method
//! says, encode the valid split, and hand the run to the method's
//! [`crate::methods::MethodDef::fit`].
//!
//! The run directory holds `run.json` ([`crate::fit::TrainRecord`]), `train_config.json`
//! (the [`RunSpec`]; `--resume` reads it back), `train_log.jsonl`, `checkpoint/`,
//! `adapter/` (the final weights: PEFT files, or an HF model directory for full
//! fine-tuning), `best/` (the best valid epoch) and `summary.json`
//! ([`crate::fit::SummaryFile`]).

use crate::config::{RunSpec, TrainConfig};
use crate::encode::{originals, samples};
use crate::engine::trainer::{Event, Summary};
use crate::error::{Result, TrainError};
use crate::fit::{Fit, Session};
use crate::methods::{self, needs_stereotype};
use fairrec_data::augment::{AugmentConfig, AuxValues, Counterfactuals};
use fairrec_data::pipeline::Manifest;
use fairrec_data::prompt::Template;
use fairrec_lm::load::{Loaded, Model};
use fairrec_lm::score::Scorer;
use std::cell::RefCell;
use std::path::Path;

/// What a new run takes besides its [`TrainConfig`] and scenario.
pub struct SpecOptions {
    /// The template [default: the method's for the dataset's protocol].
    pub template: Option<Template>,
    pub chat: bool,
    pub answer_space: String,
    pub limit_train: Option<usize>,
    pub limit_valid: Option<usize>,
    /// The attributes that get single-attribute auxiliary copies where the method makes
    /// any (paper A's ablations -A and -G leave some out).
    pub auxiliary: Vec<String>,
    pub aux_values: AuxValues,
    /// How paper A's counterfactual copies are made.
    pub counterfactuals: Counterfactuals,
}

/// `train` with its stereotype groups filled in from the prepared dataset `data` (and an
/// `auto` z threshold resolved on its train split) where the method needs them.
pub fn settled(
    mut train: TrainConfig,
    manifest: &Manifest,
    attributes: &[String],
    data: &Path,
) -> Result<TrainConfig> {
    let method = train.method;
    if needs_stereotype(&train) {
        let name = if method.is_paradigm() {
            format!("{} with --fairness-weight", method.name())
        } else {
            method.name().to_string()
        };
        let split = samples(data, "train", None)?;
        train
            .stereotype
            .settle(&name, attributes, manifest, &split)?;
    }
    Ok(train)
}

/// The specification of a new run of `train` in the scenario of `attributes` on the
/// prepared dataset `data`: the stereotype groups settled ([`settled`]), the
/// augmentation of paper A's methods, the method's template.
pub fn new_spec(
    train: TrainConfig,
    manifest: &Manifest,
    attributes: Vec<String>,
    data: &Path,
    o: SpecOptions,
) -> Result<RunSpec> {
    let train = settled(train, manifest, &attributes, data)?;
    let method = train.method;
    if method.is_paper_a() && attributes.is_empty() {
        return Err(TrainError::Input(format!(
            "--method {} needs a sensitive attribute",
            method.name()
        )));
    }
    let copies = method.copies();
    if o.counterfactuals != Counterfactuals::Joint && !copies.counterfactual {
        return Err(TrainError::Input(format!(
            "--counterfactuals applies to methods with counterfactual copies (cf, cf-diff, moe, cl-moe), not {}",
            method.name()
        )));
    }
    let augment = method.is_paper_a().then(|| AugmentConfig {
        protocol: manifest.protocol,
        attributes: attributes.clone(),
        counterfactual: copies.counterfactual,
        neutral: copies.neutral,
        auxiliary: if copies.auxiliary {
            o.auxiliary
        } else {
            Vec::new()
        },
        aux_values: o.aux_values,
        counterfactuals: o.counterfactuals,
    });
    Ok(RunSpec {
        train,
        template: o
            .template
            .unwrap_or(method.def().template(manifest.protocol)),
        chat: o.chat,
        answer_space: o.answer_space,
        limit_train: o.limit_train,
        limit_valid: o.limit_valid,
        attributes,
        augment,
    })
}

/// The specification saved in the run directory `out` (to resume it).
pub fn read_spec(out: &Path) -> Result<RunSpec> {
    let path = out.join("train_config.json");
    let text = std::fs::read_to_string(&path)
        .map_err(|e| TrainError::Input(format!("--resume: reading {}: {e}", path.display())))?;
    serde_json::from_str(&text).map_err(|source| TrainError::Json { path, source })
}

/// Train `loaded` as `spec` says on the prepared dataset of `session`, reporting progress
/// through `on`.
pub fn run(
    session: &Session,
    spec: &RunSpec,
    manifest: &Manifest,
    loaded: &mut Loaded<Model>,
    on: &mut dyn FnMut(Event),
) -> Result<Summary> {
    let cfg = &spec.train;
    methods::validate(cfg)?;
    let tuning = methods::setup(&mut loaded.model, &loaded.tokenizer, cfg)?;
    let (model, tok) = (&loaded.model, &loaded.tokenizer);
    let scorer = Scorer::new(model, tok, spec.format(), spec.answer_space.parse()?)?;
    let train = samples(session.data, "train", spec.limit_train)?;
    let valid_samples = samples(session.data, "valid", spec.limit_valid)?;
    let valid = originals(&scorer, spec.template, &valid_samples, &spec.attributes)?;
    let base = session.model.display().to_string();
    let save = |dir: &Path| methods::save(&tuning, model, tok, &base, cfg, dir);
    let fit = Fit {
        session,
        spec,
        manifest,
        tuning: &tuning,
        scorer: &scorer,
        train: &train,
        valid_samples: &valid_samples,
        valid: &valid,
        save: &save,
        on: RefCell::new(on),
    };
    cfg.method.def().fit(&fit)
}
