//! Sensitive attributes: which ones each protocol uses per dataset, their value sets,
//! and how raw demographics become those values.
//!
//! Age buckets of paper A: younger than 35 `young`, 35-50 `middle aged`, older than 50
//! `old`. ML-1M records age codes: 1 (<18), 18 (18-24), 25 (25-34) are `young`; 35
//! (35-44), 45 (45-49) and 50 (50-55) are `middle aged` (50-55 straddles the paper's
//! boundary; fairrec reads it as middle aged, our choice); 56 (56+) is `old`. Sushi3
//! codes 0-1 (15-29) `young`, 2-3 (30-49) `middle aged`, 4-5 (50+) `old`.
//! Age buckets of paper B (Book-Crossing): under 18 `teen`, 18 and over `adult`.

use crate::raw::{Age, DatasetKind, Protocol, User};

/// The `gender` attribute name.
pub const GENDER: &str = "gender";
/// The `age` attribute name.
pub const AGE: &str = "age";

/// The sensitive attributes a protocol studies on a dataset by default: paper A uses
/// gender and age where the dataset has them (Book-Crossing has no gender); paper B uses
/// gender on MovieLens and Sushi3 and age (teen/adult) on Book-Crossing.
pub fn default_attributes(dataset: DatasetKind, protocol: Protocol) -> Vec<String> {
    let v: &[&str] = match (protocol, dataset) {
        (Protocol::ClMoe, DatasetKind::BookCrossing) => &[AGE],
        (Protocol::ClMoe, _) => &[AGE, GENDER],
        (Protocol::Mos, DatasetKind::BookCrossing) => &[AGE],
        (Protocol::Mos, _) => &[GENDER],
    };
    v.iter().map(|s| s.to_string()).collect()
}

/// The values an attribute takes under a protocol, in a fixed order.
pub fn domain(protocol: Protocol, attribute: &str) -> Option<&'static [&'static str]> {
    match (attribute, protocol) {
        (GENDER, _) => Some(&["male", "female"]),
        (AGE, Protocol::ClMoe) => Some(&["young", "middle aged", "old"]),
        (AGE, Protocol::Mos) => Some(&["teen", "adult"]),
        _ => None,
    }
}

/// The value of `attribute` for `user` under `protocol`, or `None` when the dataset does
/// not record it for this user (or the protocol defines no bucket for it).
pub fn value(user: &User, protocol: Protocol, attribute: &str) -> Option<&'static str> {
    match attribute {
        GENDER => user.gender.map(|g| g.word()),
        AGE => user.age.and_then(|a| age_bucket(a, protocol)),
        _ => None,
    }
}

fn age_bucket(age: Age, protocol: Protocol) -> Option<&'static str> {
    match protocol {
        Protocol::ClMoe => Some(match age {
            Age::Years(y) if y < 35 => "young",
            Age::Years(y) if y <= 50 => "middle aged",
            Age::Years(_) => "old",
            Age::Ml1mCode(c) if c < 35 => "young",
            Age::Ml1mCode(c) if c <= 50 => "middle aged",
            Age::Ml1mCode(_) => "old",
            Age::SushiCode(c) if c <= 1 => "young",
            Age::SushiCode(c) if c <= 3 => "middle aged",
            Age::SushiCode(_) => "old",
        }),
        Protocol::Mos => match age {
            Age::Years(y) => Some(if y < 18 { "teen" } else { "adult" }),
            Age::Ml1mCode(c) => Some(if c == 1 { "teen" } else { "adult" }),
            // Sushi3's youngest code spans 15-19 and cannot be split at 18.
            Age::SushiCode(_) => None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paper_a_buckets_at_the_boundaries() {
        let b = |a| age_bucket(a, Protocol::ClMoe).unwrap();
        assert_eq!(b(Age::Years(34)), "young");
        assert_eq!(b(Age::Years(35)), "middle aged");
        assert_eq!(b(Age::Years(50)), "middle aged");
        assert_eq!(b(Age::Years(51)), "old");
        let codes: Vec<_> = [1, 18, 25, 35, 45, 50, 56]
            .map(|c| b(Age::Ml1mCode(c)))
            .to_vec();
        assert_eq!(
            codes,
            [
                "young",
                "young",
                "young",
                "middle aged",
                "middle aged",
                "middle aged",
                "old"
            ]
        );
        let sushi: Vec<_> = (0..6).map(|c| b(Age::SushiCode(c))).collect();
        assert_eq!(
            sushi,
            ["young", "young", "middle aged", "middle aged", "old", "old"]
        );
    }

    #[test]
    fn paper_b_teen_adult() {
        let b = |a| age_bucket(a, Protocol::Mos);
        assert_eq!(b(Age::Years(17)), Some("teen"));
        assert_eq!(b(Age::Years(18)), Some("adult"));
        assert_eq!(b(Age::SushiCode(0)), None);
    }
}
