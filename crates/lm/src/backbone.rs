//! One handle on either model family: [`Backbone`] is what scoring, training and the
//! adapter files need of a model, implemented by [`Llama`] (`llama.rs`) and
//! [`T5`] (their implementations are here, so that the model files need no
//! part of this one); [`Model`] owns either and implements it by delegation
//! (tokenizers' pattern: one trait, one wrapper enum).

use crate::adapter::AdapterConfig;
use crate::error::{LmError, Result};
use crate::host::PromptHost;
use crate::llama::Llama;
use crate::pool::{Capture, Stack};
use crate::t5::T5;
use crate::tokenizer::Tok;
use crate::tuning::AdapterSet;
use candle_core::{DType, Device, Tensor, Var};
use std::path::Path;

/// Right-padded token ids `[B, T]` and each row's last real position.
pub struct Batch {
    pub x: Tensor,
    pub last: Vec<usize>,
}

impl Batch {
    /// `[B, T]` 0/1 mask of the real positions (an encoder's attention mask).
    pub fn mask(&self) -> Result<Tensor> {
        let (b, t) = self.x.dims2()?;
        let m: Vec<u32> = self
            .last
            .iter()
            .flat_map(|&l| (0..t).map(move |j| u32::from(j <= l)))
            .collect();
        Ok(Tensor::from_vec(m, (b, t), self.x.device())?)
    }
}

/// What the engine needs of a model family.
pub trait Backbone: Send + Sync {
    /// Number of parameters of the base model.
    fn parameters(&self) -> usize;
    /// The device the model runs on.
    fn device(&self) -> &Device;
    /// The dtype of the frozen weights (the input embedding's).
    fn dtype(&self) -> DType;
    /// The longest prompt in tokens (`None`: no hard limit, T5's relative positions).
    fn max_positions(&self) -> Option<usize>;
    /// The final hidden state at the answer position `[B, H]` (a decoder's last prompt
    /// position after the final norm; T5's first decoder step after the decoder's final
    /// norm) and the full-vocabulary logits there `[B, V]` (f32), with one soft prompt per
    /// row in front if given (`[B, P, H]`). Differentiable.
    fn answer_state(&self, batch: &Batch, prefix: Option<&Tensor>) -> Result<(Tensor, Tensor)>;
    /// The logits of `tokens` at the answer position `[B, tokens]`.
    fn answer_logits(
        &self,
        batch: &Batch,
        prefix: Option<&Tensor>,
        tokens: &[u32],
    ) -> Result<Tensor>;
    /// The full-vocabulary logits at the answer position `[B, V]` (f32) and, when `capture`
    /// is given, the hidden states it names pooled to `[B, H]` (f32): paper A's `L_diff`
    /// state (Eq. 5-6). Differentiable.
    fn answer_capture(
        &self,
        batch: &Batch,
        capture: Option<Capture>,
    ) -> Result<(Tensor, Option<Tensor>)>;
    /// The decoder-only model, for what reads hidden states at decoder positions.
    fn decoder(&self) -> Option<&Llama> {
        None
    }
    /// The model as a host of soft prompts.
    fn host(&self) -> &dyn PromptHost;
    fn host_mut(&mut self) -> &mut dyn PromptHost;
    /// Attach fresh LoRA (or LoRA-MoE) adapters as `cfg` says, seeded with `seed`.
    fn attach_adapters(&mut self, cfg: &AdapterConfig, seed: u64) -> Result<AdapterSet>;
    /// Make every weight trainable (full fine-tuning), under its checkpoint key.
    fn make_trainable(&mut self) -> Result<Vec<(String, Var)>>;
    /// Write `tensors` (every weight, by checkpoint key) as a model directory with the
    /// model's config and `tok`.
    fn save_dir(&self, tensors: &[(String, Tensor)], tok: &Tok, dir: &Path) -> Result<()>;
}

/// Either family, owned.
pub enum Model {
    /// A Llama-family decoder (Llama, Qwen2, SmolLM).
    Decoder(Llama),
    /// A T5 / Flan-T5 encoder-decoder.
    T5(T5),
}

impl Model {
    fn inner(&self) -> &dyn Backbone {
        match self {
            Model::Decoder(m) => m,
            Model::T5(m) => m,
        }
    }

    fn inner_mut(&mut self) -> &mut dyn Backbone {
        match self {
            Model::Decoder(m) => m,
            Model::T5(m) => m,
        }
    }
}

impl Backbone for Model {
    fn parameters(&self) -> usize {
        self.inner().parameters()
    }

    fn device(&self) -> &Device {
        self.inner().device()
    }

    fn dtype(&self) -> DType {
        self.inner().dtype()
    }

    fn max_positions(&self) -> Option<usize> {
        self.inner().max_positions()
    }

    fn answer_state(&self, batch: &Batch, prefix: Option<&Tensor>) -> Result<(Tensor, Tensor)> {
        self.inner().answer_state(batch, prefix)
    }

    fn answer_logits(
        &self,
        batch: &Batch,
        prefix: Option<&Tensor>,
        tokens: &[u32],
    ) -> Result<Tensor> {
        self.inner().answer_logits(batch, prefix, tokens)
    }

    fn answer_capture(
        &self,
        batch: &Batch,
        c: Option<Capture>,
    ) -> Result<(Tensor, Option<Tensor>)> {
        self.inner().answer_capture(batch, c)
    }

    fn decoder(&self) -> Option<&Llama> {
        self.inner().decoder()
    }

    fn host(&self) -> &dyn PromptHost {
        self.inner().host()
    }

    fn host_mut(&mut self) -> &mut dyn PromptHost {
        self.inner_mut().host_mut()
    }

    fn attach_adapters(&mut self, cfg: &AdapterConfig, seed: u64) -> Result<AdapterSet> {
        self.inner_mut().attach_adapters(cfg, seed)
    }

    fn make_trainable(&mut self) -> Result<Vec<(String, Var)>> {
        self.inner_mut().make_trainable()
    }

    fn save_dir(&self, tensors: &[(String, Tensor)], tok: &Tok, dir: &Path) -> Result<()> {
        self.inner().save_dir(tensors, tok, dir)
    }
}

impl Backbone for Llama {
    fn parameters(&self) -> usize {
        self.cfg.parameters()
    }

    fn device(&self) -> &Device {
        Llama::device(self)
    }

    fn dtype(&self) -> DType {
        self.embed_tokens.dtype()
    }

    fn max_positions(&self) -> Option<usize> {
        Some(self.cfg.max_position_embeddings)
    }

    fn answer_state(&self, b: &Batch, prefix: Option<&Tensor>) -> Result<(Tensor, Tensor)> {
        let state = self.forward_at(&b.x, prefix, &b.last)?;
        let logits = self.head_logits(&state)?;
        Ok((state, logits))
    }

    fn answer_logits(&self, b: &Batch, prefix: Option<&Tensor>, tokens: &[u32]) -> Result<Tensor> {
        self.token_logits(&self.forward_at(&b.x, prefix, &b.last)?, tokens)
    }

    fn answer_capture(&self, b: &Batch, c: Option<Capture>) -> Result<(Tensor, Option<Tensor>)> {
        let f = self.forward_prefixed(&b.x, None, c.and_then(|c| c.layer))?;
        let state = c.map(|c| c.pool(&f, &b.last)).transpose()?;
        Ok((self.logits_at(&f.last, &b.last)?, state))
    }

    fn decoder(&self) -> Option<&Llama> {
        Some(self)
    }

    fn host(&self) -> &dyn PromptHost {
        self
    }

    fn host_mut(&mut self) -> &mut dyn PromptHost {
        self
    }

    fn attach_adapters(&mut self, cfg: &AdapterConfig, seed: u64) -> Result<AdapterSet> {
        Llama::attach_adapters(self, cfg, seed)
    }

    fn make_trainable(&mut self) -> Result<Vec<(String, Var)>> {
        Llama::make_trainable(self)
    }

    fn save_dir(&self, tensors: &[(String, Tensor)], tok: &Tok, dir: &Path) -> Result<()> {
        crate::save::save_hf_dir(&self.cfg, tensors, tok, dir)
    }
}

impl Backbone for T5 {
    fn parameters(&self) -> usize {
        T5::parameters(self)
    }

    fn device(&self) -> &Device {
        T5::device(self)
    }

    fn dtype(&self) -> DType {
        self.shared.dtype()
    }

    fn max_positions(&self) -> Option<usize> {
        None
    }

    fn answer_state(&self, b: &Batch, prefix: Option<&Tensor>) -> Result<(Tensor, Tensor)> {
        let h = self.first_step_state(&b.x, &b.mask()?, prefix)?;
        let logits = self.logits(&h.unsqueeze(1)?)?.squeeze(1)?;
        Ok((h, logits))
    }

    fn answer_logits(&self, b: &Batch, prefix: Option<&Tensor>, tokens: &[u32]) -> Result<Tensor> {
        self.first_step_logits(&b.x, &b.mask()?, prefix, tokens)
    }

    /// `L_diff`'s state on T5 (ours; [`Stack`]): the decoder's first-step state, or the
    /// encoder's output (block `layer`'s, or the final one after its norm) pooled over the
    /// prompt's real tokens.
    fn answer_capture(&self, b: &Batch, c: Option<Capture>) -> Result<(Tensor, Option<Tensor>)> {
        let encoder = c.filter(|c| c.stack == Stack::Encoder);
        if let Some(l) = c
            .filter(|c| c.stack == Stack::Decoder)
            .and_then(|c| c.layer)
        {
            return Err(LmError::Invalid(format!(
                "L_diff at block {l} of T5's decoder: the decoder runs one step; --diff-layer indexes the encoder's blocks with --diff-stack encoder"
            )));
        }
        let (enc, enc_mask, captured) =
            self.encode_capturing(&b.x, &b.mask()?, None, encoder.and_then(|c| c.layer))?;
        let h = self.decoded_answer_state(b.x.dim(0)?, &enc, &enc_mask)?;
        let logits = self.logits(&h.unsqueeze(1)?)?.squeeze(1)?;
        let state = match c {
            None => None,
            Some(c) if c.stack == Stack::Decoder => Some(h.to_dtype(DType::F32)?),
            Some(c) => {
                let states = captured.unwrap_or(enc);
                // An attached soft prompt's positions are in front: cut them off.
                let t = b.x.dim(1)?;
                let states = states.narrow(1, states.dim(1)? - t, t)?;
                Some(crate::pool::pool(&states, &b.last, c.pooling)?)
            }
        };
        Ok((logits, state))
    }

    fn host(&self) -> &dyn PromptHost {
        self
    }

    fn host_mut(&mut self) -> &mut dyn PromptHost {
        self
    }

    fn attach_adapters(&mut self, cfg: &AdapterConfig, seed: u64) -> Result<AdapterSet> {
        T5::attach_adapters(self, cfg, seed)
    }

    fn make_trainable(&mut self) -> Result<Vec<(String, Var)>> {
        T5::make_trainable(self)
    }

    fn save_dir(&self, tensors: &[(String, Tensor)], tok: &Tok, dir: &Path) -> Result<()> {
        crate::save::save_t5_dir(&self.cfg, tensors, tok, dir)
    }
}
