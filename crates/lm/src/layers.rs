//! The layers both families share: [`Linear`] (with its adapter slot and checkpoint
//! name), [`RmsNorm`] and the row gather [`gather_positions`].

use crate::adapter::Adapter;
use crate::error::Result;
use crate::grad::weight;
use crate::ops;
use candle_core::{DType, Tensor, D};
use candle_nn::VarBuilder;
use std::sync::Arc;

/// A linear projection `y = x W^T (+ b)` with its checkpoint name, so that adapters can
/// be attached by target-module name (`q_proj`, `up_proj`, ...).
#[derive(Debug, Clone)]
pub struct Linear {
    pub weight: Tensor,
    pub bias: Option<Tensor>,
    /// Module name (the last path component, e.g. `q_proj`).
    pub name: String,
    /// The module's checkpoint path (`model.layers.0.self_attn.q_proj`), recorded from the
    /// `VarBuilder` it was built with: adapter keys and full fine-tuning's keys are this.
    pub path: String,
    /// Trainable adapter added to the frozen projection, if attached.
    pub adapter: Option<Arc<Adapter>>,
}

impl Linear {
    pub fn new(
        in_dim: usize,
        out_dim: usize,
        bias: bool,
        vb: VarBuilder,
        name: &str,
    ) -> Result<Self> {
        let vb = vb.pp(name);
        let weight = vb.get((out_dim, in_dim), "weight")?;
        let bias = if bias {
            Some(vb.get(out_dim, "bias")?)
        } else {
            None
        };
        Ok(Linear {
            weight,
            bias,
            name: name.to_string(),
            path: vb.prefix(),
            adapter: None,
        })
    }

    /// A projection whose weight `[out, in]` is cut from a packed one (Baichuan's
    /// `W_pack`), named `name` under `vb`'s path (no bias).
    pub fn from_weight(weight: Tensor, vb: &VarBuilder, name: &str) -> Self {
        Linear {
            weight,
            bias: None,
            name: name.to_string(),
            path: vb.pp(name).prefix(),
            adapter: None,
        }
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.forward_add(x, None)
    }

    /// `x W^T (+ b) + adapter(x) + residual`.
    pub fn forward_add(&self, x: &Tensor, residual: Option<&Tensor>) -> Result<Tensor> {
        let w = weight(&self.weight);
        // A bias in the activations' dtype (a bf16 base on the CPU computes in f32).
        let bias = |b: &Tensor| weight(b).to_dtype(x.dtype());
        let frozen_bias = self.bias.as_ref().is_none_or(|b| !weight(b).track_op());
        if ops::fused(x) && !w.track_op() && frozen_bias {
            // Bias, adapter and residual are added inside the projection's op.
            let b = self.bias.as_ref().map(bias).transpose()?;
            let wb = (&w, b.as_ref());
            return Ok(match (&self.adapter, residual) {
                (Some(a), None) => {
                    let (code, up) = a.factors(x)?;
                    ops::frozen_linear_lowrank(x, wb, &code, &up)?
                }
                (Some(a), Some(r)) => ops::frozen_affine(x, wb, Some(&(a.forward(x)? + r)?))?,
                (None, r) => ops::frozen_affine(x, wb, r)?,
            });
        }
        let extra = match (&self.adapter, residual) {
            (Some(a), Some(r)) => Some((a.forward(x)? + r)?),
            (Some(a), None) => Some(a.forward(x)?),
            (None, r) => r.cloned(),
        };
        let y = if ops::frozen_on_device(x) && !w.track_op() {
            ops::frozen_linear(x, &w)?
        } else {
            x.broadcast_matmul(&w.to_dtype(x.dtype())?.t()?)?
        };
        let y = match &self.bias {
            Some(b) => y.broadcast_add(&bias(b)?)?,
            None => y,
        };
        Ok(match extra {
            Some(e) => (y + e)?,
            None => y,
        })
    }
}

/// RMSNorm, composed from differentiable ops: `x / sqrt(mean(x^2) + eps) * w`.
#[derive(Debug, Clone)]
pub struct RmsNorm {
    pub weight: Tensor,
    pub eps: f64,
    /// The module's checkpoint path (`model.norm`), recorded when it was built.
    pub path: String,
}

impl RmsNorm {
    pub fn new(size: usize, eps: f64, vb: VarBuilder) -> Result<Self> {
        Ok(RmsNorm {
            weight: vb.get(size, "weight")?,
            eps,
            path: vb.prefix(),
        })
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        // The weight in the activations' dtype (a bf16 base on the CPU computes in f32).
        let w = weight(&self.weight).to_dtype(x.dtype())?;
        if ops::fused(x) {
            return Ok(ops::rms_norm(x, &w, self.eps)?);
        }
        // Half-precision inputs are normalised in f32, as transformers does.
        let dt = x.dtype();
        let xf = x.to_dtype(DType::F32)?;
        let ms = xf.sqr()?.mean_keepdim(D::Minus1)?;
        Ok(xf
            .broadcast_div(&(ms + self.eps)?.sqrt()?)?
            .to_dtype(dt)?
            .broadcast_mul(&w)?)
    }
}

/// Rows `hidden[b, positions[b], :]` -> `[B, H]`.
pub fn gather_positions(hidden: &Tensor, positions: &[usize]) -> Result<Tensor> {
    let (b, t, h) = hidden.dims3()?;
    let flat: Vec<u32> = positions
        .iter()
        .enumerate()
        .map(|(i, &p)| (i * t + p) as u32)
        .collect();
    let idx = Tensor::from_vec(flat, b, hidden.device())?;
    Ok(hidden.reshape((b * t, h))?.index_select(&idx, 0)?)
}

/// `h rows^T` in f32 (`[B, H] x [N, H]^T -> [B, N]`): the answer tokens' logits from a
/// half-precision model are computed from its last state and head rows upcast to f32, so
/// the two logits whose difference is P(Yes) carry no bf16 rounding of their own (ours: a
/// handful of head rows, a negligible cost; transformers rounds the whole head's output).
pub fn f32_product(h: &Tensor, rows: &Tensor) -> Result<Tensor> {
    let (h, rows) = (h.to_dtype(DType::F32)?, rows.to_dtype(DType::F32)?);
    Ok(h.matmul(&rows.t()?)?)
}
