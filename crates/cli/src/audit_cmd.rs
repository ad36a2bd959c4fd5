//! `fairrec audit`: score every prompt variant of a prepared split with a model, write the
//! predictions, and audit them (the same report as `fairrec metrics`).

use crate::metrics_cmd::{self, MetricsArgs};
use crate::model_args::{load_with_adapter, ModelArgs};
use anyhow::{bail, Context as _, Result};
use clap::Args;
use fairrec_core::Variant;
use fairrec_data::pipeline::{read_manifest, read_split};
use fairrec_data::prompt::{audit_variants, render, Template};
use fairrec_data::sample::write_atomic;
use fairrec_lm::score::Scorer;
use std::io::Write as _;
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct AuditArgs {
    #[command(flatten)]
    pub model: ModelArgs,
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
    /// Prompts per forward pass.
    #[arg(long, default_value_t = 8)]
    pub batch_size: usize,
    /// P(Yes) at or above this is a Yes.
    #[arg(long, default_value_t = 0.5)]
    pub threshold: f64,
    /// Bootstrap resamples for the intervals.
    #[arg(long, default_value_t = 200)]
    pub bootstrap: usize,
    /// Paper B: stereotype z-score above which an item belongs to a stereotype group.
    #[arg(long, default_value_t = 1.0)]
    pub z_threshold: f64,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Output directory (predictions.jsonl, run.json, metrics.json, report.md, report.html).
    #[arg(long)]
    pub out: PathBuf,
}

pub fn run(a: &AuditArgs) -> Result<()> {
    let t0 = std::time::Instant::now();
    let manifest = read_manifest(&a.data)?;
    let mut samples = read_split(&a.data, &a.split)?;
    if let Some(n) = a.limit {
        samples.truncate(n);
    }
    if samples.is_empty() {
        bail!("split `{}` of {} has no samples", a.split, a.data.display());
    }
    let scenario = fairrec_train::encode::scenario(&manifest, a.attributes.as_deref(), &a.data)?;
    let template = a
        .template
        .unwrap_or(Template::default_for(manifest.protocol));
    let variants: Vec<Variant> = match a.variants.as_deref().filter(|v| v.trim() != "all") {
        Some(v) => v
            .split(';')
            .map(|s| {
                s.trim()
                    .parse()
                    .with_context(|| format!("--variants: `{s}`"))
            })
            .collect::<Result<_>>()?,
        None => audit_variants(manifest.protocol, &scenario)?,
    };
    let (loaded, tuning) = load_with_adapter(&a.model, a.adapter.as_deref())?;
    let format = a.model.format();
    let scorer = Scorer::new(&loaded.model, &loaded.tokenizer, format, a.model.space()?)?;
    // MoS: one mixed soft prompt per sample, in front of every variant of it.
    let prefixes = match &tuning {
        Some(fairrec_lm::tuning::Tuning::Mos(m)) => {
            Some(fairrec_train::methods::mos::sample_prompts(
                &scorer,
                template,
                &samples,
                m,
                &read_split(&a.data, "train")?,
                a.batch_size,
            )?)
        }
        _ => None,
    };
    let mut jobs: Vec<(usize, &Variant, String)> = Vec::new();
    for (i, s) in samples.iter().enumerate() {
        for v in &variants {
            jobs.push((i, v, render(template, s, v, &scenario)?));
        }
    }
    let ids = scorer.encode(&jobs.iter().map(|j| j.2.clone()).collect::<Vec<_>>())?;
    // A variant that states what the original prompt states (`gender=female` for a female
    // user) is the same prompt, with the same soft prompt: each distinct one is scored once.
    let same_as = first_of_each(jobs.iter().zip(&ids).map(|(j, ids)| (j.0, ids)));
    // Length bucketing: score prompts of similar length together to cut padding.
    let mut order: Vec<usize> = (0..jobs.len()).filter(|&k| same_as[k] == k).collect();
    order.sort_by_key(|&k| ids[k].len());
    let total_tokens: usize = order.iter().map(|&k| ids[k].len()).sum();
    tracing::info!(
        prompts = order.len(),
        tokens = total_tokens,
        "scoring {} samples x {} variants ({} distinct prompts) with {}",
        samples.len(),
        variants.len(),
        order.len(),
        a.model.model.display()
    );
    let bar = crate::progress_bar(
        order.len() as u64,
        "{bar:40} {pos}/{len} prompts {msg} [{elapsed_precise} < {eta_precise}]",
    );
    let mut p_yes = vec![0.0; jobs.len()];
    let (mut done_tokens, t_score) = (0usize, std::time::Instant::now());
    for chunk in order.chunks(a.batch_size.max(1)) {
        let batch: Vec<Vec<u32>> = chunk.iter().map(|&k| ids[k].clone()).collect();
        let prefix = match &prefixes {
            Some(all) => {
                let rows: Vec<u32> = chunk.iter().map(|&k| jobs[k].0 as u32).collect();
                let idx = candle_core::Tensor::new(rows.as_slice(), all.device())?;
                Some(all.index_select(&idx, 0)?)
            }
            None => None,
        };
        for (&k, v) in chunk
            .iter()
            .zip(scorer.p_yes_prefixed(&batch, prefix.as_ref())?)
        {
            p_yes[k] = v;
        }
        done_tokens += batch.iter().map(Vec::len).sum::<usize>();
        bar.inc(chunk.len() as u64);
        bar.set_message(format!(
            "{:.0} tokens/s",
            done_tokens as f64 / t_score.elapsed().as_secs_f64()
        ));
    }
    bar.finish_and_clear();
    for k in 0..jobs.len() {
        p_yes[k] = p_yes[same_as[k]];
    }
    let mut lines = Vec::new();
    for ((i, v, _), p) in jobs.iter().zip(&p_yes) {
        let s = &samples[*i];
        let line = serde_json::json!({"sample_id": s.sample_id, "user_id": s.user_id, "variant": v.to_string(), "label": s.label, "p_yes": p, "attributes": s.attributes});
        writeln!(lines, "{line}")?;
    }
    let pred_path = a.out.join("predictions.jsonl");
    write_atomic(&pred_path, &lines)?;
    let run = serde_json::json!({
        "command": "audit", "model": a.model.model, "adapter": a.adapter, "data": a.data, "data_hash": manifest.data_hash(), "split": a.split,
        "limit": a.limit, "attributes": scenario, "template": template.name(), "format": format, "answer_tokens": [loaded.tokenizer.decode(&[scorer.yes])?, loaded.tokenizer.decode(&[scorer.no])?],
        "variants": variants.iter().map(|v| v.to_string()).collect::<Vec<_>>(), "batch_size": a.batch_size, "seed": a.seed,
        "prompts": jobs.len(), "distinct_prompts": order.len(), "tokens": total_tokens, "scoring_seconds": t_score.elapsed().as_secs_f64(),
        "git_revision": crate::git_revision(),
    });
    write_atomic(
        &a.out.join("run.json"),
        (serde_json::to_string_pretty(&run)? + "\n").as_bytes(),
    )?;
    say!(
        "scored {} prompts ({} distinct, {} tokens) in {:.1}s ({:.0} tokens/s)",
        jobs.len(),
        order.len(),
        total_tokens,
        t_score.elapsed().as_secs_f64(),
        total_tokens as f64 / t_score.elapsed().as_secs_f64()
    );
    metrics_cmd::run(&MetricsArgs {
        predictions: Some(pred_path),
        lists: None,
        k: 20,
        data: Some(a.data.clone()),
        threshold: a.threshold,
        bootstrap: a.bootstrap,
        seed: a.seed,
        confidence: 0.95,
        z_threshold: a.z_threshold,
        raw_counts: false,
        out: a.out.clone(),
    })?;
    tracing::info!("audit done in {:.1}s", t0.elapsed().as_secs_f64());
    Ok(())
}

/// For each key, the index of the first equal key (itself when it is the first).
fn first_of_each<K: std::hash::Hash + Eq>(keys: impl Iterator<Item = K>) -> Vec<usize> {
    let mut first = std::collections::HashMap::new();
    keys.enumerate()
        .map(|(k, key)| *first.entry(key).or_insert(k))
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn equal_keys_point_at_their_first() {
        let keys = [(0, "a"), (0, "b"), (0, "a"), (1, "a"), (1, "a")];
        assert_eq!(super::first_of_each(keys.into_iter()), [0, 1, 0, 3, 3]);
    }
}
