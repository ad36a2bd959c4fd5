//! Prepared samples (`fairrec_data`) as the audit sees them: what each sample's context is
//! (joined to predictions by `sample_id`), and the training interactions that define
//! paper B's item stereotype groups.

use crate::audit::{Context, StereotypeInput};
use crate::stereotype::Interactions;
use fairrec_data::sample::Sample;
use std::collections::HashMap;

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
