//! `y = x W^T` for a frozen weight `W` (`[out, in]`): backward returns `dL/dx = g W` only.
//! candle's matmul backward would also form `x^T g` for `W` (as large a product as the
//! forward) and keep it in the gradient store, though `W` is not trained.

use super::{cpu_slice, matmul, msg, threads, View};
use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Shape, Storage, Tensor};

struct FrozenLinear {
    w: Tensor,
}

impl FrozenLinear {
    /// `x W^T (+ addend)` for `x` of layout `l`.
    fn run(
        &self,
        x: &[f32],
        l: &Layout,
        addend: Option<&[f32]>,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let name = "frozen-linear";
        let (n, k) = self.w.dims2()?;
        let dims = l.dims();
        if dims.last() != Some(&k) {
            return Err(msg(
                name,
                format!("input {dims:?} against weight [{n}, {k}]"),
            ));
        }
        let m = x.len() / k;
        let (ws, wl) = self.w.storage_and_layout();
        let Storage::Cpu(wc) = &*ws else {
            return Err(msg(name, "weight not on CPU"));
        };
        let w = cpu_slice(wc, wl, name)?;
        let mut y = match addend {
            Some(a) if a.len() == m * n => a.to_vec(),
            Some(a) => return Err(msg(name, format!("addend of {} for {m} x {n}", a.len()))),
            None => vec![0f32; m * n],
        };
        // y[m, n] (+)= x[m, k] * W^T, where W^T(l, j) = W[j, l].
        let (xv, wt) = (View::new(x, 0, k, 1), View::new(w, 0, k, 1).t());
        matmul(
            &mut y,
            n,
            xv,
            wt,
            (m, n, k),
            1.0,
            addend.is_some(),
            threads(),
        );
        let mut out = dims.to_vec();
        *out.last_mut().expect("checked above") = n;
        Ok((CpuStorage::F32(y), Shape::from(out)))
    }

    /// `dL/dx = g W`.
    fn input_grad(&self, x: &Tensor, grad: &Tensor) -> candle_core::Result<Tensor> {
        let (n, _) = self.w.dims2()?;
        let rows = grad.elem_count() / n;
        grad.reshape((rows, n))?.matmul(&self.w)?.reshape(x.shape())
    }
}

impl CustomOp1 for FrozenLinear {
    fn name(&self) -> &'static str {
        "frozen-linear"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        self.run(cpu_slice(s, l, CustomOp1::name(self))?, l, None)
    }

    fn bwd(
        &self,
        arg: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        Ok(Some(self.input_grad(arg, grad)?))
    }
}

/// With a second input added to the product: `x W^T + a`. The sum is formed in place, so
/// neither the product nor `a` is kept for backward by an addition node.
impl CustomOp2 for FrozenLinear {
    fn name(&self) -> &'static str {
        "frozen-linear-add"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let a = cpu_slice(s2, l2, CustomOp2::name(self))?;
        self.run(cpu_slice(s1, l1, CustomOp2::name(self))?, l1, Some(a))
    }

    fn bwd(
        &self,
        x: &Tensor,
        _a: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        Ok((Some(self.input_grad(x, grad)?), Some(grad.clone())))
    }
}

/// `x W^T` over the last dimension of `x` (`[..., in]` -> `[..., out]`) for a weight that
/// is not trained: the backward pass computes the input gradient only. CPU, f32.
pub fn frozen_linear(x: &Tensor, w: &Tensor) -> candle_core::Result<Tensor> {
    x.contiguous()?
        .apply_op1(FrozenLinear { w: w.contiguous()? })
}

/// `x W^T + a` (`a` of the output's shape) for a weight that is not trained. CPU, f32.
pub fn frozen_linear_add(x: &Tensor, w: &Tensor, a: &Tensor) -> candle_core::Result<Tensor> {
    x.contiguous()?
        .apply_op2(&a.contiguous()?, FrozenLinear { w: w.contiguous()? })
}
