//! `fairrec metrics`: audit any model's predictions.

use crate::report::{blocks, html, markdown, Provenance};
use anyhow::{Context as _, Result};
use clap::Args;
use fairrec_data::pipeline::{read_manifest, read_split};
use fairrec_data::raw::sha256_hex;
use fairrec_data::sample::{write_atomic, Sample};
use fairrec_metrics::stereotype::{Interactions, StereotypeConfig};
use fairrec_metrics::{audit, parse_predictions, AuditConfig, Context, StereotypeInput};
use std::collections::HashMap;
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct MetricsArgs {
    /// Predictions JSONL: {"sample_id", "variant", "label", "p_yes"} per scored prompt.
    #[arg(long)]
    pub predictions: PathBuf,
    /// Prepared dataset the predictions are of (joins users, attributes, items; enables the
    /// stereotype section).
    #[arg(long)]
    pub data: Option<PathBuf>,
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
    /// Stereotype groups: an item belongs to group s when its degree's z-score exceeds this.
    #[arg(long, default_value_t = 1.0)]
    pub z_threshold: f64,
    /// Stereotype degrees from raw interaction counts instead of rates per group size.
    #[arg(long)]
    pub raw_counts: bool,
    /// Output directory (metrics.json, report.md, report.html).
    #[arg(long)]
    pub out: PathBuf,
}

pub fn run(a: &MetricsArgs) -> Result<()> {
    let t0 = std::time::Instant::now();
    let bytes = std::fs::read(&a.predictions)
        .with_context(|| format!("reading {}", a.predictions.display()))?;
    let text = std::str::from_utf8(&bytes)
        .with_context(|| format!("{} is not UTF-8", a.predictions.display()))?;
    let preds = parse_predictions(&a.predictions, text)?;
    let mut samples: Vec<Sample> = Vec::new();
    let mut attributes = Vec::new();
    if let Some(dir) = &a.data {
        let m = read_manifest(dir)?;
        attributes = m.attributes();
        for split in ["train", "valid", "test"] {
            samples.extend(read_split(dir, split)?);
        }
        tracing::info!(
            samples = samples.len(),
            "joined prepared data from {}",
            dir.display()
        );
    }
    let context: HashMap<String, Context> = samples
        .iter()
        .map(|s| {
            let c = Context {
                user: Some(s.user_id.clone()),
                attributes: s.attributes.clone(),
                target: Some(s.target_id.clone()),
                history: s.history_ids().into_iter().map(str::to_string).collect(),
            };
            (s.sample_id.clone(), c)
        })
        .collect();
    let train_ids: std::collections::HashSet<String> = match &a.data {
        Some(dir) => read_split(dir, "train")?
            .into_iter()
            .map(|s| s.sample_id)
            .collect(),
        None => Default::default(),
    };
    let stereo: Vec<StereotypeInput> = attributes
        .iter()
        .map(|attr| StereotypeInput {
            attribute: attr.clone(),
            train: samples
                .iter()
                .filter(|s| train_ids.contains(&s.sample_id))
                .filter_map(|s| {
                    let group = s.attributes.get(attr)?;
                    let mut items = s.history_ids();
                    items.push(&s.target_id);
                    Some(Interactions {
                        user: &s.user_id,
                        group,
                        items,
                    })
                })
                .collect(),
        })
        .collect();
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
    let m = audit(&preds, &context, &stereo, &cfg)?;
    let prov = Provenance {
        predictions: a.predictions.display().to_string(),
        predictions_sha256: sha256_hex(&bytes),
        data: a.data.as_ref().map(|d| d.display().to_string()),
        git_revision: crate::git_revision(),
    };
    let mut json = serde_json::to_value(&m)?;
    json["inputs"] = serde_json::json!({
        "predictions": prov.predictions, "predictions_sha256": prov.predictions_sha256,
        "data": prov.data, "git_revision": prov.git_revision,
    });
    let doc = blocks(&m, &prov);
    write_atomic(
        &a.out.join("metrics.json"),
        (serde_json::to_string_pretty(&json)? + "\n").as_bytes(),
    )?;
    write_atomic(&a.out.join("report.md"), markdown(&doc).as_bytes())?;
    write_atomic(
        &a.out.join("report.html"),
        html(&doc, "fairrec audit report").as_bytes(),
    )?;
    say!(
        "audited {} predictions in {:.2}s",
        m.n_predictions,
        t0.elapsed().as_secs_f64()
    );
    say!(
        "  original F1 {} / neutral F1 {}",
        fmt(m.original.f1),
        fmt(m.neutral.f1)
    );
    for (k, f) in &m.fairness {
        say!(
            "  {k:<11} GD {}  Rate {}  Rate^2 {}",
            fmt(f.point.gd),
            sci(f.point.rate),
            sci(f.point.rate_sq)
        );
    }
    say!("report: {}", a.out.join("report.html").display());
    Ok(())
}

fn fmt(v: Option<f64>) -> String {
    v.map_or("undefined".into(), |v| format!("{:.2}%", 100.0 * v))
}

fn sci(v: Option<f64>) -> String {
    v.map_or("undefined".into(), |v| format!("{v:.3e}"))
}
