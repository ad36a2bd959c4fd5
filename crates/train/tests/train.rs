//! The trainer on a tiny random model: learning, frozen base, determinism, gradient
//! accumulation, the NaN guard, and the methods' gradients against finite differences.

use candle_core::Device;
use fairrec_core::Rng;
use fairrec_lm::score::{AnswerSpace, PromptFormat, Scorer};
use fairrec_lm::tuning::Tuning;
use fairrec_lm::Llama;
use fairrec_train::engine::objective::{AnswerLoss, Example, Objective};
use fairrec_train::engine::trainer::{evaluate, predict, train, Run, Summary};
use fairrec_train::{methods, Method, TrainConfig, TrainError};
use std::path::Path;

mod common;
use common::{
    check_finite_differences, check_gradient_of, model, randomise_b, scalar, tok, toy_prompt,
};

/// Prompts of random letters ending in `a` (Yes) or `b` (No).
fn examples(scorer: &Scorer, n: usize, seed: u64) -> Vec<Example> {
    let mut rng = Rng::new(seed);
    let prompts: Vec<(String, bool)> = (0..n).map(|_| toy_prompt(&mut rng, 6)).collect();
    let ids = scorer
        .encode(&prompts.iter().map(|p| p.0.clone()).collect::<Vec<_>>())
        .unwrap();
    ids.into_iter()
        .zip(prompts)
        .map(|(ids, (_, label))| Example { ids, label })
        .collect()
}

fn cfg(method: Method) -> TrainConfig {
    let mut c = TrainConfig {
        method,
        lr: 1e-2,
        epochs: 3,
        batch_size: 8,
        warmup_ratio: 0.1,
        checkpoint_every: 2,
        ..TrainConfig::default()
    };
    c.lora.targets = fairrec_lm::adapter::TARGET_MODULES
        .map(String::from)
        .to_vec();
    c
}

/// Train `objective` on `sets` (train, valid) into `dir`, not resuming.
fn fit<O: Objective<Item = Example>>(
    c: &TrainConfig,
    dir: &Path,
    tuning: &Tuning,
    objective: &O,
    scorer: &Scorer,
    (train_set, valid): (&[Example], &[Example]),
    save: &dyn Fn(&Path) -> fairrec_train::Result<()>,
) -> Result<Summary, TrainError> {
    train(
        Run {
            cfg: c,
            dir,
            tuning,
            objective,
            train: train_set,
            valid,
            scorer,
            save,
            resume: false,
        },
        &mut |_| {},
    )
}

/// Train `cfg` into `dir`; returns the summary, the model (after training) and its
/// base-weight snapshot from before.
fn run(c: &TrainConfig, dir: &Path) -> Result<(Summary, Vec<f32>, Vec<f32>), TrainError> {
    let tok = tok();
    let mut m = model(&tok);
    let snapshot = |m: &mut Llama| -> Vec<f32> {
        m.named_tensors_mut()
            .into_iter()
            .flat_map(|(_, t)| t.flatten_all().unwrap().to_vec1::<f32>().unwrap())
            .collect()
    };
    let before = snapshot(&mut m);
    let tuning = methods::setup(&mut m, &tok, c)?;
    let scorer = Scorer::new(&m, &tok, PromptFormat::Raw, AnswerSpace::None)?;
    let tr = examples(&scorer, 96, 1);
    let va = examples(&scorer, 48, 2);
    let objective = AnswerLoss { scorer: &scorer };
    let save = |d: &Path| methods::save(&tuning, &m, &tok, "tiny", c, d);
    let s = fit(c, dir, &tuning, &objective, &scorer, (&tr, &va), &save)?;
    drop(scorer);
    let after = snapshot(&mut m);
    Ok((s, before, after))
}

fn adapter_bytes(dir: &Path) -> Vec<u8> {
    std::fs::read(dir.join("adapter/adapter_model.safetensors")).unwrap()
}

#[test]
fn lora_learns_the_task_and_leaves_the_base_bit_identical() {
    let d = tempfile::tempdir().unwrap();
    let c = cfg(Method::Lora);
    let (s, before, after) = run(&c, d.path()).unwrap();
    assert_eq!(before, after, "a frozen base weight changed");
    let aucs: Vec<f64> = s.evals.iter().map(|e| e.auc.unwrap()).collect();
    assert_eq!(aucs.len(), 3);
    assert!(aucs[2] > 0.9, "valid AUC per epoch {aucs:?}");
    // the log has one line per step and one per epoch's validation
    let log = std::fs::read_to_string(d.path().join("train_log.jsonl")).unwrap();
    assert_eq!(log.lines().count() as u64, s.steps + 3);
    let losses: Vec<f64> = log
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok()?["loss"].as_f64())
        .collect();
    let k = losses.len() / 3;
    let mean = |xs: &[f64]| xs.iter().sum::<f64>() / xs.len() as f64;
    assert!(
        mean(&losses[2 * k..]) < 0.5 * mean(&losses[..k]),
        "{losses:?}"
    );
    assert!(d.path().join("best/adapter_config.json").exists());
}

#[test]
fn lora_learns_the_task_with_adafactor() {
    let d = tempfile::tempdir().unwrap();
    let mut c = cfg(Method::Lora);
    c.adafactor = Some(fairrec_train::engine::optim::AdafactorConfig::default());
    let (s, before, after) = run(&c, d.path()).unwrap();
    assert_eq!(before, after, "a frozen base weight changed");
    let aucs: Vec<f64> = s.evals.iter().map(|e| e.auc.unwrap()).collect();
    assert!(aucs[2] > 0.9, "valid AUC per epoch {aucs:?}");
    // and the run differs from AdamW's
    let a = tempfile::tempdir().unwrap();
    run(&cfg(Method::Lora), a.path()).unwrap();
    assert_ne!(adapter_bytes(a.path()), adapter_bytes(d.path()));
}

#[test]
fn same_seed_same_bytes_other_seed_other_bytes() {
    let (a, b, c) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let mut k = cfg(Method::Lora);
    k.epochs = 1;
    k.eval = false;
    run(&k, a.path()).unwrap();
    run(&k, b.path()).unwrap();
    assert_eq!(adapter_bytes(a.path()), adapter_bytes(b.path()));
    k.seed = 1;
    run(&k, c.path()).unwrap();
    assert_ne!(adapter_bytes(a.path()), adapter_bytes(c.path()));
}

fn load_adapter(dir: &Path) -> Vec<f32> {
    let t =
        candle_core::safetensors::load(dir.join("adapter/adapter_model.safetensors"), &Device::Cpu)
            .unwrap();
    let mut keys: Vec<_> = t.keys().cloned().collect();
    keys.sort();
    keys.iter()
        .flat_map(|k| t[k].flatten_all().unwrap().to_vec1::<f32>().unwrap())
        .collect()
}

#[test]
fn gradient_accumulation_equals_the_big_batch() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut k = cfg(Method::Lora);
    k.epochs = 1;
    k.eval = false;
    k.lora.dropout = 0.0;
    run(&k, a.path()).unwrap();
    k.batch_size = 4;
    k.grad_accum = 2;
    run(&k, b.path()).unwrap();
    let (x, y) = (load_adapter(a.path()), load_adapter(b.path()));
    let d = x
        .iter()
        .zip(&y)
        .map(|(p, q)| (p - q).abs())
        .fold(0f32, f32::max);
    assert!(d < 1e-4, "max diff {d}");
    assert!(x.iter().any(|v| v.abs() > 1e-3));
}

/// Accumulation weighs each micro-batch by its share of the step's examples: with unequal
/// micro-batches (96 examples in steps of 10: the last step is 5 + 1) the accumulated run
/// logs the big batch's loss and gradient norm at every step (a sum instead of a mean, or
/// equal weights, would change them) and ends at the same adapter.
#[test]
fn gradient_accumulation_weighs_unequal_micro_batches_as_the_big_batch() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut k = cfg(Method::Lora);
    k.epochs = 1;
    k.eval = false;
    k.lora.dropout = 0.0;
    k.batch_size = 10;
    run(&k, a.path()).unwrap();
    k.batch_size = 5;
    k.grad_accum = 2;
    run(&k, b.path()).unwrap();
    let steps = |dir: &Path| -> Vec<(f64, f64)> {
        std::fs::read_to_string(dir.join("train_log.jsonl"))
            .unwrap()
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| v.get("step").is_some())
            .map(|v| {
                (
                    v["loss"].as_f64().unwrap(),
                    v["grad_norm"].as_f64().unwrap(),
                )
            })
            .collect()
    };
    let (x, y) = (steps(a.path()), steps(b.path()));
    assert_eq!(x.len(), 10);
    assert_eq!(x.len(), y.len());
    for (i, ((l1, g1), (l2, g2))) in x.iter().zip(&y).enumerate() {
        assert!(
            (l1 - l2).abs() < 1e-4 * l1.abs().max(1.0),
            "step {i}: loss {l1} vs {l2}"
        );
        assert!(
            (g1 - g2).abs() < 1e-3 * g1.abs().max(1e-3),
            "step {i}: grad norm {g1} vs {g2}"
        );
    }
    let (p, q) = (load_adapter(a.path()), load_adapter(b.path()));
    let d = p
        .iter()
        .zip(&q)
        .map(|(u, v)| (u - v).abs())
        .fold(0f32, f32::max);
    assert!(d < 1e-4, "max diff {d}");
}

#[test]
fn non_finite_loss_stops_with_a_clear_error_and_keeps_the_last_good_checkpoint() {
    let d = tempfile::tempdir().unwrap();
    let mut k = cfg(Method::Lora);
    k.lr = 1e30;
    k.max_grad_norm = 0.0;
    k.warmup_ratio = 0.0;
    k.checkpoint_every = 1;
    let e = run(&k, d.path()).unwrap_err();
    assert!(matches!(e, TrainError::NonFinite { .. }), "{e}");
    let msg = e.to_string();
    assert!(msg.contains("non-finite") && msg.contains("step"), "{msg}");
    // whatever checkpoint exists holds finite values only
    let ck = d.path().join("checkpoint/trainable.safetensors");
    if ck.exists() {
        for (k, t) in candle_core::safetensors::load(&ck, &Device::Cpu).unwrap() {
            let v = t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            assert!(
                v.iter().all(|x| x.is_finite()),
                "{k} in the checkpoint is not finite"
            );
        }
    }
    assert!(!d.path().join("adapter").exists());
}

/// Which stop of the NaN guard a [`Poisoned`] objective trips.
#[derive(Clone, Copy, Debug)]
enum Poison {
    /// The loss is NaN.
    Loss,
    /// The loss is finite, its gradient is not (`sqrt(|p - p|)` at 0).
    Gradient,
    /// A trained weight overflows the parameter norm (set to 1e30; its square is past f32).
    Weight,
}

/// `L_LLM` plus a probe variable that only carries the poison: at optimizer step `at`
/// (0-based) the step's first micro-batch is poisoned as `poison` says.
struct Poisoned<'a> {
    answer: AnswerLoss<'a>,
    probe: candle_core::Var,
    at: u64,
    poison: Poison,
    steps: std::cell::Cell<u64>,
}

impl Objective for Poisoned<'_> {
    type Item = Example;

    fn loss(&self, items: &[&Example]) -> fairrec_train::Result<(candle_core::Tensor, usize)> {
        let (loss, tokens) = self.answer.loss(items)?;
        let p = self.probe.as_tensor();
        let poisoned = self.steps.get() == self.at;
        let extra = match self.poison {
            Poison::Gradient if poisoned => (p - p.detach())?.abs()?.sqrt()?.sum_all()?,
            Poison::Weight if poisoned => {
                self.probe
                    .set(&candle_core::Tensor::new(&[1e30f32], &Device::Cpu)?)?;
                (p * 1e-30)?.sum_all()?
            }
            _ => (p * 1e-30)?.sum_all()?,
        };
        let loss = (loss + extra)?;
        let loss = match self.poison {
            Poison::Loss if poisoned => (loss * f64::NAN)?,
            _ => loss,
        };
        Ok((loss, tokens))
    }

    fn end_step(&self) -> std::collections::BTreeMap<String, f64> {
        self.steps.set(self.steps.get() + 1);
        Default::default()
    }

    fn trained_vars(&self) -> Vec<(String, candle_core::Var)> {
        vec![("probe".into(), self.probe.clone())]
    }
}

/// Each stop of the NaN guard (loss, gradient, weight), tripped at step 3 after
/// checkpoints exist: the run stops with an error naming what and the exact step, keeps
/// the last good checkpoint (step 3, every value finite), and writes no adapter.
#[test]
fn each_nan_guard_stops_at_the_poisoned_step_and_keeps_finite_checkpoints() {
    for (poison, what) in [
        (Poison::Loss, "loss"),
        (Poison::Gradient, "gradient norm"),
        (Poison::Weight, "parameter norm"),
    ] {
        let d = tempfile::tempdir().unwrap();
        let mut c = cfg(Method::Lora);
        c.checkpoint_every = 1;
        c.eval = false;
        let tok = tok();
        let mut m = model(&tok);
        let tuning = methods::setup(&mut m, &tok, &c).unwrap();
        let scorer = Scorer::new(&m, &tok, PromptFormat::Raw, AnswerSpace::None).unwrap();
        let tr = examples(&scorer, 64, 1);
        let va = examples(&scorer, 8, 2);
        let objective = Poisoned {
            answer: AnswerLoss { scorer: &scorer },
            probe: candle_core::Var::zeros(1, candle_core::DType::F32, &Device::Cpu).unwrap(),
            at: 3,
            poison,
            steps: std::cell::Cell::new(0),
        };
        let save = |dir: &Path| methods::save(&tuning, &m, &tok, "tiny", &c, dir);
        let e = fit(
            &c,
            d.path(),
            &tuning,
            &objective,
            &scorer,
            (&tr, &va),
            &save,
        )
        .unwrap_err();
        let TrainError::NonFinite { what: w, step, .. } = &e else {
            panic!("{poison:?}: {e}");
        };
        assert_eq!((*w, *step), (what, 3), "{poison:?}: {e}");
        assert!(
            e.to_string().contains("The last good checkpoint is kept"),
            "{e}"
        );
        let ck = d.path().join("checkpoint");
        let state: serde_json::Value =
            serde_json::from_slice(&std::fs::read(ck.join("state.json")).unwrap()).unwrap();
        assert_eq!(state["loop"]["step"], 3, "{poison:?}");
        for (k, t) in
            candle_core::safetensors::load(ck.join("trainable.safetensors"), &Device::Cpu).unwrap()
        {
            let v = t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            assert!(
                v.iter().all(|x| x.is_finite() && x.abs() < 1e6),
                "{poison:?}: {k}"
            );
        }
        assert!(!d.path().join("adapter").exists(), "{poison:?}");
        let log = std::fs::read_to_string(d.path().join("train_log.jsonl")).unwrap();
        assert_eq!(
            log.lines().filter(|l| l.contains("\"step\"")).count(),
            3,
            "{poison:?}"
        );
    }
}

#[test]
fn prompt_tuning_and_full_fine_tuning_learn() {
    for m in [Method::PromptTuning, Method::Full] {
        let d = tempfile::tempdir().unwrap();
        let mut c = cfg(m);
        c.lr = if m == Method::Full { 3e-3 } else { 3e-2 };
        c.prompt_init = fairrec_lm::prompt::PromptInit::SampleVocab;
        let (s, before, after) = run(&c, d.path()).unwrap();
        let aucs: Vec<f64> = s.evals.iter().map(|e| e.auc.unwrap()).collect();
        assert!(aucs[2] > 0.75, "{m:?}: valid AUC per epoch {aucs:?}");
        if m == Method::PromptTuning {
            assert_eq!(before, after, "prompt tuning changed a base weight");
            assert!(d.path().join("adapter/adapter_model.safetensors").exists());
        } else {
            assert_ne!(before, after);
            // the saved model directory loads and scores like the trained model
            let loaded = fairrec_lm::load::load_hf_dir(
                &d.path().join("adapter"),
                &Device::Cpu,
                candle_core::DType::F32,
            )
            .unwrap();
            assert_eq!(loaded.model.cfg, model(&tok()).cfg);
        }
    }
}

/// Central finite differences of the answer loss against the analytic gradient.
fn check_gradients(m: &Method) {
    let tok = tok();
    let mut model = model(&tok);
    let mut c = cfg(*m);
    c.lora.dropout = 0.0;
    c.prompt_init = fairrec_lm::prompt::PromptInit::Random;
    let tuning = methods::setup(&mut model, &tok, &c).unwrap();
    if let Tuning::Adapters(set) = &tuning {
        // move B away from zero so that A's gradient is not zero
        for (k, v) in set.named_vars() {
            if k.contains("lora_B") {
                v.set(&(v.as_tensor().randn_like(0.0, 0.1).unwrap()))
                    .unwrap();
            }
        }
    }
    let scorer = Scorer::new(&model, &tok, PromptFormat::Raw, AnswerSpace::None).unwrap();
    let xs = examples(&scorer, 3, 9);
    let items: Vec<&Example> = xs.iter().collect();
    let obj = AnswerLoss { scorer: &scorer };
    check_finite_differences(
        &tuning.named_vars(),
        &|| obj.loss(&items).unwrap().0,
        &format!("{m:?}"),
    );
}

#[test]
fn gradients_match_finite_differences_for_every_method() {
    for m in [Method::Lora, Method::PromptTuning, Method::Full] {
        check_gradients(&m);
    }
}

#[test]
fn evaluation_is_independent_of_batching() {
    let tok = tok();
    let m = model(&tok);
    let scorer = Scorer::new(&m, &tok, PromptFormat::Raw, AnswerSpace::None).unwrap();
    let xs = examples(&scorer, 20, 3);
    let p1 = predict(&scorer, None, &xs, 1).unwrap();
    let p7 = predict(&scorer, None, &xs, 7).unwrap();
    for (a, b) in p1.iter().zip(&p7) {
        assert!((a - b).abs() < 1e-5);
    }
    let e = evaluate(&p1, &xs, None);
    assert_eq!(e.n, 20);
    assert!(e.auc.is_some());
}

/// The finite-difference check can fail: a gradient off by a factor of 2 (the loss's
/// backward halved against its value) is caught.
#[test]
#[should_panic(expected = "finite difference")]
fn the_gradient_check_catches_a_gradient_off_by_a_factor_of_two() {
    let tok = tok();
    let mut m = model(&tok);
    let c = cfg(Method::Lora);
    let tuning = methods::setup(&mut m, &tok, &c).unwrap();
    let vars = tuning.named_vars();
    randomise_b(&vars);
    let scorer = Scorer::new(&m, &tok, PromptFormat::Raw, AnswerSpace::None).unwrap();
    let xs = examples(&scorer, 8, 3);
    let refs: Vec<&Example> = xs.iter().collect();
    let answer = AnswerLoss { scorer: &scorer };
    check_gradient_of(
        &vars,
        &|| (answer.loss(&refs).unwrap().0 * 0.5).unwrap(),
        &|| scalar(&answer.loss(&refs).unwrap().0),
        "halved",
    );
}
