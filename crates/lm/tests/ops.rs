//! The fused CPU kernels against independent compositions of candle ops (values and
//! gradients), against finite differences, and the whole decoder on both paths.

use candle_core::{DType, Device, Tensor, Var, D};
use fairrec_core::Rng;
use fairrec_lm::adapter::AdapterConfig;
use fairrec_lm::layers::RmsNorm;
use fairrec_lm::{ops, random, LlamaConfig};

fn randn(shape: &[usize], seed: u64) -> Tensor {
    let mut rng = Rng::derive(seed, "ops-test");
    let n: usize = shape.iter().product();
    let v: Vec<f32> = (0..n).map(|_| rng.normal() as f32).collect();
    Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
}

fn var(shape: &[usize], seed: u64) -> Var {
    Var::from_tensor(&randn(shape, seed)).unwrap()
}

fn max_abs(a: &Tensor) -> f32 {
    a.abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar()
        .unwrap()
}

/// `max |a - b| <= tol * max(1, max |b|)`.
fn assert_close(a: &Tensor, b: &Tensor, tol: f32, what: &str) {
    assert_eq!(a.dims(), b.dims(), "{what}: shapes");
    let d = max_abs(&(a - b).unwrap());
    let scale = max_abs(b).max(1.0);
    assert!(
        d <= tol * scale,
        "{what}: max difference {d} (scale {scale})"
    );
}

/// `sum(y * c)` for a fixed random `c`: a loss whose gradient wrt `y` is `c`.
fn probe(y: &Tensor, seed: u64) -> Tensor {
    (y * randn(y.dims(), seed)).unwrap().sum_all().unwrap()
}

/// Value and gradients wrt `inputs` of `f` on the fused path and of `reference`.
fn compare(
    inputs: &[&Var],
    fused: impl Fn() -> Tensor,
    reference: impl Fn() -> Tensor,
    tol: f32,
    what: &str,
) {
    let (yf, yr) = (fused(), reference());
    assert_close(&yf, &yr, tol, &format!("{what} value"));
    let (gf, gr) = (
        probe(&yf, 99).backward().unwrap(),
        probe(&yr, 99).backward().unwrap(),
    );
    for (i, v) in inputs.iter().enumerate() {
        let (a, b) = (
            gf.get(v).expect("fused gradient"),
            gr.get(v).expect("reference"),
        );
        assert!(
            max_abs(b) > 0.0,
            "{what}: input {i} has a zero reference gradient"
        );
        assert_close(a, b, tol, &format!("{what} gradient of input {i}"));
    }
}

/// Central differences of `sum(f() * c)` wrt a few elements of `x`, against autograd.
fn finite_differences(x: &Var, f: impl Fn() -> Tensor, what: &str) {
    let g = probe(&f(), 7).backward().unwrap();
    let g: Vec<f32> = g.get(x).unwrap().flatten_all().unwrap().to_vec1().unwrap();
    let base: Vec<f32> = x.as_tensor().flatten_all().unwrap().to_vec1().unwrap();
    let eps = 1e-2f32;
    for &i in &[0, base.len() / 3, base.len() / 2, base.len() - 1] {
        let at = |d: f32| -> f32 {
            let mut v = base.clone();
            v[i] += d;
            x.set(&Tensor::from_vec(v, x.dims(), &Device::Cpu).unwrap())
                .unwrap();
            let y: f32 = probe(&f(), 7).to_scalar().unwrap();
            y
        };
        let fd = (at(eps) - at(-eps)) / (2.0 * eps);
        x.set(&Tensor::from_vec(base.clone(), x.dims(), &Device::Cpu).unwrap())
            .unwrap();
        let tol = 2e-2 * g[i].abs().max(1.0);
        assert!(
            (fd - g[i]).abs() <= tol,
            "{what}[{i}]: finite difference {fd} vs {}",
            g[i]
        );
    }
}

/// Attention written out from candle ops: repeat the key/value heads, full scores, an
/// additive causal mask, softmax, weighted values.
fn attention_reference(q: &Tensor, k: &Tensor, v: &Tensor, nh: usize, nkv: usize) -> Tensor {
    let (b, t, w) = q.dims3().unwrap();
    let hd = w / nh;
    let heads = |x: &Tensor, n: usize| {
        let x = x.reshape((b, t, n, hd)).unwrap().transpose(1, 2).unwrap();
        let rep = nh / n;
        x.unsqueeze(2)
            .unwrap()
            .expand((b, n, rep, t, hd))
            .unwrap()
            .reshape((b, nh, t, hd))
            .unwrap()
    };
    let (q, k, v) = (heads(q, nh), heads(k, nkv), heads(v, nkv));
    let mask: Vec<f32> = (0..t)
        .flat_map(|i| (0..t).map(move |j| if j > i { f32::NEG_INFINITY } else { 0.0 }))
        .collect();
    let mask = Tensor::from_vec(mask, (t, t), &Device::Cpu).unwrap();
    let s = (q.matmul(&k.t().unwrap()).unwrap() / (hd as f64).sqrt()).unwrap();
    let p = candle_nn::ops::softmax(&s.broadcast_add(&mask).unwrap(), D::Minus1).unwrap();
    p.matmul(&v)
        .unwrap()
        .transpose(1, 2)
        .unwrap()
        .reshape((b, t, nh * hd))
        .unwrap()
}

#[test]
fn attention_matches_the_composed_ops_across_block_edges_and_head_groups() {
    // 70 positions: one full block of 64 and a partial one; also 1 and exactly 64.
    for (t, nh, nkv) in [(70, 4, 2), (1, 2, 1), (64, 3, 3), (130, 6, 2)] {
        let hd = 8;
        let (q, k, v) = (
            var(&[2, t, nh * hd], 1),
            var(&[2, t, nkv * hd], 2),
            var(&[2, t, nkv * hd], 3),
        );
        // One position: softmax over one key, so only V gets a gradient.
        let inputs: &[&Var] = if t == 1 { &[&v] } else { &[&q, &k, &v] };
        compare(
            inputs,
            || ops::causal_attention(&q, &k, &v, nh, nkv, None).unwrap(),
            || attention_reference(&q, &k, &v, nh, nkv),
            2e-5,
            &format!("attention t={t} heads={nh}/{nkv}"),
        );
    }
}

#[test]
fn untracked_attention_keeps_nothing_and_equals_the_tracked_one() {
    // Untracked inputs take the path that keeps no probabilities (one scratch per thread).
    let (q, k, v) = (
        randn(&[1, 5, 16], 4),
        randn(&[1, 5, 8], 5),
        randn(&[1, 5, 8], 6),
    );
    let a = ops::causal_attention(&q, &k, &v, 2, 1, None).unwrap();
    let vq = Var::from_tensor(&q).unwrap();
    let b = ops::causal_attention(vq.as_tensor(), &k, &v, 2, 1, None).unwrap();
    assert_close(&a, &b, 1e-6, "kept vs not kept");
    assert_close(
        &a,
        &attention_reference(&q, &k, &v, 2, 1),
        2e-6,
        "untracked vs reference",
    );
}

#[test]
fn norm_rope_swiglu_and_linear_match_the_composed_ops() {
    let (x, w) = (var(&[2, 5, 12], 10), var(&[12], 11));
    let norm = || RmsNorm {
        weight: w.as_tensor().clone(),
        eps: 1e-5,
        path: "norm".into(),
    };
    compare(
        &[&x, &w],
        || norm().forward(x.as_tensor()).unwrap(),
        || ops::reference(|| norm().forward(x.as_tensor()).unwrap()),
        1e-5,
        "rms-norm",
    );

    // Rotary: [B, T, H, D] through the kernel against candle's rope_slow on [B, H, T, D].
    let (t, half) = (9, 4);
    let (cos, sin) = rotary_tables(t, half);
    let xr = var(&[2, t, 3, 2 * half], 12);
    compare(
        &[&xr],
        || ops::rope(&xr, &cos, &sin).unwrap(),
        || {
            let bhtd = xr.transpose(1, 2).unwrap().contiguous().unwrap();
            candle_nn::rotary_emb::rope_slow(&bhtd, &cos, &sin)
                .unwrap()
                .transpose(1, 2)
                .unwrap()
        },
        1e-6,
        "rope",
    );

    let (g, u) = (var(&[3, 7, 11], 13), var(&[3, 7, 11], 14));
    compare(
        &[&g, &u],
        || ops::swiglu(&g, &u).unwrap(),
        || (g.silu().unwrap() * u.as_tensor()).unwrap(),
        1e-6,
        "swiglu",
    );

    let wd = randn(&[5, 11], 17);
    compare(
        &[&g, &u],
        || ops::swiglu_down(&g, &u, &wd).unwrap(),
        || {
            (g.silu().unwrap() * u.as_tensor())
                .unwrap()
                .broadcast_matmul(&wd.t().unwrap())
                .unwrap()
        },
        1e-5,
        "swiglu + down",
    );

    let (xl, wl) = (var(&[2, 6, 10], 15), randn(&[7, 10], 16));
    let add = var(&[2, 6, 7], 18);
    compare(
        &[&xl, &add],
        || ops::frozen_linear_add(&xl, &wl, &add).unwrap(),
        || (xl.broadcast_matmul(&wl.t().unwrap()).unwrap() + add.as_tensor()).unwrap(),
        1e-6,
        "frozen linear + addend",
    );
    compare(
        &[&xl],
        || ops::frozen_linear(&xl, &wl).unwrap(),
        || xl.broadcast_matmul(&wl.t().unwrap()).unwrap(),
        1e-6,
        "frozen linear",
    );
}

/// Rotary `cos`, `sin` tables `[t, half]` (base 10).
fn rotary_tables(t: usize, half: usize) -> (Tensor, Tensor) {
    let angles: Vec<f32> = (0..t)
        .flat_map(|p| (0..half).map(move |i| p as f32 * 10f32.powf(-(i as f32) / half as f32)))
        .collect();
    let ang = Tensor::from_vec(angles, (t, half), &Device::Cpu).unwrap();
    (ang.cos().unwrap(), ang.sin().unwrap())
}

#[test]
fn kernels_agree_with_finite_differences() {
    let (q, k, v) = (
        var(&[1, 6, 8], 20),
        var(&[1, 6, 4], 21),
        var(&[1, 6, 4], 22),
    );
    for (x, name) in [(&q, "dq"), (&k, "dk"), (&v, "dv")] {
        finite_differences(
            x,
            || ops::causal_attention(&q, &k, &v, 2, 1, None).unwrap(),
            name,
        );
    }
    let (x, w) = (var(&[3, 8], 23), var(&[8], 24));
    finite_differences(&x, || ops::rms_norm(&x, &w, 1e-5).unwrap(), "rms-norm dx");
    finite_differences(&w, || ops::rms_norm(&x, &w, 1e-5).unwrap(), "rms-norm dw");
    let (g, u) = (var(&[4, 5], 25), var(&[4, 5], 26));
    finite_differences(&g, || ops::swiglu(&g, &u).unwrap(), "swiglu dg");
    finite_differences(&u, || ops::swiglu(&g, &u).unwrap(), "swiglu du");
    // The fused SwiGLU + down projection (frozen `down`).
    let down = randn(&[3, 5], 27);
    finite_differences(
        &g,
        || ops::swiglu_down(&g, &u, &down).unwrap(),
        "swiglu-down dg",
    );
    finite_differences(
        &u,
        || ops::swiglu_down(&g, &u, &down).unwrap(),
        "swiglu-down du",
    );
    // Rotary on [B, T, H, D].
    let (t, half) = (5, 2);
    let (cos, sin) = rotary_tables(t, half);
    let xr = var(&[1, t, 2, 2 * half], 28);
    finite_differences(&xr, || ops::rope(&xr, &cos, &sin).unwrap(), "rope dx");
    // The frozen linear (no weight gradient) and its fused addend.
    let (xl, wl, add) = (var(&[2, 3, 6], 29), randn(&[4, 6], 30), var(&[2, 3, 4], 31));
    finite_differences(
        &xl,
        || ops::frozen_linear(&xl, &wl).unwrap(),
        "frozen-linear dx",
    );
    finite_differences(
        &xl,
        || ops::frozen_linear_add(&xl, &wl, &add).unwrap(),
        "frozen-linear + addend dx",
    );
    finite_differences(
        &add,
        || ops::frozen_linear_add(&xl, &wl, &add).unwrap(),
        "frozen-linear + addend da",
    );
}

fn cfg() -> LlamaConfig {
    let mut c = LlamaConfig::tiny(50);
    c.hidden_size = 32;
    c.intermediate_size = 48;
    c
}

fn tokens(b: usize, t: usize) -> Tensor {
    let mut rng = Rng::derive(3, "ops-tokens");
    let ids: Vec<u32> = (0..b * t).map(|_| rng.below(50) as u32).collect();
    Tensor::from_vec(ids, (b, t), &Device::Cpu).unwrap()
}

/// A seeded model with LoRA r 4 on `targets`, its B factors randomised too (from
/// `var_seed` on): LoRA's B starts at zero, which would leave A without gradient.
fn lora_model(
    c: &LlamaConfig,
    seed: u64,
    targets: &[&str],
    var_seed: u64,
) -> (fairrec_lm::Llama, Vec<(String, Var)>) {
    let mut model = random::random_model(c, seed, 0.2, &Device::Cpu).unwrap();
    let set = model
        .attach_adapters(&AdapterConfig::lora(4, 8.0, targets), 0)
        .unwrap();
    let vars = set.named_vars();
    for (i, (_, v)) in vars.iter().enumerate() {
        v.set(&(randn(v.dims(), var_seed + i as u64) * 0.1).unwrap())
            .unwrap();
    }
    (model, vars)
}

#[test]
fn the_decoder_gives_the_same_outputs_and_adapter_gradients_on_both_paths() {
    let all = fairrec_lm::adapter::TARGET_MODULES;
    let mut qwen = cfg();
    qwen.model_type = Some("qwen2".into());
    assert!(qwen.qkv_bias());
    // Every module adapted; q/v only, where the frozen down projection fuses with the
    // gate; and Qwen2's biased q/k/v projections.
    let qv = &["q_proj", "v_proj"][..];
    for (c, targets) in [(cfg(), &all[..]), (cfg(), qv), (qwen, qv)] {
        let (model, vars) = lora_model(&c, 1, targets, 100);
        let x = tokens(2, 70);
        let run = || {
            let f = model.forward(&x, Some(0)).unwrap();
            let logits = model.logits_at(&f.last, &[69, 40]).unwrap();
            let loss = (probe(&logits, 5) + probe(&f.captured.unwrap(), 6)).unwrap();
            (logits, loss.backward().unwrap())
        };
        let (lf, gf) = run();
        let (lr, gr) = ops::reference(run);
        assert_close(&lf, &lr, 1e-4, "logits");
        for (name, v) in &vars {
            let (a, b) = (gf.get(v).unwrap(), gr.get(v).unwrap());
            assert!(max_abs(b) > 0.0, "{name}: zero gradient");
            assert_close(a, b, 1e-4, name);
        }
        let nf = fairrec_lm::grad::no_grad(|| model.forward(&x, None).unwrap().last);
        assert_close(
            &nf,
            &model.forward(&x, None).unwrap().last,
            1e-6,
            "no-grad forward",
        );
    }
}

#[test]
fn full_fine_tuning_gets_every_weight_gradient_on_both_paths() {
    let mut model = random::random_model(&cfg(), 2, 0.2, &Device::Cpu).unwrap();
    let vars = model.make_trainable().unwrap();
    let x = tokens(2, 9);
    let run = || {
        let f = model.forward(&x, None).unwrap();
        probe(&model.logits_at(&f.last, &[8, 3]).unwrap(), 8)
            .backward()
            .unwrap()
    };
    let (gf, gr) = (run(), ops::reference(run));
    for (name, v) in &vars {
        let b = gr
            .get(v)
            .unwrap_or_else(|| panic!("{name}: no reference gradient"));
        let a = gf
            .get(v)
            .unwrap_or_else(|| panic!("{name}: no fused gradient"));
        assert_close(a, b, 1e-4, name);
    }
    assert!(vars.iter().any(|(n, _)| n.ends_with("layernorm.weight")));
}

/// `Llama::forward_at` (the last block at the answer rows only) against the full forward
/// read at those rows: logits and every adapter's gradient, on both paths, with grouped
/// key/value heads, Qwen2's biases, rows of different lengths (one at position 0) and a
/// per-row prefix of virtual tokens.
#[test]
fn the_last_block_at_the_answer_rows_equals_the_full_forward_read_there() {
    let all = fairrec_lm::adapter::TARGET_MODULES;
    let mut qwen = cfg();
    qwen.model_type = Some("qwen2".into());
    for (c, targets) in [(cfg(), &all[..]), (qwen, &["q_proj", "v_proj"][..])] {
        let (model, vars) = lora_model(&c, 4, targets, 200);
        let x = tokens(3, 70);
        let rows = [69, 40, 0];
        let prefix = randn(&[3, 2, c.hidden_size], 9);
        for p in [None, Some(&prefix)] {
            let full = || {
                let f = model.forward_prefixed(&x, p, None).unwrap();
                model.logits_at(&f.last, &rows).unwrap()
            };
            let at = || {
                let h = model.forward_at(&x, p, &rows).unwrap();
                model.head_logits(&h).unwrap()
            };
            let run = |f: &dyn Fn() -> Tensor| {
                let l = f();
                let g = probe(&l, 5).backward().unwrap();
                (l, g)
            };
            for reference in [false, true] {
                let both = || (run(&full), run(&at));
                let ((lf, gf), (la, ga)) = if reference {
                    ops::reference(both)
                } else {
                    both()
                };
                let what = format!(
                    "{:?} prefix {} reference {reference}",
                    c.model_type,
                    p.is_some()
                );
                assert_close(&la, &lf, 1e-5, &format!("logits, {what}"));
                for (name, v) in &vars {
                    let (a, b) = (ga.get(v).unwrap(), gf.get(v).unwrap());
                    assert!(max_abs(b) > 0.0, "{name}: zero gradient, {what}");
                    assert_close(a, b, 1e-4, &format!("{name}, {what}"));
                }
            }
        }
    }
}

// The fused ops that keep less for backward (issue 28: training memory): attention that
// rotates Q and K itself, a frozen projection that adds its bias and a low-rank adapter's
// output inside, and the frozen bf16 SwiGLU MLP in one op, each against the composition
// it replaces.

#[test]
fn attention_that_rotates_q_and_k_itself_equals_rope_then_attention() {
    for (t, nh, nkv) in [(70, 4, 2), (1, 2, 1), (33, 3, 3)] {
        let hd = 8;
        let (cos, sin) = rotary_tables(t + 5, hd / 2);
        let (q, k, v) = (
            var(&[2, t, nh * hd], 1),
            var(&[2, t, nkv * hd], 2),
            var(&[2, t, nkv * hd], 3),
        );
        let rot = |x: &Tensor, n: usize| {
            let y = ops::rope(&x.reshape((2, t, n, hd)).unwrap(), &cos, &sin).unwrap();
            y.reshape((2, t, n * hd)).unwrap()
        };
        let inputs: &[&Var] = if t == 1 { &[&v] } else { &[&q, &k, &v] };
        compare(
            inputs,
            || ops::causal_attention(&q, &k, &v, nh, nkv, Some((&cos, &sin))).unwrap(),
            || ops::causal_attention(&rot(&q, nh), &rot(&k, nkv), &v, nh, nkv, None).unwrap(),
            1e-6,
            &format!("rotating attention t={t} heads={nh}/{nkv}"),
        );
    }
    // Tables shorter than the sequence, or of another head width, are refused.
    let (q, k) = (randn(&[1, 9, 16], 4), randn(&[1, 9, 8], 5));
    let (cos, sin) = rotary_tables(8, 4);
    assert!(ops::causal_attention(&q, &k, &k, 2, 1, Some((&cos, &sin))).is_err());
    let (cos, sin) = rotary_tables(9, 3);
    assert!(ops::causal_attention(&q, &k, &k, 2, 1, Some((&cos, &sin))).is_err());
}

#[test]
fn a_frozen_projection_adds_its_bias_and_a_low_rank_update_inside() {
    let (x, w, bias) = (var(&[2, 6, 10], 10), randn(&[7, 10], 11), randn(&[7], 12));
    let (code, up) = (var(&[12, 3], 13), var(&[7, 3], 14));
    let affine = |x: &Tensor| {
        x.broadcast_matmul(&w.t().unwrap())
            .unwrap()
            .broadcast_add(&bias)
            .unwrap()
    };
    compare(
        &[&x, &code, &up],
        || ops::frozen_linear_lowrank(&x, (&w, Some(&bias)), &code, &up).unwrap(),
        || {
            let lr = code
                .matmul(&up.t().unwrap())
                .unwrap()
                .reshape((2, 6, 7))
                .unwrap();
            (affine(&x) + lr).unwrap()
        },
        1e-5,
        "low-rank with bias",
    );
    compare(
        &[&x, &code, &up],
        || ops::frozen_linear_lowrank(&x, (&w, None), &code, &up).unwrap(),
        || {
            let lr = code
                .matmul(&up.t().unwrap())
                .unwrap()
                .reshape((2, 6, 7))
                .unwrap();
            (x.broadcast_matmul(&w.t().unwrap()).unwrap() + lr).unwrap()
        },
        1e-5,
        "low-rank",
    );
    let add = var(&[2, 6, 7], 15);
    compare(
        &[&x, &add],
        || ops::frozen_affine(&x, (&w, Some(&bias)), Some(&add)).unwrap(),
        || (affine(&x) + add.as_tensor()).unwrap(),
        1e-5,
        "affine + addend",
    );
    compare(
        &[&x],
        || ops::frozen_affine(&x, (&w, Some(&bias)), None).unwrap(),
        || affine(&x),
        1e-5,
        "affine",
    );
    // Codes for another number of rows, and a bias of another width, are refused.
    let short = randn(&[11, 3], 16);
    assert!(ops::frozen_linear_lowrank(&x, (&w, None), &short, &up).is_err());
    assert!(ops::frozen_affine(&x, (&w, Some(&randn(&[6], 17))), None).is_err());
}

#[test]
fn the_frozen_bf16_mlp_equals_its_composition_with_g_and_u_rounded() {
    let bf = |t: Tensor| t.to_dtype(DType::BF16).unwrap();
    // Odd widths: hidden 18, intermediate 37; 2 x 5 rows.
    let (h, i) = (18, 37);
    let (x, r) = (var(&[2, 5, h], 20), var(&[2, 5, h], 21));
    let (wg, wu, wd) = (
        bf((randn(&[i, h], 22) * 0.3).unwrap()),
        bf((randn(&[i, h], 23) * 0.3).unwrap()),
        bf((randn(&[h, i], 24) * 0.3).unwrap()),
    );
    let round = |t: Tensor| {
        t.to_dtype(DType::BF16)
            .unwrap()
            .to_dtype(DType::F32)
            .unwrap()
    };
    compare(
        &[&x, &r],
        || ops::frozen_mlp_bf16(&x, &r, &wg, &wu, &wd).unwrap(),
        || {
            let g = round(ops::frozen_linear(&x, &wg).unwrap());
            let u = round(ops::frozen_linear(&x, &wu).unwrap());
            (r.as_tensor() + ops::swiglu_down(&g, &u, &wd).unwrap()).unwrap()
        },
        1e-5,
        "frozen bf16 mlp",
    );
    // Within bf16's precision of the f32 MLP on the same (bf16-valued) weights.
    let f = |w: &Tensor| w.to_dtype(DType::F32).unwrap();
    let exact = {
        let g = x.broadcast_matmul(&f(&wg).t().unwrap()).unwrap();
        let u = x.broadcast_matmul(&f(&wu).t().unwrap()).unwrap();
        let y = (g.silu().unwrap() * u).unwrap();
        (r.as_tensor() + y.broadcast_matmul(&f(&wd).t().unwrap()).unwrap()).unwrap()
    };
    let fused = ops::frozen_mlp_bf16(&x, &r, &wg, &wu, &wd).unwrap();
    assert_close(&fused, &exact, 3e-2, "frozen bf16 mlp against f32");
    // Untracked inputs (scoring) keep nothing and give the same values.
    let plain = ops::frozen_mlp_bf16(
        &x.as_detached_tensor(),
        &r.as_detached_tensor(),
        &wg,
        &wu,
        &wd,
    );
    assert_close(&plain.unwrap(), &fused, 0.0, "untracked frozen bf16 mlp");
    // Weights that do not fit each other are refused.
    assert!(ops::frozen_mlp_bf16(&x, &r, &wg, &wu, &wg).is_err());
}
