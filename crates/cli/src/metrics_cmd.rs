//! `fairrec metrics`: audit any model's predictions.

use anyhow::{Context as _, Result};
use clap::Args;
use fairrec_core::stage::Staged;
use fairrec_data::raw::sha256_hex;
use fairrec_data::sample::write_atomic;
use fairrec_metrics::join::audit_file;
use fairrec_metrics::lists::{list_fairness, parse_lists};
use fairrec_metrics::report::{blocks, html, list_blocks, markdown, Block, Provenance};
use fairrec_metrics::stereotype::{StereotypeConfig, ZThreshold};
use fairrec_metrics::{AuditConfig, Inputs, MetricsFile};
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct MetricsArgs {
    /// Predictions JSONL: {"sample_id", "variant", "label", "p_yes"} per scored prompt.
    #[arg(long, required_unless_present = "lists")]
    pub predictions: Option<PathBuf>,
    /// Ranked lists JSONL for FaiRLLM's metrics: {"instruction_id", "variant", "items"}.
    #[arg(long)]
    pub lists: Option<PathBuf>,
    /// Cut-off K of FaiRLLM's list metrics.
    #[arg(long, default_value_t = 20)]
    pub k: usize,
    /// Prepared dataset the predictions are of (joins users, attributes, items; enables the
    /// stereotype section).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// With --data: audit predictions whose sample is not in the dataset as they are (without it, any such prediction is an error naming its line).
    #[arg(long)]
    pub allow_partial: bool,
    /// P(Yes) at or above this is a Yes.
    #[arg(long, default_value_t = 0.5)]
    pub threshold: f64,
    /// Bootstrap resamples for the intervals (0: none).
    #[arg(long, default_value_t = 200)]
    pub bootstrap: usize,
    /// Seed of the bootstrap.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Confidence level of the intervals.
    #[arg(long, default_value_t = 0.95)]
    pub confidence: f64,
    /// Stereotype groups: an item belongs to group s when its degree's z-score exceeds this, or `auto` (the largest of 3, 2.5, 2, 1.5, 1, 0.5 leaving every group 20 items; `fairrec data stereotypes` shows them).
    #[arg(long, default_value = "auto")]
    pub z_threshold: ZThreshold,
    /// Stereotype degrees from raw interaction counts instead of rates per group size.
    #[arg(long)]
    pub raw_counts: bool,
    /// Output directory (metrics.json, metrics.csv, report.md, report.html).
    #[arg(long)]
    pub out: PathBuf,
    /// Replace the reports already in --out.
    #[arg(long)]
    pub force: bool,
}

pub fn run(a: &MetricsArgs) -> Result<()> {
    let _lock = fairrec_core::fs::RunLock::acquire(&a.out, "fairrec metrics")?;
    let old = fairrec_core::fs::claim_output(&a.out, fairrec_metrics::file::OUTPUTS, a.force)?;
    let set = Staged::begin(&a.out, old)?;
    run_with(a, Vec::new(), &set)?;
    set.commit()?;
    Ok(())
}

/// `run` with `extra` blocks at the end of the report, writing into the output set `set`
/// of `a.out` (inputs already staged in it, such as an audit's predictions, are read
/// from there); the caller commits it.
pub fn run_with(a: &MetricsArgs, extra: Vec<Block>, set: &Staged) -> Result<()> {
    let t0 = std::time::Instant::now();
    let cfg = audit_config(a)?;
    let audit = match &a.predictions {
        Some(path) => Some(audit_predictions(a, &cfg, path, set)?),
        None => None,
    };
    let lists = match &a.lists {
        Some(path) => {
            settle_beside(path)?;
            let bytes = std::fs::read(set.resolve(path))
                .with_context(|| format!("reading {}", path.display()))?;
            let text = std::str::from_utf8(&bytes)
                .with_context(|| format!("{} is not UTF-8", path.display()))?;
            let l = parse_lists(path, text)?;
            Some((
                list_fairness(&l, a.k, a.bootstrap, a.seed, a.confidence)?,
                path.display().to_string(),
                sha256_hex(&bytes),
            ))
        }
        None => None,
    };
    let mut doc = match &audit {
        Some((m, prov)) => blocks(m, prov),
        None => vec![Block::Heading(1, "fairrec audit report".into())],
    };
    if let Some((lf, path, _)) = &lists {
        list_blocks(lf, path, &mut doc);
    }
    doc.extend(extra);
    let file = MetricsFile {
        metrics: audit.as_ref().map(|(m, _)| m.clone()),
        inputs: Inputs {
            predictions: audit.as_ref().map(|(_, p)| p.predictions.clone()),
            predictions_sha256: audit.as_ref().map(|(_, p)| p.predictions_sha256.clone()),
            data: a.data.as_ref().map(|d| d.display().to_string()),
            lists: lists.as_ref().map(|l| l.1.clone()),
            lists_sha256: lists.as_ref().map(|l| l.2.clone()),
            git_revision: crate::git_revision(),
        },
        fairllm: lists.as_ref().map(|l| l.0.clone()),
    };
    file.write(&set.path("metrics.json"))?;
    if let Some(m) = &file.metrics {
        write_atomic(&set.path("metrics.csv"), m.to_long_csv().as_bytes())?;
    }
    write_atomic(&set.path("report.md"), markdown(&doc).as_bytes())?;
    write_atomic(
        &set.path("report.html"),
        html(&doc, "fairrec audit report", "`metrics.json`").as_bytes(),
    )?;
    let summary = audit
        .as_ref()
        .map(|(m, _)| m.console_lines())
        .unwrap_or_default();
    let list_lines = lists
        .as_ref()
        .map(|(lf, _, _)| lf.console_lines())
        .unwrap_or_default();
    for line in summary.iter().chain(&list_lines) {
        say!("{line}");
    }
    say!(
        "done in {:.2}s; report: {}",
        t0.elapsed().as_secs_f64(),
        a.out.join("report.html").display()
    );
    Ok(())
}

/// The audit settings of `a`, checked (before any work is done).
pub fn audit_config(a: &MetricsArgs) -> Result<AuditConfig> {
    let cfg = AuditConfig {
        threshold: a.threshold,
        bootstrap: a.bootstrap,
        seed: a.seed,
        confidence: a.confidence,
        stereotype: StereotypeConfig {
            z_threshold: a.z_threshold,
            normalize: !a.raw_counts,
        },
    };
    cfg.validate()
        .context("--threshold, --confidence or --z-threshold")?;
    Ok(cfg)
}

fn audit_predictions(
    a: &MetricsArgs,
    cfg: &AuditConfig,
    path: &std::path::Path,
    set: &Staged,
) -> Result<(fairrec_metrics::Metrics, Provenance)> {
    settle_beside(path)?;
    let bytes =
        std::fs::read(set.resolve(path)).with_context(|| format!("reading {}", path.display()))?;
    let (m, unjoined) = audit_file(path, &bytes, a.data.as_deref(), a.allow_partial, cfg)?;
    if let (true, Some(dir)) = (unjoined > 0, &a.data) {
        tracing::warn!(
            "{unjoined} predictions have no sample in {} (--allow-partial)",
            dir.display()
        );
    }
    let prov = Provenance {
        predictions: path.display().to_string(),
        predictions_sha256: sha256_hex(&bytes),
        data: a.data.as_ref().map(|d| d.display().to_string()),
        git_revision: crate::git_revision(),
    };
    Ok((m, prov))
}

/// Complete an output set committed beside `path` by a run killed before it finished
/// (an audit's predictions are then read with the report they belong to).
fn settle_beside(path: &std::path::Path) -> Result<()> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
    let dir = dir.unwrap_or(std::path::Path::new("."));
    fairrec_core::stage::settle(dir, false).with_context(|| format!("settling {}", dir.display()))
}
