//! Paper A's section of an experiment's table: F1, AUC, and GD and Rate of the joint
//! scenario and each attribute, with the paper's "Imp. (%)" against LLM Rec.

use super::{answer_notes, interval_table, paper_value, tradeoff_chart, Row};
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

const UNITS: [(&str, &str, f64); 2] = [("gd", "GD ×10⁻²", 100.0), ("rate", "Rate ×10⁻²", 100.0)];

/// The row the paper's "Imp. (%)" columns compare against: LLM Rec ("B" in its tables).
const BASELINE: &str = "llm-rec";

/// Paper A's "Imp. (%)" ([`fairrec_metrics::fairness::improvement`]) of a (baseline,
/// value) pair; "–" where either is undefined.
fn imp(pair: Option<(f64, f64)>) -> String {
    let change = pair.and_then(|(b, v)| fairrec_metrics::fairness::improvement(b, v));
    change.map_or("–".into(), |c| format!("{c:+.2}"))
}

/// The mean of `metric` over the row's cells.
fn mean(r: &Row, metric: &str) -> Option<f64> {
    let v = r.vals(metric);
    (!v.is_empty()).then(|| super::mean_std(&v).0)
}

/// Paper A's section: F1, AUC, and GD and Rate of the joint scenario and each attribute;
/// "Imp. (%)" of F1 and the first key's GD against LLM Rec where the grid has it; the
/// paper's F1, GD and its GD's Imp. beside, and its Rate as published.
pub(super) fn section_a(
    blocks: &mut Vec<Block>,
    csv: &mut String,
    name: &str,
    sc: &str,
    rows: &[Row],
    paper: Option<&crate::experiment::spec::PaperRows>,
) {
    blocks.push(Block::Para("F1 and AUC are of the original prompts (true attributes stated). GD and Rate follow paper A's Eq. 2-3 with g = F1, read counterfactually (the same test users stated with every value, against the neutral prompt). Imp. (%) is the paper's relative change against LLM Rec (negative: lower than LLM Rec, which is fairer for GD). The paper's Rate is shown as published: no reading of Eq. 3 reproduces it (as printed, Eq. 3 cannot go below GD / (F1 √|G|), and every Table 1 value does; the squared deviation is (GD/F1)², which matches only some cells), so these tables compare with the paper on F1 and GD.".into()));
    let keys = fairness_keys(sc);
    let gd0 = format!("gd/{}", keys[0]);
    let base = rows.iter().find(|r| r.method == BASELINE);
    let paper_of = |m: &str, k: &str| paper.and_then(|p| p.get(m)).and_then(|r| r.get(k)).copied();
    let mut head = vec![
        "Method".to_string(),
        "n".into(),
        "F1 %".into(),
        "AUC %".into(),
    ];
    // The joint set here; each attribute's in a collapsed table after it.
    let label = |k: &String| UNITS.map(|(_, l, _)| format!("{l} ({k})"));
    head.extend(label(&keys[0]));
    let mut by_attr = (vec!["Method".to_string()], Vec::new());
    by_attr.0.extend(keys[1..].iter().flat_map(label));
    if base.is_some() {
        head.extend(["F1 Imp. %".into(), format!("GD Imp. % ({})", keys[0])]);
    }
    if paper.is_some() {
        head.extend([
            "paper F1 %".into(),
            "paper GD ×10⁻²".into(),
            "paper GD Imp. %".into(),
            "paper Rate ×10⁻³ (as published)".into(),
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
        let figures = |k: &String| UNITS.map(|(m, _, sc)| r.figure(&format!("{m}/{k}"), sc));
        row.extend(figures(&keys[0]));
        let mut attr_row = vec![r.method.to_string()];
        attr_row.extend(keys[1..].iter().flat_map(figures));
        by_attr.1.push(attr_row);
        // The baseline's own Imp. is "–", as in the paper.
        let not_base = |p: Option<(f64, f64)>| p.filter(|_| r.method != BASELINE);
        if let Some(b) = base {
            let vs = |m: &str| imp(not_base(mean(b, m).zip(mean(r, m))));
            row.extend([vs("f1"), vs(&gd0)]);
        }
        if paper.is_some() {
            row.extend([
                paper_value(paper, r.method, "f1", 1.0),
                paper_value(paper, r.method, "gd", 100.0),
                imp(not_base(
                    paper_of(BASELINE, "gd").zip(paper_of(r.method, "gd")),
                )),
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
    if keys.len() > 1 {
        let t = Block::Table(by_attr.0, by_attr.1);
        blocks.push(Block::Details(
            "GD and Rate of each attribute".into(),
            vec![t],
        ));
    }
    blocks.extend(answer_notes(rows, "A GD near 0 then says that the stated attributes cannot move an answer that never changes, not that the model is fair."));
    let mut columns = vec![("f1".to_string(), "F1 %".to_string(), 100.0)];
    columns.extend(
        keys.iter()
            .map(|k| (format!("gd/{k}"), format!("GD ×10⁻² ({k})"), 100.0)),
    );
    blocks.extend(interval_table(rows, &columns));
    let title = format!("F1 against GD ({})", keys[0]);
    let (f1, gd) = ("F1 %", format!("GD ×10⁻² ({})", keys[0]));
    let y = (gd0.as_str(), 100.0, "gd", 100.0, gd.as_str());
    blocks.extend(tradeoff_chart(
        &title,
        rows,
        paper,
        ("f1", 100.0, "f1", 1.0, f1),
        y,
    ));
}
