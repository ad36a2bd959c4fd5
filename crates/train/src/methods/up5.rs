//! UP5 (Hua et al., "UP5: Unbiased foundation model for fairness-aware recommendation",
//! 2023), paper B's user-side baseline: a soft prompt (prompt tuning) trained so that the
//! model's representation of a user's prompt no longer reveals the sensitive attribute,
//! against a discriminator that tries to read it. As we implement it (**our reading** of a
//! baseline paper B describes in one sentence):
//!
//! - the representation `h` is the final hidden state the answer is read from (a decoder's
//!   at the prompt's last token; T5's decoder output at the first step), of the prompt that
//!   states the attribute (paper B's explicit setting, [`crate::config::Up5Input::Stated`], the default) or
//!   of the neutral prompt, which states none ([`crate::config::Up5Input::Neutral`]: UP5's own setting,
//!   counterfactually fair prompting on inputs that do not name the attribute, where the
//!   discriminator reads what the rest of the prompt, the history, reveals of it);
//! - the discriminator is a linear classifier `softmax(W h + b)` over the attribute's values,
//!   trained with cross-entropy `CE`;
//! - the prompt is trained adversarially through a gradient-reversal layer
//!   `R_lambda(h)` (identity forward, `-lambda` times the gradient backward), so one
//!   optimizer minimises `L = NTP + CE(W R_lambda(h) + b, attribute)`: the discriminator
//!   descends `CE`, the prompt descends `NTP - lambda CE`;
//! - one attribute at a time (UP5 mixes per-attribute prompts for several; paper B uses one
//!   attribute per dataset).

use super::{soft_prompt, Family, MethodDef};
use crate::config::{TrainConfig, Up5Input};
use crate::encode::{examples, originals};
use crate::engine::objective::{AnswerLoss, Example, Objective};
use crate::engine::trainer::Summary;
use crate::error::{Result, TrainError};
use crate::fit::Fit;
use candle_core::{Tensor, Var, D};
use fairrec_core::Rng;
use fairrec_core::Variant;
use fairrec_lm::tokenizer::Tok;
use fairrec_lm::tuning::Tuning;
use fairrec_lm::Backbone;
use std::cell::RefCell;
use std::collections::BTreeMap;

/// The gradient-reversal layer: `(1 + lambda) detach(x) - lambda x` has the value `x` and
/// the gradient `-lambda` times the incoming one.
pub fn reverse_gradient(x: &Tensor, lambda: f64) -> Result<Tensor> {
    Ok(((x.detach() * (1.0 + lambda))? - (x * lambda)?)?)
}

/// A training example and the index of its user's attribute value.
#[derive(Debug, Clone)]
pub struct Up5Example {
    pub example: Example,
    pub group: usize,
}

#[derive(Default)]
struct Tally {
    n: f64,
    ntp: f64,
    ce: f64,
    correct: f64,
    seen: f64,
}

/// The objective of `up5`: NTP plus the discriminator's cross-entropy through the
/// gradient-reversal layer.
pub struct Up5Loss<'a> {
    pub answer: AnswerLoss<'a>,
    /// `lambda` of the reversal.
    pub lambda: f64,
    /// `W` `[groups, H]` and `b` `[groups]`.
    pub weight: Var,
    pub bias: Var,
    tally: RefCell<Tally>,
}

impl<'a> Up5Loss<'a> {
    /// A discriminator over `groups` attribute values for `hidden`-wide states, `W` drawn
    /// `N(0, 0.02^2)` from `seed`, `b` = 0.
    pub fn new(
        answer: AnswerLoss<'a>,
        lambda: f64,
        groups: usize,
        hidden: usize,
        seed: u64,
    ) -> Result<Self> {
        let device = answer.scorer.device().clone();
        let mut rng = Rng::derive(seed, "up5-discriminator");
        let w: Vec<f32> = (0..groups * hidden)
            .map(|_| (0.02 * rng.normal()) as f32)
            .collect();
        Ok(Up5Loss {
            answer,
            lambda,
            weight: Var::from_tensor(&Tensor::from_vec(w, (groups, hidden), &device)?)?,
            bias: Var::zeros(groups, candle_core::DType::F32, &device)?,
            tally: RefCell::new(Tally::default()),
        })
    }

    /// The discriminator's logits `[B, groups]` for states `h` `[B, H]`.
    pub fn discriminate(&self, h: &Tensor) -> Result<Tensor> {
        Ok(h.matmul(&self.weight.as_tensor().t()?)?
            .broadcast_add(self.bias.as_tensor())?)
    }
}

impl Objective for Up5Loss<'_> {
    type Item = Up5Example;

    fn loss(&self, items: &[&Up5Example]) -> Result<(Tensor, usize)> {
        let ids: Vec<Vec<u32>> = items.iter().map(|e| e.example.ids.clone()).collect();
        let labels: Vec<bool> = items.iter().map(|e| e.example.label).collect();
        let (h, answer_logits) = self.answer.scorer.answer_state(&ids, None)?;
        let h = h.to_dtype(candle_core::DType::F32)?;
        let nll =
            crate::engine::objective::answer_nll(&answer_logits, &self.answer.targets(&labels))?;
        let logits = self.discriminate(&reverse_gradient(&h, self.lambda)?)?;
        let groups: Vec<u32> = items.iter().map(|e| e.group as u32).collect();
        let ce = crate::engine::objective::answer_nll(&logits, &groups)?.mean_all()?;
        let ntp = nll.mean_all()?;
        let predicted = logits.argmax(D::Minus1)?.to_vec1::<u32>()?;
        let mut t = self.tally.borrow_mut();
        t.n += 1.0;
        t.ntp += ntp.to_dtype(candle_core::DType::F64)?.to_scalar::<f64>()?;
        t.ce += ce.to_dtype(candle_core::DType::F64)?.to_scalar::<f64>()?;
        t.correct += predicted
            .iter()
            .zip(&groups)
            .filter(|(p, g)| p == g)
            .count() as f64;
        t.seen += groups.len() as f64;
        Ok(((ntp + ce)?, ids.iter().map(Vec::len).sum()))
    }

    fn end_step(&self) -> BTreeMap<String, f64> {
        let t = std::mem::take(&mut *self.tally.borrow_mut());
        let mut out = BTreeMap::new();
        if t.n > 0.0 {
            out.insert("ntp".into(), t.ntp / t.n);
            out.insert("adversary".into(), t.ce / t.n);
            out.insert("adversary_accuracy".into(), t.correct / t.seen);
        }
        out
    }

    fn trained_vars(&self) -> Vec<(String, Var)> {
        vec![
            ("up5.discriminator.weight".into(), self.weight.clone()),
            ("up5.discriminator.bias".into(), self.bias.clone()),
        ]
    }
}

/// The method `up5`: a soft prompt against an attribute discriminator.
pub struct Up5;

pub const UP5: Up5 = Up5;

impl MethodDef for Up5 {
    fn family(&self) -> Family {
        Family::PaperB
    }

    fn label(&self) -> &'static str {
        "up5"
    }

    fn setup(&self, model: &mut dyn Backbone, tok: &Tok, cfg: &TrainConfig) -> Result<Tuning> {
        soft_prompt(model, tok, cfg)
    }

    fn fit(&self, f: &Fit) -> Result<Summary> {
        let (cfg, spec) = (f.cfg(), f.spec);
        let st = &cfg.stereotype;
        let examples = match cfg.up5_input {
            Up5Input::Stated => originals(f.scorer, spec.template, f.train, &spec.attributes)?,
            Up5Input::Neutral => examples(
                f.scorer,
                spec.template,
                f.train,
                &Variant::Neutral,
                &spec.attributes,
            )?,
        };
        let train_set = examples
            .into_iter()
            .zip(f.train)
            .map(|(example, s)| {
                let value = s.attributes.get(&st.attribute);
                let group = st
                    .groups
                    .iter()
                    .position(|g| Some(g) == value)
                    .ok_or_else(|| {
                        TrainError::Input(format!(
                            "sample {}: no `{}` value among {}",
                            s.sample_id,
                            st.attribute,
                            st.groups.join(", ")
                        ))
                    })?;
                Ok(Up5Example { example, group })
            })
            .collect::<Result<Vec<_>>>()?;
        let hidden = f.scorer.backbone.host().hidden_size();
        let objective = Up5Loss::new(
            f.answer(),
            cfg.adversary_weight,
            st.groups.len(),
            hidden,
            cfg.seed,
        )?;
        let n = train_set.len();
        f.fit(&objective, &train_set, n)
    }
}
