//! An experiment's results table: per (dataset, model, scenario), one row per method with
//! the mean and sample standard deviation over seeds of F1 (original prompts), and GD, Rate
//! (Eq. 3 as printed) and Rate^2 (the squared relative deviation the paper's tables show)
//! for the joint scenario and each attribute; the published figures beside ours when the
//! experiment file has them. Written as `results.md`, `results.html` and `results.csv`.

use super::spec::Spec;
use super::CellResult;
use crate::report::svg::{hbars, Bar};
use crate::report::{html, markdown, Block};
use anyhow::{Context as _, Result};
use fairrec_data::sample::write_atomic;
use std::collections::BTreeMap;
use std::path::Path;

/// The numbers of one audit's `metrics.json` that the table uses.
pub fn cell_metrics(path: &Path) -> Result<BTreeMap<String, f64>> {
    let v: serde_json::Value = serde_json::from_slice(
        &std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?,
    )?;
    let mut out = BTreeMap::new();
    for k in ["f1", "auc", "precision", "recall"] {
        if let Some(x) = v["original"][k].as_f64() {
            out.insert(k.to_string(), x);
        }
    }
    if let Some(f) = v["fairness"].as_object() {
        for (attr, e) in f {
            for k in ["gd", "rate", "rate_sq"] {
                if let Some(x) = e[k].as_f64() {
                    out.insert(format!("{k}/{attr}"), x);
                }
            }
        }
    }
    Ok(out)
}

/// Every finished cell under `dir/cells`.
pub fn read_cells(dir: &Path) -> Result<Vec<CellResult>> {
    fn walk(p: &Path, out: &mut Vec<CellResult>) -> Result<()> {
        for e in std::fs::read_dir(p)? {
            let p = e?.path();
            if p.is_dir() {
                walk(&p, out)?;
            } else if p.file_name().is_some_and(|n| n == "cell.json") {
                out.push(
                    serde_json::from_slice(&std::fs::read(&p)?)
                        .with_context(|| format!("{}", p.display()))?,
                );
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    let cells = dir.join("cells");
    if cells.exists() {
        walk(&cells, &mut out)?;
    }
    Ok(out)
}

/// Mean and sample standard deviation (`None` with one value).
fn mean_std(xs: &[f64]) -> (f64, Option<f64>) {
    let n = xs.len() as f64;
    let m = xs.iter().sum::<f64>() / n;
    let sd = (xs.len() > 1)
        .then(|| (xs.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1.0)).sqrt());
    (m, sd)
}

/// `scale` turns a fraction into the printed unit (100 for %, 100 for x10^-2, ...).
fn fmt(xs: &[f64], scale: f64) -> String {
    if xs.is_empty() {
        return "–".into();
    }
    match mean_std(xs) {
        (m, Some(s)) => format!("{:.2} ± {:.2}", m * scale, s * scale),
        (m, None) => format!("{:.2}", m * scale),
    }
}

/// The table's fairness columns for a scenario: the joint key first (several attributes),
/// then each attribute.
fn fairness_keys(scenario: &str) -> Vec<String> {
    let attrs: Vec<&str> = scenario.split(',').collect();
    let mut keys = Vec::new();
    if attrs.len() > 1 {
        let mut s = attrs.clone();
        s.sort();
        keys.push(s.join(","));
    }
    keys.extend(attrs.iter().map(|s| s.to_string()));
    keys
}

const UNITS: [(&str, &str, f64); 3] = [
    ("gd", "GD ×10⁻²", 100.0),
    ("rate", "Rate ×10⁻²", 100.0),
    ("rate_sq", "Rate² ×10⁻³", 1000.0),
];

pub fn write(dir: &Path, spec: &Spec, cells: &[CellResult]) -> Result<()> {
    let mut blocks = vec![Block::Heading(1, format!("Experiment `{}`", spec.name))];
    if !spec.description.is_empty() {
        blocks.push(Block::Para(spec.description.clone()));
    }
    blocks.push(Block::Para(format!(
        "{} finished cells. Mean ± sample standard deviation over seeds {:?} (prompting baselines are scored once: their scores do not depend on the seed). F1, precision and AUC are of the original prompts (true attributes stated). GD and Rate follow paper A's Eq. 2-3 with g = F1, read counterfactually (the same test users stated with every value, against the neutral prompt); Rate² is the mean squared relative deviation, which is what the paper's tables print under “Rate”.",
        cells.len(),
        spec.seeds
    )));
    let mut csv = String::from("dataset,model,scenario,method,metric,n,mean,std\n");
    let mut sections: Vec<(String, String, String)> = Vec::new();
    for c in cells {
        let k = (c.dataset.clone(), c.model.clone(), c.scenario.clone());
        if !sections.contains(&k) {
            sections.push(k);
        }
    }
    for (ds, model, sc) in &sections {
        blocks.push(Block::Heading(2, format!("{ds} · {model} · scenario {sc}")));
        let keys = fairness_keys(sc);
        let paper = spec.paper.get(ds).and_then(|p| p.get(sc));
        let mut head = vec![
            "Method".to_string(),
            "n".into(),
            "F1 %".into(),
            "AUC %".into(),
        ];
        for k in &keys {
            for (_, label, _) in UNITS {
                head.push(format!("{label} ({k})"));
            }
        }
        if paper.is_some() {
            head.extend([
                "paper F1 %".into(),
                "paper GD ×10⁻²".into(),
                "paper Rate ×10⁻³".into(),
            ]);
        }
        let mut rows = Vec::new();
        let mut bars = Vec::new();
        let (mut no_yes, mut all_yes): (Vec<String>, Vec<String>) = (Vec::new(), Vec::new());
        for method in &spec.methods {
            let mine: Vec<&CellResult> = cells
                .iter()
                .filter(|c| {
                    &c.dataset == ds
                        && &c.model == model
                        && &c.scenario == sc
                        && &c.method == method
                })
                .collect();
            if mine.is_empty() {
                continue;
            }
            let vals = |m: &str| -> Vec<f64> {
                mine.iter()
                    .filter_map(|c| c.metrics.get(m).copied())
                    .collect()
            };
            if vals("f1").iter().all(|&f| f == 0.0) {
                no_yes.push(method.clone());
            }
            let recall = vals("recall");
            if !recall.is_empty() && recall.iter().all(|&r| r == 1.0) {
                all_yes.push(method.clone());
            }
            let mut row = vec![
                method.clone(),
                mine.len().to_string(),
                fmt(&vals("f1"), 100.0),
                fmt(&vals("auc"), 100.0),
            ];
            for k in &keys {
                for (m, _, scale) in UNITS {
                    row.push(fmt(&vals(&format!("{m}/{k}")), scale));
                }
            }
            if let Some(p) = paper {
                let get = |m: &str, s: f64| {
                    p.get(method)
                        .and_then(|r| r.get(m))
                        .map_or("–".into(), |v| format!("{:.2}", v * s))
                };
                row.extend([get("f1", 1.0), get("gd", 100.0), get("rate", 1000.0)]);
            }
            rows.push(row);
            let all = [("f1", "f1".to_string())].into_iter().chain(
                keys.iter()
                    .flat_map(|k| UNITS.map(|(m, _, _)| (m, format!("{m}/{k}")))),
            );
            for (_, key) in all {
                let v = vals(&key);
                if let (false, (m, s)) = (v.is_empty(), mean_std(&v)) {
                    csv += &format!(
                        "{ds},{model},\"{sc}\",{method},{key},{},{m},{}\n",
                        v.len(),
                        s.map_or(String::new(), |s| s.to_string())
                    );
                }
            }
            let gd = vals(&format!("gd/{}", keys[0]));
            if !gd.is_empty() {
                let (m, s) = mean_std(&gd);
                bars.push(Bar {
                    label: method.clone(),
                    value: Some(m * 100.0),
                    ci: s.map(|s| [(m - s) * 100.0, (m + s) * 100.0]),
                });
            }
        }
        blocks.push(Block::Table(head, rows));
        if !no_yes.is_empty() {
            blocks.push(Block::Note(format!(
                "F1 is 0 for {} in every seed: no true positive among the original prompts (typically the model answers No to everything). GD = 0 then means that every variant is equally useless, not that the model is fair; Rate is undefined.",
                no_yes.join(", ")
            )));
        }
        if !all_yes.is_empty() {
            blocks.push(Block::Note(format!(
                "Recall is 100 % for {} in every seed: every liked target among the original prompts gets Yes (typically the model answers Yes to everything, and F1 is then the all-Yes F1). A GD near 0 then says that the stated attributes cannot move an answer that never changes, not that the model is fair.",
                all_yes.join(", ")
            )));
        }
        if !bars.is_empty() {
            let hi = bars
                .iter()
                .filter_map(|b| b.ci.map_or(b.value, |c| Some(c[1])))
                .fold(0.1, f64::max);
            blocks.push(Block::Chart(hbars(
                &format!(
                    "GD ({}) ×10⁻², mean ± std over seeds; lower is fairer",
                    keys[0]
                ),
                &bars,
                None,
                0.0,
                hi * 1.1,
                &|v| format!("{v:.2}"),
            )));
        }
    }
    if !spec.paper.is_empty() && !spec.paper_source.is_empty() {
        blocks.push(Block::Note(format!(
            "Published figures: {}.",
            spec.paper_source
        )));
    }
    write_atomic(&dir.join("results.md"), markdown(&blocks).as_bytes())?;
    write_atomic(
        &dir.join("results.html"),
        html(
            &blocks,
            &format!("fairrec experiment {}", spec.name),
            "`results.csv`",
        )
        .as_bytes(),
    )?;
    write_atomic(&dir.join("results.csv"), csv.as_bytes())?;
    Ok(())
}
