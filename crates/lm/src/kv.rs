//! Incremental decoding with a key/value cache, for generation (`fairrec serve`): the
//! prompt runs once ([`Llama::prefill`]), then each new token runs alone against the
//! cached keys and values of the positions before it ([`Llama::decode_step`]), several
//! sequences of different lengths together (their projections and MLPs batched, their
//! attention row by row). A token's logits equal a full forward pass over the sequence
//! (the composed ops; tested), at one position's cost instead of the sequence's.
//! Inference only: nothing here is meant to be differentiated.

use crate::error::{LmError, Result};
use crate::llama::{Attention, DecoderLayer, Llama, Rotary};
use candle_core::{DType, Tensor, D};
use candle_nn::kv_cache::KvCache as LayerCache;

/// One sequence's keys and values per block (`[1, kv heads, len, d]` each).
#[derive(Debug)]
pub struct KvCache {
    layers: Vec<LayerCache>,
}

impl KvCache {
    /// Positions cached (the soft prompt's virtual tokens included).
    pub fn len(&self) -> usize {
        self.layers.first().map_or(0, LayerCache::current_seq_len)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Llama {
    /// Run one sequence `ids` from position 0 (after the attached soft prompt, if any):
    /// its cache, with room for `extra` more positions, and the logits (f32) at its last
    /// position, `[vocab]`.
    pub fn prefill(&self, ids: &[u32], extra: usize) -> Result<(KvCache, Tensor)> {
        if ids.is_empty() {
            return Err(LmError::Invalid("prefill of an empty sequence".into()));
        }
        let x = Tensor::new(ids, self.device())?.unsqueeze(0)?;
        let (mut x, _) = self.embeds(&x, None)?;
        let t = x.dim(1)?;
        self.check_len(t)?;
        let mask = self.causal_mask(t)?;
        let room = (t + extra).min(self.rotary.max_len()).max(t);
        let mut layers = Vec::with_capacity(self.layers.len());
        for layer in &self.layers {
            let (h, k, v) = layer.forward_kv(&x, &self.rotary, &mask)?;
            let mut c = LayerCache::new(2, room);
            c.append(&k.contiguous()?, &v.contiguous()?)?;
            layers.push(c);
            x = h;
        }
        let last = self.norm.forward(&x.narrow(1, t - 1, 1)?)?.squeeze(1)?;
        Ok((KvCache { layers }, self.head_logits(&last)?.squeeze(0)?))
    }

    /// One new token per sequence: `tokens[b]` at position `caches[b].len()`, appended to
    /// `caches[b]` -> the logits (f32) there, `[B, vocab]`.
    pub fn decode_step(&self, tokens: &[u32], caches: &mut [&mut KvCache]) -> Result<Tensor> {
        if tokens.len() != caches.len() || tokens.is_empty() {
            return Err(LmError::Invalid(format!(
                "decode step: {} tokens for {} caches",
                tokens.len(),
                caches.len()
            )));
        }
        let positions: Vec<usize> = caches.iter().map(|c| c.len()).collect();
        self.check_len(positions.iter().max().copied().unwrap_or(0) + 1)?;
        let ids = Tensor::new(tokens, self.device())?.unsqueeze(1)?;
        let mut x = self.embed(&ids)?;
        for (l, layer) in self.layers.iter().enumerate() {
            let mut kv: Vec<&mut LayerCache> =
                caches.iter_mut().map(|c| &mut c.layers[l]).collect();
            x = layer.decode(&x, &self.rotary, &positions, &mut kv)?;
        }
        self.head_logits(&self.norm.forward(&x)?.squeeze(1)?)
    }
}

impl DecoderLayer {
    /// The block at one new position per row (`x` `[B, 1, H]`) -> `[B, 1, H]`.
    fn decode(
        &self,
        x: &Tensor,
        rotary: &Rotary,
        positions: &[usize],
        kv: &mut [&mut LayerCache],
    ) -> Result<Tensor> {
        let n = self.input_layernorm.forward(x)?;
        let h = (x + self.self_attn.decode(&n, rotary, positions, kv)?)?;
        Ok((&h
            + self
                .mlp
                .forward(&self.post_attention_layernorm.forward(&h)?)?)?)
    }
}

impl Attention {
    /// Attention of one new position per row (`n` `[B, 1, H]`, normed) to the cached
    /// positions and itself; its key and value are appended to the row's cache.
    fn decode(
        &self,
        n: &Tensor,
        rotary: &Rotary,
        positions: &[usize],
        kv: &mut [&mut LayerCache],
    ) -> Result<Tensor> {
        let b = n.dim(0)?;
        let (nh, nkv, hd) = (self.n_heads, self.n_kv, self.head_dim);
        let q = rotary.apply_at(&self.q_proj.forward(n)?.reshape((b, nh, hd))?, positions)?;
        let k = rotary.apply_at(&self.k_proj.forward(n)?.reshape((b, nkv, hd))?, positions)?;
        let v = self.v_proj.forward(n)?.reshape((b, nkv, hd))?;
        let scale = 1.0 / (hd as f64).sqrt();
        let mut ys = Vec::with_capacity(b);
        for (r, cache) in kv.iter_mut().enumerate() {
            let row = |t: &Tensor| -> Result<Tensor> { Ok(t.get(r)?.reshape((1, nkv, 1, hd))?) };
            let (k, v) = cache.append(&row(&k)?, &row(&v)?)?;
            let (k, v) = (k.contiguous()?, v.contiguous()?);
            // The query heads of one key/value head side by side: [1, kv heads, group, d].
            let q = q.get(r)?.reshape((1, nkv, nh / nkv, hd))?;
            let att = (q.matmul(&k.t()?)? * scale)?.to_dtype(DType::F32)?;
            let att = self.add_alibi(att, true)?;
            let att = candle_nn::ops::softmax(&att, D::Minus1)?.to_dtype(v.dtype())?;
            ys.push(att.matmul(&v)?.reshape((1, 1, nh * hd))?);
        }
        self.o_proj.forward(&Tensor::cat(&ys, 0)?)
    }
}

#[cfg(test)]
mod tests {
    use crate::builtin::config;
    use crate::random::random_model;
    use candle_core::{Device, Tensor};

    #[test]
    fn cached_decoding_gives_the_full_forward_passes_logits() {
        // Grouped-query heads (4 query, 2 key/value), as SmolLM2 has.
        let model = random_model(&config(16, 32, 2), 3, 0.2, &Device::Cpu).unwrap();
        let seqs: [&[u32]; 2] = [&[5, 9, 2, 7], &[3, 1]];
        // The next token of each sequence, step by step.
        let next: [[u32; 2]; 3] = [[4, 2], [8, 2], [6, 11]];
        let full = |ids: &[u32]| {
            let x = Tensor::new(ids, &Device::Cpu)
                .unwrap()
                .unsqueeze(0)
                .unwrap();
            let f = model.forward(&x, None).unwrap();
            model
                .logits_at(&f.last, &[ids.len() - 1])
                .unwrap()
                .squeeze(0)
                .unwrap()
                .to_vec1::<f32>()
                .unwrap()
        };
        let close = |a: &[f32], b: &[f32]| {
            let d = a
                .iter()
                .zip(b)
                .map(|(x, y)| (x - y).abs())
                .fold(0f32, f32::max);
            assert!(d < 1e-4, "max |Δlogit| {d}");
        };
        let (mut c0, l0) = model.prefill(seqs[0], 3).unwrap();
        let (mut c1, l1) = model.prefill(seqs[1], 3).unwrap();
        close(&l0.to_vec1::<f32>().unwrap(), &full(seqs[0]));
        close(&l1.to_vec1::<f32>().unwrap(), &full(seqs[1]));
        let mut ids = [seqs[0].to_vec(), seqs[1].to_vec()];
        for tokens in next {
            let logits = model
                .decode_step(&tokens, &mut [&mut c0, &mut c1])
                .unwrap()
                .to_vec2::<f32>()
                .unwrap();
            for r in 0..2 {
                ids[r].push(tokens[r]);
                close(&logits[r], &full(&ids[r]));
            }
        }
        assert_eq!((c0.len(), c1.len()), (7, 5));
    }
}
