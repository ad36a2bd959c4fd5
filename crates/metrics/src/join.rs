//! Prepared samples (`fairrec_data`) as the audit sees them: what each sample's context is
//! (joined to predictions by `sample_id`), and the training interactions that define
//! paper B's item stereotype groups.

use crate::audit::{Context, StereotypeInput};
use crate::error::{MetricsError, Result};
use crate::predictions::Prediction;
use crate::stereotype::Interactions;
use fairrec_core::Variant;
use fairrec_data::sample::Sample;
use std::collections::HashMap;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Every sample's context (user, true attributes, target, history), by `sample_id`.
pub fn contexts<'a>(samples: impl IntoIterator<Item = &'a Sample>) -> HashMap<String, Context> {
    samples
        .into_iter()
        .map(|s| {
            let c = Context {
                user: Some(s.user_id.clone()),
                attributes: s.attributes.clone(),
                target: Some(s.target_id.clone()),
                history: s.history_ids().into_iter().map(str::to_string).collect(),
            };
            (s.sample_id.clone(), c)
        })
        .collect()
}

/// The interactions (history and target) of every sample whose user has a value of
/// `attribute`, grouped by that value.
pub fn interactions<'a>(samples: &'a [Sample], attribute: &str) -> Vec<Interactions<'a>> {
    samples
        .iter()
        .filter_map(|s| {
            let group = s.attributes.get(attribute)?;
            let mut items = s.history_ids();
            items.push(&s.target_id);
            Some(Interactions {
                user: &s.user_id,
                group,
                items,
            })
        })
        .collect()
}

/// The stereotype inputs of every attribute in `attributes` from the train split.
pub fn stereotype_inputs<'a>(
    train: &'a [Sample],
    attributes: &[String],
) -> Vec<StereotypeInput<'a>> {
    attributes
        .iter()
        .map(|attr| StereotypeInput {
            attribute: attr.clone(),
            train: interactions(train, attr),
        })
        .collect()
}

/// Check predictions (each with its line in `path`) against a prepared dataset's samples
/// (`context`, from [`contexts`]): every value a variant states must be a value of its
/// attribute in the data (`gender=Female` beside `female` would be a group of its own),
/// and every prediction must join a sample unless `allow_partial` (predictions of another
/// dataset join only by chance). Returns how many did not join.
pub fn check_against_data(
    path: &Path,
    preds: &[(usize, Prediction)],
    context: &HashMap<String, Context>,
    data: &Path,
    allow_partial: bool,
) -> Result<usize> {
    let mut domains: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for c in context.values() {
        for (k, v) in &c.attributes {
            domains.entry(k).or_default().insert(v);
        }
    }
    let bad = |line: usize, message: String| MetricsError::Line {
        path: path.to_path_buf(),
        line,
        message,
    };
    for (line, p) in preds {
        if let Variant::Stated(stated) = &p.variant {
            for (attr, value) in stated {
                let Some(values) = domains.get(attr.as_str()) else {
                    return Err(bad(
                        *line,
                        format!(
                        "variant `{}` states `{attr}`, which the samples of {} do not have ({})",
                        p.variant,
                        data.display(),
                        domains.keys().copied().collect::<Vec<_>>().join(", ")
                    ),
                    ));
                };
                if !values.contains(value.as_str()) {
                    return Err(bad(
                        *line,
                        format!(
                            "variant `{}`: `{value}` is not a value of `{attr}` in {} ({})",
                            p.variant,
                            data.display(),
                            values.iter().copied().collect::<Vec<_>>().join(", ")
                        ),
                    ));
                }
            }
        }
    }
    let unjoined: Vec<&(usize, Prediction)> = preds
        .iter()
        .filter(|(_, p)| !context.contains_key(&p.sample_id))
        .collect();
    if let (Some((line, p)), false) = (unjoined.first(), allow_partial) {
        return Err(bad(*line, format!(
            "{} of {} predictions have no sample in {} (the first: `{}`): predictions of another dataset? --allow-partial audits them as they are",
            unjoined.len(),
            preds.len(),
            data.display(),
            p.sample_id
        )));
    }
    Ok(unjoined.len())
}

/// Audit a predictions file's bytes (`path` names it in errors), joined to the prepared
/// dataset `data` when given: its train split defines paper B's stereotype groups and
/// every split joins as context, checked by [`check_against_data`]. Returns the audit and
/// how many predictions joined no sample (non-zero only with `allow_partial`). The one
/// audit of `fairrec metrics`, `fairrec audit` and the Python package.
pub fn audit_file(
    path: &Path,
    bytes: &[u8],
    data: Option<&Path>,
    allow_partial: bool,
    cfg: &crate::AuditConfig,
) -> Result<(crate::Metrics, usize)> {
    let numbered = crate::predictions::parse_numbered_bytes(path, bytes)?;
    let (mut train, mut rest, mut attributes) = (Vec::new(), Vec::new(), Vec::new());
    if let Some(dir) = data {
        attributes = fairrec_data::pipeline::read_manifest(dir)?.attributes();
        train = fairrec_data::pipeline::read_split(dir, "train")?;
        for split in ["valid", "test"] {
            rest.extend(fairrec_data::pipeline::read_split(dir, split)?);
        }
        let n = train.len() + rest.len();
        tracing::info!(samples = n, "joined prepared data from {}", dir.display());
    }
    let context = contexts(train.iter().chain(&rest));
    let unjoined = match data {
        Some(dir) => check_against_data(path, &numbered, &context, dir, allow_partial)?,
        None => 0,
    };
    let preds: Vec<Prediction> = numbered.into_iter().map(|(_, p)| p).collect();
    let stereo = stereotype_inputs(&train, &attributes);
    Ok((crate::audit(&preds, &context, &stereo, cfg)?, unjoined))
}
