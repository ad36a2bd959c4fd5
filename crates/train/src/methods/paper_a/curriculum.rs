//! CL-MoE's curriculum (paper A, Sec. 4.2, Eq. 13-19): SuperLoss (Castells et al., 2020)
//! with the confidence in closed form.
//!
//! * Eq. 13: `L_lambda(L_i, sigma_i) = (L_i - tau) sigma_i + lambda (ln sigma_i)^2`.
//! * Eq. 17-18: its minimiser over `sigma_i` is
//!   `sigma* = exp(-W0(max(-2/e, beta) / 2))`, `beta = (L_i - tau) / lambda`, with `W0`
//!   the principal branch of Lambert W. It is computed on the *detached* loss, so the
//!   gradient of `L_CL-MoE(L_i) = L_lambda(L_i, sigma*)` (Eq. 15) is `sigma* dL_i`.
//!   For `beta < -2/e` there is no stationary point; the clamp gives `sigma* = e`.
//! * Eq. 19: `tau` starts at `ln C` (`C = 2` classes) and after every optimizer step
//!   `tau <- delta * L^t + (1 - delta) * tau`, with `L^t` the step's loss. As printed, `L^t`
//!   is the CL-MoE loss (Eq. 15) of the step ([`TauSource::ClMoe`], the default); public
//!   SuperLoss code tracks the raw loss instead ([`TauSource::Raw`], an option).

use crate::error::Result;
use candle_core::Tensor;

/// `W0(x)`, the principal branch of Lambert W (`w e^w = x`, `w >= -1`), for
/// `x >= -1/e`. `None` below the branch point or for non-finite `x`.
///
/// A starting point from the branch-point series (near `-1/e`), the Winitzki
/// approximation (moderate `x`) or the asymptotic series (large `x`), then Halley steps
/// until the update is below 1e-15 relative.
pub fn lambert_w0(x: f64) -> Option<f64> {
    let e = std::f64::consts::E;
    let branch = -1.0 / e;
    if !x.is_finite() || x < branch - 1e-15 {
        return None;
    }
    if x == 0.0 {
        return Some(0.0);
    }
    let mut w = if x < -0.32 {
        // W0(x) = -1 + p - p^2/3 + 11/72 p^3 - 43/540 p^4 + ..., p = sqrt(2 (e x + 1))
        let p = (2.0 * (e * x + 1.0)).max(0.0).sqrt();
        -1.0 + p * (1.0 + p * (-1.0 / 3.0 + p * (11.0 / 72.0 + p * (-43.0 / 540.0))))
    } else if x < 3.0 {
        let l = x.ln_1p();
        l * (1.0 - l.ln_1p() / (2.0 + l))
    } else {
        let l1 = x.ln();
        let l2 = l1.ln();
        l1 - l2 + l2 / l1
    };
    for _ in 0..64 {
        let ew = w.exp();
        let f = w * ew - x;
        if f == 0.0 || w <= -1.0 {
            break;
        }
        let wp1 = w + 1.0;
        let step = f / (ew * wp1 - (w + 2.0) * f / (2.0 * wp1));
        let next = (w - step).max(-1.0);
        let done = (next - w).abs() <= 1e-15 * next.abs().max(1e-300);
        w = next;
        if done {
            break;
        }
    }
    Some(w)
}

/// `sigma*` of Eq. 17 for a (detached) loss: `exp(-W0(max(-2/e, (L - tau)/lambda) / 2))`.
pub fn sigma_star(loss: f64, tau: f64, lambda: f64) -> f64 {
    let beta = (loss - tau) / lambda;
    let arg = 0.5 * beta.max(-2.0 / std::f64::consts::E);
    // The clamp keeps `arg >= -1/e`; rounding can put it a hair below, where W0 = -1.
    (-lambert_w0(arg).unwrap_or(-1.0)).exp()
}

/// Eq. 13: `(L - tau) sigma + lambda (ln sigma)^2`.
pub fn superloss_value(loss: f64, tau: f64, lambda: f64, sigma: f64) -> f64 {
    (loss - tau) * sigma + lambda * sigma.ln().powi(2)
}

/// What Eq. 19's moving average tracks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TauSource {
    /// The step's CL-MoE loss (Eq. 15), as the paper prints Eq. 19.
    ClMoe,
    /// The step's raw per-sample loss (Eq. 7), as public SuperLoss code does.
    Raw,
}

impl std::str::FromStr for TauSource {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "cl-moe" => Ok(TauSource::ClMoe),
            "raw" => Ok(TauSource::Raw),
            o => Err(format!("tau source `{o}`: expected cl-moe or raw")),
        }
    }
}

/// The curriculum's hyper-parameters (paper A: `lambda = 0.25`, `delta = 0.8`, `C = 2`).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Curriculum {
    pub lambda: f64,
    pub delta: f64,
    /// Number of classes `C`; `tau` starts at `ln C`.
    pub classes: f64,
    pub tau_source: TauSource,
}

impl Default for Curriculum {
    fn default() -> Self {
        Curriculum {
            lambda: 0.25,
            delta: 0.8,
            classes: 2.0,
            tau_source: TauSource::ClMoe,
        }
    }
}

impl Curriculum {
    /// `tau_0 = ln C`.
    pub fn tau0(&self) -> f64 {
        self.classes.ln()
    }

    /// Eq. 19: the next `tau` after a step whose CL-MoE loss was `cl_moe` and raw loss `raw`.
    pub fn next_tau(&self, tau: f64, cl_moe: f64, raw: f64) -> f64 {
        let l = match self.tau_source {
            TauSource::ClMoe => cl_moe,
            TauSource::Raw => raw,
        };
        self.delta * l + (1.0 - self.delta) * tau
    }

    /// Eq. 15 per sample: `losses` `[N]` (with their graph) -> `[N]` SuperLoss values, and
    /// the confidences `sigma*` used (computed on the detached losses).
    pub fn apply(&self, losses: &Tensor, tau: f64) -> Result<(Tensor, Vec<f64>)> {
        let values: Vec<f64> = losses.to_dtype(candle_core::DType::F64)?.to_vec1::<f64>()?;
        let sigmas: Vec<f64> = values
            .iter()
            .map(|&l| sigma_star(l, tau, self.lambda))
            .collect();
        let reg: Vec<f32> = sigmas
            .iter()
            .map(|s| (self.lambda * s.ln().powi(2)) as f32)
            .collect();
        let dev = losses.device();
        let n = sigmas.len();
        let sig = Tensor::from_vec(sigmas.iter().map(|&s| s as f32).collect(), n, dev)?;
        let reg = Tensor::from_vec(reg, n, dev)?;
        let out = ((losses - tau)? * sig)?.add(&reg)?;
        Ok((out, sigmas))
    }
}
