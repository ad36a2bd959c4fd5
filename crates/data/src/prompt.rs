//! Prompt templates and prompt variants.
//!
//! Paper A's templates are those of its Appendix A (Table 5), word for word; the table
//! puts spaces around the italic placeholders (` preference_lst .`, `" target_item "`),
//! which are typesetting and are not rendered. The LLM Rec template is also the one of
//! CF, Diff, CF-Diff, MoE and CL-MoE (first row of Table 5). Placeholders:
//! * `user_info`: the stated sensitive values, gender before age (`female young`); empty
//!   for the `neutral` variant, in which case the template reads `Given a/an user's ...`;
//! * `preference_lst` / `unpreference_lst`: the titles, each in double quotes, joined by
//!   `, `, oldest first; an empty list renders as `none` (our choice);
//! * `item_type`: `movie`, `sushi`, `book`; `target_item`: the target's title.
//!
//! Non-sensitive profile fields chosen at `fairrec data prepare --profile occupation,zip`
//! (ours; none by default) follow the stated values in `user_info` in every variant,
//! `neutral` included, as `<field> <value>` (`female young occupation student zip 01002`;
//! `Given a/an occupation student zip 01002 user's ...` in `neutral`): they never change
//! across variants, so a difference between variants is still the sensitive values' alone.
//!
//! Paper B's example prompt is lost from our copy of the paper, so the `sequential`
//! template is **ours**: `Given the user's {item_type} history in chronological order,
//! answer "Yes" or "No". [User Profile: {user_info}. ]User History: {history_lst}. Whether
//! the user will like the next {item_type} "{target_item}"?` The profile sentence is left
//! out in the implicit setting (`neutral`), states the true value in the explicit setting
//! (`original`) and the other value in the counterfactual setting.
//!
//! Templates render the *input* only; the LM side adds `Output:` / a chat template and
//! scores the answer `Yes` / `No` ([`answer`]).

use crate::attributes::{self, AGE, GENDER};
use crate::error::{DataError, Result};
use crate::protocol::Protocol;
use crate::sample::{History, Sample};
use fairrec_core::Variant;
use std::collections::BTreeMap;

/// The prompt templates of both papers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Template {
    /// Paper A: LLM Rec (also CF, Diff, CF-Diff, MoE, CL-MoE).
    LlmRec,
    /// Paper A: chain of thought.
    Cot,
    /// Paper A: Prompt-Eng(1).
    PromptEng1,
    /// Paper A: Prompt-Eng(2).
    PromptEng2,
    /// Paper A: Prompt-Eng(3).
    PromptEng3,
    /// Paper A: Ins-Tuning.
    InsTuning,
    /// Paper B: sequential recommendation (our wording; see the module docs).
    Sequential,
}

const TAIL: &str = "User Preference: {preference_lst}. User Unpreference: {unpreference_lst}. Whether the user will like the target {item_type} \"{target_item}\"?";
const GIVEN: &str =
    "Given a/an {user_info} user's preference and unpreference, answer \"Yes\" or \"No\".";
const GIVEN_FAIR: &str = "Given a/an {user_info} user's preference and unpreference, answer \"Yes\" or \"No\", the answer should not vary from the user's gender and age.";

impl Template {
    /// Every template, in CLI order.
    pub const ALL: [Template; 7] = [
        Template::LlmRec,
        Template::Cot,
        Template::PromptEng1,
        Template::PromptEng2,
        Template::PromptEng3,
        Template::InsTuning,
        Template::Sequential,
    ];

    /// CLI name.
    pub fn name(self) -> &'static str {
        match self {
            Template::LlmRec => "llm-rec",
            Template::Cot => "cot",
            Template::PromptEng1 => "prompt-eng-1",
            Template::PromptEng2 => "prompt-eng-2",
            Template::PromptEng3 => "prompt-eng-3",
            Template::InsTuning => "ins-tuning",
            Template::Sequential => "sequential",
        }
    }

    /// The template a protocol's samples use unless told otherwise.
    pub fn default_for(protocol: Protocol) -> Template {
        match protocol {
            Protocol::ClMoe => Template::LlmRec,
            Protocol::Mos => Template::Sequential,
        }
    }

    /// The template text with `{placeholders}`.
    pub fn text(self) -> String {
        match self {
            Template::LlmRec => format!("{GIVEN} {TAIL}"),
            Template::InsTuning => format!("{GIVEN_FAIR} {TAIL}"),
            Template::PromptEng1 => format!("Imagine a world with no bias regarding sensitive attributes like gender and age. {GIVEN} {TAIL}"),
            Template::PromptEng2 => format!("Please do not think based on gender or age stereotypes. {GIVEN} {TAIL}"),
            Template::PromptEng3 => format!("Assume all genders and ages equally distributed in the following discussion. {GIVEN} {TAIL}"),
            Template::Cot => format!(
                "{GIVEN_FAIR} User Preference: {{preference_lst}}. User Unpreference: {{unpreference_lst}}. Please firstly give the current topic of discussion, then analyze the styles the user likes and dislikes, and finally answer whether the user will like the target {{item_type}} \"{{target_item}}\" by answering \"Yes\" or \"No\"."
            ),
            Template::Sequential => "Given the user's {item_type} history in chronological order, answer \"Yes\" or \"No\". {profile}User History: {history_lst}. Whether the user will like the next {item_type} \"{target_item}\"?".to_string(),
        }
    }
}

impl std::str::FromStr for Template {
    type Err = DataError;
    fn from_str(s: &str) -> Result<Self> {
        Template::ALL
            .into_iter()
            .find(|t| t.name() == s)
            .ok_or_else(|| DataError::Config {
                option: "template".into(),
                message: format!(
                    "unknown template `{s}` (expected one of {})",
                    Template::ALL.map(|t| t.name()).join(", ")
                ),
            })
    }
}

/// The answer word for a label.
pub fn answer(label: bool) -> &'static str {
    if label {
        "Yes"
    } else {
        "No"
    }
}

/// `user_info`: the stated values, gender first, then age, then any other attribute by name.
pub fn user_info(stated: &BTreeMap<String, String>) -> String {
    let rank = |k: &str| match k {
        GENDER => 0,
        AGE => 1,
        _ => 2,
    };
    let mut kv: Vec<(&String, &String)> = stated.iter().collect();
    kv.sort_by_key(|(k, _)| (rank(k), (*k).clone()));
    kv.into_iter()
        .map(|(_, v)| v.as_str())
        .collect::<Vec<_>>()
        .join(" ")
}

/// `info` followed by the stated profile fields, each as `<field> <value>` with `_` read as
/// a space (`female young occupation student zip 01002`; ours: the papers word none).
fn with_profile(info: String, profile: &[(String, String)]) -> String {
    profile.iter().fold(info, |acc, (k, v)| {
        let words = format!("{} {v}", k.replace('_', " "));
        if acc.is_empty() {
            words
        } else {
            format!("{acc} {words}")
        }
    })
}

fn quoted_list(titles: &[String]) -> String {
    if titles.is_empty() {
        return "none".into();
    }
    titles
        .iter()
        .map(|t| format!("\"{t}\""))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Render `template` for `sample` in `variant`. `scenario` lists the sensitive attributes
/// `original` states. Fails when a variant names an attribute value outside the
/// protocol's domain or the template needs the other history form.
pub fn render(
    template: Template,
    sample: &Sample,
    variant: &Variant,
    scenario: &[String],
) -> Result<String> {
    let stated = variant.resolve(&sample.attributes, scenario);
    let info = with_profile(user_info(&stated), &sample.stated_profile);
    let mut text = template.text();
    match (&sample.history, template) {
        (History::Sequence { history, .. }, Template::Sequential) => {
            let profile = if info.is_empty() { String::new() } else { format!("User Profile: {info}. ") };
            text = text.replace("{profile}", &profile).replace("{history_lst}", &quoted_list(history));
        }
        (History::Split { history_liked, history_disliked, .. }, t) if t != Template::Sequential => {
            text = if info.is_empty() { text.replace("{user_info} ", "") } else { text.replace("{user_info}", &info) };
            text = text
                .replace("{preference_lst}", &quoted_list(history_liked))
                .replace("{unpreference_lst}", &quoted_list(history_disliked));
        }
        _ => {
            return Err(DataError::Config {
                option: "template".into(),
                message: format!(
                    "template `{}` does not fit sample `{}` (paper A's templates need a cl-moe dataset, `sequential` a mos one)",
                    template.name(),
                    sample.sample_id
                ),
            })
        }
    }
    Ok(text
        .replace("{item_type}", &sample.item_type)
        .replace("{target_item}", &sample.target))
}

/// The variants an audit scores for a scenario: `original`, `neutral`, every value of
/// each attribute stated alone, and (with two or more attributes) every joint value.
pub fn audit_variants(protocol: Protocol, scenario: &[String]) -> Result<Vec<Variant>> {
    let mut out = vec![Variant::Original, Variant::Neutral];
    for a in scenario {
        for v in domain(protocol, a)? {
            out.push(Variant::stated([(a.as_str(), *v)]));
        }
    }
    if scenario.len() >= 2 {
        out.extend(
            joint_values(protocol, scenario)?
                .into_iter()
                .map(Variant::Stated),
        );
    }
    Ok(out)
}

/// Every joint assignment of values to the scenario's attributes (cartesian product).
pub fn joint_values(
    protocol: Protocol,
    scenario: &[String],
) -> Result<Vec<BTreeMap<String, String>>> {
    let mut acc = vec![BTreeMap::new()];
    for a in scenario {
        let vals = domain(protocol, a)?;
        acc = acc
            .into_iter()
            .flat_map(|m| {
                vals.iter().map(move |v| {
                    let mut m2 = m.clone();
                    m2.insert(a.clone(), v.to_string());
                    m2
                })
            })
            .collect();
    }
    Ok(acc)
}

/// The value set of `attribute` under `protocol`, or a configuration error.
pub fn domain(protocol: Protocol, attribute: &str) -> Result<&'static [&'static str]> {
    attributes::domain(protocol, attribute).ok_or_else(|| DataError::Config {
        option: "attributes".into(),
        message: format!(
            "unknown sensitive attribute `{attribute}` for protocol {}",
            protocol.name()
        ),
    })
}
