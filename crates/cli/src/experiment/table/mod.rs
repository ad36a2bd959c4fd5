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

use super::cell_dir;
use crate::experiment::spec::PaperRows;
use anyhow::{Context as _, Result};
use fairrec_data::sample::write_set;
use fairrec_metrics::compare::{
    of_table, read_pairs, refresh, write_pairs, TableCells, TablePairs,
};
use fairrec_metrics::report::svg::{tradeoff, Series};
use fairrec_metrics::report::{html, markdown, mean_std, mean_std_text as fmt, with_ci, Block};
use fairrec_metrics::MetricsFile;
use fairrec_train::fit::TrainRecord;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

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
    let (m, f) = (&c.metrics, |v: f64| format!("{:.2}", v * scale));
    let ci = m
        .get(&format!("ci_lo/{metric}"))
        .zip(m.get(&format!("ci_hi/{metric}")));
    m.get(metric).map_or("–".into(), |x| {
        with_ci(f(*x), ci.map(|(a, b)| [*a, *b]).as_ref(), &f)
    })
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
    let text = format!("Each cell with its {:.0} % bootstrap interval (the audit's, resampling test users; `audit/metrics.json`). The ± above is the spread over seeds; an interval is one seed's uncertainty from its finite test sample.", 100.0 * level);
    let title = "Every cell with its bootstrap interval".to_string();
    vec![Block::Details(
        title,
        vec![Block::Para(text), Block::Table(head, table)],
    )]
}

/// One axis of a trade-off chart: our key and scale, the paper's key and scale, the label.
pub(super) type Axis<'a> = (&'a str, f64, &'a str, f64, &'a str);

/// Accuracy (`x`) against a fairness figure (`y`) per method, every seed a dot, beside the
/// paper's point ([`fairrec_metrics::report::svg::tradeoff`]).
pub(super) fn tradeoff_chart(
    title: &str,
    rows: &[Row],
    paper: Option<&PaperRows>,
    x: Axis,
    y: Axis,
) -> Option<Block> {
    let get = |m: &BTreeMap<String, f64>, (k, sc): (&str, f64)| m.get(k).map(|v| v * sc);
    let series: Vec<Series> = rows
        .iter()
        .map(|r| Series {
            label: r.method.to_string(),
            points: (r.cells.iter())
                .filter_map(|c| Some([get(&c.metrics, (x.0, x.1))?, get(&c.metrics, (y.0, y.1))?]))
                .collect(),
            paper: paper
                .and_then(|p| p.get(r.method))
                .and_then(|p| Some([get(p, (x.2, x.3))?, get(p, (y.2, y.3))?])),
        })
        .filter(|s| !s.points.is_empty())
        .collect();
    let chart = tradeoff(title, [x.4, y.4], &series, &|v| format!("{v:.1}"));
    (!series.is_empty()).then_some(Block::Chart(chart))
}

/// A published figure as the paper prints it (`–` when the file has none).
pub(super) fn paper_value(
    paper: Option<&PaperRows>,
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

/// The finished cells of `spec`'s grid (its methods and seeds) among `cells`.
fn of_grid(spec: &Spec, cells: &[CellResult]) -> Vec<CellResult> {
    cells
        .iter()
        .filter(|c| {
            spec.methods.contains(&c.method) && c.seed.is_none_or(|s| spec.seeds.contains(&s))
        })
        .cloned()
        .collect()
}

/// The (dataset, model, scenario) tables of `cells`, in order of first appearance.
fn sections(cells: &[CellResult]) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for c in cells {
        let k = (c.dataset.clone(), c.model.clone(), c.scenario.clone());
        if !out.contains(&k) {
            out.push(k);
        }
    }
    out
}

/// Compare the methods of every table of `spec`'s grid in `dir` into `pairs.json`
/// ([`fairrec_metrics::compare::refresh`]); `data`: each dataset's prepared directory.
pub fn update_pairs(dir: &Path, spec: &Spec, data: &BTreeMap<String, PathBuf>) -> Result<()> {
    let cells = of_grid(spec, &read_cells(dir)?.cells);
    let tables: Vec<TableCells> = sections(&cells)
        .into_iter()
        .map(|(ds, model, sc)| TableCells {
            cells: (cells.iter())
                .filter(|c| (&c.dataset, &c.model, &c.scenario) == (&ds, &model, &sc))
                .map(|c| {
                    (
                        c.method.clone(),
                        c.seed,
                        c.hash.clone(),
                        cell_dir(dir, c).join("audit"),
                    )
                })
                .collect(),
            data: data.get(&ds).cloned(),
            paper_b: cells
                .iter()
                .any(|c| c.dataset == ds && c.protocol.as_deref() == Some("mos")),
            key: [ds, model, sc],
        })
        .collect();
    let out = refresh(&read_pairs(dir)?, &tables, &spec.methods)?;
    Ok(write_pairs(dir, &out)?)
}

/// Write the tables of the finished cells of `spec`'s grid (its methods and seeds; other
/// cells in `dir` are left out), with the paired comparisons of `pairs.json`.
pub fn write(dir: &Path, spec: &Spec, cells: &[CellResult]) -> Result<()> {
    let cells = &of_grid(spec, cells)[..];
    let pairs = read_pairs(dir)?;
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
    for (ds, model, sc) in &sections(cells) {
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
        let ids = rows
            .iter()
            .flat_map(|r| r.cells.iter().map(|c| c.hash.as_str()));
        let t = of_table(&pairs, [ds, model, sc], ids.collect());
        blocks.extend(t.map(TablePairs::blocks).unwrap_or_default());
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
    use super::{interval_table, with_interval, Row};
    use fairrec_metrics::report::Block;

    /// The audit's intervals (`ci_lo/k`, `ci_hi/k`) are printed beside the figure.
    #[test]
    fn a_cells_bootstrap_intervals_are_printed_beside_its_figures() {
        // The figures of the audit in `fairrec_metrics`'s `figures_carry_the_audits_intervals`.
        let c: std::collections::BTreeMap<String, f64> = [
            ("ci_level", 0.9),
            ("f1", 0.5),
            ("ci_lo/f1", 0.25),
            ("ci_hi/f1", 0.75),
            ("precision", 0.4),
        ]
        .map(|(k, v)| (k.to_string(), v))
        .into();
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
        let Some(Block::Details(_, blocks)) = interval_table(&rows, &cols).pop() else {
            panic!("the intervals are a details section")
        };
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
}
