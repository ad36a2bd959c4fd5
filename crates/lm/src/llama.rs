//! Llama-family decoder (Llama, Qwen2, SmolLM/SmolLM2) in candle's style: one struct per
//! checkpoint submodule, `new(cfg, vb)` with `vb.pp(..)` paths equal to the HF checkpoint
//! keys. Every op is differentiable. On CPU (f32) the blocks run the fused kernels of
//! [`crate::ops`] (hand-written backward; frozen weights get no gradient); elsewhere, and
//! inside [`crate::ops::reference`], they use candle's composed ops: RMSNorm composed
//! (candle's fused `rms_norm` drops gradients), rotary embeddings through `rope_slow`,
//! attention through the composed `softmax`. Both paths compute the same function (tested).
//!
//! Batches are right-padded: real tokens sit at positions `0..len`, so with the causal
//! mask no real token ever attends to padding and a prompt's hidden states do not depend
//! on what else is in its batch.

use crate::config::LlamaConfig;
use crate::error::Result;
use crate::grad::weight;
use crate::host::{PeftDims, PromptHost};
use crate::layers::{gather_positions, Linear, RmsNorm};
use crate::ops;
use crate::prompt::SoftPrompt;
use candle_core::{DType, Device, Tensor, D};
use candle_nn::VarBuilder;
use std::sync::Arc;

/// Rotary tables `cos`, `sin` of shape `[max_len, head_dim / 2]` (half-split layout).
#[derive(Debug, Clone)]
pub struct Rotary {
    cos: Tensor,
    sin: Tensor,
    /// No rotation (ALiBi models: positions enter as attention biases).
    off: bool,
}

impl Rotary {
    pub fn new(cfg: &LlamaConfig, max_len: usize, device: &Device) -> Result<Self> {
        let hd = cfg.head_dim();
        let inv: Vec<f32> = (0..hd / 2)
            .map(|i| 1.0 / cfg.rope_theta.powf(2.0 * i as f64 / hd as f64) as f32)
            .collect();
        let inv = Tensor::from_vec(inv, (1, hd / 2), device)?;
        let t = Tensor::arange(0u32, max_len as u32, device)?
            .to_dtype(DType::F32)?
            .reshape((max_len, 1))?;
        let freqs = t.broadcast_mul(&inv)?;
        Ok(Rotary {
            cos: freqs.cos()?,
            sin: freqs.sin()?,
            off: cfg.alibi(),
        })
    }

    /// Longest sequence the tables cover.
    pub fn max_len(&self) -> usize {
        self.cos.dim(0).unwrap_or(0)
    }

    /// Rotate `x` of shape `[B, T, H, D]` for positions `0..T` (the fused kernel).
    fn apply_bthd(&self, x: &Tensor) -> Result<Tensor> {
        if self.off {
            return Ok(x.clone());
        }
        Ok(ops::rope(x, &self.cos, &self.sin)?)
    }

    /// Rotate `x` of shape `[B, H, D]` (one position per row) for positions
    /// `positions[b]`, composed as in `rope_slow` (half-split layout: the first half gets
    /// `x1 cos - x2 sin`, the second `x2 cos + x1 sin`).
    pub fn apply_at(&self, x: &Tensor, positions: &[usize]) -> Result<Tensor> {
        if self.off {
            return Ok(x.clone());
        }
        let (b, _, d) = x.dims3()?;
        let idx: Vec<u32> = positions.iter().map(|&p| p as u32).collect();
        let idx = Tensor::from_vec(idx, b, x.device())?;
        let table = |c: &Tensor| -> Result<Tensor> {
            let rows = c.index_select(&idx, 0)?.to_dtype(x.dtype())?;
            Ok(Tensor::cat(&[&rows, &rows], 1)?.reshape((b, 1, d))?)
        };
        let (cos, sin) = (table(&self.cos)?, table(&self.sin)?);
        let (x1, x2) = (x.narrow(2, 0, d / 2)?, x.narrow(2, d / 2, d / 2)?);
        let rotated = Tensor::cat(&[&x2.neg()?, &x1], 2)?;
        Ok((x.broadcast_mul(&cos)? + rotated.broadcast_mul(&sin)?)?)
    }

    /// Rotate `x` of shape `[B, H, T, D]` for positions `0..T`.
    pub fn apply(&self, x: &Tensor) -> Result<Tensor> {
        if self.off {
            return Ok(x.clone());
        }
        let t = x.dim(2)?;
        let table = |c: &Tensor| c.narrow(0, 0, t)?.to_dtype(x.dtype());
        Ok(candle_nn::rotary_emb::rope_slow(
            &x.contiguous()?,
            &table(&self.cos)?,
            &table(&self.sin)?,
        )?)
    }
}

/// Self-attention with grouped-query heads.
#[derive(Debug, Clone)]
pub struct Attention {
    pub q_proj: Linear,
    pub k_proj: Linear,
    pub v_proj: Linear,
    pub o_proj: Linear,
    pub(crate) n_heads: usize,
    pub(crate) n_kv: usize,
    pub(crate) head_dim: usize,
    /// ALiBi's slopes per head (Baichuan-13B), when positions enter as biases.
    pub(crate) alibi: Option<Vec<f32>>,
}

impl Attention {
    pub fn new(cfg: &LlamaConfig, vb: VarBuilder) -> Result<Self> {
        let (h, hd, nh, nkv) = (
            cfg.hidden_size,
            cfg.head_dim(),
            cfg.num_attention_heads,
            cfg.kv_heads(),
        );
        let alibi = cfg
            .alibi()
            .then(|| crate::alibi::slopes(nh).iter().map(|&s| s as f32).collect());
        let (q_proj, k_proj, v_proj) = if cfg.is_baichuan() && vb.contains_tensor("W_pack.weight") {
            // Baichuan: `proj = W_pack(x)` splits into q, k, v in that order (one head
            // count: nh * hd = h). A full fine-tune saves them apart, as Llama keys.
            let w = vb.pp("W_pack").get((3 * nh * hd, h), "weight")?;
            let part = |i: usize, name: &str| -> Result<Linear> {
                let wi = w.narrow(0, i * nh * hd, nh * hd)?.copy()?;
                Ok(Linear::from_weight(wi, &vb, name))
            };
            (part(0, "q_proj")?, part(1, "k_proj")?, part(2, "v_proj")?)
        } else {
            let bias = cfg.qkv_bias();
            (
                Linear::new(h, nh * hd, bias, vb.clone(), "q_proj")?,
                Linear::new(h, nkv * hd, bias, vb.clone(), "k_proj")?,
                Linear::new(h, nkv * hd, bias, vb.clone(), "v_proj")?,
            )
        };
        Ok(Attention {
            q_proj,
            k_proj,
            v_proj,
            o_proj: Linear::new(nh * hd, h, false, vb, "o_proj")?,
            n_heads: nh,
            n_kv: nkv,
            head_dim: hd,
            alibi,
        })
    }

    /// `att` (f32 scores whose last dimension is `keys` key positions, the heads in the two
    /// dimensions before the query's: `[.., heads, q, keys]` or `[.., kv heads, group,
    /// keys]`) with ALiBi's biases added, when the model has them.
    pub(crate) fn add_alibi(&self, att: Tensor, grouped: bool) -> Result<Tensor> {
        let Some(s) = &self.alibi else {
            return Ok(att);
        };
        let keys = att.dim(D::Minus1)?;
        let b = crate::alibi::bias(s, keys, att.device())?;
        let b = if grouped {
            b.reshape((self.n_kv, self.n_heads / self.n_kv, keys))?
        } else {
            b.reshape((self.n_heads, 1, keys))?
        };
        Ok(att.broadcast_add(&b)?)
    }

    fn heads(&self, x: Tensor, n: usize) -> Result<Tensor> {
        let (b, t, _) = x.dims3()?;
        Ok(x.reshape((b, t, n, self.head_dim))?
            .transpose(1, 2)?
            .contiguous()?)
    }

    /// The fused path: the attention kernel, rotating Q and K itself, on the projections'
    /// own layout.
    /// `residual` is added to the output in place.
    fn forward_fused(&self, x: &Tensor, rotary: &Rotary, residual: &Tensor) -> Result<Tensor> {
        let (q, k) = (self.q_proj.forward(x)?, self.k_proj.forward(x)?);
        let v = self.v_proj.forward(x)?;
        let tables = (!rotary.off).then_some((&rotary.cos, &rotary.sin));
        let y = ops::causal_attention(&q, &k, &v, self.n_heads, self.n_kv, tables)?;
        self.o_proj.forward_add(&y, Some(residual))
    }

    /// Attention output at one query position per row only: `n` `[B, T, H]` is the normed
    /// input (keys and values come from every position), `rows[b]` the query's position;
    /// it attends to keys `0..=rows[b]`. `residual` `[B, 1, H]` is added to the output
    /// projection -> `[B, 1, H]`. Keys and values run through the same kernels as
    /// [`Attention::forward`]; the single query row is composed.
    fn forward_rows(
        &self,
        n: &Tensor,
        rotary: &Rotary,
        rows: &[usize],
        residual: &Tensor,
    ) -> Result<Tensor> {
        let (b, t, _) = n.dims3()?;
        let (nh, nkv, hd) = (self.n_heads, self.n_kv, self.head_dim);
        let (k, v) = (self.k_proj.forward(n)?, self.v_proj.forward(n)?);
        // [B, kv heads, T, d]
        let (k, v) = if ops::fused(n) {
            let bthd = |y: &Tensor| y.reshape((b, t, nkv, hd));
            let k = rotary
                .apply_bthd(&bthd(&k)?)?
                .transpose(1, 2)?
                .contiguous()?;
            (k, bthd(&v)?.transpose(1, 2)?.contiguous()?)
        } else {
            (rotary.apply(&self.heads(k, nkv)?)?, self.heads(v, nkv)?)
        };
        let q = self
            .q_proj
            .forward(&gather_positions(n, rows)?.unsqueeze(1)?)?;
        let q = rotary.apply_at(&q.reshape((b, nh, hd))?, rows)?;
        // The query heads of one key/value head side by side: [B, kv heads, group, d].
        let q = q.reshape((b, nkv, nh / nkv, hd))?;
        let scale = 1.0 / (hd as f64).sqrt();
        let att = self.add_alibi((q.matmul(&k.t()?)? * scale)?.to_dtype(DType::F32)?, true)?;
        let mask: Vec<f32> = rows
            .iter()
            .flat_map(|&r| (0..t).map(move |j| if j > r { f32::NEG_INFINITY } else { 0.0 }))
            .collect();
        let mask = Tensor::from_vec(mask, (b, 1, 1, t), n.device())?;
        let att = candle_nn::ops::softmax(&att.broadcast_add(&mask)?, D::Minus1)?;
        let y = att
            .to_dtype(v.dtype())?
            .matmul(&v)?
            .reshape((b, 1, nh * hd))?;
        self.o_proj.forward_add(&y, Some(residual))
    }

    /// Causal self-attention with the composed ops; `mask` is the `[T, T]` additive causal
    /// mask.
    pub fn forward(&self, x: &Tensor, rotary: &Rotary, mask: &Tensor) -> Result<Tensor> {
        Ok(self.forward_kv(x, rotary, mask)?.0)
    }

    /// [`Attention::forward`], also returning the rotated keys and the values,
    /// `[B, kv heads, T, d]` each (a generation's key/value cache, [`crate::kv`]).
    pub(crate) fn forward_kv(
        &self,
        x: &Tensor,
        rotary: &Rotary,
        mask: &Tensor,
    ) -> Result<(Tensor, Tensor, Tensor)> {
        let (b, t, _) = x.dims3()?;
        let q = rotary.apply(&self.heads(self.q_proj.forward(x)?, self.n_heads)?)?;
        let k = rotary.apply(&self.heads(self.k_proj.forward(x)?, self.n_kv)?)?;
        let v = self.heads(self.v_proj.forward(x)?, self.n_kv)?;
        let rep = self.n_heads / self.n_kv;
        // Each key/value head repeated for its group of query heads.
        let (kx, vx) = if rep == 1 {
            (k.clone(), v.clone())
        } else {
            let expand = |x: &Tensor| -> Result<Tensor> {
                Ok(x.unsqueeze(2)?
                    .expand((b, self.n_kv, rep, t, self.head_dim))?
                    .reshape((b, self.n_heads, t, self.head_dim))?)
            };
            (expand(&k)?, expand(&v)?)
        };
        let scale = 1.0 / (self.head_dim as f64).sqrt();
        // Scores and softmax in f32 (a no-op for f32 models), as transformers does.
        let att = self.add_alibi((q.matmul(&kx.t()?)? * scale)?.to_dtype(DType::F32)?, false)?;
        let att = candle_nn::ops::softmax(&att.broadcast_add(mask)?, D::Minus1)?;
        let att = att.to_dtype(vx.dtype())?;
        let y = att
            .matmul(&vx)?
            .transpose(1, 2)?
            .reshape((b, t, self.n_heads * self.head_dim))?;
        Ok((self.o_proj.forward(&y)?, k, v))
    }
}

/// SwiGLU feed-forward: `down(silu(gate(x)) * up(x))`.
#[derive(Debug, Clone)]
pub struct Mlp {
    pub gate_proj: Linear,
    pub up_proj: Linear,
    pub down_proj: Linear,
}

impl Mlp {
    pub fn new(cfg: &LlamaConfig, vb: VarBuilder) -> Result<Self> {
        let (h, i) = (cfg.hidden_size, cfg.intermediate_size);
        Ok(Mlp {
            gate_proj: Linear::new(h, i, false, vb.clone(), "gate_proj")?,
            up_proj: Linear::new(h, i, false, vb.clone(), "up_proj")?,
            down_proj: Linear::new(i, h, false, vb, "down_proj")?,
        })
    }

    /// The fused path, `residual + down(silu(gate(x)) * up(x))`; with three plain frozen
    /// bf16 projections, one op that keeps `g` and `u` in bf16 ([`ops::frozen_mlp_bf16`]).
    fn forward_fused(&self, x: &Tensor, residual: &Tensor) -> Result<Tensor> {
        let projs = [&self.gate_proj, &self.up_proj, &self.down_proj];
        let plain = |l: &&Linear| l.adapter.is_none() && l.bias.is_none();
        let ws = projs.map(|l| weight(&l.weight));
        if projs.iter().all(plain) && ws.iter().all(|w| w.dtype() == DType::BF16 && !w.track_op()) {
            return Ok(ops::frozen_mlp_bf16(x, residual, &ws[0], &ws[1], &ws[2])?);
        }
        let (g, u) = (self.gate_proj.forward(x)?, self.up_proj.forward(x)?);
        let d = &self.down_proj;
        let w = weight(&d.weight);
        if d.adapter.is_none() && d.bias.is_none() && !w.track_op() {
            return Ok((residual + ops::swiglu_down(&g, &u, &w)?)?);
        }
        d.forward_add(&ops::swiglu(&g, &u)?, Some(residual))
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let g = self.gate_proj.forward(x)?.silu()?;
        self.down_proj.forward(&(g * self.up_proj.forward(x)?)?)
    }
}

/// One transformer block (`model.layers.N`).
#[derive(Debug, Clone)]
pub struct DecoderLayer {
    pub self_attn: Attention,
    pub mlp: Mlp,
    pub input_layernorm: RmsNorm,
    pub post_attention_layernorm: RmsNorm,
}

impl DecoderLayer {
    pub fn new(cfg: &LlamaConfig, vb: VarBuilder) -> Result<Self> {
        Ok(DecoderLayer {
            self_attn: Attention::new(cfg, vb.pp("self_attn"))?,
            mlp: Mlp::new(cfg, vb.pp("mlp"))?,
            input_layernorm: RmsNorm::new(
                cfg.hidden_size,
                cfg.rms_norm_eps,
                vb.pp("input_layernorm"),
            )?,
            post_attention_layernorm: RmsNorm::new(
                cfg.hidden_size,
                cfg.rms_norm_eps,
                vb.pp("post_attention_layernorm"),
            )?,
        })
    }

    pub fn forward(&self, x: &Tensor, rotary: &Rotary, mask: &Tensor) -> Result<Tensor> {
        // The fused attention kernel has no ALiBi biases: those models run composed.
        if ops::fused(x) && self.self_attn.alibi.is_none() {
            let a = &self.self_attn;
            let h = a.forward_fused(&self.input_layernorm.forward(x)?, rotary, x)?;
            let m = &self.mlp;
            return m.forward_fused(&self.post_attention_layernorm.forward(&h)?, &h);
        }
        Ok(self.forward_kv(x, rotary, mask)?.0)
    }

    /// The composed [`DecoderLayer::forward`], also returning the attention's keys and
    /// values ([`Attention::forward_kv`]).
    pub(crate) fn forward_kv(
        &self,
        x: &Tensor,
        rotary: &Rotary,
        mask: &Tensor,
    ) -> Result<(Tensor, Tensor, Tensor)> {
        let (a, k, v) =
            self.self_attn
                .forward_kv(&self.input_layernorm.forward(x)?, rotary, mask)?;
        let h = (x + a)?;
        let out = (&h
            + self
                .mlp
                .forward(&self.post_attention_layernorm.forward(&h)?)?)?;
        Ok((out, k, v))
    }
}

impl DecoderLayer {
    /// The block's output at one position per row, `rows[b]`, -> `[B, 1, H]`: keys and
    /// values from every position, everything else (query, output projection, MLP, norms
    /// after attention) at those positions only. Equals [`DecoderLayer::forward`] read at
    /// `rows` (tested).
    pub fn forward_rows(&self, x: &Tensor, rotary: &Rotary, rows: &[usize]) -> Result<Tensor> {
        let n = self.input_layernorm.forward(x)?;
        let x_rows = gather_positions(x, rows)?.unsqueeze(1)?;
        let h = self.self_attn.forward_rows(&n, rotary, rows, &x_rows)?;
        let m = &self.mlp;
        if ops::fused(&h) {
            return m.forward_fused(&self.post_attention_layernorm.forward(&h)?, &h);
        }
        Ok((&h + m.forward(&self.post_attention_layernorm.forward(&h)?)?)?)
    }
}

/// The whole decoder.
#[derive(Debug, Clone)]
pub struct Llama {
    pub cfg: LlamaConfig,
    /// `model.embed_tokens.weight`, `[vocab, hidden]`.
    pub embed_tokens: Tensor,
    pub layers: Vec<DecoderLayer>,
    pub norm: RmsNorm,
    /// `lm_head.weight`, or `None` when tied to the embedding.
    pub lm_head: Option<Tensor>,
    /// Trainable virtual tokens prepended to every input (prompt tuning), if attached.
    pub soft_prompt: Option<Arc<SoftPrompt>>,
    pub(crate) rotary: Rotary,
    device: Device,
}

/// What [`Llama::forward`] returns.
pub struct Forward {
    /// Final hidden states after the last norm, `[B, T, H]`, at the token positions (the
    /// virtual tokens of a soft prompt, if any, are cut off).
    pub last: Tensor,
    /// Output of block `capture_layer` (before the final norm), when asked for, at the
    /// token positions.
    pub captured: Option<Tensor>,
}

impl Llama {
    pub fn new(cfg: &LlamaConfig, vb: VarBuilder) -> Result<Self> {
        cfg.validate().map_err(crate::error::LmError::Invalid)?;
        let m = vb.pp("model");
        let embed_tokens = m
            .pp("embed_tokens")
            .get((cfg.vocab_size, cfg.hidden_size), "weight")?;
        let layers = (0..cfg.num_hidden_layers)
            .map(|i| DecoderLayer::new(cfg, m.pp("layers").pp(i)))
            .collect::<Result<Vec<_>>>()?;
        let norm = RmsNorm::new(cfg.hidden_size, cfg.rms_norm_eps, m.pp("norm"))?;
        let lm_head = if cfg.tie_word_embeddings {
            None
        } else {
            let w = vb
                .pp("lm_head")
                .get((cfg.vocab_size, cfg.hidden_size), "weight")?;
            Some(if cfg.norm_head() { unit_rows(&w)? } else { w })
        };
        let device = vb.device().clone();
        let rotary = Rotary::new(cfg, cfg.max_position_embeddings.clamp(1, 32_768), &device)?;
        Ok(Llama {
            cfg: cfg.clone(),
            embed_tokens,
            layers,
            norm,
            lm_head,
            soft_prompt: None,
            rotary,
            device,
        })
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The output projection (`lm_head`, or the tied embedding).
    pub fn head(&self) -> &Tensor {
        self.lm_head.as_ref().unwrap_or(&self.embed_tokens)
    }

    pub(crate) fn causal_mask(&self, t: usize) -> Result<Tensor> {
        let m: Vec<f32> = (0..t)
            .flat_map(|i| (0..t).map(move |j| if j > i { f32::NEG_INFINITY } else { 0.0 }))
            .collect();
        Ok(Tensor::from_vec(m, (t, t), &self.device)?)
    }

    /// Token embeddings of `ids` (`[B, T]`) -> `[B, T, H]`, in [`Llama::hidden_dtype`].
    pub fn embed(&self, ids: &Tensor) -> Result<Tensor> {
        let (b, t) = ids.dims2()?;
        Ok(weight(&self.embed_tokens)
            .index_select(&ids.flatten_all()?, 0)?
            .reshape((b, t, self.cfg.hidden_size))?
            .to_dtype(self.hidden_dtype())?)
    }

    /// The dtype of the hidden states: the weights' on a GPU; f32 on the CPU for f32 and
    /// bf16 weights, where a bf16 base keeps only its weights in bf16 and its products
    /// round their inputs to bf16 (`ops::bf16`; ours: the CPU's fused kernels, norms and
    /// attention compute in f32). f16 weights, and everything inside [`ops::reference`],
    /// compute in the weights' dtype with the composed ops, as on a GPU.
    pub fn hidden_dtype(&self) -> DType {
        match self.embed_tokens.dtype() {
            DType::BF16 if ops::fused_on(&self.device) => DType::F32,
            dtype => dtype,
        }
    }

    /// Embed `ids` (`[B, T]`, right-padded), prepend the soft prompt if one is attached,
    /// and run every block. `capture_layer` (0-based) also returns that block's output.
    pub fn forward(&self, ids: &Tensor, capture_layer: Option<usize>) -> Result<Forward> {
        self.forward_prefixed(ids, None, capture_layer)
    }

    /// As [`Llama::forward`], with `prefix` `[B, P, H]` (one soft prompt per row, e.g.
    /// MoS's mixed prompts) put in front of the token embeddings instead of an attached
    /// soft prompt (a model with an attached soft prompt refuses a second one).
    pub fn forward_prefixed(
        &self,
        ids: &Tensor,
        prefix: Option<&Tensor>,
        capture_layer: Option<usize>,
    ) -> Result<Forward> {
        let (x, p) = self.embeds(ids, prefix)?;
        self.forward_embeds(&x, p, capture_layer)
    }

    /// The input embeddings of [`Llama::forward_prefixed`] and the number of virtual tokens
    /// in front.
    pub(crate) fn embeds(&self, ids: &Tensor, prefix: Option<&Tensor>) -> Result<(Tensor, usize)> {
        let x = self.embed(ids)?;
        match (&self.soft_prompt, prefix) {
            (Some(_), Some(_)) => Err(crate::error::LmError::Invalid(
                "a per-row prefix cannot be combined with an attached soft prompt".into(),
            )),
            (Some(p), None) => Ok((p.prepend(&x)?, p.len())),
            (None, Some(p)) => Ok((crate::prompt::prepend_rows(p, &x)?, p.dim(1)?)),
            (None, None) => Ok((x, 0)),
        }
    }

    /// The final hidden states (after the last norm) at one token position per row,
    /// `positions[b]`, -> `[B, H]`: what [`Llama::forward_prefixed`] gives there, with the
    /// last block run at those positions only ([`DecoderLayer::forward_rows`]; its keys and
    /// values still cover every position). Scoring and the answer loss read nothing else,
    /// so this saves the last block's query, output and MLP products at the other
    /// positions (1/L of the linear FLOPs, less its key/value share).
    pub fn forward_at(
        &self,
        ids: &Tensor,
        prefix: Option<&Tensor>,
        positions: &[usize],
    ) -> Result<Tensor> {
        let (x, p) = self.embeds(ids, prefix)?;
        let t = x.dim(1)?;
        self.check_len(t)?;
        let rows: Vec<usize> = positions.iter().map(|&q| q + p).collect();
        let Some((last, init)) = self.layers.split_last() else {
            return gather_positions(&self.norm.forward(&x)?, &rows);
        };
        let mask = self.causal_mask(t)?;
        let mut x = x;
        for layer in init {
            x = layer.forward(&x, &self.rotary, &mask)?;
        }
        let h = last.forward_rows(&x, &self.rotary, &rows)?;
        Ok(self.norm.forward(&h)?.squeeze(1)?)
    }

    pub(crate) fn check_len(&self, t: usize) -> Result<()> {
        if t > self.rotary.max_len() {
            return Err(crate::error::LmError::Invalid(format!(
                "input of {t} positions exceeds the model's context of {}",
                self.rotary.max_len()
            )));
        }
        Ok(())
    }

    /// Run every block on input embeddings `[B, P + T, H]` whose first `prefix` positions
    /// are virtual tokens; the outputs are cut to the `T` token positions.
    pub fn forward_embeds(
        &self,
        x: &Tensor,
        prefix: usize,
        capture_layer: Option<usize>,
    ) -> Result<Forward> {
        let t = x.dim(1)?;
        self.check_len(t)?;
        let mask = self.causal_mask(t)?;
        let mut x = x.clone();
        let mut captured = None;
        for (i, layer) in self.layers.iter().enumerate() {
            x = layer.forward(&x, &self.rotary, &mask)?;
            if capture_layer == Some(i) {
                captured = Some(x.narrow(1, prefix, t - prefix)?);
            }
        }
        Ok(Forward {
            last: self.norm.forward(&x)?.narrow(1, prefix, t - prefix)?,
            captured,
        })
    }

    /// Logits (f32, whatever the model's dtype) over the whole vocabulary at one position per row: `hidden` `[B, T, H]`,
    /// `positions[b]` the position to read -> `[B, vocab]`.
    pub fn logits_at(&self, hidden: &Tensor, positions: &[usize]) -> Result<Tensor> {
        self.head_logits(&gather_positions(hidden, positions)?)
    }

    /// Logits (f32) over the whole vocabulary of hidden states `h` `[B, H]` -> `[B, vocab]`.
    pub fn head_logits(&self, h: &Tensor) -> Result<Tensor> {
        let w = weight(self.head());
        if ops::fused(h) && !w.track_op() {
            // The vocabulary-sized head: a generic matmul's backward would also form its
            // gradient (hidden x vocab), which nothing trains.
            return Ok(ops::frozen_linear(h, &w)?);
        }
        if ops::frozen_on_device(h) && !w.track_op() {
            return Ok(ops::frozen_linear(h, &w)?.to_dtype(DType::F32)?);
        }
        Ok(h.matmul(&w.t()?)?.to_dtype(DType::F32)?)
    }

    /// Greedy continuation of `ids` by up to `n` tokens, stopping after any of `stop`.
    pub fn greedy(&self, ids: &[u32], n: usize, stop: &[u32]) -> Result<Vec<u32>> {
        let mut ids = ids.to_vec();
        let start = ids.len();
        for _ in 0..n {
            let x = Tensor::new(ids.as_slice(), &self.device)?.unsqueeze(0)?;
            let f = self.forward(&x, None)?;
            let next = self
                .logits_at(&f.last, &[ids.len() - 1])?
                .argmax(1)?
                .to_vec1::<u32>()?[0];
            ids.push(next);
            if stop.contains(&next) {
                break;
            }
        }
        Ok(ids.split_off(start))
    }

    /// Logits of the given tokens only (the LM head restricted to their rows), at one
    /// position per row -> `[B, tokens.len()]`.
    pub fn token_logits_at(
        &self,
        hidden: &Tensor,
        positions: &[usize],
        tokens: &[u32],
    ) -> Result<Tensor> {
        self.token_logits(&gather_positions(hidden, positions)?, tokens)
    }

    /// Logits of the given tokens only for hidden states `h` `[B, H]` -> `[B, tokens.len()]`.
    pub fn token_logits(&self, h: &Tensor, tokens: &[u32]) -> Result<Tensor> {
        let idx = Tensor::from_vec(tokens.to_vec(), tokens.len(), &self.device)?;
        let rows = weight(self.head()).index_select(&idx, 0)?;
        crate::layers::f32_product(h, &rows)
    }
}

impl PromptHost for Llama {
    fn input_embedding(&self) -> &Tensor {
        &self.embed_tokens
    }

    fn soft_prompt_slot(&mut self) -> &mut Option<Arc<SoftPrompt>> {
        &mut self.soft_prompt
    }

    fn peft_dims(&self) -> PeftDims {
        PeftDims {
            token_dim: self.cfg.hidden_size,
            heads: self.cfg.num_attention_heads,
            layers: self.cfg.num_hidden_layers,
            task_type: "CAUSAL_LM",
        }
    }
}

/// Baichuan2's NormHead (`F.normalize(weight)`): every row over its L2 norm (at least
/// 1e-12), computed in f32. Baichuan's eval mode normalises the head once, in place; so
/// does loading here, and a full fine-tune trains (and saves) the normalised head as a
/// plain one (ours: Baichuan's training renormalises at every step).
fn unit_rows(w: &Tensor) -> Result<Tensor> {
    let f = w.to_dtype(DType::F32)?;
    let norm = f.sqr()?.sum_keepdim(1)?.sqrt()?.maximum(1e-12)?;
    Ok(f.broadcast_div(&norm)?.to_dtype(w.dtype())?)
}
