//! RMSNorm, `y = x r w` with `r = 1 / sqrt(mean(x^2) + eps)` per row, and its backward:
//! `dx = r (g w) - x r^3 mean(g w x)`, `dw = sum_rows g x r`.

use super::{cpu_slice, cpu_tensor, msg, with_f32};
use candle_core::{CpuStorage, CustomOp2, Layout, Shape, Tensor};
use rayon::prelude::*;

/// Rows per block of the weight-gradient sum.
const ROWS: usize = 64;

struct RmsNorm {
    eps: f32,
}

/// `1 / sqrt(mean(x^2) + eps)` of one row.
fn inv_rms(x: &[f32], eps: f32) -> f32 {
    let ms = x.iter().map(|v| v * v).sum::<f32>() / x.len() as f32;
    1.0 / (ms + eps).sqrt()
}

impl CustomOp2 for RmsNorm {
    fn name(&self) -> &'static str {
        "rms-norm"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = cpu_slice(s1, l1, self.name())?;
        let w = cpu_slice(s2, l2, self.name())?;
        let h = w.len();
        if l1.dims().last() != Some(&h) {
            return Err(msg(
                self.name(),
                format!("input {:?} against weight [{h}]", l1.dims()),
            ));
        }
        let mut y = vec![0f32; x.len()];
        y.par_chunks_mut(h)
            .zip(x.par_chunks(h))
            .with_min_len(8)
            .for_each(|(y, x)| {
                let r = inv_rms(x, self.eps);
                for ((y, x), w) in y.iter_mut().zip(x).zip(w) {
                    *y = x * r * w;
                }
            });
        Ok((CpuStorage::F32(y), l1.shape().clone()))
    }

    fn bwd(
        &self,
        xt: &Tensor,
        wt: &Tensor,
        _res: &Tensor,
        gt: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let eps = self.eps;
        with_f32(xt, self.name(), |x| {
            with_f32(wt, self.name(), |w| {
                with_f32(gt, self.name(), |g| {
                    let h = w.len();
                    let mut dx = vec![0f32; x.len()];
                    dx.par_chunks_mut(h)
                        .zip(x.par_chunks(h).zip(g.par_chunks(h)))
                        .with_min_len(8)
                        .for_each(|(dx, (x, g))| {
                            let r = inv_rms(x, eps);
                            let dot = g
                                .iter()
                                .zip(w)
                                .zip(x)
                                .map(|((g, w), x)| g * w * x)
                                .sum::<f32>()
                                / h as f32;
                            let c = dot * r * r * r;
                            for (((d, g), w), x) in dx.iter_mut().zip(g).zip(w).zip(x) {
                                *d = r * g * w - x * c;
                            }
                        });
                    let dx = cpu_tensor(dx, xt.dims())?;
                    if !wt.track_op() {
                        return Ok((Some(dx), None));
                    }
                    // Partial sums over fixed blocks of rows, added in order: the result
                    // does not depend on how rayon schedules the blocks.
                    let partials: Vec<Vec<f32>> = x
                        .par_chunks(h * ROWS)
                        .zip(g.par_chunks(h * ROWS))
                        .map(|(x, g)| {
                            let mut acc = vec![0f32; h];
                            for (x, g) in x.chunks(h).zip(g.chunks(h)) {
                                let r = inv_rms(x, eps);
                                for ((a, x), g) in acc.iter_mut().zip(x).zip(g) {
                                    *a += g * x * r;
                                }
                            }
                            acc
                        })
                        .collect();
                    let mut dw = vec![0f32; h];
                    for p in &partials {
                        dw.iter_mut().zip(p).for_each(|(a, b)| *a += b);
                    }
                    Ok((Some(dx), Some(cpu_tensor(dw, &[h])?)))
                })
            })
        })
    }
}

/// RMSNorm over the last dimension: `x / sqrt(mean(x^2) + eps) * w`. CPU, f32.
pub fn rms_norm(x: &Tensor, w: &Tensor, eps: f64) -> candle_core::Result<Tensor> {
    x.contiguous()?
        .apply_op2(&w.contiguous()?, RmsNorm { eps: eps as f32 })
}
