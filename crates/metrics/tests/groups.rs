//! fairlearn / Aequitas group metrics of the audit, against arithmetic written out here.

mod common;

use common::pred;
use fairrec_metrics::{audit, AuditConfig, Context, Prediction};
use std::collections::{BTreeMap, HashMap};

/// Four users, one sample each: (user, true gender, label, P(Yes) stated female, stated
/// male, original).
const USERS: [(&str, &str, bool, [f64; 3]); 4] = [
    ("u1", "female", true, [0.9, 0.2, 0.9]),
    ("u2", "female", false, [0.7, 0.7, 0.7]),
    ("u3", "male", true, [0.8, 0.4, 0.4]),
    ("u4", "male", false, [0.2, 0.1, 0.1]),
];

fn world() -> (Vec<Prediction>, HashMap<String, Context>) {
    let (mut preds, mut ctx) = (Vec::new(), HashMap::new());
    for (u, g, label, [f, m, o]) in USERS {
        for (v, p) in [
            ("gender=female", f),
            ("gender=male", m),
            ("original", o),
            ("neutral", 0.5),
        ] {
            preds.push(pred(u, v, label, p));
        }
        let c = Context {
            user: Some(u.into()),
            attributes: BTreeMap::from([("gender".to_string(), g.to_string())]),
            target: None,
            history: Vec::new(),
        };
        ctx.insert(u.to_string(), c);
    }
    (preds, ctx)
}

#[test]
fn counterfactual_and_true_groups_match_fairlearn_and_aequitas_by_hand() {
    let (preds, ctx) = world();
    let cfg = AuditConfig {
        bootstrap: 100,
        ..Default::default()
    };
    let m = audit(&preds, &ctx, &[], &cfg).unwrap();
    let t = &m.group_metrics["variants:gender"];
    // Stated female: u1 TP, u2 FP, u3 TP, u4 TN. Stated male: u1 FN, u2 FP, u3 FN, u4 TN.
    let (f, ma) = (&t.groups["female"], &t.groups["male"]);
    assert_eq!(
        (f.selection_rate, f.tpr, f.fpr, f.precision),
        (Some(0.75), Some(1.0), Some(0.5), Some(2.0 / 3.0))
    );
    assert_eq!(
        (ma.selection_rate, ma.tpr, ma.fpr, ma.precision),
        (Some(0.25), Some(0.0), Some(0.5), Some(0.0))
    );
    assert_eq!(t.overall.selection_rate, Some(0.5));
    assert_eq!(t.demographic_parity_difference, Some(0.5));
    assert_eq!(
        t.equalized_odds_difference,
        Some(1.0),
        "max(TPR 1 - 0, FPR 0.5 - 0.5)"
    );
    let sr = &t.disparities["selection_rate"];
    assert_eq!((sr.difference, sr.ratio), (Some(0.5), Some(0.25 / 0.75)));
    assert_eq!(
        (sr.difference_to_overall, sr.ratio_to_overall),
        (Some(0.25), Some(0.5))
    );
    // Ties in size: the first group by name is the reference.
    assert_eq!(t.reference, "female");
    assert_eq!(t.aequitas_disparity["male.selection_rate"], 0.25 / 0.75);
    assert_eq!(t.aequitas_disparity["male.fpr"], 1.0);
    assert_eq!(
        t.aequitas_flagged,
        ["male.precision", "male.selection_rate", "male.tpr"]
    );
    // u1 and u3 change their answer with the stated gender; u2 and u4 do not.
    assert_eq!(t.flip_rate, Some(0.5));
    assert!(
        t.ci.contains_key("dp_difference") && t.ci.contains_key("flip_rate"),
        "{:?}",
        t.ci
    );
    let [lo, hi] = t.ci["flip_rate"];
    assert!((0.0..=0.5).contains(&lo) && (0.5..=1.0).contains(&hi));

    // True groups, original prompts: women u1 TP, u2 FP; men u3 FN, u4 TN (no Yes).
    let u = &m.group_metrics["users:gender"];
    let (f, ma) = (&u.groups["female"], &u.groups["male"]);
    assert_eq!(
        (f.selection_rate, f.tpr, f.fpr, f.precision),
        (Some(1.0), Some(1.0), Some(1.0), Some(0.5))
    );
    assert_eq!(
        (ma.selection_rate, ma.tpr, ma.fpr, ma.precision),
        (Some(0.0), Some(0.0), Some(0.0), None)
    );
    assert_eq!(
        (u.demographic_parity_difference, u.equalized_odds_difference),
        (Some(1.0), Some(1.0))
    );
    assert_eq!(
        u.disparities["precision"].difference, None,
        "undefined for a group"
    );
    assert_eq!(u.flip_rate, None);
    // metrics.json keeps them; the long CSV carries them.
    let json = serde_json::to_value(&m).unwrap();
    assert_eq!(json["group_metrics"]["variants:gender"]["flip_rate"], 0.5);
    let csv = m.to_long_csv();
    assert!(
        csv.contains("\ngroups:variants:gender,,dp_difference,0.5,"),
        "{csv}"
    );
    assert!(
        csv.contains("\ngroups:users:gender,female,selection_rate,1,"),
        "{csv}"
    );
}

#[test]
fn users_joint_groups_are_counted_by_hand() {
    // (user, gender, age, label, P(Yes) of the original prompt).
    let users = [
        ("u1", "female", "young", true, 0.9),
        ("u2", "female", "young", false, 0.2),
        ("u3", "female", "old", true, 0.6),
        ("u4", "male", "young", false, 0.8),
        ("u5", "male", "old", true, 0.3),
    ];
    let (mut preds, mut ctx) = (Vec::new(), HashMap::new());
    for (u, g, a, label, p) in users {
        preds.push(pred(u, "original", label, p));
        preds.push(pred(u, "neutral", label, 0.5));
        let attributes = BTreeMap::from([
            ("age".to_string(), a.to_string()),
            ("gender".to_string(), g.to_string()),
        ]);
        let c = Context {
            user: Some(u.into()),
            attributes,
            target: None,
            history: Vec::new(),
        };
        ctx.insert(u.to_string(), c);
    }
    let cfg = AuditConfig {
        bootstrap: 0,
        ..AuditConfig::default()
    };
    let m = audit(&preds, &ctx, &[], &cfg).unwrap();
    let t = &m.group_metrics["users:age,gender"];
    let rate = |g: &str| t.groups[g].selection_rate.unwrap();
    // Yes answers: u1 (young female), u3 (old female), u4 (young male).
    assert_eq!(rate("age=young,gender=female"), 0.5);
    assert_eq!(rate("age=old,gender=female"), 1.0);
    assert_eq!(rate("age=young,gender=male"), 1.0);
    assert_eq!(rate("age=old,gender=male"), 0.0);
    assert_eq!(t.groups.len(), 4);
    // Demographic parity: max - min selection rate over the joint groups.
    assert_eq!(t.demographic_parity_difference, Some(1.0));
    // The single attributes keep their own tables, keyed by value.
    assert_eq!(m.group_metrics["users:gender"].groups["female"].n, 3.0);
}
