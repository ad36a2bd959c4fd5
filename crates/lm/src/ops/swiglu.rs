//! SwiGLU gate `y = silu(g) u` with `silu(g) = g sigma(g)`, and its backward:
//! `dg = dy u sigma(g) (1 + g (1 - sigma(g)))`, `du = dy silu(g)`.
//!
//! With a frozen down projection `W` the gate and the projection fuse: `z = y W^T`, whose
//! backward needs `dy = dz W` and `g`, `u` only, so `y` (`[B, T, intermediate]`, the
//! widest activation of the block) is never kept for backward.

use super::fastexp::{sigmoid, wide_fn};
use super::linear::{project, project_back};
use super::{cpu_slice, cpu_tensor, msg, with_f32};
use candle_core::{CpuStorage, CustomOp2, Layout, Shape, Tensor};
use rayon::prelude::*;

/// Elements per parallel task.
pub(super) const CHUNK: usize = 1 << 14;

wide_fn! {
    /// `y = silu(g) * u` on one chunk.
    pub(super) fn gate_chunk(y: &mut [f32], g: &[f32], u: &[f32]) {
        for ((y, g), u) in y.iter_mut().zip(g).zip(u) {
            *y = g * sigmoid(*g) * u;
        }
    }
}

wide_fn! {
    /// [`gate_bwd`] on one chunk.
    pub(super) fn gate_bwd_chunk(dg: &mut [f32], du: &mut [f32], g: &[f32], u: &[f32], dy: &[f32]) {
        let rows = dg.iter_mut().zip(du.iter_mut()).zip(g.iter().zip(u).zip(dy));
        for ((dg, du), ((&g, &u), &dy)) in rows {
            let s = sigmoid(g);
            *dg = dy * u * s * (1.0 + g * (1.0 - s));
            *du = dy * g * s;
        }
    }
}

/// `silu(g) * u`, elementwise.
fn gate(g: &[f32], u: &[f32]) -> Vec<f32> {
    let mut y = vec![0f32; g.len()];
    y.par_chunks_mut(CHUNK)
        .zip(g.par_chunks(CHUNK).zip(u.par_chunks(CHUNK)))
        .for_each(|(y, (g, u))| gate_chunk(y, g, u));
    y
}

/// `(dg, du)` of [`gate`] for the output gradient `dy`.
fn gate_bwd(g: &[f32], u: &[f32], dy: &[f32]) -> (Vec<f32>, Vec<f32>) {
    let mut dg = vec![0f32; g.len()];
    let mut du = vec![0f32; g.len()];
    dg.par_chunks_mut(CHUNK)
        .zip(du.par_chunks_mut(CHUNK))
        .zip(g.par_chunks(CHUNK).zip(u.par_chunks(CHUNK)))
        .zip(dy.par_chunks(CHUNK))
        .for_each(|(((dg, du), (g, u)), dy)| gate_bwd_chunk(dg, du, g, u, dy));
    (dg, du)
}

/// The gate, optionally followed by a frozen projection `down` (`[out, intermediate]`).
struct SwiGlu {
    down: Option<Tensor>,
}

impl CustomOp2 for SwiGlu {
    fn name(&self) -> &'static str {
        "swiglu"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (g, u) = (
            cpu_slice(s1, l1, self.name())?,
            cpu_slice(s2, l2, self.name())?,
        );
        if l1.dims() != l2.dims() {
            return Err(msg(
                self.name(),
                format!("{:?} against {:?}", l1.dims(), l2.dims()),
            ));
        }
        let y = gate(g, u);
        let Some(down) = &self.down else {
            return Ok((CpuStorage::F32(y), l1.shape().clone()));
        };
        project(&y, l1.dims(), down, None, self.name())
    }

    fn bwd(
        &self,
        gt: &Tensor,
        ut: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let dy = match &self.down {
            None => grad.clone(),
            Some(w) => project_back(w, gt, grad)?,
        };
        with_f32(gt, self.name(), |g| {
            with_f32(ut, self.name(), |u| {
                with_f32(&dy, self.name(), |dy| {
                    let (dg, du) = gate_bwd(g, u, dy);
                    let dims = gt.dims();
                    Ok((Some(cpu_tensor(dg, dims)?), Some(cpu_tensor(du, dims)?)))
                })
            })
        })
    }
}

/// `silu(g) * u`, elementwise, for `g` and `u` of the same shape. CPU, f32.
pub fn swiglu(g: &Tensor, u: &Tensor) -> candle_core::Result<Tensor> {
    g.contiguous()?
        .apply_op2(&u.contiguous()?, SwiGlu { down: None })
}

/// `(silu(g) * u) W^T` for a frozen `down` weight `W` (`[out, intermediate]`), without
/// keeping `silu(g) * u` for backward. CPU, f32.
pub fn swiglu_down(g: &Tensor, u: &Tensor, down: &Tensor) -> candle_core::Result<Tensor> {
    let down = Some(down.contiguous()?);
    g.contiguous()?.apply_op2(&u.contiguous()?, SwiGlu { down })
}
