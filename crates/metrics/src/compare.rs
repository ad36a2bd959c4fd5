//! Every pair of methods in one table (one dataset, model and scenario), compared by the
//! paired bootstrap of [`crate::audit::paired`] over the test users all their audits share
//! (ours; issue 30). An experiment writes them to `pairs.json`, and its tables print them as
//! "A − B [lo, hi]" with a verdict only where the test sample and the seeds agree.
//!
//! Seeds pair up by number; a prompting baseline (one seed-free audit) pairs with every seed
//! of the other method.

use crate::audit::paired::{difference, resample_together, AuditInput, Difference};
use crate::audit::{AuditConfig, Context, StereotypeInput};
use crate::error::{MetricsError, Result};
use crate::join::{contexts, stereotype_inputs};
use crate::predictions::{parse_predictions_bytes, Prediction};
use crate::stereotype::{StereotypeConfig, ZThreshold};
use crate::MetricsFile;
use fairrec_data::pipeline::read_split;
use fairrec_data::sample::Sample;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// A prepared dataset as the audits of its cells joined it.
pub struct DataContext {
    context: HashMap<String, Context>,
    train: Vec<Sample>,
}

impl DataContext {
    /// Read the prepared dataset in `dir` (every split joins; `train` defines paper B's
    /// item groups).
    pub fn read(dir: &Path) -> Result<Self> {
        let train = read_split(dir, "train")?;
        let mut rest = read_split(dir, "valid")?;
        rest.extend(read_split(dir, "test")?);
        Ok(DataContext {
            context: contexts(train.iter().chain(&rest)),
            train,
        })
    }
}

/// One finished audit of a method (a cell of the table).
pub struct CellAudit {
    pub method: String,
    /// `None`: a prompting baseline (its audit does not depend on the seed).
    pub seed: Option<u64>,
    /// The cell's identity (its configuration hash).
    pub id: String,
    predictions: Vec<Prediction>,
    config: AuditConfig,
    /// Attributes with paper B's item groups in this audit.
    stereo: Vec<String>,
}

impl CellAudit {
    /// The audit in `dir`: its `metrics.json` (threshold, paper B's z* as resolved and the
    /// degree normalisation) and the `predictions.jsonl` beside it, which must be the file
    /// that `metrics.json` was computed from (its SHA-256).
    pub fn read(dir: &Path, method: &str, seed: Option<u64>, id: &str) -> Result<Self> {
        let m = MetricsFile::read(&dir.join("metrics.json"))?;
        let path = dir.join("predictions.jsonl");
        let bytes = std::fs::read(&path).map_err(|source| MetricsError::Io {
            path: path.clone(),
            source,
        })?;
        let sha = fairrec_data::raw::sha256_hex(&bytes);
        if m.inputs
            .predictions_sha256
            .as_ref()
            .is_some_and(|s| *s != sha)
        {
            return Err(MetricsError::File {
                path,
                message: "not the predictions its metrics.json was computed from (SHA-256 differs)"
                    .into(),
            });
        }
        let Some(metrics) = m.metrics else {
            return Err(MetricsError::File {
                path: dir.join("metrics.json"),
                message: "holds no audit of predictions".into(),
            });
        };
        let groups = metrics.stereotype.unwrap_or_default();
        let first = groups.values().next();
        let config = AuditConfig {
            threshold: metrics.threshold,
            bootstrap: metrics.bootstrap.resamples,
            seed: metrics.bootstrap.seed,
            confidence: metrics.bootstrap.confidence,
            stereotype: StereotypeConfig {
                z_threshold: first
                    .map_or(ZThreshold::Fixed(1.0), |e| ZThreshold::Fixed(e.z_threshold)),
                normalize: first.is_none_or(|e| e.normalize),
            },
        };
        Ok(CellAudit {
            method: method.into(),
            seed,
            id: id.into(),
            predictions: parse_predictions_bytes(&path, &bytes)?,
            config,
            stereo: groups.into_keys().collect(),
        })
    }

    /// A cell from predictions in memory (tests, and callers that hold them).
    pub fn new(
        method: &str,
        seed: Option<u64>,
        id: &str,
        predictions: Vec<Prediction>,
        config: AuditConfig,
        stereo: Vec<String>,
    ) -> Self {
        CellAudit {
            method: method.into(),
            seed,
            id: id.into(),
            predictions,
            config,
            stereo,
        }
    }
}

/// The comparisons of one table (`pairs.json` holds one per table).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TablePairs {
    /// [`FORMAT`] when made (comparisons of another format are made again).
    #[serde(default)]
    pub format: u32,
    pub dataset: String,
    pub model: String,
    pub scenario: String,
    pub resamples: usize,
    pub seed: u64,
    pub confidence: f64,
    /// Test users (or samples) every audit of the table has: the resampling units.
    pub units: usize,
    /// The cells compared, by identity (a table whose cells change is compared again).
    pub cells: Vec<String>,
    pub pairs: Vec<Pair>,
}

/// Method `a` against method `b`: `A − B` of each figure, over the seeds they share.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Pair {
    pub a: String,
    pub b: String,
    /// The seeds paired (`None`: a prompting baseline's one audit).
    pub seeds: Vec<Option<u64>>,
    /// `f1`, `gd/<set>` and, on paper B's data, `stereo_avg/<attr>/<setting>`.
    pub figures: BTreeMap<String, Difference>,
}

/// Whether a figure is compared: F1 and the table's fairness figures, paper A's GD or, on
/// paper B's data (`paper_b`), its per-recommendation stereotype figure.
fn compared(key: &str, paper_b: bool) -> bool {
    key == "f1" || key.starts_with(if paper_b { "stereo_avg/" } else { "gd/" })
}

/// Compare every pair of `methods` (in that order: `a` before `b`) over `cells`, the cells
/// of table `[dataset, model, scenario]` (paper B's: `paper_b`), with the first cell's
/// resamples and confidence and the smallest of the cells' bootstrap seeds, drawn over the
/// users all cells have; the result does not depend on the order of `cells`.
pub fn compare(
    table: [&str; 3],
    cells: &[CellAudit],
    methods: &[String],
    data: &DataContext,
    paper_b: bool,
) -> Result<TablePairs> {
    let Some(first) = cells.first() else {
        return Err(MetricsError::Invalid(format!(
            "no audit to compare in table {}",
            table.join(" · ")
        )));
    };
    // Whatever order the cells come in: the smallest of their bootstrap seeds (an
    // experiment's audits differ only in the seed, which is the cell's).
    let seed = cells.iter().map(|c| c.config.seed).min().unwrap_or(0);
    let (resamples, confidence) = (first.config.bootstrap, first.config.confidence);
    let stereo: Vec<Vec<StereotypeInput>> = cells
        .iter()
        .map(|c| stereotype_inputs(&data.train, &c.stereo))
        .collect();
    let inputs: Vec<AuditInput> = cells
        .iter()
        .zip(&stereo)
        .map(|(c, s)| AuditInput {
            predictions: &c.predictions,
            context: &data.context,
            stereo: s,
            config: &c.config,
        })
        .collect();
    let shared = resample_together(&inputs, resamples, seed)?;
    let of =
        |m: &str| -> Vec<usize> { (0..cells.len()).filter(|&i| cells[i].method == m).collect() };
    let mut pairs = Vec::new();
    for (i, a) in methods.iter().enumerate() {
        for b in &methods[i + 1..] {
            let (ca, cb) = (of(a), of(b));
            let mut matched = Vec::new();
            for &x in &ca {
                for &y in &cb {
                    let (sx, sy) = (cells[x].seed, cells[y].seed);
                    if sx == sy || sx.is_none() || sy.is_none() {
                        matched.push((x, y));
                    }
                }
            }
            if matched.is_empty() {
                continue;
            }
            matched.sort_by_key(|&(x, y)| cells[x].seed.or(cells[y].seed));
            let figs: Vec<_> = matched
                .iter()
                .map(|&(x, y)| (&shared.figures[x], &shared.figures[y]))
                .collect();
            let keys: Vec<&String> = figs[0]
                .0
                .point
                .keys()
                .filter(|k| compared(k, paper_b))
                .collect();
            let figures = keys
                .into_iter()
                .filter_map(|k| Some((k.clone(), difference(&figs, k, confidence)?)))
                .collect();
            pairs.push(Pair {
                a: a.clone(),
                b: b.clone(),
                seeds: matched
                    .iter()
                    .map(|&(x, y)| cells[x].seed.or(cells[y].seed))
                    .collect(),
                figures,
            });
        }
    }
    Ok(TablePairs {
        format: FORMAT,
        dataset: table[0].into(),
        model: table[1].into(),
        scenario: table[2].into(),
        resamples,
        seed,
        confidence,
        units: shared.units,
        cells: cells.iter().map(|c| c.id.clone()).collect(),
        pairs,
    })
}

/// The version of [`TablePairs`]' figures and verdicts.
pub const FORMAT: u32 = 1;

/// The file of an experiment directory that holds its tables' comparisons.
pub const PAIRS: &str = "pairs.json";

/// The comparisons in `dir/pairs.json` (none when there is no such file).
pub fn read_pairs(dir: &Path) -> Result<Vec<TablePairs>> {
    let path = dir.join(PAIRS);
    match std::fs::read(&path) {
        Ok(b) => serde_json::from_slice(&b).map_err(|e| MetricsError::File {
            path,
            message: format!("not a comparisons file: {e}"),
        }),
        Err(_) => Ok(Vec::new()),
    }
}

/// Write `pairs` to `dir/pairs.json`, whole or not at all.
pub fn write_pairs(dir: &Path, pairs: &[TablePairs]) -> Result<()> {
    let json =
        serde_json::to_string_pretty(pairs).map_err(|e| MetricsError::Invalid(e.to_string()))?;
    fairrec_data::sample::write_set(dir, &[PAIRS], &[(PAIRS, (json + "\n").as_bytes())])?;
    Ok(())
}

/// The comparisons of table `key` (`[dataset, model, scenario]`) among `pairs`, if they
/// were made of the cells `ids` (in any order).
pub fn of_table<'a>(
    pairs: &'a [TablePairs],
    key: [&str; 3],
    mut ids: Vec<&str>,
) -> Option<&'a TablePairs> {
    ids.sort_unstable();
    pairs.iter().find(|p| {
        p.format == FORMAT
            && [&*p.dataset, &*p.model, &*p.scenario] == key
            && p.cells.iter().map(String::as_str).eq(ids.iter().copied())
    })
}

/// One table's finished cells, as [`refresh`] takes them.
pub struct TableCells {
    /// `[dataset, model, scenario]`.
    pub key: [String; 3],
    /// Per cell: method, seed (`None`: a prompting baseline), identity and audit directory.
    pub cells: Vec<(String, Option<u64>, String, std::path::PathBuf)>,
    /// The prepared dataset the audits joined (`None`: not known here; nothing new is
    /// compared).
    pub data: Option<std::path::PathBuf>,
    /// Paper B's table (its stereotype figure is compared, not GD).
    pub paper_b: bool,
}

/// The comparisons of `tables`: those of `old` whose table has the same cells are kept; the
/// others are compared again ([`compare`]) where every cell's audit can be read (a table
/// copied without its predictions keeps nothing, said in the log).
pub fn refresh(
    old: &[TablePairs],
    tables: &[TableCells],
    methods: &[String],
) -> Result<Vec<TablePairs>> {
    let mut out = Vec::new();
    for t in tables {
        let key = [t.key[0].as_str(), &t.key[1], &t.key[2]];
        if let Some(p) = of_table(old, key, t.cells.iter().map(|c| c.2.as_str()).collect()) {
            out.push(p.clone());
            continue;
        }
        let Some(data) = &t.data else { continue };
        let audits: Result<Vec<CellAudit>> = t
            .cells
            .iter()
            .map(|(m, seed, id, dir)| CellAudit::read(dir, m, *seed, id))
            .collect();
        match audits {
            Ok(mut audits) => {
                audits.sort_by(|a, b| a.id.cmp(&b.id));
                let data = DataContext::read(data)?;
                out.push(compare(key, &audits, methods, &data, t.paper_b)?);
            }
            Err(e) => tracing::warn!("table {}: not compared: {e}", key.join(" · ")),
        }
    }
    Ok(out)
}

/// A compared figure's column header, its scale, and whether lower is fairer (else higher
/// is more accurate).
fn column(key: &str) -> (String, f64, bool) {
    if let Some(set) = key.strip_prefix("gd/") {
        (format!("GD ×10⁻² ({set})"), 100.0, true)
    } else if let Some(rest) = key.strip_prefix("stereo_avg/") {
        let (attr, setting) = rest.split_once('/').unwrap_or((rest, ""));
        (format!("{setting} ({attr})"), 1.0, true)
    } else {
        ("F1 %".into(), 100.0, false)
    }
}

impl TablePairs {
    /// The comparisons as report blocks: one row per pair with `A − B` of each figure and
    /// its interval (`*` where the data orders the two: [`Difference::ordered`]), and the
    /// orders the data supports, said in words.
    pub fn blocks(&self) -> Vec<crate::report::Block> {
        use crate::report::Block;
        let mut keys: Vec<&String> = self.pairs.iter().flat_map(|p| p.figures.keys()).collect();
        // F1, then the joint GD before each attribute's, then the settings in paper B's order.
        let setting = |k: &str| {
            ["implicit", "explicit", "counterfactual"]
                .iter()
                .position(|s| k.ends_with(s))
        };
        keys.sort_by_key(|k| {
            (
                k.as_str() != "f1",
                !k.contains(','),
                setting(k),
                k.to_string(),
            )
        });
        keys.dedup();
        let mut head = vec!["A − B".to_string(), "Seeds".into()];
        head.extend(keys.iter().map(|k| column(k).0));
        head.push("What the data supports".into());
        let mut rows = Vec::new();
        for p in &self.pairs {
            let mut row = vec![format!("{} − {}", p.a, p.b), p.seeds.len().to_string()];
            // (what, who, than) -> figures: one sentence per order, naming its figures.
            let mut says: BTreeMap<(bool, &String, &String), Vec<String>> = BTreeMap::new();
            for k in &keys {
                let (_, scale, fairness) = column(k);
                let name = k.replace("stereo_avg/", "").replace("gd/", "GD ");
                let Some(d) = p.figures.get(*k) else {
                    row.push("–".into());
                    continue;
                };
                let order = d.ordered();
                row.push(match d.ci {
                    Some([lo, hi]) => format!(
                        "{:+.2} [{:+.2}, {:+.2}]{}",
                        d.estimate * scale,
                        lo * scale,
                        hi * scale,
                        if order.is_some() { " *" } else { "" }
                    ),
                    None => format!("{:+.2}", d.estimate * scale),
                });
                // A lower fairness figure, or a higher F1, is A's when A − B has that sign.
                let a_wins = match (order, fairness) {
                    (None, _) => continue,
                    (Some(o), true) => o == std::cmp::Ordering::Less,
                    (Some(o), false) => o == std::cmp::Ordering::Greater,
                };
                let (w, l) = if a_wins { (&p.a, &p.b) } else { (&p.b, &p.a) };
                says.entry((fairness, w, l)).or_default().push(name);
            }
            let says: Vec<String> = says
                .into_iter()
                .map(|((fairness, w, l), names)| match fairness {
                    true => format!("{w} fairer than {l} ({})", names.join("; ")),
                    false => format!("{w} more accurate than {l}"),
                })
                .collect();
            row.push(if says.is_empty() {
                "no order".into()
            } else {
                says.join("; ")
            });
            rows.push(row);
        }
        let n = rows.len();
        let ordered: Vec<Vec<String>> = rows
            .iter()
            .filter(|r| r.last().is_some_and(|v| v != "no order"))
            .cloned()
            .collect();
        vec![
            Block::Para(format!(
                "Paired comparisons (ours): the pairs of methods that the data orders ({} of {n}; all of them below). A − B of each figure, the mean over the seeds both methods have, with its {:.0} % paired bootstrap interval over the {} test users every audit of this table shares ({} resamples, seed {}; each resample draws the same users for every method and seed, so the users' shared difficulty cancels in the difference). The interval is the test sample's uncertainty, not the spread over seeds: `*` marks a difference whose interval excludes 0 and whose sign every seed's own difference shares, the only differences this table calls an order. Lower GD and stereotype figures are fairer.",
                ordered.len(),
                100.0 * self.confidence,
                self.units,
                self.resamples,
                self.seed
            )),
            match ordered.is_empty() {
                true => Block::Para("No pair is ordered: in every pair each difference's interval includes 0 or a seed's own difference has the other sign.".into()),
                false => Block::Table(head.clone(), ordered),
            },
            Block::Details(format!("All {n} pairs of methods"), vec![Block::Table(head, rows)]),
        ]
    }
}
