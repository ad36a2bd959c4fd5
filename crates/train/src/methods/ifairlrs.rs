//! IFairLRS (Jiang et al., "Item-side fairness of large language model-based recommendation
//! system", 2024), paper B's item-side baseline: the answer loss with per-sample weights
//! that pull each item group's share of the recommended items towards its share of what
//! users have consumed. Paper B describes it in one sentence ("sample weights are applied to
//! the loss of instruction-tuning samples"); the precise form below is **our reading**:
//!
//! - Item groups are paper B's stereotype groups (an item's key is the set of groups it
//!   belongs to; the empty set is the neutral items).
//! - `h_k` = share of key `k` among all history items of the training samples, `t_k` = share
//!   of key `k` among the targets of the positive ("Yes") samples, both with add-one
//!   smoothing over the keys seen (`(count + 1) / (total + K)`), so that no weight is 0 or
//!   infinite.
//! - A positive sample whose target has key `k` gets `w = h_k / t_k`: a group recommended
//!   (labelled Yes) more often than it is consumed is down-weighted, one recommended less
//!   often is up-weighted. Negative samples get `w = 1`.
//! - The weights are scaled to mean 1 over the training set, so the learning rate keeps
//!   its meaning; the loss of a batch is `mean_i w_i NLL_i`.

use super::stereo::groups_of;
use super::{adapters, Family, MethodDef};
use crate::config::TrainConfig;
use crate::encode::{originals, samples};
use crate::engine::objective::{AnswerLoss, Example, Objective};
use crate::engine::trainer::Summary;
use crate::error::Result;
use crate::fit::Fit;
use candle_core::Tensor;
use fairrec_data::sample::Sample;
use fairrec_lm::tokenizer::Tok;
use fairrec_lm::tuning::Tuning;
use fairrec_lm::Backbone;
use fairrec_metrics::stereotype::ItemGroups;
use std::collections::HashMap;
use std::hash::Hash;

/// One training sample as IFairLRS weighs it: the keys of its history's items, its
/// target's key and its label.
pub struct Weighing<'a, K> {
    pub history: &'a [K],
    pub target: &'a K,
    pub label: bool,
}

/// The weight of every sample (in order), as the module doc defines it.
pub fn sample_weights<K: Eq + Hash>(samples: &[Weighing<'_, K>]) -> Vec<f64> {
    let mut hist: HashMap<&K, f64> = HashMap::new();
    let mut targ: HashMap<&K, f64> = HashMap::new();
    for s in samples {
        for k in s.history {
            *hist.entry(k).or_default() += 1.0;
            targ.entry(k).or_default();
        }
        hist.entry(s.target).or_default();
        *targ.entry(s.target).or_default() += if s.label { 1.0 } else { 0.0 };
    }
    let keys = hist.len() as f64;
    let (h_total, t_total) = (hist.values().sum::<f64>(), targ.values().sum::<f64>());
    let share = |m: &HashMap<&K, f64>, total: f64, k: &K| (m[k] + 1.0) / (total + keys);
    let raw: Vec<f64> = samples
        .iter()
        .map(|s| {
            if s.label {
                share(&hist, h_total, s.target) / share(&targ, t_total, s.target)
            } else {
                1.0
            }
        })
        .collect();
    let mean = raw.iter().sum::<f64>() / raw.len().max(1) as f64;
    raw.into_iter().map(|w| w / mean).collect()
}

/// A training example with its IFairLRS weight.
#[derive(Debug, Clone)]
pub struct WeightedExample {
    pub example: Example,
    pub weight: f64,
}

/// `mean_i w_i NLL_i` over a batch.
pub struct WeightedLoss<'a> {
    pub answer: AnswerLoss<'a>,
}

impl Objective for WeightedLoss<'_> {
    type Item = WeightedExample;

    fn loss(&self, items: &[&WeightedExample]) -> Result<(Tensor, usize)> {
        let examples: Vec<&Example> = items.iter().map(|w| &w.example).collect();
        let nll = self.answer.per_example(&examples)?;
        let w: Vec<f32> = items.iter().map(|w| w.weight as f32).collect();
        let w = Tensor::from_vec(w, items.len(), nll.device())?;
        let tokens = examples.iter().map(|e| e.ids.len()).sum();
        Ok(((nll * w)?.mean_all()?, tokens))
    }
}

/// The method `ifairlrs`: LoRA on the answer loss weighted per sample.
pub struct IFairLrs;

pub const IFAIRLRS: IFairLrs = IFairLrs;

impl MethodDef for IFairLrs {
    fn family(&self) -> Family {
        Family::PaperB
    }

    fn label(&self) -> &'static str {
        "ifairlrs"
    }

    fn setup(&self, model: &mut dyn Backbone, _tok: &Tok, cfg: &TrainConfig) -> Result<Tuning> {
        adapters(model, cfg)
    }

    fn fit(&self, f: &Fit) -> Result<Summary> {
        let (cfg, spec) = (f.cfg(), f.spec);
        let st = &cfg.stereotype;
        let items = groups_of(
            &samples(f.session.data, "train", None)?,
            &st.attribute,
            &st.config(),
        );
        let examples = originals(f.scorer, spec.template, f.train, &spec.attributes)?;
        let weights = item_weights(f.train, &items);
        let (lo, hi) = weights
            .iter()
            .fold((f64::INFINITY, 0f64), |(l, h), &w| (l.min(w), h.max(w)));
        f.say(&format!(
            "IFairLRS sample weights over {} samples: min {lo:.3}, max {hi:.3}, mean 1",
            weights.len()
        ));
        let train_set: Vec<_> = examples
            .into_iter()
            .zip(weights)
            .map(|(example, weight)| WeightedExample { example, weight })
            .collect();
        let n = train_set.len();
        f.fit(&WeightedLoss { answer: f.answer() }, &train_set, n)
    }
}

/// IFairLRS's weight of each sample ([`sample_weights`]): an item's key is the sorted list
/// of the stereotype groups it belongs to (empty: neutral).
pub fn item_weights(samples: &[Sample], items: &ItemGroups) -> Vec<f64> {
    let key = |item: &str| {
        let mut k = items.membership.get(item).cloned().unwrap_or_default();
        k.sort_unstable();
        k
    };
    let keyed: Vec<(Vec<Vec<usize>>, Vec<usize>)> = samples
        .iter()
        .map(|s| {
            let history = s.history_ids().into_iter().map(&key).collect();
            (history, key(&s.target_id))
        })
        .collect();
    let weighing: Vec<Weighing<'_, Vec<usize>>> = keyed
        .iter()
        .zip(samples)
        .map(|((history, target), s)| Weighing {
            history,
            target,
            label: s.label,
        })
        .collect();
    sample_weights(&weighing)
}
