//! IFairLRS: the sample weights against hand arithmetic, and the weighted loss against the
//! per-example answer NLL weighted by hand, with gradients reaching every LoRA tensor.

mod common;
use common::{lora_model, scalar, toy_prompt};
use fairrec_lm::score::{AnswerSpace, PromptFormat, Scorer};
use fairrec_train::engine::objective::{AnswerLoss, Example, Objective};
use fairrec_train::methods::ifairlrs::{sample_weights, Weighing, WeightedExample, WeightedLoss};

fn w<'a>(history: &'a [&'a str], target: &'a &'a str, label: bool) -> Weighing<'a, &'a str> {
    Weighing {
        history,
        target,
        label,
    }
}

#[test]
fn weights_follow_history_over_target_shares_with_add_one_smoothing() {
    // History items: a a b | a | b  -> a: 3, b: 2 of 5; two keys.
    //   h_a = (3 + 1) / (5 + 2) = 4/7, h_b = 3/7.
    // Positive targets: a (sample 0), b (sample 1) -> t_a = t_b = (1 + 1) / (2 + 2) = 1/2.
    // Raw weights: 8/7, 6/7 and 1 (a negative); their mean is 1, so they stay.
    let (h0, h1, h2) = (["a", "a", "b"], ["a"], ["b"]);
    let (ta, tb) = ("a", "b");
    let got = sample_weights(&[w(&h0, &ta, true), w(&h1, &tb, true), w(&h2, &ta, false)]);
    let want = [8.0 / 7.0, 6.0 / 7.0, 1.0];
    for (g, e) in got.iter().zip(want) {
        assert!((g - e).abs() < 1e-12, "{got:?} vs {want:?}");
    }
}

#[test]
fn an_over_recommended_group_is_down_weighted_and_weights_average_one() {
    // Group `s` is 1 of 6 history items but 3 of 4 positive targets: its positives weigh
    // less than the neutral positive, and no weight is 0 or infinite.
    let hist = ["n", "n", "n", "n", "n", "s"];
    let (s, n) = ("s", "n");
    let samples = [
        w(&hist, &s, true),
        w(&hist, &s, true),
        w(&hist, &s, true),
        w(&hist, &n, true),
        w(&hist, &n, false),
    ];
    let got = sample_weights(&samples);
    // Histories over all 5 samples: s 5, n 25 of 30 items; positive targets: s 3, n 1.
    let (hs, hn) = ((5.0 + 1.0) / 32.0, (25.0 + 1.0) / 32.0);
    let (ts, tn) = ((3.0 + 1.0) / 6.0, (1.0 + 1.0) / 6.0);
    let raw = [hs / ts, hs / ts, hs / ts, hn / tn, 1.0];
    let mean = raw.iter().sum::<f64>() / 5.0;
    for (g, r) in got.iter().zip(raw) {
        assert!((g - r / mean).abs() < 1e-12, "{got:?}");
    }
    assert!(
        got[0] < got[3],
        "the over-recommended group should weigh less"
    );
    assert!((got.iter().sum::<f64>() / 5.0 - 1.0).abs() < 1e-12);
}

#[test]
fn the_weighted_loss_is_the_weighted_mean_nll_and_reaches_every_adapter() {
    let (tok, m, vars) = lora_model(false);
    let scorer = Scorer::new(&m, &tok, PromptFormat::Raw, AnswerSpace::None).unwrap();
    let mut rng = fairrec_core::Rng::derive(3, "ifairlrs-test");
    let items: Vec<WeightedExample> = (0..4)
        .map(|i| {
            let (p, label) = toy_prompt(&mut rng, 4);
            WeightedExample {
                example: Example {
                    ids: scorer.encode(&[p]).unwrap().remove(0),
                    label,
                },
                weight: 0.5 + i as f64 * 0.4,
            }
        })
        .collect();
    let refs: Vec<&WeightedExample> = items.iter().collect();
    let obj = WeightedLoss {
        answer: AnswerLoss { scorer: &scorer },
    };
    let (loss, tokens) = obj.loss(&refs).unwrap();
    assert_eq!(
        tokens,
        items.iter().map(|w| w.example.ids.len()).sum::<usize>()
    );
    // By hand: each example's NLL alone, weighted, averaged.
    let answer = AnswerLoss { scorer: &scorer };
    let by_hand = items
        .iter()
        .map(|w| w.weight * scalar(&answer.per_example(&[&w.example]).unwrap().get(0).unwrap()))
        .sum::<f64>()
        / items.len() as f64;
    assert!(
        (scalar(&loss) - by_hand).abs() < 1e-5,
        "{} vs {by_hand}",
        scalar(&loss)
    );
    let grads = loss.backward().unwrap();
    for (name, v) in &vars {
        assert!(grads.get(v.as_tensor()).is_some(), "no gradient for {name}");
    }
}
