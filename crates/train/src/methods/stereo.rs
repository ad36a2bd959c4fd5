//! Paper B's stereotype-aware fairness as a training loss (Eq. 13), for MoS and for the
//! conventional paradigms that Table V trains "using the same learning objectives" (LoRA,
//! p-tuning, prompt tuning, full-model tuning): the answer loss plus `lambda_f` times a
//! batch surrogate of the metric with `P(Yes)` as soft counts. The metric itself is
//! defined in `fairrec_metrics::stereotype`; the surrogate is that definition on one
//! batch (with gradient accumulation, on the whole step's examples: [`StepSurrogate`]).
//! Table V leaves MoS's diversity term (Eq. 14) out for these paradigms ("no expert
//! module is involved"), and so does [`StereoLoss`].
//!
//! Also here: the stereotype groups of a run (the values of its one sensitive attribute,
//! [`StereotypeSettings`]), the items that join them in the train split ([`groups_of`]),
//! and what the loss knows of each sample ([`stereo_of`]).

use crate::engine::objective::{AnswerLoss, Example, Objective};
use crate::error::{Result, TrainError};
use candle_core::{Tensor, D};
use fairrec_data::pipeline::Manifest;
use fairrec_data::sample::Sample;
use fairrec_metrics::join::interactions;
use fairrec_metrics::stereotype::{item_groups, ItemGroups, StereotypeConfig, ZThreshold};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::Path;

/// The stereotype groups of paper B's methods: the values of one sensitive attribute, and
/// the items that join a group by their stereotype z-score in the train split
/// (`fairrec_metrics::stereotype`). The settled settings are saved beside the trained
/// adapter ([`STEREOTYPE_FILE`]) so that its audit groups items the same way.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct StereotypeSettings {
    /// The sensitive attribute whose values are the stereotype groups.
    pub attribute: String,
    /// Its values, sorted (filled from the data).
    pub groups: Vec<String>,
    /// Items whose stereotype z-score exceeds this belong to a group; `auto` is resolved
    /// on the train split when the run is set up ([`fairrec_metrics::stereotype::auto_threshold`]).
    pub z_threshold: ZThreshold,
    /// The threshold was `auto` (and `z_threshold` is what it resolved to).
    #[serde(default)]
    pub z_auto: bool,
    /// Degrees from rates per group size (true) or raw interaction counts.
    #[serde(default = "yes")]
    pub normalize: bool,
}

fn yes() -> bool {
    true
}

impl Default for StereotypeSettings {
    fn default() -> Self {
        StereotypeSettings {
            attribute: String::new(),
            groups: Vec::new(),
            z_threshold: ZThreshold::Auto,
            z_auto: false,
            normalize: true,
        }
    }
}

/// The file in a trained adapter (or model) directory that records its stereotype settings.
pub const STEREOTYPE_FILE: &str = "fairrec_stereotype.json";

impl StereotypeSettings {
    /// Fill in the scenario's attribute and its values (the stereotype groups) and resolve
    /// an `auto` threshold on `train`: paper B's methods (`method`, as the error names it)
    /// need exactly one sensitive attribute.
    pub fn settle(
        &mut self,
        method: &str,
        attributes: &[String],
        manifest: &Manifest,
        train: &[Sample],
    ) -> Result<()> {
        let [attr] = attributes else {
            return Err(TrainError::Input(format!(
                "--method {method} needs exactly one sensitive attribute (--attributes), got [{}]",
                attributes.join(", ")
            )));
        };
        let mut values = manifest
            .attribute_values
            .get(attr)
            .cloned()
            .unwrap_or_default();
        if values.len() < 2 {
            return Err(TrainError::Input(format!(
                "--method {method}: attribute `{attr}` has fewer than two values in the data"
            )));
        }
        values.sort();
        self.attribute = attr.clone();
        self.groups = values;
        if self.z_threshold == ZThreshold::Auto {
            let z = groups_of(train, attr, &self.config()).z_threshold;
            self.z_threshold = ZThreshold::Fixed(z);
            self.z_auto = true;
        }
        Ok(())
    }

    /// The item grouping these settings ask for.
    pub fn config(&self) -> StereotypeConfig {
        StereotypeConfig {
            z_threshold: self.z_threshold,
            normalize: self.normalize,
        }
    }

    /// Write the settings into `dir` ([`STEREOTYPE_FILE`]).
    pub fn save(&self, dir: &Path) -> Result<()> {
        let path = dir.join(STEREOTYPE_FILE);
        let text = serde_json::to_string_pretty(self).map_err(|source| TrainError::Json {
            path: path.clone(),
            source,
        })?;
        std::fs::write(&path, text).map_err(|e| TrainError::Io { path, source: e })
    }

    /// The settings saved in `dir`, if it has them.
    pub fn read(dir: &Path) -> Result<Option<StereotypeSettings>> {
        let path = dir.join(STEREOTYPE_FILE);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|source| TrainError::Json { path, source }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(TrainError::Io { path, source: e }),
        }
    }
}

/// The item grouping of an audit of a model trained in `dirs` (its adapter, or the model
/// directory of a full fine-tune): the flags where given (`asked`, `raw_counts`), else the
/// settings the first of `dirs` that has them was trained with, so that training and audit
/// group items alike; else `auto` on rates per group size. Also returns a warning when the
/// flags differ from the recorded settings.
pub fn audit_grouping<'a>(
    dirs: impl IntoIterator<Item = &'a Path>,
    asked: Option<ZThreshold>,
    raw_counts: bool,
) -> Result<(StereotypeConfig, Option<String>)> {
    let mut recorded = None;
    for dir in dirs {
        if let Some(r) = StereotypeSettings::read(dir)? {
            recorded = Some((dir, r));
            break;
        }
    }
    let Some((dir, r)) = recorded else {
        let cfg = StereotypeConfig {
            z_threshold: asked.unwrap_or(ZThreshold::Auto),
            normalize: !raw_counts,
        };
        return Ok((cfg, None));
    };
    // `auto` asked of a model whose training resolved `auto` is that resolution.
    let z = match asked {
        None => r.z_threshold,
        Some(ZThreshold::Auto) if r.z_auto => r.z_threshold,
        Some(z) => z,
    };
    let normalize = r.normalize && !raw_counts;
    let counts = |n: bool| if n { "" } else { " (raw counts)" };
    let warning = (z != r.z_threshold || normalize != r.normalize).then(|| {
        format!(
            "{} was trained with items grouped at z* = {}{}; this audit groups them at z* = {z}{}",
            dir.display(),
            r.z_threshold,
            counts(r.normalize),
            counts(normalize)
        )
    });
    let cfg = StereotypeConfig {
        z_threshold: z,
        normalize,
    };
    Ok((cfg, warning))
}

/// The item stereotype groups of the train split (history and target of every sample)
/// for `attr`, grouped as `cfg` says.
pub fn groups_of(train: &[Sample], attr: &str, cfg: &StereotypeConfig) -> ItemGroups {
    item_groups(&interactions(train, attr), cfg)
}

/// What the fairness loss knows of `s`: its user's group among `groups` (the values of
/// `attr`), its target's stereotype groups and its history counted by group.
pub fn stereo_of(s: &Sample, attr: &str, groups: &[String], items: &ItemGroups) -> Result<Stereo> {
    let value = s.attributes.get(attr).map(String::as_str).unwrap_or("");
    let Some(user_group) = groups.iter().position(|g| g == value) else {
        return Err(TrainError::Input(format!(
            "sample {}: `{attr}` = `{value}` is not one of [{}]",
            s.sample_id,
            groups.join(", ")
        )));
    };
    Ok(Stereo {
        user_group,
        target_groups: items.of(&s.target_id).to_vec(),
        history_in_group: history_by_group(s, items),
        history_len: s.history_ids().len() as f64,
    })
}

/// The history items of `s` in each stereotype group of `items`.
pub fn history_by_group(s: &Sample, items: &ItemGroups) -> Vec<f64> {
    let mut in_group = vec![0.0; items.groups.len()];
    for h in s.history_ids() {
        for &g in items.of(h) {
            in_group[g] += 1.0;
        }
    }
    in_group
}

/// What the fairness surrogate knows of one training example: the user's stereotype group,
/// the target item's groups and the user's history counted by group.
#[derive(Debug, Clone, PartialEq)]
pub struct Stereo {
    /// The user's group (index into the stereotype groups).
    pub user_group: usize,
    /// The stereotype groups the target item belongs to (none: a neutral item).
    pub target_groups: Vec<usize>,
    /// The user's history items in each stereotype group.
    pub history_in_group: Vec<f64>,
    /// The user's history length (every item, neutral ones included).
    pub history_len: f64,
}

/// Eq. 13's surrogate: `sum |Delta(s', s)|` over the defined (user group, item group)
/// pairs of the batch, with `p_yes` `[B]` as soft counts of Yes (a fraction; the metric
/// prints 100 times it). `Delta(s', s)` = the share of group-`s` targets among the Yes
/// answers to users of `s'` minus the share of group-`s` items in those users' histories.
/// `None` when no pair is defined (no user with history items).
pub fn fairness_surrogate(
    p_yes: &Tensor,
    items: &[&Stereo],
    groups: usize,
) -> Result<Option<Tensor>> {
    let dev = p_yes.device();
    let b = items.len();
    let mut total: Option<Tensor> = None;
    for u in 0..groups {
        let rows: Vec<f32> = items
            .iter()
            .map(|e| f32::from(u8::from(e.user_group == u)))
            .collect();
        let hist: f64 = items
            .iter()
            .filter(|e| e.user_group == u)
            .map(|e| e.history_len)
            .sum();
        if hist <= 0.0 {
            continue;
        }
        let of_u = Tensor::from_vec(rows.clone(), b, dev)?;
        let yes = (p_yes * &of_u)?.sum_all()?;
        // yes > 0 for any soft P(Yes); on hard predictions a group with no Yes is
        // undefined, as in the metric.
        if yes.to_scalar::<f32>()? <= 0.0 {
            continue;
        }
        for s in 0..groups {
            let inside: Vec<f32> = items
                .iter()
                .zip(&rows)
                .map(|(e, r)| r * f32::from(u8::from(e.target_groups.contains(&s))))
                .collect();
            let h_in: f64 = items
                .iter()
                .filter(|e| e.user_group == u)
                .map(|e| e.history_in_group.get(s).copied().unwrap_or(0.0))
                .sum();
            let y_in = (p_yes * Tensor::from_vec(inside, b, dev)?)?.sum_all()?;
            let delta = ((y_in / &yes)? - h_in / hist)?.abs()?;
            total = Some(match total {
                None => delta,
                Some(t) => (t + delta)?,
            });
        }
    }
    Ok(total)
}

/// Eq. 13's surrogate over a whole optimizer step (ours): with gradient accumulation the
/// soft counts are summed over every micro-batch of the step, as one batch of
/// `batch_size x grad_accum` examples would have them, rather than over micro-batches of a
/// few examples, where most (user group, item group) pairs have one or no example.
///
/// Two passes, exact: [`StepSurrogate::begin`] takes `P(Yes)` of all the step's examples
/// (no graph, dropout off), computes the surrogate `f` and its derivatives `c_i = df/dp_i`;
/// each micro-batch's term is then `f + (n / m) sum_i c_i (p_i - p0_i)` over its `m` of
/// the step's `n` examples, whose gradient summed over the step (weights `m / n`) is
/// exactly `df/dtheta = sum_i c_i dp_i/dtheta`, and whose value is `f` (up to dropout).
#[derive(Debug, Default)]
pub struct StepSurrogate {
    state: RefCell<Option<StepState>>,
}

#[derive(Debug)]
struct StepState {
    /// `f` over the step, `None` when no pair is defined.
    value: Option<f64>,
    /// `(c_i, p0_i)` by example address.
    per: std::collections::HashMap<usize, (f64, f64)>,
    size: usize,
}

/// The address that names an example within a step.
pub fn key<T>(item: &T) -> usize {
    item as *const T as usize
}

impl StepSurrogate {
    /// Start a step of `items` with `P(Yes)` `p0`; the step's `f`, where defined, is added
    /// to `tally` (sum, count).
    pub fn start<T>(
        &self,
        items: &[&T],
        p0: &[f64],
        stereo_of: impl Fn(&T) -> &Stereo,
        groups: usize,
        tally: &mut (f64, f64),
    ) -> Result<()> {
        let keys: Vec<usize> = items.iter().map(|e| key(*e)).collect();
        let stereo: Vec<&Stereo> = items.iter().map(|e| stereo_of(e)).collect();
        if let Some(f) = self.begin(&keys, p0, &stereo, groups)? {
            tally.0 += f;
            tally.1 += 1.0;
        }
        Ok(())
    }

    /// The fairness term of a micro-batch `items` with `P(Yes)` `p` `[m]`: the step's
    /// part ([`StepSurrogate::term`]) while a step is under way, else the micro-batch's own
    /// surrogate (then added to `tally`).
    pub fn micro_term<T>(
        &self,
        items: &[&T],
        p: &Tensor,
        stereo_of: impl Fn(&T) -> &Stereo,
        groups: usize,
        tally: &mut (f64, f64),
    ) -> Result<Option<Tensor>> {
        if self.active() {
            let keys: Vec<usize> = items.iter().map(|e| key(*e)).collect();
            return self.term(&keys, p);
        }
        let stereo: Vec<&Stereo> = items.iter().map(|e| stereo_of(e)).collect();
        let f = fairness_surrogate(p, &stereo, groups)?;
        if let Some(f) = &f {
            tally.0 += f64::from(f.to_scalar::<f32>()?);
            tally.1 += 1.0;
        }
        Ok(f)
    }

    fn begin(
        &self,
        keys: &[usize],
        p0: &[f64],
        items: &[&Stereo],
        groups: usize,
    ) -> Result<Option<f64>> {
        let v = candle_core::Var::from_vec(
            p0.iter().map(|&x| x as f32).collect::<Vec<_>>(),
            p0.len(),
            &candle_core::Device::Cpu,
        )?;
        let f = fairness_surrogate(v.as_tensor(), items, groups)?;
        let (value, c) = match f {
            None => (None, vec![0.0; p0.len()]),
            Some(f) => {
                let g = f.backward()?;
                let c = match g.get(v.as_tensor()) {
                    Some(c) => c.to_vec1::<f32>()?.into_iter().map(f64::from).collect(),
                    None => vec![0.0; p0.len()],
                };
                (Some(f64::from(f.to_scalar::<f32>()?)), c)
            }
        };
        let per = keys
            .iter()
            .zip(c.into_iter().zip(p0.iter().copied()))
            .map(|(&k, cp)| (k, cp))
            .collect();
        *self.state.borrow_mut() = Some(StepState {
            value,
            per,
            size: keys.len(),
        });
        Ok(value)
    }

    /// Whether a step is under way.
    pub fn active(&self) -> bool {
        self.state.borrow().is_some()
    }

    /// The term of a micro-batch of examples `keys` with `P(Yes)` `p` `[m]` (see the type);
    /// `None` when the step defines no pair.
    pub fn term(&self, keys: &[usize], p: &Tensor) -> Result<Option<Tensor>> {
        let st = self.state.borrow();
        let Some(st) = st.as_ref().filter(|s| s.value.is_some()) else {
            return Ok(None);
        };
        let scale = st.size as f64 / keys.len().max(1) as f64;
        let (mut c, mut p0) = (
            Vec::with_capacity(keys.len()),
            Vec::with_capacity(keys.len()),
        );
        for k in keys {
            let (ci, pi) = st.per.get(k).copied().ok_or_else(|| {
                TrainError::Config("a micro-batch example outside its step".into())
            })?;
            c.push((ci * scale) as f32);
            p0.push(pi as f32);
        }
        let dev = p.device();
        let c = Tensor::from_vec(c, keys.len(), dev)?;
        let p0 = Tensor::from_vec(p0, keys.len(), dev)?;
        let lin = ((p - p0)? * c)?.sum_all()?;
        Ok(Some((lin + st.value.unwrap_or(0.0))?))
    }

    /// End the step.
    pub fn clear(&self) {
        *self.state.borrow_mut() = None;
    }
}

/// `P(Yes)` of `items` with the model's tuning as it is (no graph), through `prefix_of`
/// (the per-row soft prompts a method puts in front, or none), in micro-batches of
/// `micro`: the first pass of a [`StepSurrogate`].
pub fn step_p_yes<T>(
    answer: &AnswerLoss,
    items: &[&T],
    micro: usize,
    ids_of: impl Fn(&T) -> Vec<u32>,
    prefix_of: impl Fn(&[&T]) -> Result<Option<Tensor>>,
) -> Result<Vec<f64>> {
    fairrec_lm::grad::no_grad(|| {
        let mut out = Vec::with_capacity(items.len());
        for chunk in items.chunks(micro.max(1)) {
            let ids: Vec<Vec<u32>> = chunk.iter().map(|e| ids_of(e)).collect();
            let prefix = prefix_of(chunk)?.map(|t| t.detach());
            let logits = answer.scorer.vocab_logits(&ids, prefix.as_ref())?;
            let p = p_yes(answer, &logits)?.to_vec1::<f32>()?;
            out.extend(p.into_iter().map(f64::from));
        }
        Ok(out)
    })
}

/// `P(Yes)` `[B]` from answer logits `[B, V]`: the softmax over the (Yes, No) pair.
pub fn p_yes(answer: &AnswerLoss, logits: &Tensor) -> Result<Tensor> {
    let yes_no = answer.yes_no(logits)?;
    Ok(candle_nn::ops::softmax(&yes_no, D::Minus1)?
        .narrow(1, 0, 1)?
        .squeeze(1)?)
}

/// A training example with what the surrogate needs of it.
#[derive(Debug, Clone, PartialEq)]
pub struct StereoExample {
    pub example: Example,
    pub stereo: Stereo,
}

/// Running means of the loss parts between optimizer steps.
#[derive(Default)]
struct Tally {
    n: f64,
    ntp: f64,
    fair: (f64, f64),
}

/// `mean_i NLL_i + lambda_f * fairness_surrogate` (Eq. 12 + Eq. 13, Eq. 15 without the
/// diversity term) on whatever the model has attached (LoRA, a soft prompt, p-tuning's
/// encoder, or every weight).
pub struct StereoLoss<'a> {
    pub answer: AnswerLoss<'a>,
    /// `lambda_f`.
    pub weight: f64,
    /// Number of stereotype groups.
    pub groups: usize,
    step: StepSurrogate,
    tally: RefCell<Tally>,
}

impl<'a> StereoLoss<'a> {
    pub fn new(answer: AnswerLoss<'a>, weight: f64, groups: usize) -> Self {
        StereoLoss {
            answer,
            weight,
            groups,
            step: StepSurrogate::default(),
            tally: RefCell::new(Tally::default()),
        }
    }
}

impl Objective for StereoLoss<'_> {
    type Item = StereoExample;

    fn loss(&self, items: &[&StereoExample]) -> Result<(Tensor, usize)> {
        let ids: Vec<Vec<u32>> = items.iter().map(|e| e.example.ids.clone()).collect();
        let labels: Vec<bool> = items.iter().map(|e| e.example.label).collect();
        let (nll, logits) = self.answer.nll_logits(&ids, &labels, None)?;
        let mut loss = nll.mean_all()?;
        let mut t = self.tally.borrow_mut();
        t.n += 1.0;
        t.ntp += f64::from(loss.to_scalar::<f32>()?);
        let p = p_yes(&self.answer, &logits)?;
        let f = self
            .step
            .micro_term(items, &p, |e| &e.stereo, self.groups, &mut t.fair)?;
        if let Some(f) = f {
            loss = (loss + (f * self.weight)?)?;
        }
        Ok((loss, ids.iter().map(Vec::len).sum()))
    }

    fn begin_step(&self, items: &[&StereoExample], micro: usize) -> Result<()> {
        if items.len() <= micro {
            return Ok(());
        }
        let p0 = step_p_yes(
            &self.answer,
            items,
            micro,
            |e| e.example.ids.clone(),
            |_| Ok(None),
        )?;
        let mut t = self.tally.borrow_mut();
        self.step
            .start(items, &p0, |e| &e.stereo, self.groups, &mut t.fair)
    }

    fn end_step(&self) -> BTreeMap<String, f64> {
        self.step.clear();
        let t = std::mem::take(&mut *self.tally.borrow_mut());
        let mut out = BTreeMap::new();
        if t.n > 0.0 {
            out.insert("ntp".into(), t.ntp / t.n);
        }
        if t.fair.1 > 0.0 {
            out.insert("fairness".into(), t.fair.0 / t.fair.1);
        }
        out
    }
}
