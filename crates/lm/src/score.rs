//! Yes/No scoring: P(Yes) = softmax over the logits of the answer tokens "Yes" and "No" at
//! the answer position (the position right after the prompt).
//!
//! **Answer tokens**: the first token of "Yes" and of "No". After a chat template the
//! assistant turn starts on a new line, so the answer has no leading space; after a raw
//! prompt ending in `Output:` it does (" Yes"). [`AnswerSpace::Auto`] picks accordingly;
//! `Leading` / `None` force one form.
//!
//! Batches are right-padded and the LM head is computed only for the two answer rows at
//! each prompt's last position. A prompt's score does not depend on the rest of its batch.
//! With a T5 backbone the prompt is the encoder input (padding masked) and the answer is read
//! at the first decoder step ([`crate::t5`]).

use crate::backbone::{Backbone, Batch};
use crate::error::{LmError, Result};
use crate::llama::Llama;
use crate::tokenizer::Tok;
use candle_core::Tensor;

/// How a prompt text becomes model input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PromptFormat {
    /// The model's chat template with the prompt as the user message and the generation
    /// prompt appended (raw, when the model has no template).
    Chat,
    /// `Input: {prompt}\nOutput:` (paper A's templates).
    Raw,
}

impl PromptFormat {
    /// The chat template when `chat`, else the raw `Input: ...\nOutput:` form.
    pub fn of(chat: bool) -> Self {
        if chat {
            PromptFormat::Chat
        } else {
            PromptFormat::Raw
        }
    }
}

pub use crate::chat::AnswerSpace;
use crate::chat::{render_prompt, ChatTemplate};

/// Renders prompts and scores them.
pub struct Scorer<'a> {
    /// The network: a decoder reads the answer at the prompt's last position; T5 at its
    /// first decoder step (see [`crate::t5`]).
    pub backbone: &'a dyn Backbone,
    pub tok: &'a Tok,
    pub format: PromptFormat,
    /// Token ids of the answers "Yes" and "No" as used.
    pub yes: u32,
    pub no: u32,
    template: Option<ChatTemplate>,
}

fn first_token(tok: &Tok, text: &str) -> Result<u32> {
    tok.encode(text)?
        .first()
        .copied()
        .ok_or_else(|| LmError::Tokenizer(format!("`{text}` encodes to no token")))
}

impl<'a> Scorer<'a> {
    pub fn new(
        model: &'a dyn Backbone,
        tok: &'a Tok,
        format: PromptFormat,
        space: AnswerSpace,
    ) -> Result<Self> {
        let template = match (format, &tok.chat_template) {
            (PromptFormat::Chat, Some(t)) => Some(ChatTemplate::new(t)?),
            _ => None,
        };
        let (y, n) = space.answers(template.is_some());
        let (yes, no) = (first_token(tok, y)?, first_token(tok, n)?);
        if yes == no {
            return Err(LmError::Tokenizer(
                "\"Yes\" and \"No\" start with the same token".into(),
            ));
        }
        Ok(Scorer {
            backbone: model,
            tok,
            format,
            yes,
            no,
            template,
        })
    }

    /// The decoder-only model, or an error naming `what` needs one (methods that read
    /// hidden states at decoder positions: paper A's L_diff, UP5's discriminator).
    pub fn model(&self, what: &str) -> Result<&'a Llama> {
        self.backbone.decoder().ok_or_else(|| LmError::Invalid(format!(
            "{what} needs a decoder-only model (Llama, Qwen2, SmolLM); T5 models score and train prompts (prompt tuning, p-tuning, MoS) and LoRA only"
        )))
    }

    /// The device the backbone runs on.
    pub fn device(&self) -> &candle_core::Device {
        self.backbone.device()
    }

    /// Whether prompts go through the model's chat template (else the raw
    /// `Input: ...\nOutput:` form).
    pub fn has_template(&self) -> bool {
        self.template.is_some()
    }

    /// The exact text fed to the model for a prompt.
    pub fn render(&self, prompt: &str) -> Result<String> {
        render_prompt(self.template.as_ref(), prompt)
    }

    /// Token ids of each prompt as fed to the model; an empty or over-long prompt is a
    /// [`LmError::Prompt`] with its index.
    pub fn encode(&self, prompts: &[String]) -> Result<Vec<Vec<u32>>> {
        prompts
            .iter()
            .enumerate()
            .map(|(index, p)| {
                let ids = self.tok.encode(&self.render(p)?)?;
                let bad = |message: String| Err(LmError::Prompt { index, message });
                if ids.is_empty() {
                    return bad("empty prompt".into());
                }
                // T5's relative positions have no hard limit.
                if let Some(max) = self.backbone.max_positions() {
                    if ids.len() > max {
                        return bad(format!(
                            "prompt of {} tokens exceeds the model's context of {max}",
                            ids.len()
                        ));
                    }
                }
                Ok(ids)
            })
            .collect()
    }

    /// Right-padded `[B, T]` ids and each row's last real position.
    pub fn batch(&self, ids: &[Vec<u32>]) -> Result<(Tensor, Vec<usize>)> {
        let t = ids.iter().map(Vec::len).max().unwrap_or(1);
        let pad = self.tok.eos.unwrap_or(0);
        let flat: Vec<u32> = ids
            .iter()
            .flat_map(|r| {
                r.iter()
                    .copied()
                    .chain(std::iter::repeat_n(pad, t - r.len()))
            })
            .collect();
        let tensor = Tensor::from_vec(flat, (ids.len(), t), self.device())?;
        Ok((tensor, ids.iter().map(|r| r.len() - 1).collect()))
    }

    /// Full-vocabulary logits `[B, V]` (f32) at the answer position of already-encoded
    /// prompts, with one soft prompt per row in front if given (`[B, P, H]`), whichever the
    /// backbone: a decoder's last prompt position, T5's first decoder step. Differentiable
    /// (the answer loss of training).
    pub fn vocab_logits(&self, ids: &[Vec<u32>], prefix: Option<&Tensor>) -> Result<Tensor> {
        Ok(self.answer_state(ids, prefix)?.1)
    }

    /// The final hidden state at the answer position `[B, H]` (a decoder's last prompt
    /// position after the final norm; T5's first decoder step after the decoder's final
    /// norm) and the full-vocabulary logits there `[B, V]` (f32). Differentiable.
    pub fn answer_state(
        &self,
        ids: &[Vec<u32>],
        prefix: Option<&Tensor>,
    ) -> Result<(Tensor, Tensor)> {
        let (x, last) = self.batch(ids)?;
        self.backbone.answer_state(&Batch { x, last }, prefix)
    }

    /// Logits `[B, 2]` of (Yes, No) for already-encoded prompts, with one soft prompt per
    /// row in front if given (`[B, P, H]`), whichever the backbone.
    pub fn yes_no_logits(&self, ids: &[Vec<u32>], prefix: Option<&Tensor>) -> Result<Tensor> {
        let (x, last) = self.batch(ids)?;
        self.backbone
            .answer_logits(&Batch { x, last }, prefix, &[self.yes, self.no])
    }

    /// Logits `[B, 2]` of (Yes, No) for already-encoded prompts, and the forward pass.
    pub fn answer_logits(
        &self,
        ids: &[Vec<u32>],
        capture_layer: Option<usize>,
    ) -> Result<(Tensor, crate::llama::Forward)> {
        self.answer_logits_prefixed(ids, None, capture_layer)
    }

    /// As [`Scorer::answer_logits`] with one soft prompt per row in front (`prefix`
    /// `[B, P, H]`; see [`crate::llama::Llama::forward_prefixed`]).
    pub fn answer_logits_prefixed(
        &self,
        ids: &[Vec<u32>],
        prefix: Option<&Tensor>,
        capture_layer: Option<usize>,
    ) -> Result<(Tensor, crate::llama::Forward)> {
        let model = self.model("the decoder's forward pass")?;
        let (x, last) = self.batch(ids)?;
        let f = model.forward_prefixed(&x, prefix, capture_layer)?;
        let logits = model.token_logits_at(&f.last, &last, &[self.yes, self.no])?;
        Ok((logits, f))
    }

    /// P(Yes) of one batch of already-encoded prompts: softmax over the (Yes, No) logits.
    /// No graph is built (see [`crate::grad`]).
    pub fn p_yes_encoded(&self, ids: &[Vec<u32>]) -> Result<Vec<f64>> {
        self.p_yes_prefixed(ids, None)
    }

    /// As [`Scorer::p_yes_encoded`] with one soft prompt per row in front (`prefix`
    /// `[B, P, H]`, e.g. MoS's mixed prompts).
    pub fn p_yes_prefixed(&self, ids: &[Vec<u32>], prefix: Option<&Tensor>) -> Result<Vec<f64>> {
        let logits = crate::grad::no_grad(|| self.yes_no_logits(ids, prefix))?;
        let p = candle_nn::ops::softmax(&logits, 1)?
            .narrow(1, 0, 1)?
            .squeeze(1)?
            .to_vec1::<f32>()?;
        Ok(p.into_iter().map(f64::from).collect())
    }

    /// P(Yes) of each prompt, scored in batches of `batch_size`.
    pub fn p_yes(&self, prompts: &[String], batch_size: usize) -> Result<Vec<f64>> {
        let ids = self.encode(prompts)?;
        let mut out = Vec::with_capacity(prompts.len());
        for chunk in ids.chunks(batch_size.max(1)) {
            out.extend(self.p_yes_encoded(chunk)?);
        }
        Ok(out)
    }
}
