//! Products with a frozen bf16 weight on the CPU (`--dtype bf16`, issue 28): `y (+)= x W^T`
//! and `dx = g W` for `W` `[n, k]` stored in bf16 and `x`, `g` in f32.
//!
//! The arithmetic (ours, the same on every host): the f32 input is rounded to bf16 (nearest
//! even), as a bf16 model's activations are, and the exact bf16 x bf16 products are summed
//! in f32. Activations between the kernels stay in f32; only the weights are bf16.
//!
//! - With AVX512_BF16 (detected at run time): register-blocked kernels on `vdpbf16ps`
//!   (16 f32 lanes, each adding the dot product of a pair of bf16 values: twice the f32 FMA
//!   rate). The weight is read in place: in `x W^T` its rows are broadcast a bf16 pair at a
//!   time against a panel of `x` (64 rows, packed as pairs while rounding); in `g W` two
//!   rows of `W` are interleaved in registers (`vpunpck{l,h}wd`) against broadcast pairs of
//!   `g`, and the accumulators' lane order is undone once per tile.
//! - Elsewhere: `W` is widened to f32 a block of rows at a time and multiplied with the f32
//!   gemm (the same rounded inputs, the sums in another order).

use super::{matmul, threads, View};
use half::{bf16, slice::HalfFloatSliceExt};
use rayon::prelude::*;

/// Rows of `W` widened at a time on the portable path (256 ran at 0.8x the f32 model's
/// scoring speed, 1,024 at about 0.9x: fewer, larger gemm calls).
const WIDEN_ROWS: usize = 1024;

/// Whether the AVX512_BF16 kernels serve this CPU (`FAIRREC_NO_AVX512BF16` set turns them
/// off, for comparisons).
pub fn avx512_bf16() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        use std::sync::OnceLock;
        static ON: OnceLock<bool> = OnceLock::new();
        *ON.get_or_init(|| {
            std::arch::is_x86_feature_detected!("avx512f")
                && std::arch::is_x86_feature_detected!("avx512bw")
                && std::arch::is_x86_feature_detected!("avx512bf16")
                && std::env::var_os("FAIRREC_NO_AVX512BF16").is_none()
        })
    }
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// `x` rounded to bf16 and back (nearest even).
fn rounded(x: &[f32]) -> Vec<f32> {
    x.par_iter().map(|v| bf16::from_f32(*v).to_f32()).collect()
}

/// `y[m, n] (+)= x[m, k] W[n, k]^T` (row-major slices), `acc` adding to what `y` holds.
pub fn xwt(y: &mut [f32], x: &[f32], w: &[bf16], mnk: (usize, usize, usize), acc: bool) {
    let (m, n, k) = mnk;
    assert!(x.len() >= m * k && w.len() >= n * k && y.len() >= m * n);
    #[cfg(target_arch = "x86_64")]
    if avx512_bf16() && k % 2 == 0 && m > 0 && n > 0 && k > 0 {
        // SAFETY: the CPU has AVX-512F/BW and AVX512_BF16 (checked); sizes checked above.
        unsafe { avx::xwt(y, x, w, mnk, acc) };
        return;
    }
    xwt_widened(y, x, w, mnk, acc)
}

/// [`xwt`] on any CPU: `W` widened to f32 a block of rows at a time.
fn xwt_widened(y: &mut [f32], x: &[f32], w: &[bf16], mnk: (usize, usize, usize), acc: bool) {
    let (m, n, k) = mnk;
    let x = rounded(&x[..m * k]);
    for (r0, nb, wf) in widened(&w[..n * k], k) {
        let (xv, wt) = (View::new(&x, 0, k, 1), View::new(&wf, 0, k, 1).t());
        matmul(&mut y[r0..], n, xv, wt, (m, nb, k), 1.0, acc, threads());
    }
}

/// `dx[m, k] = g[m, n] W[n, k]`, overwriting what `dx` holds (row-major slices).
pub fn gw(dx: &mut [f32], g: &[f32], w: &[bf16], (m, n, k): (usize, usize, usize)) {
    assert!(g.len() >= m * n && w.len() >= n * k && dx.len() >= m * k);
    if m == 0 || k == 0 {
        return;
    }
    if n == 0 {
        dx[..m * k].fill(0.0);
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if avx512_bf16() {
        // SAFETY: as in `xwt`.
        unsafe { avx::gw(dx, g, w, (m, n, k)) };
        return;
    }
    gw_widened(dx, g, w, (m, n, k))
}

/// [`gw`] on any CPU (`n > 0`): the first block of rows overwrites `dx`, the rest add.
fn gw_widened(dx: &mut [f32], g: &[f32], w: &[bf16], (m, n, k): (usize, usize, usize)) {
    let g = rounded(&g[..m * n]);
    for (r0, nb, wf) in widened(&w[..n * k], k) {
        let gv = View::new(&g, r0, n, 1);
        matmul(
            dx,
            k,
            gv,
            View::new(&wf, 0, k, 1),
            (m, k, nb),
            1.0,
            r0 > 0,
            threads(),
        );
    }
}

/// `w`'s rows (`k` each) in blocks of [`WIDEN_ROWS`] widened to f32: (first row, rows, values).
fn widened(w: &[bf16], k: usize) -> impl Iterator<Item = (usize, usize, Vec<f32>)> + '_ {
    w.chunks(WIDEN_ROWS * k)
        .enumerate()
        .map(move |(b, rows)| (b * WIDEN_ROWS, rows.len() / k, rows.to_f32_vec()))
}

/// A pointer that threads writing disjoint columns of one output share.
#[derive(Clone, Copy)]
struct Out(*mut f32);
// SAFETY: every user writes a set of columns no other thread touches (see the callers).
unsafe impl Send for Out {}
unsafe impl Sync for Out {}

/// `0..len` cut into about `parts` ranges whose starts are multiples of `step`.
fn ranges(len: usize, step: usize, parts: usize) -> Vec<(usize, usize)> {
    let units = len.div_ceil(step);
    let per = units.div_ceil(parts.max(1)).max(1);
    (0..units)
        .step_by(per)
        .map(|u| (u * step, ((u + per) * step).min(len)))
        .collect()
}

#[cfg(target_arch = "x86_64")]
mod avx {
    use super::{ranges, threads, Out};
    use half::bf16;
    use rayon::prelude::*;
    use std::arch::x86_64::*;

    /// Rows of `W` (columns of `y`) per forward tile, and the panel width in rows of `x`.
    const MR: usize = 6;
    const PANEL: usize = 64;
    /// Rows of `g` per backward tile; columns of `dx` per tile (two 32-column chunks).
    const GR: usize = 6;
    const COLS: usize = 64;

    fn bh(v: __m512i) -> __m512bh {
        // SAFETY: both are 512 bits of plain data.
        unsafe { std::mem::transmute::<__m512i, __m512bh>(v) }
    }

    /// Round the 32 f32 at `src` (the first `len` when fewer, the rest zero) to 16 bf16 pairs.
    #[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
    unsafe fn pairs(src: *const f32, len: usize) -> __m512i {
        let (m0, m1) = (mask16(len), mask16(len.saturating_sub(16)));
        let lo = _mm512_maskz_loadu_ps(m0, src);
        let hi = _mm512_maskz_loadu_ps(m1, src.add(16.min(len)));
        std::mem::transmute::<__m512bh, __m512i>(_mm512_cvtne2ps_pbh(hi, lo))
    }

    fn mask16(len: usize) -> u16 {
        if len >= 16 {
            u16::MAX
        } else {
            (1u16 << len) - 1
        }
    }

    fn mask32(len: usize) -> u32 {
        if len >= 32 {
            u32::MAX
        } else {
            (1u32 << len) - 1
        }
    }

    /// The 16 x 16 transpose of 32-bit lanes (row `i` of the result = lane `i` of each input).
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn transpose16(r: &mut [__m512i; 16]) {
        let mut t = [_mm512_setzero_si512(); 16];
        for i in 0..8 {
            t[2 * i] = _mm512_unpacklo_epi32(r[2 * i], r[2 * i + 1]);
            t[2 * i + 1] = _mm512_unpackhi_epi32(r[2 * i], r[2 * i + 1]);
        }
        for i in 0..4 {
            r[4 * i] = _mm512_unpacklo_epi64(t[4 * i], t[4 * i + 2]);
            r[4 * i + 1] = _mm512_unpackhi_epi64(t[4 * i], t[4 * i + 2]);
            r[4 * i + 2] = _mm512_unpacklo_epi64(t[4 * i + 1], t[4 * i + 3]);
            r[4 * i + 3] = _mm512_unpackhi_epi64(t[4 * i + 1], t[4 * i + 3]);
        }
        for i in 0..2 {
            for j in 0..4 {
                let (a, b) = (r[8 * i + j], r[8 * i + 4 + j]);
                t[8 * i + j] = _mm512_shuffle_i32x4::<0x88>(a, b);
                t[8 * i + 4 + j] = _mm512_shuffle_i32x4::<0xdd>(a, b);
            }
        }
        for j in 0..8 {
            r[j] = _mm512_shuffle_i32x4::<0x88>(t[j], t[8 + j]);
            r[8 + j] = _mm512_shuffle_i32x4::<0xdd>(t[j], t[8 + j]);
        }
    }

    /// `x` (`[m, k]`, k even) as panels of [`PANEL`] rows: panel `j`, pair `p`, row `c` at
    /// `(j * k/2 + p) * PANEL + c` holds `(x[64j + c, 2p], x[64j + c, 2p + 1])` in bf16;
    /// rows past `m` are zero. Blocks of 16 rows x 16 pairs are rounded, then transposed
    /// in registers.
    #[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
    unsafe fn panels(x: &[f32], m: usize, k: usize) -> Vec<u32> {
        let kp = k / 2;
        let np = m.div_ceil(PANEL);
        let mut out = vec![0u32; np * kp * PANEL];
        out.par_chunks_mut(kp * PANEL)
            .enumerate()
            .for_each(|(j, panel)| {
                for c0 in (0..PANEL.min(m - j * PANEL)).step_by(16) {
                    let rows = 16.min(m - j * PANEL - c0);
                    for p0 in (0..kp).step_by(16) {
                        let mut v = [_mm512_setzero_si512(); 16];
                        for (i, v) in v.iter_mut().enumerate().take(rows) {
                            let row = x.as_ptr().add((j * PANEL + c0 + i) * k);
                            *v = pairs(row.add(2 * p0), k - 2 * p0);
                        }
                        transpose16(&mut v);
                        for (p, v) in v.iter().enumerate().take(kp - p0) {
                            let at = panel.as_mut_ptr().add((p0 + p) * PANEL + c0);
                            _mm512_storeu_si512(at as *mut _, *v);
                        }
                    }
                }
            });
        out
    }

    /// `y (+)= x W^T` (see [`super::xwt`]); k even.
    #[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
    pub(super) unsafe fn xwt(
        y: &mut [f32],
        x: &[f32],
        w: &[bf16],
        (m, n, k): (usize, usize, usize),
        acc: bool,
    ) {
        let kp = k / 2;
        let xp = panels(x, m, k);
        let out = Out(y.as_mut_ptr());
        // Each thread owns a range of W's rows, i.e. of y's columns.
        ranges(n, MR, threads())
            .into_par_iter()
            .for_each(|(n0, n1)| {
                let (out, w) = (out, w.as_ptr() as *const u32);
                for j in 0..m.div_ceil(PANEL) {
                    let rows = PANEL.min(m - j * PANEL);
                    let panel = xp.as_ptr().add(j * kp * PANEL);
                    let mut r0 = n0;
                    while r0 < n1 {
                        let mr = MR.min(n1 - r0);
                        let t = Tile {
                            w: w.add(r0 * kp),
                            kp,
                            panel,
                            y: out,
                            m0: j * PANEL,
                            rows,
                        };
                        t.run(mr, (r0, n), acc);
                        r0 += mr;
                    }
                }
            });
    }

    /// One forward tile: `mr` rows of `W` against one panel of `x`.
    struct Tile {
        w: *const u32,
        kp: usize,
        panel: *const u32,
        y: Out,
        m0: usize,
        rows: usize,
    }

    impl Tile {
        #[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
        unsafe fn run(&self, mr: usize, col: (usize, usize), acc: bool) {
            macro_rules! go {
                ($($r:literal),*) => {
                    match (mr, self.rows.div_ceil(16)) {
                        $(($r, 1) => self.tile::<$r, 1>(col, acc),
                          ($r, 2) => self.tile::<$r, 2>(col, acc),
                          ($r, _) => self.tile::<$r, 4>(col, acc),)*
                        _ => unreachable!("mr <= MR"),
                    }
                };
            }
            go!(1, 2, 3, 4, 5, 6)
        }

        /// `R` rows of `W` x `V` vectors (16 rows of `x` each).
        #[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
        unsafe fn tile<const R: usize, const V: usize>(&self, (n0, n): (usize, usize), acc: bool) {
            let mut a = [[_mm512_setzero_ps(); V]; R];
            for p in 0..self.kp {
                let b: [__m512i; V] = std::array::from_fn(|v| {
                    _mm512_loadu_si512(self.panel.add(p * PANEL + 16 * v) as *const _)
                });
                for (r, ar) in a.iter_mut().enumerate() {
                    let wv = _mm512_set1_epi32(*self.w.add(r * self.kp + p) as i32);
                    for v in 0..V {
                        ar[v] = _mm512_dpbf16_ps(ar[v], bh(wv), bh(b[v]));
                    }
                }
            }
            let mut tmp = [0f32; 16];
            for (r, ar) in a.iter().enumerate() {
                for (v, av) in ar.iter().enumerate() {
                    _mm512_storeu_ps(tmp.as_mut_ptr(), *av);
                    for (l, t) in tmp
                        .iter()
                        .enumerate()
                        .take(self.rows.saturating_sub(16 * v))
                    {
                        // SAFETY: row m0 + 16v + l < m and column n0 + r < n; this
                        // thread owns column n0 + r.
                        let d = self.y.0.add((self.m0 + 16 * v + l) * n + n0 + r);
                        *d = if acc { *d + t } else { *t };
                    }
                }
            }
        }
    }

    /// `g` (`[m, n]`) as rows of bf16 pairs (`ceil(n/2)` each, an odd `n`'s last pair
    /// padded with zero).
    #[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
    unsafe fn pair_rows(g: &[f32], m: usize, n: usize) -> Vec<u32> {
        let np = n.div_ceil(2);
        let mut out = vec![0u32; m * np];
        out.par_chunks_mut(np).enumerate().for_each(|(i, row)| {
            let src = g.as_ptr().add(i * n);
            let mut tmp = [0u32; 16];
            for p0 in (0..np).step_by(16) {
                let v = pairs(src.add(2 * p0), n - 2 * p0);
                _mm512_storeu_si512(tmp.as_mut_ptr() as *mut _, v);
                let take = 16.min(np - p0);
                row[p0..p0 + take].copy_from_slice(&tmp[..take]);
            }
        });
        out
    }

    /// `dx = g W` (see [`super::gw`]): every element of `dx` stored once.
    #[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
    pub(super) unsafe fn gw(
        dx: &mut [f32],
        g: &[f32],
        w: &[bf16],
        (m, n, k): (usize, usize, usize),
    ) {
        let gp = pair_rows(g, m, n);
        let out = Out(dx.as_mut_ptr());
        // Each thread owns a range of dx's columns.
        ranges(k, COLS, threads())
            .into_par_iter()
            .for_each(|(c0, c1)| {
                let (out, w) = (out, w.as_ptr() as *const u16);
                for c in (c0..c1).step_by(COLS) {
                    let mut i = 0;
                    while i < m {
                        let r = GR.min(m - i);
                        let t = Back {
                            g: gp.as_ptr().add(i * n.div_ceil(2)),
                            n,
                            w,
                            k,
                            c,
                            cols: COLS.min(c1 - c),
                        };
                        t.run(r, out.0.add(i * k));
                        i += r;
                    }
                }
            });
    }

    /// One backward tile: `r` rows of `g` against columns `c..c + cols` of `W`.
    struct Back {
        g: *const u32,
        n: usize,
        w: *const u16,
        k: usize,
        c: usize,
        cols: usize,
    }

    impl Back {
        #[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
        unsafe fn run(&self, r: usize, dx: *mut f32) {
            match r {
                1 => self.tile::<1>(dx),
                2 => self.tile::<2>(dx),
                3 => self.tile::<3>(dx),
                4 => self.tile::<4>(dx),
                5 => self.tile::<5>(dx),
                _ => self.tile::<6>(dx),
            }
        }

        /// `R` rows x 64 columns: per 32-column chunk, two accumulators whose lanes hold
        /// columns {0-3, 8-11, 16-19, 24-27} and {4-7, 12-15, 20-23, 28-31}.
        #[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
        unsafe fn tile<const R: usize>(&self, dx: *mut f32) {
            let np = self.n.div_ceil(2);
            let masks = [mask32(self.cols), mask32(self.cols.saturating_sub(32))];
            let mut a = [[_mm512_setzero_ps(); 4]; R];
            let zero = _mm512_setzero_si512();
            for q in 0..np {
                let row0 = self.w.add(2 * q * self.k + self.c);
                let has1 = 2 * q + 1 < self.n;
                let b: [__m512i; 4] = std::array::from_fn(|i| {
                    let (ch, hi) = (i / 2, i % 2 == 1);
                    let r0 = _mm512_maskz_loadu_epi16(masks[ch], row0.add(32 * ch) as *const _);
                    let r1 = if has1 {
                        _mm512_maskz_loadu_epi16(masks[ch], row0.add(self.k + 32 * ch) as *const _)
                    } else {
                        zero
                    };
                    if hi {
                        _mm512_unpackhi_epi16(r0, r1)
                    } else {
                        _mm512_unpacklo_epi16(r0, r1)
                    }
                });
                for (r, ar) in a.iter_mut().enumerate() {
                    let gv = _mm512_set1_epi32(*self.g.add(r * np + q) as i32);
                    for i in 0..4 {
                        ar[i] = _mm512_dpbf16_ps(ar[i], bh(gv), bh(b[i]));
                    }
                }
            }
            let i0 = _mm512_setr_epi32(0, 1, 2, 3, 16, 17, 18, 19, 4, 5, 6, 7, 20, 21, 22, 23);
            let i1 =
                _mm512_setr_epi32(8, 9, 10, 11, 24, 25, 26, 27, 12, 13, 14, 15, 28, 29, 30, 31);
            for (r, ar) in a.iter().enumerate() {
                let row = dx.add(r * self.k + self.c);
                for ch in 0..2 {
                    let (lo, hi) = (ar[2 * ch], ar[2 * ch + 1]);
                    let left = self.cols.saturating_sub(32 * ch);
                    let first = _mm512_permutex2var_ps(lo, i0, hi);
                    let second = _mm512_permutex2var_ps(lo, i1, hi);
                    _mm512_mask_storeu_ps(row.add(32 * ch), mask16(left), first);
                    let rest = left.saturating_sub(16);
                    _mm512_mask_storeu_ps(row.add(32 * ch + 16), mask16(rest), second);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(len: usize, seed: u32) -> Vec<f32> {
        (0..len)
            .map(|i| (((i as u32).wrapping_mul(2654435761) ^ seed) % 2001) as f32 / 1000.0 - 1.0)
            .collect()
    }

    /// The arithmetic both paths promise, by hand: inputs rounded to bf16, products in f64.
    fn by_hand(a: &[f32], b: &[bf16], (m, n, k): (usize, usize, usize), at: bool) -> Vec<f32> {
        let mut out = vec![0f32; m * n];
        for i in 0..m {
            for j in 0..n {
                let s: f64 = (0..k)
                    .map(|l| {
                        let w = if at { b[j * k + l] } else { b[l * n + j] };
                        bf16::from_f32(a[i * k + l]).to_f64() * w.to_f64()
                    })
                    .sum();
                out[i * n + j] = s as f32;
            }
        }
        out
    }

    fn close(got: &[f32], want: &[f32], what: &str) {
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            assert!(
                (g - w).abs() <= 1e-4 * (1.0 + w.abs()),
                "{what}[{i}]: {g} vs {w}"
            );
        }
    }

    /// Odd shapes: tails of every tile (m % 16, m % 64, n % 6, k % 64, odd n) and T = 1.
    #[test]
    fn products_match_the_rounded_arithmetic_by_hand() {
        if !avx512_bf16() {
            eprintln!("note: no AVX512_BF16 here: only the portable path is checked");
        }
        type Fwd = fn(&mut [f32], &[f32], &[bf16], (usize, usize, usize), bool);
        type Back = fn(&mut [f32], &[f32], &[bf16], (usize, usize, usize));
        let paths: [(&str, Fwd, Back); 2] = [
            ("dispatched", xwt, gw),
            ("widened", xwt_widened, gw_widened),
        ];
        // The last one widens more than one block of rows on the portable path.
        let shapes = [
            (1, 1, 2),
            (3, 7, 10),
            (17, 13, 70),
            (70, 6, 64),
            (65, 19, 130),
            (5, 9, 33),
            (3, WIDEN_ROWS + 6, 4),
        ];
        for (path, fwd, back) in paths {
            for &(m, n, k) in &shapes {
                let at = format!("{path} {m}x{n}x{k}");
                let x = data(m * k, 1);
                let w: Vec<bf16> = data(n * k, 2).into_iter().map(bf16::from_f32).collect();
                let mut y = data(m * n, 3);
                let addend = y.clone();
                fwd(&mut y, &x, &w, (m, n, k), true);
                let mut want = by_hand(&x, &w, (m, n, k), true);
                want.iter_mut().zip(&addend).for_each(|(w, a)| *w += a);
                close(&y, &want, &format!("x W^T + a, {at}"));
                fwd(&mut y, &x, &w, (m, n, k), false);
                close(
                    &y,
                    &by_hand(&x, &w, (m, n, k), true),
                    &format!("x W^T, {at}"),
                );

                let g = data(m * n, 4);
                let mut dx = data(m * k, 5);
                back(&mut dx, &g, &w, (m, n, k));
                close(
                    &dx,
                    &by_hand(&g, &w, (m, k, n), false),
                    &format!("g W, {at}"),
                );
            }
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn sixteen_lanes_transpose() {
        use std::arch::x86_64::*;
        if !std::arch::is_x86_feature_detected!("avx512f") {
            eprintln!("SKIPPED: no AVX-512F here");
            return;
        }
        let mut m = [[0u32; 16]; 16];
        for (i, row) in m.iter_mut().enumerate() {
            for (j, v) in row.iter_mut().enumerate() {
                *v = (100 * i + j) as u32;
            }
        }
        // SAFETY: AVX-512F checked; loads and stores of 16 u32 within each row.
        let out = unsafe {
            let mut r: [__m512i; 16] =
                std::array::from_fn(|i| _mm512_loadu_si512(m[i].as_ptr() as *const _));
            avx::transpose16(&mut r);
            let mut out = [[0u32; 16]; 16];
            for (o, v) in out.iter_mut().zip(r) {
                _mm512_storeu_si512(o.as_mut_ptr() as *mut _, v);
            }
            out
        };
        for i in 0..16 {
            for j in 0..16 {
                assert_eq!(out[i][j], m[j][i], "({i}, {j})");
            }
        }
    }

    #[test]
    fn ranges_cover_once_in_steps() {
        assert_eq!(ranges(13, 6, 2), vec![(0, 12), (12, 13)]);
        assert_eq!(ranges(12, 6, 2), vec![(0, 6), (6, 12)]);
        assert_eq!(ranges(5, 64, 2), vec![(0, 5)]);
    }
}
