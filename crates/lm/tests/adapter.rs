//! The adapter layer on tiny random models: identity at init, merge equivalence,
//! gradients (against finite differences), frozen base, router invariants.

mod common;
use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{Optimizer, SGD};
use common::{ids, logits, tiny};
use fairrec_core::Rng;
use fairrec_lm::adapter::{Adapter, AdapterConfig};
use fairrec_lm::Llama;

fn randomize(v: &Var, rng: &mut Rng, std: f64) {
    let n = v.elem_count();
    let x: Vec<f32> = (0..n).map(|_| (rng.normal() * std) as f32).collect();
    v.set(&Tensor::from_vec(x, v.dims(), &Device::Cpu).unwrap())
        .unwrap();
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

#[test]
fn fresh_lora_is_the_identity() {
    let base = tiny(DType::F32);
    let want = logits(&base);
    let mut m = base.clone();
    let set = m
        .attach_adapters(
            &AdapterConfig::lora(4, 32.0, &["q_proj", "v_proj", "up_proj"]),
            1,
        )
        .unwrap();
    assert_eq!(set.modules.len(), 6, "3 targets x 2 layers");
    assert_eq!(max_abs_diff(&logits(&m), &want), 0.0);
    let e = m
        .attach_adapters(&AdapterConfig::lora(4, 8.0, &["qq_proj"]), 1)
        .unwrap_err();
    assert!(e.to_string().contains("qq_proj"), "{e}");
}

#[test]
fn merged_equals_unmerged_with_alpha_not_r() {
    let mut m = tiny(DType::F32);
    let cfg = AdapterConfig::lora(4, 32.0, &["q_proj", "k_proj", "o_proj", "down_proj"]);
    assert_eq!(cfg.scale(), 8.0);
    let set = m.attach_adapters(&cfg, 2).unwrap();
    let mut rng = Rng::new(3);
    for (_, v) in set.named_vars() {
        randomize(&v, &mut rng, 0.05);
    }
    let unmerged = logits(&m);
    assert!(
        max_abs_diff(&unmerged, &logits(&tiny(DType::F32))) > 1e-3,
        "the adapters change the output"
    );
    m.merge_adapters().unwrap();
    assert!(max_abs_diff(&logits(&m), &unmerged) < 1e-4);
    let rs = AdapterConfig {
        rslora: true,
        ..cfg
    };
    assert_eq!(rs.scale(), 16.0, "alpha / sqrt(r)");
}

/// A smooth scalar loss of the model: the logits at the last positions against fixed weights.
fn loss(m: &Llama, probe: &Tensor) -> Tensor {
    (logits(m) * probe).unwrap().sum_all().unwrap()
}

#[test]
fn gradients_reach_every_adapter_tensor_and_match_finite_differences() {
    let mut m = tiny(DType::F32);
    let set = m
        .attach_adapters(
            &AdapterConfig::lora(2, 4.0, &["q_proj", "v_proj", "gate_proj", "down_proj"]),
            4,
        )
        .unwrap();
    let mut rng = Rng::new(5);
    for (name, v) in set.named_vars() {
        if name.contains("lora_B") {
            randomize(&v, &mut rng, 0.1);
        }
    }
    let probe = Tensor::from_vec(
        (0..2 * 97).map(|_| rng.normal() as f32).collect::<Vec<_>>(),
        (2, 97),
        &Device::Cpu,
    )
    .unwrap();
    let grads = loss(&m, &probe).backward().unwrap();
    for (name, v) in set.named_vars() {
        let g = grads
            .get(v.as_tensor())
            .unwrap_or_else(|| panic!("no gradient for {name}"));
        let norm = g
            .sqr()
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(norm > 0.0, "zero gradient for {name}");
    }
    // Central differences on a few entries of two tensors.
    for (name, v) in set.named_vars().into_iter().filter(|(n, _)| {
        n.contains("layers.1.self_attn.q_proj") || n.contains("layers.0.mlp.down_proj")
    }) {
        let g = grads
            .get(v.as_tensor())
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let base: Vec<f32> = v.as_tensor().flatten_all().unwrap().to_vec1().unwrap();
        for k in [0, base.len() / 2, base.len() - 1] {
            let eps = 1e-2f32;
            let at = |d: f32| {
                let mut x = base.clone();
                x[k] += d;
                v.set(&Tensor::from_vec(x, v.dims(), &Device::Cpu).unwrap())
                    .unwrap();
                f64::from(loss(&m, &probe).to_scalar::<f32>().unwrap())
            };
            let fd = (at(eps) - at(-eps)) / (2.0 * f64::from(eps));
            v.set(&Tensor::from_vec(base.clone(), v.dims(), &Device::Cpu).unwrap())
                .unwrap();
            let an = f64::from(g[k]);
            assert!(
                (fd - an).abs() <= 2e-2 * an.abs().max(1e-1),
                "{name}[{k}]: analytic {an} vs finite differences {fd}"
            );
        }
    }
}

#[test]
fn an_optimizer_step_leaves_the_frozen_base_bit_identical() {
    let mut m = tiny(DType::F32);
    let before: Vec<Vec<f32>> = m
        .linears_mut()
        .iter()
        .map(|(_, l)| l.weight.flatten_all().unwrap().to_vec1().unwrap())
        .collect();
    let embed: Vec<f32> = m.embed_tokens.flatten_all().unwrap().to_vec1().unwrap();
    let set = m
        .attach_adapters(&AdapterConfig::lora(2, 4.0, &["q_proj", "up_proj"]), 6)
        .unwrap();
    let vars: Vec<Var> = set.named_vars().into_iter().map(|(_, v)| v).collect();
    let b_before: Vec<f32> = vars[1]
        .as_tensor()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    let mut opt = SGD::new(vars.clone(), 0.1).unwrap();
    let probe = Tensor::ones((2, 97), DType::F32, &Device::Cpu).unwrap();
    opt.backward_step(&loss(&m, &probe)).unwrap();
    let b_after: Vec<f32> = vars[1]
        .as_tensor()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    assert_ne!(b_before, b_after, "the adapter moved");
    let after: Vec<Vec<f32>> = m
        .linears_mut()
        .iter()
        .map(|(_, l)| l.weight.flatten_all().unwrap().to_vec1().unwrap())
        .collect();
    assert_eq!(before, after, "base projections unchanged");
    assert_eq!(
        embed,
        m.embed_tokens
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap()
    );
}

#[test]
fn router_weights_sum_to_one_and_top_k_masks() {
    let cfg = AdapterConfig {
        experts: 3,
        ..AdapterConfig::lora(2, 4.0, &["up_proj"])
    };
    let mut rng = Rng::new(8);
    let a = Adapter::new(&cfg, 16, 24, &mut rng, &Device::Cpu).unwrap();
    let x = Tensor::from_vec(
        (0..2 * 5 * 16)
            .map(|_| rng.normal() as f32)
            .collect::<Vec<_>>(),
        (2, 5, 16),
        &Device::Cpu,
    )
    .unwrap();
    let w = a.route(&x).unwrap().unwrap();
    assert_eq!(w.dims(), [2, 5, 3]);
    for row in w.reshape((10, 3)).unwrap().to_vec2::<f32>().unwrap() {
        assert!(
            (row.iter().sum::<f32>() - 1.0).abs() < 1e-5 && row.iter().all(|&p| p > 0.0),
            "{row:?}"
        );
    }
    let top = Adapter::new(
        &AdapterConfig {
            top_k: Some(1),
            ..cfg.clone()
        },
        16,
        24,
        &mut Rng::new(8),
        &Device::Cpu,
    )
    .unwrap();
    for row in top
        .route(&x)
        .unwrap()
        .unwrap()
        .reshape((10, 3))
        .unwrap()
        .to_vec2::<f32>()
        .unwrap()
    {
        assert_eq!(row.iter().filter(|&&p| p > 0.0).count(), 1, "{row:?}");
        assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-6);
    }
    // gradients reach the router and every expert (B nonzero)
    for e in &a.experts {
        randomize(&e.b, &mut rng, 0.1);
    }
    // the output is sum_j w_j s B_j A_j x (Eq. 10-12), by hand per row
    let y = a.forward(&x).unwrap().reshape((10, 24)).unwrap();
    let (xs, ws) = (
        x.reshape((10, 16)).unwrap().to_vec2::<f32>().unwrap(),
        w.reshape((10, 3)).unwrap().to_vec2::<f32>().unwrap(),
    );
    let s = cfg.scale();
    for (i, row) in y.to_vec2::<f32>().unwrap().iter().enumerate() {
        for (o, &got) in row.iter().enumerate() {
            let mut want = 0f64;
            for (j, e) in a.experts.iter().enumerate() {
                let (am, bm) = (
                    e.a.as_tensor().to_vec2::<f32>().unwrap(),
                    e.b.as_tensor().to_vec2::<f32>().unwrap(),
                );
                let code = |k: usize| -> f64 {
                    am[k].iter().zip(&xs[i]).map(|(p, q)| (p * q) as f64).sum()
                };
                let bax: f64 = (0..am.len()).map(|k| bm[o][k] as f64 * code(k)).sum();
                want += ws[i][j] as f64 * s * bax;
            }
            assert!(
                (got as f64 - want).abs() < 1e-5,
                "row {i}, out {o}: {got} vs {want}"
            );
        }
    }
    let grads = a
        .forward(&x)
        .unwrap()
        .sqr()
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    for (name, v) in a.vars() {
        let g = grads
            .get(v.as_tensor())
            .unwrap_or_else(|| panic!("no gradient for {name}"));
        assert!(
            g.abs()
                .unwrap()
                .sum_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap()
                > 0.0,
            "{name}"
        );
    }
    assert!(
        a.delta_weight().is_err(),
        "a routed mixture cannot be merged"
    );
}

/// Scoring with an adapter attached builds no graph (the memory of an audit), and scores
/// the same as the tracked forward pass.
#[test]
fn no_grad_scores_the_same_without_a_graph() {
    let mut m = tiny(DType::F32);
    let set = m
        .attach_adapters(&AdapterConfig::lora(4, 8.0, &["q_proj", "up_proj"]), 1)
        .unwrap();
    for (k, v) in set.named_vars() {
        if k.contains("lora_B") {
            v.set(&v.as_tensor().randn_like(0.0, 0.1).unwrap()).unwrap();
        }
    }
    let x = ids();
    let tracked = m.forward(&x, None).unwrap().last;
    assert!(tracked.track_op());
    let free = fairrec_lm::grad::no_grad(|| m.forward(&x, None).unwrap().last);
    assert!(!free.track_op(), "a graph was built inside no_grad");
    assert!(fairrec_lm::grad::enabled());
    let d = (tracked - free)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    assert_eq!(d, 0.0);
}
