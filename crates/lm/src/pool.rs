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

/// Which hidden states to capture.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Capture {
    /// Block index (0-based); `None` for the final hidden states after the last norm.
    pub layer: Option<usize>,
    pub pooling: Pooling,
}

impl Capture {
    /// Pool the captured states of a forward pass over right-padded prompts whose last
    /// real positions are `last` -> `[B, H]`.
    pub fn pool(&self, f: &Forward, last: &[usize]) -> Result<Tensor> {
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
