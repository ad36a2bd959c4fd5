//! Counterfactual augmentation of training samples (paper A, Sec. 4.1-4.2).
//!
//! For each training sample and a scenario (the sensitive attributes studied):
//! * `original`: the sample as it is (true values stated);
//! * `counterfactual`: one copy per other joint value of the scenario's attributes
//!   (`G \ A` of Eq. 4: the other gender; for gender x age the 5 other combinations), or
//!   with [`Counterfactuals::SingleFlip`] one copy per other value of one attribute at a
//!   time, the others kept true (paper A's "one sensitive attribute is altered" read
//!   literally: 3 copies for gender x age);
//! * `neutral`: the contrastive copy with no sensitive attribute (`h^B` of Eq. 4-6);
//! * `aux-<attribute>`: single-attribute auxiliary samples for CL-MoE, which state only
//!   that attribute (made only when the scenario has two or more attributes). By default
//!   one per value of the attribute (our choice; `AuxValues::True` keeps only the true
//!   value). The ablations -A, -G and -GA of Table 3 drop `aux-age`, `aux-gender` or both.
//!
//! Every copy keeps the label: the premise of the counterfactual is that the sensitive
//! attribute does not change the preference.

use crate::error::Result;
use crate::prompt::{domain, joint_values};
use crate::protocol::Protocol;
use crate::sample::Sample;
use fairrec_core::Variant;
use std::collections::BTreeMap;

/// What an augmented copy is, so that trainers can select copies.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AugmentKind {
    Original,
    Counterfactual,
    Neutral,
    /// A single-attribute auxiliary sample stating only this attribute.
    Auxiliary(String),
}

impl std::fmt::Display for AugmentKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AugmentKind::Original => f.write_str("original"),
            AugmentKind::Counterfactual => f.write_str("counterfactual"),
            AugmentKind::Neutral => f.write_str("neutral"),
            AugmentKind::Auxiliary(a) => write!(f, "aux-{a}"),
        }
    }
}

/// Which auxiliary values to make.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AuxValues {
    /// Every value of the attribute.
    #[default]
    All,
    /// Only the user's true value.
    True,
}

impl std::str::FromStr for AuxValues {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "all" => Ok(AuxValues::All),
            "true" => Ok(AuxValues::True),
            o => Err(format!("auxiliary values `{o}`: expected all or true")),
        }
    }
}

/// How counterfactual copies change the stated attributes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Counterfactuals {
    /// Every other joint value (ours, the default: `G \ A` over joint values).
    #[default]
    Joint,
    /// One attribute changed at a time, the others true.
    SingleFlip,
}

impl Counterfactuals {
    fn is_joint(&self) -> bool {
        *self == Counterfactuals::Joint
    }
}

impl std::str::FromStr for Counterfactuals {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "joint" => Ok(Counterfactuals::Joint),
            "single-flip" => Ok(Counterfactuals::SingleFlip),
            o => Err(format!(
                "counterfactuals `{o}`: expected joint or single-flip"
            )),
        }
    }
}

/// Which copies to make.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AugmentConfig {
    pub protocol: Protocol,
    /// The scenario's sensitive attributes.
    pub attributes: Vec<String>,
    pub counterfactual: bool,
    pub neutral: bool,
    /// Attributes that get single-attribute auxiliary samples (ignored with fewer than two
    /// scenario attributes).
    pub auxiliary: Vec<String>,
    pub aux_values: AuxValues,
    /// How counterfactual copies are made (absent from runs before 2026-12-05: joint).
    #[serde(default, skip_serializing_if = "Counterfactuals::is_joint")]
    pub counterfactuals: Counterfactuals,
}

impl AugmentConfig {
    /// Everything on: CL-MoE's augmentation for `attributes`.
    pub fn full(protocol: Protocol, attributes: &[String]) -> Self {
        AugmentConfig {
            protocol,
            attributes: attributes.to_vec(),
            counterfactual: true,
            neutral: true,
            auxiliary: attributes.to_vec(),
            aux_values: AuxValues::All,
            counterfactuals: Counterfactuals::Joint,
        }
    }
}

/// One augmented copy of a sample: the base sample is the caller's; this says how to
/// prompt it.
#[derive(Debug, Clone, PartialEq)]
pub struct Augmented {
    /// `<base sample id>#<kind>#<variant>`.
    pub id: String,
    pub kind: AugmentKind,
    pub variant: Variant,
}

/// The copies of `sample` that `cfg` asks for, in a fixed order.
pub fn augment(sample: &Sample, cfg: &AugmentConfig) -> Result<Vec<Augmented>> {
    let mut out = Vec::new();
    let mut push = |kind: AugmentKind, variant: Variant| {
        out.push(Augmented {
            id: format!("{}#{kind}#{variant}", sample.sample_id),
            kind,
            variant,
        });
    };
    push(AugmentKind::Original, Variant::Original);
    let truth: BTreeMap<String, String> = cfg
        .attributes
        .iter()
        .filter_map(|a| sample.attributes.get(a).map(|v| (a.clone(), v.clone())))
        .collect();
    if cfg.counterfactual {
        for joint in joint_values(cfg.protocol, &cfg.attributes)? {
            let changed = joint
                .iter()
                .filter(|(a, v)| truth.get(*a) != Some(*v))
                .count();
            let keep = match cfg.counterfactuals {
                Counterfactuals::Joint => changed > 0,
                Counterfactuals::SingleFlip => changed == 1,
            };
            if keep {
                push(AugmentKind::Counterfactual, Variant::Stated(joint));
            }
        }
    }
    if cfg.neutral {
        push(AugmentKind::Neutral, Variant::Neutral);
    }
    if cfg.attributes.len() >= 2 {
        for a in cfg.auxiliary.iter().filter(|a| cfg.attributes.contains(a)) {
            let values: Vec<String> = match cfg.aux_values {
                AuxValues::All => domain(cfg.protocol, a)?
                    .iter()
                    .map(|v| v.to_string())
                    .collect(),
                AuxValues::True => truth.get(a).cloned().into_iter().collect(),
            };
            for v in values {
                push(
                    AugmentKind::Auxiliary(a.clone()),
                    Variant::stated([(a.clone(), v)]),
                );
            }
        }
    }
    Ok(out)
}
