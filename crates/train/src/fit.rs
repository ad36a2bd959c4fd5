//! The run directory's protocol around one method's training set and objective: the
//! records (`train_config.json`, `run.json`), the valid split scored before training, the
//! trainer's loop and `summary.json`. Every method's [`crate::methods::MethodDef::fit`]
//! ends in [`Fit::fit`].

use crate::config::RunSpec;
use crate::engine::objective::{AnswerLoss, Example, Objective};
use crate::engine::trainer::{self, evaluate, predict, EvalLog, Event, Run, Summary};
use crate::error::{io_err, Result, TrainError};
use fairrec_data::pipeline::Manifest;
use fairrec_data::sample::Sample;
use fairrec_lm::score::{PromptFormat, Scorer};
use fairrec_lm::tuning::Tuning;
use std::cell::RefCell;
use std::path::{Path, PathBuf};

/// Where a run reads and writes, and what its records name.
pub struct Session<'a> {
    /// The prepared dataset.
    pub data: &'a Path,
    /// The run directory.
    pub out: &'a Path,
    /// The model as the user named it (recorded in `run.json`).
    pub model: &'a Path,
    /// Continue from the run directory's checkpoint.
    pub resume: bool,
    /// Score the valid split before training.
    pub eval_before: bool,
    pub git_revision: Option<String>,
}

/// `run.json` of a training run.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TrainRecord {
    pub command: String,
    pub method: String,
    pub model: PathBuf,
    pub data: PathBuf,
    pub data_hash: String,
    pub seed: u64,
    /// The scenario (absent from runs before 2026-11-22: empty).
    #[serde(default)]
    pub attributes: Vec<String>,
    pub template: String,
    pub format: PromptFormat,
    /// The Yes and No tokens as the tokenizer decodes them.
    pub answer_tokens: [String; 2],
    /// Training samples (`train_examples` in the first runs' records).
    #[serde(alias = "train_examples")]
    pub train_samples: usize,
    /// Prompts trained on per epoch (absent from the first runs' records: 0).
    #[serde(default)]
    pub train_prompts: usize,
    pub valid_examples: usize,
    pub trainable_parameters: usize,
    pub base_parameters: usize,
    /// `trainable_parameters` as a share of all parameters as PEFT counts them
    /// ([`fairrec_lm::tuning::Tuning::trainable_share`]; absent before 2026-12-05).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trainable_share: Option<f64>,
    pub git_revision: Option<String>,
    pub fingerprint: String,
    /// Where it ran: `device` (`cpu`, `cuda:N`), `dtype`, and on a GPU its name, driver and
    /// CUDA versions (absent before 2026-12-05).
    #[serde(flatten)]
    pub placement: Option<fairrec_lm::device::Placement>,
}

/// `summary.json`: the valid split before training, and how the run ended.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct SummaryFile {
    pub before: Option<EvalLog>,
    pub summary: Summary,
}

/// What a method's `fit` has to work with.
pub struct Fit<'a> {
    pub session: &'a Session<'a>,
    pub spec: &'a RunSpec,
    pub manifest: &'a Manifest,
    pub tuning: &'a Tuning,
    pub scorer: &'a Scorer<'a>,
    /// The run's training samples (`limit_train` applied).
    pub train: &'a [Sample],
    /// The run's valid samples (`limit_valid` applied) and their original prompts.
    pub valid_samples: &'a [Sample],
    pub valid: &'a [Example],
    /// Writes the trained weights to a directory.
    pub save: &'a dyn Fn(&Path) -> Result<()>,
    pub on: RefCell<&'a mut dyn FnMut(Event)>,
}

impl Fit<'_> {
    pub fn cfg(&self) -> &crate::TrainConfig {
        &self.spec.train
    }

    /// `L_LLM` on this run's scorer.
    pub fn answer(&self) -> AnswerLoss<'_> {
        AnswerLoss {
            scorer: self.scorer,
        }
    }

    /// Report a line of progress.
    pub fn say(&self, line: &str) {
        (self.on.borrow_mut())(Event::Message(line));
    }

    /// Write the run's records, score the valid split before training, train, write
    /// `summary.json`. `prompts`: the number of prompts trained on per epoch.
    pub fn fit<O: Objective>(
        &self,
        objective: &O,
        train_set: &[O::Item],
        prompts: usize,
    ) -> Result<Summary> {
        let (s, spec, cfg) = (self.session, self.spec, &self.spec.train);
        if !s.resume {
            check_fresh(s.out)?;
        }
        std::fs::create_dir_all(s.out).map_err(io_err(s.out))?;
        let base_parameters = self.scorer.backbone.parameters();
        if !s.resume {
            // In the struct's order (not sorted): the file as it has always been written.
            let path = s.out.join("train_config.json");
            let text = serde_json::to_string_pretty(spec).map_err(|source| TrainError::Json {
                path: path.clone(),
                source,
            })?;
            fairrec_core::fs::write_atomic(&path, (text + "\n").as_bytes())
                .map_err(io_err(&path))?;
            let tok = self.scorer.tok;
            let record = TrainRecord {
                command: "train".into(),
                method: cfg.method.name().into(),
                model: s.model.to_path_buf(),
                data: s.data.to_path_buf(),
                data_hash: self.manifest.data_hash(),
                seed: cfg.seed,
                attributes: spec.attributes.clone(),
                template: spec.template.name().into(),
                format: spec.format(),
                answer_tokens: [
                    tok.decode(&[self.scorer.yes])?,
                    tok.decode(&[self.scorer.no])?,
                ],
                train_samples: train_set.len(),
                train_prompts: prompts,
                valid_examples: self.valid.len(),
                trainable_parameters: self.tuning.parameters(),
                base_parameters,
                trainable_share: Some(self.tuning.trainable_share(base_parameters)),
                git_revision: s.git_revision.clone(),
                fingerprint: cfg.fingerprint(),
                placement: Some(fairrec_lm::device::Placement::of_model(
                    self.scorer.backbone,
                )),
            };
            write_json(&s.out.join("run.json"), &record)?;
        }
        self.say(&format!(
            "{} on {} [{}]: {} train samples ({} prompts) / {} valid, {} trainable parameters ({:.3}% of {})",
            cfg.method.name(),
            s.model.display(),
            spec.attributes.join(", "),
            train_set.len(),
            prompts,
            self.valid.len(),
            self.tuning.parameters(),
            100.0 * self.tuning.trainable_share(base_parameters),
            base_parameters
        ));
        let before = if cfg.eval && s.eval_before && !s.resume && !self.valid.is_empty() {
            let p = match objective.predict_valid(self.valid, cfg.batch_size * 2) {
                Some(p) => p?,
                None => predict(
                    self.scorer,
                    Some(self.tuning),
                    self.valid,
                    cfg.batch_size * 2,
                )?,
            };
            let e = evaluate(&p, self.valid, None);
            self.say(&format!(
                "valid before training: AUC {} F1 {}",
                fmt(e.auc),
                fmt(e.f1)
            ));
            Some(e)
        } else {
            None
        };
        let summary = {
            let mut on = self.on.borrow_mut();
            trainer::train(
                Run {
                    cfg,
                    dir: s.out,
                    tuning: self.tuning,
                    objective,
                    train: train_set,
                    valid: self.valid,
                    scorer: self.scorer,
                    save: self.save,
                    resume: s.resume,
                },
                &mut **on,
            )?
        };
        crate::tensorboard::write(s.out, &trainer::log_path(s.out))?;
        let file = SummaryFile { before, summary };
        write_json(&s.out.join("summary.json"), &file)?;
        let summary = file.summary;
        self.say(&format!(
            "trained {} steps ({} tokens) in {:.1}s; adapter in {}",
            summary.steps,
            summary.tokens,
            summary.seconds,
            s.out.join("adapter").display()
        ));
        Ok(summary)
    }
}

/// Refuse to start a new run where an earlier one left a checkpoint or finished
/// (`summary.json`): it would be overwritten. Checked before anything is written.
pub fn check_fresh(out: &Path) -> Result<()> {
    let ck = trainer::checkpoint_dir(out);
    let what = if out.join("summary.json").exists() {
        "a finished run"
    } else if fairrec_core::fs::recover_dir(&ck).map_err(io_err(&ck))? {
        "a checkpoint of an unfinished run"
    } else {
        return Ok(());
    };
    Err(TrainError::Checkpoint {
        path: out.to_path_buf(),
        message: format!(
            "holds {what}: --resume to continue it, --force to start over, or train into another directory"
        ),
    })
}

/// Delete what an earlier run left in `out` (checkpoints, log, summary), for `--force`.
pub fn remove_previous(out: &Path) -> Result<()> {
    let ck = trainer::checkpoint_dir(out);
    for p in [
        fairrec_core::fs::previous_dir(&ck),
        ck,
        trainer::log_path(out),
        out.join("tb"),
        out.join("summary.json"),
    ] {
        if p.is_dir() {
            std::fs::remove_dir_all(&p).map_err(io_err(&p))?;
        } else if p.exists() {
            std::fs::remove_file(&p).map_err(io_err(&p))?;
        }
    }
    Ok(())
}

fn write_json<T: serde::Serialize>(path: &Path, value: &T) -> Result<()> {
    fairrec_core::fs::write_json(path, value).map_err(io_err(path))
}

/// A figure that may be undefined, as the progress lines print it.
pub fn fmt(x: Option<f64>) -> String {
    x.map_or("undefined".into(), |v| format!("{v:.4}"))
}
