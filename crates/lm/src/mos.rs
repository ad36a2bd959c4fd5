//! Mixture-of-Stereotypes soft prompts (paper B, Section VI, Eq. 6-11), on any model of
//! the engine. Paper B's equations are missing from our copy: this module doc is the one
//! place where fairrec writes down the definitions it implements (the losses, Eq. 12-15,
//! are in `fairrec_train::mos` and defined here too). They follow the paper's prose and
//! READING.md; the choices marked **(ours)** are ours.
//!
//! Notation: `B` examples, `G` stereotype groups (the values of the sensitive attribute,
//! sorted), `K` prompt experts of `N` virtual tokens each, hidden size `H`.
//!
//! * **Multi-stereotype prompting (Eq. 6).** For each example and each group `g` the
//!   group input `x_g` is the task prompt rendered with `g`'s stereotype text (the prompt
//!   stating the user's attribute as `g`). Group inputs only route; the model never reads
//!   them.
//! * **Router (Eq. 7).** `e_g` = mean of the frozen token embeddings of the part of `x_g`
//!   where the example's group inputs differ (the tokens between their common prefix and
//!   common suffix: the stated value, e.g. `female` / `male`), or of all of `x_g` when they
//!   do not differ **(ours: the mean over the whole ~190-token input made the groups'
//!   inputs nearly identical, so routing followed the task, not the stereotype; input
//!   embeddings, so routing costs no forward pass)**;
//!   `p_g = softmax(W_r e_g + b_r)` over the `K` experts (`W_r` `[K, H]`, `b_r` `[K]`).
//! * **Top-K (Eq. 8).** `p~_g,k = p_g,k` when `k` is among the `top_k` largest entries of
//!   `p_g`, else 0 (not renormalised, as the paper says the inactive experts' probabilities
//!   are zeroed). Stochastic routing **(ours: one reading of the paper's ablation)** draws
//!   the `top_k` experts without replacement in proportion to `p_g` (Gumbel top-k) while
//!   training and uses the top-K rule in evaluation.
//! * **Reweighting layer (Eq. 9).** `a_g` = the user's history share of group `g` among
//!   their history items that belong to a stereotype group (uniform when none does;
//!   computed by the caller). The paper feeds the stereotypes' (zeroed, not renormalised)
//!   routing probabilities to a linear layer: the expert weights are
//!   `w = M [a_1 p~_1; ...; a_G p~_G] + m`, `M` `[K, G K]`, `m` `[K]`, initialised to
//!   `M = [I_K ... I_K]`, `m = 0`, so that training starts at the history-share mixture
//!   `w = sum_g a_g p~_g` **(ours: the share-weighted input and this initialisation)**.
//!   Without reweighting (ablation) `w = (1/G) sum_g p~_g` and the layer does not exist.
//!   `w` is not renormalised either: the kept probabilities scale the mixture, which is
//!   what gives the router a gradient under top-1 routing (renormalising made `w` exactly
//!   one-hot there).
//! * **Prompt experts (Eq. 10-11).** Expert `k` is a soft prompt `E_k` `[N, H]`; the
//!   example's soft prompt is `P = sum_k w_k E_k`, put in front of the task prompt's token
//!   embeddings (positions count from the first virtual token, as in prompt tuning).
//! * **Losses (Eq. 12-15, in `fairrec_train::mos`).** `L = L_rec + lambda_f L_fair +
//!   lambda_d L_div`. `L_rec` is the answer token's cross-entropy (Eq. 12). `L_fair` (Eq. 13)
//!   is the stereotype-aware fairness of `fairrec_metrics::stereotype` computed on the
//!   micro-batch with `P(Yes)` as soft counts: for users of group `s'` and items of group
//!   `s`, `Delta = sum_b P_b [t_b in s] / sum_b P_b - (history items in s) / (history
//!   items)`, summed as `sum |Delta|` over the defined pairs (a fraction; the metric prints
//!   it times 100). On hard 0/1 predictions it equals the metric. `L_div` (Eq. 14) is the
//!   mean pairwise cosine similarity of the flattened expert prompts, so minimising it
//!   pushes the experts apart **(ours: cosine, not an unbounded distance)**.

use crate::error::{LmError, Result};
use crate::grad::weight;
use crate::host::PromptHost;
use crate::prompt::{PromptInit, SoftPrompt};
use crate::tokenizer::Tok;
use candle_core::{Tensor, Var, D};
use fairrec_core::Rng;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

/// How the router keeps experts (Eq. 8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Routing {
    /// The `top_k` most probable experts of each group input.
    Top,
    /// Training: `top_k` experts drawn without replacement in proportion to `p`;
    /// evaluation: as [`Routing::Top`].
    Stochastic,
}

/// Shape and options of a MoS prompt.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct MosConfig {
    /// Number of prompt experts `K`.
    pub experts: usize,
    /// Virtual tokens `N` per expert.
    pub virtual_tokens: usize,
    /// The stereotype groups (attribute values), in the order of the group inputs.
    pub groups: Vec<String>,
    /// Experts kept per group input.
    pub top_k: usize,
    pub routing: Routing,
    /// The reweighting layer (Eq. 9); off = the groups' routes averaged.
    pub reweight: bool,
    /// The sensitive attribute whose values are the groups (how the group inputs and the
    /// history shares are made; the mixture itself does not read it).
    #[serde(default)]
    pub attribute: String,
    /// Items whose stereotype z-score exceeds this belong to a group (the history shares'
    /// item groups, from the train split).
    #[serde(default = "default_z")]
    pub z_threshold: f64,
    /// Degrees from rates per group size (true) or raw interaction counts.
    #[serde(default = "default_normalize")]
    pub normalize: bool,
    /// The definition the mixture follows ([`MOS_FORMAT`]); files written before it was
    /// recorded have 0 and do not load (their weights were renormalised and their
    /// reweighting was a per-group offset).
    #[serde(default)]
    pub format: u32,
}

/// The current definition of the mixture (unnormalised expert weights, the linear
/// reweighting layer; 2026-12-04).
pub const MOS_FORMAT: u32 = 2;

fn default_z() -> f64 {
    1.0
}

fn default_normalize() -> bool {
    true
}

/// What one mixture step produced.
#[derive(Debug, Clone)]
pub struct Mixture {
    /// The soft prompt of each example, `[B, N, H]` (Eq. 11).
    pub prompts: Tensor,
    /// Expert weights `w`, `[B, K]` (Eq. 9; not renormalised).
    pub weights: Tensor,
    /// Router probabilities `p`, `[B, G, K]` (Eq. 7); rows sum to 1.
    pub probs: Tensor,
    /// After top-K masking `p~`, `[B, G, K]` (Eq. 8).
    pub routed: Tensor,
}

/// The reweighting layer (Eq. 9): `M` `[K, G K]` and `m` `[K]`.
#[derive(Debug)]
pub struct Reweight {
    pub weight: Var,
    pub bias: Var,
}

/// The trainable part of MoS: `K` expert prompts, a linear router and the reweighting
/// layer. The base model stays frozen.
#[derive(Debug)]
pub struct MixturePrompt {
    pub cfg: MosConfig,
    /// `E`, `[K, N, H]`.
    pub experts: Var,
    /// `W_r`, `[K, H]`.
    pub router_weight: Var,
    /// `b_r`, `[K]`.
    pub router_bias: Var,
    /// The reweighting layer (none in the ablation without it).
    pub reweight: Option<Reweight>,
    training: AtomicBool,
    rng: Mutex<Rng>,
}

impl MixturePrompt {
    /// A fresh mixture for `model`. Each expert starts as a prompt-tuning prompt drawn with
    /// its own seed stream (`init` must be random or sampled: identical experts would stay
    /// identical, as their diversity gradient is zero); the router starts at `N(0, 0.02^2)`
    /// with zero bias; the reweighting layer at the history-share mixture.
    pub fn new(
        model: &dyn PromptHost,
        tok: &Tok,
        cfg: MosConfig,
        init: &PromptInit,
        seed: u64,
    ) -> Result<Self> {
        if cfg.format != MOS_FORMAT {
            return Err(LmError::Invalid(format!(
                "this MoS mixture follows definition {} of the mixture, fairrec now reads {MOS_FORMAT} (expert weights no longer renormalised, a linear reweighting layer): retrain it",
                cfg.format
            )));
        }
        if matches!(init, PromptInit::Text(_)) {
            return Err(LmError::Invalid(
                "MoS experts need distinct starting points: initialise them with sample-vocab or random, not text".into(),
            ));
        }
        if cfg.experts == 0 || cfg.groups.is_empty() || cfg.top_k == 0 || cfg.top_k > cfg.experts {
            return Err(LmError::Invalid(format!(
                "MoS needs at least one expert and one group and 1 <= top_k <= experts (experts {}, groups {}, top_k {})",
                cfg.experts,
                cfg.groups.len(),
                cfg.top_k
            )));
        }
        let h = model.hidden_size();
        let rows = (0..cfg.experts)
            .map(|k| {
                let p = SoftPrompt::from_embedding(
                    model.input_embedding(),
                    tok,
                    cfg.virtual_tokens,
                    crate::prompt::PromptShape::ONE,
                    init,
                    Rng::derive(seed, &format!("mos-expert-{k}")).next_u64(),
                )?;
                Ok(p.embeddings.as_tensor().clone())
            })
            .collect::<Result<Vec<_>>>()?;
        let experts = Tensor::stack(&rows, 0)?;
        let mut rng = Rng::derive(seed, "mos-router-init");
        let w: Vec<f32> = (0..cfg.experts * h)
            .map(|_| 0.02 * rng.normal() as f32)
            .collect();
        let dev = model.host_device();
        let (k, g) = (cfg.experts, cfg.groups.len());
        let reweight = if cfg.reweight {
            let blocks: Vec<f32> = (0..k)
                .flat_map(|row| (0..g * k).map(move |c| f32::from(u8::from(c % k == row))))
                .collect();
            Some(Reweight {
                weight: Var::from_tensor(&Tensor::from_vec(blocks, (k, g * k), dev)?)?,
                bias: Var::zeros(k, candle_core::DType::F32, dev)?,
            })
        } else {
            None
        };
        Ok(MixturePrompt {
            experts: Var::from_tensor(&experts)?,
            router_weight: Var::from_tensor(&Tensor::from_vec(w, (cfg.experts, h), dev)?)?,
            router_bias: Var::zeros(cfg.experts, candle_core::DType::F32, dev)?,
            reweight,
            training: AtomicBool::new(false),
            rng: Mutex::new(Rng::derive(seed, "mos-routing")),
            cfg,
        })
    }

    /// Every trainable variable with its saved name, in a fixed order.
    pub fn named_vars(&self) -> Vec<(String, Var)> {
        let mut vars = vec![
            ("mos.experts".into(), self.experts.clone()),
            ("mos.router.weight".into(), self.router_weight.clone()),
            ("mos.router.bias".into(), self.router_bias.clone()),
        ];
        if let Some(r) = &self.reweight {
            vars.push(("mos.reweight.weight".into(), r.weight.clone()));
            vars.push(("mos.reweight.bias".into(), r.bias.clone()));
        }
        vars
    }

    /// Stochastic routing samples while training; evaluation always routes top-K.
    pub fn set_training(&self, on: bool) {
        self.training.store(on, Ordering::Relaxed);
    }

    /// Whether stochastic routing samples (training mode).
    pub fn is_training(&self) -> bool {
        self.training.load(Ordering::Relaxed)
    }

    /// Restart the stochastic routing stream (for optimizer step `step` of a run seeded
    /// with `seed`), so a resumed run draws what an uninterrupted one drew.
    pub fn reseed(&self, seed: u64, step: u64) {
        *self.rng.lock().unwrap_or_else(|e| e.into_inner()) =
            Rng::derive(seed, &format!("mos-routing/{step}"));
    }

    /// Eq. 7 input: `e_g`, the mean frozen token embedding of the tokens where example
    /// `b`'s group inputs differ ([`stereotype_span`]), `groups[b][g]` the token ids of
    /// example `b`'s input for group `g` -> `[B, G, H]`.
    pub fn pool(&self, model: &dyn PromptHost, groups: &[Vec<Vec<u32>>]) -> Result<Tensor> {
        let g = self.cfg.groups.len();
        let mut spans: Vec<&[u32]> = Vec::with_capacity(groups.len() * g);
        for (b, row) in groups.iter().enumerate() {
            if row.len() != g {
                return Err(LmError::Invalid(format!(
                    "example {b} has {} group inputs, the mixture has {g} groups",
                    row.len()
                )));
            }
            if row.iter().any(Vec::is_empty) {
                return Err(LmError::Invalid(format!(
                    "example {b} has an empty group input"
                )));
            }
            spans.extend(stereotype_span(row));
        }
        let total: usize = spans.iter().map(|x| x.len()).sum();
        let mut ids = Vec::with_capacity(total);
        let mut avg = Vec::with_capacity(spans.len() * total);
        for x in &spans {
            let mut r = vec![0f32; total];
            let start = ids.len();
            r[start..start + x.len()].fill(1.0 / x.len() as f32);
            ids.extend_from_slice(x);
            avg.extend(r);
        }
        let dev = model.host_device();
        let rows = Tensor::from_vec(avg, (spans.len(), total), dev)?;
        let idx = Tensor::from_vec(ids, total, dev)?;
        // The router reads f32 features whatever the base's dtype.
        let e = model
            .input_embedding()
            .detach()
            .index_select(&idx, 0)?
            .to_dtype(candle_core::DType::F32)?;
        Ok(rows
            .matmul(&e)?
            .reshape((groups.len(), g, model.hidden_size()))?)
    }

    /// Eq. 7-11 for a batch: `features` `[B, G, H]` from [`MixturePrompt::pool`], `shares`
    /// `[B][G]` the history shares `a` (each row sums to 1).
    pub fn mix(&self, features: &Tensor, shares: &[Vec<f64>]) -> Result<Mixture> {
        let (b, g, _) = features.dims3()?;
        let k = self.cfg.experts;
        let w = weight(self.router_weight.as_tensor());
        let logits = features
            .broadcast_matmul(&w.t()?)?
            .broadcast_add(&weight(self.router_bias.as_tensor()))?;
        let probs = candle_nn::ops::softmax(&logits, D::Minus1)?;
        let mask = self.mask(&probs.detach().flatten_to(1)?.to_vec2::<f32>()?)?;
        let mask = Tensor::from_vec(mask, (b, g, k), features.device())?;
        let routed = (&probs * mask)?;
        let weights = self.reweigh(&routed, shares)?;
        let e = weight(self.experts.as_tensor());
        let (n, h) = (e.dim(1)?, e.dim(2)?);
        let prompts = weights
            .matmul(&e.reshape((k, n * h))?)?
            .reshape((b, n, h))?;
        Ok(Mixture {
            prompts,
            weights,
            probs,
            routed,
        })
    }

    /// The 0/1 keep-mask of Eq. 8 for each row of `p` (`[B * G][K]`).
    fn mask(&self, p: &[Vec<f32>]) -> Result<Vec<f32>> {
        let stochastic =
            self.cfg.routing == Routing::Stochastic && self.training.load(Ordering::Relaxed);
        let mut rng = self.rng.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = Vec::with_capacity(p.len() * self.cfg.experts);
        for row in p {
            let keys: Vec<f64> = row
                .iter()
                .map(|&x| {
                    let lp = f64::from(x).max(1e-30).ln();
                    if stochastic {
                        // Gumbel(0, 1) noise: the top-k of ln p + G draws without replacement.
                        let u = rng.f64().clamp(1e-12, 1.0 - 1e-12);
                        lp - (-u.ln()).ln()
                    } else {
                        lp
                    }
                })
                .collect();
            let kept = top_indices(&keys, self.cfg.top_k);
            out.extend((0..row.len()).map(|i| if kept.contains(&i) { 1.0 } else { 0.0 }));
        }
        Ok(out)
    }

    /// Eq. 9: the expert weights `[B, K]` from the routed probabilities `[B, G, K]` and
    /// the history shares `[B][G]`.
    fn reweigh(&self, routed: &Tensor, shares: &[Vec<f64>]) -> Result<Tensor> {
        let (b, g, k) = routed.dims3()?;
        if shares.len() != b || shares.iter().any(|s| s.len() != g) {
            return Err(LmError::Invalid(format!(
                "history shares must be {b} rows of {g} groups"
            )));
        }
        let Some(r) = &self.reweight else {
            return Ok((routed.sum(1)? / g as f64)?);
        };
        let a: Vec<f32> = shares.iter().flatten().map(|&x| x as f32).collect();
        let a = Tensor::from_vec(a, (b, g, 1), routed.device())?;
        let x = routed.broadcast_mul(&a)?.reshape((b, g * k))?;
        Ok(x.matmul(&weight(r.weight.as_tensor()).t()?)?
            .broadcast_add(&weight(r.bias.as_tensor()))?)
    }
}

/// The part of each of one example's group inputs where they differ: the tokens between
/// the inputs' common prefix and common suffix (the whole input when they are equal, or
/// when only one group exists).
pub fn stereotype_span(inputs: &[Vec<u32>]) -> Vec<&[u32]> {
    let shortest = inputs.iter().map(Vec::len).min().unwrap_or(0);
    let first = &inputs[0];
    let same_at = |i: usize, from_end: bool| {
        inputs.iter().all(|x| {
            let (a, b) = if from_end {
                (x[x.len() - 1 - i], first[first.len() - 1 - i])
            } else {
                (x[i], first[i])
            };
            a == b
        })
    };
    let prefix = (0..shortest).take_while(|&i| same_at(i, false)).count();
    let suffix = (0..shortest - prefix)
        .take_while(|&i| same_at(i, true))
        .count();
    inputs
        .iter()
        .map(|x| {
            let span = &x[prefix..x.len() - suffix];
            if span.is_empty() {
                x.as_slice()
            } else {
                span
            }
        })
        .collect()
}

/// Indices of the `k` largest keys (ties to the lower index).
fn top_indices(keys: &[f64], k: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..keys.len()).collect();
    order.sort_by(|&a, &b| keys[b].total_cmp(&keys[a]).then(a.cmp(&b)));
    order.truncate(k);
    order
}

/// History shares `a` of one user (Eq. 9 input): `counts[g]` = the user's history items
/// in stereotype group `g` -> each group's share of them; uniform when all are 0.
pub fn history_shares(counts: &[f64]) -> Vec<f64> {
    let total: f64 = counts.iter().sum();
    if total <= 0.0 {
        return vec![1.0 / counts.len().max(1) as f64; counts.len()];
    }
    counts.iter().map(|c| c / total).collect()
}
