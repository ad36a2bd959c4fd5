//! Lambert W0 and SuperLoss (paper A, Eq. 13-19) against independent arithmetic.

use candle_core::{Device, Tensor, Var};
use fairrec_train::methods::paper_a::curriculum::{
    lambert_w0, sigma_star, superloss_value, Curriculum, TauSource,
};

/// `W0(w e^w) = w` on a grid of `w` covering `x` in [-1/e, 1e6]; near the branch point,
/// where `W0` is ill-conditioned in `x`, the residual `W e^W - x` is checked instead.
#[test]
fn lambert_w0_inverts_w_exp_w_from_the_branch_point_to_1e6() {
    let mut checked = 0;
    let mut w = -1.0f64;
    while w <= 11.3834 {
        let x = w * w.exp();
        let got = lambert_w0(x).unwrap();
        if (1.0 + w).abs() > 1e-3 {
            let rel = (got - w).abs() / w.abs().max(1e-300);
            assert!(
                rel <= 1e-12,
                "W0({x:e}) = {got:e}, expected {w:e} (rel {rel:e})"
            );
        }
        let resid = (got * got.exp() - x).abs();
        assert!(
            resid <= 4.0 * f64::EPSILON * x.abs().max(got.exp() * got.abs()),
            "residual {resid:e} at x = {x:e}"
        );
        checked += 1;
        w += if w < -0.99 { 1e-5 } else { 7.3e-3 };
    }
    assert!(checked > 2000);
}

#[test]
fn lambert_w0_known_values() {
    // W0(1) = omega constant, W0(e) = 1, W0(0) = 0, W0(1e6), W0(-1/e) = -1, W0(-0.3)
    let cases = [
        (1.0, 0.567_143_290_409_783_8),
        (std::f64::consts::E, 1.0),
        (0.0, 0.0),
        (1e6, 11.383_358_086_140_053),
        (-0.3, -0.489_402_227_180_214_2),
    ];
    for (x, w) in cases {
        let got = lambert_w0(x).unwrap();
        assert!(
            (got - w).abs() <= 1e-12 * w.abs().max(1e-300) || (got == w),
            "W0({x}) = {got}, expected {w}"
        );
    }
    let branch = -(-1f64).exp();
    let wb = lambert_w0(branch).unwrap();
    // -1/e is not representable: the exact W0 of the rounded value is -1 within 1e-7
    assert!((wb + 1.0).abs() < 1e-7, "W0(-1/e) = {wb}");
    // just above the branch point: the series -1 + p - p^2/3, p = sqrt(2(e x + 1))
    let x = branch + 1e-10;
    let p = (2.0 * (std::f64::consts::E * x + 1.0)).sqrt();
    let series = -1.0 + p - p * p / 3.0 + 11.0 / 72.0 * p.powi(3);
    assert!((lambert_w0(x).unwrap() - series).abs() < 1e-9);
    assert_eq!(lambert_w0(branch - 1e-6), None);
    assert_eq!(lambert_w0(f64::NAN), None);
}

/// d/dsigma of Eq. 13: `(L - tau) + 2 lambda ln(sigma) / sigma`.
fn d_sigma(l: f64, tau: f64, lambda: f64, s: f64) -> f64 {
    (l - tau) + 2.0 * lambda * s.ln() / s
}

#[test]
fn sigma_star_minimises_eq_13() {
    let (tau, lambda) = (0.69, 0.25);
    for l in [0.0, 0.1, 0.4, 0.69, 1.0, 2.5, 10.0, 1e3] {
        let s = sigma_star(l, tau, lambda);
        let beta = (l - tau) / lambda;
        if beta > -2.0 / std::f64::consts::E {
            // derivative zero, relative to the size of its terms
            let scale = (l - tau).abs() + 2.0 * lambda * (s.ln() / s).abs() + 1e-12;
            assert!(d_sigma(l, tau, lambda, s).abs() < 1e-12 * scale.max(1.0));
            let v = superloss_value(l, tau, lambda, s);
            for f in [0.9, 0.99, 1.01, 1.1] {
                assert!(
                    superloss_value(l, tau, lambda, s * f) >= v - 1e-12,
                    "L = {l}"
                );
            }
        } else {
            // below the clamp Eq. 13 decreases for ever in sigma: no minimiser, sigma* = e
            assert!(d_sigma(l, tau, lambda, s) < 0.0);
        }
    }
    // sigma* = 1 where L = tau
    assert!((sigma_star(0.7, 0.7, 0.25) - 1.0).abs() < 1e-15);
    // the clamp: beta <= -2/e gives W0(-1/e) = -1, sigma* = e
    let e = std::f64::consts::E;
    let at_clamp = 0.7 - 0.25 * 2.0 / e;
    assert!((sigma_star(at_clamp, 0.7, 0.25) - e).abs() < 1e-6);
    assert!((sigma_star(-5.0, 0.7, 0.25) - e).abs() < 1e-6);
    // harder samples (larger loss) get less confidence
    assert!(sigma_star(2.0, 0.7, 0.25) < sigma_star(1.0, 0.7, 0.25));
}

#[test]
fn superloss_gradient_is_sigma_times_the_loss_gradient() {
    let c = Curriculum::default();
    let tau = c.tau0();
    assert!((tau - 2f64.ln()).abs() < 1e-15);
    let x =
        Var::from_tensor(&Tensor::new(&[0.2f32, 0.7, 1.5, 3.0], &Device::Cpu).unwrap()).unwrap();
    let losses = x.as_tensor().sqr().unwrap(); // L_i = x_i^2, dL/dx = 2x
    let (sl, sigmas) = c.apply(&losses, tau).unwrap();
    let vals = sl.to_vec1::<f32>().unwrap();
    let g = sl
        .sum_all()
        .unwrap()
        .backward()
        .unwrap()
        .get(x.as_tensor())
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    for (i, xi) in [0.2f64, 0.7, 1.5, 3.0].iter().enumerate() {
        let l = xi * xi;
        let s = sigma_star(l, tau, c.lambda);
        assert!((sigmas[i] - s).abs() < 1e-15);
        let expect = superloss_value(l, tau, c.lambda, s);
        assert!(
            (vals[i] as f64 - expect).abs() < 1e-5,
            "{} vs {expect}",
            vals[i]
        );
        assert!((g[i] as f64 - s * 2.0 * xi).abs() < 1e-5);
        // the envelope theorem: dL_CL-MoE/dL = sigma*; finite difference of Eq. 16
        let h = 1e-6;
        let f = |l: f64| superloss_value(l, tau, c.lambda, sigma_star(l, tau, c.lambda));
        assert!(((f(l + h) - f(l - h)) / (2.0 * h) - s).abs() < 1e-6);
    }
}

#[test]
fn tau_moves_as_eq_19_is_printed_or_as_the_raw_loss() {
    let c = Curriculum::default();
    let t = c.next_tau(0.5, 0.2, 1.0);
    assert!((t - (0.8 * 0.2 + 0.2 * 0.5)).abs() < 1e-15);
    let raw = Curriculum {
        tau_source: TauSource::Raw,
        delta: 0.1,
        ..c
    };
    assert!((raw.next_tau(0.5, 0.2, 1.0) - (0.1 * 1.0 + 0.9 * 0.5)).abs() < 1e-15);
}
