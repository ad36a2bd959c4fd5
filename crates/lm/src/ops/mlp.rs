//! A frozen SwiGLU MLP over bf16 weights in one op (`--dtype bf16` on the CPU; issue 28):
//! `z = r + (silu(g) u) W_d^T` with `g = x W_g^T` and `u = x W_u^T`.
//!
//! The arithmetic is [`super::swiglu_down`]'s with `g` and `u` rounded to bf16 first, as a
//! bf16 model's activations are (ours: the products already round their inputs to bf16,
//! [`super::bf16`]). Rounded, they are kept for backward in bf16, inside the op, at half
//! the bytes of the two f32 tensors the unfused path keeps (`[B, T, intermediate]` each,
//! the widest activations of the block), and the residual sum is formed in place, so no
//! addition node keeps the projection's output either. Backward: `dy = dz W_d`,
//! `(dg, du)` of the gate from the kept `g`, `u`, then `dx = dg W_g + du W_u`; `dr = dz`.

use super::bf16::{gw, xwt};
use super::swiglu::{gate_bwd_chunk, gate_chunk, CHUNK};
use super::{cpu_slice, msg, with_elems, with_f32};
use candle_core::{CpuStorage, CustomOp2, Layout, Shape, Tensor};
use half::{bf16, slice::HalfFloatSliceExt};
use rayon::prelude::*;
use std::sync::Mutex;

/// The op: the three frozen bf16 weights (`gate`, `up` `[I, H]`, `down` `[H, I]`) and the
/// rounded `g`, `u` of its forward pass.
struct FrozenMlp {
    gate: Tensor,
    up: Tensor,
    down: Tensor,
    kept: Mutex<Option<(Vec<bf16>, Vec<bf16>)>>,
    /// Whether backward can run (an input is tracked): otherwise nothing is kept.
    keep: bool,
}

impl FrozenMlp {
    /// `(H, I)`, checking the three weights against each other.
    fn sizes(&self) -> candle_core::Result<(usize, usize)> {
        let (i, h) = self.gate.dims2()?;
        if self.up.dims2()? != (i, h) || self.down.dims2()? != (h, i) {
            let dims = [self.gate.dims(), self.up.dims(), self.down.dims()];
            return Err(msg("frozen-mlp", format!("weights {dims:?}")));
        }
        Ok((h, i))
    }
}

/// `f` on the bf16 elements of the weight `w`.
fn bf16_weight(w: &Tensor, f: impl FnOnce(&[bf16])) -> candle_core::Result<()> {
    with_elems(w, "frozen-mlp", |w| {
        f(w);
        Ok(())
    })
}

/// `v` rounded to bf16 in place (nearest even); the bf16 values too when `keep`.
fn round_in_place(v: &mut [f32], keep: bool) -> Option<Vec<bf16>> {
    if !keep {
        v.par_chunks_mut(CHUNK).for_each(|v| {
            let mut o = vec![bf16::ZERO; v.len()];
            o.convert_from_f32_slice(v);
            o.convert_to_f32_slice(v);
        });
        return None;
    }
    let mut out = vec![bf16::ZERO; v.len()];
    out.par_chunks_mut(CHUNK)
        .zip(v.par_chunks_mut(CHUNK))
        .for_each(|(o, v)| {
            o.convert_from_f32_slice(v);
            o.convert_to_f32_slice(v);
        });
    Some(out)
}

impl CustomOp2 for FrozenMlp {
    fn name(&self) -> &'static str {
        "frozen-mlp"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (x, r) = (
            cpu_slice(s1, l1, self.name())?,
            cpu_slice(s2, l2, self.name())?,
        );
        let (h, i) = self.sizes()?;
        if l1.dims().last() != Some(&h) || l1.dims() != l2.dims() {
            let dims = (l1.dims(), l2.dims());
            return Err(msg(
                self.name(),
                format!("input and residual {dims:?}, hidden {h}"),
            ));
        }
        let m = x.len() / h;
        let (mut g, mut u) = (vec![0f32; m * i], vec![0f32; m * i]);
        bf16_weight(&self.gate, |w| xwt(&mut g, x, w, (m, i, h), false))?;
        bf16_weight(&self.up, |w| xwt(&mut u, x, w, (m, i, h), false))?;
        let kept = (
            round_in_place(&mut g, self.keep),
            round_in_place(&mut u, self.keep),
        );
        let mut y = vec![0f32; m * i];
        y.par_chunks_mut(CHUNK)
            .zip(g.par_chunks(CHUNK).zip(u.par_chunks(CHUNK)))
            .for_each(|(y, (g, u))| gate_chunk(y, g, u));
        drop((g, u));
        let mut z = r.to_vec();
        bf16_weight(&self.down, |w| xwt(&mut z, &y, w, (m, h, i), true))?;
        if let (Some(g), Some(u)) = kept {
            *self.kept.lock().map_err(|_| msg(self.name(), "poisoned"))? = Some((g, u));
        }
        Ok((CpuStorage::F32(z), l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        _r: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let (h, i) = self.sizes()?;
        let m = grad.elem_count() / h;
        let kept = self.kept.lock().map_err(|_| msg(self.name(), "poisoned"))?;
        let Some((gk, uk)) = kept.as_ref() else {
            return Err(msg(self.name(), "backward before forward"));
        };
        let mut dy = vec![0f32; m * i];
        with_f32(grad, self.name(), |dz| {
            bf16_weight(&self.down, |w| gw(&mut dy, dz, w, (m, h, i)))
        })?;
        // The gate's backward on the kept bf16 values, widened a chunk at a time.
        let (mut dg, mut du) = (vec![0f32; m * i], vec![0f32; m * i]);
        dg.par_chunks_mut(CHUNK)
            .zip(du.par_chunks_mut(CHUNK))
            .zip(gk.par_chunks(CHUNK).zip(uk.par_chunks(CHUNK)))
            .zip(dy.par_chunks(CHUNK))
            .for_each(|(((dg, du), (g, u)), dy)| {
                let (g, u) = (g.to_f32_vec(), u.to_f32_vec());
                gate_bwd_chunk(dg, du, &g, &u, dy)
            });
        drop(dy);
        let (mut dx, mut dxu) = (vec![0f32; m * h], vec![0f32; m * h]);
        bf16_weight(&self.gate, |w| gw(&mut dx, &dg, w, (m, i, h)))?;
        bf16_weight(&self.up, |w| gw(&mut dxu, &du, w, (m, i, h)))?;
        dx.iter_mut().zip(&dxu).for_each(|(a, b)| *a += b);
        let dx = Tensor::from_vec(dx, x.shape(), x.device())?;
        Ok((Some(dx), Some(grad.clone())))
    }
}

/// `r + (silu(x W_g^T) u) W_d^T` with `u = x W_u^T`, for frozen bf16 weights `gate`, `up`
/// (`[I, H]`) and `down` (`[H, I]`) on the CPU, f32 `x` and `r` (`[..., H]`); `g` and `u`
/// are rounded to bf16 (see the module's docs).
pub fn frozen_mlp_bf16(
    x: &Tensor,
    r: &Tensor,
    gate: &Tensor,
    up: &Tensor,
    down: &Tensor,
) -> candle_core::Result<Tensor> {
    let op = FrozenMlp {
        gate: gate.contiguous()?,
        up: up.contiguous()?,
        down: down.contiguous()?,
        kept: Mutex::new(None),
        keep: x.track_op() || r.track_op(),
    };
    x.contiguous()?.apply_op2(&r.contiguous()?, op)
}
