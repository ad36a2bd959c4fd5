//! The whole audit of a predictions file: classification metrics per variant, paper A's
//! fairness per attribute set, paper B's stereotype-aware fairness (when the training
//! interactions are given), and percentile bootstrap confidence intervals.
//!
//! **Bootstrap**: resampling units are users (`user_id` from the context or the
//! prediction; the `sample_id` when no user is known). A resample draws as many units
//! as there are, with replacement, and takes *all* predictions of a drawn unit, every
//! variant included, so that the comparison of variants stays paired. Intervals are the
//! (1-c)/2 and (1+c)/2 percentiles over the resamples where the figure is defined.

mod figures;
pub mod groups;
mod long;
pub mod paired;
pub(crate) mod resample;
mod units;

use self::resample::{bootstrap, Evaluator, Intervals};
use self::units::{Units, VariantIndex};
use crate::classification::auc;
use crate::error::{MetricsError, Result};
use crate::fairness::{attribute_sets, SetFairness};
use crate::predictions::Prediction;
use crate::stereotype::{
    item_groups, Interactions, ItemGroups, Setting, SettingFairness, StereotypeConfig, ZThreshold,
};
use fairrec_core::Variant;
use std::collections::{BTreeMap, HashMap};

/// Settings of an audit.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
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

impl AuditConfig {
    /// Check the settings: threshold in [0, 1], confidence strictly between 0 and 1, a
    /// finite z threshold.
    pub fn validate(&self) -> Result<()> {
        if !(0.0..=1.0).contains(&self.threshold) {
            return Err(MetricsError::Invalid(format!(
                "threshold must be in [0, 1], got {}",
                self.threshold
            )));
        }
        check_confidence(self.confidence)?;
        if let ZThreshold::Fixed(z) = self.stereotype.z_threshold {
            if !z.is_finite() {
                return Err(MetricsError::Invalid(format!(
                    "the z threshold must be finite, got {z}"
                )));
            }
        }
        Ok(())
    }
}

/// A confidence level strictly between 0 and 1.
pub fn check_confidence(confidence: f64) -> Result<()> {
    if confidence > 0.0 && confidence < 1.0 {
        Ok(())
    } else {
        Err(MetricsError::Invalid(format!(
            "confidence must be strictly between 0 and 1, got {confidence}"
        )))
    }
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
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ClassBlock {
    pub f1: Option<f64>,
    pub precision: Option<f64>,
    pub recall: Option<f64>,
    pub auc: Option<f64>,
    pub n: usize,
    pub positives: usize,
}

/// Paper A's fairness of one attribute set, with intervals.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct FairnessEntry {
    #[serde(flatten)]
    pub point: SetFairness,
    /// `gd`, `rate`, `rate_sq`, `groups.<key>.f1`, `groups.<key>.diff` (F1 minus the neutral
    /// F1, paired) -> [low, high].
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub ci: BTreeMap<String, [f64; 2]>,
}

/// Paper B's stereotype-aware fairness of one attribute.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct StereotypeEntry {
    /// The z* the item groups were drawn at.
    pub z_threshold: f64,
    /// z* was `auto` ([`crate::stereotype::auto_threshold`]) and resolved to `z_threshold`.
    #[serde(default)]
    pub z_auto: bool,
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
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub ci: BTreeMap<String, [f64; 2]>,
}

/// How the intervals were made.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct BootstrapInfo {
    pub resamples: usize,
    pub seed: u64,
    pub confidence: f64,
    /// `user` or `sample`.
    pub unit: String,
    pub units: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// Everything `metrics.json` holds.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Metrics {
    pub threshold: f64,
    pub n_predictions: usize,
    /// Predictions whose P(Yes) is a bound (a served model's listed log-probabilities
    /// missed an answer token; `Prediction::censored`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub n_censored: usize,
    pub original: ClassBlock,
    pub neutral: ClassBlock,
    /// Every variant's classification metrics, by canonical name.
    pub variants: BTreeMap<String, ClassBlock>,
    /// Keyed by attribute set: `gender`, `age`, `age,gender`.
    pub fairness: BTreeMap<String, FairnessEntry>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stereotype: Option<BTreeMap<String, StereotypeEntry>>,
    /// fairlearn / Aequitas group metrics ([`groups`]): `variants:<set>`, `users:<attr>`, `users:<a>,<b>` (joint).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub group_metrics: BTreeMap<String, groups::GroupTable>,
    pub bootstrap: BootstrapInfo,
    /// Intervals of the original and neutral prompts' classification figures:
    /// `original.f1`, `original.precision`, `original.recall`, `neutral.f1` -> [low, high].
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub ci: BTreeMap<String, [f64; 2]>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
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

fn record(samples: &mut BTreeMap<String, Vec<f64>>, key: String, v: Option<f64>) {
    if let Some(v) = v {
        samples.entry(key).or_default().push(v);
    }
}

pub(crate) fn fairness_figures(
    f: &SetFairness,
    prefix: &str,
    out: &mut BTreeMap<String, Vec<f64>>,
) {
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

pub(crate) fn stereo_figures(
    s: &BTreeMap<Setting, SettingFairness>,
    prefix: &str,
    out: &mut BTreeMap<String, Vec<f64>>,
) {
    for (setting, f) in s {
        let p = format!("{prefix}{}.", setting.name());
        record(out, format!("{p}total"), f.total);
        record(out, format!("{p}same_group"), f.same_group);
        record(out, format!("{p}other_group"), f.other_group);
        record(out, format!("{p}average"), f.average);
        record(out, format!("{p}average_same"), f.average_same);
        record(out, format!("{p}average_other"), f.average_other);
        for (k, d) in &f.pairs {
            record(out, format!("{p}{k}"), *d);
        }
    }
}

/// What the figures of one predictions set are computed from: its variants, the item
/// groups of each attribute with training interactions, the resampling units and the
/// attribute sets.
struct Prepared<'a> {
    pub vi: VariantIndex<'a>,
    pub groups: Vec<(String, ItemGroups)>,
    pub units: Units,
    pub sets: BTreeMap<String, Vec<usize>>,
}

impl<'a> Prepared<'a> {
    pub fn new(
        preds: &'a [Prediction],
        context: &HashMap<String, Context>,
        stereo: &[StereotypeInput<'_>],
        cfg: &AuditConfig,
        vi: VariantIndex<'a>,
    ) -> Self {
        let groups: Vec<(String, ItemGroups)> = stereo
            .iter()
            .map(|s| (s.attribute.clone(), item_groups(&s.train, &cfg.stereotype)))
            .collect();
        let sets = attribute_sets(&vi.variants);
        let units = Units::collect(preds, context, &groups, &vi.of_pred, &sets, cfg.threshold);
        Prepared {
            vi,
            groups,
            units,
            sets,
        }
    }

    pub fn evaluator(&self) -> Evaluator<'_> {
        Evaluator {
            variants: &self.vi.variants,
            sets: &self.sets,
            groups: &self.groups,
            units: &self.units.units,
            neutral: self.vi.of(&Variant::Neutral).unwrap_or(0),
            original: self.vi.of(&Variant::Original).unwrap_or(0),
        }
    }
}

/// Run the audit. `context` maps `sample_id` to what the prepared data knows; predictions
/// may carry the same fields themselves (`attributes`, `user_id`, `target`, `history`),
/// which are used where the context does not know the sample.
pub fn audit(
    preds: &[Prediction],
    context: &HashMap<String, Context>,
    stereo: &[StereotypeInput<'_>],
    cfg: &AuditConfig,
) -> Result<Metrics> {
    cfg.validate()?;
    let vi = VariantIndex::new(preds);
    let block = |v: &Variant, why: &str| -> Result<ClassBlock> {
        let i = vi.of(v).ok_or_else(|| MetricsError::MissingVariant {
            variant: v.to_string(),
            why: why.into(),
        })?;
        Ok(class_block(&vi.pairs[i], cfg.threshold))
    };
    let original = block(
        &Variant::Original,
        "F1, precision, recall and AUC are reported for the true-attribute prompts",
    )?;
    let neutral = block(
        &Variant::Neutral,
        "GD and Rate compare every group with the neutral prompt (paper A, Eq. 2-3)",
    )?;
    let by_name: BTreeMap<String, ClassBlock> = vi
        .variants
        .iter()
        .zip(&vi.pairs)
        .map(|(v, pairs)| (v.to_string(), class_block(pairs, cfg.threshold)))
        .collect();
    let prep = Prepared::new(preds, context, stereo, cfg, vi);
    let (groups, units, sets) = (&prep.groups, &prep.units, &prep.sets);
    let mut notes = Vec::new();
    if units.missing_context > 0 {
        notes.push(format!("{} prediction(s) lack the true attribute or the target item and were left out of the stereotype figures", units.missing_context));
    }
    let ev = prep.evaluator();
    let (fair, st, _) = ev.evaluate(&vec![1.0; units.units.len()]);
    let mut ci = Intervals::new(bootstrap(&ev, cfg), cfg.confidence);
    let fairness = fair
        .into_iter()
        .map(|(k, point)| {
            let mut keys = BTreeMap::new();
            fairness_figures(&point, "", &mut keys);
            let mut names: Vec<String> = keys.into_keys().collect();
            names.extend(point.undefined.keys().cloned());
            let cis = names
                .into_iter()
                .filter_map(|n| ci.get(&format!("fairness.{k}.{n}")).map(|c| (n, c)))
                .collect();
            (k, FairnessEntry { point, ci: cis })
        })
        .collect();
    let stereotype =
        (!groups.is_empty()).then(|| stereotype_entries(groups, st, &units.sides, cfg, &mut ci));
    let mut group_metrics = ev.group_tables(&vec![1.0; units.units.len()]);
    for (scope, t) in group_metrics.iter_mut() {
        let keys: Vec<String> = t.figures().into_iter().map(|(k, _)| k).collect();
        t.ci = keys
            .into_iter()
            .filter_map(|k| {
                ci.get(&format!("group_metrics.{scope}.{k}"))
                    .map(|c| (k, c))
            })
            .collect();
    }
    let class_ci = [
        "original.f1",
        "original.precision",
        "original.recall",
        "neutral.f1",
    ]
    .into_iter()
    .filter_map(|k| ci.get(k).map(|c| (k.to_string(), c)))
    .collect();
    if sets.is_empty() {
        notes.push("no variant states a sensitive attribute, so there is no GD/Rate".into());
    }
    Ok(Metrics {
        threshold: cfg.threshold,
        n_predictions: preds.len(),
        n_censored: preds.iter().filter(|p| p.censored).count(),
        original,
        neutral,
        variants: by_name,
        fairness,
        stereotype,
        group_metrics,
        bootstrap: BootstrapInfo {
            resamples: cfg.bootstrap,
            seed: cfg.seed,
            confidence: cfg.confidence,
            unit: if units.by_user {
                "user".into()
            } else {
                "sample".into()
            },
            units: units.units.len(),
        },
        ci: class_ci,
        notes,
    })
}

/// Paper B's entry of every attribute: the point figures `st` (one per attribute of
/// `groups`), their intervals, the item groups' sizes and the explicit setting's
/// classification by side.
fn stereotype_entries(
    groups: &[(String, ItemGroups)],
    st: Vec<BTreeMap<Setting, SettingFairness>>,
    sides: &[BTreeMap<String, Vec<(bool, f64)>>],
    cfg: &AuditConfig,
    ci: &mut Intervals,
) -> BTreeMap<String, StereotypeEntry> {
    groups
        .iter()
        .zip(st)
        .zip(sides)
        .map(|(((attr, g), s), side)| {
            let mut keys = BTreeMap::new();
            stereo_figures(&s, "", &mut keys);
            let cis = keys
                .into_keys()
                .filter_map(|n| ci.get(&format!("stereotype.{attr}.{n}")).map(|c| (n, c)))
                .collect();
            let sizes = g.sizes();
            let entry = StereotypeEntry {
                z_threshold: g.z_threshold,
                z_auto: cfg.stereotype.z_threshold == ZThreshold::Auto,
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
            };
            (attr.clone(), entry)
        })
        .collect()
}
