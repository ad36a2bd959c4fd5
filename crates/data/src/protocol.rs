//! The two papers' data protocols, seeded and deterministic.
//!
//! **`cl-moe` (paper A).** One sample per user. A user's ratings are put in time order
//! (timestamp, ties broken by position in the ratings file); the last one is the target,
//! its label is `rating > like_threshold` (3 for MovieLens, 2 for Sushi3, 5 for
//! Book-Crossing). Of the earlier ratings, those above the threshold are preferences and
//! the others unpreferences; the latest `max_liked` (10) and `max_disliked` (10) of each
//! are kept, oldest first. Users are split 7:1:2 into train/valid/test.
//!
//! **`mos` (paper B).** Sequences of `seq_len` (11) consecutive interactions in time order
//! from one user: the first 10 are the history, the 11th the target, label = target rating
//! above the dataset's median (`like_threshold`: 3 for MovieLens, 5 for Book-Crossing).
//! Every window (stride 1 by default) of every user is a candidate; `sequences` (10,000)
//! are drawn at random without replacement (all, when there are fewer). Paper B splits
//! 8:1:1 "which prevents data leakage": fairrec splits by user (no user in two splits),
//! putting whole users into splits until each split's share of sequences reaches its
//! ratio (our reading).
//!
//! Users lacking one of the studied sensitive attributes are left out and counted;
//! so are users with too few ratings. Output order within a split follows the raw files'
//! user order (and window start), so that the same seed gives identical bytes.

use crate::attributes;
use crate::error::{DataError, Result};
use crate::loaders::LoadOptions;
use crate::raw::{DatasetKind, Rating, RawDataset};
use crate::sample::{History, Sample};
use fairrec_core::Rng;
use std::collections::BTreeMap;

pub use crate::raw::Protocol;

/// Every setting of a protocol, resolved (written into the manifest).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ProtocolConfig {
    pub protocol: Protocol,
    pub seed: u64,
    /// A rating above this is a preference / a positive label.
    pub like_threshold: f32,
    /// Sensitive attributes studied; users lacking one are left out.
    pub attributes: Vec<String>,
    /// train:valid:test ratios.
    pub split: [f64; 3],
    /// `cl-moe`: most recent preferences kept.
    pub max_liked: usize,
    /// `cl-moe`: most recent unpreferences kept.
    pub max_disliked: usize,
    /// `mos`: number of sequences drawn.
    pub sequences: usize,
    /// `mos`: interactions per sequence (history = `seq_len - 1`).
    pub seq_len: usize,
    /// `mos`: distance between the starts of candidate windows of one user.
    pub stride: usize,
    /// Loader options (Sushi3 order, Book-Crossing quirks).
    pub load: LoadOptions,
    /// Non-sensitive profile fields (`occupation`, `zip`, Sushi3's `prefecture_now`, ...)
    /// that every prompt states, in every variant (paper A's "user groups with and without
    /// sensitive attributes"; ours, off by default): each sample carries them in
    /// [`Sample::stated_profile`] and [`crate::prompt::render`] words them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub profile: Vec<String>,
}

/// A comma-separated list (`--attributes age,gender`), items trimmed, empty ones dropped.
pub fn parse_list(s: &str) -> Vec<String> {
    s.split(',')
        .map(|p| p.trim().to_string())
        .filter(|p| !p.is_empty())
        .collect()
}

/// `--split` ratios, `7:1:2` (or `7,1,2`).
pub fn parse_split(s: &str) -> Result<[f64; 3]> {
    let bad = || DataError::Config {
        option: "split".into(),
        message: format!("`{s}`: expected three numbers like 7:1:2"),
    };
    let parts: Vec<f64> = s
        .split([':', ','])
        .map(|p| p.trim().parse::<f64>())
        .collect::<std::result::Result<_, _>>()
        .map_err(|_| bad())?;
    <[f64; 3]>::try_from(parts).map_err(|_| bad())
}

impl ProtocolConfig {
    /// The papers' settings for `protocol` on `dataset`.
    pub fn new(protocol: Protocol, dataset: DatasetKind, seed: u64) -> Self {
        let like_threshold = match dataset {
            DatasetKind::Ml1m | DatasetKind::Ml100k => 3.0,
            DatasetKind::Sushi3 => 2.0,
            DatasetKind::BookCrossing => 5.0,
        };
        let mut load = LoadOptions::default();
        load.sushi.shuffle_seed = seed;
        ProtocolConfig {
            protocol,
            seed,
            like_threshold,
            attributes: attributes::default_attributes(dataset, protocol),
            split: match protocol {
                Protocol::ClMoe => [7.0, 1.0, 2.0],
                Protocol::Mos => [8.0, 1.0, 1.0],
            },
            max_liked: 10,
            max_disliked: 10,
            sequences: 10_000,
            seq_len: 11,
            stride: 1,
            load,
            profile: Vec::new(),
        }
    }

    /// Reject settings that cannot be carried out.
    pub fn validate(&self) -> Result<()> {
        let bad = |option: &str, message: String| {
            Err(DataError::Config {
                option: option.into(),
                message,
            })
        };
        if self.split.iter().any(|r| !r.is_finite() || *r < 0.0)
            || self.split.iter().sum::<f64>() <= 0.0
        {
            return bad(
                "split",
                format!(
                    "ratios must be non-negative and not all zero, got {:?}",
                    self.split
                ),
            );
        }
        if !self.like_threshold.is_finite() {
            return bad(
                "like-threshold",
                format!("must be a finite rating, got {}", self.like_threshold),
            );
        }
        if self.protocol == Protocol::Mos && self.sequences == 0 {
            return bad("sequences", "at least 1".into());
        }
        if self.attributes.is_empty() {
            return bad(
                "attributes",
                "at least one sensitive attribute is needed".into(),
            );
        }
        for a in &self.attributes {
            if attributes::domain(self.protocol, a).is_none() {
                return bad(
                    "attributes",
                    format!("unknown sensitive attribute `{a}` (gender, age)"),
                );
            }
        }
        if self.protocol == Protocol::Mos && (self.seq_len < 2 || self.stride == 0) {
            return bad(
                "seq-len/stride",
                format!(
                    "need seq_len >= 2 and stride >= 1, got {} and {}",
                    self.seq_len, self.stride
                ),
            );
        }
        Ok(())
    }
}

/// The three splits and what was left out.
#[derive(Debug, Clone, Default)]
pub struct Prepared {
    pub train: Vec<Sample>,
    pub valid: Vec<Sample>,
    pub test: Vec<Sample>,
    /// Users or windows left out, by reason, added to the loader's counts.
    pub dropped: BTreeMap<String, usize>,
}

impl Prepared {
    /// `(name, samples)` of each split.
    pub fn splits(&self) -> [(&'static str, &[Sample]); 3] {
        [
            ("train", &self.train),
            ("valid", &self.valid),
            ("test", &self.test),
        ]
    }
}

/// Assign groups (users) of the given sizes to the three splits: a seeded shuffle of the
/// groups, then whole groups in that order until each split's cumulative share of the
/// total size reaches its ratio. With unit sizes this gives exactly
/// `round(n * r_train)` / `round(n * (r_train + r_valid)) - ...` / the rest.
pub fn grouped_split(sizes: &[usize], ratios: [f64; 3], rng: &mut Rng) -> Vec<u8> {
    let total: usize = sizes.iter().sum();
    let sum: f64 = ratios.iter().sum();
    let b0 = (total as f64 * ratios[0] / sum).round() as usize;
    let b1 = (total as f64 * (ratios[0] + ratios[1]) / sum).round() as usize;
    let bounds = [b0, b1.max(b0), total];
    let mut order: Vec<usize> = (0..sizes.len()).collect();
    rng.shuffle(&mut order);
    let mut out = vec![2u8; sizes.len()];
    let mut cum = 0;
    for g in order {
        out[g] = bounds.iter().position(|&b| cum < b).unwrap_or(2) as u8;
        cum += sizes[g];
    }
    out
}

/// Apply `protocol` to a loaded dataset.
pub fn prepare(raw: &RawDataset, cfg: &ProtocolConfig) -> Result<Prepared> {
    cfg.validate()?;
    check_profile(raw, cfg)?;
    let by_user = raw.ratings_by_user();
    let mut dropped: BTreeMap<String, usize> = BTreeMap::new();
    // Per user: the samples it yields, in output order.
    let mut per_user: Vec<Vec<Sample>> = Vec::with_capacity(raw.users.len());
    let mut windows: Vec<(usize, usize)> = Vec::new();
    for (u, user) in raw.users.iter().enumerate() {
        per_user.push(Vec::new());
        let mut attrs = BTreeMap::new();
        let mut missing = None;
        for a in &cfg.attributes {
            match attributes::value(user, cfg.protocol, a) {
                Some(v) => {
                    attrs.insert(a.clone(), v.to_string());
                }
                None => missing = Some(a),
            }
        }
        if let Some(a) = missing {
            *dropped.entry(format!("users_missing_{a}")).or_default() += 1;
            continue;
        }
        let rs = &by_user[u];
        match cfg.protocol {
            Protocol::ClMoe => {
                if rs.len() < 2 {
                    *dropped
                        .entry("users_fewer_than_2_ratings".into())
                        .or_default() += 1;
                    continue;
                }
                per_user[u].push(clmoe_sample(raw, cfg, u, &attrs, rs));
            }
            Protocol::Mos => {
                if rs.len() < cfg.seq_len {
                    *dropped
                        .entry(format!("users_fewer_than_{}_ratings", cfg.seq_len))
                        .or_default() += 1;
                    continue;
                }
                let mut s = 0;
                while s + cfg.seq_len <= rs.len() {
                    windows.push((u, s));
                    s += cfg.stride;
                }
                // attributes are recomputed when the windows are materialised
            }
        }
    }
    if cfg.protocol == Protocol::Mos {
        let mut rng = Rng::derive(cfg.seed, "mos-sequences");
        rng.shuffle(&mut windows);
        if windows.len() > cfg.sequences {
            dropped.insert("windows_not_drawn".into(), windows.len() - cfg.sequences);
            windows.truncate(cfg.sequences);
        }
        windows.sort_unstable();
        for &(u, s) in &windows {
            let attrs = cfg
                .attributes
                .iter()
                .filter_map(|a| {
                    attributes::value(&raw.users[u], cfg.protocol, a)
                        .map(|v| (a.clone(), v.to_string()))
                })
                .collect();
            per_user[u].push(mos_sample(
                raw,
                cfg,
                u,
                attrs,
                &by_user[u][s..s + cfg.seq_len],
                s,
            ));
        }
    }
    let users: Vec<usize> = (0..per_user.len())
        .filter(|&u| !per_user[u].is_empty())
        .collect();
    let sizes: Vec<usize> = users.iter().map(|&u| per_user[u].len()).collect();
    let assign = grouped_split(&sizes, cfg.split, &mut Rng::derive(cfg.seed, "split"));
    let mut out = Prepared {
        dropped,
        ..Default::default()
    };
    for (k, &u) in users.iter().enumerate() {
        let dest = match assign[k] {
            0 => &mut out.train,
            1 => &mut out.valid,
            _ => &mut out.test,
        };
        dest.append(&mut per_user[u]);
    }
    if cfg.protocol == Protocol::Mos {
        // A user has many windows: a seeded order per split, so that the first N samples
        // (`--limit`, `--limit-train`) are windows of many users, not all of a few.
        for (name, split) in [
            ("train", &mut out.train),
            ("valid", &mut out.valid),
            ("test", &mut out.test),
        ] {
            Rng::derive(cfg.seed, &format!("mos-order-{name}")).shuffle(split);
        }
    }
    Ok(out)
}

fn titles_ids(raw: &RawDataset, rs: &[Rating]) -> (Vec<String>, Vec<String>) {
    rs.iter()
        .map(|r| {
            let it = &raw.items[r.item as usize];
            (it.title.clone(), it.id.clone())
        })
        .unzip()
}

/// Every field of `cfg.profile` must be a profile field of the dataset's users.
fn check_profile(raw: &RawDataset, cfg: &ProtocolConfig) -> Result<()> {
    if cfg.profile.is_empty() {
        return Ok(());
    }
    let known: std::collections::BTreeSet<&str> = raw
        .users
        .iter()
        .flat_map(|u| u.profile.keys().map(String::as_str))
        .collect();
    match cfg.profile.iter().find(|k| !known.contains(k.as_str())) {
        None => Ok(()),
        Some(k) => Err(DataError::Config {
            option: "profile".into(),
            message: format!(
                "`{k}` is not a profile field of {} (it has: {})",
                raw.kind.name(),
                known.into_iter().collect::<Vec<_>>().join(", ")
            ),
        }),
    }
}

fn base_sample(
    raw: &RawDataset,
    cfg: &ProtocolConfig,
    u: usize,
    attributes: BTreeMap<String, String>,
    target: &Rating,
    sample_id: String,
    history: History,
) -> Sample {
    let user = &raw.users[u];
    let item = &raw.items[target.item as usize];
    Sample {
        sample_id,
        user_id: user.id.clone(),
        attributes,
        profile: user.profile.clone(),
        stated_profile: cfg
            .profile
            .iter()
            .filter_map(|k| Some((k.clone(), user.profile.get(k)?.clone())))
            .filter(|(_, v)| !v.is_empty())
            .collect(),
        item_type: raw.kind.item_type().to_string(),
        target: item.title.clone(),
        target_id: item.id.clone(),
        target_rating: target.value,
        label: target.value > cfg.like_threshold,
        history,
    }
}

fn clmoe_sample(
    raw: &RawDataset,
    cfg: &ProtocolConfig,
    u: usize,
    attrs: &BTreeMap<String, String>,
    rs: &[Rating],
) -> Sample {
    let (target, before) = rs.split_last().expect("at least 2 ratings");
    let latest = |liked: bool, keep: usize| -> Vec<Rating> {
        let mut v: Vec<Rating> = before
            .iter()
            .rev()
            .filter(|r| (r.value > cfg.like_threshold) == liked)
            .take(keep)
            .copied()
            .collect();
        v.reverse();
        v
    };
    let (history_liked, history_liked_ids) = titles_ids(raw, &latest(true, cfg.max_liked));
    let (history_disliked, history_disliked_ids) =
        titles_ids(raw, &latest(false, cfg.max_disliked));
    let history = History::Split {
        history_liked,
        history_disliked,
        history_liked_ids,
        history_disliked_ids,
    };
    base_sample(
        raw,
        cfg,
        u,
        attrs.clone(),
        target,
        format!("u{}", raw.users[u].id),
        history,
    )
}

fn mos_sample(
    raw: &RawDataset,
    cfg: &ProtocolConfig,
    u: usize,
    attrs: BTreeMap<String, String>,
    window: &[Rating],
    start: usize,
) -> Sample {
    let (target, before) = window.split_last().expect("seq_len >= 2");
    let (history, history_ids) = titles_ids(raw, before);
    let id = format!("u{}-s{start}", raw.users[u].id);
    base_sample(
        raw,
        cfg,
        u,
        attrs,
        target,
        id,
        History::Sequence {
            history,
            history_ids,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_groups_split_exactly() {
        let sizes = vec![1; 6040];
        let a = grouped_split(&sizes, [7.0, 1.0, 2.0], &mut Rng::new(1));
        let count = |k| a.iter().filter(|&&x| x == k).count();
        assert_eq!((count(0), count(1), count(2)), (4228, 604, 1208));
        assert_eq!(a, grouped_split(&sizes, [7.0, 1.0, 2.0], &mut Rng::new(1)));
        assert_ne!(a, grouped_split(&sizes, [7.0, 1.0, 2.0], &mut Rng::new(2)));
    }

    #[test]
    fn grouped_split_keeps_ratio_approximately() {
        let mut r = Rng::new(5);
        let sizes: Vec<usize> = (0..900).map(|_| 1 + r.below(20) as usize).collect();
        let total: usize = sizes.iter().sum();
        let a = grouped_split(&sizes, [8.0, 1.0, 1.0], &mut Rng::new(3));
        let share = |k| {
            sizes
                .iter()
                .zip(&a)
                .filter(|(_, &x)| x == k)
                .map(|(s, _)| s)
                .sum::<usize>() as f64
                / total as f64
        };
        assert!(
            (share(0) - 0.8).abs() < 0.01 && (share(1) - 0.1).abs() < 0.01,
            "{} {}",
            share(0),
            share(1)
        );
    }
}
