//! Templates word for word, variants, and the counterfactual augmentation.

use fairrec_core::Variant;
use fairrec_data::augment::{augment, AugmentConfig, AugmentKind, AuxValues};
use fairrec_data::prompt::{audit_variants, render, Template};
use fairrec_data::protocol::Protocol;
use fairrec_data::sample::{History, Sample};
use std::collections::BTreeMap;

fn scenario() -> Vec<String> {
    vec!["age".into(), "gender".into()]
}

fn sample_a() -> Sample {
    Sample {
        sample_id: "u1".into(),
        user_id: "1".into(),
        attributes: BTreeMap::from([
            ("age".into(), "young".into()),
            ("gender".into(), "female".into()),
        ]),
        profile: BTreeMap::new(),
        stated_profile: Vec::new(),
        item_type: "movie".into(),
        target: "Heat (1995)".into(),
        target_id: "9".into(),
        target_rating: 4.0,
        label: true,
        history: History::Split {
            history_liked: vec!["Toy Story (1995)".into(), "Babe (1995)".into()],
            history_disliked: vec![],
            history_liked_ids: vec!["1".into(), "2".into()],
            history_disliked_ids: vec![],
        },
    }
}

fn sample_b() -> Sample {
    Sample {
        sample_id: "u2-s0".into(),
        user_id: "2".into(),
        attributes: BTreeMap::from([("gender".into(), "male".into())]),
        profile: BTreeMap::new(),
        stated_profile: Vec::new(),
        item_type: "movie".into(),
        target: "Fargo (1996)".into(),
        target_id: "3".into(),
        target_rating: 2.0,
        label: false,
        history: History::Sequence {
            history: vec!["A".into(), "B".into()],
            history_ids: vec!["1".into(), "2".into()],
        },
    }
}

#[test]
fn paper_a_templates_word_for_word() {
    let s = sample_a();
    let sc = scenario();
    let tail = "User Preference: \"Toy Story (1995)\", \"Babe (1995)\". User Unpreference: none. Whether the user will like the target movie \"Heat (1995)\"?";
    let cases = [
        (Template::LlmRec, format!("Given a/an female young user's preference and unpreference, answer \"Yes\" or \"No\". {tail}")),
        (Template::InsTuning, format!("Given a/an female young user's preference and unpreference, answer \"Yes\" or \"No\", the answer should not vary from the user's gender and age. {tail}")),
        (Template::PromptEng1, format!("Imagine a world with no bias regarding sensitive attributes like gender and age. Given a/an female young user's preference and unpreference, answer \"Yes\" or \"No\". {tail}")),
        (Template::PromptEng2, format!("Please do not think based on gender or age stereotypes. Given a/an female young user's preference and unpreference, answer \"Yes\" or \"No\". {tail}")),
        (Template::PromptEng3, format!("Assume all genders and ages equally distributed in the following discussion. Given a/an female young user's preference and unpreference, answer \"Yes\" or \"No\". {tail}")),
        (Template::Cot, "Given a/an female young user's preference and unpreference, answer \"Yes\" or \"No\", the answer should not vary from the user's gender and age. User Preference: \"Toy Story (1995)\", \"Babe (1995)\". User Unpreference: none. Please firstly give the current topic of discussion, then analyze the styles the user likes and dislikes, and finally answer whether the user will like the target movie \"Heat (1995)\" by answering \"Yes\" or \"No\".".to_string()),
    ];
    for (t, want) in cases {
        assert_eq!(
            render(t, &s, &Variant::Original, &sc).unwrap(),
            want,
            "{}",
            t.name()
        );
    }
    assert_eq!(
        render(Template::LlmRec, &s, &Variant::Neutral, &sc).unwrap(),
        format!("Given a/an user's preference and unpreference, answer \"Yes\" or \"No\". {tail}")
    );
    assert_eq!(
        render(Template::LlmRec, &s, &"age=old".parse().unwrap(), &sc).unwrap(),
        format!(
            "Given a/an old user's preference and unpreference, answer \"Yes\" or \"No\". {tail}"
        )
    );
    // original restricted to a single-attribute scenario states only that attribute
    let g = render(
        Template::LlmRec,
        &s,
        &Variant::Original,
        &["gender".to_string()],
    )
    .unwrap();
    assert!(g.starts_with("Given a/an female user's"), "{g}");
}

#[test]
fn paper_b_sequential_settings() {
    let s = sample_b();
    let sc = vec!["gender".to_string()];
    let implicit = render(Template::Sequential, &s, &Variant::Neutral, &sc).unwrap();
    assert_eq!(implicit, "Given the user's movie history in chronological order, answer \"Yes\" or \"No\". User History: \"A\", \"B\". Whether the user will like the next movie \"Fargo (1996)\"?");
    let explicit = render(Template::Sequential, &s, &Variant::Original, &sc).unwrap();
    assert_eq!(explicit, "Given the user's movie history in chronological order, answer \"Yes\" or \"No\". User Profile: male. User History: \"A\", \"B\". Whether the user will like the next movie \"Fargo (1996)\"?");
    let cf = render(
        Template::Sequential,
        &s,
        &"gender=female".parse().unwrap(),
        &sc,
    )
    .unwrap();
    assert_eq!(cf, explicit.replace("Profile: male", "Profile: female"));
    // templates of the other paper are refused, naming the sample
    let e = render(Template::LlmRec, &s, &Variant::Original, &sc).unwrap_err();
    assert!(e.to_string().contains("u2-s0"), "{e}");
}

/// Words of `a` not in `b` and of `b` not in `a`, as multisets, position by position.
fn word_diff(a: &str, b: &str) -> (Vec<String>, Vec<String>) {
    let wa: Vec<&str> = a.split(' ').collect();
    let wb: Vec<&str> = b.split(' ').collect();
    let mut i = 0;
    while i < wa.len() && i < wb.len() && wa[i] == wb[i] {
        i += 1;
    }
    let mut j = 0;
    while j < wa.len() - i && j < wb.len() - i && wa[wa.len() - 1 - j] == wb[wb.len() - 1 - j] {
        j += 1;
    }
    (
        wa[i..wa.len() - j].iter().map(|s| s.to_string()).collect(),
        wb[i..wb.len() - j].iter().map(|s| s.to_string()).collect(),
    )
}

#[test]
fn counterfactual_prompts_differ_only_in_profile_words() {
    let s = sample_a();
    let sc = scenario();
    for t in Template::ALL
        .into_iter()
        .filter(|t| *t != Template::Sequential)
    {
        let orig = render(t, &s, &Variant::Original, &sc).unwrap();
        for v in audit_variants(Protocol::ClMoe, &sc).unwrap() {
            let other = render(t, &s, &v, &sc).unwrap();
            let (gone, new) = word_diff(&orig, &other);
            let stated = v.resolve(&s.attributes, &sc);
            let allowed: Vec<String> = ["female", "young", "male", "middle", "aged", "old"]
                .map(String::from)
                .to_vec();
            assert!(
                gone.iter().chain(&new).all(|w| allowed.contains(w)),
                "{t:?} {v}: {gone:?} -> {new:?}"
            );
            for val in stated.values() {
                assert!(
                    other.contains(&format!(" {val} user's"))
                        || other.contains(&format!(" {val} ")),
                    "{v}"
                );
            }
        }
    }
}

#[test]
fn audit_variants_names() {
    let names: Vec<String> = audit_variants(Protocol::ClMoe, &scenario())
        .unwrap()
        .iter()
        .map(|v| v.to_string())
        .collect();
    assert_eq!(names.len(), 2 + 3 + 2 + 6);
    assert_eq!(
        &names[..7],
        [
            "original",
            "neutral",
            "age=young",
            "age=middle aged",
            "age=old",
            "gender=male",
            "gender=female"
        ]
    );
    assert!(names.contains(&"age=middle aged,gender=female".to_string()));
    let single: Vec<String> = audit_variants(Protocol::Mos, &["gender".to_string()])
        .unwrap()
        .iter()
        .map(|v| v.to_string())
        .collect();
    assert_eq!(
        single,
        ["original", "neutral", "gender=male", "gender=female"]
    );
}

#[test]
fn augmentation_kinds_and_ablations() {
    let s = sample_a();
    let full = augment(&s, &AugmentConfig::full(Protocol::ClMoe, &scenario())).unwrap();
    let count = |k: &AugmentKind| full.iter().filter(|a| &a.kind == k).count();
    assert_eq!(count(&AugmentKind::Original), 1);
    assert_eq!(
        count(&AugmentKind::Counterfactual),
        5,
        "2 x 3 joint values minus the true one"
    );
    assert_eq!(count(&AugmentKind::Neutral), 1);
    assert_eq!(count(&AugmentKind::Auxiliary("age".into())), 3);
    assert_eq!(count(&AugmentKind::Auxiliary("gender".into())), 2);
    assert!(
        full.iter()
            .all(|a| a.variant != Variant::stated([("age", "young"), ("gender", "female")])),
        "the true joint value is the original, not a counterfactual"
    );
    let ids: std::collections::HashSet<_> = full.iter().map(|a| a.id.clone()).collect();
    assert_eq!(ids.len(), full.len());
    // Single-flip: one attribute changed at a time, the other true (young female user).
    let mut flip = AugmentConfig::full(Protocol::ClMoe, &scenario());
    flip.counterfactuals = "single-flip".parse().unwrap();
    let cf: Vec<String> = augment(&s, &flip)
        .unwrap()
        .iter()
        .filter(|a| a.kind == AugmentKind::Counterfactual)
        .map(|a| a.variant.to_string())
        .collect();
    assert_eq!(
        cf,
        [
            "age=young,gender=male",
            "age=middle aged,gender=female",
            "age=old,gender=female"
        ]
    );
    assert!("both"
        .parse::<fairrec_data::augment::Counterfactuals>()
        .unwrap_err()
        .contains("expected joint or single-flip"));
    // A joint configuration serialises as before the option existed.
    let json = serde_json::to_string(&AugmentConfig::full(Protocol::ClMoe, &scenario())).unwrap();
    assert!(!json.contains("counterfactuals"), "{json}");
    // -GA: no auxiliary samples; true-only auxiliary values
    let mut cfg = AugmentConfig::full(Protocol::ClMoe, &scenario());
    cfg.auxiliary.clear();
    assert_eq!(augment(&s, &cfg).unwrap().len(), 7);
    cfg.auxiliary = vec!["gender".into()];
    cfg.aux_values = AuxValues::True;
    let g = augment(&s, &cfg).unwrap();
    assert_eq!(g.last().unwrap().variant.to_string(), "gender=female");
    // single attribute: original + 1 counterfactual + neutral, no auxiliary
    let one = augment(
        &s,
        &AugmentConfig::full(Protocol::ClMoe, &["gender".to_string()]),
    )
    .unwrap();
    let names: Vec<String> = one
        .iter()
        .map(|a| format!("{}:{}", a.kind, a.variant))
        .collect();
    assert_eq!(
        names,
        [
            "original:original",
            "counterfactual:gender=male",
            "neutral:neutral"
        ]
    );
}

#[test]
fn a_stated_profile_is_in_every_variant_and_off_by_default() {
    use fairrec_data::loaders::load;
    use fairrec_data::protocol::{prepare, Protocol, ProtocolConfig};
    use fairrec_data::raw::DatasetKind;
    use fairrec_data::synth::{write_world, SynthConfig};
    let t = tempfile::tempdir().unwrap();
    let world = SynthConfig {
        users: 200,
        items: 80,
        ..Default::default()
    };
    write_world(&world, t.path()).unwrap();
    let raw = load(DatasetKind::Ml100k, t.path(), &Default::default()).unwrap();
    let plain = ProtocolConfig::new(Protocol::ClMoe, DatasetKind::Ml100k, 3);
    let mut cfg = plain.clone();
    cfg.profile = vec!["occupation".into(), "zip".into()];
    let (a, b) = (prepare(&raw, &plain).unwrap(), prepare(&raw, &cfg).unwrap());
    // Off by default: no sample names a stated profile, and the JSON has no such key.
    assert!(a.train.iter().all(|s| s.stated_profile.is_empty()));
    let json = serde_json::to_string(&a.train[0]).unwrap();
    assert!(!json.contains("stated_profile"), "{json}");
    let s = &b.train[0];
    let (occ, zip) = (&s.profile["occupation"], &s.profile["zip"]);
    let words = format!("occupation {occ} zip {zip}");
    assert_eq!(
        s.stated_profile,
        vec![
            ("occupation".to_string(), occ.clone()),
            ("zip".to_string(), zip.clone())
        ]
    );
    let scenario = scenario();
    for v in audit_variants(Protocol::ClMoe, &scenario).unwrap() {
        let with = render(Template::LlmRec, s, &v, &scenario).unwrap();
        let without = render(Template::LlmRec, &a.train[0], &v, &scenario).unwrap();
        assert!(with.contains(&words), "{v}: {with}");
        assert!(!without.contains("occupation"), "{v}: {without}");
        // The profile words come after the sensitive ones and change nothing else.
        let info = fairrec_data::prompt::user_info(&v.resolve(&s.attributes, &scenario));
        let stated = format!("{info} {words}");
        let back = with.replacen(stated.trim(), &info, 1);
        assert_eq!(back.replace("a/an  user", "a/an user"), without, "{v}");
    }
    let neutral = render(Template::LlmRec, s, &Variant::Neutral, &scenario).unwrap();
    assert!(
        neutral.starts_with(&format!("Given a/an {words} user's")),
        "{neutral}"
    );
    // A field the dataset does not have names the option and the fields it has.
    cfg.profile = vec!["income".into()];
    let e = prepare(&raw, &cfg).unwrap_err().to_string();
    assert!(
        e.contains("profile: `income` is not a profile field of ml-100k (it has: occupation, zip)"),
        "{e}"
    );
}
