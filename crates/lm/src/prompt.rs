//! Prompt tuning (Lester et al.): `N` trainable virtual-token embeddings prepended to the
//! token embeddings of every input, the base model frozen; and p-tuning (Liu et al.), whose
//! prompt is those embeddings through a trainable MLP ([`PromptEncoder`]). Positions count from the first
//! virtual token, as in PEFT's `PeftModelForCausalLM` (the prompt occupies positions
//! `0..N`, the tokens `N..N+T`).

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

/// The trainable prefix, `[N, H]`: the embeddings themselves (prompt tuning) or their
/// image through a [`PromptEncoder`] (p-tuning).
#[derive(Debug)]
pub struct SoftPrompt {
    pub embeddings: Var,
    pub encoder: Option<PromptEncoder>,
}

impl SoftPrompt {
    /// `n` virtual tokens for a model whose input embedding table (`[vocab, H]`) is
    /// `embedding` (a decoder's `embed_tokens`, T5's `shared`), initialised as asked
    /// (`seed` drives the random forms).
    pub fn from_embedding(
        embedding: &Tensor,
        tok: &Tok,
        n: usize,
        init: &PromptInit,
        seed: u64,
    ) -> Result<Self> {
        if n == 0 {
            return Err(LmError::Invalid(
                "prompt tuning needs at least one virtual token".into(),
            ));
        }
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
            embeddings: Var::from_tensor(&t.detach().copy()?)?,
            encoder: None,
        })
    }

    /// P-tuning's prompt: `n` virtual-token embeddings `N(0, 1)` of the embedding table's
    /// width and a [`PromptEncoder`] of hidden width `hidden` (0: the table's width).
    pub fn p_tuning(embedding: &Tensor, n: usize, hidden: usize, seed: u64) -> Result<Self> {
        if n == 0 {
            return Err(LmError::Invalid(
                "p-tuning needs at least one virtual token".into(),
            ));
        }
        let (_, h) = embedding.dims2()?;
        let device = embedding.device();
        let mut rng = Rng::derive(seed, "p-tuning-init");
        let v: Vec<f32> = (0..n * h).map(|_| rng.normal() as f32).collect();
        let encoder =
            PromptEncoder::new(h, if hidden == 0 { h } else { hidden }, &mut rng, device)?;
        Ok(SoftPrompt {
            embeddings: Var::from_tensor(&Tensor::from_vec(v, (n, h), device)?)?,
            encoder: Some(encoder),
        })
    }

    /// The prompt `[N, H]` fed to the model.
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

    /// Number of virtual tokens.
    pub fn len(&self) -> usize {
        self.embeddings.dim(0).unwrap_or(0)
    }

    /// Whether the prompt has no virtual token (never true for a constructed prompt).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `[B, T, H]` token embeddings -> `[B, N + T, H]` with the prompt in front.
    pub fn prepend(&self, x: &Tensor) -> Result<Tensor> {
        let (b, _, h) = x.dims3()?;
        let p = self.prompt()?.unsqueeze(0)?.expand((b, self.len(), h))?;
        Ok(Tensor::cat(&[&p, x], 1)?)
    }
}
