//! The audit's figures under a weighting of the units ([`Evaluator`]), the bootstrap over
//! them ([`bootstrap`]) and the percentile intervals ([`Intervals`]).

use super::groups::GroupTable;
use super::units::Unit;
use super::{fairness_figures, record, stereo_figures, AuditConfig};
use crate::classification::Confusion;
use crate::fairness::{set_fairness, SetFairness};
use crate::stereotype::{
    fairness as stereo_fairness, Counts, ItemGroups, Setting, SettingFairness,
};
use fairrec_core::{Rng, Variant};
use std::collections::BTreeMap;

/// The original and neutral prompts' F1, precision and recall.
pub(super) type ClassFigures = [(&'static str, [(&'static str, Option<f64>); 3]); 2];

/// Paper A's fairness per attribute set, paper B's per attribute, and the classification
/// figures.
pub(super) type Figures = (
    BTreeMap<String, SetFairness>,
    Vec<BTreeMap<Setting, SettingFairness>>,
    ClassFigures,
);

/// Everything the figures are computed from.
pub(super) struct Evaluator<'a> {
    pub variants: &'a [Variant],
    /// Attribute set -> its variants (`fairness::attribute_sets`).
    pub sets: &'a BTreeMap<String, Vec<usize>>,
    pub groups: &'a [(String, ItemGroups)],
    pub units: &'a [Unit],
    /// Indices of the neutral and original variants.
    pub neutral: usize,
    pub original: usize,
}

impl Evaluator<'_> {
    /// The figures with unit `u` counted `weights[u]` times.
    pub fn evaluate(&self, weights: &[f64]) -> Figures {
        let mut conf = vec![Confusion::default(); self.variants.len()];
        let mut counts: Vec<Counts> = self
            .groups
            .iter()
            .map(|(_, g)| Counts::new(g.groups.len()))
            .collect();
        for (u, w) in self.units.iter().zip(weights) {
            if *w == 0.0 {
                continue;
            }
            for (i, c) in &u.conf {
                conf[*i].add_scaled(c, *w);
            }
            for (acc, c) in counts.iter_mut().zip(&u.stereo) {
                acc.add_scaled(c, *w);
            }
        }
        let fair: BTreeMap<String, SetFairness> = self
            .sets
            .iter()
            .map(|(k, m)| {
                (
                    k.clone(),
                    set_fairness(self.variants, &conf, m, self.neutral),
                )
            })
            .collect();
        let st: Vec<BTreeMap<Setting, SettingFairness>> = self
            .groups
            .iter()
            .zip(&counts)
            .map(|((_, g), c)| stereo_fairness(g, c))
            .collect();
        let class = [("original", self.original), ("neutral", self.neutral)].map(|(name, i)| {
            let c = &conf[i];
            (
                name,
                [
                    ("f1", c.f1()),
                    ("precision", c.precision()),
                    ("recall", c.recall()),
                ],
            )
        });
        (fair, st, class)
    }
}

impl Evaluator<'_> {
    /// fairlearn-style group tables ([`super::groups`]) with unit `u` counted `weights[u]`
    /// times: `variants:<set>` for each attribute set, `users:<attr>` for each attribute
    /// the units' true values name and `users:<a>,<b>` for their joint groups (keys
    /// `a=x,b=y`, as the variants' joint groups), on the original prompts.
    pub fn group_tables(&self, weights: &[f64]) -> BTreeMap<String, GroupTable> {
        let mut by_variant = vec![Confusion::default(); self.variants.len()];
        let mut by_truth: BTreeMap<String, BTreeMap<String, Confusion>> = BTreeMap::new();
        let mut flips = vec![(0.0, 0.0); self.sets.len()];
        for (u, &w) in self.units.iter().zip(weights).filter(|(_, w)| **w != 0.0) {
            for (i, c) in &u.conf {
                by_variant[*i].add_scaled(c, w);
                if *i == self.original {
                    for (attr, value) in &u.truth {
                        let t = by_truth.entry(attr.clone()).or_default();
                        t.entry(value.clone()).or_default().add_scaled(c, w);
                    }
                    if u.truth.len() > 1 {
                        // The joint group, named as the variants' joint groups are.
                        let set = u.truth.keys().cloned().collect::<Vec<_>>().join(",");
                        let key = u.truth.iter().map(|(a, v)| format!("{a}={v}"));
                        let key = key.collect::<Vec<_>>().join(",");
                        let t = by_truth.entry(set).or_default();
                        t.entry(key).or_default().add_scaled(c, w);
                    }
                }
            }
            for (acc, f) in flips.iter_mut().zip(&u.flips) {
                (acc.0, acc.1) = (acc.0 + w * f.0, acc.1 + w * f.1);
            }
        }
        let mut out = BTreeMap::new();
        for ((set, vs), f) in self.sets.iter().zip(flips) {
            let groups = vs
                .iter()
                .map(|&v| (crate::fairness::group_key(&self.variants[v]), by_variant[v]))
                .collect();
            out.insert(format!("variants:{set}"), GroupTable::of(&groups, Some(f)));
        }
        for (attr, groups) in by_truth {
            out.insert(format!("users:{attr}"), GroupTable::of(&groups, None));
        }
        out
    }
}

/// Every figure of `cfg.bootstrap` resamples of the units, by key (`original.f1`,
/// `fairness.<set>.gd`, `stereotype.<attr>.<setting>.total`, ...). Resample `b` draws from
/// its own stream, so the result does not depend on how many threads share the work.
pub(super) fn bootstrap(ev: &Evaluator, cfg: &AuditConfig) -> BTreeMap<String, Vec<f64>> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(8);
    let n_units = ev.units.len();
    let per_thread: Vec<BTreeMap<String, Vec<f64>>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                scope.spawn(move || {
                    let mut found: BTreeMap<String, Vec<f64>> = BTreeMap::new();
                    let mut all: BTreeMap<String, Vec<f64>> = BTreeMap::new();
                    let mut w = vec![0.0; n_units];
                    for b in (t..cfg.bootstrap).step_by(threads) {
                        let mut rng = Rng::derive(cfg.seed, &format!("bootstrap-{b}"));
                        w.iter_mut().for_each(|x| *x = 0.0);
                        for _ in 0..n_units {
                            w[rng.below(n_units as u64) as usize] += 1.0;
                        }
                        found.clear();
                        figures_of(ev.evaluate(&w), ev.groups, &mut found);
                        for (scope, t) in ev.group_tables(&w) {
                            for (k, v) in t.figures() {
                                super::record(&mut found, format!("group_metrics.{scope}.{k}"), v);
                            }
                        }
                        for (k, v) in &found {
                            all.entry(k.clone()).or_default().extend(v);
                        }
                    }
                    all
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("bootstrap thread"))
            .collect()
    });
    let mut samples: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for part in per_thread {
        for (k, v) in part {
            samples.entry(k).or_default().extend(v);
        }
    }
    samples
}

/// The defined figures of one resample, by key.
fn figures_of(
    (fair, st, class): Figures,
    groups: &[(String, ItemGroups)],
    found: &mut BTreeMap<String, Vec<f64>>,
) {
    for (name, figures) in class {
        for (k, v) in figures {
            record(found, format!("{name}.{k}"), v);
        }
    }
    for (k, sf) in &fair {
        fairness_figures(sf, &format!("fairness.{k}."), found);
    }
    for ((attr, _), s) in groups.iter().zip(&st) {
        stereo_figures(s, &format!("stereotype.{attr}."), found);
    }
}

/// Percentile intervals of the resampled figures.
pub(super) struct Intervals {
    samples: BTreeMap<String, Vec<f64>>,
    /// The lower percentile, `(1 - confidence) / 2`.
    lo_q: f64,
}

impl Intervals {
    pub fn new(samples: BTreeMap<String, Vec<f64>>, confidence: f64) -> Self {
        Intervals {
            samples,
            lo_q: (1.0 - confidence) / 2.0,
        }
    }

    /// The interval of figure `key` (at least two resamples define it).
    pub fn get(&mut self, key: &str) -> Option<[f64; 2]> {
        let v = self.samples.get_mut(key)?;
        if v.len() < 2 {
            return None;
        }
        Some([percentile(v, self.lo_q), percentile(v, 1.0 - self.lo_q)])
    }
}

/// The `q` quantile of `v` (sorted in place), interpolated linearly between ranks.
pub(crate) fn percentile(v: &mut [f64], q: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    let pos = q * (v.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    v[lo] + (v[hi] - v[lo]) * (pos - lo as f64)
}
