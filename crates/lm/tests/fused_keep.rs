//! The fused ops that keep less for backward (issue 28: training memory): attention that
//! rotates Q and K itself, a frozen projection that adds its bias and a low-rank adapter's
//! output inside, and the frozen bf16 SwiGLU MLP in one op. Each against the composition
//! it replaces (values and every input's gradient).

use candle_core::{DType, Device, Tensor, Var};
use fairrec_core::Rng;
use fairrec_lm::ops;

fn randn(shape: &[usize], seed: u64) -> Tensor {
    let mut rng = Rng::derive(seed, "fused-keep-test");
    let n: usize = shape.iter().product();
    let v: Vec<f32> = (0..n).map(|_| rng.normal() as f32).collect();
    Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
}

fn var(shape: &[usize], seed: u64) -> Var {
    Var::from_tensor(&randn(shape, seed)).unwrap()
}

fn max_abs(a: &Tensor) -> f32 {
    let a = a.abs().unwrap().flatten_all().unwrap();
    a.max(0).unwrap().to_scalar().unwrap()
}

/// `max |a - b| <= tol * max(1, max |b|)`.
fn assert_close(a: &Tensor, b: &Tensor, tol: f32, what: &str) {
    assert_eq!(a.dims(), b.dims(), "{what}: shapes");
    let (d, scale) = (max_abs(&(a - b).unwrap()), max_abs(b).max(1.0));
    assert!(
        d <= tol * scale,
        "{what}: max difference {d} (scale {scale})"
    );
}

/// Value and the gradients of `sum(y * c)` (a fixed random `c`) wrt `inputs`: the fused
/// `f` against `reference`; every reference gradient is non-zero.
fn compare(
    inputs: &[&Var],
    f: impl Fn() -> Tensor,
    reference: impl Fn() -> Tensor,
    tol: f32,
    what: &str,
) {
    let (yf, yr) = (f(), reference());
    assert_close(&yf, &yr, tol, &format!("{what}: value"));
    let c = randn(yr.dims(), 99);
    let grads = |y: &Tensor| (y * &c).unwrap().sum_all().unwrap().backward().unwrap();
    let (gf, gr) = (grads(&yf), grads(&yr));
    for (i, v) in inputs.iter().enumerate() {
        let (a, b) = (
            gf.get(v).expect("fused gradient"),
            gr.get(v).expect("reference"),
        );
        assert!(
            max_abs(b) > 0.0,
            "{what}: input {i} has a zero reference gradient"
        );
        assert_close(a, b, tol, &format!("{what}: gradient of input {i}"));
    }
}

/// Rotary `cos`, `sin` tables `[t, half]` (base 10), for positions beyond `T` too.
fn rotary_tables(t: usize, half: usize) -> (Tensor, Tensor) {
    let angles: Vec<f32> = (0..t)
        .flat_map(|p| (0..half).map(move |i| p as f32 * 10f32.powf(-(i as f32) / half as f32)))
        .collect();
    let ang = Tensor::from_vec(angles, (t, half), &Device::Cpu).unwrap();
    (ang.cos().unwrap(), ang.sin().unwrap())
}

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
