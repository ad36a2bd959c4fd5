//! Paper A's training objective over a sample and its augmented copies (Sec. 4.1-4.2).
//!
//! A training item is a [`Group`]: the copies of one sample that state sensitive values
//! (the original, its counterfactual copies, the single-attribute auxiliary copies) and,
//! for the methods with `L_diff`, the neutral copy that states none. Every stated copy `i`
//! of sample `j` gets the per-copy loss of Eq. 7,
//!
//! `L_i = NTP_i + w * || h_i - h_j^B ||_2`,
//!
//! with `NTP_i` the answer token's cross-entropy (`L_LLM`, Eq. 4), `h` the captured hidden
//! state ([`Capture`]; default: final layer, last prompt token) and `w` the `L_diff`
//! weight (Eq. 7 has 1). The batch loss is the mean of `L_i` over the stated copies, which
//! is `L_LLM + w L_diff` with `L_diff` the mean distance of Eq. 6 (`1/(N |G|)` sum over
//! samples and stated values). With the curriculum (CL-MoE) each `L_i` goes through
//! SuperLoss first (Eq. 13-18, [`crate::curriculum`]) and `tau` moves after every step
//! (Eq. 19). With LoRA-MoE adapters an optional load-balance loss (Switch Transformer:
//! `E * sum_j f_j P_j`, `f_j` the share of tokens whose largest router weight is expert
//! `j`, `P_j` the mean router weight; real tokens only, averaged over modules) is added,
//! and the mean router weight of every expert is logged.
//!
//! The Euclidean distance is computed as `sqrt(|d|^2 + 1e-12)` so that its gradient stays
//! finite when two states coincide.

use super::curriculum::{Curriculum, TauSource};
use crate::engine::objective::{balance_loss, AnswerLoss, Objective};
use crate::error::{Result, TrainError};
use candle_core::{DType, Tensor, D};
use fairrec_lm::pool::{Capture, Pooling, Stack};
use fairrec_lm::tuning::AdapterSet;
use std::cell::RefCell;
use std::collections::BTreeMap;

/// Which stated copies `L_diff` covers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DiffOver {
    /// Every stated copy, each against its sample's neutral copy (Eq. 6 summed over the
    /// stated values; the default).
    #[default]
    All,
    /// The original copy only (ours, another reading: the counterfactual copies train on
    /// `L_LLM` alone).
    Original,
}

impl DiffOver {
    fn is_all(&self) -> bool {
        *self == DiffOver::All
    }
}

impl std::str::FromStr for DiffOver {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "all" => Ok(DiffOver::All),
            "original" => Ok(DiffOver::Original),
            o => Err(format!("`{o}`: expected all or original")),
        }
    }
}

/// The losses beyond `L_LLM` (paper A).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ObjectiveConfig {
    /// Weight of `L_diff` (Eq. 6; Eq. 7 has 1). 0: no `L_diff`.
    pub diff_weight: f64,
    /// Which hidden state `L_diff` compares (default: the final layer's state at the last
    /// prompt token; READING.md).
    pub capture: Capture,
    /// Also train the neutral copy on `L_LLM` (by default it is only `L_diff`'s anchor).
    pub ntp_neutral: bool,
    /// SuperLoss curriculum (CL-MoE).
    pub curriculum: Option<Curriculum>,
    /// Weight of the load-balance loss on the routers (MoE; 0: none).
    pub balance_weight: f64,
    /// Which stated copies `L_diff` covers (absent from runs before 2026-12-05: all).
    #[serde(default, skip_serializing_if = "DiffOver::is_all")]
    pub diff_over: DiffOver,
}

impl Default for ObjectiveConfig {
    fn default() -> Self {
        ObjectiveConfig {
            diff_weight: 0.0,
            capture: Capture {
                layer: None,
                pooling: Pooling::Last,
                stack: Stack::Decoder,
            },
            ntp_neutral: false,
            curriculum: None,
            balance_weight: 0.0,
            diff_over: DiffOver::All,
        }
    }
}

impl ObjectiveConfig {
    /// The curriculum's overrides (`--no-curriculum`, `--curriculum-lambda`,
    /// `--curriculum-delta`, `--tau-source`; `None` keeps the method's value): an override
    /// of a curriculum the method does not have is an error naming the flags.
    pub fn set_curriculum(
        &mut self,
        off: bool,
        lambda: Option<f64>,
        delta: Option<f64>,
        tau_source: Option<TauSource>,
    ) -> Result<()> {
        if off {
            self.curriculum = None;
        }
        match &mut self.curriculum {
            Some(c) => {
                c.lambda = lambda.unwrap_or(c.lambda);
                c.delta = delta.unwrap_or(c.delta);
                c.tau_source = tau_source.unwrap_or(c.tau_source);
            }
            None if lambda.is_some() || delta.is_some() || tau_source.is_some() => {
                return Err(TrainError::Input(
                    "--curriculum-* and --tau-source need --method cl-moe".into(),
                ))
            }
            None => {}
        }
        Ok(())
    }
}

/// One copy of a sample: its prompt ids and what kind of copy it is (`original`,
/// `counterfactual`, `aux-gender`, ... ; used for logs).
#[derive(Debug, Clone, PartialEq)]
pub struct Copy {
    pub ids: Vec<u32>,
    pub kind: String,
}

/// A sample with the copies a method trains on.
#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    /// Copies that state sensitive values; each gets `L_LLM` (and `L_diff`).
    pub stated: Vec<Copy>,
    /// The neutral copy (no sensitive attribute): `L_diff`'s anchor `h^B`.
    pub neutral: Option<Vec<u32>>,
    pub label: bool,
}

/// Sums over a step's micro-batches (per copy), for the step log and Eq. 19.
#[derive(Debug, Default)]
struct Tally {
    copies: f64,
    ntp: f64,
    diff: f64,
    /// Eq. 7 per copy (before SuperLoss).
    raw: f64,
    /// Eq. 15 per copy.
    cl_moe: f64,
    sigma: BTreeMap<String, (f64, f64)>,
    balance: (f64, f64),
    usage: Vec<f64>,
    usage_n: f64,
}

/// The objective of `ins-tuning`, `cf`, `diff`, `cf-diff`, `moe` and `cl-moe`.
pub struct FairLoss<'a> {
    pub answer: AnswerLoss<'a>,
    pub cfg: ObjectiveConfig,
    /// The attached adapters, when they have routers (usage logs and load balance).
    routers: Option<&'a AdapterSet>,
    tau: RefCell<f64>,
    tally: RefCell<Tally>,
}

impl<'a> FairLoss<'a> {
    /// `adapters`: the run's adapters, if any (their routers are recorded when they have
    /// some).
    pub fn new(
        answer: AnswerLoss<'a>,
        cfg: ObjectiveConfig,
        adapters: Option<&'a AdapterSet>,
    ) -> Self {
        let routers = adapters.filter(|a| a.cfg.experts > 1);
        if let Some(a) = routers {
            a.record_routes(true);
        }
        let tau = cfg.curriculum.map_or(0.0, |c| c.tau0());
        FairLoss {
            answer,
            cfg,
            routers,
            tau: RefCell::new(tau),
            tally: RefCell::new(Tally::default()),
        }
    }

    /// The current curriculum threshold `tau`.
    pub fn tau(&self) -> f64 {
        *self.tau.borrow()
    }

    /// Per-copy losses of Eq. 7 `[S]` (stated copies, then neutral ones when
    /// `ntp_neutral`), their kinds, the NTP and distance parts, and the routers' weights
    /// with each prompt's last position.
    fn per_copy(&self, items: &[&Group]) -> Result<PerCopy> {
        let mut ids = Vec::new();
        let mut labels = Vec::new();
        let mut kinds = Vec::new();
        let mut stated_rows: Vec<u32> = Vec::new();
        let mut anchor_of: Vec<u32> = Vec::new(); // row of the anchor for every stated row
        let mut neutral_rows: Vec<u32> = Vec::new();
        let diff = self.cfg.diff_weight > 0.0;
        for g in items {
            if g.stated.is_empty() {
                return Err(TrainError::Config("a sample has no stated copy".into()));
            }
            for c in &g.stated {
                stated_rows.push(ids.len() as u32);
                ids.push(c.ids.clone());
                labels.push(g.label);
                kinds.push(c.kind.clone());
            }
            match &g.neutral {
                Some(n) => {
                    let row = ids.len() as u32;
                    ids.push(n.clone());
                    labels.push(g.label);
                    anchor_of.extend(std::iter::repeat_n(row, g.stated.len()));
                    neutral_rows.push(row);
                }
                None if diff => {
                    return Err(TrainError::Config(
                        "L_diff needs the neutral copy of every sample".into(),
                    ))
                }
                None => {}
            }
        }
        let capture = self.cfg.capture;
        let (nll, state, last) = self
            .answer
            .forward(&ids, &labels, diff.then_some(capture))?;
        let dev = nll.device().clone();
        let idx = |rows: &[u32]| Tensor::from_vec(rows.to_vec(), rows.len(), &dev);
        let ntp = nll.index_select(&idx(&stated_rows)?, 0)?;
        let dist = if let Some(h) = state {
            let d = (h.index_select(&idx(&stated_rows)?, 0)?
                - h.index_select(&idx(&anchor_of)?, 0)?)?;
            let d = (d.sqr()?.sum(D::Minus1)? + 1e-12)?.sqrt()?;
            Some(match self.cfg.diff_over {
                DiffOver::All => d,
                DiffOver::Original => {
                    // `kinds` holds the stated copies' kinds, in `stated_rows` order.
                    let keep: Vec<f32> = kinds
                        .iter()
                        .map(|k| f32::from(u8::from(k == "original")))
                        .collect();
                    (d * Tensor::from_vec(keep, stated_rows.len(), &dev)?)?
                }
            })
        } else {
            None
        };
        let mut loss = match &dist {
            Some(d) => (&ntp + (d * self.cfg.diff_weight)?)?,
            None => ntp.clone(),
        };
        if self.cfg.ntp_neutral && !neutral_rows.is_empty() {
            loss = Tensor::cat(&[&loss, &nll.index_select(&idx(&neutral_rows)?, 0)?], 0)?;
            kinds.extend(std::iter::repeat_n(
                "neutral".to_string(),
                neutral_rows.len(),
            ));
        }
        let tokens = ids.iter().map(Vec::len).sum();
        let routes = self.routers.map(|a| a.take_routes()).unwrap_or_default();
        Ok(PerCopy {
            loss,
            kinds,
            ntp,
            dist,
            routes,
            last,
            t_ids: ids.iter().map(Vec::len).max().unwrap_or(0),
            tokens,
        })
    }
}

struct PerCopy {
    loss: Tensor,
    kinds: Vec<String>,
    ntp: Tensor,
    dist: Option<Tensor>,
    routes: Vec<Tensor>,
    last: Vec<usize>,
    t_ids: usize,
    tokens: usize,
}

fn mean_f64(t: &Tensor) -> Result<(f64, f64)> {
    let v = t.to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>()?;
    Ok((v.iter().sum(), v.len() as f64))
}

impl Objective for FairLoss<'_> {
    type Item = Group;

    fn loss(&self, items: &[&Group]) -> Result<(Tensor, usize)> {
        let pc = self.per_copy(items)?;
        let mut tally = self.tally.borrow_mut();
        let (raw_sum, n) = mean_f64(&pc.loss)?;
        tally.copies += n;
        tally.raw += raw_sum;
        tally.ntp += mean_f64(&pc.ntp)?.0;
        if let Some(d) = &pc.dist {
            tally.diff += mean_f64(d)?.0;
        }
        let mut loss = match &self.cfg.curriculum {
            Some(c) => {
                let (sl, sigmas) = c.apply(&pc.loss, *self.tau.borrow())?;
                tally.cl_moe += mean_f64(&sl)?.0;
                for (k, s) in pc.kinds.iter().zip(sigmas) {
                    let e = tally.sigma.entry(k.clone()).or_default();
                    e.0 += s;
                    e.1 += 1.0;
                }
                sl.mean_all()?
            }
            None => {
                tally.cl_moe += raw_sum;
                pc.loss.mean_all()?
            }
        };
        if !pc.routes.is_empty() {
            let mut bal: Option<Tensor> = None;
            for w in &pc.routes {
                let (l, usage) = balance_loss(w, &pc.last, pc.t_ids)?;
                if tally.usage.len() < usage.len() {
                    tally.usage.resize(usage.len(), 0.0);
                }
                for (a, u) in tally.usage.iter_mut().zip(usage) {
                    *a += u;
                }
                tally.usage_n += 1.0;
                bal = Some(match bal {
                    None => l,
                    Some(b) => (b + l)?,
                });
            }
            let bal = (bal.expect("routes is not empty") / pc.routes.len() as f64)?;
            tally.balance.0 += bal.to_scalar::<f32>()? as f64;
            tally.balance.1 += 1.0;
            if self.cfg.balance_weight > 0.0 {
                loss = (loss + (bal * self.cfg.balance_weight)?)?;
            }
        }
        Ok((loss, pc.tokens))
    }

    fn end_step(&self) -> BTreeMap<String, f64> {
        let t = std::mem::take(&mut *self.tally.borrow_mut());
        let mut out = BTreeMap::new();
        if t.copies == 0.0 {
            return out;
        }
        let n = t.copies;
        out.insert("ntp".into(), t.ntp / n);
        if self.cfg.diff_weight > 0.0 {
            out.insert("diff".into(), t.diff / n);
        }
        if let Some(c) = &self.cfg.curriculum {
            let tau = *self.tau.borrow();
            out.insert("tau".into(), tau);
            let next = c.next_tau(tau, t.cl_moe / n, t.raw / n);
            *self.tau.borrow_mut() = next;
            for (k, (s, m)) in &t.sigma {
                out.insert(format!("sigma/{k}"), s / m);
            }
        }
        if t.balance.1 > 0.0 {
            out.insert("balance".into(), t.balance.0 / t.balance.1);
            for (j, u) in t.usage.iter().enumerate() {
                out.insert(format!("expert/{j}"), u / t.usage_n);
            }
        }
        out
    }

    fn state(&self) -> serde_json::Value {
        serde_json::json!({ "tau": *self.tau.borrow() })
    }

    fn restore(&self, state: &serde_json::Value) -> Result<()> {
        if let Some(t) = state.get("tau").and_then(|v| v.as_f64()) {
            *self.tau.borrow_mut() = t;
        }
        Ok(())
    }
}

impl Drop for FairLoss<'_> {
    fn drop(&mut self) {
        if let Some(a) = self.routers {
            a.record_routes(false);
        }
    }
}
