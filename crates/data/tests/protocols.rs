//! Invariants of both protocols on real data (when available), fixtures and the synthetic
//! world: history strictly before the target, no user in two splits, same seed -> same
//! bytes, the papers' thresholds, sizes and ratios.

mod common;

use common::{fixture, real_data};
use fairrec_data::loaders::load;
use fairrec_data::pipeline::{prepare_dir, read_split};
use fairrec_data::protocol::{prepare, Prepared, Protocol, ProtocolConfig};
use fairrec_data::raw::{DatasetKind, RawDataset};
use fairrec_data::sample::{History, Sample};
use fairrec_data::synth::{write_world, SynthConfig};
use std::collections::{HashMap, HashSet};
use std::path::Path;

/// (user id, item id) -> (time, seq, rating)
fn rating_index(raw: &RawDataset) -> HashMap<(String, String), (i64, u32, f32)> {
    raw.ratings
        .iter()
        .map(|r| {
            (
                (
                    raw.users[r.user as usize].id.clone(),
                    raw.items[r.item as usize].id.clone(),
                ),
                (r.time, r.seq, r.value),
            )
        })
        .collect()
}

fn all(p: &Prepared) -> Vec<&Sample> {
    p.train.iter().chain(&p.valid).chain(&p.test).collect()
}

fn check_invariants(raw: &RawDataset, cfg: &ProtocolConfig, p: &Prepared) {
    let idx = rating_index(raw);
    // No user in two splits; sample ids unique.
    let users = |s: &[Sample]| s.iter().map(|x| x.user_id.clone()).collect::<HashSet<_>>();
    let (a, b, c) = (users(&p.train), users(&p.valid), users(&p.test));
    assert!(
        a.is_disjoint(&b) && a.is_disjoint(&c) && b.is_disjoint(&c),
        "a user is in two splits"
    );
    let ids: HashSet<_> = all(p).iter().map(|s| s.sample_id.clone()).collect();
    assert_eq!(ids.len(), all(p).len(), "sample ids are unique");
    let by_user = raw.ratings_by_user();
    let uidx: HashMap<&str, usize> = raw
        .users
        .iter()
        .enumerate()
        .map(|(i, u)| (u.id.as_str(), i))
        .collect();
    for s in all(p) {
        let t = idx[&(s.user_id.clone(), s.target_id.clone())];
        assert_eq!(
            s.label,
            t.2 > cfg.like_threshold,
            "{}: label is rating > threshold",
            s.sample_id
        );
        assert_eq!(s.target_rating, t.2);
        for h in s.history_ids() {
            let r = idx[&(s.user_id.clone(), h.to_string())];
            assert!(
                (r.0, r.1) < (t.0, t.1),
                "{}: history item {h} is not before the target",
                s.sample_id
            );
        }
        for a in &cfg.attributes {
            assert!(
                s.attributes.contains_key(a),
                "{}: attribute {a}",
                s.sample_id
            );
        }
        let rs = &by_user[uidx[s.user_id.as_str()]];
        match &s.history {
            History::Split {
                history_liked_ids,
                history_disliked_ids,
                history_liked,
                ..
            } => {
                assert_eq!(cfg.protocol, Protocol::ClMoe);
                let last = rs.last().unwrap();
                assert_eq!(
                    raw.items[last.item as usize].id, s.target_id,
                    "target is the user's last rating"
                );
                assert!(history_liked_ids.len() <= 10 && history_disliked_ids.len() <= 10);
                assert_eq!(history_liked.len(), history_liked_ids.len());
                let before = &rs[..rs.len() - 1];
                let n_liked = before
                    .iter()
                    .filter(|r| r.value > cfg.like_threshold)
                    .count();
                assert_eq!(history_liked_ids.len(), n_liked.min(10));
                // The kept preferences are the latest ones, oldest first.
                let latest: Vec<String> = before
                    .iter()
                    .filter(|r| r.value > cfg.like_threshold)
                    .rev()
                    .take(10)
                    .map(|r| raw.items[r.item as usize].id.clone())
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                    .collect();
                assert_eq!(history_liked_ids, &latest);
                for h in history_disliked_ids {
                    assert!(idx[&(s.user_id.clone(), h.clone())].2 <= cfg.like_threshold);
                }
            }
            History::Sequence {
                history_ids,
                history,
            } => {
                assert_eq!(cfg.protocol, Protocol::Mos);
                assert_eq!(history_ids.len(), cfg.seq_len - 1);
                assert_eq!(history.len(), history_ids.len());
                // The 11 interactions are consecutive in the user's time order.
                let pos: Vec<usize> = history_ids
                    .iter()
                    .chain(std::iter::once(&s.target_id))
                    .map(|id| {
                        rs.iter()
                            .position(|r| raw.items[r.item as usize].id == *id)
                            .unwrap()
                    })
                    .collect();
                assert!(
                    pos.windows(2).all(|w| w[1] == w[0] + 1),
                    "{}: window not consecutive",
                    s.sample_id
                );
            }
        }
    }
}

fn same_bytes(kind: DatasetKind, raw: &Path, cfg: &ProtocolConfig) {
    let t = tempfile::tempdir().unwrap();
    prepare_dir(kind, raw, cfg, &t.path().join("a"), None).unwrap();
    prepare_dir(kind, raw, cfg, &t.path().join("b"), None).unwrap();
    for f in ["train.jsonl", "valid.jsonl", "test.jsonl", "manifest.json"] {
        let a = std::fs::read(t.path().join("a").join(f)).unwrap();
        let b = std::fs::read(t.path().join("b").join(f)).unwrap();
        assert!(a == b, "{f} differs between two runs with the same seed");
    }
    // And what was written reads back as the same samples.
    let back = read_split(&t.path().join("a"), "test").unwrap();
    let raw_ds = load(kind, raw, &cfg.load).unwrap();
    assert_eq!(back, prepare(&raw_ds, cfg).unwrap().test);
}

#[test]
fn clmoe_on_ml100k_real() {
    let Some(dir) = real_data("ml-100k") else {
        return;
    };
    let raw = load(DatasetKind::Ml100k, &dir, &Default::default()).unwrap();
    let cfg = ProtocolConfig::new(Protocol::ClMoe, DatasetKind::Ml100k, 0);
    let p = prepare(&raw, &cfg).unwrap();
    assert_eq!((p.train.len(), p.valid.len(), p.test.len()), (660, 94, 189));
    check_invariants(&raw, &cfg, &p);
    same_bytes(DatasetKind::Ml100k, &dir, &cfg);
    let other = prepare(
        &raw,
        &ProtocolConfig::new(Protocol::ClMoe, DatasetKind::Ml100k, 1),
    )
    .unwrap();
    assert_ne!(other.test, p.test, "another seed gives another split");
}

#[test]
fn mos_on_ml100k_real() {
    let Some(dir) = real_data("ml-100k") else {
        return;
    };
    let raw = load(DatasetKind::Ml100k, &dir, &Default::default()).unwrap();
    let cfg = ProtocolConfig::new(Protocol::Mos, DatasetKind::Ml100k, 0);
    let p = prepare(&raw, &cfg).unwrap();
    let n = all(&p).len();
    assert_eq!(n, 10_000);
    let share = |k: usize| k as f64 / n as f64;
    assert!(
        (share(p.train.len()) - 0.8).abs() < 0.02,
        "{}",
        p.train.len()
    );
    assert!((share(p.valid.len()) - 0.1).abs() < 0.02 && (share(p.test.len()) - 0.1).abs() < 0.02);
    assert_eq!(p.train[0].attributes.keys().collect::<Vec<_>>(), ["gender"]);
    check_invariants(&raw, &cfg, &p);
    same_bytes(DatasetKind::Ml100k, &dir, &cfg);
}

#[test]
fn clmoe_on_sushi3_real() {
    let Some(dir) = real_data("sushi3") else {
        return;
    };
    let raw = load(DatasetKind::Sushi3, &dir, &Default::default()).unwrap();
    let cfg = ProtocolConfig::new(Protocol::ClMoe, DatasetKind::Sushi3, 0);
    let p = prepare(&raw, &cfg).unwrap();
    assert_eq!(
        (p.train.len(), p.valid.len(), p.test.len()),
        (3500, 500, 1000)
    );
    assert_eq!(cfg.like_threshold, 2.0);
    check_invariants(&raw, &cfg, &p);
}

#[test]
fn clmoe_on_ml1m_fixture_reads_code_50_as_middle_aged() {
    let raw = load(
        DatasetKind::Ml1m,
        &fixture("ml-1m-mini"),
        &Default::default(),
    )
    .unwrap();
    let cfg = ProtocolConfig::new(Protocol::ClMoe, DatasetKind::Ml1m, 4);
    let p = prepare(&raw, &cfg).unwrap();
    assert_eq!(all(&p).len(), 12);
    check_invariants(&raw, &cfg, &p);
    let u6 = all(&p).into_iter().find(|s| s.user_id == "6").unwrap();
    assert_eq!(u6.attributes["age"], "middle aged", "ML-1M code 50 (50-55)");
    let u7 = all(&p).into_iter().find(|s| s.user_id == "7").unwrap();
    assert_eq!(u7.attributes["age"], "old");
    same_bytes(DatasetKind::Ml1m, &fixture("ml-1m-mini"), &cfg);
}

#[test]
fn mos_on_book_crossing_fixture() {
    let raw = load(
        DatasetKind::BookCrossing,
        &fixture("book-crossing-mini"),
        &Default::default(),
    )
    .unwrap();
    let cfg = ProtocolConfig::new(Protocol::Mos, DatasetKind::BookCrossing, 0);
    assert_eq!(cfg.like_threshold, 5.0);
    let p = prepare(&raw, &cfg).unwrap();
    check_invariants(&raw, &cfg, &p);
    let vals: HashSet<&str> = all(&p)
        .iter()
        .map(|s| s.attributes["age"].as_str())
        .collect();
    assert_eq!(vals, HashSet::from(["teen", "adult"]));
    assert_eq!(p.dropped["users_missing_age"], 4);
    assert!(all(&p).iter().all(|s| s.item_type == "book"));
}

#[test]
fn both_protocols_on_the_synthetic_world() {
    let t = tempfile::tempdir().unwrap();
    let cfg = SynthConfig {
        users: 300,
        items: 120,
        ..Default::default()
    };
    write_world(&cfg, t.path()).unwrap();
    let raw = load(DatasetKind::Ml100k, t.path(), &Default::default()).unwrap();
    for protocol in [Protocol::ClMoe, Protocol::Mos] {
        let mut pc = ProtocolConfig::new(protocol, DatasetKind::Ml100k, 7);
        pc.sequences = 2000;
        let p = prepare(&raw, &pc).unwrap();
        check_invariants(&raw, &pc, &p);
    }
}
