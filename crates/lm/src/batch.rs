//! Scoring many prompts at once ([`Scorer::score_all`]): each distinct prompt once, in
//! batches of similar length (less padding), each row with its own soft prompt in front
//! where one is given (MoS's mixed prompts). The batch size is given or sized from the
//! device's free memory ([`BatchSize`]), and halved whenever the device runs out of memory
//! ([`chunked_with_backoff`]), without losing or redoing what was scored.

use crate::error::{LmError, Result};
use crate::score::Scorer;
use candle_core::{Device, Tensor};
use std::collections::HashMap;
use std::ops::Range;
use std::time::Instant;

/// Prompts per forward pass (`--batch-size`): a number, or `auto` (sized from the device's
/// free memory; 8 on the CPU).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BatchSize {
    #[default]
    Auto,
    Fixed(usize),
}

impl std::str::FromStr for BatchSize {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "auto" => Ok(BatchSize::Auto),
            n => match n.parse::<usize>() {
                Ok(n) if n > 0 => Ok(BatchSize::Fixed(n)),
                _ => Err(format!(
                    "`{n}`: expected a number of prompts (1 or more) or auto"
                )),
            },
        }
    }
}

impl std::fmt::Display for BatchSize {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BatchSize::Auto => f.write_str("auto"),
            BatchSize::Fixed(n) => write!(f, "{n}"),
        }
    }
}

/// `auto` on the CPU (memory is not what limits a batch there).
pub const CPU_AUTO_BATCH: usize = 8;
/// The largest batch `auto` picks.
pub const MAX_AUTO_BATCH: usize = 256;

impl BatchSize {
    /// The batch size for prompts of up to `tokens` tokens on a `hidden`-wide model with
    /// `dtype_bytes` per activation on `device`. `auto` on a GPU: half the free memory over
    /// an estimate of one prompt's largest live activations (ours: the widest block's
    /// inputs, projections and MLP, ~24 hidden-wide rows per token, plus the f32 attention
    /// scores of `hidden / 64` heads), between 1 and [`MAX_AUTO_BATCH`]; an underestimate
    /// is caught by [`chunked_with_backoff`].
    pub fn resolve(
        self,
        device: &Device,
        hidden: usize,
        tokens: usize,
        dtype_bytes: usize,
    ) -> usize {
        match (self, crate::device::free_memory(device)) {
            (BatchSize::Fixed(n), _) => n,
            (BatchSize::Auto, None) => CPU_AUTO_BATCH,
            (BatchSize::Auto, Some(free)) => {
                let heads = (hidden / 64).max(1);
                let per = tokens * hidden * 24 * dtype_bytes + heads * tokens * tokens * 4;
                (free / 2 / per.max(1)).clamp(1, MAX_AUTO_BATCH)
            }
        }
    }
}

/// Whether `e` is the device running out of memory (CUDA's `CUDA_ERROR_OUT_OF_MEMORY` as
/// candle reports it, or an allocator's "out of memory").
pub fn is_out_of_memory(e: &LmError) -> bool {
    let s = e.to_string();
    s.contains("CUDA_ERROR_OUT_OF_MEMORY") || s.contains("out of memory")
}

/// Run `work` over `0..n` in consecutive chunks of at most `size` items. When a chunk fails
/// for want of device memory ([`is_out_of_memory`]) it is retried at half its size, and
/// the smaller size is kept: what was done before is neither lost nor redone. Returns the
/// size the work ended with; a single item that does not fit is [`LmError::OutOfMemory`].
pub fn chunked_with_backoff(
    n: usize,
    size: usize,
    mut work: impl FnMut(Range<usize>) -> Result<()>,
) -> Result<usize> {
    let (mut at, mut size) = (0, size.max(1));
    while at < n {
        let end = (at + size).min(n);
        match work(at..end) {
            Ok(()) => at = end,
            Err(e) if is_out_of_memory(&e) && end - at > 1 => {
                let half = (end - at) / 2;
                tracing::warn!("out of device memory with a batch of {}; retrying with {half}", end - at);
                size = half;
            }
            Err(e) if is_out_of_memory(&e) => {
                return Err(LmError::OutOfMemory {
                    batch: 1,
                    message: format!("{e} (the model and one prompt do not fit: try a smaller --dtype or a larger device)"),
                })
            }
            Err(e) => return Err(e),
        }
    }
    Ok(size)
}

/// What [`Scorer::score_all`] reports as it goes.
pub enum ScoreEvent {
    /// Before the first batch: the distinct prompts and their tokens.
    Start { distinct: usize, tokens: usize },
    /// After each batch: its prompts, and the tokens scored so far per second.
    Batch { prompts: usize, tokens_per_s: f64 },
}

/// The P(Yes) of every prompt and what scoring them took.
pub struct Scored {
    pub p_yes: Vec<f64>,
    /// Prompts scored (the others were equal to one of these).
    pub distinct: usize,
    /// Tokens of the distinct prompts.
    pub tokens: usize,
    pub seconds: f64,
    /// The batch size scoring ended with (smaller than asked after running out of memory).
    pub batch: usize,
}

impl Scorer<'_> {
    /// P(Yes) of every prompt `ids[k]`, which belongs to row `rows[k]` (a sample): equal
    /// prompts of the same row are scored once; with `prefixes` (`[rows, P, H]`), row `r`'s
    /// soft prompt goes in front of each of its prompts. `batch` prompts per forward pass.
    /// A P(Yes) that is not finite stops the scoring at its batch ([`LmError::Prompt`]).
    pub fn score_all(
        &self,
        ids: &[Vec<u32>],
        rows: &[usize],
        prefixes: Option<&Tensor>,
        batch: usize,
        on: &mut dyn FnMut(ScoreEvent),
    ) -> Result<Scored> {
        let same_as = first_of_each(rows.iter().zip(ids));
        let mut order: Vec<usize> = (0..ids.len()).filter(|&k| same_as[k] == k).collect();
        order.sort_by_key(|&k| ids[k].len());
        let tokens: usize = order.iter().map(|&k| ids[k].len()).sum();
        on(ScoreEvent::Start {
            distinct: order.len(),
            tokens,
        });
        let mut p_yes = vec![0.0; ids.len()];
        let (mut done_tokens, t0) = (0usize, Instant::now());
        let batch = chunked_with_backoff(order.len(), batch, |range| {
            let chunk = &order[range];
            let batch_ids: Vec<Vec<u32>> = chunk.iter().map(|&k| ids[k].clone()).collect();
            let prefix = match prefixes {
                Some(all) => {
                    let r: Vec<u32> = chunk.iter().map(|&k| rows[k] as u32).collect();
                    let idx = Tensor::new(r.as_slice(), all.device())?;
                    Some(all.index_select(&idx, 0)?)
                }
                None => None,
            };
            for (&k, v) in chunk
                .iter()
                .zip(self.p_yes_prefixed(&batch_ids, prefix.as_ref())?)
            {
                if !v.is_finite() {
                    return Err(LmError::Prompt {
                        index: k,
                        message: format!(
                            "P(Yes) is {v}: the model's outputs are not finite (its weights hold NaN or infinity?)"
                        ),
                    });
                }
                p_yes[k] = v;
            }
            done_tokens += batch_ids.iter().map(Vec::len).sum::<usize>();
            on(ScoreEvent::Batch {
                prompts: chunk.len(),
                tokens_per_s: done_tokens as f64 / t0.elapsed().as_secs_f64(),
            });
            Ok(())
        })?;
        for k in 0..ids.len() {
            p_yes[k] = p_yes[same_as[k]];
        }
        Ok(Scored {
            p_yes,
            distinct: order.len(),
            tokens,
            seconds: t0.elapsed().as_secs_f64(),
            batch,
        })
    }
}

/// For each key, the index of the first equal key (itself when it is the first).
fn first_of_each<K: std::hash::Hash + Eq>(keys: impl Iterator<Item = K>) -> Vec<usize> {
    let mut first = HashMap::new();
    keys.enumerate()
        .map(|(k, key)| *first.entry(key).or_insert(k))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn oom() -> LmError {
        // What candle reports when a CUDA allocation fails.
        LmError::Candle(candle_core::Error::Msg(
            "DriverError(CUDA_ERROR_OUT_OF_MEMORY, \"out of memory\")".into(),
        ))
    }

    #[test]
    fn running_out_of_memory_halves_the_batch_and_loses_nothing() {
        // A device that fits 3 items at once: 10 items asked in batches of 8.
        let mut calls = Vec::new();
        let mut done = vec![0u32; 10];
        let end = chunked_with_backoff(10, 8, |r| {
            calls.push(r.clone());
            if r.len() > 3 {
                return Err(oom());
            }
            for i in r {
                done[i] += 1;
            }
            Ok(())
        })
        .unwrap();
        assert_eq!(done, [1; 10], "every item once, none lost or redone");
        assert_eq!(end, 2, "8 -> 4 -> 2, then kept");
        assert_eq!(calls, [0..8, 0..4, 0..2, 2..4, 4..6, 6..8, 8..10]);
        // A failure of another kind stops at once; one item that does not fit names the
        // batch size.
        let e = chunked_with_backoff(4, 2, |_| Err(LmError::Invalid("bad".into()))).unwrap_err();
        assert_eq!(e.to_string(), "bad");
        let e = chunked_with_backoff(4, 4, |_| Err(oom())).unwrap_err();
        assert!(matches!(e, LmError::OutOfMemory { batch: 1, .. }), "{e}");
        assert!(e.to_string().contains("batch of 1 prompt"), "{e}");
    }

    #[test]
    fn batch_sizes_parse_and_auto_is_8_on_the_cpu() {
        assert_eq!("auto".parse::<BatchSize>(), Ok(BatchSize::Auto));
        assert_eq!("16".parse::<BatchSize>(), Ok(BatchSize::Fixed(16)));
        for bad in ["0", "-1", "x", ""] {
            let e = bad.parse::<BatchSize>().unwrap_err();
            assert!(e.contains("or auto"), "{e}");
        }
        assert_eq!(
            BatchSize::Auto.resolve(&Device::Cpu, 576, 200, 4),
            CPU_AUTO_BATCH
        );
        assert_eq!(BatchSize::Fixed(3).resolve(&Device::Cpu, 576, 200, 4), 3);
        assert_eq!(BatchSize::Auto.to_string(), "auto");
    }

    #[test]
    fn equal_keys_point_at_their_first() {
        let keys = [(0, "a"), (0, "b"), (0, "a"), (1, "a"), (1, "a")];
        assert_eq!(super::first_of_each(keys.into_iter()), [0, 1, 0, 3, 3]);
    }
}
