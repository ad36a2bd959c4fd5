//! Prompt tuning (Lester et al.): `N` trainable virtual-token embeddings prepended to the
//! token embeddings of every input, the base model frozen. Positions count from the first
//! virtual token, as in PEFT's `PeftModelForCausalLM` (the prompt occupies positions
//! `0..N`, the tokens `N..N+T`).

use crate::error::{LmError, Result};
use crate::model::Llama;
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

/// The trainable prefix, `[N, H]`.
#[derive(Debug)]
pub struct SoftPrompt {
    pub embeddings: Var,
}

impl SoftPrompt {
    /// `n` virtual tokens for `model`, initialised as asked (`seed` drives the random
    /// forms).
    pub fn new(model: &Llama, tok: &Tok, n: usize, init: &PromptInit, seed: u64) -> Result<Self> {
        Self::from_embedding(&model.embed_tokens, tok, n, init, seed)
    }

    /// As [`SoftPrompt::new`] for any model whose input embedding table (`[vocab, H]`) is
    /// `embedding` (e.g. T5's `shared`).
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
        })
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
        let p = crate::grad::weight(&self.embeddings)
            .unsqueeze(0)?
            .expand((b, self.len(), h))?;
        Ok(Tensor::cat(&[&p, x], 1)?)
    }
}
