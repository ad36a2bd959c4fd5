//! The audit's first stages: index the predictions by variant, and gather each resampling
//! unit's sufficient statistics (confusion counts per variant, paper B's counts per
//! attribute) and the explicit setting's predictions by side.

use super::Context;
use crate::classification::Confusion;
use crate::predictions::Prediction;
use crate::stereotype::{Counts, ItemGroups, Setting};
use fairrec_core::Variant;
use std::collections::{BTreeMap, HashMap};

/// The variants in order of first appearance, each prediction's variant, and each
/// variant's (label, P(Yes)) pairs.
pub(super) struct VariantIndex<'a> {
    index: HashMap<&'a Variant, usize>,
    pub variants: Vec<Variant>,
    pub of_pred: Vec<usize>,
    pub pairs: Vec<Vec<(bool, f64)>>,
}

impl<'a> VariantIndex<'a> {
    pub fn new(preds: &'a [Prediction]) -> Self {
        let mut index: HashMap<&Variant, usize> = HashMap::new();
        for p in preds {
            let n = index.len();
            index.entry(&p.variant).or_insert(n);
        }
        let mut variants: Vec<Variant> = vec![Variant::Neutral; index.len()];
        for (v, &i) in &index {
            variants[i] = (*v).clone();
        }
        let of_pred: Vec<usize> = preds.iter().map(|p| index[&p.variant]).collect();
        let mut pairs: Vec<Vec<(bool, f64)>> = vec![Vec::new(); variants.len()];
        for (p, &vi) in preds.iter().zip(&of_pred) {
            pairs[vi].push((p.label, p.p_yes));
        }
        VariantIndex {
            index,
            variants,
            of_pred,
            pairs,
        }
    }

    /// The index of variant `v`, if any prediction has it.
    pub fn of(&self, v: &Variant) -> Option<usize> {
        self.index.get(v).copied()
    }
}

/// One resampling unit's sufficient statistics.
pub(super) struct Unit {
    /// (variant, confusion counts).
    pub conf: Vec<(usize, Confusion)>,
    /// Paper B's counts, one per attribute with item groups.
    pub stereo: Vec<Counts>,
    /// The user's true attribute values (from the context or the predictions).
    pub truth: BTreeMap<String, String>,
    /// Per attribute set (in the order of the sets given): samples whose answer changes
    /// across the set's variants, and samples with at least two of them.
    pub flips: Vec<(f64, f64)>,
}

/// Every unit, and what the point figures need besides.
pub(super) struct Units {
    pub units: Vec<Unit>,
    /// Each unit's user id (or sample id), in the order of `units`.
    pub keys: Vec<String>,
    /// Units are users (every prediction's user is known), else samples.
    pub by_user: bool,
    /// Per attribute: side key -> (label, P(Yes)) of the explicit setting.
    pub sides: Vec<BTreeMap<String, Vec<(bool, f64)>>>,
    /// Predictions without the true attribute or the target (left out of paper B's figures).
    pub missing_context: usize,
}

impl Units {
    /// Units are users where every prediction's user is known (`user_id`, or the context's),
    /// else samples. `of_pred`: each prediction's variant index.
    pub fn collect(
        preds: &[Prediction],
        context: &HashMap<String, Context>,
        groups: &[(String, ItemGroups)],
        of_pred: &[usize],
        sets: &BTreeMap<String, Vec<usize>>,
        threshold: f64,
    ) -> Units {
        // Each variant's attribute set; per (unit, sample, set): (saw Yes, saw No, prompts).
        let mut set_of: HashMap<usize, usize> = HashMap::new();
        for (k, vs) in sets.values().enumerate() {
            set_of.extend(vs.iter().map(|&v| (v, k)));
        }
        let mut answers: BTreeMap<(usize, &str, usize), (bool, bool, usize)> = BTreeMap::new();
        let empty = Context::default();
        let ctx = |p: &Prediction| context.get(&p.sample_id).unwrap_or(&empty);
        let by_user = preds
            .iter()
            .all(|p| p.user_id.is_some() || ctx(p).user.is_some());
        let mut out = Units {
            units: Vec::new(),
            keys: Vec::new(),
            by_user,
            sides: vec![BTreeMap::new(); groups.len()],
            missing_context: 0,
        };
        let mut uidx: HashMap<&str, usize> = HashMap::new();
        for (p, &vi) in preds.iter().zip(of_pred) {
            let c = ctx(p);
            let key = match by_user {
                true => p
                    .user_id
                    .as_deref()
                    .or(c.user.as_deref())
                    .unwrap_or_default(),
                false => &p.sample_id,
            };
            let n = out.units.len();
            let u = *uidx.entry(key).or_insert(n);
            if u == out.units.len() {
                out.keys.push(key.to_string());
                out.units.push(Unit {
                    conf: Vec::new(),
                    stereo: groups
                        .iter()
                        .map(|(_, g)| Counts::new(g.groups.len()))
                        .collect(),
                    truth: BTreeMap::new(),
                    flips: vec![(0.0, 0.0); sets.len()],
                });
            }
            let yes = p.p_yes >= threshold;
            if let Some(&k) = set_of.get(&vi) {
                let a = answers.entry((u, &p.sample_id, k)).or_default();
                (a.0, a.1, a.2) = (a.0 || yes, a.1 || !yes, a.2 + 1);
            }
            if out.units[u].truth.is_empty() {
                let attrs = if c.attributes.is_empty() {
                    p.attributes.as_ref()
                } else {
                    Some(&c.attributes)
                };
                out.units[u].truth = attrs.cloned().unwrap_or_default();
            }
            let unit = &mut out.units[u];
            match unit.conf.iter_mut().find(|(i, _)| *i == vi) {
                Some((_, c)) => c.add(p.label, yes, 1.0),
                None => {
                    let mut c = Confusion::default();
                    c.add(p.label, yes, 1.0);
                    unit.conf.push((vi, c));
                }
            }
            out.missing_context += add_stereo(p, c, groups, &mut unit.stereo, &mut out.sides, yes);
        }
        for ((u, _, k), (y, n, count)) in answers {
            if count >= 2 {
                let f = &mut out.units[u].flips[k];
                f.0 += f64::from(u8::from(y && n));
                f.1 += 1.0;
            }
        }
        out
    }
}

/// Add prediction `p` (answered Yes: `yes`) to paper B's counts of each attribute of
/// `groups` and, in the explicit setting, to its sides; returns how many attributes lacked
/// the true value or the target.
fn add_stereo(
    p: &Prediction,
    c: &Context,
    groups: &[(String, ItemGroups)],
    counts: &mut [Counts],
    sides: &mut [BTreeMap<String, Vec<(bool, f64)>>],
    yes: bool,
) -> usize {
    // The prepared data, when it knows the sample, wins: item groups are keyed by its ids.
    let attrs = if c.attributes.is_empty() {
        p.attributes.as_ref().unwrap_or(&c.attributes)
    } else {
        &c.attributes
    };
    let target = c.target.as_ref().or(p.target.as_ref());
    let hist = if c.target.is_some() {
        &c.history
    } else {
        p.history.as_ref().unwrap_or(&c.history)
    };
    let history: Vec<&str> = hist.iter().map(String::as_str).collect();
    let mut missing = 0;
    for (k, (attr, g)) in groups.iter().enumerate() {
        let (Some(truth), Some(target)) = (attrs.get(attr), target) else {
            missing += 1;
            continue;
        };
        let Some(ug) = g.groups.iter().position(|x| x == truth) else {
            continue;
        };
        let setting = match &p.variant {
            Variant::Neutral => Setting::Implicit,
            Variant::Original => Setting::Explicit,
            Variant::Stated(m) if m.len() == 1 && m.get(attr).is_some_and(|v| v != truth) => {
                Setting::Counterfactual
            }
            _ => continue,
        };
        counts[k].add(g, setting, ug, target, yes, &history);
        if setting == Setting::Explicit {
            let mut keys = vec![format!("users={truth}")];
            let of = g.of(target);
            keys.extend(of.iter().map(|&i| format!("items={}", g.groups[i])));
            keys.push(
                if of.is_empty() {
                    "items=neutral"
                } else if of.contains(&ug) {
                    "match=consistent"
                } else {
                    "match=inconsistent"
                }
                .into(),
            );
            for key in keys {
                sides[k].entry(key).or_default().push((p.label, p.p_yes));
            }
        }
    }
    missing
}
