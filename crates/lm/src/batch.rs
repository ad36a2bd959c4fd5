//! Scoring many prompts at once ([`Scorer::score_all`]): each distinct prompt once, in
//! batches of similar length (less padding), each row with its own soft prompt in front
//! where one is given (MoS's mixed prompts).

use crate::error::{LmError, Result};
use crate::score::Scorer;
use candle_core::Tensor;
use std::collections::HashMap;
use std::time::Instant;

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
        for chunk in order.chunks(batch.max(1)) {
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
        }
        for k in 0..ids.len() {
            p_yes[k] = p_yes[same_as[k]];
        }
        Ok(Scored {
            p_yes,
            distinct: order.len(),
            tokens,
            seconds: t0.elapsed().as_secs_f64(),
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
    #[test]
    fn equal_keys_point_at_their_first() {
        let keys = [(0, "a"), (0, "b"), (0, "a"), (1, "a"), (1, "a")];
        assert_eq!(super::first_of_each(keys.into_iter()), [0, 1, 0, 3, 3]);
    }
}
