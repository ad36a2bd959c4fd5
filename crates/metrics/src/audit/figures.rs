//! An audit's figures under flat names (ours), for tables that set runs side by side.

use super::Metrics;
use std::collections::BTreeMap;

impl Metrics {
    /// The audit's figures by flat name, as the experiment tables read them: `f1`, `auc`,
    /// `precision`, `recall` of the original prompts; paper A's `gd/<attrs>`, `rate/<attrs>`,
    /// `rate_sq/<attrs>`; for paper B's cells (`paper_b`), `stereo_avg/<attr>/<setting>` (the
    /// per-recommendation average, paper B's scale, with `stereo_avg_same/...` and
    /// `stereo_avg_other/...`), `stereo/<attr>/<setting>` (Σ|Δ|, with `stereo_same/...`
    /// and `stereo_other/...`), `pair/<attr>/<setting>/users=<s'>,items=<s>` (signed Delta)
    /// and `side/<attr>/<side>/<figure>` (explicit-setting performance by user or item
    /// group). Where the audit has a bootstrap interval for a figure
    /// `k` (over test users, `metrics.json` → `ci`), its ends are `ci_lo/k` and `ci_hi/k`, and
    /// `ci_level` is the interval's confidence.
    pub fn figures(&self, paper_b: bool) -> BTreeMap<String, f64> {
        let m = self;
        let mut out = BTreeMap::new();
        let mut put = |key: String, x: Option<f64>, ci: Option<&[f64; 2]>| {
            if let Some(x) = x {
                if let Some([lo, hi]) = ci {
                    out.insert(format!("ci_lo/{key}"), *lo);
                    out.insert(format!("ci_hi/{key}"), *hi);
                }
                out.insert(key, x);
            }
        };
        put("ci_level".into(), Some(m.bootstrap.confidence), None);
        let o = &m.original;
        for (k, x) in [
            ("f1", o.f1),
            ("auc", o.auc),
            ("precision", o.precision),
            ("recall", o.recall),
        ] {
            put(k.into(), x, m.ci.get(&format!("original.{k}")));
        }
        for (attr, e) in &m.fairness {
            let p = &e.point;
            for (k, x) in [("gd", p.gd), ("rate", p.rate), ("rate_sq", p.rate_sq)] {
                put(format!("{k}/{attr}"), x, e.ci.get(k));
            }
        }
        for (attr, e) in m.stereotype.iter().flatten().filter(|_| paper_b) {
            for (setting, f) in &e.settings {
                for (key, name, x) in [
                    ("stereo", "total", f.total),
                    ("stereo_same", "same_group", f.same_group),
                    ("stereo_other", "other_group", f.other_group),
                    ("stereo_avg", "average", f.average),
                    ("stereo_avg_same", "average_same", f.average_same),
                    ("stereo_avg_other", "average_other", f.average_other),
                ] {
                    let ci = e.ci.get(&format!("{setting}.{name}"));
                    put(format!("{key}/{attr}/{setting}"), x, ci);
                }
                for (pair, d) in &f.pairs {
                    put(format!("pair/{attr}/{setting}/{pair}"), *d, None);
                }
            }
            for (side, c) in &e.performance {
                for (k, x) in [
                    ("f1", c.f1),
                    ("auc", c.auc),
                    ("precision", c.precision),
                    ("recall", c.recall),
                ] {
                    put(format!("side/{attr}/{side}/{k}"), x, None);
                }
            }
        }
        out
    }
}

impl Metrics {
    /// The audit's headline figures as the commands print them on the console.
    pub fn console_lines(&self) -> Vec<String> {
        let pct = |v: Option<f64>| v.map_or("undefined".into(), |v| format!("{:.2}%", 100.0 * v));
        let sci = |v: Option<f64>| v.map_or("undefined".into(), |v| format!("{v:.3e}"));
        let mut out = vec![
            format!("audited {} predictions", self.n_predictions),
            format!(
                "  original F1 {} / neutral F1 {}",
                pct(self.original.f1),
                pct(self.neutral.f1)
            ),
        ];
        for (k, f) in &self.fairness {
            let p = &f.point;
            out.push(format!(
                "  {k:<11} GD {}  Rate {}  Rate^2 {}",
                pct(p.gd),
                sci(p.rate),
                sci(p.rate_sq)
            ));
        }
        out
    }
}
