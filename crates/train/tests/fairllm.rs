//! The FaiRLLM objective: Jeffreys divergence of Bernoulli answers against the two KLs by
//! hand, the loss against NTP and divergence computed prompt by prompt, and gradients of
//! every LoRA tensor against finite differences.

mod common;
use candle_core::{Device, Tensor};
use common::{check_finite_differences, lora_model, scalar, toy_prompt};
use fairrec_core::Rng;
use fairrec_lm::score::{AnswerSpace, PromptFormat, Scorer};
use fairrec_train::engine::objective::{AnswerLoss, Example, Objective};
use fairrec_train::methods::fairllm::{jeffreys_from_log_odds, FairLlmLoss, PairExample};

fn kl(p: f64, q: f64) -> f64 {
    p * (p / q).ln() + (1.0 - p) * ((1.0 - p) / (1.0 - q)).ln()
}

#[test]
fn jeffreys_closed_form_is_the_sum_of_both_kls() {
    let pairs = [(0.9, 0.2), (0.5, 0.5), (0.01, 0.7), (0.3, 0.31)];
    let logit = |p: f64| (p / (1.0 - p)).ln() as f32;
    let dp = Tensor::new(pairs.map(|(p, _)| logit(p)).as_slice(), &Device::Cpu).unwrap();
    let dq = Tensor::new(pairs.map(|(_, q)| logit(q)).as_slice(), &Device::Cpu).unwrap();
    let got = jeffreys_from_log_odds(&dp, &dq)
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    for ((p, q), g) in pairs.iter().zip(got) {
        let want = kl(*p, *q) + kl(*q, *p);
        assert!(
            (g as f64 - want).abs() < 1e-5 * want.max(1.0),
            "J({p}, {q}) = {g} vs {want}"
        );
        assert!(g >= 0.0);
    }
    assert_eq!(got_equal_is_zero(), 0.0);
}

fn got_equal_is_zero() -> f32 {
    let d = Tensor::new(&[1.3f32], &Device::Cpu).unwrap();
    jeffreys_from_log_odds(&d, &d)
        .unwrap()
        .to_vec1::<f32>()
        .unwrap()[0]
}

/// Pairs of toy prompts: the "neutral" one is the sensitive one with its first letter cut.
fn pairs(scorer: &Scorer, n: usize) -> Vec<PairExample> {
    let mut rng = Rng::derive(5, "fairllm-test");
    (0..n)
        .map(|_| {
            let (p, label) = toy_prompt(&mut rng, 4);
            let ex = |text: &str| Example {
                ids: scorer.encode(&[text.to_string()]).unwrap().remove(0),
                label,
            };
            PairExample {
                sensitive: ex(&p),
                neutral: ex(&p[1..]),
            }
        })
        .collect()
}

#[test]
fn the_loss_is_ntp_plus_lambda_times_the_mean_divergence_prompt_by_prompt() {
    let (tok, m, _) = lora_model(false);
    let scorer = Scorer::new(&m, &tok, PromptFormat::Raw, AnswerSpace::None).unwrap();
    let items = pairs(&scorer, 3);
    let refs: Vec<&PairExample> = items.iter().collect();
    let answer = || AnswerLoss { scorer: &scorer };
    // By hand: every prompt scored alone.
    let log_odds = |e: &Example| {
        let l = scorer
            .answer_logits(std::slice::from_ref(&e.ids), None)
            .unwrap()
            .0;
        let l = l.to_vec2::<f32>().unwrap()[0].clone();
        (l[0] - l[1]) as f64
    };
    let (mut ntp, mut div) = (0.0, 0.0);
    for p in &items {
        ntp += scalar(
            &answer()
                .per_example(&[&p.sensitive])
                .unwrap()
                .get(0)
                .unwrap(),
        );
        let (a, b) = (log_odds(&p.sensitive), log_odds(&p.neutral));
        let sig = |d: f64| 1.0 / (1.0 + (-d).exp());
        div += (sig(a) - sig(b)) * (a - b);
    }
    let (ntp, div) = (ntp / 3.0, div / 3.0);
    assert!(div > 1e-6, "the toy pairs should disagree");
    for lambda in [0.0, 2.5] {
        let obj = FairLlmLoss::new(answer(), lambda);
        let (loss, tokens) = obj.loss(&refs).unwrap();
        let want = ntp + lambda * div;
        assert!(
            (scalar(&loss) - want).abs() < 1e-5,
            "lambda {lambda}: {} vs {want}",
            scalar(&loss)
        );
        let n: usize = items
            .iter()
            .map(|p| p.sensitive.ids.len() + p.neutral.ids.len())
            .sum();
        assert_eq!(tokens, n);
        let logged = obj.end_step();
        assert!((logged["ntp"] - ntp).abs() < 1e-5 && (logged["divergence"] - div).abs() < 1e-5);
    }
}

#[test]
fn gradients_of_every_lora_tensor_match_finite_differences() {
    let (tok, m, vars) = lora_model(true);
    let scorer = Scorer::new(&m, &tok, PromptFormat::Raw, AnswerSpace::None).unwrap();
    let items = pairs(&scorer, 2);
    let refs: Vec<&PairExample> = items.iter().collect();
    let obj = FairLlmLoss::new(AnswerLoss { scorer: &scorer }, 3.0);
    check_finite_differences(&vars, &|| obj.loss(&refs).unwrap().0, "fairllm");
}
