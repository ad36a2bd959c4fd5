//! The audit over whole prediction sets, checked against arithmetic written out here.

mod common;

use common::pred;
use fairrec_core::Rng;
use fairrec_metrics::stereotype::Interactions;
use fairrec_metrics::{
    audit, parse_predictions, AuditConfig, Context, Inputs, MetricsError, MetricsFile, Prediction,
    StereotypeInput,
};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// F1 written out: 2TP / (2TP + FP + FN).
fn f1(rows: &[(bool, f64)]) -> f64 {
    let tp = rows.iter().filter(|(l, p)| *l && *p >= 0.5).count() as f64;
    let fp = rows.iter().filter(|(l, p)| !*l && *p >= 0.5).count() as f64;
    let fn_ = rows.iter().filter(|(l, p)| *l && *p < 0.5).count() as f64;
    2.0 * tp / (2.0 * tp + fp + fn_)
}

fn biased_world(n: usize, seed: u64) -> Vec<Prediction> {
    let mut r = Rng::new(seed);
    let bias = [
        ("gender=female", 0.15),
        ("gender=male", -0.1),
        ("original", 0.05),
        ("neutral", 0.0),
    ];
    let mut out = Vec::new();
    for i in 0..n {
        let label = r.below(2) == 1;
        let base = if label { 0.62 } else { 0.38 } + 0.3 * (r.f64() - 0.5);
        for (v, b) in bias {
            out.push(pred(&format!("s{i}"), v, label, (base + b).clamp(0.0, 1.0)));
        }
    }
    out
}

#[test]
fn paper_a_figures_match_arithmetic() {
    let preds = biased_world(400, 1);
    let m = audit(
        &preds,
        &HashMap::new(),
        &[],
        &AuditConfig {
            bootstrap: 0,
            ..Default::default()
        },
    )
    .unwrap();
    let rows = |v: &str| {
        preds
            .iter()
            .filter(|p| p.variant.to_string() == v)
            .map(|p| (p.label, p.p_yes))
            .collect::<Vec<_>>()
    };
    let (b, f, mm) = (
        f1(&rows("neutral")),
        f1(&rows("gender=female")),
        f1(&rows("gender=male")),
    );
    let g = &m.fairness["gender"].point;
    assert!((m.neutral.f1.unwrap() - b).abs() < 1e-12);
    assert!((g.groups["female"].f1.unwrap() - f).abs() < 1e-12);
    assert!((g.gd.unwrap() - (((f - b).powi(2) + (mm - b).powi(2)) / 2.0).sqrt()).abs() < 1e-12);
    assert!((g.rate.unwrap() - ((1.0 - f / b).abs() + (1.0 - mm / b).abs()) / 2.0).abs() < 1e-12);
    assert!(
        (g.rate_sq.unwrap() - ((1.0 - f / b).powi(2) + (1.0 - mm / b).powi(2)) / 2.0).abs() < 1e-12
    );
    assert_eq!(g.groups["male"].n, 400.0);
    assert!(
        m.fairness["gender"].ci.is_empty() && m.ci.is_empty(),
        "no resamples, no intervals"
    );
}

#[test]
fn bootstrap_is_seeded_and_paired() {
    let preds = biased_world(300, 2);
    let cfg = AuditConfig {
        bootstrap: 100,
        seed: 7,
        ..Default::default()
    };
    let a = audit(&preds, &HashMap::new(), &[], &cfg).unwrap();
    let b = audit(&preds, &HashMap::new(), &[], &cfg).unwrap();
    assert_eq!(a, b, "same seed, same intervals");
    let c = audit(
        &preds,
        &HashMap::new(),
        &[],
        &AuditConfig {
            seed: 8,
            ..cfg.clone()
        },
    )
    .unwrap();
    assert_ne!(a.fairness["gender"].ci, c.fairness["gender"].ci);
    let ci = &a.fairness["gender"].ci;
    for (k, [lo, hi]) in ci {
        assert!(lo <= hi, "{k}");
    }
    let [lo, hi] = ci["groups.female.f1"];
    let point = a.fairness["gender"].point.groups["female"].f1.unwrap();
    assert!(lo < point && point < hi, "{lo} {point} {hi}");
    for k in [
        "original.f1",
        "original.precision",
        "original.recall",
        "neutral.f1",
    ] {
        let [lo, hi] = a.ci[k];
        let (block, fig) = k.split_once('.').unwrap();
        let c = if block == "original" {
            &a.original
        } else {
            &a.neutral
        };
        let point = match fig {
            "f1" => c.f1,
            "precision" => c.precision,
            _ => c.recall,
        }
        .unwrap();
        assert!(
            lo <= point && point <= hi && lo <= hi,
            "{k}: {lo} {point} {hi}"
        );
        if fig == "f1" {
            assert!(lo < hi, "{k}: a real interval");
        }
    }
    assert_eq!(a.bootstrap.unit, "sample");
    assert_eq!(a.bootstrap.units, 300);
    // Every variant equal to neutral: GD is 0 in every resample, and so is each difference.
    let same: Vec<Prediction> = biased_world(100, 3)
        .into_iter()
        .filter(|p| p.variant.to_string() == "neutral")
        .flat_map(|p| {
            ["neutral", "gender=female", "gender=male", "original"].map(|v| Prediction {
                variant: v.parse().unwrap(),
                ..p.clone()
            })
        })
        .collect();
    let z = audit(&same, &HashMap::new(), &[], &cfg).unwrap();
    assert_eq!(z.fairness["gender"].point.gd, Some(0.0));
    assert_eq!(z.fairness["gender"].ci["gd"], [0.0, 0.0]);
    assert_eq!(z.fairness["gender"].ci["groups.male.diff"], [0.0, 0.0]);
    // Paired resamples: identical original and neutral predictions, identical intervals.
    assert_eq!(z.ci["original.f1"], z.ci["neutral.f1"]);
}

#[test]
fn users_are_the_resampling_unit_when_known() {
    let mut preds = biased_world(50, 4);
    let ctx: HashMap<String, Context> = (0..50)
        .map(|i| {
            (
                format!("s{i}"),
                Context {
                    user: Some(format!("u{}", i / 5)),
                    ..Default::default()
                },
            )
        })
        .collect();
    let m = audit(
        &preds,
        &ctx,
        &[],
        &AuditConfig {
            bootstrap: 10,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!((m.bootstrap.unit.as_str(), m.bootstrap.units), ("user", 10));
    preds
        .iter_mut()
        .for_each(|p| p.user_id = Some("same".into()));
    let m = audit(
        &preds,
        &HashMap::new(),
        &[],
        &AuditConfig {
            bootstrap: 10,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(m.bootstrap.units, 1);
}

#[test]
fn bad_input_is_named() {
    let path = Path::new("preds.jsonl");
    let e = parse_predictions(
        path,
        "{\"sample_id\":\"a\",\"variant\":\"neutral\",\"label\":true,\"p_yes\":0.4}\n{oops}\n",
    )
    .unwrap_err();
    assert!(e.to_string().starts_with("preds.jsonl:2:"), "{e}");
    let e = parse_predictions(
        path,
        "{\"sample_id\":\"a\",\"variant\":\"neutral\",\"label\":true,\"p_yes\":1.4}\n",
    )
    .unwrap_err();
    assert!(e.to_string().contains("p_yes must be a probability"), "{e}");
    let e = parse_predictions(
        path,
        "{\"sample_id\":\"a\",\"variant\":\"gender=x,age=y\",\"label\":true,\"p_yes\":0.4}\n",
    )
    .unwrap_err();
    assert!(e.to_string().contains("age=y,gender=x"), "{e}");
    assert!(parse_predictions(path, "\n")
        .unwrap_err()
        .to_string()
        .contains("no predictions"));
    let no_neutral = vec![
        pred("a", "original", true, 0.9),
        pred("a", "gender=male", true, 0.9),
    ];
    match audit(&no_neutral, &HashMap::new(), &[], &AuditConfig::default()) {
        Err(MetricsError::MissingVariant { variant, why }) => {
            assert!(variant == "neutral" && why.contains("GD"), "{why}")
        }
        other => panic!("{other:?}"),
    }
    // A group without positives is undefined and named; the JSON has null, never NaN.
    let preds = vec![
        pred("a", "original", true, 0.9),
        pred("a", "neutral", true, 0.9),
        pred("b", "neutral", false, 0.1),
        pred("b", "gender=male", false, 0.1),
        pred("a", "gender=female", true, 0.8),
    ];
    let m = audit(
        &preds,
        &HashMap::new(),
        &[],
        &AuditConfig {
            bootstrap: 20,
            ..Default::default()
        },
    )
    .unwrap();
    let g = &m.fairness["gender"].point;
    assert_eq!(g.groups["male"].f1, None);
    assert!(g.undefined["groups.male.f1"].contains("gender=male"));
    let json = serde_json::to_string(&m).unwrap();
    assert!(
        !json.contains("NaN") && json.contains("\"gd\":null"),
        "{json}"
    );
}

#[test]
fn stereotype_through_the_audit() {
    // Training: women interact with item a, men with b; c is everyone's.
    let train_rows = [
        ("1", "female", vec!["a", "c"]),
        ("2", "female", vec!["a", "c"]),
        ("3", "male", vec!["b", "c"]),
        ("4", "male", vec!["b", "c"]),
    ];
    let train: Vec<Interactions> = train_rows
        .iter()
        .map(|(u, g, i)| Interactions {
            user: u,
            group: g,
            items: i.clone(),
        })
        .collect();
    let st = [StereotypeInput {
        attribute: "gender".into(),
        train,
    }];
    // Test: user 5 (female) has history [c, c]; her targets a (Yes) and c (Yes) in explicit;
    // implicit: a is No. User 6 (male) history [b], target b Yes.
    let ctx = |user: &str, g: &str, target: &str, hist: &[&str]| Context {
        user: Some(user.into()),
        attributes: BTreeMap::from([("gender".to_string(), g.to_string())]),
        target: Some(target.into()),
        history: hist.iter().map(|s| s.to_string()).collect(),
    };
    let context: HashMap<String, Context> = HashMap::from([
        ("t1".to_string(), ctx("5", "female", "a", &["c", "c"])),
        ("t2".to_string(), ctx("5", "female", "c", &["c", "c"])),
        ("t3".to_string(), ctx("6", "male", "b", &["b"])),
    ]);
    let preds = vec![
        pred("t1", "original", true, 0.9),
        pred("t2", "original", true, 0.9),
        pred("t3", "original", true, 0.9),
        pred("t1", "neutral", true, 0.1),
        pred("t2", "neutral", true, 0.9),
        pred("t3", "neutral", true, 0.9),
        pred("t1", "gender=male", true, 0.2),
        pred("t2", "gender=male", true, 0.7),
        pred("t3", "gender=female", true, 0.2),
    ];
    let m = audit(
        &preds,
        &context,
        &st,
        &AuditConfig {
            bootstrap: 0,
            ..Default::default()
        },
    )
    .unwrap();
    let s = &m.stereotype.as_ref().unwrap()["gender"];
    assert_eq!(s.item_groups["female"], 1);
    assert_eq!(s.item_groups["male"], 1);
    // explicit: women recommended {a, c}: p_f = 1/2; history {c, c, c, c}: 0 -> +0.5.
    let ex = &s.settings["explicit"];
    assert_eq!(ex.pairs["users=female,items=female"], Some(0.5));
    assert_eq!(ex.pairs["users=male,items=male"], Some(0.0));
    assert_eq!(ex.same_group, Some(50.0));
    // The per-recommendation average: t1 (a woman's own-group item, female history share
    // 0) gives 1, t3 (a man's own-group item, male share 1) gives 0; t2's target is neutral.
    assert_eq!(ex.average_same, Some(50.0));
    assert_eq!(ex.average, Some(50.0));
    assert_eq!(ex.average_other, None);
    assert_eq!(ex.recommendations.consistent, 2.0);
    // metrics.csv carries paper B's figures by setting, and the pairs quoted.
    let csv = m.to_long_csv();
    assert!(
        csv.contains("\nstereotype:gender,explicit,average,50,,,\n"),
        "{csv}"
    );
    assert!(
        csv.contains("\nstereotype:gender,explicit,\"users=female,items=female\",0.5,,,\n"),
        "{csv}"
    );
    assert!(csv.contains("\nside:gender,users=female,f1,"), "{csv}");
    // The explicit predictions by side: t1 (female user, item a of the female group), t2
    // (female user, c neutral), t3 (male user, b of the male group).
    let perf = &s.performance;
    let keys: Vec<&str> = perf.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "items=female",
            "items=male",
            "items=neutral",
            "match=consistent",
            "users=female",
            "users=male"
        ]
    );
    assert_eq!(perf["match=consistent"].n, 2, "t1 and t3");
    assert_eq!(perf["users=female"].n, 2);
    assert_eq!(perf["users=male"].n, 1);
    assert_eq!(perf["items=neutral"].n, 1);
    assert_eq!(perf["items=female"].recall, Some(1.0));
    // implicit: women recommended {c}: 0 - 0 = 0.
    assert_eq!(
        s.settings["implicit"].pairs["users=female,items=female"],
        Some(0.0)
    );
    // counterfactual: the male user has no Yes -> undefined, named.
    let cf = &s.settings["counterfactual"];
    assert_eq!(cf.pairs["users=male,items=male"], None);
    assert!(cf.undefined.contains_key("users=male,items=male"));
    // The report says how many pairs each total sums.
    let prov = fairrec_metrics::report::Provenance {
        predictions: "p.jsonl".into(),
        predictions_sha256: "ab".into(),
        data: None,
        git_revision: None,
    };
    let md = fairrec_metrics::report::markdown(&fairrec_metrics::report::blocks(&m, &prov));
    let defined = cf.pairs.values().filter(|d| d.is_some()).count();
    assert!(defined < cf.pairs.len());
    let row = md
        .lines()
        .find(|l| l.starts_with("| counterfactual |"))
        .unwrap();
    assert!(
        row.ends_with(&format!("| {defined} of {} |", cf.pairs.len())),
        "{row}"
    );
    metrics_file_round_trip(m);
}

/// `metrics.json` through [`MetricsFile`]: the bytes the earlier writer produced (the audit
/// as a JSON value with `inputs` patched in, pretty-printed), and read back equal.
fn metrics_file_round_trip(m: fairrec_metrics::Metrics) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("metrics.json");
    let file = MetricsFile {
        metrics: Some(m.clone()),
        inputs: Inputs {
            predictions: Some("p.jsonl".into()),
            predictions_sha256: Some("ab".into()),
            ..Inputs::default()
        },
        fairllm: None,
    };
    file.write(&path).unwrap();
    let mut old = serde_json::to_value(&m).unwrap();
    old["inputs"] = serde_json::json!({
        "predictions": "p.jsonl", "predictions_sha256": "ab", "data": null, "lists": null,
        "lists_sha256": null, "git_revision": null,
    });
    let old = serde_json::to_string_pretty(&old).unwrap() + "\n";
    assert_eq!(std::fs::read_to_string(&path).unwrap(), old);
    assert_eq!(MetricsFile::read(&path).unwrap(), file);
    // A file of lists only has no audit.
    let lists_only = MetricsFile {
        metrics: None,
        ..file
    };
    lists_only.write(&path).unwrap();
    assert_eq!(MetricsFile::read(&path).unwrap(), lists_only);
    // A damaged audit is an error naming the file, not a file without an audit.
    std::fs::write(&path, r#"{"original": {"f1": 0.5}, "inputs": {}}"#).unwrap();
    let e = MetricsFile::read(&path).unwrap_err().to_string();
    assert!(
        e.contains("metrics.json") && e.contains("missing field"),
        "{e}"
    );
}

/// The audit's intervals reach the flat figures the experiment tables read (`ci_lo/k`,
/// `ci_hi/k`, `ci_level`), only for the figures that have one.
#[test]
fn figures_carry_the_audits_intervals() {
    let dir = tempfile::tempdir().unwrap();
    let m = dir.path().join("metrics.json");
    std::fs::write(
        &m,
        r#"{"bootstrap": {"confidence": 0.9, "resamples": 10, "seed": 0, "unit": "user", "units": 4},
            "threshold": 0.5, "n_predictions": 4, "variants": {}, "fairness": {}, "inputs": {},
            "original": {"f1": 0.5, "auc": 0.6, "precision": 0.4, "recall": 0.7, "n": 4, "positives": 2},
            "neutral": {"f1": null, "auc": null, "precision": null, "recall": null, "n": 0, "positives": 0},
            "ci": {"original.f1": [0.25, 0.75], "original.recall": [0.5, 0.875]},
            "stereotype": {"gender": {"z_threshold": 1.0, "normalize": true, "item_groups": {},
                "n_items": 0, "performance": {},
                "settings": {"explicit": {"total": 25.0, "same_group": 10.0, "other_group": null, "pairs": {}}},
                "ci": {"explicit.total": [16.5, 52.0]}}}}"#,
    )
    .unwrap();
    let c = MetricsFile::read(&m)
        .unwrap()
        .metrics
        .unwrap()
        .figures(true);
    assert_eq!(c["ci_level"], 0.9);
    assert_eq!((c["ci_lo/f1"], c["ci_hi/f1"]), (0.25, 0.75));
    assert_eq!((c["ci_lo/recall"], c["ci_hi/recall"]), (0.5, 0.875));
    assert!(!c.contains_key("ci_lo/auc") && !c.contains_key("ci_lo/precision"));
    let k = "stereo/gender/explicit";
    assert_eq!(
        (c[k], c[&format!("ci_lo/{k}")], c[&format!("ci_hi/{k}")]),
        (25.0, 16.5, 52.0)
    );
    // same_group has a figure but no interval in this audit.
    assert!(c.contains_key("stereo_same/gender/explicit"));
    assert!(!c.contains_key("ci_lo/stereo_same/gender/explicit"));
}

/// A CSV line's fields (RFC 4180 quoting), as `pandas.read_csv` reads them.
fn csv_fields(line: &str) -> Vec<String> {
    let (mut out, mut cur, mut quoted, mut chars) =
        (Vec::new(), String::new(), false, line.chars().peekable());
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            ('"', _) => quoted = !quoted,
            (',', false) => out.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    out.push(cur);
    out
}

/// `metrics.csv` holds every figure of `metrics.json` in long format: the same estimates,
/// intervals and counts, one row per scope x group x metric, names with commas quoted.
#[test]
fn the_long_csv_has_the_audits_figures() {
    let mut preds = Vec::new();
    let mut r = Rng::new(3);
    for i in 0..60 {
        let label = r.below(2) == 1;
        for (v, b) in [
            ("neutral", 0.0),
            ("original", 0.05),
            ("age=young,gender=female", 0.2),
            ("age=old,gender=male", -0.2),
        ] {
            let p = if label { 0.6 } else { 0.4 } + b + 0.3 * (r.f64() - 0.5);
            preds.push(pred(&format!("s{i}"), v, label, p.clamp(0.0, 1.0)));
        }
    }
    let cfg = AuditConfig {
        bootstrap: 50,
        ..Default::default()
    };
    let m = audit(&preds, &HashMap::new(), &[], &cfg).unwrap();
    let csv = m.to_long_csv();
    let mut lines = csv.lines();
    assert_eq!(
        lines.next(),
        Some("scope,group,metric,estimate,ci_low,ci_high,n")
    );
    let rows: BTreeMap<(String, String, String), Vec<String>> = lines
        .map(|l| {
            let f = csv_fields(l);
            assert_eq!(f.len(), 7, "{l}");
            ((f[0].clone(), f[1].clone(), f[2].clone()), f[3..].to_vec())
        })
        .collect();
    let num = |s: &str| (!s.is_empty()).then(|| s.parse::<f64>().unwrap());
    let row = |scope: &str, group: &str, metric: &str| {
        let r = &rows[&(scope.to_string(), group.to_string(), metric.to_string())];
        (
            num(&r[0]),
            num(&r[1]).zip(num(&r[2])).map(|(a, b)| [a, b]),
            num(&r[3]),
        )
    };
    assert_eq!(
        row("original", "", "f1"),
        (m.original.f1, m.ci.get("original.f1").copied(), Some(60.0))
    );
    assert_eq!(row("neutral", "", "auc").0, m.neutral.auc);
    let v = &m.variants["age=young,gender=female"];
    assert_eq!(
        row("variant", "age=young,gender=female", "recall"),
        (v.recall, None, Some(60.0))
    );
    let f = &m.fairness["age,gender"];
    assert!(f.ci.contains_key("gd"));
    assert_eq!(
        row("fairness:age,gender", "", "gd"),
        (f.point.gd, f.ci.get("gd").copied(), None)
    );
    let g = &f.point.groups["age=old,gender=male"];
    let (x, ci, n) = row("fairness:age,gender", "age=old,gender=male", "diff");
    assert_eq!(x, g.f1.zip(f.point.neutral_f1).map(|(a, b)| a - b));
    assert_eq!(ci, f.ci.get("groups.age=old,gender=male.diff").copied());
    assert_eq!(n, Some(g.n));
    // 2 scopes x 4 + 4 variants x 4 + one set x (3 + 2 groups x 2), and the set's group
    // metrics: dp, eo, flip rate, 4 rates x (difference, ratio), 2 groups x 4 rates.
    assert_eq!(rows.len(), 8 + 16 + 7 + 19, "{csv}");
}
