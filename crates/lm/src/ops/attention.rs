//! Causal scaled-dot-product attention with grouped-query heads, fused.
//!
//! Per batch row `b` and head `h` (key/value head `h / (H / H_kv)`):
//! `S = Q K^T / sqrt(d)`, `P = softmax(S + causal)`, `O = P V`. Backward, with `dO` given:
//! `dV = P^T dO`, `dP = dO V^T`, `dS = P * (dP - rowsum(dO * O))`,
//! `dQ = dS K / sqrt(d)`, `dK = dS^T Q / sqrt(d)`; the heads sharing a key/value head add
//! their `dK`, `dV`.
//!
//! Q, K, V are read in place from the projections' `[B, T, heads * d]` layout (no
//! transposes, no repeated key/value heads), the work is split in blocks of rows so that
//! the masked upper triangle is never multiplied, and `P` is never stored: backward
//! recomputes it one head at a time (one more `Q K^T`, a few percent of a training step),
//! so a layer's attention keeps no `[B, H, T, T]` tensor alive between the passes.

use super::fastexp::softmax_in_place;
use super::rope::rotate;
use super::{cpu_slice, cpu_tensor, matmul, msg, with_f32, View};
use candle_core::{CpuStorage, CustomOp3, Layout, Shape, Tensor};
use rayon::prelude::*;

/// Rows per block of the causal split.
const BLOCK: usize = 64;

/// The op: one sequence length, head counts, head width and score scale.
#[derive(Clone, Copy)]
struct Attention {
    t: usize,
    nh: usize,
    nkv: usize,
    hd: usize,
    scale: f32,
}

impl Attention {
    /// The batch size, after checking the inputs' shapes against the op.
    fn check(&self, ls: [&Layout; 3]) -> candle_core::Result<usize> {
        let (b, t, w) = ls[0].shape().dims3()?;
        let kv = self.nkv * self.hd;
        let ok = t == self.t
            && w == self.nh * self.hd
            && ls[1].dims() == [b, t, kv]
            && ls[2].dims() == [b, t, kv];
        if !ok {
            return Err(msg(
                "causal-attention",
                format!(
                    "q {:?}, k {:?}, v {:?}",
                    ls[0].dims(),
                    ls[1].dims(),
                    ls[2].dims()
                ),
            ));
        }
        Ok(b)
    }

    /// Offsets of head `bh = b * nh + h` in Q and in K/V.
    fn offsets(&self, bh: usize) -> (usize, usize) {
        let (b, h) = (bh / self.nh, bh % self.nh);
        let g = h / (self.nh / self.nkv);
        (
            b * self.t * self.nh * self.hd + h * self.hd,
            b * self.t * self.nkv * self.hd + g * self.hd,
        )
    }

    fn blocks(&self) -> impl Iterator<Item = (usize, usize)> {
        let t = self.t;
        (0..t)
            .step_by(BLOCK)
            .map(move |r0| (r0, (r0 + BLOCK).min(t)))
    }

    /// Probabilities `p` (`[T, T]`, zero above the diagonal) of head `bh`.
    fn head_probs(&self, q: &[f32], k: &[f32], bh: usize, p: &mut [f32]) {
        let (t, hd) = (self.t, self.hd);
        let (qrs, kvrs) = (self.nh * hd, self.nkv * hd);
        let (qo, ko) = self.offsets(bh);
        let kt = View::new(k, ko, kvrs, 1).t();
        for (r0, r1) in self.blocks() {
            let qb = View::new(q, qo + r0 * qrs, qrs, 1);
            matmul(
                &mut p[r0 * t..],
                t,
                qb,
                kt,
                (r1 - r0, r1, hd),
                self.scale,
                false,
                1,
            );
            for i in r0..r1 {
                let row = &mut p[i * t..(i + 1) * t];
                softmax_in_place(&mut row[..=i]);
                row[i + 1..].fill(0.0);
            }
        }
    }

    /// Output `o` (`[T, d]`) of head `bh`, with `p` as `[T, T]` scratch.
    fn head_fwd(&self, q: &[f32], k: &[f32], v: &[f32], bh: usize, p: &mut [f32], o: &mut [f32]) {
        let (t, hd) = (self.t, self.hd);
        let (_, ko) = self.offsets(bh);
        self.head_probs(q, k, bh, p);
        for (r0, r1) in self.blocks() {
            let pb = View::new(p, r0 * t, t, 1);
            let vb = View::new(v, ko, self.nkv * hd, 1);
            matmul(
                &mut o[r0 * hd..],
                hd,
                pb,
                vb,
                (r1 - r0, hd, r1),
                1.0,
                false,
                1,
            );
        }
    }

    /// Gradients of head `bh` into `dq`, `dk`, `dv` (`[T, d]` each) from its
    /// probabilities `p`, output `o` and output gradient `dout` (both `[B, T, H*d]`);
    /// `ds` is `[T, T]` scratch.
    #[allow(clippy::too_many_arguments)]
    fn head_bwd(
        &self,
        (q, k, v): (&[f32], &[f32], &[f32]),
        (o, dout): (&[f32], &[f32]),
        bh: usize,
        p: &[f32],
        ds: &mut [f32],
        (dq, dk, dv): (&mut [f32], &mut [f32], &mut [f32]),
    ) {
        let (t, hd) = (self.t, self.hd);
        let (qrs, kvrs) = (self.nh * hd, self.nkv * hd);
        let (qo, ko) = self.offsets(bh);
        for (c0, c1) in self.blocks() {
            // dV[c0..c1] = P[c0.., c0..c1]^T dO[c0..]; rows above c0 are zero in P.
            let pt = View::new(p, c0 * t + c0, t, 1).t();
            let dob = View::new(dout, qo + c0 * qrs, qrs, 1);
            matmul(
                &mut dv[c0 * hd..],
                hd,
                pt,
                dob,
                (c1 - c0, hd, t - c0),
                1.0,
                false,
                1,
            );
        }
        let vt = View::new(v, ko, kvrs, 1).t();
        for (r0, r1) in self.blocks() {
            let dob = View::new(dout, qo + r0 * qrs, qrs, 1);
            matmul(
                &mut ds[r0 * t..],
                t,
                dob,
                vt,
                (r1 - r0, r1, hd),
                1.0,
                false,
                1,
            );
            for i in r0..r1 {
                let (orow, drow) = (&o[qo + i * qrs..][..hd], &dout[qo + i * qrs..][..hd]);
                let di: f32 = orow.iter().zip(drow).map(|(a, b)| a * b).sum();
                let (srow, prow) = (&mut ds[i * t..(i + 1) * t], &p[i * t..(i + 1) * t]);
                for j in 0..=i {
                    srow[j] = prow[j] * (srow[j] - di);
                }
                srow[i + 1..].fill(0.0);
            }
            let sb = View::new(ds, r0 * t, t, 1);
            let kb = View::new(k, ko, kvrs, 1);
            matmul(
                &mut dq[r0 * hd..],
                hd,
                sb,
                kb,
                (r1 - r0, hd, r1),
                self.scale,
                false,
                1,
            );
        }
        for (c0, c1) in self.blocks() {
            let st = View::new(ds, c0 * t + c0, t, 1).t();
            let qb = View::new(q, qo + c0 * qrs, qrs, 1);
            matmul(
                &mut dk[c0 * hd..],
                hd,
                st,
                qb,
                (c1 - c0, hd, t - c0),
                self.scale,
                false,
                1,
            );
        }
    }
}

/// `[B, H, T, d]` (head-major) -> `[B, T, H * d]`, adding heads `h` that map to the same
/// output head `h / group` (group 1: a plain transpose).
fn merge_heads(src: &[f32], (b, t, h, d): (usize, usize, usize, usize), group: usize) -> Vec<f32> {
    let ho = h / group;
    let mut out = vec![0f32; b * t * ho * d];
    out.par_chunks_mut(ho * d)
        .enumerate()
        .with_min_len(4)
        .for_each(|(bt, row)| {
            let (bi, ti) = (bt / t, bt % t);
            for hi in 0..h {
                let s = &src[((bi * h + hi) * t + ti) * d..][..d];
                let dst = &mut row[(hi / group) * d..][..d];
                dst.iter_mut().zip(s).for_each(|(x, y)| *x += y);
            }
        });
    out
}

impl Attention {
    /// The output `[B, T, H*d]` for `b` batch rows of Q, K, V slices.
    fn forward(&self, (q, k, v): (&[f32], &[f32], &[f32]), b: usize) -> Vec<f32> {
        let (g, t, hd) = (*self, self.t, self.hd);
        let mut oh = vec![0f32; b * g.nh * t * hd];
        oh.par_chunks_mut(t * hd).enumerate().for_each_init(
            || vec![0f32; t * t],
            |p, (bh, o)| g.head_fwd(q, k, v, bh, p, o),
        );
        merge_heads(&oh, (b, t, g.nh, hd), 1)
    }

    /// `(dQ, dK, dV)` (`[B, T, heads * d]` each) from the inputs, the output `o` and its
    /// gradient `dout`.
    fn backward(
        &self,
        (q, k, v): (&[f32], &[f32], &[f32]),
        (o, dout): (&[f32], &[f32]),
        b: usize,
    ) -> [Vec<f32>; 3] {
        let (g, t, hd, nh) = (*self, self.t, self.hd, self.nh);
        let len = b * nh * t * hd;
        let (mut dq, mut dk, mut dv) = (vec![0f32; len], vec![0f32; len], vec![0f32; len]);
        dq.par_chunks_mut(t * hd)
            .zip(dk.par_chunks_mut(t * hd))
            .zip(dv.par_chunks_mut(t * hd))
            .enumerate()
            .for_each_init(
                || (vec![0f32; t * t], vec![0f32; t * t]),
                |(p, ds), (bh, ((dq, dk), dv))| {
                    g.head_probs(q, k, bh, p);
                    g.head_bwd((q, k, v), (o, dout), bh, p, ds, (dq, dk, dv));
                },
            );
        let rep = nh / g.nkv;
        [
            merge_heads(&dq, (b, t, nh, hd), 1),
            merge_heads(&dk, (b, t, nh, hd), rep),
            merge_heads(&dv, (b, t, nh, hd), rep),
        ]
    }
}

/// The op, with the rotary tables `(cos, sin)` (`[max_len, d/2]`) when it rotates Q and K
/// itself: then the rotated Q and K are formed again in backward instead of being kept
/// (ours: two `[B, T, heads * d]` tensors fewer per layer between the passes).
struct Op {
    att: Attention,
    rotary: Option<(Tensor, Tensor)>,
}

impl Op {
    /// `f` on Q and K, rotated first when the op rotates.
    fn rotated<R>(
        &self,
        (q, k): (&[f32], &[f32]),
        f: impl FnOnce(&[f32], &[f32]) -> candle_core::Result<R>,
    ) -> candle_core::Result<R> {
        let Some((cos, sin)) = &self.rotary else {
            return f(q, k);
        };
        let (t, hd) = (self.att.t, self.att.hd);
        with_f32(cos, "causal-attention", |cos| {
            with_f32(sin, "causal-attention", |sin| {
                let tables = (cos, sin);
                let q = rotate(q, (t, self.att.nh, hd), tables, 1.0);
                let k = rotate(k, (t, self.att.nkv, hd), tables, 1.0);
                f(&q, &k)
            })
        })
    }
}

impl CustomOp3 for Op {
    fn name(&self) -> &'static str {
        "causal-attention"
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
        let b = self.att.check([l1, l2, l3])?;
        let (q, k, v) = (
            cpu_slice(s1, l1, self.name())?,
            cpu_slice(s2, l2, self.name())?,
            cpu_slice(s3, l3, self.name())?,
        );
        let out = self.rotated((q, k), |q, k| Ok(self.att.forward((q, k, v), b)))?;
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }

    fn bwd(
        &self,
        qt: &Tensor,
        kt: &Tensor,
        vt: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (b, t, _) = qt.dims3()?;
        let (a, n) = (self.att, self.name());
        let [mut dq, mut dk, dv] = with_f32(qt, n, |q| {
            with_f32(kt, n, |k| {
                with_f32(vt, n, |v| {
                    with_f32(res, n, |o| {
                        with_f32(grad, n, |dout| {
                            self.rotated((q, k), |q, k| Ok(a.backward((q, k, v), (o, dout), b)))
                        })
                    })
                })
            })
        })?;
        if let Some((cos, sin)) = &self.rotary {
            with_f32(cos, n, |cos| {
                with_f32(sin, n, |sin| {
                    dq = rotate(&dq, (t, a.nh, a.hd), (cos, sin), -1.0);
                    dk = rotate(&dk, (t, a.nkv, a.hd), (cos, sin), -1.0);
                    Ok(())
                })
            })?;
        }
        let shape = |w: usize| [b, t, w * a.hd];
        Ok((
            Some(cpu_tensor(dq, &shape(a.nh))?),
            Some(cpu_tensor(dk, &shape(a.nkv))?),
            Some(cpu_tensor(dv, &shape(a.nkv))?),
        ))
    }
}

/// Causal attention `softmax(Q K^T / sqrt(d) + causal) V` of `q` (`[B, T, heads * d]`)
/// over `k`, `v` (`[B, T, kv_heads * d]`), each query head `h` reading key/value head
/// `h / (heads / kv_heads)`; returns `[B, T, heads * d]`. With `rotary` (`cos`, `sin`,
/// `[max_len, d/2]`), Q and K are rotated first ([`super::rope`]'s arithmetic for
/// positions `0..T`) inside the op, which keeps them unrotated for backward. CPU, f32.
pub fn causal_attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    heads: usize,
    kv_heads: usize,
    rotary: Option<(&Tensor, &Tensor)>,
) -> candle_core::Result<Tensor> {
    let (_, t, w) = q.dims3()?;
    if heads == 0 || kv_heads == 0 || !heads.is_multiple_of(kv_heads) || !w.is_multiple_of(heads) {
        return Err(msg(
            "causal-attention",
            format!("{heads} heads, {kv_heads} kv heads, width {w}"),
        ));
    }
    let hd = w / heads;
    let att = Attention {
        t,
        nh: heads,
        nkv: kv_heads,
        hd,
        scale: 1.0 / (hd as f32).sqrt(),
    };
    let rotary = match rotary {
        Some((cos, sin)) => {
            let (max_len, half) = cos.dims2()?;
            if 2 * half != hd || t > max_len || sin.dims() != cos.dims() {
                let dims = (cos.dims(), sin.dims());
                return Err(msg(
                    "causal-attention",
                    format!("rotary tables {dims:?} for {t} positions of head width {hd}"),
                ));
            }
            Some((cos.contiguous()?, sin.contiguous()?))
        }
        None => None,
    };
    q.contiguous()?
        .apply_op3(&k.contiguous()?, &v.contiguous()?, Op { att, rotary })
}
