//! The optimizers, with their state exposed by variable name so that checkpoints can save
//! and restore it: Adafactor ([`AdafactorConfig`], paper B's optimiser; `adafactor_step`
//! has its update) and AdamW (Loshchilov & Hutter), as PyTorch's `torch.optim.AdamW`
//! computes it:
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

/// Adafactor's hyper-parameters (Shazeer & Stern 2018, as `transformers.Adafactor`
/// computes it). The learning rate is always the run's (`--lr` and its schedule):
/// `relative_step` is off, as paper B's fixed learning rates need.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AdafactorConfig {
    /// Added to the squared gradient (`eps[0]`).
    pub eps1: f64,
    /// Lower bound of the parameter scale (`eps[1]`).
    pub eps2: f64,
    /// The update is scaled down to at most this RMS.
    pub clip_threshold: f64,
    /// `beta2_t = 1 - t^decay_rate`.
    pub decay_rate: f64,
    /// First-moment decay; `None`: no first moment (Adafactor's default).
    pub beta1: Option<f64>,
    pub weight_decay: f64,
    /// Scale the learning rate by the parameter's RMS (at least `eps2`).
    pub scale_parameter: bool,
}

impl Default for AdafactorConfig {
    /// transformers' defaults with `scale_parameter` off (ours: with a fixed learning rate
    /// the T5 fine-tuning recipe `Adafactor(lr, relative_step=False, scale_parameter=False)`).
    fn default() -> Self {
        AdafactorConfig {
            eps1: 1e-30,
            eps2: 1e-3,
            clip_threshold: 1.0,
            decay_rate: -0.8,
            beta1: None,
            weight_decay: 0.0,
            scale_parameter: false,
        }
    }
}

/// Which update rule an [`Optimizer`] applies.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Rule {
    AdamW(AdamWConfig),
    Adafactor(AdafactorConfig),
}

/// One trained variable and its optimizer state, by slot name: `m`, `v` for AdamW;
/// `row`, `col` (a tensor of two or more dimensions: factored second moments) or `v`, and
/// `m` with `beta1`, for Adafactor.
pub struct Param {
    pub name: String,
    pub var: Var,
    pub state: Vec<(&'static str, Tensor)>,
}

/// AdamW or Adafactor over named variables, with its state exposed for checkpoints.
pub struct Optimizer {
    pub rule: Rule,
    pub params: Vec<Param>,
    /// Steps taken.
    pub t: u64,
}

fn zeros(dims: &[usize], like: &Tensor) -> Result<Tensor> {
    Ok(Tensor::zeros(dims, like.dtype(), like.device())?)
}

/// Root mean square of `t`'s entries.
fn rms(t: &Tensor) -> Result<f64> {
    let ms = t
        .sqr()?
        .mean_all()?
        .to_dtype(candle_core::DType::F64)?
        .to_scalar::<f64>()?;
    Ok(ms.sqrt())
}

impl Optimizer {
    pub fn new(vars: Vec<(String, Var)>, rule: Rule) -> Result<Self> {
        let params = vars
            .into_iter()
            .map(|(name, var)| {
                let t = var.as_tensor();
                let dims = t.dims().to_vec();
                let state = match rule {
                    Rule::AdamW(_) => vec![("m", t.zeros_like()?), ("v", t.zeros_like()?)],
                    Rule::Adafactor(c) => {
                        let mut st = if dims.len() >= 2 {
                            let n = dims.len();
                            let mut col = dims[..n - 2].to_vec();
                            col.push(dims[n - 1]);
                            vec![("row", zeros(&dims[..n - 1], t)?), ("col", zeros(&col, t)?)]
                        } else {
                            vec![("v", t.zeros_like()?)]
                        };
                        if c.beta1.is_some() {
                            st.push(("m", t.zeros_like()?));
                        }
                        st
                    }
                };
                Ok(Param { name, var, state })
            })
            .collect::<Result<_>>()?;
        Ok(Optimizer { rule, params, t: 0 })
    }

    /// AdamW over `vars`.
    pub fn adamw(vars: Vec<(String, Var)>, cfg: AdamWConfig) -> Result<Self> {
        Self::new(vars, Rule::AdamW(cfg))
    }

    /// The variables, in order.
    pub fn vars(&self) -> impl Iterator<Item = (&str, &Var)> {
        self.params.iter().map(|p| (p.name.as_str(), &p.var))
    }

    /// One update with learning rate `lr` and gradients `grads[i]` for `params[i]`.
    pub fn step(&mut self, grads: &[Tensor], lr: f64) -> Result<()> {
        self.t += 1;
        let t = self.t;
        for (p, g) in self.params.iter_mut().zip(grads) {
            match self.rule {
                Rule::AdamW(c) => adamw_step(p, g, lr, t, c)?,
                Rule::Adafactor(c) => adafactor_step(p, g, lr, t, c)?,
            }
        }
        Ok(())
    }
}

fn adamw_step(p: &mut Param, g: &Tensor, lr: f64, t: u64, c: AdamWConfig) -> Result<()> {
    let bc1 = 1.0 - c.beta1.powi(t as i32);
    let bc2 = 1.0 - c.beta2.powi(t as i32);
    let [(_, m), (_, v)] = &mut p.state[..] else {
        unreachable!("AdamW state is [m, v]")
    };
    *m = ((&*m * c.beta1)? + (g * (1.0 - c.beta1))?)?;
    *v = ((&*v * c.beta2)? + (g.sqr()? * (1.0 - c.beta2))?)?;
    let theta = p.var.as_tensor();
    let decayed = if c.weight_decay > 0.0 {
        (theta * (1.0 - lr * c.weight_decay))?
    } else {
        theta.clone()
    };
    let denom = ((&*v / bc2)?.sqrt()? + c.eps)?;
    let update = ((&*m / bc1)? / denom)?;
    p.var.set(&(decayed - (update * lr)?)?)?;
    Ok(())
}

/// transformers' `Adafactor.step` for one tensor, `relative_step` off:
///
/// ```text
/// beta2_t = 1 - t^decay_rate;  G = g^2 + eps1
/// factored (2+ dims): R <- beta2_t R + (1 - beta2_t) mean_last(G),
///                     C <- beta2_t C + (1 - beta2_t) mean_second_last(G),
///                     u = g / sqrt(R / mean_last(R) (x) C)
/// else:               V <- beta2_t V + (1 - beta2_t) G,  u = g / sqrt(V)
/// u <- u / max(1, rms(u) / clip_threshold);  lr_t = lr * (scale_parameter ? max(eps2, rms(theta)) : 1)
/// u <- lr_t u;  with beta1: m <- beta1 m + (1 - beta1) u, u = m
/// theta <- theta - weight_decay lr_t theta - u
/// ```
fn adafactor_step(p: &mut Param, g: &Tensor, lr: f64, t: u64, c: AdafactorConfig) -> Result<()> {
    let theta = p.var.as_tensor().clone();
    let lr_t = if c.scale_parameter {
        lr * rms(&theta)?.max(c.eps2)
    } else {
        lr
    };
    let beta2t = 1.0 - (t as f64).powf(c.decay_rate);
    let g2 = (g.sqr()? + c.eps1)?;
    let ema = |old: &Tensor, new: &Tensor| -> Result<Tensor> {
        Ok(((old * beta2t)? + (new * (1.0 - beta2t))?)?)
    };
    let find = |st: &[(&str, Tensor)], k: &str| st.iter().position(|(n, _)| *n == k);
    let mut u = match (find(&p.state, "row"), find(&p.state, "col")) {
        (Some(r), Some(cl)) => {
            let n = g.rank();
            let row = ema(&p.state[r].1, &g2.mean(n - 1)?)?;
            let col = ema(&p.state[cl].1, &g2.mean(n - 2)?)?;
            let r_factor = row
                .broadcast_div(&row.mean_keepdim(n - 2)?)?
                .sqrt()?
                .recip()?
                .unsqueeze(n - 1)?;
            let c_factor = col.unsqueeze(n - 2)?.sqrt()?.recip()?;
            p.state[r].1 = row;
            p.state[cl].1 = col;
            r_factor.broadcast_mul(&c_factor)?.broadcast_mul(g)?
        }
        _ => {
            let i = find(&p.state, "v").expect("unfactored Adafactor state has v");
            let v = ema(&p.state[i].1, &g2)?;
            let u = (g / v.sqrt()?)?;
            p.state[i].1 = v;
            u
        }
    };
    let scale = (rms(&u)? / c.clip_threshold).max(1.0);
    u = (u / scale)?;
    u = (u * lr_t)?;
    if let Some(b1) = c.beta1 {
        let i = find(&p.state, "m").expect("Adafactor with beta1 has m");
        u = ((&p.state[i].1 * b1)? + (u * (1.0 - b1))?)?;
        p.state[i].1 = u.clone();
    }
    let decayed = if c.weight_decay != 0.0 {
        (&theta * (1.0 - c.weight_decay * lr_t))?
    } else {
        theta
    };
    p.var.set(&(decayed - u)?)?;
    Ok(())
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
        let mut opt = Optimizer::adamw(vec![("w".into(), var.clone())], cfg).unwrap();
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

    /// Adafactor in scalar f64 arithmetic (transformers' `Adafactor.step`, relative step
    /// off): a factored 2x3 matrix and an unfactored vector, two steps.
    fn adafactor_by_hand(
        x0: &[f64],
        shape: &[usize],
        gs: &[Vec<f64>],
        lr: f64,
        c: AdafactorConfig,
    ) -> Vec<f64> {
        let rms = |v: &[f64]| (v.iter().map(|x| x * x).sum::<f64>() / v.len() as f64).sqrt();
        let mut x = x0.to_vec();
        let n = x.len();
        let (rows, cols) = if shape.len() == 2 {
            (shape[0], shape[1])
        } else {
            (0, 0)
        };
        let (mut r, mut cl, mut v, mut m) =
            (vec![0.0; rows], vec![0.0; cols], vec![0.0; n], vec![0.0; n]);
        for (step, g) in gs.iter().enumerate() {
            let t = (step + 1) as f64;
            let lr_t = if c.scale_parameter {
                lr * rms(&x).max(c.eps2)
            } else {
                lr
            };
            let b2 = 1.0 - t.powf(c.decay_rate);
            let g2: Vec<f64> = g.iter().map(|a| a * a + c.eps1).collect();
            let mut u = vec![0.0; n];
            if shape.len() == 2 {
                for i in 0..rows {
                    let mean = (0..cols).map(|j| g2[i * cols + j]).sum::<f64>() / cols as f64;
                    r[i] = b2 * r[i] + (1.0 - b2) * mean;
                }
                for j in 0..cols {
                    let mean = (0..rows).map(|i| g2[i * cols + j]).sum::<f64>() / rows as f64;
                    cl[j] = b2 * cl[j] + (1.0 - b2) * mean;
                }
                let rmean = r.iter().sum::<f64>() / rows as f64;
                for i in 0..rows {
                    for j in 0..cols {
                        u[i * cols + j] = g[i * cols + j] / ((r[i] / rmean) * cl[j]).sqrt();
                    }
                }
            } else {
                for k in 0..n {
                    v[k] = b2 * v[k] + (1.0 - b2) * g2[k];
                    u[k] = g[k] / v[k].sqrt();
                }
            }
            let scale = (rms(&u) / c.clip_threshold).max(1.0);
            for k in 0..n {
                u[k] = u[k] / scale * lr_t;
                if let Some(b1) = c.beta1 {
                    m[k] = b1 * m[k] + (1.0 - b1) * u[k];
                    u[k] = m[k];
                }
                x[k] = x[k] * (1.0 - c.weight_decay * lr_t) - u[k];
            }
        }
        x
    }

    #[test]
    fn adafactor_matches_hand_arithmetic() {
        let d = Device::Cpu;
        let mat0 = [0.5f64, -1.0, 2.0, 0.25, 1.5, -0.75];
        let vec0 = [1.0f64, -2.0, 0.5];
        let mat_g = [
            vec![0.3, -0.2, 0.05, 0.4, 0.1, -0.6],
            vec![-0.1, 0.25, 0.3, -0.2, 0.05, 0.2],
        ];
        let vec_g = [vec![0.5, 0.1, -0.3], vec![-0.3, 0.2, 0.4]];
        let f32s = |v: &[f64]| v.iter().map(|&x| x as f32).collect::<Vec<_>>();
        for c in [
            AdafactorConfig::default(),
            AdafactorConfig {
                beta1: Some(0.9),
                weight_decay: 0.1,
                scale_parameter: true,
                clip_threshold: 0.5,
                ..AdafactorConfig::default()
            },
        ] {
            let mat = Var::from_slice(&f32s(&mat0), (2, 3), &d).unwrap();
            let vecv = Var::from_slice(&f32s(&vec0), 3, &d).unwrap();
            let mut opt = Optimizer::new(
                vec![("m".into(), mat.clone()), ("b".into(), vecv.clone())],
                Rule::Adafactor(c),
            )
            .unwrap();
            let names: Vec<&str> = opt.params[0].state.iter().map(|s| s.0).collect();
            assert_eq!(
                &names[..2],
                ["row", "col"],
                "a matrix's second moments are factored"
            );
            assert_eq!(opt.params[0].state[1].1.dims(), [3]);
            let lr = 0.01;
            for k in 0..2 {
                let gm = Tensor::from_slice(&f32s(&mat_g[k]), (2, 3), &d).unwrap();
                let gv = Tensor::from_slice(&f32s(&vec_g[k]), 3, &d).unwrap();
                opt.step(&[gm, gv], lr).unwrap();
            }
            let want_m = adafactor_by_hand(&mat0, &[2, 3], &mat_g, lr, c);
            let want_v = adafactor_by_hand(&vec0, &[3], &vec_g, lr, c);
            let got_m = mat
                .as_tensor()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap();
            let got_v = vecv.as_tensor().to_vec1::<f32>().unwrap();
            for (got, want) in got_m.iter().zip(&want_m).chain(got_v.iter().zip(&want_v)) {
                assert!((*got as f64 - want).abs() < 1e-6, "{got} vs {want} ({c:?})");
            }
            let moved = got_m
                .iter()
                .zip(&mat0)
                .any(|(a, b)| (*a as f64 - b).abs() > 1e-4);
            assert!(moved, "the step moves the weights");
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
