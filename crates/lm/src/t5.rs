//! T5 / T5 v1.1 / Flan-T5 encoder-decoder (paper B's backbone), one struct per checkpoint
//! submodule with the HF key paths (`shared`, `encoder.block.N.layer.0.SelfAttention.q`,
//! ..., `lm_head`), as transformers' `T5ForConditionalGeneration` computes it:
//!
//! - **Norm**: `T5LayerNorm` is RMSNorm without mean or bias, computed in f32
//!   ([`crate::layers::RmsNorm`]).
//! - **Attention**: no `1/sqrt(d)` scaling (T5 folds it into the initialisation); scores
//!   `q k^T + bias`, softmax in f32. The bias is a learned scalar per head and *relative
//!   position bucket* ([`relative_position_bucket`]), held by block 0 of each stack and
//!   reused by every block; the encoder's buckets are bidirectional, the decoder's causal.
//!   Cross-attention has no position bias, only the encoder's padding mask.
//! - **Feed-forward**: `wo(act(wi x))` (T5, `feed_forward_proj = "relu"`) or gated,
//!   `wo(act(wi_0 x) * wi_1 x)` (v1.1 / Flan, `"gated-gelu"` = tanh-approximated GELU).
//! - **Head**: `lm_head.weight` when the checkpoint has it (v1.1 / Flan), else the shared
//!   table (original T5). The decoder output is first scaled by `d_model^-1/2` when
//!   `scale_decoder_outputs` (what transformers 5.x saves) or, in configs without that key,
//!   `tie_word_embeddings` says so (original T5 yes, Flan-T5 no).
//!
//! Scoring reads the logits of the *first* decoder step (decoder input = the start token),
//! so a Yes/No answer is one decoder position. Soft prompts (prompt tuning, MoS's mixed
//! prompts) are prepended to the encoder's input embeddings, unmasked; a prompt table of
//! two blocks with [`crate::prompt::PromptShape::decoder`] also puts its second block in
//! front of the decoder input (PEFT before 0.4), and the answer is then read at the
//! decoder position after it.

use crate::error::{LmError, Result};
use crate::grad::weight;
use crate::host::{PeftDims, PromptHost};
use crate::layers::{Linear, RmsNorm};
use crate::prompt::SoftPrompt;
use candle_core::{DType, Device, Tensor, D};
use candle_nn::VarBuilder;
use std::sync::Arc;

/// The HF `config.json` of a T5 model (the keys fairrec reads).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct T5Config {
    pub vocab_size: usize,
    pub d_model: usize,
    /// Size of one attention head.
    pub d_kv: usize,
    pub d_ff: usize,
    /// Encoder blocks.
    pub num_layers: usize,
    /// Decoder blocks (`num_layers` when absent).
    #[serde(default)]
    pub num_decoder_layers: Option<usize>,
    pub num_heads: usize,
    #[serde(default = "default_buckets")]
    pub relative_attention_num_buckets: usize,
    #[serde(default = "default_max_distance")]
    pub relative_attention_max_distance: usize,
    #[serde(default = "default_eps")]
    pub layer_norm_epsilon: f64,
    /// `relu`, `gated-gelu`, `gated-silu`, `gelu`, `gelu_new`, `silu`, or `gated-<act>`.
    #[serde(default = "default_ff")]
    pub feed_forward_proj: String,
    /// Legacy flag: the head is the shared table and the output is scaled (read for the
    /// scaling only when `scale_decoder_outputs` is absent).
    #[serde(default = "default_tied")]
    pub tie_word_embeddings: bool,
    #[serde(default)]
    pub scale_decoder_outputs: Option<bool>,
    #[serde(default)]
    pub decoder_start_token_id: Option<u32>,
    #[serde(default)]
    pub pad_token_id: Option<u32>,
    #[serde(default)]
    pub eos_token_id: Option<u32>,
    #[serde(default)]
    pub model_type: Option<String>,
}

fn default_buckets() -> usize {
    32
}
fn default_max_distance() -> usize {
    128
}
fn default_eps() -> f64 {
    1e-6
}
fn default_ff() -> String {
    "relu".into()
}
fn default_tied() -> bool {
    true
}

/// The feed-forward activation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Act {
    Relu,
    /// Exact (erf) GELU, transformers' `gelu`.
    Gelu,
    /// Tanh-approximated GELU, transformers' `gelu_new` (what `gated-gelu` means).
    GeluTanh,
    Silu,
}

impl T5Config {
    /// Parse an HF `config.json` text.
    pub fn from_hf_json(text: &str) -> std::result::Result<Self, String> {
        let c: T5Config = serde_json::from_str(text).map_err(|e| e.to_string())?;
        c.ff()?;
        if c.num_heads == 0 || c.d_kv == 0 || c.d_model == 0 {
            return Err("d_model, d_kv and num_heads must be positive".into());
        }
        Ok(c)
    }

    /// Whether the feed-forward is gated, and its activation (transformers' reading of
    /// `feed_forward_proj`: `gated-gelu` is the tanh GELU, other names as written).
    pub fn ff(&self) -> std::result::Result<(bool, Act), String> {
        let parts: Vec<&str> = self.feed_forward_proj.split('-').collect();
        let (gated, name) = match parts.as_slice() {
            [a] => (false, *a),
            ["gated", a] => (true, *a),
            _ => return Err(format!("feed_forward_proj `{}`", self.feed_forward_proj)),
        };
        let act = match (gated, name) {
            (true, "gelu") | (_, "gelu_new") => Act::GeluTanh,
            (false, "gelu") => Act::Gelu,
            (_, "relu") => Act::Relu,
            (_, "silu") | (_, "swish") => Act::Silu,
            _ => {
                return Err(format!(
                    "feed_forward_proj `{}`: unknown activation",
                    self.feed_forward_proj
                ))
            }
        };
        Ok((gated, act))
    }

    pub fn decoder_layers(&self) -> usize {
        self.num_decoder_layers.unwrap_or(self.num_layers)
    }

    /// Whether the decoder output is scaled by `d_model^-1/2` before the head.
    pub fn scales_output(&self) -> bool {
        self.scale_decoder_outputs
            .unwrap_or(self.tie_word_embeddings)
    }

    /// The decoder's first input token (the pad token, 0, in every released T5).
    pub fn start_token(&self) -> u32 {
        self.decoder_start_token_id
            .or(self.pad_token_id)
            .unwrap_or(0)
    }
}

/// T5's relative position bucket of `relative = key position - query position`
/// (transformers' `_relative_position_bucket`): with `bidirectional`, half the buckets are
/// for keys after the query; within a direction, distances below `max_exact = buckets / 2`
/// get their own bucket and larger ones share logarithmically wider buckets up to
/// `max_distance`, the last bucket taking everything beyond. Without `bidirectional`, keys
/// after the query (which a causal decoder never sees) fall in bucket 0.
pub fn relative_position_bucket(
    relative: i64,
    bidirectional: bool,
    num_buckets: usize,
    max_distance: usize,
) -> usize {
    let mut buckets = num_buckets as i64;
    let mut out = 0i64;
    let n = if bidirectional {
        buckets /= 2;
        if relative > 0 {
            out += buckets;
        }
        relative.abs()
    } else {
        (-relative).max(0)
    };
    let max_exact = buckets / 2;
    if n < max_exact {
        return (out + n) as usize;
    }
    // Computed in f32, then truncated, as torch does.
    let large = max_exact
        + ((n as f32 / max_exact as f32).ln() / (max_distance as f32 / max_exact as f32).ln()
            * (buckets - max_exact) as f32) as i64;
    (out + large.min(buckets - 1)) as usize
}

/// `T5Attention` (`SelfAttention` or `EncDecAttention`).
#[derive(Debug, Clone)]
pub struct T5Attention {
    pub q: Linear,
    pub k: Linear,
    pub v: Linear,
    pub o: Linear,
    /// `relative_attention_bias.weight`, `[buckets, heads]` (block 0 of a stack only).
    pub relative_attention_bias: Option<Tensor>,
    /// The module's checkpoint path (`encoder.block.0.layer.0.SelfAttention`).
    pub path: String,
    n_heads: usize,
    d_kv: usize,
}

impl T5Attention {
    pub fn new(cfg: &T5Config, has_bias: bool, vb: VarBuilder) -> Result<Self> {
        let (d, inner) = (cfg.d_model, cfg.num_heads * cfg.d_kv);
        let relative_attention_bias = if has_bias {
            Some(vb.pp("relative_attention_bias").get(
                (cfg.relative_attention_num_buckets, cfg.num_heads),
                "weight",
            )?)
        } else {
            None
        };
        Ok(T5Attention {
            path: vb.prefix(),
            q: Linear::new(d, inner, false, vb.clone(), "q")?,
            k: Linear::new(d, inner, false, vb.clone(), "k")?,
            v: Linear::new(d, inner, false, vb.clone(), "v")?,
            o: Linear::new(inner, d, false, vb, "o")?,
            relative_attention_bias,
            n_heads: cfg.num_heads,
            d_kv: cfg.d_kv,
        })
    }

    /// The position bias `[1, heads, q_len, k_len]` from this layer's bucket table.
    fn position_bias(
        &self,
        cfg: &T5Config,
        q_len: usize,
        k_len: usize,
        causal: bool,
    ) -> Result<Tensor> {
        let table = self.relative_attention_bias.as_ref().ok_or_else(|| {
            LmError::Invalid("position bias asked of a block without the bucket table".into())
        })?;
        let idx: Vec<u32> = (0..q_len)
            .flat_map(|i| {
                (0..k_len).map(move |j| {
                    relative_position_bucket(
                        j as i64 - i as i64,
                        !causal,
                        cfg.relative_attention_num_buckets,
                        cfg.relative_attention_max_distance,
                    ) as u32
                })
            })
            .collect();
        let idx = Tensor::from_vec(idx, q_len * k_len, table.device())?;
        Ok(weight(table)
            .index_select(&idx, 0)?
            .reshape((q_len, k_len, self.n_heads))?
            .permute((2, 0, 1))?
            .unsqueeze(0)?
            .to_dtype(DType::F32)?)
    }

    fn heads(&self, x: Tensor) -> Result<Tensor> {
        let (b, t, _) = x.dims3()?;
        Ok(x.reshape((b, t, self.n_heads, self.d_kv))?
            .transpose(1, 2)?
            .contiguous()?)
    }

    /// Attention of `x` `[B, Tq, d]` over `kv` `[B, Tk, d]` (`x` itself for
    /// self-attention) with the additive `bias` `[B or 1, heads or 1, Tq, Tk]` (f32:
    /// position bias plus masks).
    pub fn forward(&self, x: &Tensor, kv: &Tensor, bias: &Tensor) -> Result<Tensor> {
        let (b, tq, _) = x.dims3()?;
        let q = self.heads(self.q.forward(x)?)?;
        let k = self.heads(self.k.forward(kv)?)?;
        let v = self.heads(self.v.forward(kv)?)?;
        let scores = q
            .matmul(&k.t()?)?
            .to_dtype(DType::F32)?
            .broadcast_add(bias)?;
        let p = candle_nn::ops::softmax(&scores, D::Minus1)?.to_dtype(v.dtype())?;
        let y = p
            .matmul(&v)?
            .transpose(1, 2)?
            .reshape((b, tq, self.n_heads * self.d_kv))?;
        self.o.forward(&y)
    }
}

/// `DenseReluDense`: `wo(act(wi x))`, or gated `wo(act(wi_0 x) * wi_1 x)`.
#[derive(Debug, Clone)]
pub struct T5Dense {
    /// `wi` (plain) or `wi_0` (gated).
    pub wi_0: Linear,
    /// `wi_1` (gated only).
    pub wi_1: Option<Linear>,
    pub wo: Linear,
    act: Act,
}

impl T5Dense {
    pub fn new(cfg: &T5Config, vb: VarBuilder) -> Result<Self> {
        let (gated, act) = cfg.ff().map_err(LmError::Invalid)?;
        let (d, f) = (cfg.d_model, cfg.d_ff);
        Ok(T5Dense {
            wi_0: Linear::new(d, f, false, vb.clone(), if gated { "wi_0" } else { "wi" })?,
            wi_1: if gated {
                Some(Linear::new(d, f, false, vb.clone(), "wi_1")?)
            } else {
                None
            },
            wo: Linear::new(f, d, false, vb, "wo")?,
            act,
        })
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let h = self.wi_0.forward(x)?;
        let h = match self.act {
            Act::Relu => h.relu()?,
            Act::Gelu => h.gelu_erf()?,
            Act::GeluTanh => h.gelu()?,
            Act::Silu => h.silu()?,
        };
        let h = match &self.wi_1 {
            Some(l) => (h * l.forward(x)?)?,
            None => h,
        };
        self.wo.forward(&h)
    }
}

/// One block: `layer.0` self-attention, `layer.1` cross-attention (decoder only), then the
/// feed-forward; each sub-layer is `x + f(layer_norm(x))`.
#[derive(Debug, Clone)]
pub struct T5Block {
    pub self_attn: T5Attention,
    pub self_norm: RmsNorm,
    pub cross: Option<(T5Attention, RmsNorm)>,
    pub ff: T5Dense,
    pub ff_norm: RmsNorm,
}

impl T5Block {
    pub fn new(cfg: &T5Config, index: usize, decoder: bool, vb: VarBuilder) -> Result<Self> {
        let l = vb.pp("layer");
        let norm = |i: usize| {
            RmsNorm::new(
                cfg.d_model,
                cfg.layer_norm_epsilon,
                l.pp(i).pp("layer_norm"),
            )
        };
        let ff_at = if decoder { 2 } else { 1 };
        Ok(T5Block {
            self_attn: T5Attention::new(cfg, index == 0, l.pp(0).pp("SelfAttention"))?,
            self_norm: norm(0)?,
            cross: if decoder {
                Some((
                    T5Attention::new(cfg, false, l.pp(1).pp("EncDecAttention"))?,
                    norm(1)?,
                ))
            } else {
                None
            },
            ff: T5Dense::new(cfg, l.pp(ff_at).pp("DenseReluDense"))?,
            ff_norm: norm(ff_at)?,
        })
    }

    fn forward(
        &self,
        x: &Tensor,
        bias: &Tensor,
        enc: Option<(&Tensor, &Tensor)>,
    ) -> Result<Tensor> {
        let h = self.self_norm.forward(x)?;
        let x = (x + self.self_attn.forward(&h, &h, bias)?)?;
        let x = match (&self.cross, enc) {
            (Some((attn, norm)), Some((e, e_bias))) => {
                (&x + attn.forward(&norm.forward(&x)?, e, e_bias)?)?
            }
            _ => x,
        };
        Ok((&x + self.ff.forward(&self.ff_norm.forward(&x)?)?)?)
    }
}

/// `encoder` or `decoder`: the blocks and `final_layer_norm`.
#[derive(Debug, Clone)]
pub struct T5Stack {
    pub block: Vec<T5Block>,
    pub final_layer_norm: RmsNorm,
    decoder: bool,
}

impl T5Stack {
    pub fn new(cfg: &T5Config, decoder: bool, vb: VarBuilder) -> Result<Self> {
        let n = if decoder {
            cfg.decoder_layers()
        } else {
            cfg.num_layers
        };
        let block = (0..n)
            .map(|i| T5Block::new(cfg, i, decoder, vb.pp("block").pp(i)))
            .collect::<Result<Vec<_>>>()?;
        Ok(T5Stack {
            block,
            final_layer_norm: RmsNorm::new(
                cfg.d_model,
                cfg.layer_norm_epsilon,
                vb.pp("final_layer_norm"),
            )?,
            decoder,
        })
    }

    /// Run the blocks on embeddings `x` `[B, T, d]`; `mask` `[B, T]` (1 = real token) masks
    /// the encoder's padding; `enc` is the encoder output and its `[B, Te]` mask (decoder).
    fn forward(
        &self,
        cfg: &T5Config,
        x: &Tensor,
        mask: Option<&Tensor>,
        enc: Option<(&Tensor, &Tensor)>,
    ) -> Result<Tensor> {
        Ok(self.forward_capturing(cfg, x, mask, enc, None)?.0)
    }

    /// As [`T5Stack::forward`], also returning block `capture`'s output (before the final
    /// norm) when asked for.
    fn forward_capturing(
        &self,
        cfg: &T5Config,
        x: &Tensor,
        mask: Option<&Tensor>,
        enc: Option<(&Tensor, &Tensor)>,
        capture: Option<usize>,
    ) -> Result<(Tensor, Option<Tensor>)> {
        if let Some(l) = capture.filter(|&l| l >= self.block.len()) {
            return Err(LmError::Invalid(format!(
                "block {l} asked for: this stack has {} (0-based)",
                self.block.len()
            )));
        }
        let t = x.dim(1)?;
        let first = self
            .block
            .first()
            .ok_or_else(|| LmError::Invalid("a T5 stack without blocks".into()))?;
        let mut bias = first.self_attn.position_bias(cfg, t, t, self.decoder)?;
        if self.decoder {
            bias = bias.broadcast_add(&causal(t, x.device())?)?;
        }
        if let Some(m) = mask {
            bias = bias.broadcast_add(&padding(m)?)?;
        }
        let enc = match enc {
            Some((e, m)) => Some((e, padding(m)?)),
            None => None,
        };
        let mut x = x.clone();
        let mut captured = None;
        for (i, b) in self.block.iter().enumerate() {
            x = b.forward(&x, &bias, enc.as_ref().map(|(e, m)| (*e, m)))?;
            if capture == Some(i) {
                captured = Some(x.clone());
            }
        }
        Ok((self.final_layer_norm.forward(&x)?, captured))
    }
}

/// Added to masked scores: large enough that softmax gives them exactly 0, finite so a sum
/// of two masks stays finite.
const MASKED: f32 = -1e9;

/// `[1, 1, T, T]` additive causal mask.
fn causal(t: usize, device: &Device) -> Result<Tensor> {
    let m: Vec<f32> = (0..t)
        .flat_map(|i| (0..t).map(move |j| if j > i { MASKED } else { 0.0 }))
        .collect();
    Ok(Tensor::from_vec(m, (1, 1, t, t), device)?)
}

/// `[B, T]` 0/1 mask -> `[B, 1, 1, T]` additive mask (0 where 1, [`MASKED`] where 0).
fn padding(mask: &Tensor) -> Result<Tensor> {
    let (b, t) = mask.dims2()?;
    let m = mask.to_dtype(DType::F32)?;
    Ok(((1.0 - m)? * MASKED as f64)?.reshape((b, 1, 1, t))?)
}

/// `T5ForConditionalGeneration`.
#[derive(Debug, Clone)]
pub struct T5 {
    pub cfg: T5Config,
    /// `shared.weight`, `[vocab, d_model]`: the encoder's and decoder's input embedding.
    pub shared: Tensor,
    pub encoder: T5Stack,
    pub decoder: T5Stack,
    /// `lm_head.weight`, or `None` when the checkpoint has none (the head is `shared`).
    pub lm_head: Option<Tensor>,
    /// Trainable virtual tokens prepended to every encoder input, if attached.
    pub soft_prompt: Option<Arc<SoftPrompt>>,
    device: Device,
}

impl T5 {
    pub fn new(cfg: &T5Config, vb: VarBuilder) -> Result<Self> {
        let shared = vb
            .pp("shared")
            .get((cfg.vocab_size, cfg.d_model), "weight")?;
        let lm_head = if vb.contains_tensor("lm_head.weight") {
            Some(
                vb.pp("lm_head")
                    .get((cfg.vocab_size, cfg.d_model), "weight")?,
            )
        } else {
            None
        };
        Ok(T5 {
            cfg: cfg.clone(),
            shared,
            encoder: T5Stack::new(cfg, false, vb.pp("encoder"))?,
            decoder: T5Stack::new(cfg, true, vb.pp("decoder"))?,
            lm_head,
            soft_prompt: None,
            device: vb.device().clone(),
        })
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Number of parameters of the checkpoint (every tensor, the head once if tied).
    pub fn parameters(&self) -> usize {
        let n = |t: &Tensor| t.elem_count();
        let attn = |a: &T5Attention| {
            [&a.q, &a.k, &a.v, &a.o]
                .iter()
                .map(|l| n(&l.weight))
                .sum::<usize>()
                + a.relative_attention_bias.as_ref().map_or(0, n)
        };
        let stack = |s: &T5Stack| {
            n(&s.final_layer_norm.weight)
                + s.block
                    .iter()
                    .map(|b| {
                        attn(&b.self_attn)
                            + n(&b.self_norm.weight)
                            + b.cross
                                .as_ref()
                                .map_or(0, |(a, norm)| attn(a) + n(&norm.weight))
                            + n(&b.ff.wi_0.weight)
                            + b.ff.wi_1.as_ref().map_or(0, |l| n(&l.weight))
                            + n(&b.ff.wo.weight)
                            + n(&b.ff_norm.weight)
                    })
                    .sum::<usize>()
        };
        n(&self.shared)
            + self.lm_head.as_ref().map_or(0, n)
            + stack(&self.encoder)
            + stack(&self.decoder)
    }

    fn embed(&self, ids: &Tensor) -> Result<Tensor> {
        let (b, t) = ids.dims2()?;
        Ok(weight(&self.shared)
            .index_select(&ids.flatten_all()?, 0)?
            .reshape((b, t, self.cfg.d_model))?)
    }

    /// Encoder output `[B, P + T, d]` for `ids` `[B, T]` with padding `mask` `[B, T]`
    /// (1 = token), with `prefix` `[B, P, d]` (or the attached soft prompt) in front; also
    /// returns the mask extended over the prefix.
    pub fn encode(
        &self,
        ids: &Tensor,
        mask: &Tensor,
        prefix: Option<&Tensor>,
    ) -> Result<(Tensor, Tensor)> {
        let (h, mask, _) = self.encode_capturing(ids, mask, prefix, None)?;
        Ok((h, mask))
    }

    /// As [`T5::encode`], also returning encoder block `capture`'s output (before the final
    /// norm, `[B, P + T, d]`) when asked for.
    pub fn encode_capturing(
        &self,
        ids: &Tensor,
        mask: &Tensor,
        prefix: Option<&Tensor>,
        capture: Option<usize>,
    ) -> Result<(Tensor, Tensor, Option<Tensor>)> {
        let x = self.embed(ids)?;
        let x = match (&self.soft_prompt, prefix) {
            (Some(_), Some(_)) => {
                return Err(LmError::Invalid(
                    "a per-row prefix cannot be combined with an attached soft prompt".into(),
                ))
            }
            (Some(p), None) => p.prepend(&x)?,
            (None, Some(p)) => crate::prompt::prepend_rows(p, &x)?,
            (None, None) => x,
        };
        let p = x.dim(1)? - ids.dim(1)?;
        let mask = mask.to_dtype(DType::F32)?;
        let mask = if p > 0 {
            Tensor::cat(
                &[
                    &Tensor::ones((ids.dim(0)?, p), DType::F32, &self.device)?,
                    &mask,
                ],
                1,
            )?
        } else {
            mask
        };
        let (h, captured) =
            self.encoder
                .forward_capturing(&self.cfg, &x, Some(&mask), None, capture)?;
        Ok((h, mask, captured))
    }

    /// Decoder output `[B, P + Td, d]` (after the final norm) for decoder inputs `dec`
    /// `[B, Td]`, behind the attached prompt's decoder block (`P` rows, none by default).
    pub fn decode(&self, dec: &Tensor, enc: &Tensor, enc_mask: &Tensor) -> Result<Tensor> {
        let x = self.embed(dec)?;
        let x = match self.soft_prompt.as_ref().map(|p| p.decoder_part()) {
            Some(Ok(Some(p))) => crate::prompt::prepend(&p, &x)?,
            Some(Err(e)) => return Err(e),
            _ => x,
        };
        self.decoder
            .forward(&self.cfg, &x, None, Some((enc, enc_mask)))
    }

    /// The decoder's output `[B, d]` at the answer position: the step after the start
    /// token (behind the decoder prompt, if any).
    pub fn decoded_answer_state(
        &self,
        b: usize,
        enc: &Tensor,
        enc_mask: &Tensor,
    ) -> Result<Tensor> {
        let start = Tensor::from_vec(vec![self.cfg.start_token(); b], (b, 1), &self.device)?;
        let h = self.decode(&start, enc, enc_mask)?;
        let t = h.dim(1)?;
        Ok(h.narrow(1, t - 1, 1)?.squeeze(1)?)
    }

    /// The vocabulary rows used as the head and the scale put on the decoder output first.
    fn head(&self) -> (Tensor, f64) {
        let w = weight(self.lm_head.as_ref().unwrap_or(&self.shared));
        let s = if self.cfg.scales_output() {
            (self.cfg.d_model as f64).powf(-0.5)
        } else {
            1.0
        };
        (w, s)
    }

    /// Logits `[B, Td, vocab]` (f32) of decoder outputs `h` `[B, Td, d]`.
    pub fn logits(&self, h: &Tensor) -> Result<Tensor> {
        let (w, s) = self.head();
        Ok((h * s)?.broadcast_matmul(&w.t()?)?.to_dtype(DType::F32)?)
    }

    /// Logits `[B, vocab]` (f32) at the first decoder step for right-padded encoder inputs
    /// (`ids`, `mask` `[B, T]`) with an optional per-row encoder prefix: what the answer
    /// loss of training reads (the first decoder token is the answer).
    pub fn first_step_vocab_logits(
        &self,
        ids: &Tensor,
        mask: &Tensor,
        prefix: Option<&Tensor>,
    ) -> Result<Tensor> {
        let h = self.first_step_state(ids, mask, prefix)?;
        Ok(self.logits(&h.unsqueeze(1)?)?.squeeze(1)?)
    }

    /// The decoder's output `[B, d]` (after its final norm) at the first decoder step: the
    /// state the answer is read from.
    pub fn first_step_state(
        &self,
        ids: &Tensor,
        mask: &Tensor,
        prefix: Option<&Tensor>,
    ) -> Result<Tensor> {
        let (enc, enc_mask) = self.encode(ids, mask, prefix)?;
        self.decoded_answer_state(ids.dim(0)?, &enc, &enc_mask)
    }

    /// Logits `[B, tokens.len()]` (f32) of the given tokens at the first decoder step, for
    /// right-padded encoder inputs (`ids`, `mask` `[B, T]`), with an optional per-row
    /// encoder prefix.
    pub fn first_step_logits(
        &self,
        ids: &Tensor,
        mask: &Tensor,
        prefix: Option<&Tensor>,
        tokens: &[u32],
    ) -> Result<Tensor> {
        let h = self.first_step_state(ids, mask, prefix)?;
        let (w, s) = self.head();
        let idx = Tensor::from_vec(tokens.to_vec(), tokens.len(), &self.device)?;
        crate::layers::f32_product(&(h * s)?, &w.index_select(&idx, 0)?)
    }
}

impl PromptHost for T5 {
    fn input_embedding(&self) -> &Tensor {
        &self.shared
    }

    fn soft_prompt_slot(&mut self) -> &mut Option<Arc<SoftPrompt>> {
        &mut self.soft_prompt
    }

    fn encoder_decoder(&self) -> bool {
        true
    }

    fn peft_dims(&self) -> PeftDims {
        PeftDims {
            token_dim: self.cfg.d_model,
            heads: self.cfg.num_heads,
            layers: self.cfg.num_layers,
            task_type: "SEQ_2_SEQ_LM",
        }
    }
}
