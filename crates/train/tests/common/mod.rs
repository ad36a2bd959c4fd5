//! Helpers shared by the trainer's tests: a tiny model and a finite-difference check.
#![allow(dead_code)]

use candle_core::{Device, Tensor, Var};
use fairrec_lm::random::random_model;
use fairrec_lm::tokenizer::Tok;
use fairrec_lm::{Llama, LlamaConfig};

pub fn tok() -> Tok {
    Tok::bytes_only(&["<|eos|>"], None).unwrap()
}

pub fn model(tok: &Tok) -> Llama {
    random_model(&LlamaConfig::tiny(tok.vocab_size()), 5, 0.2, &Device::Cpu).unwrap()
}

/// The tiny model with a rank-4 LoRA (alpha 8) on `q_proj` and `v_proj`, and the adapter's
/// variables; with `random_b`, seeded non-zero `lora_B` ([`randomise_b`]).
pub fn lora_model(random_b: bool) -> (Tok, Llama, Vec<(String, Var)>) {
    let tok = tok();
    let mut m = model(&tok);
    let lora = fairrec_lm::adapter::AdapterConfig::lora(4, 8.0, &["q_proj", "v_proj"]);
    let vars = m.attach_adapters(&lora, 1).unwrap().named_vars();
    if random_b {
        randomise_b(&vars);
    }
    (tok, m, vars)
}

/// A toy prompt: random letters ending in `a` (label Yes) or `b` (No), of
/// `3..3 + spread` letters before the answer letter.
pub fn toy_prompt(rng: &mut fairrec_core::Rng, spread: u64) -> (String, bool) {
    let len = 3 + rng.below(spread) as usize;
    let mut s: String = (0..len)
        .map(|_| (b'c' + rng.below(20) as u8) as char)
        .collect();
    let label = rng.below(2) == 0;
    s.push(if label { 'a' } else { 'b' });
    (s, label)
}

pub fn scalar(t: &Tensor) -> f64 {
    t.to_dtype(candle_core::DType::F64)
        .unwrap()
        .to_scalar()
        .unwrap()
}

/// Central finite differences of `loss` against its analytic gradient, for three entries
/// of every fourth tensor of `vars` (every tensor must get a gradient).
pub fn check_finite_differences(vars: &[(String, Var)], loss: &dyn Fn() -> Tensor, label: &str) {
    check_gradient_of(vars, loss, &|| scalar(&loss()), label);
}

/// As [`check_finite_differences`], with the finite differences taken of `value` (what the
/// gradient of `loss` should be the gradient of, e.g. through a gradient reversal).
pub fn check_gradient_of(
    vars: &[(String, Var)],
    loss: &dyn Fn() -> Tensor,
    value: &dyn Fn() -> f64,
    label: &str,
) {
    let grads = loss().backward().unwrap();
    for (name, _) in vars {
        let v = &vars.iter().find(|(n, _)| n == name).unwrap().1;
        assert!(
            grads.get(v.as_tensor()).is_some(),
            "{label}: no gradient reached {name}"
        );
    }
    // Every tensor, at its three largest gradient entries: where a wrong factor or a dropped
    // term shows. The largest must be at least 3x the tolerance's floor (1e-3), so that a
    // gradient off by a factor of 2 fails (|fd - g| = |g| > 1e-3 + 3 % of 2|g|).
    for (name, v) in vars {
        let g = grads
            .get(v.as_tensor())
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let base = v
            .as_tensor()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let mut order: Vec<usize> = (0..g.len()).collect();
        order.sort_by(|&a, &b| g[b].abs().total_cmp(&g[a].abs()));
        let largest = f64::from(g[order[0]].abs());
        assert!(
            largest > 3e-3,
            "{label} {name}: the largest gradient entry is {largest:e}, too small to compare"
        );
        for &idx in order.iter().take(3) {
            let eps = 1e-3f32;
            let set = |delta: f32| {
                let mut w = base.clone();
                w[idx] += delta;
                v.set(&Tensor::from_vec(w, v.shape(), &Device::Cpu).unwrap())
                    .unwrap();
            };
            set(eps);
            let up = value();
            set(-eps);
            let down = value();
            set(0.0);
            let fd = (up - down) / (2.0 * eps as f64);
            let an = g[idx] as f64;
            assert!(
                (fd - an).abs() < 1e-3 + 0.03 * an.abs().max(fd.abs()),
                "{label} {name}[{idx}]: finite difference {fd} vs gradient {an}"
            );
        }
    }
}

/// Seeded non-zero `lora_B` tensors (a fresh adapter is the identity, where `A` gets no
/// gradient).
pub fn randomise_b(vars: &[(String, Var)]) {
    let mut rng = fairrec_core::Rng::new(11);
    for (k, v) in vars {
        if k.contains("lora_B") {
            let w: Vec<f32> = (0..v.elem_count())
                .map(|_| (0.1 * rng.normal()) as f32)
                .collect();
            v.set(&Tensor::from_vec(w, v.shape(), &Device::Cpu).unwrap())
                .unwrap();
        }
    }
}

/// Train `objective` on `train_set` with `c` (no validation set) in a fresh directory;
/// returns the summary, the step log (`train_log.jsonl`) and the directory.
pub fn train_in_tempdir<O: fairrec_train::engine::objective::Objective>(
    c: &fairrec_train::TrainConfig,
    tuning: &fairrec_lm::tuning::Tuning,
    objective: &O,
    train_set: &[O::Item],
    scorer: &fairrec_lm::score::Scorer,
    save: &dyn Fn(&std::path::Path) -> fairrec_train::Result<()>,
) -> (
    fairrec_train::engine::trainer::Summary,
    String,
    tempfile::TempDir,
) {
    let d = tempfile::tempdir().unwrap();
    let summary = fairrec_train::engine::trainer::train(
        fairrec_train::engine::trainer::Run {
            cfg: c,
            dir: d.path(),
            tuning,
            objective,
            train: train_set,
            valid: &[],
            scorer,
            save,
            resume: false,
        },
        &mut |_| {},
    )
    .unwrap();
    let log = std::fs::read_to_string(d.path().join("train_log.jsonl")).unwrap();
    (summary, log, d)
}

/// Random stereotype tags for two groups: the target in group 0, 1 or neither, history
/// counts below `max_in_group` per group and up to `extra - 1` neutral items beyond one.
pub fn random_stereo(
    rng: &mut fairrec_core::Rng,
    max_in_group: u64,
    extra: u64,
) -> fairrec_train::methods::stereo::Stereo {
    let target_groups = match rng.below(3) {
        0 => vec![0],
        1 => vec![1],
        _ => vec![],
    };
    let hist = [
        rng.below(max_in_group) as f64,
        rng.below(max_in_group) as f64,
    ];
    fairrec_train::methods::stereo::Stereo {
        user_group: rng.below(2) as usize,
        target_groups,
        history_in_group: hist.to_vec(),
        history_len: hist[0] + hist[1] + 1.0 + rng.below(extra) as f64,
    }
}

/// One optimizer step of `refs` in micro-batches of `micro` as the trainer runs it
/// (`begin_step`, then each micro-batch's loss weighted by its share): asserts that every
/// tensor of `vars` gets the gradient `want` (one batch of `refs`) within 1e-4 of its
/// scale, and returns the step's loss.
pub fn check_accumulated_step<O: fairrec_train::engine::objective::Objective>(
    obj: &O,
    refs: &[&O::Item],
    micro: usize,
    vars: &[(String, candle_core::Var)],
    want: &candle_core::backprop::GradStore,
    what: &str,
) -> f64 {
    obj.begin_step(refs, micro).unwrap();
    let mut value = 0.0;
    let mut grads: Vec<Option<candle_core::Tensor>> = vec![None; vars.len()];
    for mb in refs.chunks(micro) {
        let w = mb.len() as f64 / refs.len() as f64;
        let loss = (obj.loss(mb).unwrap().0 * w).unwrap();
        value += f64::from(loss.to_scalar::<f32>().unwrap());
        let g = loss.backward().unwrap();
        for (acc, (_, v)) in grads.iter_mut().zip(vars) {
            let gv = g.get(v.as_tensor()).unwrap().clone();
            *acc = Some(match acc.take() {
                None => gv,
                Some(a) => (a + gv).unwrap(),
            });
        }
    }
    for ((name, v), g) in vars.iter().zip(grads) {
        let flat = |t: &candle_core::Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let (a, b) = (flat(&g.unwrap()), flat(want.get(v.as_tensor()).unwrap()));
        let scale = b.iter().map(|x| x.abs()).fold(0.0, f32::max);
        let err = a
            .iter()
            .zip(&b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f32::max);
        assert!(
            scale > 0.0 && err <= 1e-4 * scale,
            "{what}, {name}: {err} of {scale}"
        );
    }
    value
}
