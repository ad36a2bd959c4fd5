//! ALiBi attention biases (Press et al., "Train Short, Test Long", 2022) as the published
//! modelling code of Baichuan-13B and Baichuan2-13B (paper A's Baichuan2 backbone at 13B)
//! builds them: no position embedding, and each head's attention scores get its slope
//! times the key's position before the softmax.

use candle_core::{Device, Tensor};

/// The slopes of `n` heads (Baichuan's `_get_interleave`): for a power of two, the
/// geometric sequence `s, s^2, .., s^n` with `s = 2^(-8/n)`; otherwise those of the largest
/// power of two `c` below `n`, followed by every second slope of `2c` heads, `n - c` of them.
pub fn slopes(n: usize) -> Vec<f64> {
    fn power_of_two(n: usize) -> Vec<f64> {
        let start = 2f64.powf(-(2f64.powf(-((n as f64).log2() - 3.0))));
        (0..n).map(|i| start * start.powi(i as i32)).collect()
    }
    if n == 0 || n.is_power_of_two() {
        return power_of_two(n);
    }
    let c = 1usize << n.ilog2();
    let mut s = power_of_two(c);
    s.extend(slopes(2 * c).into_iter().step_by(2).take(n - c));
    s
}

/// The biases `[heads, keys]` (f32): head `h`'s slope times key position `j` (0-based,
/// a soft prompt's positions included). Baichuan adds `slope * j` to every query row,
/// which equals ALiBi's `slope * (j - i)` up to a per-row constant that the softmax drops.
pub fn bias(slopes: &[f32], keys: usize, device: &Device) -> candle_core::Result<Tensor> {
    let v: Vec<f32> = slopes
        .iter()
        .flat_map(|&s| (0..keys).map(move |j| s * j as f32))
        .collect();
    Tensor::from_vec(v, (slopes.len(), keys), device)
}

#[cfg(test)]
mod tests {
    use super::slopes;

    /// The ALiBi paper's slopes for 8 heads are 1/2 .. 1/256; 3 heads take 2 heads'
    /// (1/16, 1/256) and the first of every second of 4 heads' (1/4).
    #[test]
    fn slopes_are_the_papers_and_baichuans_interleave() {
        let eight: Vec<f64> = (1..=8).map(|i| 0.5f64.powi(i)).collect();
        assert_eq!(slopes(8), eight);
        assert_eq!(slopes(3), vec![1.0 / 16.0, 1.0 / 256.0, 0.25]);
        let forty = slopes(40);
        assert_eq!(forty.len(), 40);
        assert_eq!(&forty[..32], &slopes(32)[..]);
        assert_eq!(forty[32], slopes(64)[0]);
        assert_eq!(forty[39], slopes(64)[14]);
    }
}
