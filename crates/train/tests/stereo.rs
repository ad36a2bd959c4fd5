//! Paper B's fairness loss on the conventional paradigms (Table V's "same learning
//! objectives"): the loss is the mean answer NLL plus lambda times Eq. 13's surrogate,
//! both recomputed here prompt by prompt in f64 from each prompt's P(Yes); gradients of
//! LoRA, a soft prompt and p-tuning's encoder match finite differences; full fine-tuning
//! gets a gradient on every weight; a LoRA run leaves the base weights untouched.

mod common;
use common::{
    check_accumulated_step, check_finite_differences, lora_model, model, random_stereo,
    randomise_b, scalar, tok, toy_prompt, train_in_tempdir,
};
use fairrec_core::Rng;
use fairrec_lm::adapter::AdapterConfig;
use fairrec_lm::prompt::PromptInit;
use fairrec_lm::score::{AnswerSpace, PromptFormat, Scorer};
use fairrec_lm::tuning::Tuning;
use fairrec_lm::PromptHost;
use fairrec_train::engine::objective::{AnswerLoss, Example, Objective};
use fairrec_train::methods::stereo::{Stereo, StereoExample, StereoLoss};
use fairrec_train::{methods, TrainConfig};

/// Toy prompts with random tags: two groups, targets in group 0, 1 or neither, histories
/// of 1-6 items with random group counts.
fn examples(scorer: &Scorer, n: usize, seed: u64) -> Vec<StereoExample> {
    let mut rng = Rng::derive(seed, "stereo-test");
    (0..n)
        .map(|_| {
            let (text, label) = toy_prompt(&mut rng, 4);
            StereoExample {
                example: Example {
                    ids: scorer.encode(&[text]).unwrap().remove(0),
                    label,
                },
                stereo: random_stereo(&mut rng, 3, 2),
            }
        })
        .collect()
}

/// The surrogate in f64 from its definition: for each user group with history, and each
/// item group, |share of the group's targets among the soft Yes - share in the history|.
fn surrogate_by_hand(p: &[f64], xs: &[StereoExample]) -> f64 {
    let mut total = 0.0;
    for u in 0..2 {
        let of_u: Vec<(f64, &Stereo)> = p
            .iter()
            .zip(xs)
            .filter(|(_, x)| x.stereo.user_group == u)
            .map(|(p, x)| (*p, &x.stereo))
            .collect();
        let hist: f64 = of_u.iter().map(|(_, s)| s.history_len).sum();
        let yes: f64 = of_u.iter().map(|(p, _)| p).sum();
        if hist <= 0.0 || yes <= 0.0 {
            continue;
        }
        for g in 0..2 {
            let y_in: f64 = of_u
                .iter()
                .filter(|(_, s)| s.target_groups.contains(&g))
                .map(|(p, _)| p)
                .sum();
            let h_in: f64 = of_u.iter().map(|(_, s)| s.history_in_group[g]).sum();
            total += (y_in / yes - h_in / hist).abs();
        }
    }
    total
}

#[test]
fn the_loss_is_ntp_plus_lambda_times_the_surrogate_prompt_by_prompt() {
    let (tok, m, _) = lora_model(true);
    let scorer = Scorer::new(&m, &tok, PromptFormat::Raw, AnswerSpace::None).unwrap();
    let xs = examples(&scorer, 10, 1);
    let refs: Vec<&StereoExample> = xs.iter().collect();
    let answer = || AnswerLoss { scorer: &scorer };
    let (mut p, mut ntp) = (Vec::new(), 0.0);
    for x in &xs {
        let l = scorer
            .answer_logits(std::slice::from_ref(&x.example.ids), None)
            .unwrap()
            .0
            .to_vec2::<f32>()
            .unwrap()[0]
            .clone();
        p.push(1.0 / (1.0 + (-(l[0] - l[1]) as f64).exp()));
        ntp += scalar(&answer().per_example(&[&x.example]).unwrap().get(0).unwrap());
    }
    let ntp = ntp / xs.len() as f64;
    let fair = surrogate_by_hand(&p, &xs);
    assert!(fair > 1e-3, "the toy batch should be unfair: {fair}");
    for lambda in [0.0, 1.7] {
        let obj = StereoLoss::new(answer(), lambda, 2);
        let (loss, tokens) = obj.loss(&refs).unwrap();
        let want = ntp + lambda * fair;
        assert!(
            (scalar(&loss) - want).abs() < 1e-4,
            "lambda {lambda}: {} vs {want}",
            scalar(&loss)
        );
        assert_eq!(
            tokens,
            xs.iter().map(|x| x.example.ids.len()).sum::<usize>()
        );
        let logged = obj.end_step();
        assert!(
            (logged["ntp"] - ntp).abs() < 1e-5 && (logged["fairness"] - fair).abs() < 1e-4,
            "{logged:?} vs ntp {ntp}, fairness {fair}"
        );
    }
}

#[test]
fn gradients_of_lora_prompt_and_p_tuning_match_finite_differences() {
    let tok = tok();
    for paradigm in ["lora", "prompt-tuning", "p-tuning"] {
        let mut m = model(&tok);
        let vars = match paradigm {
            "lora" => {
                let set = m
                    .attach_adapters(&AdapterConfig::lora(2, 4.0, &["q_proj", "v_proj"]), 2)
                    .unwrap();
                randomise_b(&set.named_vars());
                set.named_vars()
            }
            "prompt-tuning" => m
                .attach_soft_prompt(
                    &tok,
                    3,
                    fairrec_lm::prompt::PromptShape::ONE,
                    &PromptInit::Random,
                    3,
                )
                .unwrap()
                .named_vars(),
            _ => m
                .attach_p_tuning(3, fairrec_lm::prompt::PromptShape::ONE, 8, 4)
                .unwrap()
                .named_vars(),
        };
        let scorer = Scorer::new(&m, &tok, PromptFormat::Raw, AnswerSpace::None).unwrap();
        let xs = examples(&scorer, 6, 2);
        let refs: Vec<&StereoExample> = xs.iter().collect();
        // A large lambda, so that the surrogate's part of the gradient is not lost in NTP's.
        let obj = StereoLoss::new(AnswerLoss { scorer: &scorer }, 2.0, 2);
        let grads = obj.loss(&refs).unwrap().0.backward().unwrap();
        for (name, v) in &vars {
            assert!(
                grads.get(v.as_tensor()).is_some(),
                "{paradigm}: no gradient for {name}"
            );
        }
        // p-tuning's encoder is Linear (mlp_head.0), ReLU, Linear (.2), ReLU, Linear (.4):
        // finite differences across a ReLU's kink are meaningless, so they are taken on the
        // last layer (the encoder's own gradients are checked in fairrec-lm's p_tuning tests).
        let smooth: Vec<_> = vars
            .into_iter()
            .filter(|(n, _)| paradigm != "p-tuning" || n.contains("mlp_head.4"))
            .collect();
        assert!(!smooth.is_empty(), "{paradigm}: nothing to check");
        check_finite_differences(&smooth, &|| obj.loss(&refs).unwrap().0, paradigm);
    }
}

#[test]
fn full_tuning_gets_the_gradient_of_every_weight_and_lora_leaves_the_base_alone() {
    let tok = tok();
    let mut m = model(&tok);
    let vars = m.make_trainable().unwrap();
    let scorer = Scorer::new(&m, &tok, PromptFormat::Raw, AnswerSpace::None).unwrap();
    let xs = examples(&scorer, 6, 3);
    let refs: Vec<&StereoExample> = xs.iter().collect();
    let obj = StereoLoss::new(AnswerLoss { scorer: &scorer }, 2.0, 2);
    let grads = obj.loss(&refs).unwrap().0.backward().unwrap();
    for (name, v) in &vars {
        assert!(grads.get(v.as_tensor()).is_some(), "no gradient for {name}");
    }
    drop(scorer);

    let mut m = model(&tok);
    let base: Vec<Vec<f32>> = m
        .named_tensors_mut()
        .into_iter()
        .map(|(_, t)| t.flatten_all().unwrap().to_vec1::<f32>().unwrap())
        .collect();
    let c = TrainConfig {
        lr: 1e-2,
        epochs: 2,
        batch_size: 8,
        eval: false,
        fairness_weight: 1.0,
        ..TrainConfig::default()
    };
    let tuning = Tuning::Adapters(m.attach_adapters(&c.lora, 0).unwrap());
    let scorer = Scorer::new(&m, &tok, PromptFormat::Raw, AnswerSpace::None).unwrap();
    let train_set = examples(&scorer, 32, 4);
    let objective = StereoLoss::new(AnswerLoss { scorer: &scorer }, c.fairness_weight, 2);
    let save = |dir: &std::path::Path| methods::save(&tuning, &m, &tok, "tiny", &c, dir);
    let (summary, log, _d) = train_in_tempdir(&c, &tuning, &objective, &train_set, &scorer, &save);
    assert_eq!(summary.steps, 8);
    assert!(
        log.contains("\"fairness\"") && log.contains("\"ntp\""),
        "{log}"
    );
    let now: Vec<Vec<f32>> = m
        .named_tensors_mut()
        .into_iter()
        .map(|(_, t)| t.flatten_all().unwrap().to_vec1::<f32>().unwrap())
        .collect();
    assert_eq!(
        base, now,
        "training LoRA with the fairness loss changed a base weight"
    );
}

#[test]
fn an_accumulated_step_has_the_loss_and_gradient_of_one_batch_of_its_examples() {
    // Eq. 13 over a step of 8 examples in micro-batches of 2 (the two-pass surrogate) must
    // give what one batch of the 8 gives: the loss, and the gradient of every trainable
    // tensor (and so its finite differences, checked on the one-batch form above).
    let tok = tok();
    let mut m = model(&tok);
    let vars = m
        .attach_soft_prompt(
            &tok,
            3,
            fairrec_lm::prompt::PromptShape::ONE,
            &PromptInit::Random,
            7,
        )
        .unwrap()
        .named_vars();
    let scorer = Scorer::new(&m, &tok, PromptFormat::Raw, AnswerSpace::None).unwrap();
    let xs = examples(&scorer, 8, 5);
    let refs: Vec<&StereoExample> = xs.iter().collect();
    let obj = StereoLoss::new(AnswerLoss { scorer: &scorer }, 2.0, 2);
    let whole = obj.loss(&refs).unwrap().0;
    let whole_fair = obj.end_step()["fairness"];
    let want = whole.backward().unwrap();

    let value = check_accumulated_step(&obj, &refs, 2, &vars, &want, "prompt tuning");
    let logged = obj.end_step();
    assert!(
        (logged["fairness"] - whole_fair).abs() < 1e-5,
        "step surrogate {} vs one batch {whole_fair}",
        logged["fairness"]
    );
    let whole = f64::from(whole.to_scalar::<f32>().unwrap());
    assert!((value - whole).abs() < 1e-5, "loss {value} vs {whole}");
    // Micro-batches of 2 on their own (the surrogate per micro-batch) differ: the step's
    // counts are what changed.
    let per_mb: f64 = refs
        .chunks(2)
        .map(|mb| {
            let l = obj.loss(mb).unwrap().0;
            f64::from(l.to_scalar::<f32>().unwrap()) * mb.len() as f64 / refs.len() as f64
        })
        .sum();
    assert!((per_mb - whole).abs() > 1e-4, "{per_mb} vs {whole}");
}
