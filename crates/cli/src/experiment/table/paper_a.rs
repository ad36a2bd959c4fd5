//! Paper A's section of an experiment's table: F1, AUC, and GD, Rate and Rate² of the
//! joint scenario and each attribute.

use super::{answer_notes, bars_chart, interval_table, paper_value, Row};
use fairrec_metrics::report::Block;

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

/// Paper A's section: F1, AUC, and GD, Rate and Rate² of the joint scenario and each
/// attribute.
pub(super) fn section_a(
    blocks: &mut Vec<Block>,
    csv: &mut String,
    name: &str,
    sc: &str,
    rows: &[Row],
    paper: Option<&crate::experiment::spec::PaperRows>,
) {
    blocks.push(Block::Para("F1 and AUC are of the original prompts (true attributes stated). GD and Rate follow paper A's Eq. 2-3 with g = F1, read counterfactually (the same test users stated with every value, against the neutral prompt); Rate² is the mean squared relative deviation, which is what the paper's tables print under “Rate”.".into()));
    let keys = fairness_keys(sc);
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
    let mut table = Vec::new();
    for r in rows {
        let mut row = vec![
            r.method.to_string(),
            r.cells.len().to_string(),
            r.figure("f1", 100.0),
            r.figure("auc", 100.0),
        ];
        for k in &keys {
            for (m, _, scale) in UNITS {
                row.push(r.figure(&format!("{m}/{k}"), scale));
            }
        }
        if paper.is_some() {
            row.extend([
                paper_value(paper, r.method, "f1", 1.0),
                paper_value(paper, r.method, "gd", 100.0),
                paper_value(paper, r.method, "rate", 1000.0),
            ]);
        }
        table.push(row);
        *csv += &r.csv(name, "f1");
        for k in &keys {
            for (m, _, _) in UNITS {
                *csv += &r.csv(name, &format!("{m}/{k}"));
            }
        }
    }
    blocks.push(Block::Table(head, table));
    blocks.extend(answer_notes(rows, "A GD near 0 then says that the stated attributes cannot move an answer that never changes, not that the model is fair."));
    let mut columns = vec![("f1".to_string(), "F1 %".to_string(), 100.0)];
    columns.extend(
        keys.iter()
            .map(|k| (format!("gd/{k}"), format!("GD ×10⁻² ({k})"), 100.0)),
    );
    blocks.extend(interval_table(rows, &columns));
    let title = format!(
        "GD ({}) ×10⁻², mean ± std over seeds; lower is fairer",
        keys[0]
    );
    blocks.extend(bars_chart(&title, rows, &format!("gd/{}", keys[0]), 100.0));
}
