//! `y = x W^T` for a frozen weight `W` (`[out, in]`): backward returns `dL/dx = g W` only.
//! candle's matmul backward would also form `x^T g` for `W` (as large a product as the
//! forward) and keep it in the gradient store, though `W` is not trained. On the CPU `W` is
//! f32, or bf16 ([`super::bf16`]: `--dtype bf16`, f32 activations).

use super::{bf16, cpu_slice, matmul, msg, threads, with_elems, with_f32, View};
use candle_core::{CpuStorage, CustomOp1, CustomOp2, CustomOp3, DType, Layout, Shape, Tensor};

/// `x W^T (+ addend)` for `x` of shape `dims` (`[..., in]`, contiguous) and `W` of shape
/// `[out, in]`: the result has shape `[..., out]`. Also the fused SwiGLU's down projection.
pub(super) fn project(
    x: &[f32],
    dims: &[usize],
    w: &Tensor,
    addend: Option<Vec<f32>>,
    op: &str,
) -> candle_core::Result<(CpuStorage, Shape)> {
    let (n, k) = w.dims2()?;
    if dims.last() != Some(&k) {
        return Err(msg(op, format!("input {dims:?} against weight [{n}, {k}]")));
    }
    let m = x.len() / k;
    let acc = addend.is_some();
    let mut y = match addend {
        Some(a) if a.len() == m * n => a,
        Some(a) => return Err(msg(op, format!("addend of {} for {m} x {n}", a.len()))),
        None => vec![0f32; m * n],
    };
    if w.dtype() == DType::BF16 {
        with_elems(w, op, |w| {
            bf16::xwt(&mut y, x, w, (m, n, k), acc);
            Ok(())
        })?;
    } else {
        with_f32(w, op, |w| {
            // y[m, n] (+)= x[m, k] * W^T, where W^T(l, j) = W[j, l].
            let (xv, wt) = (View::new(x, 0, k, 1), View::new(w, 0, k, 1).t());
            matmul(&mut y, n, xv, wt, (m, n, k), 1.0, acc, threads());
            Ok(())
        })?;
    }
    let mut out = dims.to_vec();
    *out.last_mut().expect("checked above") = n;
    Ok((CpuStorage::F32(y), Shape::from(out)))
}

/// The input gradient `g W` of [`project`], shaped like the input `x`.
pub(super) fn project_back(w: &Tensor, x: &Tensor, grad: &Tensor) -> candle_core::Result<Tensor> {
    let (n, k) = w.dims2()?;
    let rows = grad.elem_count() / n;
    if w.dtype() == DType::BF16 && w.device().is_cpu() {
        let mut dx = vec![0f32; rows * k];
        with_f32(grad, "frozen-linear-back", |g| {
            with_elems(w, "frozen-linear-back", |w| {
                bf16::gw(&mut dx, g, w, (rows, n, k));
                Ok(())
            })
        })?;
        return Tensor::from_vec(dx, x.shape(), x.device());
    }
    grad.reshape((rows, n))?.matmul(w)?.reshape(x.shape())
}

struct FrozenLinear {
    w: Tensor,
    /// A frozen bias `[out]` (f32; the CPU only), added to every row.
    bias: Option<Tensor>,
}

/// The output's first values for `m` rows of `n`: the addend (or zeros) plus the bias on
/// every row; `None` when there is neither.
fn start(
    (m, n): (usize, usize),
    addend: Option<Vec<f32>>,
    bias: Option<&Tensor>,
    op: &str,
) -> candle_core::Result<Option<Vec<f32>>> {
    let Some(b) = bias else {
        return Ok(addend);
    };
    let mut y = addend.unwrap_or_else(|| vec![0f32; m * n]);
    with_f32(b, op, |b| {
        if b.len() != n {
            return Err(msg(op, format!("bias of {} for {n} outputs", b.len())));
        }
        y.chunks_mut(n)
            .for_each(|r| r.iter_mut().zip(b).for_each(|(y, b)| *y += b));
        Ok(())
    })?;
    Ok(Some(y))
}

impl CustomOp1 for FrozenLinear {
    fn name(&self) -> &'static str {
        "frozen-linear"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let name = CustomOp1::name(self);
        let x = cpu_slice(s, l, name)?;
        let (n, k) = self.w.dims2()?;
        let y = start((x.len() / k.max(1), n), None, self.bias.as_ref(), name)?;
        project(x, l.dims(), &self.w, y, name)
    }

    /// cuBLAS through candle's own CUDA matmul, on `x` viewed as `[rows, in]` and `W`'s
    /// layout transposed (no copy), in the tensors' dtype.
    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s: &candle_core::CudaStorage,
        l: &Layout,
    ) -> candle_core::Result<(candle_core::CudaStorage, Shape)> {
        use candle_core::backend::BackendStorage;
        let name = CustomOp1::name(self);
        let (n, k) = self.w.dims2()?;
        let dims = l.dims();
        if self.bias.is_some() {
            return Err(msg(name, "a fused bias is for the CPU only"));
        }
        if dims.last() != Some(&k) || !l.is_contiguous() {
            return Err(msg(
                name,
                format!("input {dims:?} against weight [{n}, {k}]"),
            ));
        }
        let m = l.shape().elem_count() / k;
        let (ws, wl) = self.w.storage_and_layout();
        let candle_core::Storage::Cuda(w) = &*ws else {
            return Err(msg(name, "weight is not on the CUDA device"));
        };
        let lhs = Layout::contiguous_with_offset((m, k), l.start_offset());
        let y = s.matmul(w, (1, m, n, k), &lhs, &wl.transpose(0, 1)?)?;
        let mut out = dims.to_vec();
        *out.last_mut().expect("checked above") = n;
        Ok((y, Shape::from(out)))
    }

    fn bwd(
        &self,
        arg: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        Ok(Some(project_back(&self.w, arg, grad)?))
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
        let name = CustomOp2::name(self);
        let (x, a) = (cpu_slice(s1, l1, name)?, cpu_slice(s2, l2, name)?);
        let (n, k) = self.w.dims2()?;
        let y = start(
            (x.len() / k.max(1), n),
            Some(a.to_vec()),
            self.bias.as_ref(),
            name,
        )?;
        project(x, l1.dims(), &self.w, y, name)
    }

    fn bwd(
        &self,
        x: &Tensor,
        _a: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        Ok((Some(project_back(&self.w, x, grad)?), Some(grad.clone())))
    }
}

/// With a low-rank addend given by its factors: `x W^T + c B^T` for `c` `[rows, r]` and
/// `B` `[out, r]` (an adapter's codes and up-projection, `Adapter::factors`). The
/// `[rows, out]` addend is formed inside the op, so it is not kept for backward (ours:
/// one `[B, T, out]` tensor fewer per adapted projection); backward: `dx = g W`,
/// `dc = g B`, `dB = g^T c`.
struct FrozenLowRank {
    w: Tensor,
    bias: Option<Tensor>,
}

impl CustomOp3 for FrozenLowRank {
    fn name(&self) -> &'static str {
        "frozen-linear-lowrank"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let name = self.name();
        let (n, k) = self.w.dims2()?;
        let (c, b) = (cpu_slice(s2, l2, name)?, cpu_slice(s3, l3, name)?);
        let (rows, r) = l2.shape().dims2()?;
        let m = l1.shape().elem_count() / k.max(1);
        if l3.dims() != [n, r] || rows != m {
            let dims = (l1.dims(), l2.dims(), l3.dims());
            return Err(msg(
                name,
                format!("x, codes, B {dims:?} against weight [{n}, {k}]"),
            ));
        }
        let mut y = vec![0f32; m * n];
        let (cv, bt) = (View::new(c, 0, r, 1), View::new(b, 0, r, 1).t());
        matmul(&mut y, n, cv, bt, (m, n, r), 1.0, false, threads());
        let y = start((m, n), Some(y), self.bias.as_ref(), name)?;
        project(cpu_slice(s1, l1, name)?, l1.dims(), &self.w, y, name)
    }

    fn bwd(
        &self,
        x: &Tensor,
        c: &Tensor,
        b: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let g = grad.reshape((c.dim(0)?, b.dim(0)?))?;
        let (dc, db) = (g.matmul(b)?, g.t()?.matmul(c)?);
        Ok((Some(project_back(&self.w, x, grad)?), Some(dc), Some(db)))
    }
}

/// `x W^T (+ bias) + c B^T` for a frozen `W` (`[out, in]`) and bias (`[out]`), `x`
/// `[..., in]`, `c` `[rows, r]` (rows = the positions of `x`) and `B` `[out, r]`: a
/// low-rank adapter's output added inside the projection ([`FrozenLowRank`]). CPU, f32.
pub fn frozen_linear_lowrank(
    x: &Tensor,
    (w, bias): (&Tensor, Option<&Tensor>),
    c: &Tensor,
    b: &Tensor,
) -> candle_core::Result<Tensor> {
    x.contiguous()?.apply_op3(
        &c.contiguous()?,
        &b.contiguous()?,
        FrozenLowRank {
            w: w.contiguous()?,
            bias: bias.cloned(),
        },
    )
}

/// `x W^T (+ bias) (+ a)` for a frozen weight `W` (`[out, in]`) and bias (`[out]`, f32),
/// `a` of the output's shape: [`frozen_linear`] and [`frozen_linear_add`] with a bias added
/// in place too. CPU.
pub fn frozen_affine(
    x: &Tensor,
    (w, bias): (&Tensor, Option<&Tensor>),
    a: Option<&Tensor>,
) -> candle_core::Result<Tensor> {
    let op = FrozenLinear {
        w: w.contiguous()?,
        bias: bias.cloned(),
    };
    match a {
        Some(a) => x.contiguous()?.apply_op2(&a.contiguous()?, op),
        None => x.contiguous()?.apply_op1(op),
    }
}

/// `x W^T` over the last dimension of `x` (`[..., in]` -> `[..., out]`) for a weight that
/// is not trained: the backward pass computes the input gradient only. CPU (f32), and
/// CUDA (any float dtype; a build with the `cuda` feature).
pub fn frozen_linear(x: &Tensor, w: &Tensor) -> candle_core::Result<Tensor> {
    frozen_affine(x, (w, None), None)
}

/// `x W^T + a` (`a` of the output's shape) for a weight that is not trained. CPU, f32.
pub fn frozen_linear_add(x: &Tensor, w: &Tensor, a: &Tensor) -> candle_core::Result<Tensor> {
    frozen_affine(x, (w, None), Some(a))
}
