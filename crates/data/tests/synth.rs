//! The synthetic stereotype world: seeded, read by the real ML-100K loader, and it plants
//! exactly what its docs say.

use fairrec_data::loaders::load;
use fairrec_data::protocol::{prepare, Protocol, ProtocolConfig};
use fairrec_data::raw::{DatasetKind, Gender, RawDataset};
use fairrec_data::synth::{write_world, SynthConfig};

fn world(cfg: &SynthConfig) -> (tempfile::TempDir, RawDataset) {
    let t = tempfile::tempdir().unwrap();
    write_world(cfg, t.path()).unwrap();
    let raw = load(DatasetKind::Ml100k, t.path(), &Default::default()).unwrap();
    (t, raw)
}

#[test]
fn same_seed_same_bytes_other_seed_other_world() {
    let cfg = SynthConfig {
        users: 80,
        items: 60,
        ..Default::default()
    };
    let (a, _) = world(&cfg);
    let (b, _) = world(&cfg);
    let (c, _) = world(&SynthConfig {
        seed: 1,
        ..cfg.clone()
    });
    for f in ["u.user", "u.item", "u.data", "item_truth.tsv", "synth.json"] {
        let fa = std::fs::read(a.path().join(f)).unwrap();
        assert_eq!(fa, std::fs::read(b.path().join(f)).unwrap(), "{f}");
        if f != "synth.json" {
            assert_ne!(fa, std::fs::read(c.path().join(f)).unwrap(), "{f}");
        }
    }
}

#[test]
fn world_has_the_configured_shape() {
    let cfg = SynthConfig {
        users: 200,
        items: 100,
        min_ratings: 10,
        max_ratings: 30,
        ..Default::default()
    };
    let (_t, raw) = world(&cfg);
    assert_eq!((raw.users.len(), raw.items.len()), (200, 100));
    for rs in raw.ratings_by_user() {
        assert!((10..=30).contains(&rs.len()));
        let mut items: Vec<u32> = rs.iter().map(|r| r.item).collect();
        items.sort();
        items.dedup();
        assert_eq!(items.len(), rs.len(), "distinct items per user");
    }
    let female = raw
        .users
        .iter()
        .filter(|u| u.gender == Some(Gender::Female))
        .count();
    assert!(
        (60..=100).contains(&female),
        "female share about 0.4: {female}"
    );
    assert!(raw
        .items
        .iter()
        .all(|i| !i.genres.is_empty() && i.title.ends_with(')')));
}

fn label_gap(cfg: &SynthConfig) -> f64 {
    let (_t, raw) = world(cfg);
    let p = prepare(
        &raw,
        &ProtocolConfig::new(Protocol::ClMoe, DatasetKind::Ml100k, 0),
    )
    .unwrap();
    let rate = |g: &str| {
        let xs: Vec<bool> = p
            .train
            .iter()
            .chain(&p.valid)
            .chain(&p.test)
            .filter(|s| s.attributes["gender"] == g)
            .map(|s| s.label)
            .collect();
        xs.iter().filter(|&&l| l).count() as f64 / xs.len() as f64
    };
    rate("female") - rate("male")
}

#[test]
fn exposure_plants_a_gender_shortcut_in_the_labels() {
    let base = SynthConfig {
        users: 3000,
        items: 300,
        ..Default::default()
    };
    let planted = label_gap(&base);
    assert!(
        planted > 0.08,
        "default world: female label rate exceeds male by {planted}"
    );
    let none = label_gap(&SynthConfig {
        exposure: 0.0,
        ..base
    });
    assert!(
        none.abs() < 0.04,
        "without exposure the gap vanishes: {none}"
    );
}

/// Mean over items of (mean rating by women - mean rating by men), items with enough of both.
fn same_item_gap(cfg: &SynthConfig) -> f64 {
    let (_t, raw) = world(cfg);
    let n = raw.items.len();
    let mut sum = vec![[0.0f64; 2]; n];
    let mut cnt = vec![[0usize; 2]; n];
    for r in &raw.ratings {
        let g = usize::from(raw.users[r.user as usize].gender == Some(Gender::Female));
        sum[r.item as usize][g] += f64::from(r.value);
        cnt[r.item as usize][g] += 1;
    }
    let truth = std::fs::read_to_string(_t.path().join("item_truth.tsv")).unwrap();
    let leans: Vec<f64> = truth
        .lines()
        .skip(1)
        .map(|l| l.split('\t').nth(1).unwrap().parse().unwrap())
        .collect();
    // Weight by the item's gender lean: a true group effect shows up as a positive mean.
    let (mut acc, mut k) = (0.0, 0);
    for i in 0..n {
        if cnt[i][0] >= 15 && cnt[i][1] >= 15 {
            let d = sum[i][1] / cnt[i][1] as f64 - sum[i][0] / cnt[i][0] as f64;
            acc += d * leans[i].signum();
            k += 1;
        }
    }
    assert!(k > 50, "enough items rated by both groups ({k})");
    acc / k as f64
}

#[test]
fn group_effect_zero_means_same_item_same_ratings() {
    let base = SynthConfig {
        users: 3000,
        items: 200,
        exposure: 0.5,
        ..Default::default()
    };
    let fair = same_item_gap(&base);
    assert!(fair.abs() < 0.06, "no true effect: {fair}");
    let biased = same_item_gap(&SynthConfig {
        group_effect: 1.0,
        ..base
    });
    assert!(biased > 0.3, "a true effect shows: {biased}");
}

#[test]
fn bad_configs_are_rejected_by_name() {
    let t = tempfile::tempdir().unwrap();
    let e = write_world(
        &SynthConfig {
            min_ratings: 50,
            max_ratings: 20,
            ..Default::default()
        },
        t.path(),
    )
    .unwrap_err();
    assert!(e.to_string().contains("min-ratings"), "{e}");
    let e = write_world(
        &SynthConfig {
            items: 10,
            ..Default::default()
        },
        t.path(),
    )
    .unwrap_err();
    assert!(e.to_string().contains("items"), "{e}");
    let e = write_world(
        &SynthConfig {
            female_share: 1.5,
            ..Default::default()
        },
        t.path(),
    )
    .unwrap_err();
    assert!(e.to_string().contains("female-share"), "{e}");
}
