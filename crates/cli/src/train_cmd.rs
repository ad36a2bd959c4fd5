//! `fairrec train`: fine-tune a model on a prepared dataset's train split (prompts of the
//! chosen template with the users' true attributes), validating on the valid split.
//!
//! The run directory holds `run.json` (model, data and its manifest hash, seed, git
//! revision), `train_config.json` (the resolved training configuration; `--resume` reads
//! it back), `train_log.jsonl`, `checkpoint/`, `adapter/` (the final weights: PEFT files,
//! or an HF model directory for `--method full`), `best/` (the best valid epoch) and
//! `summary.json`.

use crate::model_args::ModelArgs;
use anyhow::{bail, Context as _, Result};
use clap::Args;
use fairrec_core::Variant;
use fairrec_data::pipeline::{read_manifest, read_split};
use fairrec_data::prompt::{render, Template};
use fairrec_data::sample::write_atomic;
use fairrec_lm::prompt::PromptInit;
use fairrec_lm::score::Scorer;
use fairrec_train::objective::{AnswerLoss, Example};
use fairrec_train::schedule::Decay;
use fairrec_train::trainer::{evaluate, predict, train, Event, Run};
use fairrec_train::{method, Method, TrainConfig};
use std::path::{Path, PathBuf};

#[derive(Args, Debug)]
pub struct TrainArgs {
    /// lora, full or prompt-tuning.
    #[arg(long, default_value = "lora")]
    pub method: Method,
    #[command(flatten)]
    pub model: ModelArgs,
    /// A prepared dataset (`fairrec data prepare`).
    #[arg(long)]
    pub data: PathBuf,
    /// The run directory.
    #[arg(long)]
    pub out: PathBuf,
    /// Continue the run in --out from its last checkpoint (its own saved configuration is used).
    #[arg(long)]
    pub resume: bool,
    /// Start over in --out, deleting its checkpoint and log.
    #[arg(long)]
    pub force: bool,
    /// Prompt template [default: llm-rec for cl-moe, sequential for mos].
    #[arg(long)]
    pub template: Option<Template>,
    /// Train on the first N samples of the train split only.
    #[arg(long)]
    pub limit_train: Option<usize>,
    /// Validate on the first N samples of the valid split only.
    #[arg(long)]
    pub limit_valid: Option<usize>,
    /// Skip scoring the valid split before training.
    #[arg(long)]
    pub no_eval_before: bool,
    /// Peak learning rate.
    #[arg(long, default_value_t = 3e-4)]
    pub lr: f64,
    #[arg(long, default_value_t = 1)]
    pub epochs: usize,
    /// Stop after N optimizer steps.
    #[arg(long)]
    pub max_steps: Option<u64>,
    /// Examples per forward pass.
    #[arg(long, default_value_t = 4)]
    pub batch_size: usize,
    /// Forward passes per optimizer step.
    #[arg(long, default_value_t = 1)]
    pub grad_accum: usize,
    /// Global gradient-norm clip (0: none).
    #[arg(long, default_value_t = 1.0)]
    pub max_grad_norm: f64,
    /// Fraction of the steps spent in linear warmup.
    #[arg(long, default_value_t = 0.05)]
    pub warmup_ratio: f64,
    /// Decay after warmup: constant, linear or cosine.
    #[arg(long, default_value = "linear")]
    pub schedule: Decay,
    #[arg(long, default_value_t = 0.0)]
    pub weight_decay: f64,
    #[arg(long, default_value_t = 0.9)]
    pub beta1: f64,
    #[arg(long, default_value_t = 0.999)]
    pub beta2: f64,
    #[arg(long, default_value_t = 1e-8)]
    pub adam_eps: f64,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Stop when the valid AUC has not improved for N epochs.
    #[arg(long)]
    pub early_stopping: Option<usize>,
    /// Checkpoint every N optimizer steps (and at every epoch end).
    #[arg(long, default_value_t = 50)]
    pub checkpoint_every: u64,
    /// Do not score the valid split after each epoch.
    #[arg(long)]
    pub no_eval: bool,
    /// LoRA rank.
    #[arg(long, default_value_t = 8)]
    pub lora_r: usize,
    #[arg(long, default_value_t = 16.0)]
    pub lora_alpha: f64,
    #[arg(long, default_value_t = 0.05)]
    pub lora_dropout: f64,
    /// Target modules, comma-separated (q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj).
    #[arg(long, default_value = "q_proj,v_proj", value_delimiter = ',')]
    pub lora_targets: Vec<String>,
    /// Scale LoRA by alpha / sqrt(r).
    #[arg(long)]
    pub rslora: bool,
    /// Virtual tokens of prompt tuning.
    #[arg(long, default_value_t = 20)]
    pub virtual_tokens: usize,
    /// Prompt-tuning initialisation: text, sample-vocab or random.
    #[arg(long, default_value = "text")]
    pub prompt_init: String,
    /// The text whose token embeddings start the prompt (--prompt-init text).
    #[arg(
        long,
        default_value = "Predict whether the user will like the item. Answer Yes or No."
    )]
    pub prompt_init_text: String,
}

impl TrainArgs {
    fn config(&self) -> Result<TrainConfig> {
        let d = TrainConfig::default();
        let prompt_init = match self.prompt_init.as_str() {
            "text" => PromptInit::Text(self.prompt_init_text.clone()),
            "sample-vocab" => PromptInit::SampleVocab,
            "random" => PromptInit::Random,
            o => bail!("--prompt-init `{o}`: expected text, sample-vocab or random"),
        };
        let c = TrainConfig {
            method: self.method,
            lr: self.lr,
            schedule: self.schedule,
            warmup_ratio: self.warmup_ratio,
            epochs: self.epochs,
            max_steps: self.max_steps,
            batch_size: self.batch_size,
            grad_accum: self.grad_accum,
            max_grad_norm: self.max_grad_norm,
            adamw: fairrec_train::optim::AdamWConfig {
                beta1: self.beta1,
                beta2: self.beta2,
                eps: self.adam_eps,
                weight_decay: self.weight_decay,
            },
            seed: self.seed,
            early_stopping: self.early_stopping,
            checkpoint_every: self.checkpoint_every,
            eval: !self.no_eval,
            lora: fairrec_lm::adapter::AdapterConfig {
                r: self.lora_r,
                alpha: self.lora_alpha,
                dropout: self.lora_dropout,
                rslora: self.rslora,
                targets: self.lora_targets.clone(),
                ..d.lora
            },
            virtual_tokens: self.virtual_tokens,
            prompt_init,
        };
        c.validate()?;
        Ok(c)
    }
}

/// What `--resume` needs besides the training configuration.
#[derive(serde::Serialize, serde::Deserialize)]
struct RunSpec {
    train: TrainConfig,
    template: Template,
    chat: bool,
    answer_space: String,
    limit_train: Option<usize>,
    limit_valid: Option<usize>,
}

fn encode(
    scorer: &Scorer,
    template: Template,
    data: &Path,
    split: &str,
    scenario: &[String],
    limit: Option<usize>,
) -> Result<Vec<Example>> {
    let mut samples = read_split(data, split)?;
    if let Some(n) = limit {
        samples.truncate(n);
    }
    let prompts = samples
        .iter()
        .map(|s| render(template, s, &Variant::Original, scenario))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let ids = scorer.encode(&prompts)?;
    Ok(ids
        .into_iter()
        .zip(&samples)
        .map(|(ids, s)| Example {
            ids,
            label: s.label,
        })
        .collect())
}

pub fn run(a: &TrainArgs) -> Result<()> {
    let spec_path = a.out.join("train_config.json");
    if a.force && !a.resume {
        let ck = fairrec_train::trainer::checkpoint_dir(&a.out);
        for p in [
            fairrec_core::fs::previous_dir(&ck),
            ck,
            fairrec_train::trainer::log_path(&a.out),
            a.out.join("summary.json"),
        ] {
            if p.is_dir() {
                std::fs::remove_dir_all(&p)?;
            } else if p.exists() {
                std::fs::remove_file(&p)?;
            }
        }
    }
    let manifest = read_manifest(&a.data)?;
    let spec = if a.resume {
        let text = std::fs::read_to_string(&spec_path)
            .with_context(|| format!("--resume: reading {}", spec_path.display()))?;
        let spec: RunSpec = serde_json::from_str(&text)
            .with_context(|| format!("--resume: {}", spec_path.display()))?;
        if spec.train != a.config()? {
            tracing::warn!(
                "--resume continues with the configuration saved in {}, not the flags given",
                spec_path.display()
            );
        }
        spec
    } else {
        RunSpec {
            train: a.config()?,
            template: a
                .template
                .unwrap_or(Template::default_for(manifest.protocol)),
            chat: !a.model.no_chat,
            answer_space: a.model.answer_space.clone(),
            limit_train: a.limit_train,
            limit_valid: a.limit_valid,
        }
    };
    let cfg = &spec.train;
    let margs = ModelArgs {
        no_chat: !spec.chat,
        answer_space: spec.answer_space.clone(),
        ..a.model.clone()
    };
    let mut loaded = margs.load()?;
    let tuning = method::setup(&mut loaded.model, &loaded.tokenizer, cfg)?;
    let scorer = Scorer::new(
        &loaded.model,
        &loaded.tokenizer,
        margs.format(),
        margs.space()?,
    )?;
    let scenario = manifest.attributes();
    let train_set = encode(
        &scorer,
        spec.template,
        &a.data,
        "train",
        &scenario,
        spec.limit_train,
    )?;
    let valid = encode(
        &scorer,
        spec.template,
        &a.data,
        "valid",
        &scenario,
        spec.limit_valid,
    )?;
    std::fs::create_dir_all(&a.out)?;
    if !a.resume {
        write_atomic(
            &spec_path,
            (serde_json::to_string_pretty(&spec)? + "\n").as_bytes(),
        )?;
        let run = serde_json::json!({
            "command": "train", "method": cfg.method.name(), "model": a.model.model,
            "data": a.data, "data_hash": manifest.data_hash(), "seed": cfg.seed,
            "template": spec.template.name(), "format": margs.format(),
            "answer_tokens": [loaded.tokenizer.decode(&[scorer.yes])?, loaded.tokenizer.decode(&[scorer.no])?],
            "train_examples": train_set.len(), "valid_examples": valid.len(),
            "trainable_parameters": tuning.parameters(), "base_parameters": loaded.model.cfg.parameters(),
            "git_revision": crate::git_revision(), "fingerprint": cfg.fingerprint(),
        });
        write_atomic(
            &a.out.join("run.json"),
            (serde_json::to_string_pretty(&run)? + "\n").as_bytes(),
        )?;
    }
    say!(
        "{} on {}: {} train / {} valid examples, {} trainable parameters ({:.3}% of {})",
        cfg.method.name(),
        a.model.model.display(),
        train_set.len(),
        valid.len(),
        tuning.parameters(),
        100.0 * tuning.parameters() as f64 / loaded.model.cfg.parameters() as f64,
        loaded.model.cfg.parameters()
    );
    let before = if cfg.eval && !a.no_eval_before && !a.resume && !valid.is_empty() {
        let p = predict(&scorer, Some(&tuning), &valid, cfg.batch_size * 2)?;
        let e = evaluate(&p, &valid, None);
        say!("valid before training: AUC {} F1 {}", fmt(e.auc), fmt(e.f1));
        Some(e)
    } else {
        None
    };
    let base = a.model.model.display().to_string();
    let save = |dir: &Path| -> fairrec_train::Result<()> {
        method::save(&tuning, &loaded.model, &loaded.tokenizer, &base, dir)
    };
    let objective = AnswerLoss { scorer: &scorer };
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{bar:40} {pos}/{len} steps {msg} [{elapsed_precise} < {eta_precise}]",
        )
        .expect("valid template"),
    );
    let summary = train(
        Run {
            cfg,
            dir: &a.out,
            tuning: &tuning,
            objective: &objective,
            train: &train_set,
            valid: &valid,
            scorer: &scorer,
            save: &save,
            resume: a.resume,
        },
        &mut |ev| match ev {
            Event::Start { total_steps, done } => {
                bar.set_length(total_steps);
                bar.set_position(done);
            }
            Event::Step(s) => {
                bar.set_position(s.step);
                bar.set_message(format!("loss {:.4} {:.0} tokens/s", s.loss, s.tokens_per_s));
                tracing::debug!(
                    step = s.step,
                    loss = s.loss,
                    lr = s.lr,
                    grad_norm = s.grad_norm
                );
            }
            Event::Eval(e) => bar.suspend(|| {
                say!(
                    "epoch {}: valid AUC {} F1 {}",
                    e.epoch.unwrap_or(0) + 1,
                    fmt(e.auc),
                    fmt(e.f1)
                )
            }),
        },
    )?;
    bar.finish_and_clear();
    let out = serde_json::json!({"before": before, "summary": summary});
    write_atomic(
        &a.out.join("summary.json"),
        (serde_json::to_string_pretty(&out)? + "\n").as_bytes(),
    )?;
    say!(
        "trained {} steps ({} tokens) in {:.1}s; adapter in {}",
        summary.steps,
        summary.tokens,
        summary.seconds,
        a.out.join("adapter").display()
    );
    Ok(())
}

fn fmt(x: Option<f64>) -> String {
    x.map_or("undefined".into(), |v| format!("{v:.4}"))
}
