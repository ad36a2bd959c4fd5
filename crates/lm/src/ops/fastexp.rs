//! A vectorisable `exp` and the loops built on it (softmax rows, SiLU), run with AVX2 and
//! FMA enabled when the CPU has them. `f32::exp` is a scalar libm call that no loop
//! vectorises; the softmax of attention and the SwiGLU gate call it once per element
//! (about 3% of a SmolLM2 training step, measured with `perf`).

/// `exp(x)` as in Cephes' `expf`: `x = n ln 2 + r` with `n` the nearest integer to
/// `x log2 e` and `|r| <= ln 2 / 2` (`ln 2` split in two parts so that `r` is exact),
/// `exp(r) = 1 + r + r^2 P(r)` with a degree-5 polynomial, and `2^n` put in the exponent
/// bits. No float-to-int conversion (Rust's saturating cast does not vectorise): `n` is
/// rounded by adding `1.5 * 2^23`, which leaves it in the low mantissa bits. Relative error
/// below 3e-7 (tested against `f64::exp`). Inputs are clamped to `[-87.5, 88]`, so
/// anything below comes out as `exp(-87.5)` (about 1e-38, the smallest normal floats) and
/// anything above as `exp(88)`; NaN stays NaN.
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const MAGIC: f32 = 12_582_912.0; // 1.5 * 2^23
    const C1: f32 = 0.693_359_4;
    const C2: f32 = -2.121_944_4e-4;
    const P: [f32; 6] = [
        1.987_569_1e-4,
        1.398_199_9e-3,
        8.333_452e-3,
        4.166_579_6e-2,
        0.166_666_65,
        0.5,
    ];
    let x = x.clamp(-87.5, 88.0);
    let k = x * LOG2E + MAGIC;
    let n = k - MAGIC;
    let r = x - n * C1 - n * C2;
    let p = P.iter().fold(0.0, |acc, &c| acc * r + c);
    let y = p * r * r + r + 1.0;
    // k's bits are 0x4B40_0000 + n; n + 127 in [1, 254] after the clamp.
    let e = k.to_bits().wrapping_sub(0x4B40_0000 - 127) << 23;
    y * f32::from_bits(e)
}

/// `1 / (1 + exp(-x))`.
#[inline(always)]
pub fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + exp(-x))
}

/// Whether this CPU runs AVX2 and FMA (detected once, then cached by std).
#[inline]
pub fn has_avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// `fn name(args) { body }` compiled twice, for baseline x86-64 and with AVX2 and FMA
/// enabled, the second run when the CPU has them: the crate is built for baseline x86-64,
/// so only the second copy's loops vectorise eight lanes wide. (A closure passed to a
/// `#[target_feature]` function is not reliably inlined into it; an `#[inline(always)]`
/// body is.)
macro_rules! wide_fn {
    ($(#[$m:meta])* $vis:vis fn $name:ident($($a:ident: $t:ty),* $(,)?) $body:block) => {
        $(#[$m])*
        $vis fn $name($($a: $t),*) {
            #[inline(always)]
            fn body($($a: $t),*) $body
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx2,fma")]
                unsafe fn wide($($a: $t),*) {
                    body($($a),*)
                }
                if $crate::ops::fastexp::has_avx2() {
                    // SAFETY: the features were detected on this CPU.
                    return unsafe { wide($($a),*) };
                }
            }
            body($($a),*)
        }
    };
}
pub(crate) use wide_fn;

wide_fn! {
    /// Softmax of `row` in place: `exp(x - max) / sum`. Max and sum run in eight lanes.
    pub fn softmax_in_place(row: &mut [f32]) {
        let mut m = [f32::NEG_INFINITY; 8];
        let chunks = row.chunks_exact(8);
        let tail = chunks.remainder();
        for c in chunks {
            for j in 0..8 {
                m[j] = m[j].max(c[j]);
            }
        }
        let max = tail.iter().chain(&m).fold(f32::NEG_INFINITY, |a, &x| a.max(x));
        let mut s = [0f32; 8];
        let mut chunks = row.chunks_exact_mut(8);
        for c in &mut chunks {
            for j in 0..8 {
                c[j] = exp(c[j] - max);
                s[j] += c[j];
            }
        }
        let mut sum: f32 = s.iter().sum();
        for x in chunks.into_remainder() {
            *x = exp(*x - max);
            sum += *x;
        }
        let inv = 1.0 / sum;
        row.iter_mut().for_each(|x| *x *= inv);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_matches_libm_within_3e_7() {
        let mut worst = 0f64;
        let mut x = -87.0f32;
        while x < 88.0 {
            let (a, b) = (exp(x) as f64, (x as f64).exp());
            worst = worst.max((a - b).abs() / b);
            x += 0.001_37;
        }
        assert!(worst < 3e-7, "worst relative error {worst}");
        assert_eq!(exp(0.0), 1.0);
        for low in [-1000.0, f32::NEG_INFINITY] {
            assert!(exp(low) > 0.0 && exp(low) < 1.2e-38, "{}", exp(low));
        }
        assert!(exp(1000.0).is_finite() && exp(1000.0) > 1e38);
        assert!(exp(f32::NAN).is_nan());
    }

    #[test]
    fn softmax_rows_of_every_length_match_the_direct_formula() {
        for n in [1usize, 7, 8, 9, 64, 67] {
            let mut row: Vec<f32> = (0..n).map(|i| ((i * 37 % 11) as f32 - 5.0) * 1.3).collect();
            let max = row.iter().fold(f32::NEG_INFINITY, |a, &x| a.max(x)) as f64;
            let e: Vec<f64> = row.iter().map(|&x| (x as f64 - max).exp()).collect();
            let s: f64 = e.iter().sum();
            softmax_in_place(&mut row);
            for (got, want) in row.iter().zip(&e) {
                assert!(
                    (*got as f64 - want / s).abs() < 1e-6,
                    "n {n}: {got} vs {}",
                    want / s
                );
            }
        }
    }
}
