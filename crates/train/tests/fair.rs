//! Paper A's objective (CF, Diff, CF-Diff, MoE, CL-MoE) on a tiny random model: L_diff
//! against distances computed by hand, the router, the load-balance loss, gradients
//! against finite differences, L_diff shrinking in training, exact resume with `tau`.

mod common;

use candle_core::{DType, Device, Tensor, D};
use common::{check_finite_differences, model, randomise_b, scalar, tok, toy_prompt};
use fairrec_core::Rng;
use fairrec_lm::adapter::{Adapter, AdapterConfig};
use fairrec_lm::pool::{Capture, Pooling, Stack};
use fairrec_lm::score::{AnswerSpace, PromptFormat, Scorer};
use fairrec_lm::tuning::Tuning;
use fairrec_train::engine::objective::balance_loss;
use fairrec_train::engine::objective::{AnswerLoss, Example, Objective};
use fairrec_train::engine::trainer::{train, Event, Run};
use fairrec_train::methods::paper_a::loss::{Copy, FairLoss, Group};
use fairrec_train::{methods, Method, TrainConfig};
use std::path::Path;

/// Groups of a toy task: the answer is in the last letter (`a` Yes, `b` No); the stated
/// copies prefix a "gender" (`m`/`f`) and an "age" (`y`/`o`), the neutral copy none.
fn groups(scorer: &Scorer, n: usize, seed: u64) -> Vec<Group> {
    let mut rng = Rng::new(seed);
    (0..n)
        .map(|_| {
            let (s, label) = toy_prompt(&mut rng, 5);
            let enc = |t: &str| scorer.encode(&[t.to_string()]).unwrap().remove(0);
            let stated = [("original", "m"), ("counterfactual", "f"), ("aux-age", "y")]
                .iter()
                .map(|(kind, p)| Copy {
                    ids: enc(&format!("{p}:{s}")),
                    kind: kind.to_string(),
                })
                .collect();
            Group {
                stated,
                neutral: Some(enc(&s)),
                label,
            }
        })
        .collect()
}

fn paper_cfg(m: Method) -> TrainConfig {
    let mut c = m.defaults(true);
    c.lr = 1e-2;
    c.epochs = 2;
    c.batch_size = 4;
    c.checkpoint_every = 3;
    c.lora.dropout = 0.0;
    c
}

/// Final hidden state (or block `layer`'s output) of one prompt, pooled, as f64.
fn state(scorer: &Scorer, ids: &[u32], capture: Capture) -> (Vec<f64>, f64, f64) {
    let x = Tensor::new(ids, &Device::Cpu)
        .unwrap()
        .unsqueeze(0)
        .unwrap();
    let f = scorer
        .model("test")
        .unwrap()
        .forward(&x, capture.layer)
        .unwrap();
    let h = match capture.layer {
        None => f.last.clone(),
        Some(_) => f.captured.clone().unwrap(),
    };
    let h = match capture.pooling {
        Pooling::Last => h.get(0).unwrap().get(ids.len() - 1).unwrap(),
        Pooling::Mean => h.get(0).unwrap().mean(0).unwrap(),
    };
    let logits = scorer
        .model("test")
        .unwrap()
        .logits_at(&f.last, &[ids.len() - 1])
        .unwrap();
    let lsm = candle_nn::ops::log_softmax(&logits, D::Minus1).unwrap();
    let row = lsm.get(0).unwrap().to_vec1::<f32>().unwrap();
    let h = h.to_dtype(DType::F64).unwrap().to_vec1::<f64>().unwrap();
    (
        h,
        -row[scorer.yes as usize] as f64,
        -row[scorer.no as usize] as f64,
    )
}

/// Paper A's loss computed prompt by prompt (no padding): the mean over the stated copies
/// of `NTP + w d` where `on(kind)`, `NTP` elsewhere; and the sum of the distances counted.
fn by_hand(
    scorer: &Scorer,
    gs: &[Group],
    capture: Capture,
    w: f64,
    on: impl Fn(&str) -> bool,
) -> (f64, f64, f64) {
    let (mut sum, mut n, mut dsum) = (0.0, 0.0, 0.0);
    for g in gs {
        let (hb, _, _) = state(scorer, g.neutral.as_ref().unwrap(), capture);
        for c in &g.stated {
            let (h, nll_yes, nll_no) = state(scorer, &c.ids, capture);
            let d = h
                .iter()
                .zip(&hb)
                .map(|(a, b)| (a - b).powi(2))
                .sum::<f64>()
                .sqrt();
            let d = if on(&c.kind) { d } else { 0.0 };
            sum += if g.label { nll_yes } else { nll_no } + w * d;
            dsum += d;
            n += 1.0;
        }
    }
    (sum / n, dsum, n)
}

#[test]
fn l_diff_and_the_loss_match_distances_computed_by_hand() {
    let tok = tok();
    let m = model(&tok);
    let scorer = Scorer::new(&m, &tok, PromptFormat::Raw, AnswerSpace::None).unwrap();
    let gs = groups(&scorer, 3, 4);
    for capture in [
        Capture {
            layer: None,
            pooling: Pooling::Last,
            stack: Stack::Decoder,
        },
        Capture {
            layer: Some(0),
            pooling: Pooling::Mean,
            stack: Stack::Decoder,
        },
    ] {
        let mut cfg = Method::CfDiff.defaults(true).objective;
        cfg.diff_weight = 0.7;
        cfg.capture = capture;
        let obj = FairLoss::new(AnswerLoss { scorer: &scorer }, cfg, None);
        let items: Vec<&Group> = gs.iter().collect();
        let got = scalar(&obj.loss(&items).unwrap().0);
        let (want, dsum, n) = by_hand(&scorer, &gs, capture, 0.7, |_| true);
        assert!(dsum > 0.1, "distances should not vanish: {dsum}");
        assert!(
            (got - want).abs() < 1e-4 * want.abs().max(1.0),
            "{capture:?}: {got} vs {want}"
        );
        let logged = obj.end_step();
        assert!((logged["diff"] - dsum / n).abs() < 1e-4 * (dsum / n));
    }
}

#[test]
fn diff_over_original_puts_l_diff_on_the_original_copies_only() {
    let tok = tok();
    let m = model(&tok);
    let scorer = Scorer::new(&m, &tok, PromptFormat::Raw, AnswerSpace::None).unwrap();
    let gs = groups(&scorer, 3, 5);
    let mut cfg = Method::CfDiff.defaults(true).objective;
    cfg.diff_weight = 0.7;
    cfg.diff_over = "original".parse().unwrap();
    let capture = cfg.capture;
    let obj = FairLoss::new(AnswerLoss { scorer: &scorer }, cfg, None);
    let items: Vec<&Group> = gs.iter().collect();
    let got = scalar(&obj.loss(&items).unwrap().0);
    let (want, d_orig, _) = by_hand(&scorer, &gs, capture, 0.7, |k| k == "original");
    assert!(d_orig > 0.05, "distances should not vanish: {d_orig}");
    assert!(
        (got - want).abs() < 1e-4 * want.abs().max(1.0),
        "{got} vs {want}"
    );
    // "all" differs: the counterfactual and auxiliary copies' distances count there.
    let mut all = Method::CfDiff.defaults(true).objective;
    all.diff_weight = 0.7;
    let obj = FairLoss::new(AnswerLoss { scorer: &scorer }, all, None);
    assert!((scalar(&obj.loss(&items).unwrap().0) - got).abs() > 1e-3);
    assert!("first"
        .parse::<fairrec_train::methods::paper_a::loss::DiffOver>()
        .is_err());
}

#[test]
fn router_weights_sum_to_one_and_top_k_keeps_k() {
    let mut rng = Rng::new(3);
    for top_k in [None, Some(1), Some(2)] {
        let cfg = AdapterConfig {
            experts: 3,
            top_k,
            ..AdapterConfig::lora(4, 8.0, &["up_proj"])
        };
        let a = Adapter::new(&cfg, 16, 8, &mut rng, &Device::Cpu).unwrap();
        let x = Tensor::randn(0f32, 1.0, (2, 5, 16), &Device::Cpu).unwrap();
        let w = a.route(&x).unwrap().unwrap();
        assert_eq!(w.dims(), &[2, 5, 3]);
        let rows = w.flatten_to(1).unwrap().to_vec2::<f32>().unwrap();
        for r in rows {
            assert!((r.iter().sum::<f32>() - 1.0).abs() < 1e-5, "{r:?}");
            let kept = r.iter().filter(|&&v| v > 0.0).count();
            assert_eq!(kept, top_k.unwrap_or(3), "{r:?}");
        }
    }
}

#[test]
fn balance_loss_matches_hand_arithmetic() {
    // one row, 3 positions (the last is padding), 2 experts
    let v = candle_core::Var::from_tensor(
        &Tensor::new(&[[[0.7f32, 0.3], [0.4, 0.6], [0.9, 0.1]]], &Device::Cpu).unwrap(),
    )
    .unwrap();
    let w = v.as_tensor();
    let (loss, usage) = balance_loss(w, &[1], 3).unwrap();
    // d loss / d w[t, j] = E f_j / n on real positions (f is a constant), 0 on padding
    let g = loss
        .backward()
        .unwrap()
        .get(w)
        .unwrap()
        .to_vec3::<f32>()
        .unwrap();
    assert_eq!(g[0], vec![vec![0.5, 0.5], vec![0.5, 0.5], vec![0.0, 0.0]]);
    // P = (0.55, 0.45); f = (0.5, 0.5) (argmax 0 then 1); loss = 2 (0.5*0.55 + 0.5*0.45) = 1
    assert!((usage[0] - 0.55).abs() < 1e-6 && (usage[1] - 0.45).abs() < 1e-6);
    assert!((scalar(&loss) - 1.0).abs() < 1e-6);
    let w2 = Tensor::new(&[[[0.8f32, 0.2], [0.6, 0.4]]], &Device::Cpu).unwrap();
    let (l2, _) = balance_loss(&w2, &[1], 2).unwrap();
    // f = (1, 0), P = (0.7, 0.3): 2 * 0.7 = 1.4
    assert!((scalar(&l2) - 1.4).abs() < 1e-6);
}

#[test]
fn gradients_reach_routers_and_experts_and_match_finite_differences() {
    // The load-balance loss is left out here: its token shares f_j are piecewise constant
    // (argmax), so finite differences jump where a share flips.
    for m in [Method::CfDiff, Method::ClMoe] {
        let tok = tok();
        let mut model = model(&tok);
        let c = paper_cfg(m);
        let tuning = methods::setup(&mut model, &tok, &c).unwrap();
        randomise_b(&tuning.named_vars());
        let scorer = Scorer::new(&model, &tok, PromptFormat::Raw, AnswerSpace::None).unwrap();
        let gs = groups(&scorer, 2, 6);
        let items: Vec<&Group> = gs.iter().collect();
        let set = match &tuning {
            Tuning::Adapters(s) => s,
            _ => unreachable!(),
        };
        let cfg = c.objective.clone();
        let obj = FairLoss::new(AnswerLoss { scorer: &scorer }, cfg, Some(set));
        tuning.set_training(true);
        let vars = tuning.named_vars();
        if m == Method::ClMoe {
            assert!(vars.iter().any(|(k, _)| k.ends_with("router.weight")));
        }
        check_finite_differences(&vars, &|| obj.loss(&items).unwrap().0, m.name());
        let logged = obj.end_step();
        if m == Method::ClMoe {
            let usage: f64 = (0..3).map(|j| logged[&format!("expert/{j}")]).sum();
            assert!((usage - 1.0).abs() < 1e-5, "{logged:?}");
            assert!(logged.contains_key("sigma/original") && logged.contains_key("tau"));
        }
    }
}

fn valid(gs: &[Group]) -> Vec<Example> {
    gs.iter()
        .map(|g| Example {
            ids: g.stated[0].ids.clone(),
            label: g.label,
        })
        .collect()
}

/// Train `c` into `dir` (optionally resuming); the log's per-step records.
fn fit(
    c: &TrainConfig,
    dir: &Path,
    resume: bool,
    snap: Option<(u64, &Path)>,
) -> Vec<serde_json::Value> {
    let tok = tok();
    let mut m = model(&tok);
    let tuning = methods::setup(&mut m, &tok, c).unwrap();
    let scorer = Scorer::new(&m, &tok, PromptFormat::Raw, AnswerSpace::None).unwrap();
    let tr = groups(&scorer, 24, 1);
    let va = valid(&groups(&scorer, 12, 2));
    let set = match &tuning {
        Tuning::Adapters(s) => Some(s),
        _ => None,
    };
    let obj = FairLoss::new(AnswerLoss { scorer: &scorer }, c.objective.clone(), set);
    let save = |d: &Path| methods::save(&tuning, &m, &tok, "tiny", c, d);
    train(
        Run {
            cfg: c,
            dir,
            tuning: &tuning,
            objective: &obj,
            train: &tr,
            valid: &va,
            scorer: &scorer,
            save: &save,
            resume,
        },
        &mut |ev| {
            if let (Event::Step(s), Some((at, to))) = (ev, snap) {
                // the checkpoint of step `at` is complete when step `at + 1` is logged
                if s.step == at + 1 {
                    copy_dir(&dir.join("checkpoint"), &to.join("checkpoint"));
                    std::fs::copy(dir.join("train_log.jsonl"), to.join("train_log.jsonl")).unwrap();
                }
            }
        },
    )
    .unwrap();
    std::fs::read_to_string(dir.join("train_log.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v.get("step").is_some())
        .collect()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

#[test]
fn cl_moe_trains_l_diff_down_and_resumes_exactly_with_its_tau() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let c = paper_cfg(Method::ClMoe);
    let full = fit(&c, a.path(), false, Some((3, b.path())));
    assert_eq!(full.len(), 12);
    let diffs: Vec<f64> = full.iter().map(|s| s["diff"].as_f64().unwrap()).collect();
    assert!(diffs[11] < 0.7 * diffs[0], "L_diff per step {diffs:?}");
    let taus: Vec<f64> = full.iter().map(|s| s["tau"].as_f64().unwrap()).collect();
    assert!((taus[0] - 2f64.ln()).abs() < 1e-12 && taus[5] != taus[0]);
    // resume from step 3's checkpoint: the same steps, the same tau, the same bytes
    let resumed = fit(&c, b.path(), true, None);
    assert_eq!(resumed.len(), 12);
    for (x, y) in full.iter().zip(&resumed).skip(3) {
        assert_eq!(x["tau"], y["tau"]);
        assert_eq!(x["loss"], y["loss"]);
    }
    let bytes = |d: &Path| std::fs::read(d.join("adapter/adapter_model.safetensors")).unwrap();
    assert_eq!(bytes(a.path()), bytes(b.path()));
}
