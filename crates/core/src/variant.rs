//! Canonical names of prompt variants.
//!
//! A prompt variant says which sensitive attributes a prompt states and with which
//! values:
//! * `original`: the user's true attributes (every sensitive attribute of the scenario);
//! * `neutral`: no sensitive attribute at all (the contrastive copy `B` of paper A);
//! * `attr=value[,attr=value...]`: exactly these attributes with these values, the others
//!   left out. Attributes are sorted by name, e.g. `age=young,gender=female`. Values are
//!   the lowercase words the prompts use and may contain spaces (`age=middle aged`).

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

/// A prompt variant; see the module docs for the canonical names.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Variant {
    /// The user's true sensitive attributes.
    Original,
    /// No sensitive attribute stated.
    Neutral,
    /// Exactly these attributes stated, with these values (never empty).
    Stated(BTreeMap<String, String>),
}

/// Why a variant name could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VariantError {
    /// Empty name.
    #[error("empty variant name")]
    Empty,
    /// A part without `=`, or with an empty attribute or value.
    #[error("variant `{name}`: part `{part}` is not `attribute=value`")]
    BadPart { name: String, part: String },
    /// The same attribute twice.
    #[error("variant `{name}`: attribute `{attribute}` appears twice")]
    Duplicate { name: String, attribute: String },
    /// Attributes not sorted by name (the canonical form sorts them).
    #[error(
        "variant `{name}` is not canonical: attributes must be sorted by name (`{canonical}`)"
    )]
    NotCanonical { name: String, canonical: String },
}

impl Variant {
    /// A variant stating exactly the given attribute values (sorted automatically).
    /// An empty map gives [`Variant::Neutral`].
    pub fn stated<K: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        let map: BTreeMap<String, String> = pairs
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect();
        if map.is_empty() {
            Variant::Neutral
        } else {
            Variant::Stated(map)
        }
    }

    /// The attribute values this variant states for a user whose true attributes are
    /// `truth` (restricted to the scenario's sensitive attributes `scenario`).
    pub fn resolve(
        &self,
        truth: &BTreeMap<String, String>,
        scenario: &[String],
    ) -> BTreeMap<String, String> {
        match self {
            Variant::Original => truth
                .iter()
                .filter(|(k, _)| scenario.iter().any(|s| s == *k))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            Variant::Neutral => BTreeMap::new(),
            Variant::Stated(m) => m.clone(),
        }
    }

    /// The attribute names this variant states (empty for `neutral`; `None` for
    /// `original`, whose attributes depend on the scenario).
    pub fn attribute_set(&self) -> Option<Vec<&str>> {
        match self {
            Variant::Original => None,
            Variant::Neutral => Some(Vec::new()),
            Variant::Stated(m) => Some(m.keys().map(String::as_str).collect()),
        }
    }
}

impl fmt::Display for Variant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Variant::Original => f.write_str("original"),
            Variant::Neutral => f.write_str("neutral"),
            Variant::Stated(m) => {
                for (i, (k, v)) in m.iter().enumerate() {
                    if i > 0 {
                        f.write_str(",")?;
                    }
                    write!(f, "{k}={v}")?;
                }
                Ok(())
            }
        }
    }
}

impl FromStr for Variant {
    type Err = VariantError;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        match name {
            "" => return Err(VariantError::Empty),
            "original" => return Ok(Variant::Original),
            "neutral" => return Ok(Variant::Neutral),
            _ => {}
        }
        let mut map = BTreeMap::new();
        let mut order = Vec::new();
        for part in name.split(',') {
            let bad = || VariantError::BadPart {
                name: name.into(),
                part: part.into(),
            };
            let (k, v) = part.split_once('=').ok_or_else(bad)?;
            if k.is_empty() || v.is_empty() || k.trim() != k || v.trim() != v {
                return Err(bad());
            }
            if map.insert(k.to_string(), v.to_string()).is_some() {
                return Err(VariantError::Duplicate {
                    name: name.into(),
                    attribute: k.into(),
                });
            }
            order.push(k.to_string());
        }
        let v = Variant::Stated(map);
        if !order.windows(2).all(|w| w[0] < w[1]) {
            return Err(VariantError::NotCanonical {
                name: name.into(),
                canonical: v.to_string(),
            });
        }
        Ok(v)
    }
}

impl serde::Serialize for Variant {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Variant {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_canonical_order() {
        for name in [
            "original",
            "neutral",
            "gender=female",
            "age=middle aged,gender=male",
        ] {
            let v: Variant = name.parse().unwrap();
            assert_eq!(v.to_string(), name);
        }
        let v = Variant::stated([("gender", "female"), ("age", "young")]);
        assert_eq!(v.to_string(), "age=young,gender=female");
        assert_eq!(
            Variant::stated(Vec::<(String, String)>::new()),
            Variant::Neutral
        );
    }

    #[test]
    fn rejects_bad_names() {
        assert_eq!("".parse::<Variant>(), Err(VariantError::Empty));
        assert!(matches!(
            "gender".parse::<Variant>(),
            Err(VariantError::BadPart { .. })
        ));
        assert!(matches!(
            "gender=".parse::<Variant>(),
            Err(VariantError::BadPart { .. })
        ));
        assert!(matches!(
            "gender=male,gender=female".parse::<Variant>(),
            Err(VariantError::Duplicate { .. })
        ));
        let e = "gender=male,age=old".parse::<Variant>().unwrap_err();
        assert!(e.to_string().contains("age=old,gender=male"), "{e}");
    }

    #[test]
    fn resolve_restricts_original_to_scenario() {
        let truth: BTreeMap<String, String> = [
            ("age".to_string(), "old".to_string()),
            ("gender".into(), "male".into()),
        ]
        .into();
        let only_gender = vec!["gender".to_string()];
        assert_eq!(Variant::Original.resolve(&truth, &only_gender).len(), 1);
        assert!(Variant::Neutral.resolve(&truth, &only_gender).is_empty());
    }
}
