//! Named tensors as a safetensors file (adapters, full fine-tunes, checkpoints).

use crate::error::{LmError, Result};
use candle_core::Tensor;

/// Serialise named tensors in the safetensors format.
pub fn safetensors_bytes(tensors: &[(String, Tensor)]) -> Result<Vec<u8>> {
    let contiguous: Vec<(String, Tensor)> = tensors
        .iter()
        .map(|(k, t)| Ok((k.clone(), t.contiguous()?)))
        .collect::<Result<_>>()?;
    safetensors::tensor::serialize(contiguous.iter().map(|(k, t)| (k.as_str(), t)), None)
        .map_err(|e| LmError::Invalid(format!("safetensors: {e}")))
}
