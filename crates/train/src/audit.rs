//! Scoring a prepared split for an audit: every sample in every prompt variant, each
//! distinct prompt once, in length buckets ([`fairrec_lm::batch`]); with a MoS adapter,
//! each sample's mixed soft prompt in front of every variant of it
//! ([`crate::methods::mos::sample_prompts`]). The predictions are what
//! `fairrec_metrics::audit` reads.

use crate::encode::samples as read_samples;
use crate::error::Result;
use fairrec_core::Variant;
use fairrec_data::prompt::{render, Template};
use fairrec_data::sample::Sample;
use fairrec_lm::batch::{BatchSize, ScoreEvent, Scored};
use fairrec_lm::score::PromptFormat;
use fairrec_lm::score::Scorer;
use fairrec_lm::tuning::Tuning;
use fairrec_metrics::predictions::Prediction;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// What to score.
pub struct AuditPlan<'a> {
    /// The prepared dataset (its train split defines MoS's stereotype groups).
    pub data: &'a Path,
    pub samples: &'a [Sample],
    pub variants: &'a [Variant],
    pub template: Template,
    /// The scenario's sensitive attributes.
    pub scenario: &'a [String],
    /// Prompts per forward pass (`auto`: sized from the device's free memory).
    pub batch: BatchSize,
    /// `--cot generate`: the model writes its reasoning first ([`crate::cot`]).
    pub cot: Option<&'a crate::cot::CotRun>,
}

/// Score every sample of `plan` in every variant with `scorer` (and the trained `tuning`
/// already attached to its model, if any): one prediction per (sample, variant), in that
/// order.
pub fn score_variants(
    scorer: &Scorer,
    tuning: Option<&Tuning>,
    plan: &AuditPlan,
    on: &mut dyn FnMut(ScoreEvent),
) -> Result<(Vec<Prediction>, AuditScores)> {
    let (prompts, jobs) = audit_prompts(plan)?;
    let name = |k: usize| {
        let (i, v) = jobs[k];
        format!("sample {} ({v})", plan.samples[i].sample_id)
    };
    let ids = scorer.encode(&prompts).map_err(|e| e.name_prompt(name))?;
    let model = scorer.backbone;
    let batch = plan.batch.resolve(
        model.device(),
        model.host().hidden_size(),
        ids.iter().map(Vec::len).max().unwrap_or(1),
        model.dtype().size_in_bytes(),
    );
    let (ids, reasoning) = match plan.cot {
        Some(_) if matches!(tuning, Some(Tuning::Mos(_))) => {
            return Err(crate::TrainError::Input(
                "--cot generate: a MoS adapter's mixed prompts are not used in generation; audit MoS without it".into(),
            ))
        }
        Some(run) => {
            let (full, r) = crate::cot::reason(scorer, &ids, run, batch)?;
            (full, Some(r))
        }
        None => (ids, None),
    };
    let (prefixes, routes) = match tuning {
        Some(Tuning::Mos(m)) => {
            let (prompts, routes) = crate::methods::mos::sample_prompts(
                scorer,
                plan.template,
                plan.samples,
                m,
                &read_samples(plan.data, "train", None)?,
                batch,
            )?;
            (Some(prompts), Some(routes))
        }
        _ => (None, None),
    };
    // A variant that states what the original prompt states (`gender=female` for a female
    // user) is the same prompt, with the same soft prompt: it is scored once.
    let rows: Vec<usize> = jobs.iter().map(|j| j.0).collect();
    let scored = scorer
        .score_all(&ids, &rows, prefixes.as_ref(), batch, on)
        .map_err(|e| e.name_prompt(name))?;
    let predictions = audit_predictions(plan, &jobs, &scored.p_yes, None);
    Ok((
        predictions,
        AuditScores {
            scored,
            mos_routes: routes,
            reasoning,
        },
    ))
}

/// The variants `fairrec audit --variants` names (separated by `;`), or, for `None` or
/// `all`, every variant of the scenario ([`fairrec_data::prompt::audit_variants`]). The
/// metrics compare with the original and the neutral prompts, so a list without them is
/// refused before any scoring.
pub fn audit_variants_of(
    spec: Option<&str>,
    protocol: fairrec_data::protocol::Protocol,
    scenario: &[String],
) -> Result<Vec<Variant>> {
    let variants: Vec<Variant> = match spec.filter(|v| v.trim() != "all") {
        Some(v) => v
            .split(';')
            .map(|s| {
                s.trim()
                    .parse()
                    .map_err(|e| crate::TrainError::Input(format!("--variants: `{s}`: {e}")))
            })
            .collect::<Result<_>>()?,
        None => fairrec_data::prompt::audit_variants(protocol, scenario)?,
    };
    for need in [Variant::Original, Variant::Neutral] {
        if !variants.contains(&need) {
            return Err(crate::TrainError::Input(format!(
                "--variants: the audit's metrics need the `{need}` variant; add it"
            )));
        }
    }
    Ok(variants)
}

/// Each prompt's sample (an index into the plan's samples) and variant.
pub type Jobs<'a> = Vec<(usize, &'a Variant)>;

/// Every (sample, variant) prompt of `plan`, sample-major, with its sample's index and
/// variant.
pub fn audit_prompts<'a>(plan: &AuditPlan<'a>) -> Result<(Vec<String>, Jobs<'a>)> {
    let mut prompts = Vec::new();
    let mut jobs = Vec::new();
    for (i, s) in plan.samples.iter().enumerate() {
        for v in plan.variants {
            prompts.push(render(plan.template, s, v, plan.scenario)?);
            jobs.push((i, v));
        }
    }
    Ok((prompts, jobs))
}

/// The predictions of [`audit_prompts`]' `jobs` given each one's P(Yes) (and, from a
/// served model, whether it is censored).
pub fn audit_predictions(
    plan: &AuditPlan,
    jobs: &[(usize, &Variant)],
    p_yes: &[f64],
    censored: Option<&[bool]>,
) -> Vec<Prediction> {
    jobs.iter()
        .zip(p_yes)
        .enumerate()
        .map(|(k, (&(i, v), &p_yes))| {
            let s = &plan.samples[i];
            Prediction {
                sample_id: s.sample_id.clone(),
                variant: v.clone(),
                label: s.label,
                p_yes,
                attributes: Some(s.attributes.clone()),
                user_id: Some(s.user_id.clone()),
                target: None,
                history: None,
                censored: censored.is_some_and(|c| c[k]),
            }
        })
        .collect()
}

/// What scoring took, and MoS's expert usage per group.
pub struct AuditScores {
    pub scored: Scored,
    /// Group -> the mean routed probability of each expert over the samples (MoS only).
    pub mos_routes: Option<BTreeMap<String, Vec<f64>>>,
    /// `--cot generate`: each distinct prompt's reasoning.
    pub reasoning: Option<Vec<crate::cot::Reasoning>>,
}

/// The files `fairrec audit` writes into its directory (besides a served audit's response
/// cache, which a rerun reuses).
pub const OUTPUTS: fairrec_core::fs::Outputs<'static> = fairrec_core::fs::Outputs {
    what: "an audit",
    files: &[
        "predictions.jsonl",
        "run.json",
        "metrics.json",
        "metrics.csv",
        "report.md",
        "report.html",
    ],
    whole_dir: false,
};

/// `run.json` of an audit.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AuditRecord {
    pub command: String,
    pub model: PathBuf,
    pub adapter: Option<PathBuf>,
    pub data: PathBuf,
    pub data_hash: String,
    pub split: String,
    pub limit: Option<usize>,
    pub attributes: Vec<String>,
    pub template: String,
    pub format: PromptFormat,
    /// The Yes and No tokens as the tokenizer decodes them.
    pub answer_tokens: [String; 2],
    pub variants: Vec<String>,
    /// Prompts per forward pass: the number scoring ended with (`auto` resolved, halved
    /// after running out of device memory; 0 for a served model, asked prompt by prompt).
    pub batch_size: usize,
    pub seed: u64,
    /// Prompts in the predictions (samples x variants).
    pub prompts: usize,
    /// Prompts scored (the others equal one of these; absent from audits before
    /// 2026-12-01, which scored every prompt: 0).
    #[serde(default)]
    pub distinct_prompts: usize,
    pub tokens: usize,
    pub scoring_seconds: f64,
    pub git_revision: Option<String>,
    /// MoS: group -> the mean routed probability of each expert over the samples.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mos_routes: Option<BTreeMap<String, Vec<f64>>>,
    /// A served model (`--endpoint`): where and how it was asked, and what it cost
    /// (`fairrec_serve::audit::Served`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub served: Option<serde_json::Value>,
    /// Where the local model ran: `device` (`cpu`, `cuda:N`), `dtype`, and on a GPU its
    /// name, driver and CUDA versions (absent for a served model and before 2026-12-05).
    #[serde(flatten)]
    pub placement: Option<fairrec_lm::device::Placement>,
    /// `--cot generate`: how the reasoning was generated and how much of it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cot: Option<CotRecord>,
}

/// `run.json`'s account of `--cot generate`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CotRecord {
    pub settings: crate::cot::CotGenerate,
    /// Distinct prompts with reasoning (in `generations.jsonl`).
    pub reasoning: usize,
    /// Of those, the reasoning that ended at EOS or a stop string (the others ran out of
    /// `max_new_tokens`).
    pub stopped: usize,
}
