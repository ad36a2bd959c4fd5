//! From prepared samples to what a model reads: the scenario's attributes, prompts rendered
//! in a variant, and their token ids. The method-specific encodings (paper A's augmented
//! groups, MoS's routing inputs, paper B's stereotype tags) live with their methods and
//! build on these.

use crate::engine::objective::Example;
use crate::error::{Result, TrainError};
use fairrec_core::Variant;
use fairrec_data::pipeline::{read_split, Manifest};
use fairrec_data::prompt::{render, Template};
use fairrec_data::sample::Sample;
use fairrec_lm::score::Scorer;
use std::path::Path;

/// The first `limit` samples (all without a limit) of split `split` of the prepared
/// dataset in `data`.
pub fn samples(data: &Path, split: &str, limit: Option<usize>) -> Result<Vec<Sample>> {
    let mut s = read_split(data, split)?;
    if let Some(n) = limit {
        s.truncate(n);
    }
    Ok(s)
}

/// The scenario's attributes: `asked` (`--attributes`, checked against the dataset's,
/// sorted and deduplicated) or all the dataset's.
pub fn scenario(manifest: &Manifest, asked: Option<&[String]>, data: &Path) -> Result<Vec<String>> {
    let available = manifest.attributes();
    let Some(asked) = asked else {
        return Ok(available);
    };
    if let Some(bad) = asked.iter().find(|x| !available.contains(x)) {
        return Err(TrainError::Input(format!(
            "--attributes: `{bad}` is not an attribute of {} (it has {})",
            data.display(),
            available.join(", ")
        )));
    }
    let mut v = asked.to_vec();
    v.sort();
    v.dedup();
    Ok(v)
}

/// Every sample's prompt in `variant` (the scenario's attributes stated as it says).
pub fn prompts(
    template: Template,
    samples: &[Sample],
    variant: &Variant,
    scenario: &[String],
) -> Result<Vec<String>> {
    Ok(samples
        .iter()
        .map(|s| render(template, s, variant, scenario))
        .collect::<std::result::Result<Vec<_>, _>>()?)
}

/// Every sample's prompt in `variant`, encoded, with its label.
pub fn examples(
    scorer: &Scorer,
    template: Template,
    samples: &[Sample],
    variant: &Variant,
    scenario: &[String],
) -> Result<Vec<Example>> {
    let ids = scorer
        .encode(&prompts(template, samples, variant, scenario)?)
        .map_err(|e| e.name_prompt(|i| format!("sample {} ({variant})", samples[i].sample_id)))?;
    Ok(ids
        .into_iter()
        .zip(samples)
        .map(|(ids, s)| Example {
            ids,
            label: s.label,
        })
        .collect())
}

/// The original prompts (the scenario's attributes stated with their true values), encoded.
pub fn originals(
    scorer: &Scorer,
    template: Template,
    samples: &[Sample],
    scenario: &[String],
) -> Result<Vec<Example>> {
    examples(scorer, template, samples, &Variant::Original, scenario)
}
