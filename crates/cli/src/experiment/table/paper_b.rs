//! Paper B's section of an experiment table (Tables II, IV, V, VI of the MoS paper): per
//! method, stereotype-aware fairness in the implicit, explicit and counterfactual settings,
//! AUC, precision and recall of the explicit prompts, and the share of parameters trained;
//! then the user-side / item-side breakdown (Figure 5) with the neutral items below the
//! z threshold (Figure 6).

use super::{answer_notes, fmt, interval_table, paper_value, tradeoff_chart, Row};
use crate::experiment::spec::PaperRows;
use fairrec_metrics::report::Block;

const SETTINGS: [&str; 3] = ["implicit", "explicit", "counterfactual"];
const PERFORMANCE: [(&str, &str); 3] = [
    ("auc", "AUC"),
    ("precision", "Precision"),
    ("recall", "Recall"),
];

/// `100 * sum |Delta|` of one side in the explicit setting, from a cell's signed pairs
/// (`pair/<attr>/explicit/users=<u>,items=<s>`): over the item groups for `users=<u>`,
/// over the user groups for `items=<s>`.
fn side_fairness(c: &crate::experiment::CellResult, attr: &str, side: &str) -> Option<f64> {
    let prefix = format!("pair/{attr}/explicit/");
    let mut total = None;
    for (k, v) in c.metrics.range(prefix.clone()..) {
        let Some(pair) = k.strip_prefix(&prefix) else {
            break;
        };
        let (users, items) = pair.split_once(',')?;
        if users == side || items == side {
            total = Some(total.unwrap_or(0.0) + 100.0 * v.abs());
        }
    }
    total
}

pub(super) fn section(
    blocks: &mut Vec<Block>,
    csv: &mut String,
    name: &str,
    sc: &str,
    rows: &[Row],
    paper: Option<&PaperRows>,
) {
    blocks.push(Block::Para("Stereotype-aware fairness (paper B; the definitions and why the headline is ours are in `fairrec_metrics::stereotype`). The setting columns are paper B's scale: 100 × the mean, over the recommendations (Yes answers) of items in a stereotype group, of |1[item in the user's group] − the user's own-group share of their history|; lower is fairer. Σ|Δ| is 100 × Σ |Δ(s′, s)| over the pairs of user group s′ and item stereotype group s, where Δ is the share of group-s items among the targets answered Yes for users of s′ minus their share in those users' histories (a sum, so not on the paper's scale). Implicit: no attribute stated; explicit: the user's true value; counterfactual: the other value. AUC, precision and recall are of the explicit prompts. Trainable %: trained parameters over the base model's.".into()));
    for attr in sc.split(',') {
        let mut head = vec!["Method".to_string(), "n".into(), "Trainable %".into()];
        head.extend(SETTINGS.map(|s| format!("{s} ({attr})")));
        head.extend(SETTINGS.map(|s| format!("Σ|Δ| {s}")));
        head.extend(PERFORMANCE.map(|(_, l)| format!("{l} %")));
        let paper_trainable =
            paper.is_some_and(|p| p.values().any(|r| r.contains_key("trainable")));
        if paper.is_some() {
            head.extend(SETTINGS.map(|s| format!("paper {s}")));
            head.extend(PERFORMANCE.map(|(_, l)| format!("paper {l} %")));
        }
        if paper_trainable {
            head.push("paper Trainable %".into());
        }
        let mut table = Vec::new();
        for r in rows {
            let trainable = r.vals("trainable");
            let mut row = vec![
                r.method.to_string(),
                r.cells.len().to_string(),
                if trainable.is_empty() {
                    "–".into()
                } else {
                    format!("{:.4}", 100.0 * trainable[0])
                },
            ];
            for key in ["stereo_avg", "stereo"] {
                for s in SETTINGS {
                    let key = format!("{key}/{attr}/{s}");
                    row.push(r.figure(&key, 1.0));
                    *csv += &r.csv(name, &key);
                }
            }
            for (k, _) in PERFORMANCE {
                row.push(r.figure(k, 100.0));
                *csv += &r.csv(name, k);
            }
            if paper.is_some() {
                for s in SETTINGS {
                    row.push(paper_value(paper, r.method, s, 1.0));
                }
                for (k, _) in PERFORMANCE {
                    row.push(paper_value(paper, r.method, k, 1.0));
                }
            }
            if paper_trainable {
                row.push(paper_value(paper, r.method, "trainable", 1.0));
            }
            table.push(row);
        }
        blocks.push(Block::Table(head, table));
        blocks.extend(answer_notes(rows, "Stereotype-aware fairness then compares the test targets' own group shares with the histories', not choices of the model."));
        let mut columns: Vec<(String, String, f64)> = SETTINGS
            .iter()
            .map(|s| (format!("stereo_avg/{attr}/{s}"), format!("{s} ({attr})")))
            .chain(
                SETTINGS
                    .iter()
                    .map(|s| (format!("stereo/{attr}/{s}"), format!("Σ|Δ| {s}"))),
            )
            .map(|(k, l)| (k, l, 1.0))
            .collect();
        columns.extend(
            PERFORMANCE[1..]
                .iter()
                .map(|(k, l)| (k.to_string(), format!("{l} %"), 100.0)),
        );
        let intervals = interval_table(rows, &columns);
        if !intervals.is_empty() {
            blocks.extend(intervals);
            blocks.push(Block::Note("Read the intervals as the spread that a test sample of this size allows: two methods differ only where their intervals are apart. Σ|Δ| adds absolute values, which resampling inflates, so its intervals lie mostly above the figure.".into()));
        }
        let title = format!("AUC against stereotype-aware fairness ({attr}, explicit)");
        let y = format!("stereo_avg/{attr}/explicit");
        let y = (y.as_str(), 1.0, "explicit", 1.0, "explicit setting");
        blocks.extend(tradeoff_chart(
            &title,
            rows,
            paper,
            ("auc", 100.0, "auc", 1.0, "AUC %"),
            y,
        ));
        side_table(blocks, csv, name, attr, rows);
    }
}

/// The user-side / item-side breakdown of the explicit setting (Figure 5) and the neutral
/// items, below the z threshold (Figure 6).
fn side_table(blocks: &mut Vec<Block>, csv: &mut String, name: &str, attr: &str, rows: &[Row]) {
    let prefix = format!("side/{attr}/");
    let mut sides: Vec<String> = Vec::new();
    for r in rows {
        for c in &r.cells {
            for k in c.metrics.keys() {
                if let Some(side) = k.strip_prefix(&prefix).and_then(|s| s.split_once('/')) {
                    if !sides.iter().any(|x| x == side.0) {
                        sides.push(side.0.to_string());
                    }
                }
            }
        }
    }
    if sides.is_empty() {
        return;
    }
    // Users, the item groups, the neutral items, then consistent / inconsistent pairs.
    let rank = |s: &str| match s {
        _ if s.starts_with("users=") => 0,
        "items=neutral" => 2,
        _ if s.starts_with("items=") => 1,
        _ => 3,
    };
    sides.sort_by_key(|s| (rank(s), s.clone()));
    blocks.push(Block::Heading(
        3,
        format!("By side ({attr}, explicit setting)"),
    ));
    blocks.push(Block::Para("Each side's predictions: `users=g` are the targets of users of group g, `items=g` the targets in item stereotype group g, `items=neutral` the targets in no group (stereotype z-score below the threshold: paper B's Figure 6 compares them with the grouped items), `match=consistent` / `match=inconsistent` the targets in the user's own group / in another group (Table I). Σ|Δ| of a side sums 100 × |Δ| over the pairs it takes part in (Figure 5): same-group pairs for `match=consistent`, other-group pairs for `match=inconsistent`; the average of those two rows is the headline's over consistent or inconsistent recommendations only (Table I's fairness parts).".into()));
    let mut head = vec![
        "Method".to_string(),
        "Side".into(),
        "average".into(),
        "Σ|Δ|".into(),
    ];
    head.extend(PERFORMANCE.map(|(_, l)| format!("{l} %")));
    let mut table = Vec::new();
    for r in rows {
        for side in &sides {
            let fair: Vec<f64> = match side.as_str() {
                "match=consistent" => r.vals(&format!("stereo_same/{attr}/explicit")),
                "match=inconsistent" => r.vals(&format!("stereo_other/{attr}/explicit")),
                _ => r
                    .cells
                    .iter()
                    .filter_map(|c| side_fairness(c, attr, side))
                    .collect(),
            };
            let average = match side.as_str() {
                "match=consistent" => r.figure(&format!("stereo_avg_same/{attr}/explicit"), 1.0),
                "match=inconsistent" => r.figure(&format!("stereo_avg_other/{attr}/explicit"), 1.0),
                _ => "–".into(),
            };
            let mut row = vec![
                r.method.to_string(),
                side.clone(),
                average,
                fmt(&fair, 1.0, r.cells.len()),
            ];
            for (k, _) in PERFORMANCE {
                let key = format!("{prefix}{side}/{k}");
                row.push(r.figure(&key, 100.0));
                *csv += &r.csv(name, &key);
            }
            table.push(row);
        }
    }
    blocks.push(Block::Table(head, table));
}
