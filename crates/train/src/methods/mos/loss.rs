//! MoS's objective (paper B, Eq. 12-15): the answer token's cross-entropy, a batch
//! surrogate of stereotype-aware fairness with `P(Yes)` as soft counts, and the diversity
//! of the expert prompts. The definitions are written down once, in the module doc of
//! [`fairrec_lm::mos`].

use crate::engine::objective::{AnswerLoss, Example, Objective};
use crate::error::Result;
use crate::methods::stereo::{p_yes, step_p_yes, StepSurrogate, Stereo};
use candle_core::Tensor;
use fairrec_lm::mos::{MixturePrompt, Routing};
use std::cell::RefCell;
use std::collections::BTreeMap;

/// One encoded MoS training example.
#[derive(Debug, Clone, PartialEq)]
pub struct MosExample {
    /// The task prompt's token ids (what the model reads, after the mixed soft prompt).
    pub ids: Vec<u32>,
    /// One input per stereotype group, in the mixture's group order (Eq. 6; routing only).
    pub group_ids: Vec<Vec<u32>>,
    pub label: bool,
    /// The user's group (in the mixture's group order), the target's groups and the
    /// history by group.
    pub stereo: Stereo,
}

/// Weights of the loss terms (Eq. 15).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct MosWeights {
    /// `lambda_f` on the fairness surrogate (0 = the "no fairness loss" ablation).
    pub fairness: f64,
    /// `lambda_d` on the diversity term (0 = the "no diversity" ablation).
    pub diversity: f64,
    /// Weight of a load-balance loss on the router (ours, not in paper B; 0 = none): the
    /// Switch Transformer form `K * sum_k f_k P_k` over the batch's group inputs, `f_k` the
    /// share of inputs whose most probable expert is `k`, `P_k` the mean router
    /// probability of `k` (1 when balanced). Against routing that collapses onto one expert.
    #[serde(default)]
    pub balance: f64,
}

impl Default for MosWeights {
    fn default() -> Self {
        MosWeights {
            fairness: 0.1,
            diversity: 0.1,
            balance: 0.0,
        }
    }
}

#[derive(Default)]
struct Tally {
    n: f64,
    rec: f64,
    fair: (f64, f64),
    div: f64,
    balance: f64,
    weights: Vec<f64>,
    /// Mean routed probability of each (group, expert), `G * K`.
    routes: Vec<f64>,
}

/// MoS's shape, routing and loss weights (paper B; definitions in [`fairrec_lm::mos`]).
/// The virtual tokens per expert and their initialisation are `virtual_tokens` and
/// `prompt_init`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct MosSettings {
    /// Prompt experts `K` (ours: 4).
    pub experts: usize,
    /// Experts kept per group input (Eq. 8; paper B's default top-1).
    pub top_k: usize,
    pub routing: Routing,
    /// The reweighting layer (Eq. 9); off: the groups' routes are averaged.
    pub reweight: bool,
    /// `lambda_f`, `lambda_d` (Eq. 15).
    pub weights: MosWeights,
}

impl Default for MosSettings {
    fn default() -> Self {
        MosSettings {
            experts: 4,
            top_k: 1,
            routing: Routing::Top,
            reweight: true,
            weights: MosWeights::default(),
        }
    }
}

/// The objective of `mos`.
pub struct MosLoss<'a> {
    pub answer: AnswerLoss<'a>,
    pub mixture: &'a MixturePrompt,
    pub weights: MosWeights,
    /// The validation set with its group inputs, in the order of the trainer's `valid`.
    pub valid: Vec<MosExample>,
    step: StepSurrogate,
    tally: RefCell<Tally>,
}

impl<'a> MosLoss<'a> {
    pub fn new(answer: AnswerLoss<'a>, mixture: &'a MixturePrompt, weights: MosWeights) -> Self {
        MosLoss {
            answer,
            mixture,
            weights,
            valid: Vec::new(),
            step: StepSurrogate::default(),
            tally: RefCell::new(Tally::default()),
        }
    }

    /// The mixed soft prompts `[B, N, H]` and expert weights `[B, K]` of a batch.
    pub fn prompts(&self, items: &[&MosExample]) -> Result<fairrec_lm::mos::Mixture> {
        let groups: Vec<Vec<Vec<u32>>> = items.iter().map(|e| e.group_ids.clone()).collect();
        let features = self
            .mixture
            .pool(self.answer.scorer.backbone.host(), &groups)?;
        let shares: Vec<Vec<f64>> = items
            .iter()
            .map(|e| fairrec_lm::mos::history_shares(&e.stereo.history_in_group))
            .collect();
        Ok(self.mixture.mix(&features, &shares)?)
    }
}

impl MosLoss<'_> {
    /// P(Yes) of each example with its routed soft prompt (top-K routing, no graph), in
    /// batches of `batch_size`.
    pub fn p_yes(&self, items: &[MosExample], batch_size: usize) -> Result<Vec<f64>> {
        let training = self.mixture.is_training();
        self.mixture.set_training(false);
        let out = fairrec_lm::grad::no_grad(|| -> Result<Vec<f64>> {
            let mut out = Vec::with_capacity(items.len());
            for chunk in items.chunks(batch_size.max(1)) {
                let refs: Vec<&MosExample> = chunk.iter().collect();
                let mix = self.prompts(&refs)?;
                let ids: Vec<Vec<u32>> = chunk.iter().map(|e| e.ids.clone()).collect();
                let p = self
                    .answer
                    .scorer
                    .p_yes_prefixed(&ids, Some(&mix.prompts.detach()))?;
                out.extend(p);
            }
            Ok(out)
        });
        self.mixture.set_training(training);
        out
    }
}

/// Eq. 14: the mean pairwise cosine similarity of the flattened expert prompts `[K, N, H]`
/// (0 with one expert).
pub fn diversity(experts: &Tensor) -> Result<Tensor> {
    let k = experts.dim(0)?;
    let flat = experts.flatten_from(1)?;
    let norm = flat.sqr()?.sum_keepdim(1)?.sqrt()?;
    let unit = flat.broadcast_div(&norm)?;
    let cos = unit.matmul(&unit.t()?)?;
    if k < 2 {
        return Ok((cos.sum_all()? * 0.0)?);
    }
    // The off-diagonal mean: (sum of all - trace) / (K (K - 1)).
    let trace = Tensor::eye(k, cos.dtype(), cos.device())?
        .mul(&cos)?
        .sum_all()?;
    Ok(((cos.sum_all()? - trace)? / (k * (k - 1)) as f64)?)
}

impl Objective for MosLoss<'_> {
    type Item = MosExample;

    fn loss(&self, items: &[&MosExample]) -> Result<(Tensor, usize)> {
        let mix = self.prompts(items)?;
        let ids: Vec<Vec<u32>> = items.iter().map(|e| e.ids.clone()).collect();
        let labels: Vec<bool> = items.iter().map(|e| e.label).collect();
        let (nll, logits) = self.answer.nll_logits(&ids, &labels, Some(&mix.prompts))?;
        let rec = nll.mean_all()?;
        let mut t = self.tally.borrow_mut();
        t.n += 1.0;
        t.rec += f64::from(rec.to_scalar::<f32>()?);
        let w = mix.weights.detach().mean(0)?.to_vec1::<f32>()?;
        t.weights.resize(w.len(), 0.0);
        for (a, x) in t.weights.iter_mut().zip(w) {
            *a += f64::from(x);
        }
        let r = mix
            .routed
            .detach()
            .mean(0)?
            .flatten_all()?
            .to_vec1::<f32>()?;
        t.routes.resize(r.len(), 0.0);
        for (a, x) in t.routes.iter_mut().zip(r) {
            *a += f64::from(x);
        }
        let mut loss = rec;
        let p = p_yes(&self.answer, &logits)?;
        let groups = self.mixture.cfg.groups.len();
        let f = self
            .step
            .micro_term(items, &p, |e| &e.stereo, groups, &mut t.fair)?;
        if let (Some(f), true) = (f, self.weights.fairness > 0.0) {
            loss = (loss + (f * self.weights.fairness)?)?;
        }
        let g = self.mixture.cfg.groups.len();
        let (bal, _) =
            crate::engine::objective::balance_loss(&mix.probs, &vec![g - 1; items.len()], g)?;
        t.balance += f64::from(bal.to_scalar::<f32>()?);
        if self.weights.balance > 0.0 {
            loss = (loss + (bal * self.weights.balance)?)?;
        }
        let div = diversity(&fairrec_lm::grad::weight(self.mixture.experts.as_tensor()))?;
        t.div += f64::from(div.to_scalar::<f32>()?);
        if self.weights.diversity > 0.0 {
            loss = (loss + (div * self.weights.diversity)?)?;
        }
        Ok((loss, ids.iter().map(Vec::len).sum::<usize>()))
    }

    fn predict_valid(&self, valid: &[Example], batch: usize) -> Option<Result<Vec<f64>>> {
        let same = valid.len() == self.valid.len()
            && valid
                .iter()
                .zip(&self.valid)
                .all(|(a, b)| a.ids == b.ids && a.label == b.label);
        Some(if same {
            self.p_yes(&self.valid, batch)
        } else {
            Err(crate::TrainError::Config(
                "MoS validation: the objective's examples differ from the trainer's".into(),
            ))
        })
    }

    fn begin_step(&self, items: &[&MosExample], micro: usize) -> Result<()> {
        if items.len() <= micro || self.weights.fairness <= 0.0 {
            return Ok(());
        }
        let p0 = step_p_yes(
            &self.answer,
            items,
            micro,
            |e| e.ids.clone(),
            |chunk| Ok(Some(self.prompts(chunk)?.prompts)),
        )?;
        let groups = self.mixture.cfg.groups.len();
        let mut t = self.tally.borrow_mut();
        self.step
            .start(items, &p0, |e| &e.stereo, groups, &mut t.fair)
    }

    fn end_step(&self) -> BTreeMap<String, f64> {
        self.step.clear();
        let t = std::mem::take(&mut *self.tally.borrow_mut());
        let mut out = BTreeMap::new();
        if t.n == 0.0 {
            return out;
        }
        out.insert("ntp".into(), t.rec / t.n);
        out.insert("diversity".into(), t.div / t.n);
        out.insert("balance".into(), t.balance / t.n);
        if t.fair.1 > 0.0 {
            out.insert("fairness".into(), t.fair.0 / t.fair.1);
        }
        for (k, w) in t.weights.iter().enumerate() {
            out.insert(format!("expert/{k}"), w / t.n);
        }
        // Expert usage per group: whether the groups route differently.
        let k = self.mixture.cfg.experts;
        for (g, name) in self.mixture.cfg.groups.iter().enumerate() {
            for e in 0..k {
                if let Some(r) = t.routes.get(g * k + e) {
                    out.insert(format!("route/{name}/{e}"), r / t.n);
                }
            }
        }
        out
    }
}
