//! Group metrics as fairlearn's `MetricFrame` and Aequitas report them (ours; issue 27),
//! beside the papers' figures, for the users a researcher already compares this way.
//!
//! Two kinds of groups, each a [`GroupTable`] in `metrics.json` → `group_metrics`:
//! * `variants:<set>`: the counterfactual groups, the prompts stating each value of an
//!   attribute set (`gender=female`, ... over the same users);
//! * `users:<attr>`: the users' true groups, on the original prompts (and `users:<a>,<b>`
//!   for the joint groups of several attributes, keyed `a=x,b=y`).
//!
//! Per group: selection rate (share answered Yes), TPR (recall), FPR and precision, from
//! the group's confusion counts. Disparities as fairlearn defines them
//! (`MetricFrame.difference/ratio`): `between_groups` is max − min over groups and min / max;
//! `to_overall` is max |group − overall| and min over groups of min(group / overall,
//! overall / group), where overall pools every group's predictions. Demographic-parity
//! difference: the selection rate's between-groups difference; equalized-odds difference:
//! the larger of TPR's and FPR's (fairlearn's `demographic_parity_difference`,
//! `equalized_odds_difference`). Aequitas's disparity: each group's figure over the
//! reference group's, the largest group (Aequitas's majority default), flagged outside
//! [0.8, 1.25] (its τ = 0.8). For `variants:` sets, the flip rate: the share of samples
//! whose Yes/No answer changes across the set's prompts, i.e. changes when only the stated
//! attribute does. Every figure gets the audit's bootstrap interval (`ci`, over users).

use crate::classification::Confusion;
use std::collections::BTreeMap;

/// One group's rates.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Rates {
    pub selection_rate: Option<f64>,
    pub tpr: Option<f64>,
    pub fpr: Option<f64>,
    pub precision: Option<f64>,
    /// Predictions (a bootstrap weight sum when resampled).
    pub n: f64,
}

/// The rates compared across groups.
pub const RATES: [&str; 4] = ["selection_rate", "tpr", "fpr", "precision"];

fn ratio(a: f64, b: f64) -> Option<f64> {
    (b > 0.0).then(|| a / b)
}

impl Rates {
    pub fn of(c: &Confusion) -> Rates {
        let n = c.n();
        Rates {
            selection_rate: ratio(c.tp + c.fp, n),
            tpr: ratio(c.tp, c.tp + c.fn_),
            fpr: ratio(c.fp, c.fp + c.tn),
            precision: ratio(c.tp, c.tp + c.fp),
            n,
        }
    }

    pub fn get(&self, metric: &str) -> Option<f64> {
        match metric {
            "selection_rate" => self.selection_rate,
            "tpr" => self.tpr,
            "fpr" => self.fpr,
            "precision" => self.precision,
            _ => None,
        }
    }
}

/// fairlearn's disparities of one rate.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Disparity {
    pub difference: Option<f64>,
    pub ratio: Option<f64>,
    pub difference_to_overall: Option<f64>,
    pub ratio_to_overall: Option<f64>,
}

/// The group metrics of one set of groups.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct GroupTable {
    pub groups: BTreeMap<String, Rates>,
    pub overall: Rates,
    /// Rate -> its disparities.
    pub disparities: BTreeMap<String, Disparity>,
    pub demographic_parity_difference: Option<f64>,
    pub equalized_odds_difference: Option<f64>,
    /// The largest group, Aequitas's reference.
    pub reference: String,
    /// `<group>.<rate>` -> the group's rate over the reference's.
    pub aequitas_disparity: BTreeMap<String, f64>,
    /// The `aequitas_disparity` keys outside [0.8, 1.25].
    pub aequitas_flagged: Vec<String>,
    /// `variants:` sets: share of samples whose answer changes with the stated value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flip_rate: Option<f64>,
    /// Figure (`dp_difference`, `eo_difference`, `flip_rate`, `<rate>.difference`, ...,
    /// `<group>.<rate>`) -> [low, high].
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub ci: BTreeMap<String, [f64; 2]>,
}

/// Aequitas's band: a disparity outside [τ, 1/τ] with τ = 0.8 is flagged.
pub const AEQUITAS_TAU: f64 = 0.8;

impl GroupTable {
    /// The table of `groups` (name -> confusion counts); `flips`: (flipped, samples).
    pub fn of(groups: &BTreeMap<String, Confusion>, flips: Option<(f64, f64)>) -> GroupTable {
        let mut all = Confusion::default();
        for c in groups.values() {
            all.add_scaled(c, 1.0);
        }
        let overall = Rates::of(&all);
        let rates: BTreeMap<String, Rates> = groups
            .iter()
            .map(|(k, c)| (k.clone(), Rates::of(c)))
            .collect();
        let mut disparities = BTreeMap::new();
        for m in RATES {
            let vals: Vec<f64> = rates.values().filter_map(|r| r.get(m)).collect();
            let defined = vals.len() == rates.len() && !vals.is_empty();
            let (lo, hi) = vals
                .iter()
                .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| {
                    (a.min(v), b.max(v))
                });
            let o = overall.get(m);
            let d = Disparity {
                difference: defined.then_some(hi - lo),
                ratio: if defined { ratio(lo, hi) } else { None },
                difference_to_overall: o
                    .filter(|_| defined)
                    .map(|o| vals.iter().map(|v| (v - o).abs()).fold(0.0, f64::max)),
                ratio_to_overall: o.filter(|&o| defined && o > 0.0).map(|o| {
                    vals.iter()
                        .map(|&v| (v / o).min(o / v))
                        .fold(f64::INFINITY, f64::min)
                }),
            };
            disparities.insert(m.to_string(), d);
        }
        let diff = |m: &str| disparities[m].difference;
        let reference = rates
            .iter()
            .max_by(|a, b| a.1.n.total_cmp(&b.1.n).then(b.0.cmp(a.0)))
            .map(|(k, _)| k.clone())
            .unwrap_or_default();
        let mut aequitas_disparity = BTreeMap::new();
        for (g, r) in &rates {
            for m in RATES {
                if let Some(d) = r
                    .get(m)
                    .zip(rates.get(&reference).and_then(|x| x.get(m)))
                    .and_then(|(a, b)| ratio(a, b))
                {
                    aequitas_disparity.insert(format!("{g}.{m}"), d);
                }
            }
        }
        let aequitas_flagged = aequitas_disparity
            .iter()
            .filter(|(_, &d)| !(AEQUITAS_TAU..=1.0 / AEQUITAS_TAU).contains(&d))
            .map(|(k, _)| k.clone())
            .collect();
        GroupTable {
            groups: rates,
            overall,
            demographic_parity_difference: diff("selection_rate"),
            equalized_odds_difference: match (diff("tpr"), diff("fpr")) {
                (Some(a), Some(b)) => Some(a.max(b)),
                _ => None,
            },
            disparities,
            reference,
            aequitas_disparity,
            aequitas_flagged,
            flip_rate: flips.and_then(|(f, n)| ratio(f, n)),
            ci: BTreeMap::new(),
        }
    }

    /// The figures the bootstrap resamples, by the keys of [`GroupTable::ci`].
    pub fn figures(&self) -> Vec<(String, Option<f64>)> {
        let mut out = vec![
            (
                "dp_difference".to_string(),
                self.demographic_parity_difference,
            ),
            ("eo_difference".to_string(), self.equalized_odds_difference),
            ("flip_rate".to_string(), self.flip_rate),
        ];
        for (m, d) in &self.disparities {
            out.push((format!("{m}.difference"), d.difference));
            out.push((format!("{m}.ratio"), d.ratio));
        }
        for (g, r) in &self.groups {
            out.extend(RATES.map(|m| (format!("{g}.{m}"), r.get(m))));
        }
        out
    }
}
