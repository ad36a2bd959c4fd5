//! Rotary position embedding on `[B, T, H, D]` in the half-split layout (HF's
//! `rotate_half`): for `i < D/2`, `y_i = x_i cos - x_{i+D/2} sin` and
//! `y_{i+D/2} = x_{i+D/2} cos + x_i sin` with the angle of position `t` and frequency `i`.
//! A rotation is orthogonal, so the backward pass is the inverse rotation (`sin -> -sin`).

use super::{cpu_slice, msg, with_f32};
use candle_core::{CpuStorage, CustomOp1, Layout, Shape, Tensor};
use rayon::prelude::*;

struct Rope {
    /// `[max_len, D/2]` tables.
    cos: Tensor,
    sin: Tensor,
    /// +1 rotates forward, -1 backward.
    sign: f32,
}

impl CustomOp1 for Rope {
    fn name(&self) -> &'static str {
        "rope"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = cpu_slice(s, l, self.name())?;
        let (_, t, nh, d) = l.shape().dims4()?;
        let (max_len, half) = self.cos.dims2()?;
        if d != 2 * half || t > max_len {
            return Err(msg(
                self.name(),
                format!("input {:?} against tables [{max_len}, {half}]", l.dims()),
            ));
        }
        let y = with_f32(&self.cos, self.name(), |cos| {
            with_f32(&self.sin, self.name(), |sin| {
                Ok(rotate(x, (t, nh, d), (cos, sin), self.sign))
            })
        })?;
        Ok((CpuStorage::F32(y), l.shape().clone()))
    }

    fn bwd(
        &self,
        _arg: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        Ok(Some(grad.contiguous()?.apply_op1(Rope {
            cos: self.cos.clone(),
            sin: self.sin.clone(),
            sign: -self.sign,
        })?))
    }
}

/// `x` (`[B, T, H, D]`, row-major) rotated for positions `0..T` with the tables
/// `(cos, sin)` (`[max_len, D/2]` row-major); `sign` -1 rotates backward.
pub(super) fn rotate(
    x: &[f32],
    (t, nh, d): (usize, usize, usize),
    (cos, sin): (&[f32], &[f32]),
    sign: f32,
) -> Vec<f32> {
    let half = d / 2;
    let mut y = vec![0f32; x.len()];
    // One chunk per (b, t): all heads of one position share the angles.
    y.par_chunks_mut(nh * d)
        .zip(x.par_chunks(nh * d))
        .enumerate()
        .with_min_len(4)
        .for_each(|(bt, (y, x))| {
            let p = bt % t;
            let (c, s) = (&cos[p * half..][..half], &sin[p * half..][..half]);
            for (y, x) in y.chunks_mut(d).zip(x.chunks(d)) {
                let (x1, x2) = x.split_at(half);
                let (y1, y2) = y.split_at_mut(half);
                for i in 0..half {
                    let s = sign * s[i];
                    y1[i] = x1[i] * c[i] - x2[i] * s;
                    y2[i] = x2[i] * c[i] + x1[i] * s;
                }
            }
        });
    y
}

/// Rotate `x` of shape `[B, T, H, D]` for positions `0..T` with tables `cos`, `sin` of shape
/// `[max_len, D/2]`. CPU, f32.
pub fn rope(x: &Tensor, cos: &Tensor, sin: &Tensor) -> candle_core::Result<Tensor> {
    x.contiguous()?.apply_op1(Rope {
        cos: cos.contiguous()?,
        sin: sin.contiguous()?,
        sign: 1.0,
    })
}
