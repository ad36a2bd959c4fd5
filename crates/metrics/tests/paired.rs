//! The paired bootstrap of two audits' difference, against the audit's own figures and
//! against resamples drawn by hand.

use fairrec_core::Rng;
use fairrec_metrics::audit::paired::{difference, resample_together, AuditInput, Resampled};
use fairrec_metrics::{audit, AuditConfig, Context, Prediction};
use std::cmp::Ordering;
use std::collections::HashMap;

/// `user`'s prediction of `variant`, with the sample named after both.
fn pred(user: &str, variant: &str, label: bool, p: f64) -> Prediction {
    Prediction {
        sample_id: format!("{user}/{variant}"),
        variant: variant.parse().unwrap(),
        label,
        p_yes: p,
        attributes: None,
        user_id: Some(user.into()),
        target: None,
        history: None,
        censored: false,
    }
}

/// Users `from..to`, each with one liked target (label true) asked in the neutral, female,
/// male and original form; `p(user, variant)` is P(Yes).
fn world(from: usize, to: usize, p: impl Fn(usize, &str) -> f64) -> Vec<Prediction> {
    let mut out = Vec::new();
    for u in from..to {
        for v in ["neutral", "gender=female", "gender=male", "original"] {
            out.push(pred(&format!("u{u:02}"), v, u % 3 != 0, p(u, v)));
        }
    }
    out
}

fn cfg() -> AuditConfig {
    AuditConfig {
        bootstrap: 0,
        ..AuditConfig::default()
    }
}

fn shared(worlds: &[&[Prediction]], resamples: usize) -> fairrec_metrics::audit::paired::Shared {
    let (ctx, c) = (HashMap::<String, Context>::new(), cfg());
    let inputs: Vec<AuditInput> = worlds
        .iter()
        .map(|w| AuditInput {
            predictions: w,
            context: &ctx,
            stereo: &[],
            config: &c,
        })
        .collect();
    resample_together(&inputs, resamples, 7).unwrap()
}

/// A: right about everyone but biased towards women; B: wrong about a third, fair.
fn two_methods() -> (Vec<Prediction>, Vec<Prediction>) {
    let a = world(0, 30, |u, v| match (u % 3 != 0, v) {
        (true, "gender=male") if u % 2 == 0 => 0.3,
        (true, _) => 0.9,
        (false, _) => 0.1,
    });
    let b = world(0, 30, |u, _| if u % 2 == 0 { 0.8 } else { 0.2 });
    (a, b)
}

#[test]
fn the_point_difference_is_the_difference_of_the_two_audits() {
    let (a, b) = two_methods();
    let s = shared(&[&a, &b], 50);
    assert_eq!((s.units, s.left_out.clone()), (30, vec![0, 0]));
    let figures = |p: &[Prediction]| {
        audit(p, &HashMap::new(), &[], &cfg())
            .unwrap()
            .figures(false)
    };
    let (fa, fb) = (figures(&a), figures(&b));
    for key in ["f1", "gd/gender", "precision", "recall"] {
        let d = difference(&[(&s.figures[0], &s.figures[1])], key, 0.95).unwrap();
        assert_eq!((d.a, d.b), (fa[key], fb[key]), "{key}");
        assert_eq!(d.estimate, fa[key] - fb[key], "{key}");
        assert_eq!(d.per_pair, vec![d.estimate]);
    }
}

/// Resample 3, drawn here from the documented stream over the sorted common users: A's and
/// B's F1 under it, computed by hand, give the resample's difference.
#[test]
fn every_resample_draws_the_same_users_for_both() {
    let (a, b) = two_methods();
    let s = shared(&[&a, &b], 5);
    let mut users: Vec<usize> = (0..30).collect();
    users.sort_by_key(|u| format!("u{u:02}"));
    let mut rng = Rng::derive(7, "paired-3");
    let mut count = [0.0; 30];
    for _ in 0..30 {
        count[users[rng.below(30) as usize]] += 1.0;
    }
    // F1 of the original prompts, each user counted count[u] times.
    let f1 = |preds: &[Prediction]| {
        let (mut tp, mut fp, mut fn_) = (0.0, 0.0, 0.0);
        for p in preds.iter().filter(|p| p.variant.to_string() == "original") {
            let u: usize = p.user_id.as_ref().unwrap()[1..].parse().unwrap();
            let yes = p.p_yes >= 0.5;
            match (p.label, yes) {
                (true, true) => tp += count[u],
                (false, true) => fp += count[u],
                (true, false) => fn_ += count[u],
                _ => {}
            }
        }
        2.0 * tp / (2.0 * tp + fp + fn_)
    };
    let (fa, fb) = (f1(&a), f1(&b));
    assert!((s.figures[0].draws[3]["f1"] - fa).abs() < 1e-12);
    assert!((s.figures[1].draws[3]["f1"] - fb).abs() < 1e-12);
    // Resample-wise differences give the interval: with 5 resamples at 50 %, the 25th and
    // 75th percentiles of the five differences.
    let d = difference(&[(&s.figures[0], &s.figures[1])], "f1", 0.5).unwrap();
    let mut diffs: Vec<f64> = (0..5)
        .map(|i| s.figures[0].draws[i]["f1"] - s.figures[1].draws[i]["f1"])
        .collect();
    diffs.sort_by(f64::total_cmp);
    assert_eq!(d.ci, Some([diffs[1], diffs[3]]));
    assert_eq!(d.defined, 5);
}

#[test]
fn identical_audits_differ_by_exactly_nothing_and_are_not_ordered() {
    let (a, _) = two_methods();
    let s = shared(&[&a, &a], 100);
    let d = difference(&[(&s.figures[0], &s.figures[1])], "gd/gender", 0.95).unwrap();
    assert_eq!((d.estimate, d.ci), (0.0, Some([0.0, 0.0])));
    assert_eq!(d.ordered(), None);
}

#[test]
fn a_clear_difference_is_ordered_and_a_seed_that_disagrees_unorders_it() {
    let (a, b) = two_methods();
    let s = shared(&[&a, &b, &a, &b], 200);
    let f = &s.figures;
    // A's F1 is 1 on every resample; B's is below it on every resample.
    let d = difference(&[(&f[0], &f[1]), (&f[2], &f[3])], "f1", 0.95).unwrap();
    assert!(d.ci.unwrap()[0] > 0.0, "{d:?}");
    assert_eq!(d.ordered(), Some(Ordering::Greater));
    let d = difference(&[(&f[1], &f[0])], "f1", 0.95).unwrap();
    assert_eq!(d.ordered(), Some(Ordering::Less));
    // GD: A is unfair to men, B is fair (GD 0).
    let g = difference(&[(&f[0], &f[1])], "gd/gender", 0.95).unwrap();
    assert!(
        g.estimate > 0.0 && g.ordered() == Some(Ordering::Greater),
        "{g:?}"
    );
    // A second "seed" whose difference has the other sign: the data cannot order them,
    // although the mean difference and its interval stay on one side.
    let flipped = Resampled {
        point: [("f1".to_string(), 0.0)].into(),
        draws: f[0].draws.clone(),
    };
    let d = difference(&[(&f[0], &f[1]), (&flipped, &f[1])], "f1", 0.95).unwrap();
    assert!(d.per_pair[1] < 0.0);
    assert_eq!(d.ordered(), None);
}

#[test]
fn only_the_common_users_are_compared() {
    let (a, _) = two_methods();
    let b = world(5, 40, |_, _| 0.9);
    let s = shared(&[&a, &b], 10);
    assert_eq!((s.units, s.left_out), (25, vec![5, 10]));
    // A's figures here are those of its users 5..30.
    let a_common: Vec<Prediction> = a
        .iter()
        .filter(|p| p.user_id.as_ref().unwrap()[1..].parse::<usize>().unwrap() >= 5)
        .cloned()
        .collect();
    let m = audit(&a_common, &HashMap::new(), &[], &cfg()).unwrap();
    assert_eq!(s.figures[0].point["f1"], m.original.f1.unwrap());
    // Audits with no user in common cannot be compared.
    let c = world(50, 60, |_, _| 0.9);
    let (ctx, c0) = (HashMap::new(), cfg());
    let input = |w| AuditInput {
        predictions: w,
        context: &ctx,
        stereo: &[],
        config: &c0,
    };
    let e = resample_together(&[input(&a), input(&c)], 10, 0).unwrap_err();
    assert!(e.to_string().contains("share no test user"), "{e}");
}
