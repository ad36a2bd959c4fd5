//! The report's section on fairlearn / Aequitas group metrics ([`crate::audit::groups`]).

use super::{pct, with_ci, Block};
use crate::audit::groups::{GroupTable, RATES};
use crate::audit::Metrics;

/// A rate in percent with its interval, if any.
fn rate(t: &GroupTable, key: &str, v: Option<f64>) -> String {
    with_ci(pct(v), t.ci.get(key), &|x| format!("{:.2}", 100.0 * x))
}

/// One table per group set: each group's rates and Aequitas disparities, then the set's
/// parity differences and flip rate.
pub(super) fn group_blocks(m: &Metrics, out: &mut Vec<Block>) {
    if m.group_metrics.is_empty() {
        return;
    }
    out.push(Block::Heading(
        2,
        "Group metrics (fairlearn, Aequitas)".into(),
    ));
    out.push(Block::Para("Selection rate (share answered Yes), TPR, FPR and precision per group, in %, with bootstrap intervals. `variants:` compares the prompts stating each value over the same users (counterfactual); `users:` the users' true groups on the original prompts. Demographic-parity difference = max − min selection rate; equalized-odds difference = the larger of the TPR and FPR differences (fairlearn's definitions); Aequitas's disparity is a group's rate over the largest group's, flagged outside [0.8, 1.25]; the flip rate is the share of samples whose Yes/No changes when only the stated value does.".into()));
    for (scope, t) in &m.group_metrics {
        let mut head = vec![scope.clone(), "n".into()];
        head.extend(RATES.map(|r| format!("{r} %")));
        head.push("Aequitas flags".into());
        let rows = t
            .groups
            .iter()
            .map(|(g, r)| {
                let mut row = vec![g.clone(), format!("{:.0}", r.n)];
                row.extend(RATES.map(|k| rate(t, &format!("{g}.{k}"), r.get(k))));
                let flags: Vec<&str> = (t.aequitas_flagged.iter())
                    .filter_map(|f| f.strip_prefix(&format!("{g}.")))
                    .collect();
                row.push(if *g == t.reference {
                    "reference".into()
                } else {
                    flags.join(", ")
                });
                row
            })
            .collect();
        out.push(Block::Table(head, rows));
        let mut s = format!(
            "`{scope}`: demographic-parity difference {} points, equalized-odds difference {} points",
            rate(t, "dp_difference", t.demographic_parity_difference),
            rate(t, "eo_difference", t.equalized_odds_difference)
        );
        if t.flip_rate.is_some() {
            s += &format!(", flip rate {} %", rate(t, "flip_rate", t.flip_rate));
        }
        out.push(Block::Para(s + "."));
    }
}
