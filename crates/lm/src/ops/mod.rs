//! Fused CPU kernels with hand-written backward for the decoder's hot path.
//!
//! candle's composed ops are differentiable but slow to train with: every elementwise step
//! allocates, the attention keeps `[B, H, T, T]` scores, masks and softmax intermediates for
//! backward, and the matmul backward also computes the gradient of every frozen weight.
//! The kernels here do the same arithmetic in one pass each:
//!
//! - [`frozen_linear`]: `x W^T` whose backward returns only `dL/dx = g W` (W is not a
//!   variable, so its gradient would be discarded anyway); [`frozen_linear_add`] adds a
//!   second input (an adapter's output, a residual) in place, [`frozen_affine`] a frozen
//!   bias too, and [`frozen_linear_lowrank`] a LoRA update `c B^T` from its factors, so
//!   that no `[B, T, out]` addend is kept for backward;
//! - [`rms_norm`]: `x / sqrt(mean(x^2) + eps) * w`;
//! - [`rope`]: rotary embedding on `[B, T, H, D]` (half-split layout), backward = the
//!   inverse rotation;
//! - [`swiglu`]: `silu(g) * u`, and [`swiglu_down`] fused with a frozen down projection
//!   so that the gated activation is not kept for backward;
//! - [`causal_attention`]: `softmax(Q K^T / sqrt(d) + causal) V` with grouped-query heads
//!   read in place from the projections' `[B, T, H*D]` layout; the upper triangle of the
//!   scores is never computed (blocked), and backward recomputes the probabilities
//!   instead of keeping them; given the rotary tables it rotates Q and K itself (and
//!   again in backward), so the rotated copies are not kept either;
//! - [`frozen_mlp_bf16`]: the whole SwiGLU MLP over frozen bf16 weights, keeping its gate
//!   and up activations in bf16 (`--dtype bf16`).
//!
//! What a training step keeps between its passes (issue 28): per block, the two norms'
//! inputs and outputs, Q, K, V before rotation, the attention output and the MLP's `g`,
//! `u` (in bf16 on a bf16 base); every other intermediate is formed inside an op and freed.
//!
//! They run on CPU for f32 tensors; the frozen weights of [`frozen_linear`] may also be
//! bf16 there ([`bf16`], `--dtype bf16`: a bf16 base keeps f32 hidden states on the CPU).
//! Everywhere else (CUDA, other dtypes), and inside
//! [`reference`], the model uses the composed candle ops, which are the reference the tests
//! compare these kernels with (values and gradients, plus finite differences); on CUDA the
//! frozen projections still go through [`frozen_linear`] ([`frozen_on_device`]).

mod attention;
pub mod bf16;
pub mod fastexp;
mod linear;
mod mlp;
mod norm;
mod rope;
mod swiglu;

pub use attention::causal_attention;
pub use linear::{frozen_affine, frozen_linear, frozen_linear_add, frozen_linear_lowrank};
pub use mlp::frozen_mlp_bf16;
pub use norm::rms_norm;
pub use rope::rope;
pub use swiglu::{swiglu, swiglu_down};

use candle_core::{CpuStorage, DType, Layout, Storage, Tensor};
use std::cell::Cell;

thread_local! {
    static REFERENCE: Cell<bool> = const { Cell::new(false) };
}

/// Run `f` with the fused kernels off on this thread: the model uses candle's composed
/// ops (restored afterwards, even on panic). Tests compare the two paths.
pub fn reference<T>(f: impl FnOnce() -> T) -> T {
    crate::grad::with_flag(&REFERENCE, true, f)
}

/// Whether the fused kernels serve `x`: CPU, f32, and not inside [`reference`].
pub fn fused(x: &Tensor) -> bool {
    x.dtype() == DType::F32 && fused_on(x.device())
}

/// Whether the fused kernels serve f32 tensors on `device`: the CPU, outside [`reference`].
pub fn fused_on(device: &candle_core::Device) -> bool {
    device.is_cpu() && !REFERENCE.with(|c| c.get())
}

/// Whether [`frozen_linear`] (without the other kernels) serves `x` off the fused path:
/// on CUDA, outside [`reference`]. There candle's matmul backward would form every frozen
/// weight's gradient (as many bytes as the model) and keep it to the end of backward.
pub fn frozen_on_device(x: &Tensor) -> bool {
    cfg!(feature = "cuda") && x.device().is_cuda() && !REFERENCE.with(|c| c.get())
}

fn msg(op: &str, what: impl std::fmt::Display) -> candle_core::Error {
    candle_core::Error::Msg(format!("{op}: {what}"))
}

/// The f32 elements of a contiguous CPU storage.
fn cpu_slice<'a>(s: &'a CpuStorage, l: &Layout, op: &str) -> candle_core::Result<&'a [f32]> {
    cpu_elems(s, l, op)
}

/// The elements of a contiguous CPU storage of `T`.
fn cpu_elems<'a, T: candle_core::WithDType>(
    s: &'a CpuStorage,
    l: &Layout,
    op: &str,
) -> candle_core::Result<&'a [T]> {
    let data = s.as_slice::<T>()?;
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&data[a..b]),
        None => Err(msg(op, "input must be contiguous")),
    }
}

/// Call `f` with the f32 elements of `t` (made contiguous first), which must live on CPU.
fn with_f32<R>(
    t: &Tensor,
    op: &str,
    f: impl FnOnce(&[f32]) -> candle_core::Result<R>,
) -> candle_core::Result<R> {
    with_elems(t, op, f)
}

/// Call `f` with the elements (of `T`) of `t` (made contiguous first), on CPU.
fn with_elems<T: candle_core::WithDType, R>(
    t: &Tensor,
    op: &str,
    f: impl FnOnce(&[T]) -> candle_core::Result<R>,
) -> candle_core::Result<R> {
    let t = t.contiguous()?;
    let (s, l) = t.storage_and_layout();
    match &*s {
        Storage::Cpu(c) => f(cpu_elems(c, l, op)?),
        _ => Err(msg(op, "CPU kernel given a tensor on another device")),
    }
}

/// A strided read-only matrix view: element `(i, j)` is `data[off + i*rs + j*cs]`.
#[derive(Clone, Copy)]
struct View<'a> {
    data: &'a [f32],
    off: usize,
    rs: usize,
    cs: usize,
}

impl<'a> View<'a> {
    fn new(data: &'a [f32], off: usize, rs: usize, cs: usize) -> Self {
        View { data, off, rs, cs }
    }

    /// The transposed view.
    fn t(self) -> Self {
        View {
            rs: self.cs,
            cs: self.rs,
            ..self
        }
    }

    /// Check that an `r x c` matrix fits in the slice.
    fn check(&self, r: usize, c: usize) {
        if r > 0 && c > 0 {
            let last = self.off + (r - 1) * self.rs + (c - 1) * self.cs;
            assert!(last < self.data.len(), "matrix view out of bounds");
        }
    }
}

/// `dst[i*dst_rs + j] (+)= beta * sum_l a(i, l) b(l, j)` for an `m x n` destination with
/// inner size `k`; `accumulate` adds to what `dst` holds, otherwise overwrites it. Bounds
/// are checked before the gemm runs. `threads > 1` lets gemm split the work itself.
#[allow(clippy::too_many_arguments)]
fn matmul(
    dst: &mut [f32],
    dst_rs: usize,
    a: View,
    b: View,
    (m, n, k): (usize, usize, usize),
    beta: f32,
    accumulate: bool,
    threads: usize,
) {
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            for i in 0..m {
                dst[i * dst_rs..i * dst_rs + n].fill(0.0);
            }
        }
        return;
    }
    assert!(
        (m - 1) * dst_rs + n <= dst.len(),
        "matmul destination out of bounds"
    );
    a.check(m, k);
    b.check(k, n);
    let par = if threads > 1 {
        gemm::Parallelism::Rayon(threads)
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: every element gemm reads or writes lies inside the slices (checked above),
    // and `dst` is borrowed mutably, so nothing else aliases it.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            dst_rs as isize,
            accumulate,
            a.data.as_ptr().add(a.off),
            a.cs as isize,
            a.rs as isize,
            b.data.as_ptr().add(b.off),
            b.cs as isize,
            b.rs as isize,
            1.0,
            beta,
            false,
            false,
            false,
            par,
        )
    }
}

/// Threads candle's own kernels use (RAYON_NUM_THREADS or the machine's cores).
fn threads() -> usize {
    candle_core::utils::get_num_threads()
}

/// A CPU f32 tensor of `shape` from `data`.
fn cpu_tensor(data: Vec<f32>, shape: &[usize]) -> candle_core::Result<Tensor> {
    Tensor::from_vec(data, shape, &candle_core::Device::Cpu)
}
