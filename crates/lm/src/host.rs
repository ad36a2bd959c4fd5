//! What prompt-based tunings (prompt tuning, p-tuning, MoS) need of a backbone, for the
//! decoders and T5 alike: the input embedding table (prompt initialisation, MoS's pooled
//! router input), the slot of the attached soft prompt (a decoder reads it in front of the
//! tokens, T5 in front of the encoder input and, where asked, of the decoder input) and the dimensions PEFT writes in
//! `adapter_config.json`.

use crate::error::{LmError, Result};
use crate::prompt::{PromptInit, PromptShape, SoftPrompt};
use crate::tokenizer::Tok;
use candle_core::{Device, Tensor};
use std::sync::Arc;

/// The model dimensions in a PEFT prompt config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeftDims {
    pub token_dim: usize,
    pub heads: usize,
    pub layers: usize,
    /// PEFT's `task_type`: `CAUSAL_LM` or `SEQ_2_SEQ_LM`.
    pub task_type: &'static str,
}

/// A backbone that takes soft prompts.
pub trait PromptHost {
    /// The input embedding table, `[vocab, H]`.
    fn input_embedding(&self) -> &Tensor;
    /// Where the attached soft prompt lives.
    fn soft_prompt_slot(&mut self) -> &mut Option<Arc<SoftPrompt>>;
    fn peft_dims(&self) -> PeftDims;

    /// Whether the model has a decoder behind an encoder (T5), so that a prompt table may
    /// hold two blocks ([`PromptShape`]).
    fn encoder_decoder(&self) -> bool {
        false
    }

    /// The prompt shape PEFT gives this model by default: 2 blocks on an encoder-decoder
    /// model (the second used nowhere, as PEFT since 0.4), else 1.
    fn default_prompt_shape(&self) -> PromptShape {
        PromptShape {
            submodules: if self.encoder_decoder() { 2 } else { 1 },
            decoder: false,
        }
    }

    /// `shape` if this model takes it, else an error saying why.
    fn check_prompt_shape(&self, shape: PromptShape) -> Result<PromptShape> {
        if shape.submodules > 1 && !self.encoder_decoder() {
            return Err(LmError::Invalid(format!(
                "num_transformer_submodules = {}: a decoder-only model takes a prompt on its one input (1)",
                shape.submodules
            )));
        }
        Ok(shape)
    }

    /// The embedding width `H`.
    fn hidden_size(&self) -> usize {
        self.input_embedding().dim(1).unwrap_or(0)
    }

    fn host_device(&self) -> &Device {
        self.input_embedding().device()
    }

    /// Attach a fresh soft prompt of `n` virtual tokens per block of `shape` (prompt
    /// tuning).
    fn attach_soft_prompt(
        &mut self,
        tok: &Tok,
        n: usize,
        shape: PromptShape,
        init: &PromptInit,
        seed: u64,
    ) -> Result<Arc<SoftPrompt>> {
        let shape = self.check_prompt_shape(shape)?;
        let p = Arc::new(SoftPrompt::from_embedding(
            self.input_embedding(),
            tok,
            n,
            shape,
            init,
            seed,
        )?);
        *self.soft_prompt_slot() = Some(p.clone());
        Ok(p)
    }

    /// Attach a fresh p-tuning prompt: `n` virtual tokens per block of `shape` through a
    /// prompt encoder of hidden width `hidden` (0: the model's width).
    fn attach_p_tuning(
        &mut self,
        n: usize,
        shape: PromptShape,
        hidden: usize,
        seed: u64,
    ) -> Result<Arc<SoftPrompt>> {
        let shape = self.check_prompt_shape(shape)?;
        let p = Arc::new(SoftPrompt::p_tuning(
            self.input_embedding(),
            n,
            shape,
            hidden,
            seed,
        )?);
        *self.soft_prompt_slot() = Some(p.clone());
        Ok(p)
    }
}
