//! AdamW (Loshchilov & Hutter), as PyTorch's `torch.optim.AdamW` computes it, with its
//! state exposed by variable name so that checkpoints can save and restore it:
//!
//! ```text
//! theta <- theta (1 - lr wd)                      (decoupled weight decay)
//! m <- b1 m + (1 - b1) g,   v <- b2 v + (1 - b2) g^2
//! theta <- theta - lr (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)
//! ```
//!
//! Gradient clipping scales all gradients by `min(1, max_norm / ||g||_2)` over the whole
//! set of trainable tensors (PyTorch's `clip_grad_norm_`).

use crate::error::Result;
use candle_core::{Tensor, Var};

/// AdamW's hyper-parameters.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AdamWConfig {
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
}

impl Default for AdamWConfig {
    /// PyTorch's defaults except weight decay 0 (PEFT recipes train adapters without it).
    fn default() -> Self {
        AdamWConfig {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
        }
    }
}

/// AdamW over named variables.
pub struct AdamW {
    pub cfg: AdamWConfig,
    /// `(name, variable, m, v)` in a fixed order.
    pub params: Vec<(String, Var, Tensor, Tensor)>,
    /// Steps taken.
    pub t: u64,
}

impl AdamW {
    pub fn new(vars: Vec<(String, Var)>, cfg: AdamWConfig) -> Result<Self> {
        let params = vars
            .into_iter()
            .map(|(n, v)| {
                let z = v.as_tensor().zeros_like()?;
                Ok((n, v, z.clone(), z))
            })
            .collect::<Result<_>>()?;
        Ok(AdamW { cfg, params, t: 0 })
    }

    /// One update with learning rate `lr` and gradients `grads[i]` for `params[i]`.
    pub fn step(&mut self, grads: &[Tensor], lr: f64) -> Result<()> {
        self.t += 1;
        let c = self.cfg;
        let bc1 = 1.0 - c.beta1.powi(self.t as i32);
        let bc2 = 1.0 - c.beta2.powi(self.t as i32);
        for ((_, var, m, v), g) in self.params.iter_mut().zip(grads) {
            *m = ((&*m * c.beta1)? + (g * (1.0 - c.beta1))?)?;
            *v = ((&*v * c.beta2)? + (g.sqr()? * (1.0 - c.beta2))?)?;
            let theta = var.as_tensor();
            let decayed = if c.weight_decay > 0.0 {
                (theta * (1.0 - lr * c.weight_decay))?
            } else {
                theta.clone()
            };
            let denom = ((&*v / bc2)?.sqrt()? + c.eps)?;
            let update = ((&*m / bc1)? / denom)?;
            var.set(&(decayed - (update * lr)?)?)?;
        }
        Ok(())
    }
}

/// Global L2 norm of `grads`.
pub fn global_norm(grads: &[Tensor]) -> Result<f64> {
    let mut s = 0.0f64;
    for g in grads {
        s += g
            .sqr()?
            .sum_all()?
            .to_dtype(candle_core::DType::F64)?
            .to_scalar::<f64>()?;
    }
    Ok(s.sqrt())
}

/// Scale `grads` so that their global norm is at most `max_norm`; returns the norm before.
pub fn clip(grads: &mut [Tensor], max_norm: f64) -> Result<f64> {
    let n = global_norm(grads)?;
    if n.is_finite() && max_norm > 0.0 && n > max_norm {
        let s = max_norm / (n + 1e-6);
        for g in grads.iter_mut() {
            *g = (&*g * s)?;
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    /// Two AdamW steps against the update written out in scalar arithmetic.
    #[test]
    fn adamw_matches_hand_arithmetic() {
        let cfg = AdamWConfig {
            beta1: 0.9,
            beta2: 0.99,
            eps: 1e-8,
            weight_decay: 0.1,
        };
        let x0 = [1.0f64, -2.0];
        let gs = [[0.5f64, 0.1], [-0.3, 0.2]];
        let var = Var::from_slice(&[1.0f32, -2.0], 2, &Device::Cpu).unwrap();
        let mut opt = AdamW::new(vec![("w".into(), var.clone())], cfg).unwrap();
        let lr = 0.05;
        for g in &gs {
            let t = Tensor::new(&[g[0] as f32, g[1] as f32], &Device::Cpu).unwrap();
            opt.step(&[t], lr).unwrap();
        }
        for i in 0..2 {
            let (mut x, mut m, mut v) = (x0[i], 0.0, 0.0);
            for (t, g) in gs.iter().enumerate() {
                let t = (t + 1) as i32;
                x *= 1.0 - lr * cfg.weight_decay;
                m = cfg.beta1 * m + (1.0 - cfg.beta1) * g[i];
                v = cfg.beta2 * v + (1.0 - cfg.beta2) * g[i] * g[i];
                let mh = m / (1.0 - cfg.beta1.powi(t));
                let vh = v / (1.0 - cfg.beta2.powi(t));
                x -= lr * mh / (vh.sqrt() + cfg.eps);
            }
            let got = var.as_tensor().to_vec1::<f32>().unwrap()[i] as f64;
            assert!((got - x).abs() < 1e-6, "{i}: {got} vs {x}");
        }
    }

    #[test]
    fn clipping_scales_to_the_max_norm() {
        let d = Device::Cpu;
        let mut g = vec![
            Tensor::new(&[3.0f32], &d).unwrap(),
            Tensor::new(&[4.0f32], &d).unwrap(),
        ];
        assert!((clip(&mut g, 1.0).unwrap() - 5.0).abs() < 1e-9);
        assert!((global_norm(&g).unwrap() - 1.0).abs() < 1e-5);
        assert!((clip(&mut g, 10.0).unwrap() - 1.0).abs() < 1e-5);
    }
}
