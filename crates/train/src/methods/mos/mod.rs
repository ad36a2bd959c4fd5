//! Paper B's Mixture-of-Stereotypes (MoS): soft-prompt experts mixed per sample by a router
//! over one input per stereotype group (multi-stereotype prompting, Eq. 6) and a
//! reweighting layer over the history's shares of the groups (Eq. 9). The mixture is
//! defined once in [`fairrec_lm::mos`]; its objective (Eq. 12-15) and settings are in
//! [`loss`]. The stereotype groups are the values of the scenario's one sensitive
//! attribute; items join a group by their stereotype z-score in the train split
//! ([`super::stereo::groups_of`]).

pub mod loss;

use self::loss::{MosExample, MosLoss};
use super::stereo::{groups_of, history_by_group, stereo_of};
use super::{Family, MethodDef};
use crate::config::TrainConfig;
use crate::encode::{prompts, samples};
use crate::engine::trainer::Summary;
use crate::error::{Result, TrainError};
use crate::fit::Fit;
use candle_core::Tensor;
use fairrec_core::Variant;
use fairrec_data::prompt::{render, Template};
use fairrec_data::sample::Sample;
use fairrec_lm::mos::{history_shares, MixturePrompt, MosConfig};
use fairrec_lm::prompt::PromptInit;
use fairrec_lm::score::Scorer;
use fairrec_lm::tokenizer::Tok;
use fairrec_lm::tuning::Tuning;
use fairrec_lm::Backbone;
use fairrec_metrics::stereotype::{ItemGroups, StereotypeConfig, ZThreshold};
use std::collections::BTreeMap;
use std::sync::Arc;

/// The method `mos`.
pub struct Mos;

pub const MOS: Mos = Mos;

impl MethodDef for Mos {
    fn family(&self) -> Family {
        Family::PaperB
    }

    fn label(&self) -> &'static str {
        "mos"
    }

    /// 1: expert weights no longer renormalised, the linear reweighting layer
    /// (`fairrec_lm::mos::MOS_FORMAT` 2, 2026-12-04).
    fn revision(&self) -> u32 {
        1
    }

    /// Ours (paper B's values are lost): experts start from vocabulary rows, and a
    /// prompt's learning rate is higher than an adapter's.
    fn defaults(&self, c: &mut TrainConfig, _multi_attribute: bool) {
        c.prompt_init = PromptInit::SampleVocab;
        c.lr = 1e-2;
    }

    fn validate(&self, c: &TrainConfig) -> Result<()> {
        let m = &c.mos;
        if m.experts == 0 || m.top_k == 0 || m.top_k > m.experts {
            return Err(TrainError::Config(
                "MoS needs at least one expert and 1 <= top-k <= experts".into(),
            ));
        }
        Ok(())
    }

    fn setup(&self, model: &mut dyn Backbone, tok: &Tok, cfg: &TrainConfig) -> Result<Tuning> {
        let (m, st) = (&cfg.mos, &cfg.stereotype);
        let mc = MosConfig {
            experts: m.experts,
            virtual_tokens: cfg.virtual_tokens,
            groups: st.groups.clone(),
            top_k: m.top_k,
            routing: m.routing,
            reweight: m.reweight,
            attribute: st.attribute.clone(),
            z_threshold: match st.z_threshold {
                ZThreshold::Fixed(z) => z,
                ZThreshold::Auto => return Err(TrainError::Config(
                    "MoS: the z threshold was not resolved (settle the stereotype settings first)"
                        .into(),
                )),
            },
            normalize: st.normalize,
            format: fairrec_lm::mos::MOS_FORMAT,
        };
        Ok(Tuning::Mos(Arc::new(MixturePrompt::new(
            model.host_mut(),
            tok,
            mc,
            &cfg.prompt_init,
            cfg.seed,
        )?)))
    }

    fn fit(&self, f: &Fit) -> Result<Summary> {
        let Tuning::Mos(mixture) = f.tuning else {
            return Err(TrainError::Config("mos trains a mixture of prompts".into()));
        };
        let mc = &mixture.cfg;
        let items = groups_of(
            &samples(f.session.data, "train", None)?,
            &mc.attribute,
            &grouping(mc),
        );
        let template = f.spec.template;
        let train_set = encode(f.scorer, template, f.train, mc, &items)?;
        let mut objective = MosLoss::new(f.answer(), mixture, f.cfg().mos.weights);
        objective.valid = encode(f.scorer, template, f.valid_samples, mc, &items)?;
        let n = train_set.len();
        f.fit(&objective, &train_set, n)
    }
}

/// What MoS routes one sample on.
pub struct RouteInput {
    /// One input per group: the prompt stating that value (Eq. 6).
    pub group_ids: Vec<Vec<u32>>,
    /// The history's items in each stereotype group.
    pub history_in_group: Vec<f64>,
}

/// The routing inputs of `samples` for a mixture over `mc.groups` of `mc.attribute`.
pub fn route_inputs(
    scorer: &Scorer,
    template: Template,
    samples: &[Sample],
    mc: &MosConfig,
    items: &ItemGroups,
) -> Result<Vec<RouteInput>> {
    let (attr, groups) = (&mc.attribute, &mc.groups);
    if items.groups != *groups {
        return Err(TrainError::Input(format!(
            "the train split's users of `{attr}` fall in groups [{}], the mixture's are [{}]",
            items.groups.join(", "),
            groups.join(", ")
        )));
    }
    let scenario = std::slice::from_ref(attr);
    let mut prompts = Vec::with_capacity(samples.len() * groups.len());
    for s in samples {
        for g in groups {
            let v = Variant::stated([(attr.clone(), g.clone())]);
            prompts.push(render(template, s, &v, scenario)?);
        }
    }
    let ids = scorer.encode(&prompts).map_err(|e| {
        e.name_prompt(|k| {
            let (s, g) = (&samples[k / groups.len()], &groups[k % groups.len()]);
            format!("sample {} (routing input {attr}={g})", s.sample_id)
        })
    })?;
    Ok(samples
        .iter()
        .zip(ids.chunks(groups.len()))
        .map(|(s, group_ids)| RouteInput {
            group_ids: group_ids.to_vec(),
            history_in_group: history_by_group(s, items),
        })
        .collect())
}

/// Encode `samples` as MoS examples: the original prompt (true attributes stated, as the
/// other methods train), the routing inputs, the user's group and the target's groups.
pub fn encode(
    scorer: &Scorer,
    template: Template,
    samples: &[Sample],
    mc: &MosConfig,
    items: &ItemGroups,
) -> Result<Vec<MosExample>> {
    let attr = &mc.attribute;
    let routes = route_inputs(scorer, template, samples, mc, items)?;
    let originals = prompts(
        template,
        samples,
        &Variant::Original,
        std::slice::from_ref(attr),
    )?;
    let ids = scorer
        .encode(&originals)
        .map_err(|e| e.name_prompt(|i| format!("sample {} (original)", samples[i].sample_id)))?;
    samples
        .iter()
        .zip(ids)
        .zip(routes)
        .map(|((s, ids), r)| {
            Ok(MosExample {
                ids,
                group_ids: r.group_ids,
                label: s.label,
                stereo: stereo_of(s, attr, &mc.groups, items)?,
            })
        })
        .collect()
}

/// The mixed soft prompt of every sample (top-K routing, no graph), `[S, N, H]`: what an
/// audit puts in front of each of a sample's prompts (routing reads the sample's group
/// inputs, not the variant being scored). `train`: the train split, whose items define
/// the stereotype groups. Also the mean routed probability of each expert per group over
/// the samples (expert usage per group).
pub fn sample_prompts(
    scorer: &Scorer,
    template: Template,
    samples: &[Sample],
    mixture: &MixturePrompt,
    train: &[Sample],
    batch: usize,
) -> Result<(Tensor, BTreeMap<String, Vec<f64>>)> {
    let mc = &mixture.cfg;
    let items = groups_of(train, &mc.attribute, &grouping(mc));
    let routes = route_inputs(scorer, template, samples, mc, &items)?;
    mixture.set_training(false);
    let mut parts = Vec::new();
    let mut usage = vec![vec![0f64; mc.experts]; mc.groups.len()];
    for chunk in routes.chunks(batch.max(1)) {
        let groups: Vec<Vec<Vec<u32>>> = chunk.iter().map(|r| r.group_ids.clone()).collect();
        let shares: Vec<Vec<f64>> = chunk
            .iter()
            .map(|r| history_shares(&r.history_in_group))
            .collect();
        let mix = fairrec_lm::grad::no_grad(|| -> fairrec_lm::Result<_> {
            mixture.mix(&mixture.pool(scorer.backbone.host(), &groups)?, &shares)
        })?;
        for row in mix.routed.to_vec3::<f32>()? {
            for (u, r) in usage.iter_mut().zip(row) {
                for (a, x) in u.iter_mut().zip(r) {
                    *a += f64::from(x) / samples.len() as f64;
                }
            }
        }
        parts.push(mix.prompts.detach());
    }
    let usage = mc.groups.iter().cloned().zip(usage).collect();
    Ok((Tensor::cat(&parts, 0)?, usage))
}

/// How a mixture's history shares group items: the threshold its training resolved, and
/// its degrees' normalisation.
fn grouping(mc: &MosConfig) -> StereotypeConfig {
    StereotypeConfig {
        z_threshold: ZThreshold::Fixed(mc.z_threshold),
        normalize: mc.normalize,
    }
}
