//! MoS (paper B) on a tiny random model: routing probabilities and top-K masking, the
//! reweighting layer and the pooled router input against hand arithmetic, stochastic
//! routing's draw frequencies, the diversity term by hand and its gradient, the fairness
//! surrogate equal to the metric on hard predictions, gradients reaching every trainable
//! tensor (against finite differences), training that learns with the base frozen, and
//! the saved files loading back to the same mixture.

mod common;

use candle_core::{Device, Tensor, Var};
use common::{
    check_accumulated_step, check_finite_differences, model, random_stereo, scalar, tok,
    toy_prompt, train_in_tempdir,
};
use fairrec_core::Rng;
use fairrec_lm::mos::{history_shares, MixturePrompt, MosConfig, Routing};
use fairrec_lm::prompt::PromptInit;
use fairrec_lm::score::{AnswerSpace, PromptFormat, Scorer};
use fairrec_lm::tuning::Tuning;
use fairrec_lm::Llama;
use fairrec_metrics::stereotype::{fairness, Counts, ItemGroups, Setting};
use fairrec_train::engine::objective::{AnswerLoss, Objective};
use fairrec_train::methods::mos::loss::{diversity, MosExample, MosLoss, MosWeights};
use fairrec_train::methods::stereo::{fairness_surrogate, Stereo};
use fairrec_train::{methods, TrainConfig};
use std::collections::HashMap;
use std::sync::Arc;

fn cfg(experts: usize, top_k: usize, routing: Routing, reweight: bool) -> MosConfig {
    MosConfig {
        experts,
        virtual_tokens: 3,
        groups: vec!["f".into(), "m".into()],
        top_k,
        routing,
        reweight,
        attribute: "gender".into(),
        z_threshold: 1.0,
        normalize: true,
        format: fairrec_lm::mos::MOS_FORMAT,
    }
}

fn mixture(m: &Llama, c: MosConfig) -> MixturePrompt {
    MixturePrompt::new(m, &tok(), c, &PromptInit::SampleVocab, 7).unwrap()
}

fn set(v: &Var, values: Vec<f32>) {
    v.set(&Tensor::from_vec(values, v.shape(), &Device::Cpu).unwrap())
        .unwrap();
}

fn randn(rng: &mut Rng, n: usize, scale: f64) -> Vec<f32> {
    (0..n).map(|_| (scale * rng.normal()) as f32).collect()
}

fn rows3(t: &Tensor) -> Vec<Vec<Vec<f32>>> {
    t.to_vec3::<f32>().unwrap()
}

/// Toy MoS examples: the task is in the last letter (`a` Yes, `b` No); the group inputs
/// prefix `f:` / `m:`; user groups, target groups and history counts are random.
fn examples(scorer: &Scorer, n: usize, seed: u64) -> Vec<MosExample> {
    let mut rng = Rng::new(seed);
    let enc = |t: &str| scorer.encode(&[t.to_string()]).unwrap().remove(0);
    (0..n)
        .map(|_| {
            let (s, label) = toy_prompt(&mut rng, 5);
            MosExample {
                ids: enc(&s),
                group_ids: vec![enc(&format!("f:{s}")), enc(&format!("m:{s}"))],
                label,
                stereo: random_stereo(&mut rng, 4, 3),
            }
        })
        .collect()
}

#[test]
fn routing_top_k_and_reweighting_match_hand_arithmetic() {
    let tok = tok();
    let m = model(&tok);
    let h = m.cfg.hidden_size;
    let mut rng = Rng::new(3);
    let (b, g, k) = (3, 2, 4);
    let feats = randn(&mut rng, b * g * h, 1.0);
    let features = Tensor::from_vec(feats.clone(), (b, g, h), &Device::Cpu).unwrap();
    let wr = randn(&mut rng, k * h, 0.3);
    let br = randn(&mut rng, k, 0.5);
    let shares = vec![vec![0.75, 0.25], vec![0.0, 1.0], vec![0.5, 0.5]];
    // The reweighting layer M [K, G K], m [K]: at its start (blocks of identity, 0) and
    // trained (random).
    let start: Vec<f32> = (0..k)
        .flat_map(|r| (0..g * k).map(move |c| if c % k == r { 1.0 } else { 0.0 }))
        .collect();
    let trained = (randn(&mut rng, k * g * k, 0.5), randn(&mut rng, k, 0.2));
    for (top_k, reweight, layer) in [
        (1, true, None),
        (1, true, Some(&trained)),
        (2, true, Some(&trained)),
        (2, false, None),
        (4, true, Some(&trained)),
    ] {
        let mx = mixture(&m, cfg(k, top_k, Routing::Top, reweight));
        set(&mx.router_weight, wr.clone());
        set(&mx.router_bias, br.clone());
        let (mw, mb) = match (layer, &mx.reweight) {
            (Some((mw, mb)), Some(r)) => {
                set(&r.weight, mw.clone());
                set(&r.bias, mb.clone());
                (mw.clone(), mb.clone())
            }
            (None, Some(r)) => {
                assert_eq!(
                    r.weight
                        .as_tensor()
                        .flatten_all()
                        .unwrap()
                        .to_vec1::<f32>()
                        .unwrap(),
                    start,
                    "the layer starts at the history-share mixture"
                );
                (start.clone(), vec![0.0; k])
            }
            (_, None) => (Vec::new(), Vec::new()),
        };
        let out = mx.mix(&features, &shares).unwrap();
        let (probs, routed) = (rows3(&out.probs), rows3(&out.routed));
        let weights = out.weights.to_vec2::<f32>().unwrap();
        let experts = mx
            .experts
            .as_tensor()
            .flatten_from(1)
            .unwrap()
            .to_vec2::<f32>()
            .unwrap();
        let prompts = rows3(&out.prompts);
        for bi in 0..b {
            // The layer's input: each group's routed probabilities times its share.
            let mut x = vec![0f64; g * k];
            for gi in 0..g {
                // Eq. 7 by hand.
                let f = &feats[(bi * g + gi) * h..(bi * g + gi + 1) * h];
                let logit: Vec<f64> = (0..k)
                    .map(|ki| {
                        f64::from(br[ki])
                            + (0..h)
                                .map(|j| f64::from(f[j]) * f64::from(wr[ki * h + j]))
                                .sum::<f64>()
                    })
                    .collect();
                let z: f64 = logit.iter().map(|l| l.exp()).sum();
                let p: Vec<f64> = logit.iter().map(|l| l.exp() / z).collect();
                // Eq. 8 by hand: the top_k largest kept, the rest zeroed, no renormalising.
                let mut order: Vec<usize> = (0..k).collect();
                order.sort_by(|&x, &y| p[y].total_cmp(&p[x]));
                for ki in 0..k {
                    assert!((f64::from(probs[bi][gi][ki]) - p[ki]).abs() < 1e-5);
                    let kept = order[..top_k].contains(&ki);
                    let want = if kept { p[ki] } else { 0.0 };
                    assert!(
                        (f64::from(routed[bi][gi][ki]) - want).abs() < 1e-5,
                        "top-{top_k}: routed[{bi}][{gi}][{ki}] = {} vs {want}",
                        routed[bi][gi][ki]
                    );
                    x[gi * k + ki] = if reweight {
                        shares[bi][gi] * want
                    } else {
                        want
                    };
                }
                let kept = routed[bi][gi].iter().filter(|&&x| x > 0.0).count();
                assert_eq!(kept, top_k);
            }
            // Eq. 9 by hand: w = M x + m, or the mean over the groups without the layer;
            // not renormalised.
            let u: Vec<f64> = (0..k)
                .map(|ki| {
                    if reweight {
                        f64::from(mb[ki])
                            + (0..g * k)
                                .map(|c| f64::from(mw[ki * g * k + c]) * x[c])
                                .sum::<f64>()
                    } else {
                        (0..g).map(|gi| x[gi * k + ki]).sum::<f64>() / g as f64
                    }
                })
                .collect();
            for ki in 0..k {
                assert!(
                    (f64::from(weights[bi][ki]) - u[ki]).abs() < 1e-5,
                    "top-{top_k} reweight {reweight}: w[{bi}][{ki}] {} vs {}",
                    weights[bi][ki],
                    u[ki]
                );
            }
            // Eq. 10-11: the prompt is the weighted sum of the expert prompts.
            for (t, row) in prompts[bi].iter().enumerate() {
                for (j, &x) in row.iter().enumerate() {
                    let want: f64 = (0..k)
                        .map(|ki| u[ki] * f64::from(experts[ki][t * h + j]))
                        .sum();
                    assert!((f64::from(x) - want).abs() < 1e-4);
                }
            }
        }
    }
    assert_eq!(
        history_shares(&[2.0, 1.0, 0.0]),
        [2.0 / 3.0, 1.0 / 3.0, 0.0]
    );
    assert_eq!(history_shares(&[0.0, 0.0]), [0.5, 0.5]);
}

#[test]
fn pooled_router_input_is_the_mean_embedding_of_the_stated_value() {
    let tok = tok();
    let m = model(&tok);
    let mx = mixture(&m, cfg(3, 1, Routing::Top, true));
    let groups = vec![
        // no common prefix or suffix: the whole inputs
        vec![vec![5u32, 9, 9], vec![7]],
        vec![vec![1, 2], vec![3, 4, 5, 6]],
        // common prefix [8] and suffix [11]: the differing middle
        vec![vec![8, 5, 9, 11], vec![8, 7, 11]],
        // equal inputs: the whole inputs
        vec![vec![4, 4], vec![4, 4]],
    ];
    let spans = [
        [vec![5u32, 9, 9], vec![7]],
        [vec![1, 2], vec![3, 4, 5, 6]],
        [vec![5, 9], vec![7]],
        [vec![4, 4], vec![4, 4]],
    ];
    let pooled = rows3(&mx.pool(&m, &groups).unwrap());
    let emb = m.embed_tokens.to_vec2::<f32>().unwrap();
    for (b, row) in spans.iter().enumerate() {
        for (g, ids) in row.iter().enumerate() {
            for j in 0..m.cfg.hidden_size {
                let want: f32 =
                    ids.iter().map(|&i| emb[i as usize][j]).sum::<f32>() / ids.len() as f32;
                assert!((pooled[b][g][j] - want).abs() < 1e-5);
            }
        }
    }
    let bad = mx.pool(&m, &[vec![vec![1u32]]]).unwrap_err().to_string();
    assert!(bad.contains("1 group inputs"), "{bad}");
}

#[test]
fn stochastic_routing_draws_in_proportion_and_evaluation_is_top_k() {
    let tok = tok();
    let m = model(&tok);
    let h = m.cfg.hidden_size;
    let mx = mixture(&m, cfg(3, 1, Routing::Stochastic, false));
    // Zero router weights and biases ln(0.6, 0.3, 0.1): p = (0.6, 0.3, 0.1) for any input.
    set(&mx.router_weight, vec![0.0; 3 * h]);
    set(&mx.router_bias, [0.6f32, 0.3, 0.1].map(f32::ln).to_vec());
    let features = Tensor::zeros((200, 2, h), candle_core::DType::F32, &Device::Cpu).unwrap();
    let shares = vec![vec![0.5, 0.5]; 200];
    mx.set_training(true);
    mx.reseed(1, 0);
    let mut hits = [0usize; 3];
    for _ in 0..10 {
        for bi in rows3(&mx.mix(&features, &shares).unwrap().routed) {
            for gi in bi {
                let kept: Vec<usize> = (0..3).filter(|&k| gi[k] > 0.0).collect();
                assert_eq!(kept.len(), 1);
                hits[kept[0]] += 1;
            }
        }
    }
    // 4000 draws: frequencies within 3 standard errors of p.
    for (k, p) in [0.6, 0.3, 0.1].into_iter().enumerate() {
        let f = hits[k] as f64 / 4000.0;
        assert!(
            (f - p).abs() < 3.0 * (p * (1.0 - p) / 4000.0).sqrt(),
            "expert {k}: {f} vs {p}"
        );
    }
    // the same step reseeded draws the same experts
    mx.reseed(1, 0);
    let a = rows3(&mx.mix(&features, &shares).unwrap().routed);
    mx.reseed(1, 0);
    assert_eq!(a, rows3(&mx.mix(&features, &shares).unwrap().routed));
    mx.set_training(false);
    for bi in rows3(&mx.mix(&features, &shares).unwrap().routed) {
        for gi in bi {
            assert!(gi[0] > 0.5 && gi[1] == 0.0 && gi[2] == 0.0, "{gi:?}");
        }
    }
}

#[test]
fn diversity_by_hand_and_its_gradient() {
    let e = |v: Vec<f32>, k: usize| Tensor::from_vec(v, (k, 1, 2), &Device::Cpu).unwrap();
    // orthogonal -> 0; parallel -> 1; opposite -> -1
    assert!(scalar(&diversity(&e(vec![1.0, 0.0, 0.0, 3.0], 2)).unwrap()).abs() < 1e-7);
    assert!((scalar(&diversity(&e(vec![1.0, 2.0, 2.0, 4.0], 2)).unwrap()) - 1.0).abs() < 1e-6);
    assert!((scalar(&diversity(&e(vec![1.0, 1.0, -2.0, -2.0], 2)).unwrap()) + 1.0).abs() < 1e-6);
    // three experts: cos(x,y) = 0, cos(x,z) = cos(y,z) = 1/sqrt 2 -> mean (2 / sqrt 2) / 3
    let three = scalar(&diversity(&e(vec![1.0, 0.0, 0.0, 1.0, 1.0, 1.0], 3)).unwrap());
    assert!((three - 2f64.sqrt() / 3.0).abs() < 1e-6, "{three}");
    assert_eq!(scalar(&diversity(&e(vec![1.0, 2.0], 1)).unwrap()), 0.0);
    // d/dx mean cos for x = (1, 0), y = (0, 1): d cos/dx = y/|x||y| - cos x/|x|^2 = (0, 1)
    let v = Var::from_tensor(&e(vec![1.0, 0.0, 0.0, 1.0], 2)).unwrap();
    let g = diversity(v.as_tensor()).unwrap().backward().unwrap();
    let gx = g
        .get(v.as_tensor())
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    assert!((gx[0]).abs() < 1e-6 && (gx[1] - 1.0).abs() < 1e-6, "{gx:?}");
    let mut rng = Rng::new(5);
    let w = Var::from_tensor(
        &Tensor::from_vec(randn(&mut rng, 4 * 3 * 5, 1.0), (4, 3, 5), &Device::Cpu).unwrap(),
    )
    .unwrap();
    check_finite_differences(
        &[("experts".into(), w.clone())],
        &|| diversity(w.as_tensor()).unwrap(),
        "diversity",
    );
}

#[test]
fn fairness_surrogate_equals_the_metric_on_hard_predictions() {
    let tok = tok();
    let m = model(&tok);
    let scorer = Scorer::new(&m, &tok, PromptFormat::Raw, AnswerSpace::None).unwrap();
    let groups = ItemGroups {
        groups: vec!["f".into(), "m".into()],
        membership: HashMap::from([("if".to_string(), vec![0]), ("im".to_string(), vec![1])]),
        n_items: 3,
        z_threshold: 1.0,
    };
    let mut checked = 0;
    for seed in 0..40 {
        let xs = examples(&scorer, 12, seed);
        let mut rng = Rng::new(100 + seed);
        let yes: Vec<bool> = xs.iter().map(|_| rng.below(2) == 0).collect();
        // The same predictions as metric input: items named by their group, histories
        // with the example's counts of group items and neutral items for the rest.
        let mut counts = Counts::new(2);
        for (x, &y) in xs.iter().map(|x| &x.stereo).zip(&yes) {
            let target = match x.target_groups.first() {
                Some(0) => "if",
                Some(_) => "im",
                None => "in",
            };
            let mut hist = Vec::new();
            for (name, n) in [("if", x.history_in_group[0]), ("im", x.history_in_group[1])] {
                hist.extend(std::iter::repeat_n(name, n as usize));
            }
            let rest = x.history_len as usize - hist.len();
            hist.extend(std::iter::repeat_n("in", rest));
            counts.add(&groups, Setting::Explicit, x.user_group, target, y, &hist);
        }
        let metric = fairness(&groups, &counts)[&Setting::Explicit].total;
        let p = Tensor::from_vec(
            yes.iter()
                .map(|&y| f32::from(u8::from(y)))
                .collect::<Vec<_>>(),
            xs.len(),
            &Device::Cpu,
        )
        .unwrap();
        let refs: Vec<&Stereo> = xs.iter().map(|x| &x.stereo).collect();
        let s = fairness_surrogate(&p, &refs, 2)
            .unwrap()
            .map(|t| 100.0 * scalar(&t));
        match (metric, s) {
            (Some(a), Some(b)) => {
                assert!(
                    (a - b).abs() < 1e-3,
                    "seed {seed}: metric {a} vs surrogate {b}"
                );
                checked += 1;
            }
            (a, b) => assert_eq!(a.is_some(), b.is_some(), "seed {seed}: {a:?} vs {b:?}"),
        }
    }
    assert!(checked >= 30, "only {checked} batches had defined pairs");
}

/// At paper B's default top-1 routing (and top-2, every expert, and without the
/// reweighting layer) the loss's gradient reaches the router and the reweighting layer and
/// matches finite differences; at top-1 the router's gradient is not rounding noise (with
/// renormalised weights it was ~1e-9: one-hot weights do not depend on the router).
#[test]
fn gradients_reach_every_mos_tensor_and_match_finite_differences() {
    let tok = tok();
    let m = model(&tok);
    let scorer = Scorer::new(&m, &tok, PromptFormat::Raw, AnswerSpace::None).unwrap();
    let xs = examples(&scorer, 6, 4);
    let refs: Vec<&MosExample> = xs.iter().collect();
    for (top_k, reweight) in [(1, true), (2, true), (3, true), (1, false)] {
        let mx = mixture(&m, cfg(3, top_k, Routing::Top, reweight));
        let mut rng = Rng::new(9);
        // Decisive routes: a finite difference must not move an input to another expert
        // (top-K masks are piecewise constant).
        set(
            &mx.router_weight,
            randn(&mut rng, 3 * m.cfg.hidden_size, 2.0),
        );
        if let Some(r) = &mx.reweight {
            let n = r.weight.elem_count();
            let w = r
                .weight
                .as_tensor()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap();
            let noise = randn(&mut rng, n, 0.1);
            set(&r.weight, w.iter().zip(noise).map(|(a, b)| a + b).collect());
            set(&r.bias, randn(&mut rng, 3, 0.1));
        }
        let loss = MosLoss::new(AnswerLoss { scorer: &scorer }, &mx, MosWeights::default());
        let label = format!("MoS loss, top-{top_k}, reweight {reweight}");
        check_finite_differences(&mx.named_vars(), &|| loss.loss(&refs).unwrap().0, &label);
        let grads = loss.loss(&refs).unwrap().0.backward().unwrap();
        let norm = grads
            .get(mx.router_weight.as_tensor())
            .unwrap()
            .sqr()
            .unwrap()
            .sum_all()
            .unwrap()
            .sqrt()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(norm > 1e-4, "{label}: router gradient norm {norm}");
    }
    // The case that collapsed: top-1, the layer at its start, every group input on the
    // same expert. The kept probability still scales the prompt, so the router learns.
    let mx = mixture(&m, cfg(3, 1, Routing::Top, true));
    set(&mx.router_bias, vec![3.0, 0.0, 0.0]);
    let loss = MosLoss::new(AnswerLoss { scorer: &scorer }, &mx, MosWeights::default());
    let mix = loss.prompts(&refs).unwrap();
    let routed = rows3(&mix.routed);
    assert!(routed
        .iter()
        .flatten()
        .all(|r| r[0] > 0.0 && r[1] == 0.0 && r[2] == 0.0));
    // (the router's gradients are small here, ~2e-4, below what finite differences can
    // compare: the cases above compare them; this one asserts that they are not zero)
    let vars: Vec<_> = mx
        .named_vars()
        .into_iter()
        .filter(|(n, _)| !n.starts_with("mos.router."))
        .collect();
    check_finite_differences(
        &vars,
        &|| loss.loss(&refs).unwrap().0,
        "MoS loss, top-1 on one expert",
    );
    let grads = loss.loss(&refs).unwrap().0.backward().unwrap();
    let g = grads
        .get(mx.router_bias.as_tensor())
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    assert!(
        g.iter().map(|x| x.abs()).fold(0.0, f32::max) > 1e-4,
        "top-1 on one expert: router bias gradient {g:?}"
    );
}

#[test]
fn the_balance_term_is_switch_load_balance_over_group_inputs() {
    let tok = tok();
    let m = model(&tok);
    let scorer = Scorer::new(&m, &tok, PromptFormat::Raw, AnswerSpace::None).unwrap();
    let mx = mixture(&m, cfg(4, 1, Routing::Top, true));
    let mut rng = Rng::new(12);
    set(
        &mx.router_weight,
        randn(&mut rng, 4 * m.cfg.hidden_size, 0.5),
    );
    let xs = examples(&scorer, 8, 5);
    let refs: Vec<&MosExample> = xs.iter().collect();
    let weights = |balance: f64| MosWeights {
        fairness: 0.0,
        diversity: 0.0,
        balance,
    };
    let plain = MosLoss::new(AnswerLoss { scorer: &scorer }, &mx, weights(0.0));
    let balanced = MosLoss::new(AnswerLoss { scorer: &scorer }, &mx, weights(2.0));
    // By hand: K * sum_k f_k P_k over the B x G group inputs.
    let probs = rows3(&plain.prompts(&refs).unwrap().probs);
    let (k, mut f, mut p, mut n) = (4, [0f64; 4], [0f64; 4], 0.0);
    for row in probs.iter().flatten() {
        let top = (0..k).max_by(|&a, &b| row[a].total_cmp(&row[b])).unwrap();
        f[top] += 1.0;
        for j in 0..k {
            p[j] += f64::from(row[j]);
        }
        n += 1.0;
    }
    let by_hand: f64 = (0..k).map(|j| f[j] / n * p[j] / n).sum::<f64>() * k as f64;
    assert!(by_hand >= 1.0 - 1e-6, "K sum f P is at least 1: {by_hand}");
    let (a, b) = (
        scalar(&plain.loss(&refs).unwrap().0),
        scalar(&balanced.loss(&refs).unwrap().0),
    );
    assert!(
        (b - a - 2.0 * by_hand).abs() < 1e-4,
        "{b} - {a} vs 2 x {by_hand}"
    );
    assert!((balanced.end_step()["balance"] - by_hand).abs() < 1e-5);
    // The router gets its gradient (through P).
    let g = balanced.loss(&refs).unwrap().0.backward().unwrap();
    assert!(g.get(mx.router_weight.as_tensor()).is_some());
}

#[test]
fn mos_training_learns_with_the_base_frozen_and_saves_what_loads() {
    let tok = tok();
    let mut m = model(&tok);
    let base: Vec<Vec<f32>> = m
        .named_tensors_mut()
        .into_iter()
        .map(|(_, t)| t.flatten_all().unwrap().to_vec1::<f32>().unwrap())
        .collect();
    let mx = Arc::new(mixture(
        &m,
        MosConfig {
            virtual_tokens: 20,
            ..cfg(3, 1, Routing::Top, true)
        },
    ));
    let tuning = Tuning::Mos(mx.clone());
    let scorer = Scorer::new(&m, &tok, PromptFormat::Raw, AnswerSpace::None).unwrap();
    let train_set = examples(&scorer, 96, 1);
    let valid = examples(&scorer, 48, 2);
    let objective = MosLoss::new(AnswerLoss { scorer: &scorer }, &mx, MosWeights::default());
    let auc = |p: &[f64]| {
        let (pos, neg): (Vec<_>, Vec<_>) = valid.iter().zip(p).partition(|(x, _)| x.label);
        let mut wins = 0.0;
        for (_, a) in &pos {
            for (_, b) in &neg {
                wins += if a > b {
                    1.0
                } else if a == b {
                    0.5
                } else {
                    0.0
                };
            }
        }
        wins / (pos.len() * neg.len()) as f64
    };
    let before = auc(&objective.p_yes(&valid, 8).unwrap());
    let c = TrainConfig {
        lr: 3e-2,
        epochs: 5,
        batch_size: 8,
        eval: false,
        ..TrainConfig::default()
    };
    let save = |dir: &std::path::Path| methods::save(&tuning, &m, &tok, "tiny", &c, dir);
    let (summary, log, d) = train_in_tempdir(&c, &tuning, &objective, &train_set, &scorer, &save);
    assert_eq!(summary.steps, 60);
    let trained_p = objective.p_yes(&valid, 8).unwrap();
    let after = auc(&trained_p);
    assert!(
        after > 0.75 && after > before,
        "valid AUC {before} -> {after}\n{log}"
    );
    assert!(
        log.contains("\"fairness\"")
            && log.contains("\"expert/2\"")
            && log.contains("\"route/f/0\"")
            && log.contains("\"route/m/2\""),
        "{log}"
    );
    drop(objective);
    drop(scorer);
    let now: Vec<Vec<f32>> = m
        .named_tensors_mut()
        .into_iter()
        .map(|(_, t)| t.flatten_all().unwrap().to_vec1::<f32>().unwrap())
        .collect();
    assert_eq!(base, now, "MoS changed a base weight");
    // the saved files load into a fresh model and route and score identically
    let mut fresh = model(&tok);
    let loaded = fairrec_lm::peft::load(&d.path().join("adapter"), &mut fresh, &tok).unwrap();
    let Tuning::Mos(lm) = &loaded else {
        panic!("loaded {loaded:?}")
    };
    assert_eq!(lm.cfg, mx.cfg);
    for ((ka, a), (kb, b)) in lm.named_vars().iter().zip(mx.named_vars()) {
        assert_eq!(ka, &kb);
        assert_eq!(
            a.as_tensor()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap(),
            b.as_tensor()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap()
        );
    }
    let scorer2 = Scorer::new(&fresh, &tok, PromptFormat::Raw, AnswerSpace::None).unwrap();
    let obj2 = MosLoss::new(AnswerLoss { scorer: &scorer2 }, lm, MosWeights::default());
    assert_eq!(obj2.p_yes(&valid, 8).unwrap(), trained_p);
}

#[test]
fn an_accumulated_mos_step_has_the_gradient_of_one_batch_of_its_examples() {
    // MoS's fairness surrogate over a step of 8 in micro-batches of 2 (the two-pass form):
    // the loss and every gradient of one batch of the 8 (whose finite differences the
    // test above checks). Diversity is the same in every micro-batch, balance is off.
    let tok = tok();
    let m = model(&tok);
    let scorer = Scorer::new(&m, &tok, PromptFormat::Raw, AnswerSpace::None).unwrap();
    let xs = examples(&scorer, 8, 6);
    let refs: Vec<&MosExample> = xs.iter().collect();
    let mx = mixture(&m, cfg(3, 2, Routing::Top, true));
    set(
        &mx.router_weight,
        randn(&mut Rng::new(4), 3 * m.cfg.hidden_size, 2.0),
    );
    let weights = MosWeights {
        fairness: 2.0,
        ..MosWeights::default()
    };
    let loss = MosLoss::new(AnswerLoss { scorer: &scorer }, &mx, weights);
    let whole = loss.loss(&refs).unwrap().0;
    loss.end_step();
    let want = whole.backward().unwrap();
    let vars = mx.named_vars();
    let value = check_accumulated_step(&loss, &refs, 2, &vars, &want, "MoS");
    let whole = f64::from(whole.to_scalar::<f32>().unwrap());
    assert!((value - whole).abs() < 1e-5, "loss {value} vs {whole}");
}
