//! Checkpoints: the trainable tensors, the optimizer's state and the loop's position, written as
//! one directory that is replaced as a whole (see `fairrec_core::fs::replace_dir`), so a
//! run killed at any instant resumes from the last complete checkpoint.

use crate::engine::optim::Optimizer;
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
pub fn save(dir: &Path, state: &LoopState, opt: &Optimizer) -> Result<()> {
    let mut params = Vec::new();
    let mut moments = Vec::new();
    for p in &opt.params {
        params.push((p.name.clone(), p.var.as_tensor().clone()));
        for (slot, t) in &p.state {
            moments.push((format!("{slot}/{}", p.name), t.clone()));
        }
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
pub fn load(dir: &Path, opt: &mut Optimizer, fingerprint: &str) -> Result<LoopState> {
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
    for p in opt.params.iter_mut() {
        let get = |map: &HashMap<String, Tensor>, key: &str, file: &str, like: &Tensor| {
            let t = map
                .get(key)
                .ok_or_else(|| ck_err(&dir.join(file), format!("no tensor `{key}`")))?;
            if t.dims() != like.dims() {
                return Err(ck_err(
                    &dir.join(file),
                    format!(
                        "`{key}` has shape {:?}, expected {:?}",
                        t.dims(),
                        like.dims()
                    ),
                ));
            }
            Ok::<_, TrainError>(t.to_device(like.device())?)
        };
        p.var
            .set(&get(&params, &p.name, PARAMS, p.var.as_tensor())?)?;
        for (slot, t) in p.state.iter_mut() {
            *t = get(&moments, &format!("{slot}/{}", p.name), OPTIM, t)?;
        }
    }
    opt.t = t;
    Ok(state)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::optim::{AdafactorConfig, Rule};
    use candle_core::Var;

    /// Adafactor's factored state survives a checkpoint: a restored optimizer takes the
    /// same next step as the one that kept running.
    #[test]
    fn adafactor_state_round_trips() {
        let d = Device::Cpu;
        let rule = Rule::Adafactor(AdafactorConfig {
            beta1: Some(0.9),
            ..AdafactorConfig::default()
        });
        let vars = || {
            vec![
                (
                    "w".to_string(),
                    Var::from_slice(&[0.5f32, -1.0, 2.0, 0.25], (2, 2), &d).unwrap(),
                ),
                (
                    "b".to_string(),
                    Var::from_slice(&[1.0f32, -2.0], 2, &d).unwrap(),
                ),
            ]
        };
        let grads = |k: f32| {
            [
                Tensor::from_slice(&[0.3 * k, -0.2, 0.05, 0.4 * k], (2, 2), &d).unwrap(),
                Tensor::from_slice(&[0.5f32, -0.1 * k], 2, &d).unwrap(),
            ]
        };
        let mut a = Optimizer::new(vars(), rule).unwrap();
        for k in 1..=2 {
            a.step(&grads(k as f32), 0.01).unwrap();
        }
        let dir = tempfile::tempdir().unwrap();
        let ck = dir.path().join("ck");
        let state = LoopState {
            step: 2,
            epoch: 0,
            step_in_epoch: 2,
            best_auc: None,
            best_epoch: None,
            stale_epochs: 0,
            log_lines: 2,
            tokens: 0,
            fingerprint: "f".into(),
            objective: serde_json::Value::Null,
        };
        save(&ck, &state, &a).unwrap();
        let mut b = Optimizer::new(vars(), rule).unwrap();
        assert_eq!(load(&ck, &mut b, "f").unwrap(), state);
        assert_eq!(b.t, 2);
        let slots: Vec<&str> = b.params[0].state.iter().map(|s| s.0).collect();
        assert_eq!(slots, ["row", "col", "m"]);
        a.step(&grads(3.0), 0.01).unwrap();
        b.step(&grads(3.0), 0.01).unwrap();
        for (x, y) in a.params.iter().zip(&b.params) {
            let v = |p: &crate::engine::optim::Param| {
                p.var
                    .as_tensor()
                    .flatten_all()
                    .unwrap()
                    .to_vec1::<f32>()
                    .unwrap()
            };
            assert_eq!(v(x), v(y), "{}", x.name);
        }
        // an AdamW optimizer cannot take Adafactor's checkpoint
        let mut c = Optimizer::adamw(vars(), Default::default()).unwrap();
        let e = load(&ck, &mut c, "f").unwrap_err().to_string();
        assert!(e.contains("no tensor `v/w`"), "{e}");
    }
}
