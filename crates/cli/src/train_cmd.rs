//! `fairrec train`: fine-tune a model on a prepared dataset's train split, validating on
//! the valid split (original prompts of the run's template).
//!
//! The engine's methods (`lora`, `full`, `prompt-tuning`, `p-tuning`) train on the original prompts;
//! paper A's methods train on each sample with the augmented copies their method asks for
//! (`fairrec_train::Method::copies`, `fairrec_data::augment`), in the scenario of
//! `--attributes`. Paper B's `mos` trains its mixture of prompt experts on the original
//! prompts with one routing input per stereotype group (`crate::train_paper_b`).
//!
//! The run directory holds `run.json` (model, data and its manifest hash, seed, git
//! revision), `train_config.json` (the resolved training configuration; `--resume` reads
//! it back), `train_log.jsonl`, `checkpoint/`, `adapter/` (the final weights: PEFT files,
//! or an HF model directory for `--method full`), `best/` (the best valid epoch) and
//! `summary.json`.

use crate::model_args::ModelArgs;
pub use crate::train_args::TrainArgs;
use anyhow::{bail, Context as _, Result};
use fairrec_core::Variant;
use fairrec_data::augment::{augment, AugmentConfig};
use fairrec_data::pipeline::{read_manifest, read_split, Manifest};
use fairrec_data::prompt::{render, Template};
use fairrec_data::sample::{write_atomic, Sample};
use fairrec_lm::score::Scorer;
use fairrec_lm::tuning::Tuning;
use fairrec_train::fair::{Copy, FairLoss, Group};
use fairrec_train::objective::{AnswerLoss, Example, Objective};
use fairrec_train::trainer::{evaluate, predict, train, Event, Run, Summary};
use fairrec_train::{method, Method, TrainConfig};
use std::path::Path;

/// What `--resume` needs besides the training configuration.
#[derive(serde::Serialize, serde::Deserialize)]
struct RunSpec {
    train: TrainConfig,
    template: Template,
    chat: bool,
    answer_space: String,
    limit_train: Option<usize>,
    limit_valid: Option<usize>,
    /// The scenario's sensitive attributes.
    #[serde(default)]
    attributes: Vec<String>,
    /// The augmentation of paper A's methods (`None` for the engine's methods).
    #[serde(default)]
    augment: Option<AugmentConfig>,
}

fn samples(data: &Path, split: &str, limit: Option<usize>) -> Result<Vec<Sample>> {
    let mut s = read_split(data, split)?;
    if let Some(n) = limit {
        s.truncate(n);
    }
    Ok(s)
}

/// Original prompts (the scenario's attributes stated with their true values).
fn encode(
    scorer: &Scorer,
    template: Template,
    samples: &[Sample],
    scenario: &[String],
) -> Result<Vec<Example>> {
    encode_variant(scorer, template, samples, &Variant::Original, scenario)
}

/// Every sample's prompt in `variant`, encoded.
fn encode_variant(
    scorer: &Scorer,
    template: Template,
    samples: &[Sample],
    variant: &Variant,
    scenario: &[String],
) -> Result<Vec<Example>> {
    let prompts = samples
        .iter()
        .map(|s| render(template, s, variant, scenario))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let ids = scorer.encode(&prompts)?;
    Ok(ids
        .into_iter()
        .zip(samples)
        .map(|(ids, s)| Example {
            ids,
            label: s.label,
        })
        .collect())
}

/// Every sample with its augmented copies, encoded.
fn encode_groups(
    scorer: &Scorer,
    template: Template,
    samples: &[Sample],
    cfg: &AugmentConfig,
) -> Result<Vec<Group>> {
    let mut prompts = Vec::new();
    let mut plan = Vec::new();
    for s in samples {
        let copies = augment(s, cfg)?;
        for c in &copies {
            prompts.push(render(template, s, &c.variant, &cfg.attributes)?);
        }
        plan.push(copies);
    }
    let mut ids = scorer.encode(&prompts)?.into_iter();
    let mut out = Vec::with_capacity(samples.len());
    for (s, copies) in samples.iter().zip(plan) {
        let mut g = Group {
            stated: Vec::new(),
            neutral: None,
            label: s.label,
        };
        for c in copies {
            let x = ids.next().context("one encoding per prompt")?;
            if c.variant == Variant::Neutral {
                g.neutral = Some(x);
            } else {
                g.stated.push(Copy {
                    ids: x,
                    kind: c.kind.to_string(),
                });
            }
        }
        out.push(g);
    }
    Ok(out)
}

/// The scenario's attributes: `--attributes` (checked against the dataset's, sorted) or
/// all the dataset's.
pub fn scenario(manifest: &Manifest, asked: Option<&[String]>, data: &Path) -> Result<Vec<String>> {
    let available = manifest.attributes();
    Ok(match asked {
        Some(v) => {
            if let Some(bad) = v.iter().find(|x| !available.contains(x)) {
                bail!(
                    "--attributes: `{bad}` is not an attribute of {} (it has {})",
                    data.display(),
                    available.join(", ")
                );
            }
            let mut v = v.to_vec();
            v.sort();
            v.dedup();
            v
        }
        None => available,
    })
}

fn new_spec(a: &TrainArgs, manifest: &Manifest) -> Result<RunSpec> {
    let attributes = scenario(manifest, a.attributes.as_deref(), &a.data)?;
    let mut train = a.config(attributes.len())?;
    if train.needs_stereotype() {
        crate::train_paper_b::settle(&mut train, &attributes, manifest)?;
    }
    let copies = train.method.copies();
    let augment = train.method.is_paper_a().then(|| AugmentConfig {
        protocol: manifest.protocol,
        attributes: attributes.clone(),
        counterfactual: copies.counterfactual,
        neutral: copies.neutral,
        auxiliary: if copies.auxiliary {
            a.auxiliary(&attributes)
        } else {
            Vec::new()
        },
        aux_values: a.aux_values,
    });
    if train.method.is_paper_a() && attributes.is_empty() {
        bail!(
            "--method {} needs a sensitive attribute",
            train.method.name()
        );
    }
    let default_template = match train.method {
        Method::InsTuning => Template::InsTuning,
        _ => Template::default_for(manifest.protocol),
    };
    Ok(RunSpec {
        train,
        template: a.template.unwrap_or(default_template),
        chat: !a.model.no_chat,
        answer_space: a.model.answer_space.clone(),
        limit_train: a.limit_train,
        limit_valid: a.limit_valid,
        attributes,
        augment,
    })
}

fn remove_previous(out: &Path) -> Result<()> {
    let ck = fairrec_train::trainer::checkpoint_dir(out);
    for p in [
        fairrec_core::fs::previous_dir(&ck),
        ck,
        fairrec_train::trainer::log_path(out),
        out.join("summary.json"),
    ] {
        if p.is_dir() {
            std::fs::remove_dir_all(&p)?;
        } else if p.exists() {
            std::fs::remove_file(&p)?;
        }
    }
    Ok(())
}

pub fn run(a: &TrainArgs) -> Result<()> {
    let spec_path = a.out.join("train_config.json");
    if a.force && !a.resume {
        remove_previous(&a.out)?;
    }
    let manifest = read_manifest(&a.data)?;
    let spec = if a.resume {
        let text = std::fs::read_to_string(&spec_path)
            .with_context(|| format!("--resume: reading {}", spec_path.display()))?;
        let spec: RunSpec = serde_json::from_str(&text)
            .with_context(|| format!("--resume: {}", spec_path.display()))?;
        if spec.train != a.config(spec.attributes.len())? {
            tracing::warn!(
                "--resume continues with the configuration saved in {}, not the flags given",
                spec_path.display()
            );
        }
        spec
    } else {
        new_spec(a, &manifest)?
    };
    let cfg = &spec.train;
    let margs = ModelArgs {
        no_chat: !spec.chat,
        answer_space: spec.answer_space.clone(),
        ..a.model.clone()
    };
    let mut loaded = margs.load()?;
    let tuning = method::setup_model(&mut loaded.model, &loaded.tokenizer, cfg)?;
    let scorer = Scorer::new(
        &loaded.model,
        &loaded.tokenizer,
        margs.format(),
        margs.space()?,
    )?;
    let train_samples = samples(&a.data, "train", spec.limit_train)?;
    let valid = encode(
        &scorer,
        spec.template,
        &samples(&a.data, "valid", spec.limit_valid)?,
        &spec.attributes,
    )?;
    let answer = AnswerLoss { scorer: &scorer };
    let ctx = Ctx {
        a,
        spec: &spec,
        manifest: &manifest,
        tuning: &tuning,
        scorer: &scorer,
        valid: &valid,
        save: &|dir: &Path| {
            method::save_model(
                &tuning,
                &loaded.model,
                &loaded.tokenizer,
                &a.model.model.display().to_string(),
                dir,
            )
        },
    };
    if let Tuning::Mos(mixture) = &tuning {
        let mc = &mixture.cfg;
        let train_split = read_split(&a.data, "train")?;
        let items = crate::train_paper_b::groups_of(&train_split, &mc.attribute, mc.z_threshold);
        let train_set =
            crate::train_paper_b::encode(&scorer, spec.template, &train_samples, mc, &items)?;
        let mut objective = fairrec_train::mos::MosLoss::new(answer, mixture, cfg.mos.weights);
        objective.valid = crate::train_paper_b::encode(
            &scorer,
            spec.template,
            &samples(&a.data, "valid", spec.limit_valid)?,
            mc,
            &items,
        )?;
        let n = train_set.len();
        return fit(&ctx, &objective, &train_set, n);
    }
    if cfg.method == Method::IFairLrs {
        let train_split = read_split(&a.data, "train")?;
        let st = &cfg.stereotype;
        let items = crate::train_paper_b::groups_of(&train_split, &st.attribute, st.z_threshold);
        let train_set = encode(&scorer, spec.template, &train_samples, &spec.attributes)?;
        let weights = crate::train_paper_b::ifairlrs_weights(&train_samples, &items);
        let (lo, hi) = weights
            .iter()
            .fold((f64::INFINITY, 0f64), |(l, h), &w| (l.min(w), h.max(w)));
        say!(
            "IFairLRS sample weights over {} samples: min {lo:.3}, max {hi:.3}, mean 1",
            weights.len()
        );
        let train_set: Vec<_> = train_set
            .into_iter()
            .zip(weights)
            .map(|(example, weight)| fairrec_train::ifairlrs::WeightedExample { example, weight })
            .collect();
        let n = train_set.len();
        return fit(
            &ctx,
            &fairrec_train::ifairlrs::WeightedLoss { answer },
            &train_set,
            n,
        );
    }
    if cfg.method == Method::Up5 {
        let st = &cfg.stereotype;
        let examples = encode(&scorer, spec.template, &train_samples, &spec.attributes)?;
        let train_set = examples
            .into_iter()
            .zip(&train_samples)
            .map(|(example, s)| {
                let value = s.attributes.get(&st.attribute);
                let group = st
                    .groups
                    .iter()
                    .position(|g| Some(g) == value)
                    .ok_or_else(|| {
                        anyhow::anyhow!(
                            "sample {}: no `{}` value among {}",
                            s.sample_id,
                            st.attribute,
                            st.groups.join(", ")
                        )
                    })?;
                Ok(fairrec_train::up5::Up5Example { example, group })
            })
            .collect::<Result<Vec<_>>>()?;
        let hidden = scorer.backbone.host().hidden_size();
        let objective = fairrec_train::up5::Up5Loss::new(
            answer,
            cfg.adversary_weight,
            st.groups.len(),
            hidden,
            cfg.seed,
        )?;
        let n = train_set.len();
        return fit(&ctx, &objective, &train_set, n);
    }
    if cfg.method == Method::FairLlm {
        // Explicit setting (the true value stated) against implicit (no profile).
        let sensitive = encode(&scorer, spec.template, &train_samples, &spec.attributes)?;
        let neutral = encode_variant(
            &scorer,
            spec.template,
            &train_samples,
            &Variant::Neutral,
            &spec.attributes,
        )?;
        let pairs: Vec<_> = sensitive
            .into_iter()
            .zip(neutral)
            .map(|(sensitive, neutral)| fairrec_train::fairllm::PairExample { sensitive, neutral })
            .collect();
        let objective = fairrec_train::fairllm::FairLlmLoss::new(answer, cfg.divergence_weight);
        return fit(&ctx, &objective, &pairs, 2 * pairs.len());
    }
    if cfg.fairness_weight > 0.0 {
        // A conventional paradigm on paper B's objective (NTP + lambda_f * Eq. 13).
        let train_split = read_split(&a.data, "train")?;
        let st = &cfg.stereotype;
        let items = crate::train_paper_b::groups_of(&train_split, &st.attribute, st.z_threshold);
        let examples = encode(&scorer, spec.template, &train_samples, &spec.attributes)?;
        let train_set = crate::train_paper_b::with_stereo(examples, &train_samples, cfg, &items)?;
        let objective =
            fairrec_train::stereo::StereoLoss::new(answer, cfg.fairness_weight, st.groups.len());
        let n = train_set.len();
        return fit(&ctx, &objective, &train_set, n);
    }
    match &spec.augment {
        Some(aug) => {
            let groups = encode_groups(&scorer, spec.template, &train_samples, aug)?;
            let adapters = match &tuning {
                Tuning::Adapters(s) => Some(s),
                _ => None,
            };
            let objective = FairLoss::new(answer, cfg.objective.clone(), adapters);
            let copies = groups
                .iter()
                .map(|g| g.stated.len() + usize::from(g.neutral.is_some()))
                .sum::<usize>();
            fit(&ctx, &objective, &groups, copies)
        }
        None => {
            let train_set = encode(&scorer, spec.template, &train_samples, &spec.attributes)?;
            let n = train_set.len();
            fit(&ctx, &answer, &train_set, n)
        }
    }
}

/// What [`fit`] needs from `run`.
struct Ctx<'a> {
    a: &'a TrainArgs,
    spec: &'a RunSpec,
    manifest: &'a Manifest,
    tuning: &'a Tuning,
    scorer: &'a Scorer<'a>,
    valid: &'a [Example],
    save: &'a dyn Fn(&Path) -> fairrec_train::Result<()>,
}

/// Write the run's records, validate before training, train with a progress bar, write
/// `summary.json`. `copies`: the number of prompts trained on per epoch.
fn fit<O: Objective>(c: &Ctx, objective: &O, train_set: &[O::Item], copies: usize) -> Result<()> {
    let (a, spec, cfg) = (c.a, c.spec, &c.spec.train);
    let spec_path = a.out.join("train_config.json");
    std::fs::create_dir_all(&a.out)?;
    let base_parameters = c.scorer.backbone.parameters();
    if !a.resume {
        write_atomic(
            &spec_path,
            (serde_json::to_string_pretty(spec)? + "\n").as_bytes(),
        )?;
        let tok = c.scorer.tok;
        let run = serde_json::json!({
            "command": "train", "method": cfg.method.name(), "model": a.model.model,
            "data": a.data, "data_hash": c.manifest.data_hash(), "seed": cfg.seed,
            "attributes": spec.attributes, "template": spec.template.name(), "format": a.model.format(),
            "answer_tokens": [tok.decode(&[c.scorer.yes])?, tok.decode(&[c.scorer.no])?],
            "train_samples": train_set.len(), "train_prompts": copies, "valid_examples": c.valid.len(),
            "trainable_parameters": c.tuning.parameters(), "base_parameters": base_parameters,
            "git_revision": crate::git_revision(), "fingerprint": cfg.fingerprint(),
        });
        write_atomic(
            &a.out.join("run.json"),
            (serde_json::to_string_pretty(&run)? + "\n").as_bytes(),
        )?;
    }
    say!(
        "{} on {} [{}]: {} train samples ({} prompts) / {} valid, {} trainable parameters ({:.3}% of {})",
        cfg.method.name(),
        a.model.model.display(),
        spec.attributes.join(", "),
        train_set.len(),
        copies,
        c.valid.len(),
        c.tuning.parameters(),
        100.0 * c.tuning.parameters() as f64 / base_parameters as f64,
        base_parameters
    );
    let before = if cfg.eval && !a.no_eval_before && !a.resume && !c.valid.is_empty() {
        let p = match objective.predict_valid(c.valid, cfg.batch_size * 2) {
            Some(p) => p?,
            None => predict(c.scorer, Some(c.tuning), c.valid, cfg.batch_size * 2)?,
        };
        let e = evaluate(&p, c.valid, None);
        say!("valid before training: AUC {} F1 {}", fmt(e.auc), fmt(e.f1));
        Some(e)
    } else {
        None
    };
    let summary = run_loop(c, objective, train_set)?;
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

fn run_loop<O: Objective>(c: &Ctx, objective: &O, train_set: &[O::Item]) -> Result<Summary> {
    let bar = crate::progress_bar(
        0,
        "{bar:40} {pos}/{len} steps {msg} [{elapsed_precise} < {eta_precise}]",
    );
    let summary = train(
        Run {
            cfg: &c.spec.train,
            dir: &c.a.out,
            tuning: c.tuning,
            objective,
            train: train_set,
            valid: c.valid,
            scorer: c.scorer,
            save: c.save,
            resume: c.a.resume,
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
                    grad_norm = s.grad_norm,
                    extra = ?s.extra
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
    Ok(summary)
}

fn fmt(x: Option<f64>) -> String {
    x.map_or("undefined".into(), |v| format!("{v:.4}"))
}
