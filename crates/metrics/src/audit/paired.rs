//! Paired bootstrap of the difference between audits of the same test users (ours; issue
//! 30): whether method A is fairer than method B beyond what the finite test sample explains.
//!
//! Every audit is resampled with **the same** draws of users: resample `b` draws as many
//! users as the audits have in common, with replacement (stream `paired-<b>` of the seed),
//! and each audit counts the drawn users' predictions as its own bootstrap does
//! ([`super::audit`]). Because both figures of a resample see the same users, the
//! users' shared difficulty cancels in the difference, and the interval of the difference
//! is narrower than the two audits' own intervals side by side would suggest.
//!
//! Several seeds of the two methods ([`difference`] takes pairs of audits, one pair per
//! seed) are compared through the mean over the pairs of `A - B`, under the same user
//! draws for every pair: the interval covers the test sample's uncertainty of the seed-mean
//! difference, not the spread over seeds; [`Difference::per_pair`] shows that spread, and
//! [`Difference::ordered`] asks for both (ours).

use super::resample::{percentile, Figures};
use super::{AuditConfig, Context, Prepared, StereotypeInput};
use crate::error::{MetricsError, Result};
use crate::predictions::Prediction;
use fairrec_core::Rng;
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// One audit's inputs, as [`super::audit`] takes them.
pub struct AuditInput<'a> {
    pub predictions: &'a [Prediction],
    pub context: &'a HashMap<String, Context>,
    pub stereo: &'a [StereotypeInput<'a>],
    /// Its threshold and item groups' settings (the bootstrap's own fields are not used:
    /// [`resample_together`] takes one configuration for all).
    pub config: &'a AuditConfig,
}

/// One audit's figures by flat name (as [`super::Metrics::figures`] names them: `f1`,
/// `precision`, `recall`, `gd/<set>`, `rate/<set>`, `stereo/<attr>/<setting>`,
/// `stereo_avg/<attr>/<setting>`) over the users common to every audit compared, and under
/// each shared resample.
#[derive(Debug, Clone, PartialEq)]
pub struct Resampled {
    pub point: BTreeMap<String, f64>,
    pub draws: Vec<BTreeMap<String, f64>>,
}

/// The audits' figures under shared resamples ([`resample_together`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Shared {
    /// Users (or samples) every audit has: the resampling units.
    pub units: usize,
    /// Per audit, its units that the others lack (left out of its figures here).
    pub left_out: Vec<usize>,
    /// One per audit, in the order given.
    pub figures: Vec<Resampled>,
}

/// Resample `inputs` together: `resamples` draws of their common users with seed `seed`.
/// An error when they share no user, or when some are keyed by user and others by sample.
pub fn resample_together(inputs: &[AuditInput], resamples: usize, seed: u64) -> Result<Shared> {
    let preps: Vec<Prepared> = inputs
        .iter()
        .map(|i| {
            let vi = super::units::VariantIndex::new(i.predictions);
            Prepared::new(i.predictions, i.context, i.stereo, i.config, vi)
        })
        .collect();
    if preps
        .windows(2)
        .any(|w| w[0].units.by_user != w[1].units.by_user)
    {
        return Err(MetricsError::Invalid(
            "paired comparison: some audits know every prediction's user and others do not".into(),
        ));
    }
    let mut common: Option<BTreeSet<&str>> = None;
    for p in &preps {
        let keys: BTreeSet<&str> = p.units.keys.iter().map(String::as_str).collect();
        common = Some(match common {
            None => keys,
            Some(c) => c.intersection(&keys).copied().collect(),
        });
    }
    let common: Vec<&str> = common.unwrap_or_default().into_iter().collect();
    if common.is_empty() {
        return Err(MetricsError::Invalid(
            "paired comparison: the audits share no test user".into(),
        ));
    }
    // For each audit, the index of each common unit among its own units.
    let index: Vec<Vec<usize>> = preps
        .iter()
        .map(|p| {
            let at: HashMap<&str, usize> = p
                .units
                .keys
                .iter()
                .enumerate()
                .map(|(i, k)| (k.as_str(), i))
                .collect();
            common.iter().map(|k| at[k]).collect()
        })
        .collect();
    let counts_of = |b: Option<usize>| -> Vec<f64> {
        let n = common.len();
        match b {
            None => vec![1.0; n],
            Some(b) => {
                let mut rng = Rng::derive(seed, &format!("paired-{b}"));
                let mut w = vec![0.0; n];
                for _ in 0..n {
                    w[rng.below(n as u64) as usize] += 1.0;
                }
                w
            }
        }
    };
    let draws: Vec<Vec<f64>> = (0..resamples).map(|b| counts_of(Some(b))).collect();
    let figures = preps
        .iter()
        .zip(&index)
        .map(|(p, idx)| {
            let ev = p.evaluator();
            let mut w = vec![0.0; p.units.units.len()];
            let mut at = |counts: &[f64]| {
                for (&i, &c) in idx.iter().zip(counts) {
                    w[i] = c;
                }
                flat(ev.evaluate(&w), &p.groups)
            };
            Resampled {
                point: at(&counts_of(None)),
                draws: draws.iter().map(|d| at(d)).collect(),
            }
        })
        .collect();
    Ok(Shared {
        units: common.len(),
        left_out: preps
            .iter()
            .map(|p| p.units.keys.len() - common.len())
            .collect(),
        figures,
    })
}

/// The figures of one evaluation under their flat names (undefined ones left out).
fn flat(
    (fair, st, class): Figures,
    groups: &[(String, crate::stereotype::ItemGroups)],
) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    let mut put = |k: String, v: Option<f64>| {
        if let Some(v) = v {
            out.insert(k, v);
        }
    };
    for (k, v) in class[0].1 {
        put(k.to_string(), v);
    }
    for (set, f) in &fair {
        put(format!("gd/{set}"), f.gd);
        put(format!("rate/{set}"), f.rate);
    }
    for ((attr, _), s) in groups.iter().zip(&st) {
        for (setting, f) in s {
            put(format!("stereo/{attr}/{}", setting.name()), f.total);
            put(format!("stereo_avg/{attr}/{}", setting.name()), f.average);
        }
    }
    out
}

/// The difference `A - B` of one figure, averaged over pairs of audits (one per seed).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Difference {
    /// Mean over the pairs of A's figure, and of B's.
    pub a: f64,
    pub b: f64,
    /// `a - b`.
    pub estimate: f64,
    /// Percentile interval of the mean difference over the shared resamples (at least two
    /// of them define the figure in every pair).
    pub ci: Option<[f64; 2]>,
    /// Each pair's `A - B` at full weight (the spread over seeds).
    pub per_pair: Vec<f64>,
    /// Resamples in which every pair defines the figure.
    pub defined: usize,
}

impl Difference {
    /// The sign of `A - B` when the test sample and the seeds agree on it (ours): the
    /// interval excludes 0 and every pair's difference has the interval's sign. `None`:
    /// the data cannot order the two.
    pub fn ordered(&self) -> Option<std::cmp::Ordering> {
        let [lo, hi] = self.ci?;
        let sign = if lo > 0.0 {
            std::cmp::Ordering::Greater
        } else if hi < 0.0 {
            std::cmp::Ordering::Less
        } else {
            return None;
        };
        self.per_pair
            .iter()
            .all(|d| d.partial_cmp(&0.0) == Some(sign))
            .then_some(sign)
    }
}

/// The difference of `key` between the audits of each pair (A, B), at `confidence`.
/// `None` when some pair's point figures lack `key`.
pub fn difference(
    pairs: &[(&Resampled, &Resampled)],
    key: &str,
    confidence: f64,
) -> Option<Difference> {
    if pairs.is_empty() {
        return None;
    }
    let n = pairs.len() as f64;
    let mut per_pair = Vec::with_capacity(pairs.len());
    let (mut a, mut b) = (0.0, 0.0);
    for (x, y) in pairs {
        let (fa, fb) = (*x.point.get(key)?, *y.point.get(key)?);
        per_pair.push(fa - fb);
        a += fa / n;
        b += fb / n;
    }
    let draws = pairs.iter().map(|(x, _)| x.draws.len()).min().unwrap_or(0);
    let mut diffs: Vec<f64> = (0..draws)
        .filter_map(|d| {
            pairs
                .iter()
                .map(|(x, y)| Some(x.draws[d].get(key)? - y.draws[d].get(key)?))
                .sum::<Option<f64>>()
                .map(|s| s / n)
        })
        .collect();
    let lo_q = (1.0 - confidence) / 2.0;
    let ci = (diffs.len() >= 2).then(|| {
        [
            percentile(&mut diffs, lo_q),
            percentile(&mut diffs, 1.0 - lo_q),
        ]
    });
    Some(Difference {
        a,
        b,
        estimate: a - b,
        ci,
        per_pair,
        defined: diffs.len(),
    })
}
