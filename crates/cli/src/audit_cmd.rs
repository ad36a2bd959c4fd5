//! `fairrec audit`: score every prompt variant of a prepared split with a model, write the
//! predictions, and audit them (the same report as `fairrec metrics`).

use crate::endpoint::{connect, EndpointArgs};
use crate::metrics_cmd::{self, MetricsArgs};
use crate::model_args::{load_with_adapter, ModelArgs};
use anyhow::{bail, Context as _, Result};
use clap::Args;
use fairrec_data::pipeline::read_manifest;
use fairrec_data::prompt::Template;
use fairrec_data::sample::write_atomic;
use fairrec_lm::batch::ScoreEvent;
use fairrec_metrics::predictions::to_jsonl;
use fairrec_metrics::stereotype::ZThreshold;
use fairrec_serve::audit::{score_remote, served_record};
use fairrec_train::audit::{audit_variants_of, score_variants, AuditPlan, AuditRecord, CotRecord};
use fairrec_train::cot::{CotGenerate, CotRun};
use fairrec_train::encode::{samples, scenario};
use fairrec_train::methods::stereo::audit_grouping;
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct AuditArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub remote: EndpointArgs,
    /// An adapter directory (LoRA, prompt tuning or MoS, e.g. a training run's `adapter/`).
    #[arg(long)]
    pub adapter: Option<PathBuf>,
    /// A prepared dataset (`fairrec data prepare`).
    #[arg(long)]
    pub data: PathBuf,
    /// Prompt template [default: llm-rec for cl-moe, sequential for mos].
    #[arg(long)]
    pub template: Option<Template>,
    /// Sensitive attributes of the scenario, comma-separated [default: all the dataset's].
    #[arg(long, value_delimiter = ',')]
    pub attributes: Option<Vec<String>>,
    /// Split to score.
    #[arg(long, default_value = "test")]
    pub split: String,
    /// Score only the first N samples of the split.
    #[arg(long)]
    pub limit: Option<usize>,
    /// Variants to score, separated by `;`, or `all` [default: all = original, neutral, every value and joint value].
    #[arg(long)]
    pub variants: Option<String>,
    /// Prompts per forward pass, or auto (sized from the GPU's free memory, 8 on the CPU); halved whenever the device runs out of memory.
    #[arg(long, default_value = "auto")]
    pub batch_size: fairrec_lm::batch::BatchSize,
    /// P(Yes) at or above this is a Yes.
    #[arg(long, default_value_t = 0.5)]
    pub threshold: f64,
    /// Bootstrap resamples for the intervals.
    #[arg(long, default_value_t = 200)]
    pub bootstrap: usize,
    /// Paper B: stereotype z-score above which an item belongs to a stereotype group, or `auto` [default: the one the adapter (or model) was trained with, recorded in its `fairrec_stereotype.json`; else auto].
    #[arg(long)]
    pub z_threshold: Option<ZThreshold>,
    /// Paper B: stereotype degrees from raw interaction counts instead of rates per group size [default: as the adapter was trained].
    #[arg(long)]
    pub raw_counts: bool,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    #[command(flatten)]
    pub cot: CotArgs,
    /// Output directory (predictions.jsonl, run.json, metrics.json, metrics.csv, report.md, report.html).
    #[arg(long)]
    pub out: PathBuf,
    /// Replace an audit already in --out (a served audit's response cache is kept).
    #[arg(long)]
    pub force: bool,
}

/// Paper A's CoT with real reasoning ([`fairrec_train::cot`]).
#[derive(Args, Debug)]
pub struct CotArgs {
    /// With --template cot: `generate` lets the model write its reasoning first (kept in OUT/generations.jsonl, reused by a rerun) and reads P(Yes) after it; `none` reads P(Yes) right after the prompt.
    #[arg(long, default_value = "none", value_parser = ["none", "generate"])]
    pub cot: String,
    /// With --cot generate: tokens of reasoning at most.
    #[arg(long, default_value_t = 256)]
    pub max_new_tokens: usize,
    /// With --cot generate: 0 is greedy; otherwise the sampling temperature (seeded by --seed).
    #[arg(long, default_value_t = 0.0)]
    pub cot_temperature: f64,
    /// With --cot generate: nucleus sampling's probability mass.
    #[arg(long, default_value_t = 1.0)]
    pub cot_top_p: f64,
    /// With --cot generate: a string that ends the reasoning (repeatable).
    #[arg(long)]
    pub cot_stop: Vec<String>,
}

impl CotArgs {
    /// The audit's reasoning, if asked for (settings checked; cache keyed by the model too).
    fn open(&self, a: &AuditArgs, template: Template) -> Result<Option<CotRun>> {
        if self.cot == "none" {
            return Ok(None);
        }
        let c = CotGenerate {
            max_new_tokens: self.max_new_tokens,
            temperature: self.cot_temperature,
            top_p: self.cot_top_p,
            stop: self.cot_stop.clone(),
            seed: a.seed,
        };
        let c = c.checked(template, a.remote.server.endpoint.is_some())?;
        let (m, place) = (&a.model, format!("{} {}", a.model.device, a.model.dtype));
        Ok(Some(CotRun::open(
            c,
            &a.out,
            m.path()?,
            a.adapter.as_deref(),
            &place,
        )?))
    }
}

pub fn run(a: &AuditArgs) -> Result<()> {
    let t0 = std::time::Instant::now();
    let _lock = fairrec_core::fs::RunLock::acquire(&a.out, "fairrec audit")?;
    let (z_threshold, normalize) = stereotype_grouping(a)?;
    let margs = MetricsArgs {
        predictions: Some(a.out.join("predictions.jsonl")),
        lists: None,
        k: 20,
        data: Some(a.data.clone()),
        allow_partial: false,
        threshold: a.threshold,
        bootstrap: a.bootstrap,
        seed: a.seed,
        confidence: 0.95,
        z_threshold,
        raw_counts: !normalize,
        out: a.out.clone(),
        force: a.force,
    };
    // Bad settings and an occupied --out fail before any scoring.
    metrics_cmd::audit_config(&margs)?;
    let old = fairrec_core::fs::claim_output(&a.out, fairrec_train::audit::OUTPUTS, a.force)?;
    let manifest = read_manifest(&a.data)?;
    let samples = samples(&a.data, &a.split, a.limit)?;
    if samples.is_empty() {
        bail!("split `{}` of {} has no samples", a.split, a.data.display());
    }
    let scenario = scenario(&manifest, a.attributes.as_deref(), &a.data)?;
    let template = a
        .template
        .unwrap_or(Template::default_for(manifest.protocol));
    let variants = audit_variants_of(a.variants.as_deref(), manifest.protocol, &scenario)?;
    let cot = a.cot.open(a, template)?;
    let plan = AuditPlan {
        data: &a.data,
        samples: &samples,
        variants: &variants,
        template,
        scenario: &scenario,
        batch: a.batch_size,
        cot: cot.as_ref(),
    };
    let what = format!("{} samples x {} variants", samples.len(), variants.len());
    let s = match a.remote.server.endpoint {
        Some(_) => score_served(a, &plan, &what)?,
        None => score_local(a, &plan, &what)?,
    };
    // Predictions, run record, metrics and reports land together, or not at all.
    let set = fairrec_core::stage::Staged::begin(&a.out, old)?;
    write_atomic(&set.path("predictions.jsonl"), &to_jsonl(&s.predictions))?;
    let record = AuditRecord {
        command: "audit".into(),
        model: s.model,
        adapter: a.adapter.clone(),
        data: a.data.clone(),
        data_hash: manifest.data_hash(),
        split: a.split.clone(),
        limit: a.limit,
        attributes: scenario,
        template: template.name().into(),
        format: a.model.format(),
        answer_tokens: s.answer_tokens,
        variants: variants.iter().map(|v| v.to_string()).collect(),
        batch_size: s.batch,
        seed: a.seed,
        prompts: s.predictions.len(),
        distinct_prompts: s.distinct,
        tokens: s.tokens,
        scoring_seconds: s.seconds,
        git_revision: crate::git_revision(),
        mos_routes: s.mos_routes,
        served: s.served,
        placement: s.placement,
        cot: cot.map(|c| CotRecord {
            settings: c.settings,
            reasoning: s.reasoning.as_ref().map_or(0, Vec::len),
            stopped: s
                .reasoning
                .iter()
                .flatten()
                .filter(|r| r.finish == "stop")
                .count(),
        }),
    };
    fairrec_core::fs::write_json(&set.path("run.json"), &record)
        .with_context(|| format!("writing {}", a.out.join("run.json").display()))?;
    say!(
        "scored {} prompts ({} distinct, {} tokens) in {:.1}s ({:.0} tokens/s)",
        s.predictions.len(),
        s.distinct,
        s.tokens,
        s.seconds,
        s.tokens as f64 / s.seconds
    );
    metrics_cmd::run_with(&margs, Vec::new(), &set)?;
    set.commit()?;
    tracing::info!("audit done in {:.1}s", t0.elapsed().as_secs_f64());
    Ok(())
}

/// What scoring gave, local or served.
struct Scoring {
    predictions: Vec<fairrec_metrics::predictions::Prediction>,
    model: PathBuf,
    answer_tokens: [String; 2],
    distinct: usize,
    tokens: usize,
    seconds: f64,
    mos_routes: Option<std::collections::BTreeMap<String, Vec<f64>>>,
    reasoning: Option<Vec<fairrec_train::cot::Reasoning>>,
    served: Option<serde_json::Value>,
    /// Where a local model ran.
    placement: Option<fairrec_lm::device::Placement>,
    /// The batch size scoring ended with (0: a served model, asked prompt by prompt).
    batch: usize,
}

fn score_local(a: &AuditArgs, plan: &AuditPlan, what: &str) -> Result<Scoring> {
    let (loaded, tuning) = load_with_adapter(&a.model, a.adapter.as_deref())?;
    let scorer = a.model.scorer(&loaded)?;
    let bar = crate::progress_bar(
        0,
        "{bar:40} {pos}/{len} prompts {msg} [{elapsed_precise} < {eta_precise}]",
    );
    let (predictions, scores) =
        score_variants(&scorer, tuning.as_ref(), plan, &mut |ev| match ev {
            ScoreEvent::Start { distinct, tokens } => {
                tracing::info!(
                    prompts = distinct,
                    tokens,
                    "scoring {what} ({distinct} distinct prompts) with {}",
                    loaded.path.display()
                );
                bar.set_length(distinct as u64);
            }
            ScoreEvent::Batch {
                prompts,
                tokens_per_s,
            } => {
                bar.inc(prompts as u64);
                bar.set_message(format!("{tokens_per_s:.0} tokens/s"));
            }
        })?;
    bar.finish_and_clear();
    let tok = &loaded.tokenizer;
    let scored = scores.scored;
    Ok(Scoring {
        predictions,
        model: loaded.path.clone(),
        answer_tokens: [tok.decode(&[scorer.yes])?, tok.decode(&[scorer.no])?],
        distinct: scored.distinct,
        tokens: scored.tokens,
        seconds: scored.seconds,
        mos_routes: scores.mos_routes,
        reasoning: scores.reasoning,
        served: None,
        placement: Some(fairrec_lm::device::Placement::of_model(scorer.backbone)),
        batch: scored.batch,
    })
}

/// Score through `--endpoint`; answers are cached in `OUT/responses.jsonl`, so a rerun of a
/// killed audit sends only what was not answered.
fn score_served(a: &AuditArgs, plan: &AuditPlan, what: &str) -> Result<Scoring> {
    if a.adapter.is_some() {
        bail!("--adapter with --endpoint: a served model's adapter is loaded by the server (e.g. `fairrec serve --adapter DIR`)");
    }
    let t0 = std::time::Instant::now();
    let cache = a.out.join("responses.jsonl");
    let (client, template) = connect(&a.remote, &a.model, a.seed, Some(&cache))?;
    tracing::info!(
        "scoring {what} with `{}` at {}",
        client.cfg.model,
        client.url()
    );
    let bar = crate::progress_bar(
        0,
        "{bar:40} {pos}/{len} prompts {per_sec} [{elapsed_precise} < {eta_precise}]",
    );
    let (predictions, traffic, distinct) =
        score_remote(&client, template.as_ref(), plan, &|done, total| {
            bar.set_length(total as u64);
            bar.set_position(done as u64);
        })?;
    bar.finish_and_clear();
    if traffic.censored > 0 {
        tracing::warn!(
            "{} of {distinct} distinct prompts are censored: an answer token was not among the {} alternatives listed",
            traffic.censored,
            a.remote.top_logprobs
        );
    }
    let tokens = traffic.prompt_tokens as usize;
    let served = served_record(&client, template.is_some(), traffic, distinct);
    Ok(Scoring {
        predictions,
        model: PathBuf::from(&client.cfg.model),
        answer_tokens: served.answers.clone(),
        distinct,
        tokens,
        seconds: t0.elapsed().as_secs_f64(),
        mos_routes: None,
        reasoning: None,
        served: Some(serde_json::to_value(&served)?),
        placement: None,
        batch: 0,
    })
}

/// The item grouping of paper B's figures: the flags, else what the adapter (or a fully
/// fine-tuned model directory) was trained with ([`audit_grouping`]).
fn stereotype_grouping(a: &AuditArgs) -> Result<(ZThreshold, bool)> {
    let dirs = a.adapter.iter().map(PathBuf::as_path);
    let model_dir = a.model.model.as_deref().filter(|p| p.is_dir());
    let (cfg, warning) = audit_grouping(dirs.chain(model_dir), a.z_threshold, a.raw_counts)?;
    if let Some(w) = warning {
        tracing::warn!("{w}");
    }
    Ok((cfg.z_threshold, cfg.normalize))
}
