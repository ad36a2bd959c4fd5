//! The figures of the quickstart's comparison report (`render` writes them out): what the
//! world plants, the baseline's unfairness, and what each fairness method changes, with the
//! audits' bootstrap intervals, and the plain-words findings.

use crate::experiment::{cell_dir, spec::Spec, synth_dir, Grid};
use anyhow::{bail, Context as _, Result};
use fairrec_data::pipeline::read_manifest;
use fairrec_metrics::report::{pct, sci, with_ci};
use fairrec_metrics::MetricsFile;
use fairrec_train::engine::trainer::Summary;
use fairrec_train::fit::SummaryFile;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;

/// A figure and its bootstrap interval.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Est {
    pub value: Option<f64>,
    pub ci: Option<[f64; 2]>,
}

/// Paper A's fairness of one attribute set for one method.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SetReport {
    pub gd: Est,
    pub rate: Est,
    pub rate_sq: Est,
    pub neutral_f1: Option<f64>,
    /// Group -> F1 of that variant minus the neutral F1, with its paired interval.
    pub shift: BTreeMap<String, Est>,
}

/// One method's row.
#[derive(Debug, Clone, serde::Serialize)]
pub struct MethodReport {
    pub method: String,
    pub label: String,
    pub f1: Est,
    pub auc: Option<f64>,
    pub precision: Option<f64>,
    pub recall: Option<f64>,
    /// Every original prompt was answered Yes.
    pub all_yes: bool,
    /// Best valid AUC during training.
    pub valid_auc: Option<f64>,
    pub train_seconds: Option<f64>,
    pub train_tokens: Option<u64>,
    /// Training plus audit.
    pub cell_seconds: f64,
    /// Keyed by attribute set (`age,gender`, `age`, `gender`).
    pub fairness: BTreeMap<String, SetReport>,
}

/// Everything `report.json` holds.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Report {
    pub command: String,
    pub git_revision: Option<String>,
    pub seed: u64,
    /// Wall time of this invocation (finished steps of an earlier run are not redone).
    pub seconds: f64,
    /// Wall time of the steps as they ran: the base model's fine-tuning plus every method's
    /// training and audit.
    pub steps_seconds: f64,
    /// The synthetic world's settings (`synth.json`).
    pub world: Value,
    pub data_hash: String,
    /// Train split: attribute -> value -> (samples, share liked).
    pub train_label_rates: BTreeMap<String, BTreeMap<String, (usize, f64)>>,
    pub base_model: BaseModel,
    /// The scenario's joint attribute set.
    pub joint: String,
    pub methods: Vec<MethodReport>,
    /// The plain-words summary.
    pub findings: Vec<String>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct BaseModel {
    pub parameters: usize,
    pub layers: usize,
    pub hidden: usize,
    pub finetune_epochs: usize,
    pub finetune_valid_auc: Option<f64>,
    pub finetune_seconds: Option<f64>,
}

fn read_json(p: &Path) -> Result<Value> {
    serde_json::from_slice(
        &std::fs::read(p).with_context(|| format!("cannot read {}", p.display()))?,
    )
    .with_context(|| format!("{} is not JSON", p.display()))
}

/// How the training run in `dir` ended (`summary.json`), if it finished.
fn summary(dir: &Path) -> Option<Summary> {
    let bytes = std::fs::read(dir.join("summary.json")).ok()?;
    serde_json::from_slice::<SummaryFile>(&bytes)
        .ok()
        .map(|f| f.summary)
}

/// What people call each method.
fn label(method: &str) -> String {
    match method.parse::<fairrec_train::Method>() {
        Ok(m) => m.label().into(),
        Err(_) => method.into(),
    }
}

fn method_report(out: &Path, c: &crate::experiment::CellResult) -> Result<MethodReport> {
    let dir = cell_dir(out, c);
    let path = dir.join("audit").join("metrics.json");
    let m = MetricsFile::read(&path)?
        .metrics
        .with_context(|| format!("{} holds no audit of predictions", path.display()))?;
    let train = summary(&dir.join("train"));
    let ci_of = |ci: &BTreeMap<String, [f64; 2]>, k: &str| ci.get(k).copied();
    let fairness = m
        .fairness
        .iter()
        .map(|(set, e)| {
            let p = &e.point;
            let shift = p
                .groups
                .iter()
                .map(|(k, g)| {
                    let diff = g.f1.zip(p.neutral_f1).map(|(a, b)| a - b);
                    let s = Est {
                        value: diff,
                        ci: ci_of(&e.ci, &format!("groups.{k}.diff")),
                    };
                    (k.clone(), s)
                })
                .collect();
            let est = |value: Option<f64>, k: &str| Est {
                value,
                ci: ci_of(&e.ci, k),
            };
            let report = SetReport {
                gd: est(p.gd, "gd"),
                rate: est(p.rate, "rate"),
                rate_sq: est(p.rate_sq, "rate_sq"),
                neutral_f1: p.neutral_f1,
                shift,
            };
            (set.clone(), report)
        })
        .collect();
    let o = &m.original;
    Ok(MethodReport {
        method: c.method.clone(),
        label: label(&c.method),
        f1: Est {
            value: o.f1,
            ci: ci_of(&m.ci, "original.f1"),
        },
        auc: o.auc,
        precision: o.precision,
        recall: o.recall,
        all_yes: {
            let share = o.positives as f64 / o.n as f64;
            o.recall == Some(1.0) && o.precision.is_some_and(|p| (p - share).abs() < 1e-12)
        },
        valid_auc: train.as_ref().and_then(|t| t.best_auc),
        train_seconds: train.as_ref().map(|t| t.seconds),
        train_tokens: train.as_ref().map(|t| t.tokens),
        cell_seconds: c.seconds,
        fairness,
    })
}

/// Gather the report from a finished quickstart grid.
pub fn build(out: &Path, spec: &Spec, grid: &Grid, seconds: f64) -> Result<Report> {
    let d = &spec.datasets[0];
    let data = grid.data.get(&d.name).context("the quickstart's dataset")?;
    let manifest = read_manifest(data)?;
    let world = synth_dir(out, d)
        .map(|p| read_json(&p.join("synth.json")))
        .transpose()?
        .unwrap_or(Value::Null);
    let train_label_rates = manifest.splits["train"]
        .attributes
        .iter()
        .map(|(a, vs)| {
            let rates = vs
                .iter()
                .map(|(v, (n, p))| (v.clone(), (*n, *p as f64 / (*n).max(1) as f64)))
                .collect();
            (a.clone(), rates)
        })
        .collect();
    let model = grid
        .models
        .get(&(d.name.clone(), spec.models[0].name.clone()))
        .context("the quickstart's model")?;
    let cfg: fairrec_lm::LlamaConfig =
        serde_json::from_value(read_json(&model.join("config.json"))?)
            .context("the built-in model's config.json")?;
    let ft = model.parent().and_then(summary);
    let base_model = BaseModel {
        parameters: cfg.parameters(),
        layers: cfg.num_hidden_layers,
        hidden: cfg.hidden_size,
        // One validation per epoch trained (`before` is kept apart).
        finetune_epochs: ft.as_ref().map_or(0, |t| t.evals.len()),
        finetune_valid_auc: ft.as_ref().and_then(|t| t.best_auc),
        finetune_seconds: ft.as_ref().map(|t| t.seconds),
    };
    let mut methods = Vec::new();
    for name in &spec.methods {
        let Some(c) = grid.results.iter().find(|c| &c.method == name) else {
            bail!("the quickstart's `{name}` step has no result");
        };
        methods.push(method_report(out, c)?);
    }
    let mut attrs: Vec<&str> = spec.scenarios[0].split(',').collect();
    attrs.sort();
    let joint = attrs.join(",");
    let findings = findings(&methods, &joint);
    let steps_seconds = base_model.finetune_seconds.unwrap_or(0.0)
        + methods.iter().map(|m| m.cell_seconds).sum::<f64>();
    Ok(Report {
        command: "quickstart".into(),
        git_revision: crate::git_revision(),
        seed: spec.seeds[0],
        seconds,
        steps_seconds,
        world,
        data_hash: manifest.data_hash(),
        train_label_rates,
        base_model,
        joint,
        methods,
        findings,
    })
}

/// A figure in points (×100) with its interval.
pub(super) fn pts_ci(e: &Est) -> String {
    with_ci(pct(e.value), e.ci.as_ref(), &|x| {
        format!("{:.2}", 100.0 * x)
    })
}

/// A figure in scientific notation with its interval.
pub(super) fn sci_ci(e: &Est) -> String {
    with_ci(sci(e.value), e.ci.as_ref(), &|x| sci(Some(x)))
}

/// Groups whose paired interval of F1 minus the neutral F1 excludes zero.
fn clear_shifts(s: &SetReport) -> Vec<(&String, &Est)> {
    s.shift
        .iter()
        .filter(|(_, e)| e.ci.is_some_and(|[a, b]| a > 0.0 || b < 0.0))
        .collect()
}

/// The plain-words summary: the baseline's unfairness, then each method against it.
pub fn findings(methods: &[MethodReport], joint: &str) -> Vec<String> {
    let mut out = Vec::new();
    let Some(base) = methods.first() else {
        return out;
    };
    let Some(bj) = base.fairness.get(joint) else {
        out.push(format!("{} has no `{joint}` fairness figures.", base.label));
        return out;
    };
    let mut s = format!(
        "{}: F1 {} % (AUC {} %). ",
        base.label,
        pts_ci(&base.f1),
        pct(base.auc)
    );
    let clear = clear_shifts(bj);
    s += &if bj.gd.value == Some(0.0) {
        format!("Stating `{joint}` does not change its F1 at all (GD = 0)")
    } else if clear.is_empty() {
        format!(
            "Stating `{joint}` moves its F1 away from the neutral prompt by GD = {} points on average",
            pts_ci(&bj.gd)
        )
    } else {
        format!(
            "Its answers depend on the stated attributes: stating `{joint}` moves F1 away from the neutral prompt by GD = {} points on average",
            pts_ci(&bj.gd)
        )
    };
    if bj.gd.value == Some(0.0) {
        s += ".";
        if base.all_yes {
            s += " It answers Yes to every prompt: it has learned nothing to be unfair with (train longer or on a larger world).";
        }
    } else if let Some((k, e)) = clear.iter().max_by(|a, b| {
        a.1.value
            .unwrap_or(0.0)
            .abs()
            .total_cmp(&b.1.value.unwrap_or(0.0).abs())
    }) {
        s += &format!(
            "; {} of {} groups differ beyond resampling noise, most of all `{k}` ({:+.2} points, paired interval [{:+.2}, {:+.2}]).",
            clear.len(),
            bj.shift.len(),
            100.0 * e.value.unwrap_or(0.0),
            100.0 * e.ci.map_or(0.0, |c| c[0]),
            100.0 * e.ci.map_or(0.0, |c| c[1])
        );
    } else {
        s += ", but no group's paired interval excludes 0: at this size the difference is within resampling noise.";
    }
    out.push(s);
    for m in &methods[1..] {
        let Some(mj) = m.fairness.get(joint) else {
            continue;
        };
        let (Some(g0), Some(g1)) = (bj.gd.value, mj.gd.value) else {
            out.push(format!("{}: GD is undefined (see its audit).", m.label));
            continue;
        };
        let change = if g0 > 0.0 {
            format!(" ({:+.0} %)", 100.0 * (g1 - g0) / g0)
        } else {
            String::new()
        };
        let mut s = format!(
            "{}: GD ({joint}) {} → {} points{change}",
            m.label,
            pct(Some(g0)),
            pct(Some(g1))
        );
        for a in joint.split(',').filter(|a| *a != joint) {
            if let (Some(x), Some(y)) = (base.fairness.get(a), m.fairness.get(a)) {
                s += &format!(", {a} {} → {}", pct(x.gd.value), pct(y.gd.value));
            }
        }
        s += &format!(
            "; F1 {} → {} % ({:+.2} points), AUC {} → {} %.",
            pct(base.f1.value),
            pct(m.f1.value),
            100.0 * (m.f1.value.unwrap_or(0.0) - base.f1.value.unwrap_or(0.0)),
            pct(base.auc),
            pct(m.auc)
        );
        s += &match (bj.gd.ci, mj.gd.ci) {
            (Some([lo0, _]), Some([_, hi1])) if hi1 < lo0 => format!(
                " Its GD interval [{:.2}, {:.2}] lies entirely below the baseline's, and {} of {} groups still differ beyond noise.",
                100.0 * mj.gd.ci.map_or(0.0, |c| c[0]),
                100.0 * hi1,
                clear_shifts(mj).len(),
                mj.shift.len()
            ),
            (Some(_), Some(_)) => " Its GD interval overlaps the baseline's: the change is not clear at this size.".into(),
            _ => String::new(),
        };
        if m.all_yes {
            s += " It answers Yes to every prompt, so GD = 0 says nothing about fairness.";
        }
        if m.f1.value == Some(0.0) {
            s += " Its F1 is 0 (no true positive): GD then says nothing about fairness.";
        }
        out.push(s);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(value: f64, ci: [f64; 2]) -> Est {
        Est {
            value: Some(value),
            ci: Some(ci),
        }
    }

    fn method(name: &str, f1: f64, gd: Est, shifts: &[(&str, Est)]) -> MethodReport {
        let set = SetReport {
            gd,
            rate: e(0.0, [0.0, 0.0]),
            rate_sq: e(0.0, [0.0, 0.0]),
            neutral_f1: Some(0.5),
            shift: shifts.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
        };
        MethodReport {
            method: name.into(),
            label: label(name),
            f1: e(f1, [f1 - 0.05, f1 + 0.05]),
            auc: Some(0.8),
            precision: Some(0.6),
            recall: Some(0.7),
            all_yes: false,
            valid_auc: None,
            train_seconds: None,
            train_tokens: None,
            cell_seconds: 1.0,
            fairness: [("age,gender".to_string(), set)].into(),
        }
    }

    #[test]
    fn findings_name_the_clear_groups_and_compare_intervals() {
        let base = method(
            "lora",
            0.63,
            e(0.1324, [0.10, 0.16]),
            &[
                ("age=old,gender=male", e(-0.2677, [-0.33, -0.20])),
                ("age=young,gender=female", e(0.05, [0.01, 0.09])),
                ("age=young,gender=male", e(0.01, [-0.01, 0.03])),
            ],
        );
        let fair = method(
            "cf-diff",
            0.59,
            e(0.0027, [0.0, 0.01]),
            &[("age=old,gender=male", e(0.002, [-0.01, 0.01]))],
        );
        let unclear = method("cl-moe", 0.47, e(0.12, [0.05, 0.2]), &[]);
        let f = findings(&[base, fair, unclear], "age,gender");
        assert_eq!(f.len(), 3);
        assert!(
            f[0].contains("Its answers depend on the stated attributes"),
            "{}",
            f[0]
        );
        assert!(f[0].contains("2 of 3 groups differ"), "{}", f[0]);
        assert!(
            f[0].contains("most of all `age=old,gender=male` (-26.77 points"),
            "{}",
            f[0]
        );
        // 0.27 vs 13.24: -98 %; F1 63 -> 59.
        assert!(
            f[1].starts_with("CF-Diff: GD (age,gender) 13.24 → 0.27 points (-98 %)"),
            "{}",
            f[1]
        );
        assert!(
            f[1].contains("F1 63.00 → 59.00 % (-4.00 points)"),
            "{}",
            f[1]
        );
        assert!(
            f[1].contains("lies entirely below the baseline's, and 0 of 1 groups"),
            "{}",
            f[1]
        );
        assert!(f[2].contains("overlaps the baseline's"), "{}", f[2]);
    }

    #[test]
    fn findings_do_not_claim_unfairness_without_evidence() {
        let noisy = method(
            "lora",
            0.6,
            e(0.01, [0.0, 0.03]),
            &[("age=old,gender=male", e(-0.01, [-0.03, 0.01]))],
        );
        let f = findings(&[noisy], "age,gender");
        assert!(!f[0].contains("depend on the stated"), "{}", f[0]);
        assert!(f[0].contains("within resampling noise"), "{}", f[0]);
        let mut flat = method("lora", 0.7, e(0.0, [0.0, 0.0]), &[]);
        flat.all_yes = true;
        let f = findings(&[flat], "age,gender");
        assert!(f[0].contains("does not change its F1 at all"), "{}", f[0]);
        assert!(f[0].contains("answers Yes to every prompt"), "{}", f[0]);
    }
}
