//! Text generation from a decoder (`fairrec serve`'s completions, `fairrec audit --cot
//! generate`'s reasoning): every pending sequence batched into one forward pass per
//! generated position, greedy or sampled (temperature, nucleus), ending at EOS, a stop
//! string or the token budget.
//!
//! The first token of every sequence comes from one batched forward pass over the prompts
//! (a request of `max_tokens: 1`, what an audit sends, costs nothing more); a decoder's
//! later tokens come from a key/value cache, one position per step ([`crate::kv`]), and
//! equal a full forward pass over the sequence (tested). A T5 model answers at its first
//! decoder step only, so it generates 0 or 1 tokens.

use crate::grad::no_grad;
use crate::kv::KvCache;
use crate::score::Scorer;
use crate::tokenizer::Tok;
use fairrec_core::Rng;

/// What a request asks the model for, already tokenised and checked.
pub struct Work {
    /// Token ids of each prompt (one choice set per prompt).
    pub prompts: Vec<Vec<u32>>,
    pub max_tokens: usize,
    /// 0 = greedy.
    pub temperature: f64,
    pub top_p: f64,
    /// Choices per prompt.
    pub n: usize,
    pub seed: u64,
    pub stop: Vec<String>,
    /// Alternatives to list per position (`None`: no log-probabilities).
    pub top: Option<usize>,
    /// The prompt tokens' log-probabilities too (decoders only).
    pub echo_logprobs: bool,
}

/// One position's chosen token, its log-probability and the best alternatives.
#[derive(Debug, Clone)]
pub struct Step {
    pub token: u32,
    pub logprob: f64,
    pub top: Vec<(u32, f64)>,
}

/// One choice: the generated steps, why it ended, and (echo with logprobs) the prompt's
/// first token, which has no log-probability, and the steps of the others.
#[derive(Debug, Clone)]
pub struct Generation {
    pub prompt: usize,
    pub steps: Vec<Step>,
    /// The completion's text (stop string and EOS excluded).
    pub text: String,
    pub finish: &'static str,
    pub echo: Option<(u32, Vec<Step>)>,
    pub prompt_tokens: usize,
}

/// A sequence being generated.
struct Seq {
    job: usize,
    ids: Vec<u32>,
    gen: Generation,
    rng: Rng,
    done: bool,
}

/// Generate every choice of every work item, all sequences batched position by position.
pub fn generate(
    scorer: &Scorer,
    works: &[&Work],
    batch: usize,
) -> crate::Result<Vec<Vec<Generation>>> {
    let mut seqs = Vec::new();
    for (j, w) in works.iter().enumerate() {
        for (p, ids) in w.prompts.iter().enumerate() {
            let echo = if w.echo_logprobs {
                Some(echo_steps(scorer, ids, w.top.unwrap_or(0))?)
            } else {
                None
            };
            for c in 0..w.n {
                seqs.push(Seq {
                    job: j,
                    ids: ids.clone(),
                    gen: Generation {
                        prompt: p,
                        steps: Vec::new(),
                        text: String::new(),
                        finish: "length",
                        echo: echo.clone(),
                        prompt_tokens: ids.len(),
                    },
                    rng: Rng::derive(w.seed, &format!("serve/{p}/{c}")),
                    done: w.max_tokens == 0,
                });
            }
        }
    }
    // The first token of every sequence from one batched pass over the prompts (all an
    // audit's `max_tokens: 1` needs).
    let mut first: Vec<usize> = (0..seqs.len()).filter(|&i| !seqs[i].done).collect();
    first.sort_by_key(|&i| seqs[i].ids.len());
    for chunk in first.chunks(batch.max(1)) {
        let ids: Vec<Vec<u32>> = chunk.iter().map(|&i| seqs[i].ids.clone()).collect();
        let logits = no_grad(|| scorer.vocab_logits(&ids, None))?.to_vec2::<f32>()?;
        for (&i, row) in chunk.iter().zip(&logits) {
            let w = works[seqs[i].job];
            advance(scorer.tok, w, &mut seqs[i], row)?;
        }
    }
    match scorer.backbone.decoder() {
        Some(model) => continue_cached(model, scorer.tok, works, &mut seqs, batch)?,
        // T5 answers at its first decoder step only (checked at the door).
        None => seqs.iter_mut().for_each(|s| s.done = true),
    }
    let mut out: Vec<Vec<Generation>> = works.iter().map(|_| Vec::new()).collect();
    for s in seqs {
        out[s.job].push(s.gen);
    }
    Ok(out)
}

/// The tokens after the first: each unfinished sequence's prompt and first token run once
/// into a key/value cache ([`fairrec_lm::kv`]), then one position per step, the sequences
/// of a chunk of `batch` together.
fn continue_cached(
    model: &crate::llama::Llama,
    tok: &Tok,
    works: &[&Work],
    seqs: &mut [Seq],
    batch: usize,
) -> crate::Result<()> {
    let mut caches: Vec<Option<KvCache>> = Vec::with_capacity(seqs.len());
    for s in seqs.iter_mut() {
        if s.done {
            caches.push(None);
            continue;
        }
        let w = works[s.job];
        let extra = w.max_tokens.saturating_sub(s.gen.steps.len());
        let (cache, logits) = no_grad(|| model.prefill(&s.ids, extra))?;
        advance(tok, w, s, &logits.to_vec1::<f32>()?)?;
        caches.push((!s.done).then_some(cache));
    }
    loop {
        let active: Vec<usize> = (0..seqs.len()).filter(|&i| caches[i].is_some()).collect();
        if active.is_empty() {
            return Ok(());
        }
        for chunk in active.chunks(batch.max(1)) {
            let tokens: Vec<u32> = chunk
                .iter()
                .map(|&i| *seqs[i].ids.last().expect("a prompt has tokens"))
                .collect();
            // The chunk's caches (ascending indices), borrowed together.
            let mut want = chunk.iter().peekable();
            let mut cs: Vec<&mut KvCache> = caches
                .iter_mut()
                .enumerate()
                .filter_map(|(i, c)| (want.next_if_eq(&&i).is_some()).then_some(c.as_mut()?))
                .collect();
            let logits = no_grad(|| model.decode_step(&tokens, &mut cs))?.to_vec2::<f32>()?;
            for (&i, row) in chunk.iter().zip(&logits) {
                advance(tok, works[seqs[i].job], &mut seqs[i], row)?;
                if seqs[i].done {
                    caches[i] = None;
                }
            }
        }
    }
}

/// Choose the next token of `s` from its logits `row`, record it, and end the sequence at
/// EOS, a stop string or `max_tokens`.
fn advance(tok: &Tok, w: &Work, s: &mut Seq, row: &[f32]) -> crate::Result<()> {
    let lse = log_sum_exp(row);
    let token = if w.temperature == 0.0 {
        argmax(row)
    } else {
        sample(row, w.temperature, w.top_p, &mut s.rng)
    };
    let top = w.top.map(|k| top_k(row, k, lse)).unwrap_or_default();
    s.gen.steps.push(Step {
        token,
        logprob: f64::from(row[token as usize]) - lse,
        top,
    });
    s.ids.push(token);
    let generated: Vec<u32> = s.gen.steps.iter().map(|st| st.token).collect();
    if Some(token) == tok.eos {
        s.gen.text = tok.decode(&generated[..generated.len() - 1])?;
        s.gen.finish = "stop";
        s.done = true;
        return Ok(());
    }
    s.gen.text = tok.decode(&generated)?;
    if let Some(at) = w
        .stop
        .iter()
        .filter_map(|st| s.gen.text.find(st.as_str()))
        .min()
    {
        s.gen.text.truncate(at);
        s.gen.finish = "stop";
        s.done = true;
    } else if s.gen.steps.len() >= w.max_tokens {
        s.done = true;
    }
    Ok(())
}

/// The prompt's first token and the later prompt tokens' log-probabilities under the model
/// (a decoder: one forward pass over the prompt, the full head at every position).
fn echo_steps(scorer: &Scorer, ids: &[u32], k: usize) -> crate::Result<(u32, Vec<Step>)> {
    let model = scorer.model("echo with logprobs")?;
    let x = candle_core::Tensor::new(ids, scorer.device())?.unsqueeze(0)?;
    let rows = no_grad(|| {
        let f = model.forward(&x, None)?;
        model.head_logits(&f.last.squeeze(0)?)
    })?
    .to_vec2::<f32>()?;
    let mut out = Vec::with_capacity(ids.len());
    for (pos, &token) in ids.iter().enumerate().skip(1) {
        let row = &rows[pos - 1];
        let lse = log_sum_exp(row);
        out.push(Step {
            token,
            logprob: f64::from(row[token as usize]) - lse,
            top: top_k(row, k, lse),
        });
    }
    Ok((ids[0], out))
}

/// `log(sum(exp(row)))` in f64.
pub fn log_sum_exp(row: &[f32]) -> f64 {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    max + row
        .iter()
        .map(|&l| (f64::from(l) - max).exp())
        .sum::<f64>()
        .ln()
}

/// The highest logit's token (the lowest id among ties).
fn argmax(row: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &l) in row.iter().enumerate() {
        if l > row[best] {
            best = i;
        }
    }
    best as u32
}

/// The `k` most likely tokens with their log-probabilities, most likely first (ties by id).
pub fn top_k(row: &[f32], k: usize, lse: f64) -> Vec<(u32, f64)> {
    let mut ids: Vec<u32> = (0..row.len() as u32).collect();
    let k = k.min(ids.len());
    let order = |a: &u32, b: &u32| row[*b as usize].total_cmp(&row[*a as usize]).then(a.cmp(b));
    if k < ids.len() && k > 0 {
        ids.select_nth_unstable_by(k - 1, order);
    }
    ids.truncate(k);
    ids.sort_by(order);
    ids.into_iter()
        .map(|t| (t, f64::from(row[t as usize]) - lse))
        .collect()
}

/// A token drawn from `softmax(row / temperature)`, cut to the smallest set of most likely
/// tokens whose probability reaches `top_p` (nucleus sampling).
fn sample(row: &[f32], temperature: f64, top_p: f64, rng: &mut Rng) -> u32 {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let mut p: Vec<(u32, f64)> = row
        .iter()
        .enumerate()
        .map(|(i, &l)| (i as u32, ((f64::from(l) - max) / temperature).exp()))
        .collect();
    let total: f64 = p.iter().map(|x| x.1).sum();
    if top_p < 1.0 {
        p.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        let mut acc = 0.0;
        let keep = p
            .iter()
            .position(|x| {
                acc += x.1 / total;
                acc >= top_p
            })
            .map_or(p.len(), |i| i + 1);
        p.truncate(keep);
    }
    let weights: Vec<f64> = p.iter().map(|x| x.1).collect();
    p[rng.weighted(&weights)].0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_k_orders_by_probability_then_id_and_normalises() {
        let row = [0.0f32, 2.0, 1.0, 2.0];
        let lse = log_sum_exp(&row);
        let expect = (1.0 + 2.0 * 2.0f64.exp() + 1.0f64.exp()).ln();
        assert!((lse - expect).abs() < 1e-12);
        let t = top_k(&row, 3, lse);
        assert_eq!(t.iter().map(|x| x.0).collect::<Vec<_>>(), vec![1, 3, 2]);
        assert!((t[2].1 - (1.0 - expect)).abs() < 1e-12);
        let sum: f64 = top_k(&row, 10, lse).iter().map(|x| x.1.exp()).sum();
        assert!((sum - 1.0).abs() < 1e-12);
    }

    #[test]
    fn nucleus_sampling_keeps_the_smallest_set_reaching_top_p() {
        // probabilities 0.5, 0.3, 0.2: top_p 0.6 keeps tokens 0 and 1 only.
        let row = [0.5f32.ln(), 0.3f32.ln(), 0.2f32.ln()];
        let mut rng = Rng::new(3);
        let mut seen = [0usize; 3];
        for _ in 0..2000 {
            seen[sample(&row, 1.0, 0.6, &mut rng) as usize] += 1;
        }
        assert_eq!(seen[2], 0);
        let share = seen[0] as f64 / 2000.0;
        assert!((share - 0.625).abs() < 0.04, "{seen:?}");
        let mut all = [0usize; 3];
        for _ in 0..4000 {
            all[sample(&row, 1.0, 1.0, &mut rng) as usize] += 1;
        }
        assert!((all[2] as f64 / 4000.0 - 0.2).abs() < 0.03, "{all:?}");
        assert_eq!(argmax(&row), 0);
    }
}
