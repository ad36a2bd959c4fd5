//! Prompt tuning (Lester et al.): `N` trainable virtual-token embeddings prepended to the
//! token embeddings of every input, the base model frozen; and p-tuning (Liu et al.), whose
//! prompt is those embeddings through a trainable MLP ([`PromptEncoder`]). Positions count from the first
//! virtual token, as in PEFT's `PeftModelForCausalLM` (the prompt occupies positions
//! `0..N`, the tokens `N..N+T`).
//!
//! On an encoder-decoder model PEFT's default table holds `2 N` rows
//! (`num_transformer_submodules` 2, [`PromptShape`]): since PEFT 0.4 the first `N` go in
//! front of the encoder input and the others are counted, saved and used nowhere (what
//! paper B's Table V counts: 0.0138 % of T5-base for 20 tokens); PEFT before 0.4 put them
//! in front of the decoder input, which [`PromptShape::decoder`] asks for.

use crate::error::{LmError, Result};
use crate::tokenizer::Tok;
use candle_core::{Tensor, Var};
use fairrec_core::Rng;

/// How the virtual tokens start (PEFT's `prompt_tuning_init`).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PromptInit {
    /// The embeddings of this text's tokens, repeated or cut to `N` (PEFT's `TEXT`).
    Text(String),
    /// `N` embedding rows drawn uniformly from the vocabulary (PEFT's `SAMPLE_VOCAB`).
    SampleVocab,
    /// `N(0, 1)` entries (PEFT's `RANDOM`, torch's `nn.Embedding` initialisation).
    Random,
}

impl PromptInit {
    /// PEFT's name for the initialisation.
    pub fn peft_name(&self) -> &'static str {
        match self {
            PromptInit::Text(_) => "TEXT",
            PromptInit::SampleVocab => "SAMPLE_VOCAB",
            PromptInit::Random => "RANDOM",
        }
    }
}

/// P-tuning's prompt encoder (Liu et al., PEFT's `PromptEncoder` with the MLP
/// reparameterisation): the virtual tokens' own embedding table `[N, H]` goes through
/// `mlp_head = Linear(H, E) -> ReLU -> Linear(E, E) -> ReLU -> Linear(E, H)` (PEFT's
/// `encoder_hidden_size` E, by default H), and the output is the prompt. Initialised as
/// torch does: embeddings `N(0, 1)`, each linear's weight and bias `U(-1/sqrt(in),
/// 1/sqrt(in))`.
#[derive(Debug)]
pub struct PromptEncoder {
    /// `(weight [out, in], bias [out])` of `mlp_head.0`, `.2`, `.4`.
    pub layers: Vec<(Var, Var)>,
}

impl PromptEncoder {
    /// A seeded encoder for `h`-wide prompts with hidden width `e`.
    pub fn new(h: usize, e: usize, rng: &mut Rng, device: &candle_core::Device) -> Result<Self> {
        let mut linear = |i: usize, o: usize| -> Result<(Var, Var)> {
            let k = 1.0 / (i as f64).sqrt();
            let mut u = |n: usize| -> Vec<f32> {
                (0..n)
                    .map(|_| ((rng.f64() * 2.0 - 1.0) * k) as f32)
                    .collect()
            };
            let w = Tensor::from_vec(u(o * i), (o, i), device)?;
            let b = Tensor::from_vec(u(o), o, device)?;
            Ok((Var::from_tensor(&w)?, Var::from_tensor(&b)?))
        };
        Ok(PromptEncoder {
            layers: vec![linear(h, e)?, linear(e, e)?, linear(e, h)?],
        })
    }

    /// `mlp_head(x)` for `x` `[N, H]`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut y = x.clone();
        for (i, (w, b)) in self.layers.iter().enumerate() {
            y = y
                .matmul(&crate::grad::weight(w).t()?)?
                .broadcast_add(&crate::grad::weight(b))?;
            if i + 1 < self.layers.len() {
                y = y.relu()?;
            }
        }
        Ok(y)
    }

    /// The variables under PEFT's names (`prompt_encoder.mlp_head.{0,2,4}.{weight,bias}`).
    pub fn named_vars(&self) -> Vec<(String, Var)> {
        self.layers
            .iter()
            .enumerate()
            .flat_map(|(i, (w, b))| {
                [
                    (
                        format!("prompt_encoder.mlp_head.{}.weight", 2 * i),
                        w.clone(),
                    ),
                    (format!("prompt_encoder.mlp_head.{}.bias", 2 * i), b.clone()),
                ]
            })
            .collect()
    }
}

/// How many `N`-row blocks a prompt table holds and where they go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PromptShape {
    /// PEFT's `num_transformer_submodules`: 1 (one block, in front of a decoder's input
    /// or T5's encoder input) or 2 (two blocks, an encoder-decoder model's default).
    pub submodules: usize,
    /// With 2 blocks, the second goes in front of the decoder input (PEFT before 0.4;
    /// PEFT since 0.4 uses it nowhere).
    pub decoder: bool,
}

impl PromptShape {
    /// One block: a decoder-only model's prompt, or T5's encoder-only prompt.
    pub const ONE: PromptShape = PromptShape {
        submodules: 1,
        decoder: false,
    };
}

/// The trainable prefix, `[S N, H]` for `S` = [`PromptShape::submodules`]: the
/// embeddings themselves (prompt tuning) or their image through a [`PromptEncoder`]
/// (p-tuning).
#[derive(Debug)]
pub struct SoftPrompt {
    pub embeddings: Var,
    pub encoder: Option<PromptEncoder>,
    pub shape: PromptShape,
}

impl SoftPrompt {
    /// `n` virtual tokens per block of `shape` for a model whose input embedding table
    /// (`[vocab, H]`) is `embedding` (a decoder's `embed_tokens`, T5's `shared`),
    /// initialised as asked over the whole table, as PEFT does (`seed` drives the random
    /// forms).
    pub fn from_embedding(
        embedding: &Tensor,
        tok: &Tok,
        n: usize,
        shape: PromptShape,
        init: &PromptInit,
        seed: u64,
    ) -> Result<Self> {
        check_shape(n, shape, "prompt tuning")?;
        let n = n * shape.submodules;
        let (vocab, h) = embedding.dims2()?;
        let device = embedding.device();
        let mut rng = Rng::derive(seed, "soft-prompt-init");
        let rows = |ids: Vec<u32>| -> Result<Tensor> {
            let idx = Tensor::from_vec(ids, n, device)?;
            Ok(embedding.index_select(&idx, 0)?)
        };
        let t = match init {
            PromptInit::Text(text) => {
                let ids = tok.encode(text)?;
                if ids.is_empty() {
                    return Err(LmError::Invalid(format!(
                        "prompt init text `{text}` encodes to no token"
                    )));
                }
                rows(ids.iter().copied().cycle().take(n).collect())?
            }
            PromptInit::SampleVocab => {
                rows((0..n).map(|_| rng.below(vocab as u64) as u32).collect())?
            }
            PromptInit::Random => {
                let v: Vec<f32> = (0..n * h).map(|_| rng.normal() as f32).collect();
                Tensor::from_vec(v, (n, h), device)?
            }
        };
        Ok(SoftPrompt {
            // f32 whatever the base's dtype (trainable variables are kept in f32).
            embeddings: Var::from_tensor(&t.detach().to_dtype(candle_core::DType::F32)?.copy()?)?,
            encoder: None,
            shape,
        })
    }

    /// P-tuning's prompt: `n` virtual-token embeddings `N(0, 1)` per block of `shape`, of
    /// the embedding table's width, and a [`PromptEncoder`] of hidden width `hidden` (0:
    /// the table's width) over all of them, as PEFT's `PromptEncoder` is.
    pub fn p_tuning(
        embedding: &Tensor,
        n: usize,
        shape: PromptShape,
        hidden: usize,
        seed: u64,
    ) -> Result<Self> {
        check_shape(n, shape, "p-tuning")?;
        let n = n * shape.submodules;
        let (_, h) = embedding.dims2()?;
        let device = embedding.device();
        let mut rng = Rng::derive(seed, "p-tuning-init");
        let v: Vec<f32> = (0..n * h).map(|_| rng.normal() as f32).collect();
        let encoder =
            PromptEncoder::new(h, if hidden == 0 { h } else { hidden }, &mut rng, device)?;
        Ok(SoftPrompt {
            embeddings: Var::from_tensor(&Tensor::from_vec(v, (n, h), device)?)?,
            encoder: Some(encoder),
            shape,
        })
    }

    /// The whole table's output `[S N, H]` (what PEFT saves).
    pub fn prompt(&self) -> Result<Tensor> {
        let e = crate::grad::weight(&self.embeddings);
        match &self.encoder {
            Some(enc) => enc.forward(&e),
            None => Ok(e),
        }
    }

    /// Every trainable variable under PEFT's names: `prompt_embeddings` (prompt tuning), or
    /// `prompt_encoder.embedding.weight` and the encoder's layers (p-tuning).
    pub fn named_vars(&self) -> Vec<(String, Var)> {
        match &self.encoder {
            None => vec![("prompt_embeddings".into(), self.embeddings.clone())],
            Some(enc) => std::iter::once((
                "prompt_encoder.embedding.weight".to_string(),
                self.embeddings.clone(),
            ))
            .chain(enc.named_vars())
            .collect(),
        }
    }

    /// Number of virtual tokens per block (PEFT's `num_virtual_tokens`).
    pub fn len(&self) -> usize {
        self.embeddings.dim(0).unwrap_or(0) / self.shape.submodules.max(1)
    }

    /// The block in front of the (encoder's or decoder-only model's) input, `[N, H]`.
    pub fn input_part(&self) -> Result<Tensor> {
        Ok(self.prompt()?.narrow(0, 0, self.len())?)
    }

    /// The block in front of an encoder-decoder model's decoder input, `[N, H]`, when
    /// the shape puts one there.
    pub fn decoder_part(&self) -> Result<Option<Tensor>> {
        if !(self.shape.decoder && self.shape.submodules == 2) {
            return Ok(None);
        }
        let n = self.len();
        Ok(Some(self.prompt()?.narrow(0, n, n)?))
    }

    /// Whether the prompt has no virtual token (never true for a constructed prompt).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `[B, T, H]` token embeddings -> `[B, N + T, H]` with the input block in front.
    pub fn prepend(&self, x: &Tensor) -> Result<Tensor> {
        prepend(&self.input_part()?, x)
    }
}

/// `[N, H]` rows in front of every row of `x` `[B, T, H]` (the f32 rows cast to the
/// model's dtype on the way in; their gradient comes back in f32).
pub fn prepend(p: &Tensor, x: &Tensor) -> Result<Tensor> {
    let (b, _, h) = x.dims3()?;
    let p = p.to_dtype(x.dtype())?; // before the expansion: N rows cast, not B x N
    prepend_rows(&p.unsqueeze(0)?.expand((b, p.dim(0)?, h))?, x)
}

/// One prefix per row, `[B, P, H]`, in front of `x` `[B, T, H]`, cast to `x`'s dtype (as
/// [`prepend`]).
pub fn prepend_rows(p: &Tensor, x: &Tensor) -> Result<Tensor> {
    Ok(Tensor::cat(&[&p.to_dtype(x.dtype())?, x], 1)?)
}

fn check_shape(n: usize, shape: PromptShape, what: &str) -> Result<()> {
    if n == 0 {
        return Err(LmError::Invalid(format!(
            "{what} needs at least one virtual token"
        )));
    }
    if !matches!(shape.submodules, 1 | 2) || (shape.decoder && shape.submodules != 2) {
        return Err(LmError::Invalid(format!(
            "{what}: num_transformer_submodules must be 1 or 2 (a prompt on the decoder needs 2), got {}{}",
            shape.submodules,
            if shape.decoder { " with the decoder prompt" } else { "" }
        )));
    }
    Ok(())
}
