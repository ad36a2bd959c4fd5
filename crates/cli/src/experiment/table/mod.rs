//! An experiment's results table: per (dataset, model, scenario), one row per method with
//! the mean and sample standard deviation over seeds. Paper A's sections show F1 (original
//! prompts), and GD and Rate (Eq. 3 as printed) for the joint scenario and each attribute,
//! with the paper's "Imp. (%)" against LLM Rec; paper B's sections
//! (cells on data of its `mos` protocol) are rendered by
//! [`super::table_b`]. The published figures stand beside ours when the experiment file
//! has them. Written as `results.md`, `results.html` and `results.csv`.

use crate::experiment::spec::Spec;
use crate::experiment::CellResult;
mod paper_a;
mod paper_b;

use anyhow::{Context as _, Result};
use fairrec_data::sample::write_set;
use fairrec_metrics::report::svg::{hbars, Bar};
use fairrec_metrics::report::{html, markdown, Block};
use fairrec_metrics::MetricsFile;
use fairrec_train::fit::TrainRecord;
use std::collections::BTreeMap;
use std::path::Path;

/// The numbers of one audit's `metrics.json` that the table uses
/// ([`fairrec_metrics::audit::Metrics::figures`]) and, from the training run's `run.json`
/// when there is one, `trainable` (the fraction of parameters trained).
pub fn cell_metrics(path: &Path, train_run: &Path, paper_b: bool) -> Result<BTreeMap<String, f64>> {
    let Some(m) = MetricsFile::read(path)?.metrics else {
        return Ok(BTreeMap::new());
    };
    let mut out = m.figures(paper_b);
    if let Ok(bytes) = std::fs::read(train_run) {
        let r: TrainRecord =
            serde_json::from_slice(&bytes).with_context(|| format!("{}", train_run.display()))?;
        let share = r
            .trainable_share
            .unwrap_or(r.trainable_parameters as f64 / r.base_parameters as f64);
        out.insert("trainable".into(), share);
    }
    Ok(out)
}

/// The finished cells under `dir/cells`: those the tables show, and the names
/// (`dataset/model/...`, sorted) of those marked stale ([`super::STALE`]), left out.
pub struct Finished {
    pub cells: Vec<CellResult>,
    pub stale: Vec<String>,
}

/// Every finished cell under `dir/cells` ([`Finished`]).
pub fn read_cells(dir: &Path) -> Result<Finished> {
    fn walk(root: &Path, p: &Path, out: &mut Finished) -> Result<()> {
        if p.join(super::STALE).exists() {
            let name = p.strip_prefix(root).unwrap_or(p);
            out.stale.push(name.to_string_lossy().into_owned());
            return Ok(());
        }
        for e in std::fs::read_dir(p)? {
            let p = e?.path();
            if p.is_dir() {
                walk(root, &p, out)?;
            } else if p.file_name().is_some_and(|n| n == "cell.json") {
                out.cells.push(
                    serde_json::from_slice(&std::fs::read(&p)?)
                        .with_context(|| format!("{}", p.display()))?,
                );
            }
        }
        Ok(())
    }
    let mut out = Finished {
        cells: Vec::new(),
        stale: Vec::new(),
    };
    let cells = dir.join("cells");
    if cells.exists() {
        walk(&cells, &cells, &mut out)?;
    }
    out.stale.sort();
    Ok(out)
}

/// Mean and sample standard deviation (`None` with one value).
pub(super) fn mean_std(xs: &[f64]) -> (f64, Option<f64>) {
    let n = xs.len() as f64;
    let m = xs.iter().sum::<f64>() / n;
    let sd = (xs.len() > 1)
        .then(|| (xs.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1.0)).sqrt());
    (m, sd)
}

/// `scale` turns a fraction into the printed unit (100 for %, 100 for x10^-2, ...).
/// Mean ± std of `xs` times `scale`; `(k/n)` after it when only `k` of the row's `n`
/// cells define the figure (the others left it undefined, e.g. no Yes answer).
pub(super) fn fmt(xs: &[f64], scale: f64, n: usize) -> String {
    if xs.is_empty() {
        return "–".into();
    }
    let figure = match mean_std(xs) {
        (m, Some(s)) => format!("{:.2} ± {:.2}", m * scale, s * scale),
        (m, None) => format!("{:.2}", m * scale),
    };
    if xs.len() < n {
        format!("{figure} ({}/{n})", xs.len())
    } else {
        figure
    }
}

/// The cells of one method in a section, in the order of the experiment's methods.
pub(super) struct Row<'a> {
    pub method: &'a str,
    pub cells: Vec<&'a CellResult>,
}

impl Row<'_> {
    /// The values of `metric` over the row's cells (cells without it are skipped).
    pub fn vals(&self, metric: &str) -> Vec<f64> {
        self.cells
            .iter()
            .filter_map(|c| c.metrics.get(metric).copied())
            .collect()
    }

    /// `metric` over the row's cells as the table prints it ([`fmt`]).
    pub fn figure(&self, metric: &str, scale: f64) -> String {
        fmt(&self.vals(metric), scale, self.cells.len())
    }

    /// A `results.csv` line for `metric` (nothing when no cell has it).
    pub fn csv(&self, section: &str, metric: &str) -> String {
        let v = self.vals(metric);
        if v.is_empty() {
            return String::new();
        }
        let (m, s) = mean_std(&v);
        format!(
            "{section},{},{metric},{},{m},{}\n",
            self.method,
            v.len(),
            s.map_or(String::new(), |s| s.to_string())
        )
    }
}

/// The notes under a section's table: methods that never answer Yes, or always do;
/// `all_yes_means` says what the fairness figures then mean.
pub(super) fn answer_notes(rows: &[Row], all_yes_means: &str) -> Vec<Block> {
    let (mut no_yes, mut all_yes) = (Vec::new(), Vec::new());
    for r in rows {
        if r.vals("f1").iter().all(|&f| f == 0.0) {
            no_yes.push(r.method);
        }
        let recall = r.vals("recall");
        if !recall.is_empty() && recall.iter().all(|&r| r == 1.0) {
            all_yes.push(r.method);
        }
    }
    let mut out = Vec::new();
    if !no_yes.is_empty() {
        out.push(Block::Note(format!(
            "F1 is 0 for {} in every seed: no true positive among the original prompts (typically the model answers No to everything). Its fairness figures then describe a model that recommends nothing (GD = 0 means that every variant is equally useless, not that the model is fair; Rate is undefined).",
            no_yes.join(", ")
        )));
    }
    if !all_yes.is_empty() {
        out.push(Block::Note(format!(
            "Recall is 100 % for {} in every seed: every liked target among the original prompts gets Yes (typically the model answers Yes to everything, and F1 is then the all-Yes F1). {all_yes_means}",
            all_yes.join(", ")
        )));
    }
    out
}

/// One figure of one cell with its bootstrap interval, `x [lo, hi]` (times `scale`): `x`
/// alone where the cell has no interval for it, `–` where it has no figure.
pub(super) fn with_interval(c: &CellResult, metric: &str, scale: f64) -> String {
    let m = &c.metrics;
    match (
        m.get(metric),
        m.get(&format!("ci_lo/{metric}")),
        m.get(&format!("ci_hi/{metric}")),
    ) {
        (Some(x), Some(lo), Some(hi)) => {
            format!("{:.2} [{:.2}, {:.2}]", x * scale, lo * scale, hi * scale)
        }
        (Some(x), _, _) => format!("{:.2}", x * scale),
        _ => "–".into(),
    }
}

/// Each cell's figures with the audit's bootstrap intervals (over test users): one row per
/// method and seed, one column per `(metric, header, scale)`. The ± of the main table is the
/// spread over seeds; these are one seed's uncertainty from its finite test sample. Nothing
/// when no cell has an interval (cells finished before they were recorded).
pub(super) fn interval_table(rows: &[Row], columns: &[(String, String, f64)]) -> Vec<Block> {
    let Some(level) = rows
        .iter()
        .flat_map(|r| r.cells.iter())
        .filter(|c| c.metrics.keys().any(|k| k.starts_with("ci_lo/")))
        .find_map(|c| c.metrics.get("ci_level").copied())
    else {
        return Vec::new();
    };
    let mut head = vec!["Method".to_string(), "Seed".into()];
    head.extend(columns.iter().map(|(_, h, _)| h.clone()));
    let mut table = Vec::new();
    for r in rows {
        let mut cells = r.cells.clone();
        cells.sort_by_key(|c| c.seed);
        for c in cells {
            let mut row = vec![
                r.method.to_string(),
                c.seed.map_or("–".into(), |s| s.to_string()),
            ];
            row.extend(columns.iter().map(|(k, _, sc)| with_interval(c, k, *sc)));
            table.push(row);
        }
    }
    vec![
        Block::Para(format!(
            "Each cell with its {:.0} % bootstrap interval (the audit's, resampling test users; `audit/metrics.json`). The ± above is the spread over seeds; an interval is one seed's uncertainty from its finite test sample.",
            100.0 * level
        )),
        Block::Table(head, table),
    ]
}

/// A horizontal bar chart of mean ± std over seeds of `metric` (times `scale`) per row.
pub(super) fn bars_chart(title: &str, rows: &[Row], metric: &str, scale: f64) -> Option<Block> {
    let bars: Vec<Bar> = rows
        .iter()
        .filter_map(|r| {
            let v = r.vals(metric);
            if v.is_empty() {
                return None;
            }
            let (m, s) = mean_std(&v);
            Some(Bar {
                label: r.method.to_string(),
                value: Some(m * scale),
                ci: s.map(|s| [(m - s) * scale, (m + s) * scale]),
            })
        })
        .collect();
    if bars.is_empty() {
        return None;
    }
    let hi = bars
        .iter()
        .filter_map(|b| b.ci.map_or(b.value, |c| Some(c[1])))
        .fold(0.1, f64::max);
    Some(Block::Chart(hbars(
        title,
        &bars,
        None,
        0.0,
        hi * 1.1,
        &|v| format!("{v:.2}"),
    )))
}

/// A published figure as the paper prints it (`–` when the file has none).
pub(super) fn paper_value(
    paper: Option<&crate::experiment::spec::PaperRows>,
    method: &str,
    metric: &str,
    scale: f64,
) -> String {
    paper
        .and_then(|p| p.get(method))
        .and_then(|r| r.get(metric))
        .map_or("–".into(), |v| {
            let decimals = if metric == "trainable" { 4 } else { 2 };
            format!("{:.*}", decimals, v * scale)
        })
}

/// Write the tables of the finished cells of `spec`'s grid (its methods and seeds; other
/// cells in `dir` are left out).
pub fn write(dir: &Path, spec: &Spec, cells: &[CellResult]) -> Result<()> {
    let cells: Vec<CellResult> = cells
        .iter()
        .filter(|c| {
            spec.methods.contains(&c.method) && c.seed.is_none_or(|s| spec.seeds.contains(&s))
        })
        .cloned()
        .collect();
    let cells = &cells[..];
    let mut seeds: Vec<u64> = cells.iter().filter_map(|c| c.seed).collect();
    seeds.sort_unstable();
    seeds.dedup();
    let mut blocks = vec![Block::Heading(1, format!("Experiment `{}`", spec.name))];
    if !spec.description.is_empty() {
        blocks.push(Block::Para(spec.description.clone()));
    }
    let over = if seeds.is_empty() {
        "Every cell is a prompting baseline, scored once (its scores do not depend on the seed)"
            .to_string()
    } else {
        format!("Mean ± sample standard deviation over seeds {seeds:?} (prompting baselines are scored once: their scores do not depend on the seed)")
    };
    blocks.push(Block::Para(format!(
        "{} finished cell{}. {over}; a figure that only k of a row's n cells define is followed by (k/n).",
        cells.len(),
        if cells.len() == 1 { "" } else { "s" },
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
        let rows: Vec<Row> = spec
            .methods
            .iter()
            .map(|method| Row {
                method,
                cells: cells
                    .iter()
                    .filter(|c| {
                        &c.dataset == ds
                            && &c.model == model
                            && &c.scenario == sc
                            && &c.method == method
                    })
                    .collect(),
            })
            .filter(|r| !r.cells.is_empty())
            .collect();
        let paper = spec.paper.get(ds).and_then(|p| p.get(sc));
        let name = format!("{ds},{model},\"{sc}\"");
        let paper_b = rows
            .iter()
            .any(|r| r.cells.iter().any(|c| c.protocol.as_deref() == Some("mos")));
        if paper_b {
            paper_b::section(&mut blocks, &mut csv, &name, sc, &rows, paper);
        } else {
            paper_a::section_a(&mut blocks, &mut csv, &name, sc, &rows, paper);
        }
    }
    if !spec.paper.is_empty() && !spec.paper_source.is_empty() {
        blocks.push(Block::Note(format!(
            "Published figures: {}.",
            spec.paper_source
        )));
    }
    let md = markdown(&blocks);
    let title = format!("fairrec experiment {}", spec.name);
    let page = html(&blocks, &title, "`results.csv`");
    let files: [(&str, &[u8]); 3] = [
        ("results.md", md.as_bytes()),
        ("results.html", page.as_bytes()),
        ("results.csv", csv.as_bytes()),
    ];
    write_set(dir, &files.map(|(n, _)| n), &files)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{cell_metrics, fmt, interval_table, with_interval, Row};
    use fairrec_metrics::report::Block;

    /// The audit's intervals reach the cell (`ci_lo/k`, `ci_hi/k`) for the figures the
    /// tables take, and are printed beside the figure.
    #[test]
    fn a_cells_bootstrap_intervals_come_from_its_audit() {
        let dir = tempfile::tempdir().unwrap();
        let m = dir.path().join("metrics.json");
        std::fs::write(
            &m,
            r#"{"bootstrap": {"confidence": 0.9, "resamples": 10, "seed": 0, "unit": "user", "units": 4},
                "threshold": 0.5, "n_predictions": 4, "variants": {}, "fairness": {}, "inputs": {},
                "original": {"f1": 0.5, "auc": 0.6, "precision": 0.4, "recall": 0.7, "n": 4, "positives": 2},
                "neutral": {"f1": null, "auc": null, "precision": null, "recall": null, "n": 0, "positives": 0},
                "ci": {"original.f1": [0.25, 0.75], "original.recall": [0.5, 0.875]},
                "stereotype": {"gender": {"z_threshold": 1.0, "normalize": true, "item_groups": {},
                    "n_items": 0, "performance": {},
                    "settings": {"explicit": {"total": 25.0, "same_group": 10.0, "other_group": null, "pairs": {}}},
                    "ci": {"explicit.total": [16.5, 52.0]}}}}"#,
        )
        .unwrap();
        let c = cell_metrics(&m, &dir.path().join("none.json"), true).unwrap();
        assert_eq!(c["ci_level"], 0.9);
        assert_eq!((c["ci_lo/f1"], c["ci_hi/f1"]), (0.25, 0.75));
        assert_eq!((c["ci_lo/recall"], c["ci_hi/recall"]), (0.5, 0.875));
        assert!(!c.contains_key("ci_lo/auc") && !c.contains_key("ci_lo/precision"));
        let k = "stereo/gender/explicit";
        assert_eq!(
            (c[k], c[&format!("ci_lo/{k}")], c[&format!("ci_hi/{k}")]),
            (25.0, 16.5, 52.0)
        );
        // same_group has a figure but no interval in this audit.
        assert!(c.contains_key("stereo_same/gender/explicit"));
        assert!(!c.contains_key("ci_lo/stereo_same/gender/explicit"));

        let cell = |seed, metrics| super::CellResult {
            hash: String::new(),
            dataset: "d".into(),
            model: "m".into(),
            scenario: "gender".into(),
            method: "mos".into(),
            seed: Some(seed),
            protocol: None,
            metrics,
            seconds: 0.0,
            placement: None,
        };
        let a = cell(1, c.clone());
        assert_eq!(with_interval(&a, "f1", 100.0), "50.00 [25.00, 75.00]");
        assert_eq!(with_interval(&a, "precision", 100.0), "40.00");
        assert_eq!(with_interval(&a, "gd/gender", 100.0), "–");
        let b = cell(0, [("f1".to_string(), 0.125)].into());
        let rows = [Row {
            method: "mos",
            cells: vec![&a, &b],
        }];
        let cols = [("f1".to_string(), "F1 %".to_string(), 100.0)];
        let blocks = interval_table(&rows, &cols);
        let Some(Block::Para(p)) = blocks.first() else {
            panic!("the interval table starts with its paragraph")
        };
        assert!(p.contains("90 % bootstrap interval"), "{p}");
        let Some(Block::Table(head, body)) = blocks.get(1) else {
            panic!("a table follows the paragraph")
        };
        assert_eq!(head, &["Method", "Seed", "F1 %"]);
        // Sorted by seed; the cell without intervals shows its figure alone.
        assert_eq!(
            body,
            &[
                vec!["mos".to_string(), "0".into(), "12.50".into()],
                vec!["mos".to_string(), "1".into(), "50.00 [25.00, 75.00]".into()],
            ]
        );
        // No cell with intervals: no table.
        let rows = [Row {
            method: "mos",
            cells: vec![&b],
        }];
        assert!(interval_table(&rows, &cols).is_empty());
    }

    #[test]
    fn a_figure_defined_in_some_cells_says_in_how_many() {
        // 0.1 and 0.3 (x100): mean 20, sample std sqrt(((10)^2 + (10)^2) / 1) = 14.142...
        assert_eq!(fmt(&[0.1, 0.3], 100.0, 3), "20.00 ± 14.14 (2/3)");
        assert_eq!(fmt(&[0.1, 0.3], 100.0, 2), "20.00 ± 14.14");
        assert_eq!(fmt(&[0.5], 1.0, 1), "0.50");
        assert_eq!(fmt(&[0.5], 1.0, 3), "0.50 (1/3)");
        assert_eq!(fmt(&[], 1.0, 3), "–");
    }
}
