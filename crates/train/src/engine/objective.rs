//! Training objectives. The recommendation loss of both papers is next-token prediction of
//! the answer: cross-entropy over the whole vocabulary at the answer position, the target
//! being the first token of "Yes" or "No" (paper A's `L_LLM`, Eq. 4); and the Switch
//! Transformer load-balance loss on router weights that LoRA-MoE and MoS share.

use crate::error::Result;
use candle_core::{DType, Tensor, D};
use fairrec_lm::backbone::Batch;
use fairrec_lm::pool::Capture;
use fairrec_lm::score::Scorer;
use std::collections::BTreeMap;

/// One encoded training example.
#[derive(Debug, Clone, PartialEq)]
pub struct Example {
    /// Prompt token ids (template rendered, chat template applied).
    pub ids: Vec<u32>,
    /// Does the user like the item?
    pub label: bool,
}

/// What the trainer minimises over a micro-batch.
pub trait Objective {
    type Item;
    /// Mean loss over `items` (a scalar tensor) and the number of real tokens fed.
    fn loss(&self, items: &[&Self::Item]) -> Result<(Tensor, usize)>;

    /// Called before the micro-batches of every optimizer step with all of the step's
    /// examples (the tuning's dropout off), `micro` per micro-batch: objectives whose loss
    /// couples examples (paper B's fairness surrogate) see the whole step here.
    fn begin_step(&self, _items: &[&Self::Item], _micro: usize) -> Result<()> {
        Ok(())
    }

    /// Called after every optimizer step: update state that moves per step (CL-MoE's
    /// `tau`) and return what the step log should also show (loss parts, expert usage).
    fn end_step(&self) -> BTreeMap<String, f64> {
        BTreeMap::new()
    }

    /// P(Yes) of the validation examples (in their order) when the method scores them
    /// otherwise than the model with its tuning attached does (MoS routes one prompt per
    /// example); `None`: [`crate::engine::trainer::predict`] scores them.
    fn predict_valid(&self, _valid: &[Example], _batch: usize) -> Option<Result<Vec<f64>>> {
        None
    }

    /// Variables the objective itself trains beside the tuning's (UP5's attribute
    /// discriminator); the optimizer and the checkpoints take them with the tuning's.
    fn trained_vars(&self) -> Vec<(String, candle_core::Var)> {
        Vec::new()
    }

    /// State a checkpoint must carry for an exact resume.
    fn state(&self) -> serde_json::Value {
        serde_json::Value::Null
    }

    /// Restore what [`Objective::state`] returned.
    fn restore(&self, _state: &serde_json::Value) -> Result<()> {
        Ok(())
    }
}

/// Per-example negative log-likelihood of the answer token, `[B]`:
/// `-log softmax(logits)[target]` with `logits` `[B, V]`.
pub fn answer_nll(logits: &Tensor, targets: &[u32]) -> Result<Tensor> {
    let lsm = candle_nn::ops::log_softmax(logits, 1)?;
    let idx = Tensor::from_vec(targets.to_vec(), (targets.len(), 1), logits.device())?;
    Ok(lsm.gather(&idx, 1)?.squeeze(1)?.neg()?)
}

/// `L_LLM`: the answer token's cross-entropy, averaged over the batch.
pub struct AnswerLoss<'a> {
    pub scorer: &'a Scorer<'a>,
}

impl AnswerLoss<'_> {
    /// Per-example answer NLL `[B]` of a batch (either backbone).
    pub fn per_example(&self, items: &[&Example]) -> Result<Tensor> {
        let ids: Vec<Vec<u32>> = items.iter().map(|e| e.ids.clone()).collect();
        let labels: Vec<bool> = items.iter().map(|e| e.label).collect();
        Ok(self.nll_logits(&ids, &labels, None)?.0)
    }

    /// The per-prompt answer NLL `[B]` and the answer logits `[B, V]`, with one soft prompt
    /// per row in front if given (`[B, P, H]`), on either backbone (a decoder's last prompt
    /// position, T5's first decoder step).
    pub fn nll_logits(
        &self,
        ids: &[Vec<u32>],
        labels: &[bool],
        prefix: Option<&Tensor>,
    ) -> Result<(Tensor, Tensor)> {
        let logits = self.scorer.vocab_logits(ids, prefix)?;
        Ok((answer_nll(&logits, &self.targets(labels))?, logits))
    }

    /// The answer token of each label (Yes or No).
    pub fn targets(&self, labels: &[bool]) -> Vec<u32> {
        labels
            .iter()
            .map(|&l| if l { self.scorer.yes } else { self.scorer.no })
            .collect()
    }

    /// One forward pass over encoded prompts, on either backbone: the per-prompt answer NLL
    /// `[B]`, the hidden states `capture` names pooled to `[B, H]` (when given) and each
    /// prompt's last position.
    pub fn forward(
        &self,
        ids: &[Vec<u32>],
        labels: &[bool],
        capture: Option<Capture>,
    ) -> Result<(Tensor, Option<Tensor>, Vec<usize>)> {
        let (x, last) = self.scorer.batch(ids)?;
        let batch = Batch { x, last };
        let (logits, state) = self.scorer.backbone.answer_capture(&batch, capture)?;
        Ok((
            answer_nll(&logits, &self.targets(labels))?,
            state,
            batch.last,
        ))
    }

    /// The (Yes, No) columns of answer logits `[B, V]` -> `[B, 2]`.
    pub fn yes_no(&self, logits: &Tensor) -> Result<Tensor> {
        let idx = Tensor::from_vec(vec![self.scorer.yes, self.scorer.no], 2, logits.device())?;
        Ok(logits.index_select(&idx, 1)?)
    }
}

impl Objective for AnswerLoss<'_> {
    type Item = Example;
    fn loss(&self, items: &[&Example]) -> Result<(Tensor, usize)> {
        let tokens = items.iter().map(|e| e.ids.len()).sum();
        Ok((self.per_example(items)?.mean_all()?, tokens))
    }
}

/// Load-balance loss `E * sum_j f_j P_j` of router weights `w` `[B, T, E]` over the real
/// positions (row `b` real at `t < T - t_ids + last[b] + 1`, so a soft-prompt prefix
/// counts as real), and the mean weight `P_j` of each expert.
pub fn balance_loss(w: &Tensor, last: &[usize], t_ids: usize) -> Result<(Tensor, Vec<f64>)> {
    let (b, t, e) = w.dims3()?;
    let offset = t.saturating_sub(t_ids);
    let mask: Vec<f32> = (0..b)
        .flat_map(|r| (0..t).map(move |j| f32::from(u8::from(j < offset + last[r] + 1))))
        .collect();
    let n: f32 = mask.iter().sum();
    let mask = Tensor::from_vec(mask, (b, t, 1), w.device())?;
    let p = (w.broadcast_mul(&mask)?.sum((0, 1))? / n as f64)?; // [E]
    let top = w.argmax_keepdim(D::Minus1)?; // [B, T, 1]
    let onehot = Tensor::arange(0u32, e as u32, w.device())?
        .reshape((1, 1, e))?
        .broadcast_eq(&top)?
        .to_dtype(DType::F32)?;
    let f = (onehot.broadcast_mul(&mask)?.sum((0, 1))? / n as f64)?.detach();
    let loss = ((f * &p)?.sum_all()? * e as f64)?;
    let usage = p
        .detach()
        .to_vec1::<f32>()?
        .iter()
        .map(|&x| x as f64)
        .collect();
    Ok((loss, usage))
}
