//! UP5: the gradient-reversal layer, the loss against NTP and the discriminator's
//! cross-entropy computed by hand, and the adversarial gradients: the discriminator
//! descends its cross-entropy, the prompt descends `NTP - lambda CE` (finite differences).

mod common;
use candle_core::{Device, Tensor, Var};
use common::{check_finite_differences, check_gradient_of, model, scalar, tok, toy_prompt};
use fairrec_core::Rng;
use fairrec_lm::prompt::PromptInit;
use fairrec_lm::score::{AnswerSpace, PromptFormat, Scorer};
use fairrec_lm::PromptHost;
use fairrec_train::engine::objective::{answer_nll, AnswerLoss, Example, Objective};
use fairrec_train::methods::up5::{reverse_gradient, Up5Example, Up5Loss};

#[test]
fn the_reversal_is_the_identity_forward_and_flips_the_gradient() {
    let x = Var::new(&[0.5f32, -1.0, 2.0], &Device::Cpu).unwrap();
    let c = Tensor::new(&[3.0f32, 1.0, -2.0], &Device::Cpu).unwrap();
    let y = reverse_gradient(x.as_tensor(), 0.7).unwrap();
    assert_eq!(y.to_vec1::<f32>().unwrap(), vec![0.5, -1.0, 2.0]);
    let g = (y * &c).unwrap().sum_all().unwrap().backward().unwrap();
    let g = g.get(x.as_tensor()).unwrap().to_vec1::<f32>().unwrap();
    for (gi, ci) in g.iter().zip([3.0f32, 1.0, -2.0]) {
        assert!((gi + 0.7 * ci).abs() < 1e-6, "{g:?}");
    }
}

fn examples(scorer: &Scorer, n: usize) -> Vec<Up5Example> {
    let mut rng = Rng::derive(2, "up5-test");
    (0..n)
        .map(|i| {
            let (p, label) = toy_prompt(&mut rng, 4);
            Up5Example {
                example: Example {
                    ids: scorer.encode(&[p]).unwrap().remove(0),
                    label,
                },
                group: i % 2,
            }
        })
        .collect()
}

/// `(NTP, CE)` of a batch (scalar tensors), each computed on its own, without reversal.
fn parts(obj: &Up5Loss, items: &[&Up5Example]) -> (Tensor, Tensor) {
    let ids: Vec<Vec<u32>> = items.iter().map(|e| e.example.ids.clone()).collect();
    let labels: Vec<bool> = items.iter().map(|e| e.example.label).collect();
    // the final state at each prompt's last token
    let last_token = fairrec_lm::pool::Capture {
        layer: None,
        pooling: fairrec_lm::pool::Pooling::Last,
        stack: fairrec_lm::pool::Stack::Decoder,
    };
    let (nll, h, _) = obj.answer.forward(&ids, &labels, Some(last_token)).unwrap();
    let h = h.unwrap();
    let groups: Vec<u32> = items.iter().map(|e| e.group as u32).collect();
    let ce = answer_nll(&obj.discriminate(&h).unwrap(), &groups).unwrap();
    (nll.mean_all().unwrap(), ce.mean_all().unwrap())
}

#[test]
fn loss_and_adversarial_gradients() {
    let tok = tok();
    let mut m = model(&tok);
    let prompt = m
        .attach_soft_prompt(
            &tok,
            3,
            fairrec_lm::prompt::PromptShape::ONE,
            &PromptInit::Random,
            4,
        )
        .unwrap();
    let scorer = Scorer::new(&m, &tok, PromptFormat::Raw, AnswerSpace::None).unwrap();
    let items = examples(&scorer, 4);
    let refs: Vec<&Up5Example> = items.iter().collect();
    let hidden = m.cfg.hidden_size;
    // A discriminator far from 0 so that the adversarial term moves the prompt visibly.
    let obj = Up5Loss::new(AnswerLoss { scorer: &scorer }, 0.5, 2, hidden, 1).unwrap();
    obj.weight
        .set(&(obj.weight.as_tensor() * 50.0).unwrap())
        .unwrap();
    let (ntp, ce) = parts(&obj, &refs);
    let (ntp, ce) = (scalar(&ntp), scalar(&ce));
    let (loss, _) = obj.loss(&refs).unwrap();
    assert!(
        (scalar(&loss) - (ntp + ce)).abs() < 1e-5,
        "{} vs {}",
        scalar(&loss),
        ntp + ce
    );
    let logged = obj.end_step();
    assert!((logged["adversary"] - ce).abs() < 1e-5 && (logged["ntp"] - ntp).abs() < 1e-5);
    assert!((0.0..=1.0).contains(&logged["adversary_accuracy"]));
    // The discriminator's gradient is CE's (NTP does not depend on it).
    check_finite_differences(
        &obj.trained_vars(),
        &|| obj.loss(&refs).unwrap().0,
        "discriminator",
    );
    // The prompt's gradient is that of NTP - lambda CE, and CE depends on the prompt.
    let prompt_var = vec![("prompt_embeddings".to_string(), prompt.embeddings.clone())];
    let value = || {
        let (n, c) = parts(&obj, &refs);
        scalar(&n) - 0.5 * scalar(&c)
    };
    check_gradient_of(
        &prompt_var,
        &|| obj.loss(&refs).unwrap().0,
        &value,
        "prompt",
    );
    let g = parts(&obj, &refs).1.backward().unwrap();
    let g = g.get(prompt.embeddings.as_tensor()).unwrap();
    let norm = scalar(&g.sqr().unwrap().sum_all().unwrap());
    assert!(
        norm > 1e-8,
        "the adversarial term should depend on the prompt"
    );
}
