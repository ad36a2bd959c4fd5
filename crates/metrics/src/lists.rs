//! FaiRLLM's user-side fairness of ranked recommendation lists (Zhang et al., RecSys 2023),
//! for list-producing recommenders such as paper B's FaiRLLM baseline.
//!
//! Input: one JSONL line per generated list, `{"instruction_id": str, "variant": str,
//! "items": [str, ...]}` (best first); `variant` is `neutral` or states sensitive values
//! (`gender=female`). For an instruction m, `R_m` is its neutral list and `R^a_m` the list
//! for value a; `r(v)` is the 1-based rank of item v in a list (items compared trimmed and
//! case-insensitively; repeats keep their first rank). Top-K only.
//! * **Jaccard@K** = |R^a ∩ R| / |R^a ∪ R| (1 when both are empty).
//! * **SERP\*@K** (as the paper prints it) = sum over v in R^a of 1[v in R] (K - r^a(v) + 1)
//!   / (K (K+1) / 2); identical lists of K items give 1. The public notebook instead sums
//!   (K - r^a(v) + 2) and divides by 2 K (K+1) (a quarter of the scale and an offset); it is
//!   reported as `serp_star_notebook` for comparison.
//! * **PRAG\*@K** = the share of pairs (v1 ranked above v2 in R^a) with v1 in R and v1
//!   ranked above v2 in R (an item missing from R ranks below all); the pair count
//!   K'(K'-1)/2 of the sensitive list normalises it, as the public notebook does, so that
//!   identical lists give 1 (a one-item list scores 1 if it equals R). We could not check
//!   the paper's printed denominator against this copy; this is our reading.
//! * **Sim(a)** = mean over instructions of Sim(R^a_m, R_m); **SNSR** = max_a Sim(a) -
//!   min_a Sim(a); **SNSV** = sqrt(mean_a (Sim(a) - mean Sim)^2). Lower is fairer.

use crate::audit::resample::percentile;
use crate::error::{MetricsError, Result};
use fairrec_core::{Rng, Variant};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// One generated list.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
pub struct RankedList {
    pub instruction_id: String,
    pub variant: Variant,
    pub items: Vec<String>,
}

/// Parse ranked lists from JSONL text; `path` names the source in errors.
pub fn parse_lists(path: &Path, text: &str) -> Result<Vec<RankedList>> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let l: RankedList = serde_json::from_str(line).map_err(|e| MetricsError::Line {
            path: path.to_path_buf(),
            line: i + 1,
            message: format!("invalid ranked list: {e}"),
        })?;
        out.push(l);
    }
    if out.is_empty() {
        return Err(MetricsError::Invalid(format!(
            "{}: no ranked lists",
            path.display()
        )));
    }
    Ok(out)
}

fn top_k(items: &[String], k: usize) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    items
        .iter()
        .map(|s| s.trim().to_lowercase())
        .filter(|s| seen.insert(s.clone()))
        .take(k)
        .collect()
}

fn ranks(list: &[String]) -> HashMap<&str, usize> {
    list.iter()
        .enumerate()
        .map(|(i, v)| (v.as_str(), i + 1))
        .collect()
}

/// Jaccard@K.
pub fn jaccard(sensitive: &[String], neutral: &[String], k: usize) -> f64 {
    let (a, b) = (top_k(sensitive, k), top_k(neutral, k));
    let sb: std::collections::HashSet<&String> = b.iter().collect();
    let inter = a.iter().filter(|v| sb.contains(v)).count();
    let union = a.len() + b.len() - inter;
    if union == 0 {
        1.0
    } else {
        inter as f64 / union as f64
    }
}

/// SERP*@K as the paper prints it.
pub fn serp_star(sensitive: &[String], neutral: &[String], k: usize) -> f64 {
    let (a, b) = (top_k(sensitive, k), top_k(neutral, k));
    let rb = ranks(&b);
    let s: usize = a
        .iter()
        .enumerate()
        .filter(|(_, v)| rb.contains_key(v.as_str()))
        .map(|(i, _)| k - (i + 1) + 1)
        .sum();
    s as f64 / (k * (k + 1)) as f64 * 2.0
}

/// SERP* with the public notebook's constants (for comparison only).
pub fn serp_star_notebook(sensitive: &[String], neutral: &[String], k: usize) -> f64 {
    let (a, b) = (top_k(sensitive, k), top_k(neutral, k));
    let rb = ranks(&b);
    let s: usize = a
        .iter()
        .enumerate()
        .filter(|(_, v)| rb.contains_key(v.as_str()))
        .map(|(i, _)| k - i + 1)
        .sum();
    s as f64 / (2 * k * (k + 1)) as f64
}

/// PRAG*@K (see the module docs for the normalisation).
pub fn prag_star(sensitive: &[String], neutral: &[String], k: usize) -> f64 {
    let (a, b) = (top_k(sensitive, k), top_k(neutral, k));
    if a.is_empty() || b.is_empty() {
        return 0.0;
    }
    if a.len() == 1 {
        return if a == b[..1.min(b.len())] && b.len() == 1 {
            1.0
        } else {
            0.0
        };
    }
    let rb = ranks(&b);
    let (mut agree, mut pairs) = (0usize, 0usize);
    for i in 0..a.len() {
        for j in i + 1..a.len() {
            pairs += 1;
            if let Some(&r1) = rb.get(a[i].as_str()) {
                if rb.get(a[j].as_str()).is_none_or(|&r2| r1 < r2) {
                    agree += 1;
                }
            }
        }
    }
    agree as f64 / pairs as f64
}

/// A list similarity: (sensitive list, neutral list, K) -> similarity.
pub type Measure = fn(&[String], &[String], usize) -> f64;

/// Per instruction, the similarity of each measure (`None`: no list for this value).
type Rows = Vec<Option<[f64; 4]>>;

/// Sim(a) per value, SNSR and SNSV of one measure.
type Figures = (BTreeMap<String, f64>, f64, f64);

/// The similarity measures, by report name.
pub const MEASURES: [(&str, Measure); 4] = [
    ("jaccard", jaccard),
    ("serp_star", serp_star),
    ("prag_star", prag_star),
    ("serp_star_notebook", serp_star_notebook),
];

/// Sim(a) per value, SNSR and SNSV of one measure.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SimilarityFairness {
    /// Sim(a) per value (key as in paper A's groups: the value, or the variant name).
    #[serde(deserialize_with = "nan_map")]
    pub per_value: BTreeMap<String, f64>,
    #[serde(deserialize_with = "nan_f64")]
    pub snsr: f64,
    #[serde(deserialize_with = "nan_f64")]
    pub snsv: f64,
    /// `snsr`, `snsv`, `per_value.<v>` -> [low, high].
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub ci: BTreeMap<String, [f64; 2]>,
}

/// FaiRLLM's figures for every attribute set present.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ListFairness {
    pub k: usize,
    /// Instructions with a neutral list.
    pub instructions: usize,
    /// attribute set -> measure -> figures.
    pub attributes: BTreeMap<String, BTreeMap<String, SimilarityFairness>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

impl ListFairness {
    /// The headline figures as the commands print them on the console.
    pub fn console_lines(&self) -> Vec<String> {
        let mut out = vec![format!(
            "FaiRLLM @{} over {} instructions",
            self.k, self.instructions
        )];
        for (set, ms) in &self.attributes {
            for (name, f) in ms.iter().filter(|(n, _)| *n != "serp_star_notebook") {
                out.push(format!(
                    "  {set:<11} {name:<10} SNSR {:.4}  SNSV {:.4}",
                    f.snsr, f.snsv
                ));
            }
        }
        out
    }
}

fn snsr_snsv(values: &[f64]) -> (f64, f64) {
    let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let min = values.iter().copied().fold(f64::INFINITY, f64::min);
    let mean = values.iter().sum::<f64>() / values.len() as f64;
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / values.len() as f64;
    (max - min, var.sqrt())
}

/// The lists of one instruction, by variant.
type Instruction<'a> = BTreeMap<&'a Variant, &'a RankedList>;

/// Attribute set -> value key -> per instruction, each measure's similarity to the
/// neutral list (`None`: no list of that value for the instruction).
type Similarities = BTreeMap<String, BTreeMap<String, Rows>>;

/// Compute FaiRLLM's figures at cut-off `k`, with `bootstrap` resamples of instructions.
pub fn list_fairness(
    lists: &[RankedList],
    k: usize,
    bootstrap: usize,
    seed: u64,
    confidence: f64,
) -> Result<ListFairness> {
    if k == 0 {
        return Err(MetricsError::Invalid("k must be at least 1".into()));
    }
    crate::audit::check_confidence(confidence)?;
    let (insts, notes) = instructions(lists)?;
    let sets = similarities(&insts, k);
    let point = evaluate(&sets, &vec![1.0; insts.len()]);
    let mut samples = resample(&sets, insts.len(), bootstrap, seed);
    let q = (1.0 - confidence) / 2.0;
    let mut attributes = BTreeMap::new();
    for (set, ms) in point {
        let mut by_measure = BTreeMap::new();
        for (m, (per_value, snsr, snsv)) in ms.into_iter().enumerate() {
            let mut ci = BTreeMap::new();
            for ((s, mm, fig), v) in samples.iter_mut() {
                if *s == set && *mm == m && v.len() >= 2 {
                    ci.insert(fig.clone(), [percentile(v, q), percentile(v, 1.0 - q)]);
                }
            }
            by_measure.insert(
                MEASURES[m].0.to_string(),
                SimilarityFairness {
                    per_value,
                    snsr,
                    snsv,
                    ci,
                },
            );
        }
        attributes.insert(set, by_measure);
    }
    Ok(ListFairness {
        k,
        instructions: insts.len(),
        attributes,
        notes,
    })
}

/// The lists grouped by instruction, keeping the instructions that have a neutral list (a
/// note says how many were left out).
fn instructions(lists: &[RankedList]) -> Result<(Vec<Instruction<'_>>, Vec<String>)> {
    let mut by_inst: BTreeMap<&str, Instruction> = BTreeMap::new();
    for l in lists {
        if by_inst
            .entry(&l.instruction_id)
            .or_default()
            .insert(&l.variant, l)
            .is_some()
        {
            return Err(MetricsError::Invalid(format!(
                "instruction `{}` has two lists for variant `{}`",
                l.instruction_id, l.variant
            )));
        }
    }
    let mut notes = Vec::new();
    let without: Vec<&str> = by_inst
        .iter()
        .filter(|(_, v)| !v.contains_key(&Variant::Neutral))
        .map(|(k, _)| *k)
        .collect();
    if !without.is_empty() {
        notes.push(format!(
            "{} instruction(s) have no neutral list and were left out (first: `{}`)",
            without.len(),
            without[0]
        ));
    }
    let insts: Vec<Instruction> = by_inst
        .into_values()
        .filter(|v| v.contains_key(&Variant::Neutral))
        .collect();
    if insts.is_empty() {
        return Err(MetricsError::MissingVariant { variant: "neutral".into(), why: "FaiRLLM compares every sensitive list with the neutral list of the same instruction".into() });
    }
    Ok((insts, notes))
}

/// Every stated list's similarity to its instruction's neutral list at cut-off `k`.
fn similarities(insts: &[Instruction], k: usize) -> Similarities {
    let mut sets = Similarities::new();
    for (i, inst) in insts.iter().enumerate() {
        let neutral = &inst[&Variant::Neutral].items;
        for (v, l) in inst.iter() {
            let Variant::Stated(m) = v else { continue };
            let set = m.keys().cloned().collect::<Vec<_>>().join(",");
            let key = crate::fairness::group_key(v);
            let row = sets
                .entry(set)
                .or_default()
                .entry(key)
                .or_insert_with(|| vec![None; insts.len()]);
            row[i] = Some(MEASURES.map(|(_, f)| f(&l.items, neutral, k)));
        }
    }
    sets
}

/// Sim(a) per value, SNSR and SNSV of every set and measure, instruction `i` counted
/// `w[i]` times.
fn evaluate(sets: &Similarities, w: &[f64]) -> BTreeMap<String, Vec<Figures>> {
    sets.iter()
        .map(|(set, values)| {
            let per_measure = (0..MEASURES.len())
                .map(|m| {
                    let per_value: BTreeMap<String, f64> = values
                        .iter()
                        .filter_map(|(v, rows)| {
                            let (s, n) = rows
                                .iter()
                                .zip(w)
                                .filter_map(|(r, w)| r.map(|r| (w * r[m], *w)))
                                .fold((0.0, 0.0), |a, b| (a.0 + b.0, a.1 + b.1));
                            (n > 0.0).then(|| (v.clone(), s / n))
                        })
                        .collect();
                    let vals: Vec<f64> = per_value.values().copied().collect();
                    let (r, v) = if vals.is_empty() {
                        (0.0, 0.0)
                    } else {
                        snsr_snsv(&vals)
                    };
                    (per_value, r, v)
                })
                .collect();
            (set.clone(), per_measure)
        })
        .collect()
}

/// The figures of `bootstrap` resamples of the `n` instructions, keyed by (set, measure,
/// figure).
fn resample(
    sets: &Similarities,
    n: usize,
    bootstrap: usize,
    seed: u64,
) -> BTreeMap<(String, usize, String), Vec<f64>> {
    let mut samples: BTreeMap<(String, usize, String), Vec<f64>> = BTreeMap::new();
    for b in 0..bootstrap {
        let mut rng = Rng::derive(seed, &format!("lists-bootstrap-{b}"));
        let mut w = vec![0.0; n];
        for _ in 0..n {
            w[rng.below(n as u64) as usize] += 1.0;
        }
        for (set, ms) in evaluate(sets, &w) {
            for (m, (pv, r, v)) in ms.into_iter().enumerate() {
                let mut push = |fig: String, x: f64| {
                    samples.entry((set.clone(), m, fig)).or_default().push(x);
                };
                push("snsr".into(), r);
                push("snsv".into(), v);
                for (k, x) in pv {
                    push(format!("per_value.{k}"), x);
                }
            }
        }
    }
    samples
}

/// A figure that serializes as `null` when it is NaN (serde_json's rule) reads back as NaN.
fn nan_f64<'de, D: serde::Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    use serde::Deserialize;
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
}

/// As [`nan_f64`] for every value of a map.
fn nan_map<'de, D: serde::Deserializer<'de>>(d: D) -> Result<BTreeMap<String, f64>, D::Error> {
    use serde::Deserialize;
    let m = BTreeMap::<String, Option<f64>>::deserialize(d)?;
    Ok(m.into_iter()
        .map(|(k, v)| (k, v.unwrap_or(f64::NAN)))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn l(xs: &[&str]) -> Vec<String> {
        xs.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn identical_and_disjoint_lists() {
        let a = l(&["a", "b", "c", "d"]);
        for (name, f) in MEASURES.iter().take(3) {
            assert_eq!(f(&a, &a, 4), 1.0, "{name}");
            assert_eq!(f(&a, &l(&["x", "y", "z", "w"]), 4), 0.0, "{name}");
        }
        // The notebook's SERP* of identical lists: sum_{i=0..K-1} (K - i + 1) / (2K(K+1)).
        let k = 4.0;
        let nb: f64 = (0..4).map(|i| k - i as f64 + 1.0).sum::<f64>() / (2.0 * k * (k + 1.0));
        assert!((serp_star_notebook(&a, &a, 4) - nb).abs() < 1e-12);
        assert!((nb - 0.35).abs() < 1e-12, "a different scale: {nb}");
    }

    #[test]
    fn by_hand_examples() {
        // sensitive a, b, c; neutral c, a, x (K = 3)
        let (s, n) = (l(&["A", "b", "c "]), l(&["c", "a", "x"]));
        assert_eq!(jaccard(&s, &n, 3), 2.0 / 4.0);
        // a (rank 1) in R: 3; c (rank 3) in R: 1 -> 4 / 6
        assert!((serp_star(&s, &n, 3) - 4.0 / 6.0).abs() < 1e-12);
        // pairs (a,b): a in R, b missing -> agree; (a,c): r(a)=2 > r(c)=1 -> no; (b,c): b missing -> no
        assert!((prag_star(&s, &n, 3) - 1.0 / 3.0).abs() < 1e-12);
        // top-K cuts both lists
        assert_eq!(
            jaccard(&l(&["a", "b", "z"]), &l(&["a", "c", "b"]), 2),
            1.0 / 3.0
        );
        // repeats keep the first rank
        assert_eq!(jaccard(&l(&["a", "a", "b"]), &l(&["a", "b"]), 3), 1.0);
    }

    #[test]
    fn snsr_snsv_over_values() {
        let mk = |id: &str, v: &str, items: &[&str]| RankedList {
            instruction_id: id.into(),
            variant: v.parse().unwrap(),
            items: l(items),
        };
        let lists = vec![
            mk("1", "neutral", &["a", "b"]),
            mk("1", "gender=female", &["a", "b"]),
            mk("1", "gender=male", &["x", "y"]),
            mk("2", "neutral", &["a", "b"]),
            mk("2", "gender=female", &["a", "c"]),
            mk("2", "gender=male", &["a", "b"]),
            mk("3", "gender=male", &["a"]),
        ];
        let f = list_fairness(&lists, 2, 50, 1, 0.95).unwrap();
        assert_eq!(f.instructions, 2);
        assert_eq!(f.notes.len(), 1, "instruction 3 has no neutral list");
        let j = &f.attributes["gender"]["jaccard"];
        // female: (1 + 1/3) / 2 = 2/3; male: (0 + 1) / 2 = 1/2
        assert!((j.per_value["female"] - 2.0 / 3.0).abs() < 1e-12);
        assert!((j.per_value["male"] - 0.5).abs() < 1e-12);
        assert!((j.snsr - 1.0 / 6.0).abs() < 1e-12);
        assert!(
            (j.snsv - 1.0 / 12.0).abs() < 1e-12,
            "population std of two values is half the range"
        );
        let [lo, hi] = j.ci["snsr"];
        assert!(lo <= hi);
        let e = list_fairness(&[mk("9", "gender=male", &["a"])], 2, 0, 0, 0.95).unwrap_err();
        assert!(e.to_string().contains("neutral"), "{e}");
    }
}
