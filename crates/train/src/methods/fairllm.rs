//! The FaiRLLM objective, paper B's user-side baseline built on FaiRLLM (Zhang et al.,
//! RecSys 2023): FaiRLLM measures how far a recommender's answers move when a sensitive
//! attribute is stated against a neutral instruction; as a training objective (paper B's
//! "divergence of ... recommendations against sensitive attributes") we read it as
//!
//! `L = NTP(sensitive prompt) + lambda * mean_i J(p_i^sens, p_i^neutral)`
//!
//! where `p^sens` is P(Yes) of the prompt that states the user's attribute (paper B's
//! explicit setting), `p^neutral` that of the same sample without it (the implicit
//! setting), both the softmax over the (Yes, No) logits, and `J` the Jeffreys divergence
//! (symmetric KL) of the two Bernoulli answers, which has the closed form
//! `J(p, q) = KL(p||q) + KL(q||p) = (p - q) (logit p - logit q)`: zero exactly when the
//! stated attribute does not move the answer, differentiable through both prompts. The
//! divergence, its symmetric form and `lambda` (default 1) are **our choices**; paper B
//! names the baseline without its loss.

use super::{adapters, Family, MethodDef};
use crate::config::TrainConfig;
use crate::encode::{examples, originals};
use crate::engine::objective::{answer_nll, AnswerLoss, Example, Objective};
use crate::engine::trainer::Summary;
use crate::error::Result;
use crate::fit::Fit;
use candle_core::{Tensor, D};
use fairrec_core::Variant;
use fairrec_lm::tokenizer::Tok;
use fairrec_lm::tuning::Tuning;
use fairrec_lm::Backbone;
use std::cell::RefCell;
use std::collections::BTreeMap;

/// A training sample as two prompts: the sensitive one (trained on, labelled) and the
/// neutral one (the anchor of the divergence).
#[derive(Debug, Clone)]
pub struct PairExample {
    pub sensitive: Example,
    pub neutral: Example,
}

/// `J(p, q)` of Bernoulli answers given their log-odds `d_p`, `d_q` (elementwise):
/// `(sigmoid(d_p) - sigmoid(d_q)) (d_p - d_q)`.
pub fn jeffreys_from_log_odds(dp: &Tensor, dq: &Tensor) -> Result<Tensor> {
    // 1 / (1 + e^-d), composed so that both prompts get gradients.
    let sig = |d: &Tensor| -> Result<Tensor> { Ok((d.neg()?.exp()? + 1.0)?.recip()?) };
    Ok(((sig(dp)? - sig(dq)?)? * (dp - dq)?)?)
}

#[derive(Default)]
struct Tally {
    n: f64,
    ntp: f64,
    divergence: f64,
}

/// The objective of `fairllm`.
pub struct FairLlmLoss<'a> {
    pub answer: AnswerLoss<'a>,
    /// `lambda`.
    pub weight: f64,
    tally: RefCell<Tally>,
}

impl<'a> FairLlmLoss<'a> {
    pub fn new(answer: AnswerLoss<'a>, weight: f64) -> Self {
        FairLlmLoss {
            answer,
            weight,
            tally: RefCell::new(Tally::default()),
        }
    }
}

impl Objective for FairLlmLoss<'_> {
    type Item = PairExample;

    fn loss(&self, items: &[&PairExample]) -> Result<(Tensor, usize)> {
        let b = items.len();
        // One forward pass over the sensitive prompts, then the neutral ones.
        let ids: Vec<Vec<u32>> = items
            .iter()
            .map(|p| p.sensitive.ids.clone())
            .chain(items.iter().map(|p| p.neutral.ids.clone()))
            .collect();
        let labels: Vec<bool> = items
            .iter()
            .map(|p| p.sensitive.label)
            .chain(items.iter().map(|p| p.neutral.label))
            .collect();
        let (_, logits) = self.answer.nll_logits(&ids, &labels, None)?;
        let yes_no = self.answer.yes_no(&logits)?;
        let d = (yes_no.narrow(1, 0, 1)? - yes_no.narrow(1, 1, 1)?)?.squeeze(D::Minus1)?;
        let (ds, dn) = (d.narrow(0, 0, b)?, d.narrow(0, b, b)?);
        let targets: Vec<u32> = labels[..b]
            .iter()
            .map(|&l| {
                if l {
                    self.answer.scorer.yes
                } else {
                    self.answer.scorer.no
                }
            })
            .collect();
        let ntp = answer_nll(&logits.narrow(0, 0, b)?, &targets)?.mean_all()?;
        let div = jeffreys_from_log_odds(&ds, &dn)?.mean_all()?;
        let total = (&ntp + (&div * self.weight)?)?;
        let mut t = self.tally.borrow_mut();
        t.n += 1.0;
        t.ntp += ntp.to_dtype(candle_core::DType::F64)?.to_scalar::<f64>()?;
        t.divergence += div.to_dtype(candle_core::DType::F64)?.to_scalar::<f64>()?;
        Ok((total, ids.iter().map(Vec::len).sum()))
    }

    fn end_step(&self) -> BTreeMap<String, f64> {
        let t = std::mem::take(&mut *self.tally.borrow_mut());
        let mut out = BTreeMap::new();
        if t.n > 0.0 {
            out.insert("ntp".into(), t.ntp / t.n);
            out.insert("divergence".into(), t.divergence / t.n);
        }
        out
    }
}

/// The method `fairllm`: LoRA on the explicit setting's answer loss plus the divergence
/// from the implicit setting's answer.
pub struct FairLlm;

pub const FAIRLLM: FairLlm = FairLlm;

impl MethodDef for FairLlm {
    fn family(&self) -> Family {
        Family::PaperB
    }

    fn label(&self) -> &'static str {
        "fairllm"
    }

    fn setup(&self, model: &mut dyn Backbone, _tok: &Tok, cfg: &TrainConfig) -> Result<Tuning> {
        adapters(model, cfg)
    }

    fn fit(&self, f: &Fit) -> Result<Summary> {
        let spec = f.spec;
        // Explicit setting (the true value stated) against implicit (no profile).
        let sensitive = originals(f.scorer, spec.template, f.train, &spec.attributes)?;
        let neutral = examples(
            f.scorer,
            spec.template,
            f.train,
            &Variant::Neutral,
            &spec.attributes,
        )?;
        let pairs: Vec<_> = sensitive
            .into_iter()
            .zip(neutral)
            .map(|(sensitive, neutral)| PairExample { sensitive, neutral })
            .collect();
        let objective = FairLlmLoss::new(f.answer(), f.cfg().divergence_weight);
        f.fit(&objective, &pairs, 2 * pairs.len())
    }
}
