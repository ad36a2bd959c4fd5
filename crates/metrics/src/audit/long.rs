//! `metrics.csv`: an audit in long format (ours; issue 27), one row per scope × group ×
//! metric with its estimate, bootstrap interval and count, which `pandas.read_csv` loads
//! as it is (`df.pivot_table(...)` or a filter on `scope` / `metric` then gives any table).
//!
//! Columns: `scope, group, metric, estimate, ci_low, ci_high, n`. Scopes: `original`,
//! `neutral` (the classification figures of those prompts), `variant` (every variant, the
//! group column naming it), `fairness:<set>` (paper A: `gd`, `rate`, `rate_sq` with an empty
//! group; each group's `f1` and `diff`, its F1 minus the neutral F1), `stereotype:<attr>`
//! (paper B: the group column is the setting, `implicit`/`explicit`/`counterfactual`; the
//! metrics `total`, `same_group`, `other_group`, `average`, `average_same`,
//! `average_other` and each pair `users=<s'>,items=<s>`) and `side:<attr>` (the explicit
//! setting's classification by user group, item group and consistency) and
//! `groups:variants:<set>` / `groups:users:<attr or set>` (fairlearn / Aequitas group metrics:
//! each group's rates, and with an empty group the disparities, `dp_difference`,
//! `eo_difference`, `flip_rate`). An undefined figure
//! has an empty estimate; a figure without an interval has empty bounds.

use super::{ClassBlock, Metrics};
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// The header of `metrics.csv`.
pub const HEADER: &str = "scope,group,metric,estimate,ci_low,ci_high,n";

/// A CSV field, quoted when it holds a comma, a quote or a line break (RFC 4180).
fn field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn num(v: Option<f64>) -> String {
    v.map_or(String::new(), |v| v.to_string())
}

struct Rows(String);

impl Rows {
    fn push(
        &mut self,
        scope: &str,
        group: &str,
        metric: &str,
        v: Option<f64>,
        ci: Option<&[f64; 2]>,
        n: Option<f64>,
    ) {
        writeln!(
            self.0,
            "{},{},{},{},{},{},{}",
            field(scope),
            field(group),
            field(metric),
            num(v),
            num(ci.map(|c| c[0])),
            num(ci.map(|c| c[1])),
            num(n)
        )
        .expect("writing to a String");
    }

    /// F1, precision, recall and AUC of `c`; `ci(metric)` is its interval, if any.
    fn class(
        &mut self,
        scope: &str,
        group: &str,
        c: &ClassBlock,
        ci: &dyn Fn(&str) -> Option<[f64; 2]>,
    ) {
        let n = Some(c.n as f64);
        for (k, v) in [
            ("f1", c.f1),
            ("precision", c.precision),
            ("recall", c.recall),
            ("auc", c.auc),
        ] {
            self.push(scope, group, k, v, ci(k).as_ref(), n);
        }
    }
}

impl Metrics {
    /// The audit as `metrics.csv` ([`self`](crate::audit::long) says the layout).
    pub fn to_long_csv(&self) -> String {
        let mut r = Rows(format!("{HEADER}\n"));
        let none = |_: &str| None;
        for (scope, c) in [("original", &self.original), ("neutral", &self.neutral)] {
            r.class(scope, "", c, &|k| {
                self.ci.get(&format!("{scope}.{k}")).copied()
            });
        }
        for (name, c) in &self.variants {
            r.class("variant", name, c, &none);
        }
        for (set, e) in &self.fairness {
            let (scope, p) = (format!("fairness:{set}"), &e.point);
            for (k, v) in [("gd", p.gd), ("rate", p.rate), ("rate_sq", p.rate_sq)] {
                r.push(&scope, "", k, v, e.ci.get(k), None);
            }
            for (g, s) in &p.groups {
                let ci = |k: &str| e.ci.get(&format!("groups.{g}.{k}"));
                r.push(&scope, g, "f1", s.f1, ci("f1"), Some(s.n));
                let diff = s.f1.zip(p.neutral_f1).map(|(a, b)| a - b);
                r.push(&scope, g, "diff", diff, ci("diff"), Some(s.n));
            }
        }
        for (attr, e) in self.stereotype.iter().flatten() {
            let scope = format!("stereotype:{attr}");
            for (setting, f) in &e.settings {
                let mut figures: BTreeMap<&str, Option<f64>> = [
                    ("total", f.total),
                    ("same_group", f.same_group),
                    ("other_group", f.other_group),
                    ("average", f.average),
                    ("average_same", f.average_same),
                    ("average_other", f.average_other),
                ]
                .into();
                figures.extend(f.pairs.iter().map(|(k, v)| (k.as_str(), *v)));
                for (k, v) in figures {
                    r.push(
                        &scope,
                        setting,
                        k,
                        v,
                        e.ci.get(&format!("{setting}.{k}")),
                        None,
                    );
                }
            }
            for (side, c) in &e.performance {
                r.class(&format!("side:{attr}"), side, c, &none);
            }
        }
        for (scope, t) in &self.group_metrics {
            let scope = format!("groups:{scope}");
            for (k, v) in t.figures() {
                let (group, metric) = match k.rsplit_once('.') {
                    Some((g, m)) if t.groups.contains_key(g) => (g.to_string(), m.to_string()),
                    _ => (String::new(), k.clone()),
                };
                let n = t.groups.get(&group).map(|r| r.n);
                r.push(&scope, &group, &metric, v, t.ci.get(&k), n);
            }
        }
        r.0
    }
}
