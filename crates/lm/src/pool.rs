//! Hidden-state capture for representation losses (paper A's CF-Diff, Eq. 5-6): which
//! block's output and how a prompt's token states become one vector.

use crate::error::{LmError, Result};
use crate::layers::gather_positions;
use crate::llama::Forward;
use candle_core::{Tensor, D};

/// How a prompt's `[T, H]` hidden states become one `[H]` vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Pooling {
    /// The state at the prompt's last real token (the answer position).
    Last,
    /// The mean over the prompt's real tokens (padding excluded).
    Mean,
}

impl std::str::FromStr for Pooling {
    type Err = LmError;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "last" => Ok(Pooling::Last),
            "mean" => Ok(Pooling::Mean),
            o => Err(LmError::Invalid(format!(
                "pooling `{o}`: expected last or mean"
            ))),
        }
    }
}

/// Which stack's states an encoder-decoder (T5) gives `L_diff` (paper A, Eq. 5-6; ours:
/// paper A has decoder-only backbones only).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Stack {
    /// The decoder's states: a decoder-only model's prompt positions; on T5, the decoder's
    /// first step after its final norm, the state the answer logits are read from (one
    /// position: both poolings give it). The default.
    #[default]
    Decoder,
    /// T5's encoder: its output after the final norm, or block `layer`'s output, at the
    /// prompt's real tokens (a soft prompt's positions cut off), pooled.
    Encoder,
}

impl Stack {
    pub fn is_decoder(&self) -> bool {
        *self == Stack::Decoder
    }
}

impl std::str::FromStr for Stack {
    type Err = LmError;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "decoder" => Ok(Stack::Decoder),
            "encoder" => Ok(Stack::Encoder),
            o => Err(LmError::Invalid(format!(
                "stack `{o}`: expected decoder or encoder"
            ))),
        }
    }
}

/// Which hidden states to capture.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Capture {
    /// Block index (0-based); `None` for the final hidden states after the last norm.
    pub layer: Option<usize>,
    pub pooling: Pooling,
    /// The stack read (encoder-decoders only; absent from runs before 2026-12-06: decoder).
    #[serde(default, skip_serializing_if = "Stack::is_decoder")]
    pub stack: Stack,
}

impl Capture {
    /// Pool the captured states of a forward pass over right-padded prompts whose last
    /// real positions are `last` -> `[B, H]`.
    pub fn pool(&self, f: &Forward, last: &[usize]) -> Result<Tensor> {
        if !self.stack.is_decoder() {
            return Err(LmError::Invalid(
                "L_diff on the encoder's states (--diff-stack encoder) needs an encoder-decoder (T5)".into(),
            ));
        }
        let h = match self.layer {
            None => &f.last,
            Some(l) => f.captured.as_ref().ok_or_else(|| {
                LmError::Invalid(format!("layer {l} was not captured in this forward pass"))
            })?,
        };
        pool(h, last, self.pooling)
    }
}

/// Pool `hidden` `[B, T, H]` (right-padded; row `b` real at `0..=last[b]`) -> `[B, H]`,
/// in f32 whatever the model's dtype (the losses that read it are computed in f32).
pub fn pool(hidden: &Tensor, last: &[usize], pooling: Pooling) -> Result<Tensor> {
    let hidden = &hidden.to_dtype(candle_core::DType::F32)?;
    match pooling {
        Pooling::Last => gather_positions(hidden, last),
        Pooling::Mean => {
            let (b, t, _) = hidden.dims3()?;
            let w: Vec<f32> = last
                .iter()
                .flat_map(|&l| (0..t).map(move |j| if j <= l { 1.0 / (l + 1) as f32 } else { 0.0 }))
                .collect();
            let w = Tensor::from_vec(w, (b, t, 1), hidden.device())?;
            Ok(hidden.broadcast_mul(&w)?.sum(D::Minus2)?)
        }
    }
}
