//! Paper A's fairness measures (Sec. 3.2) for an attribute set, with g = F1.
//!
//! fairrec reads "user groups with and without sensitive attributes" counterfactually
//! (our reading, see READING.md): the same test samples are scored with prompts that state
//! each value A_i and with the neutral prompt. For an attribute set G (one attribute, or
//! several whose joint values form the groups):
//! * `g(A_i, B)` = F1 over all predictions in variant A_i (e.g. `gender=female`, or
//!   `age=young,gender=female` for the joint set `age,gender`);
//! * `g(B)` = F1 over the `neutral` predictions;
//! * **GD** (Eq. 2) = sqrt( (1/|G|) sum_i (g(A_i,B) - g(B))^2 );
//! * **Rate** (Eq. 3, as printed) = (1/|G|) sum_i |1 - g(A_i,B) / g(B)|;
//! * **rate_sq** = (1/|G|) sum_i (1 - g(A_i,B) / g(B))^2, the squared relative deviation,
//!   which is identically (GD / g(B))^2: it adds nothing beyond GD and the neutral F1, and
//!   it is kept in `metrics.json` for the files that read it.
//!
//! Neither reproduces the Rate the paper prints: (GD/F1)^2 matches only 9 of Table 1's 18
//! Baichuan cells within 1 %, Qwen's Sushi cells are off by 5-12x, Table 2's Rate is
//! 2.8-2.9x (GD/F1)^2 on most rows, and Eq. 3 as printed cannot give the printed values at
//! all (sum|d_i| >= sqrt(sum d_i^2) bounds it below by GD / (g(B) sqrt|G|), a bound all 36
//! Table 1 cells fall under). fairrec's tables therefore compare with the paper on F1 and
//! GD only and show the paper's Rate as published (READING.md).
//!
//! A figure whose inputs are undefined (a group with no positive labels and no positive
//! predictions, or g(B) = 0 for the Rates) is `None`, and the reason is recorded.

use crate::classification::Confusion;
use fairrec_core::Variant;
use std::collections::BTreeMap;

/// Paper A's "Imp. (%)" (Tables 1-2): the relative change of a method's figure against the
/// baseline's (LLM Rec, "B"), `100 (value - base) / base`; `None` where the baseline is 0.
/// Negative is lower than the baseline: fairer for GD and Rate, worse for F1.
pub fn improvement(base: f64, value: f64) -> Option<f64> {
    (base != 0.0).then(|| 100.0 * (value - base) / base)
}

/// F1 of one group.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct GroupScore {
    pub f1: Option<f64>,
    /// Number of predictions (a bootstrap weight sum when resampled).
    pub n: f64,
}

/// GD and Rates of one attribute set.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SetFairness {
    /// F1 of the `neutral` predictions, `g(B)`.
    pub neutral_f1: Option<f64>,
    pub gd: Option<f64>,
    pub rate: Option<f64>,
    pub rate_sq: Option<f64>,
    /// Keyed by the value (single attribute, e.g. `female`) or by the canonical variant
    /// name (several attributes, e.g. `age=young,gender=female`).
    pub groups: BTreeMap<String, GroupScore>,
    /// Why a figure is undefined, keyed by the figure.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub undefined: BTreeMap<String, String>,
}

/// The key of a group within its attribute set.
pub fn group_key(variant: &Variant) -> String {
    match variant {
        Variant::Stated(m) if m.len() == 1 => m.values().next().cloned().unwrap_or_default(),
        v => v.to_string(),
    }
}

/// The attribute sets present among `variants`, keyed `age`, `gender`, `age,gender`, ...,
/// each with the indices of its variants.
pub fn attribute_sets(variants: &[Variant]) -> BTreeMap<String, Vec<usize>> {
    let mut sets: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (i, v) in variants.iter().enumerate() {
        if let Variant::Stated(m) = v {
            let key = m.keys().cloned().collect::<Vec<_>>().join(",");
            sets.entry(key).or_default().push(i);
        }
    }
    sets
}

/// GD, Rate and rate_sq of one attribute set from per-variant confusion counts.
pub fn set_fairness(
    variants: &[Variant],
    conf: &[Confusion],
    members: &[usize],
    neutral: usize,
) -> SetFairness {
    let mut undefined = BTreeMap::new();
    let g_b = conf[neutral].f1();
    let mut groups = BTreeMap::new();
    let mut gs = Vec::new();
    for &i in members {
        let f1 = conf[i].f1();
        let key = group_key(&variants[i]);
        match f1 {
            Some(g) => gs.push(g),
            None => {
                undefined.insert(
                    format!("groups.{key}.f1"),
                    format!(
                        "variant `{}` has no positive label and no positive prediction",
                        variants[i]
                    ),
                );
            }
        }
        groups.insert(key, GroupScore { f1, n: conf[i].n() });
    }
    let all_defined = gs.len() == members.len() && !gs.is_empty();
    let mean = |f: &dyn Fn(f64) -> f64| gs.iter().map(|&g| f(g)).sum::<f64>() / gs.len() as f64;
    let gd = match (g_b, all_defined) {
        (Some(b), true) => Some(mean(&|g| (g - b) * (g - b)).sqrt()),
        (None, _) => {
            undefined.insert(
                "gd".into(),
                "F1 of the `neutral` predictions is undefined".into(),
            );
            None
        }
        _ => {
            undefined.insert("gd".into(), "a group's F1 is undefined".into());
            None
        }
    };
    let (rate, rate_sq) = match (g_b, all_defined) {
        (Some(b), true) if b > 0.0 => (
            Some(mean(&|g| (1.0 - g / b).abs())),
            Some(mean(&|g| (1.0 - g / b).powi(2))),
        ),
        (Some(_), true) => {
            undefined.insert("rate".into(), "F1 of the `neutral` predictions is 0".into());
            (None, None)
        }
        _ => {
            undefined.insert("rate".into(), "GD's inputs are undefined".into());
            (None, None)
        }
    };
    if rate.is_none() {
        undefined.insert("rate_sq".into(), undefined["rate"].clone());
    }
    SetFairness {
        neutral_f1: g_b,
        gd,
        rate,
        rate_sq,
        groups,
        undefined,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conf(tp: f64, fp: f64, fn_: f64) -> Confusion {
        Confusion {
            tp,
            fp,
            tn: 0.0,
            fn_,
        }
    }

    #[test]
    fn gd_and_rates_by_hand() {
        let variants: Vec<Variant> = ["neutral", "gender=female", "gender=male"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        // F1: neutral 0.8 (tp 4, fp 1, fn 1), female 0.6 (tp 3, fp 2, fn 2), male 1.0 (tp 5)
        let c = [
            conf(4.0, 1.0, 1.0),
            conf(3.0, 2.0, 2.0),
            conf(5.0, 0.0, 0.0),
        ];
        let sets = attribute_sets(&variants);
        let f = set_fairness(&variants, &c, &sets["gender"], 0);
        let (b, g1, g2): (f64, f64, f64) = (0.8, 0.6, 1.0);
        let gd = (((g1 - b).powi(2) + (g2 - b).powi(2)) / 2.0).sqrt();
        assert!((f.gd.unwrap() - gd).abs() < 1e-12);
        let rate = ((1.0 - g1 / b).abs() + (1.0 - g2 / b).abs()) / 2.0;
        assert!((f.rate.unwrap() - rate).abs() < 1e-12);
        let rate_sq = ((1.0 - g1 / b).powi(2) + (1.0 - g2 / b).powi(2)) / 2.0;
        assert!((f.rate_sq.unwrap() - rate_sq).abs() < 1e-12);
        assert_eq!(f.groups["female"].n, 7.0);
        assert!(f.undefined.is_empty());
    }

    #[test]
    fn every_variant_equal_to_neutral_gives_zero() {
        let variants: Vec<Variant> = ["neutral", "age=old", "age=young"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        let c = [conf(3.0, 1.0, 2.0); 3];
        let f = set_fairness(&variants, &c, &[1, 2], 0);
        assert_eq!((f.gd, f.rate, f.rate_sq), (Some(0.0), Some(0.0), Some(0.0)));
    }

    #[test]
    fn undefined_groups_are_marked_not_nan() {
        let variants: Vec<Variant> = ["neutral", "gender=female", "gender=male"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        let empty = Confusion {
            tn: 4.0,
            ..Default::default()
        };
        let f = set_fairness(
            &variants,
            &[conf(2.0, 1.0, 1.0), empty, conf(1.0, 0.0, 0.0)],
            &[1, 2],
            0,
        );
        assert_eq!(f.gd, None);
        assert!(f.undefined["groups.female.f1"].contains("gender=female"));
        let zero = set_fairness(
            &variants,
            &[
                conf(0.0, 1.0, 1.0),
                conf(1.0, 0.0, 0.0),
                conf(1.0, 0.0, 0.0),
            ],
            &[1, 2],
            0,
        );
        assert_eq!(zero.gd, Some(1.0));
        assert_eq!(zero.rate, None);
        assert!(zero.undefined["rate"].contains("is 0"));
    }

    #[test]
    fn joint_groups_use_variant_names() {
        let v: Variant = "age=young,gender=female".parse().unwrap();
        assert_eq!(group_key(&v), "age=young,gender=female");
        let sets = attribute_sets(&[v, "gender=male".parse().unwrap(), Variant::Neutral]);
        assert_eq!(sets.keys().collect::<Vec<_>>(), ["age,gender", "gender"]);
    }

    #[test]
    fn improvement_is_paper_as_relative_change() {
        // Table 1, Baichuan2 on Mvlens: LLM Rec GD 6.02, CoT 23.23 (printed +286), CF-Diff
        // 2.10 (printed -65.12).
        assert!((improvement(6.02, 23.23).unwrap() - 285.88).abs() < 0.01);
        assert!((improvement(6.02, 2.10).unwrap() + 65.12).abs() < 0.01);
        assert_eq!(improvement(0.0, 1.0), None);
    }
}
