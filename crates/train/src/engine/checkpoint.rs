//! Checkpoints: the trainable tensors, AdamW's moments and the loop's position, written as
//! one directory that is replaced as a whole (see `fairrec_core::fs::replace_dir`), so a
//! run killed at any instant resumes from the last complete checkpoint.

use crate::engine::optim::AdamW;
use crate::error::{io_err, Result, TrainError};
use candle_core::{Device, Tensor};
use fairrec_lm::weights::safetensors_bytes;
use std::collections::HashMap;
use std::path::Path;

/// Where the loop stands.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LoopState {
    /// Optimizer steps done.
    pub step: u64,
    /// Epoch in progress (0-based).
    pub epoch: usize,
    /// Optimizer steps of this epoch already done.
    pub step_in_epoch: usize,
    /// Best valid AUC so far and its epoch.
    pub best_auc: Option<f64>,
    pub best_epoch: Option<usize>,
    /// Epochs since the valid AUC last improved.
    pub stale_epochs: usize,
    /// Lines of `train_log.jsonl` written up to this state.
    pub log_lines: usize,
    /// Tokens seen.
    pub tokens: u64,
    /// `TrainConfig::fingerprint` of the run.
    pub fingerprint: String,
    /// The objective's own state (`Objective::state`, e.g. CL-MoE's `tau`).
    #[serde(default)]
    pub objective: serde_json::Value,
}

const STATE: &str = "state.json";
const PARAMS: &str = "trainable.safetensors";
const OPTIM: &str = "optimizer.safetensors";

/// Write the checkpoint directory `dir`.
pub fn save(dir: &Path, state: &LoopState, opt: &AdamW) -> Result<()> {
    let mut params = Vec::new();
    let mut moments = Vec::new();
    for (name, var, m, v) in &opt.params {
        params.push((name.clone(), var.as_tensor().clone()));
        moments.push((format!("m/{name}"), m.clone()));
        moments.push((format!("v/{name}"), v.clone()));
    }
    let state_json = serde_json::to_vec_pretty(&serde_json::json!({
        "loop": state,
        "adamw_t": opt.t,
    }))
    .map_err(|e| TrainError::Config(e.to_string()))?;
    let p = safetensors_bytes(&params)?;
    let o = safetensors_bytes(&moments)?;
    fairrec_core::fs::replace_dir(dir, &[(PARAMS, &p), (OPTIM, &o), (STATE, &state_json)])
        .map_err(io_err(dir))
}

fn ck_err(path: &Path, message: impl Into<String>) -> TrainError {
    TrainError::Checkpoint {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

/// Read the checkpoint in `dir` into `opt` (variables and moments) and return the loop
/// state. The checkpoint must be of a run with the same fingerprint.
pub fn load(dir: &Path, opt: &mut AdamW, fingerprint: &str) -> Result<LoopState> {
    fairrec_core::fs::recover_dir(dir).map_err(io_err(dir))?;
    let sp = dir.join(STATE);
    let text = std::fs::read_to_string(&sp).map_err(io_err(&sp))?;
    let v: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| ck_err(&sp, e.to_string()))?;
    let state: LoopState = serde_json::from_value(v["loop"].clone())
        .map_err(|e| ck_err(&sp, format!("`loop`: {e}")))?;
    if state.fingerprint != fingerprint {
        return Err(ck_err(
            &sp,
            format!(
                "written by a run with another configuration (fingerprint {} vs {fingerprint}); resume with the run's own config",
                state.fingerprint
            ),
        ));
    }
    let t = v["adamw_t"]
        .as_u64()
        .ok_or_else(|| ck_err(&sp, "no `adamw_t`"))?;
    let read = |name: &str| -> Result<HashMap<String, Tensor>> {
        let p = dir.join(name);
        candle_core::safetensors::load(&p, &Device::Cpu).map_err(|e| ck_err(&p, e.to_string()))
    };
    let params = read(PARAMS)?;
    let moments = read(OPTIM)?;
    for (name, var, m, v) in opt.params.iter_mut() {
        let get = |map: &HashMap<String, Tensor>, key: &str, file: &str| -> Result<Tensor> {
            let t = map
                .get(key)
                .ok_or_else(|| ck_err(&dir.join(file), format!("no tensor `{key}`")))?;
            if t.dims() != var.dims() {
                return Err(ck_err(
                    &dir.join(file),
                    format!(
                        "`{key}` has shape {:?}, expected {:?}",
                        t.dims(),
                        var.dims()
                    ),
                ));
            }
            Ok(t.to_device(var.device())?)
        };
        var.set(&get(&params, name, PARAMS)?)?;
        *m = get(&moments, &format!("m/{name}"), OPTIM)?;
        *v = get(&moments, &format!("v/{name}"), OPTIM)?;
    }
    opt.t = t;
    Ok(state)
}
