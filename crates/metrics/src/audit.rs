//! The whole audit of a predictions file: classification metrics per variant, paper A's
//! fairness per attribute set, paper B's stereotype-aware fairness (when the training
//! interactions are given), and percentile bootstrap confidence intervals.
//!
//! **Bootstrap**: resampling units are users (`user_id` from the context or the
//! prediction; the `sample_id` when no user is known). A resample draws as many units
//! as there are, with replacement, and takes *all* predictions of a drawn unit, every
//! variant included, so that the comparison of variants stays paired. Intervals are the
//! (1-c)/2 and (1+c)/2 percentiles over the resamples where the figure is defined.

use crate::classification::{auc, Confusion};
use crate::error::{MetricsError, Result};
use crate::fairness::{attribute_sets, set_fairness, SetFairness};
use crate::predictions::Prediction;
use crate::stereotype::{
    fairness as stereo_fairness, item_groups, Counts, Interactions, ItemGroups, Setting,
    SettingFairness, StereotypeConfig,
};
use fairrec_core::{Rng, Variant};
use std::collections::{BTreeMap, HashMap};

/// Settings of an audit.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct AuditConfig {
    /// P(Yes) >= threshold is a Yes.
    pub threshold: f64,
    /// Bootstrap resamples (0: no intervals).
    pub bootstrap: usize,
    pub seed: u64,
    /// Confidence level of the intervals.
    pub confidence: f64,
    pub stereotype: StereotypeConfig,
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig {
            threshold: 0.5,
            bootstrap: 200,
            seed: 0,
            confidence: 0.95,
            stereotype: StereotypeConfig::default(),
        }
    }
}

/// What the prepared data knows about a sample (joined by `sample_id`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Context {
    pub user: Option<String>,
    pub attributes: BTreeMap<String, String>,
    pub target: Option<String>,
    pub history: Vec<String>,
}

/// Training interactions for the item groups of one sensitive attribute.
pub struct StereotypeInput<'a> {
    pub attribute: String,
    pub train: Vec<Interactions<'a>>,
}

/// F1, precision, recall and AUC of a set of predictions.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ClassBlock {
    pub f1: Option<f64>,
    pub precision: Option<f64>,
    pub recall: Option<f64>,
    pub auc: Option<f64>,
    pub n: usize,
    pub positives: usize,
}

/// Paper A's fairness of one attribute set, with intervals.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct FairnessEntry {
    #[serde(flatten)]
    pub point: SetFairness,
    /// `gd`, `rate`, `rate_sq`, `groups.<key>.f1`, `groups.<key>.diff` (F1 minus the neutral
    /// F1, paired) -> [low, high].
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub ci: BTreeMap<String, [f64; 2]>,
}

/// Paper B's stereotype-aware fairness of one attribute.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct StereotypeEntry {
    pub z_threshold: f64,
    pub normalize: bool,
    /// Items of each stereotype group, and items seen in training.
    pub item_groups: BTreeMap<String, usize>,
    pub n_items: usize,
    pub settings: BTreeMap<String, SettingFairness>,
    /// Classification of the explicit setting's predictions (true value stated) by side:
    /// `users=<group>` (the user's group), `items=<group>` (targets in that stereotype
    /// group), `items=neutral` (targets in no group, i.e. below the z threshold), and
    /// `match=consistent` / `match=inconsistent` (the target is in the user's own group /
    /// in another group): paper B's Table I (consistent vs inconsistent pairs), user-side
    /// vs item-side breakdown (Figure 5) and threshold study (Figure 6).
    pub performance: BTreeMap<String, ClassBlock>,
    /// `<setting>.<figure>` -> [low, high].
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub ci: BTreeMap<String, [f64; 2]>,
}

/// How the intervals were made.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct BootstrapInfo {
    pub resamples: usize,
    pub seed: u64,
    pub confidence: f64,
    /// `user` or `sample`.
    pub unit: String,
    pub units: usize,
}

/// Everything `metrics.json` holds.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Metrics {
    pub threshold: f64,
    pub n_predictions: usize,
    pub original: ClassBlock,
    pub neutral: ClassBlock,
    /// Every variant's classification metrics, by canonical name.
    pub variants: BTreeMap<String, ClassBlock>,
    /// Keyed by attribute set: `gender`, `age`, `age,gender`.
    pub fairness: BTreeMap<String, FairnessEntry>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stereotype: Option<BTreeMap<String, StereotypeEntry>>,
    pub bootstrap: BootstrapInfo,
    /// Intervals of the original and neutral prompts' classification figures:
    /// `original.f1`, `original.precision`, `original.recall`, `neutral.f1` -> [low, high].
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub ci: BTreeMap<String, [f64; 2]>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

fn class_block(pairs: &[(bool, f64)], threshold: f64) -> ClassBlock {
    let c = crate::classification::confusion(pairs.iter().copied(), threshold);
    ClassBlock {
        f1: c.f1(),
        precision: c.precision(),
        recall: c.recall(),
        auc: auc(pairs),
        n: pairs.len(),
        positives: pairs.iter().filter(|p| p.0).count(),
    }
}

/// Per-unit sufficient statistics.
struct Unit {
    conf: Vec<(usize, Confusion)>,
    stereo: Vec<Counts>,
}

fn percentile(v: &mut [f64], q: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    let pos = q * (v.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    v[lo] + (v[hi] - v[lo]) * (pos - lo as f64)
}

fn record(samples: &mut BTreeMap<String, Vec<f64>>, key: String, v: Option<f64>) {
    if let Some(v) = v {
        samples.entry(key).or_default().push(v);
    }
}

fn fairness_figures(f: &SetFairness, prefix: &str, out: &mut BTreeMap<String, Vec<f64>>) {
    record(out, format!("{prefix}gd"), f.gd);
    record(out, format!("{prefix}rate"), f.rate);
    record(out, format!("{prefix}rate_sq"), f.rate_sq);
    for (k, g) in &f.groups {
        record(out, format!("{prefix}groups.{k}.f1"), g.f1);
        // Paired difference to the neutral prompt: signed, so its interval says whether the
        // group differs (GD and the Rates are never negative and resampling inflates them).
        record(
            out,
            format!("{prefix}groups.{k}.diff"),
            g.f1.zip(f.neutral_f1).map(|(a, b)| a - b),
        );
    }
}

fn stereo_figures(
    s: &BTreeMap<Setting, SettingFairness>,
    prefix: &str,
    out: &mut BTreeMap<String, Vec<f64>>,
) {
    for (setting, f) in s {
        let p = format!("{prefix}{}.", setting.name());
        record(out, format!("{p}total"), f.total);
        record(out, format!("{p}same_group"), f.same_group);
        record(out, format!("{p}other_group"), f.other_group);
        for (k, d) in &f.pairs {
            record(out, format!("{p}{k}"), *d);
        }
    }
}

/// Run the audit. `context` maps `sample_id` to what the prepared data knows; predictions
/// may carry the same fields themselves (`attributes`, `user_id`, `target`, `history`),
/// which are used where the context does not know the sample.
pub fn audit<'a>(
    preds: &'a [Prediction],
    context: &'a HashMap<String, Context>,
    stereo: &[StereotypeInput<'_>],
    cfg: &AuditConfig,
) -> Result<Metrics> {
    if !(0.0..=1.0).contains(&cfg.threshold) {
        return Err(MetricsError::Invalid(format!(
            "threshold must be in [0, 1], got {}",
            cfg.threshold
        )));
    }
    let mut notes = Vec::new();
    // Variants and per-variant (label, p) pairs.
    let mut vidx: HashMap<&Variant, usize> = HashMap::new();
    for p in preds {
        let n = vidx.len();
        vidx.entry(&p.variant).or_insert(n);
    }
    let mut variants: Vec<Variant> = vec![Variant::Neutral; vidx.len()];
    for (v, &i) in &vidx {
        variants[i] = (*v).clone();
    }
    let mut pairs: Vec<Vec<(bool, f64)>> = vec![Vec::new(); variants.len()];
    let pred_variant: Vec<usize> = preds.iter().map(|p| vidx[&p.variant]).collect();
    for (p, &vi) in preds.iter().zip(&pred_variant) {
        pairs[vi].push((p.label, p.p_yes));
    }
    let block = |v: &Variant, why: &str| -> Result<ClassBlock> {
        let i = vidx.get(v).ok_or_else(|| MetricsError::MissingVariant {
            variant: v.to_string(),
            why: why.into(),
        })?;
        Ok(class_block(&pairs[*i], cfg.threshold))
    };
    let original = block(
        &Variant::Original,
        "F1, precision, recall and AUC are reported for the true-attribute prompts",
    )?;
    let neutral = block(
        &Variant::Neutral,
        "GD and Rate compare every group with the neutral prompt (paper A, Eq. 2-3)",
    )?;
    let by_name: BTreeMap<String, ClassBlock> = vidx
        .iter()
        .map(|(v, &i)| (v.to_string(), class_block(&pairs[i], cfg.threshold)))
        .collect();

    // Resampling units and their sufficient statistics.
    static EMPTY: std::sync::OnceLock<Context> = std::sync::OnceLock::new();
    let empty: &'a Context = EMPTY.get_or_init(Context::default);
    let ctx = |p: &Prediction| -> &'a Context { context.get(&p.sample_id).unwrap_or(empty) };
    let user_known = preds
        .iter()
        .all(|p| p.user_id.is_some() || ctx(p).user.is_some());
    let unit_of = |p: &'a Prediction| -> &'a str {
        if user_known {
            p.user_id
                .as_deref()
                .or(ctx(p).user.as_deref())
                .unwrap_or_default()
        } else {
            &p.sample_id
        }
    };
    let groups: Vec<(String, ItemGroups)> = stereo
        .iter()
        .map(|s| (s.attribute.clone(), item_groups(&s.train, &cfg.stereotype)))
        .collect();
    let mut uidx: HashMap<&str, usize> = HashMap::new();
    let mut units: Vec<Unit> = Vec::new();
    let mut missing_ctx = 0usize;
    // [attribute] -> side key -> (label, p) of the explicit setting.
    let mut sides: Vec<BTreeMap<String, Vec<(bool, f64)>>> = vec![BTreeMap::new(); groups.len()];
    for (p, &vi) in preds.iter().zip(&pred_variant) {
        let key = unit_of(p);
        let n = units.len();
        let u = *uidx.entry(key).or_insert(n);
        if u == units.len() {
            units.push(Unit {
                conf: Vec::new(),
                stereo: groups
                    .iter()
                    .map(|(_, g)| Counts::new(g.groups.len()))
                    .collect(),
            });
        }
        let unit = &mut units[u];
        match unit.conf.iter_mut().find(|(i, _)| *i == vi) {
            Some((_, c)) => c.add(p.label, p.p_yes >= cfg.threshold, 1.0),
            None => {
                let mut c = Confusion::default();
                c.add(p.label, p.p_yes >= cfg.threshold, 1.0);
                unit.conf.push((vi, c));
            }
        }
        // The prepared data, when it knows the sample, wins: item groups are keyed by its ids.
        let c = ctx(p);
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
        for (k, (attr, g)) in groups.iter().enumerate() {
            let (Some(truth), Some(target)) = (attrs.get(attr), target) else {
                missing_ctx += 1;
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
            unit.stereo[k].add(g, setting, ug, target, p.p_yes >= cfg.threshold, &history);
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
    }
    if missing_ctx > 0 {
        notes.push(format!("{missing_ctx} prediction(s) lack the true attribute or the target item and were left out of the stereotype figures"));
    }

    let sets = attribute_sets(&variants);
    let (neutral_i, original_i) = (vidx[&Variant::Neutral], vidx[&Variant::Original]);
    let evaluate = |weights: &[f64]| {
        let mut conf = vec![Confusion::default(); variants.len()];
        let mut counts: Vec<Counts> = groups
            .iter()
            .map(|(_, g)| Counts::new(g.groups.len()))
            .collect();
        for (u, w) in units.iter().zip(weights) {
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
        let fair: BTreeMap<String, SetFairness> = sets
            .iter()
            .map(|(k, m)| (k.clone(), set_fairness(&variants, &conf, m, neutral_i)))
            .collect();
        let st: Vec<BTreeMap<Setting, SettingFairness>> = groups
            .iter()
            .zip(&counts)
            .map(|((_, g), c)| stereo_fairness(g, c))
            .collect();
        let class = [("original", original_i), ("neutral", neutral_i)].map(|(name, i)| {
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
    };
    let (fair, st, _) = evaluate(&vec![1.0; units.len()]);

    // Bootstrap: resample b draws from its own stream, so the result does not depend on
    // how many threads share the work.
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(8);
    let per_thread: Vec<BTreeMap<String, Vec<(usize, f64)>>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let evaluate = &evaluate;
                let (groups, n_units) = (&groups, units.len());
                scope.spawn(move || {
                    let mut found: BTreeMap<String, Vec<f64>> = BTreeMap::new();
                    let mut tagged: BTreeMap<String, Vec<(usize, f64)>> = BTreeMap::new();
                    let mut w = vec![0.0; n_units];
                    for b in (t..cfg.bootstrap).step_by(threads) {
                        let mut rng = Rng::derive(cfg.seed, &format!("bootstrap-{b}"));
                        w.iter_mut().for_each(|x| *x = 0.0);
                        for _ in 0..n_units {
                            w[rng.below(n_units as u64) as usize] += 1.0;
                        }
                        let (f, s, class) = evaluate(&w);
                        found.clear();
                        for (name, figures) in class {
                            for (k, v) in figures {
                                record(&mut found, format!("{name}.{k}"), v);
                            }
                        }
                        for (k, sf) in &f {
                            fairness_figures(sf, &format!("fairness.{k}."), &mut found);
                        }
                        for ((attr, _), s) in groups.iter().zip(&s) {
                            stereo_figures(s, &format!("stereotype.{attr}."), &mut found);
                        }
                        for (k, v) in &found {
                            tagged
                                .entry(k.clone())
                                .or_default()
                                .extend(v.iter().map(|x| (b, *x)));
                        }
                    }
                    tagged
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
            samples
                .entry(k)
                .or_default()
                .extend(v.into_iter().map(|(_, x)| x));
        }
    }
    let lo_q = (1.0 - cfg.confidence) / 2.0;
    let mut ci = |key: &str| -> Option<[f64; 2]> {
        let v = samples.get_mut(key)?;
        if v.len() < 2 {
            return None;
        }
        Some([percentile(v, lo_q), percentile(v, 1.0 - lo_q)])
    };
    let mut fairness = BTreeMap::new();
    for (k, point) in fair {
        let mut keys = BTreeMap::new();
        fairness_figures(&point, "", &mut keys);
        let mut names: Vec<String> = keys.into_keys().collect();
        names.extend(point.undefined.keys().cloned());
        let cis = names
            .into_iter()
            .filter_map(|n| ci(&format!("fairness.{k}.{n}")).map(|c| (n, c)))
            .collect();
        fairness.insert(k, FairnessEntry { point, ci: cis });
    }
    let stereotype = (!groups.is_empty()).then(|| {
        groups
            .iter()
            .zip(st)
            .zip(&sides)
            .map(|(((attr, g), s), side)| {
                let mut keys = BTreeMap::new();
                stereo_figures(&s, "", &mut keys);
                let cis = keys
                    .into_keys()
                    .filter_map(|n| ci(&format!("stereotype.{attr}.{n}")).map(|c| (n, c)))
                    .collect();
                let sizes = g.sizes();
                (
                    attr.clone(),
                    StereotypeEntry {
                        z_threshold: cfg.stereotype.z_threshold,
                        normalize: cfg.stereotype.normalize,
                        item_groups: g.groups.iter().cloned().zip(sizes).collect(),
                        n_items: g.n_items,
                        settings: s
                            .into_iter()
                            .map(|(k, v)| (k.name().to_string(), v))
                            .collect(),
                        performance: side
                            .iter()
                            .map(|(k, pairs)| (k.clone(), class_block(pairs, cfg.threshold)))
                            .collect(),
                        ci: cis,
                    },
                )
            })
            .collect()
    });
    let class_ci = [
        "original.f1",
        "original.precision",
        "original.recall",
        "neutral.f1",
    ]
    .into_iter()
    .filter_map(|k| ci(k).map(|c| (k.to_string(), c)))
    .collect();
    if sets.is_empty() {
        notes.push("no variant states a sensitive attribute, so there is no GD/Rate".into());
    }
    Ok(Metrics {
        threshold: cfg.threshold,
        n_predictions: preds.len(),
        original,
        neutral,
        variants: by_name,
        fairness,
        stereotype,
        bootstrap: BootstrapInfo {
            resamples: cfg.bootstrap,
            seed: cfg.seed,
            confidence: cfg.confidence,
            unit: if user_known {
                "user".into()
            } else {
                "sample".into()
            },
            units: units.len(),
        },
        ci: class_ci,
        notes,
    })
}
