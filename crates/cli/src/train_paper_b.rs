//! What paper B's training needs of a prepared dataset: `fairrec train --method mos`
//! (Mixture-of-Stereotypes), `--method ifairlrs` (its item-side baseline's sample weights)
//! and the conventional paradigms trained with the fairness loss (`--fairness-weight`).
//! The stereotype groups are the values of the one sensitive attribute of the scenario;
//! items join a group by their stereotype z-score in the train split
//! (`fairrec_metrics::stereotype`); each example carries one input per group (the prompt
//! stating that value: multi-stereotype prompting, Eq. 6), the user's group, the target's
//! groups and the history's counts per group (for the reweighting layer and the fairness
//! loss). Definitions: `fairrec_lm::mos`.

use anyhow::{bail, Result};
use candle_core::Tensor;
use fairrec_core::Variant;
use fairrec_data::pipeline::Manifest;
use fairrec_data::prompt::{render, Template};
use fairrec_data::sample::Sample;
use fairrec_lm::mos::{MixturePrompt, MosConfig};
use fairrec_lm::score::Scorer;
use fairrec_metrics::stereotype::{item_groups, Interactions, ItemGroups, StereotypeConfig};
use fairrec_train::ifairlrs::{sample_weights, Weighing};
use fairrec_train::mos::MosExample;
use fairrec_train::objective::Example;
use fairrec_train::stereo::{Stereo, StereoExample};
use fairrec_train::TrainConfig;

/// Fill in the scenario's attribute and its values (the stereotype groups); paper B's
/// methods need exactly one sensitive attribute.
pub fn settle(cfg: &mut TrainConfig, attributes: &[String], manifest: &Manifest) -> Result<()> {
    let name = if cfg.method.is_paradigm() {
        format!("{} with --fairness-weight", cfg.method.name())
    } else {
        cfg.method.name().to_string()
    };
    let [attr] = attributes else {
        bail!(
            "--method {name} needs exactly one sensitive attribute (--attributes), got [{}]",
            attributes.join(", ")
        );
    };
    let values = manifest
        .attribute_values
        .get(attr)
        .cloned()
        .unwrap_or_default();
    if values.len() < 2 {
        bail!("--method {name}: attribute `{attr}` has fewer than two values in the data");
    }
    let mut values = values;
    values.sort();
    cfg.stereotype.attribute = attr.clone();
    cfg.stereotype.groups = values;
    Ok(())
}

/// The item stereotype groups of the train split (history and target of every sample)
/// for `attr` at `z_threshold`.
pub fn groups_of(train: &[Sample], attr: &str, z_threshold: f64) -> ItemGroups {
    let inter: Vec<Interactions> = train
        .iter()
        .filter_map(|s| {
            let mut items = s.history_ids();
            items.push(&s.target_id);
            Some(Interactions {
                user: &s.user_id,
                group: s.attributes.get(attr)?,
                items,
            })
        })
        .collect();
    item_groups(
        &inter,
        &StereotypeConfig {
            z_threshold,
            normalize: true,
        },
    )
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
        bail!(
            "the train split's users of `{attr}` fall in groups [{}], the mixture's are [{}]",
            items.groups.join(", "),
            groups.join(", ")
        );
    }
    let scenario = std::slice::from_ref(attr);
    let mut prompts = Vec::with_capacity(samples.len() * groups.len());
    for s in samples {
        for g in groups {
            let v = Variant::stated([(attr.clone(), g.clone())]);
            prompts.push(render(template, s, &v, scenario)?);
        }
    }
    let ids = scorer.encode(&prompts)?;
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
    let prompts = samples
        .iter()
        .map(|s| render(template, s, &Variant::Original, std::slice::from_ref(attr)))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let ids = scorer.encode(&prompts)?;
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

/// What the fairness loss knows of `s`: its user's group among `groups` (the values of
/// `attr`), its target's stereotype groups and its history counted by group.
pub fn stereo_of(s: &Sample, attr: &str, groups: &[String], items: &ItemGroups) -> Result<Stereo> {
    let value = s.attributes.get(attr).map(String::as_str).unwrap_or("");
    let Some(user_group) = groups.iter().position(|g| g == value) else {
        bail!(
            "sample {}: `{attr}` = `{value}` is not one of [{}]",
            s.sample_id,
            groups.join(", ")
        );
    };
    Ok(Stereo {
        user_group,
        target_groups: items.of(&s.target_id).to_vec(),
        history_in_group: history_by_group(s, items),
        history_len: s.history_ids().len() as f64,
    })
}

/// The history items of `s` in each stereotype group of `items`.
fn history_by_group(s: &Sample, items: &ItemGroups) -> Vec<f64> {
    let mut in_group = vec![0.0; items.groups.len()];
    for h in s.history_ids() {
        for &g in items.of(h) {
            in_group[g] += 1.0;
        }
    }
    in_group
}

/// `examples` (encoded from `samples`, in order) with their fairness-loss tags for the
/// stereotype settings of `cfg` (a paradigm trained with `--fairness-weight`).
pub fn with_stereo(
    examples: Vec<Example>,
    samples: &[Sample],
    cfg: &TrainConfig,
    items: &ItemGroups,
) -> Result<Vec<StereoExample>> {
    let st = &cfg.stereotype;
    examples
        .into_iter()
        .zip(samples)
        .map(|(example, s)| {
            Ok(StereoExample {
                example,
                stereo: stereo_of(s, &st.attribute, &st.groups, items)?,
            })
        })
        .collect()
}

/// The mixed soft prompt of every sample (top-K routing, no graph), `[S, N, H]`: what
/// `fairrec audit` puts in front of each of a sample's prompts (routing reads the sample's
/// group inputs, not the variant being scored).
pub fn sample_prompts(
    scorer: &Scorer,
    template: Template,
    samples: &[Sample],
    mixture: &MixturePrompt,
    train: &[Sample],
    batch: usize,
) -> Result<Tensor> {
    let mc = &mixture.cfg;
    let items = groups_of(train, &mc.attribute, mc.z_threshold);
    let routes = route_inputs(scorer, template, samples, mc, &items)?;
    mixture.set_training(false);
    let mut parts = Vec::new();
    for chunk in routes.chunks(batch.max(1)) {
        let groups: Vec<Vec<Vec<u32>>> = chunk.iter().map(|r| r.group_ids.clone()).collect();
        let shares: Vec<Vec<f64>> = chunk
            .iter()
            .map(|r| fairrec_lm::mos::history_shares(&r.history_in_group))
            .collect();
        let mix = fairrec_lm::grad::no_grad(|| -> fairrec_lm::Result<_> {
            mixture.mix(&mixture.pool(scorer.backbone.host(), &groups)?, &shares)
        })?;
        parts.push(mix.prompts.detach());
    }
    Ok(Tensor::cat(&parts, 0)?)
}

/// IFairLRS's weight of each sample ([`fairrec_train::ifairlrs`]): an item's key is the
/// sorted list of the stereotype groups it belongs to (empty: neutral).
pub fn ifairlrs_weights(samples: &[Sample], items: &ItemGroups) -> Vec<f64> {
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
