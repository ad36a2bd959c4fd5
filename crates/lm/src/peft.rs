//! Adapter files in Hugging Face PEFT's format: a directory with `adapter_config.json` and
//! `adapter_model.safetensors` under PEFT's key names, so that Python `peft` loads what
//! fairrec trains and fairrec loads what `peft` trains.
//!
//! * LoRA: `peft_type` `LORA`, keys `base_model.model.<module path>.lora_A.weight`
//!   (`[r, in]`) and `...lora_B.weight` (`[out, r]`).
//! * Prompt tuning: `peft_type` `PROMPT_TUNING`, one key `prompt_embeddings` (`[N, H]`).
//! * P-tuning: `peft_type` `P_TUNING` (MLP encoder), one key `prompt_embeddings`: the
//!   encoder's output, as PEFT saves it; it loads back as a fixed prompt (training's
//!   checkpoints keep the encoder itself).
//! * LoRA-MoE (no PEFT equivalent): `peft_type` `FAIRREC_LORA_MOE`, the same layout with
//!   `lora_A.{j}.weight` per expert and `router.weight`; PEFT cannot load it.
//! * MoS (no PEFT equivalent): `peft_type` `FAIRREC_MOS` with the [`MosConfig`] under
//!   `mos`, keys `mos.experts` (`[K, N, H]`), `mos.router.weight` / `.bias` and
//!   `mos.reweight.bias`; PEFT cannot load it.
//!
//! Prompts on T5 go in front of the encoder input only: `task_type` `SEQ_2_SEQ_LM` with
//! `num_transformer_submodules` 1 (PEFT's default for seq2seq, 2, also prompts the decoder;
//! such files are refused). LoRA on T5 uses its module paths
//! (`base_model.model.encoder.block.0.layer.0.SelfAttention.q.lora_A.weight`).

use crate::adapter::AdapterConfig;
use crate::error::{LmError, Result};
use crate::host::PromptHost;
use crate::llama::Llama;
use crate::load::{Model, ModelMut};
use crate::mos::{MixturePrompt, MosConfig};
use crate::prompt::{PromptInit, SoftPrompt};
use crate::tuning::Tuning;
use candle_core::{Device, Tensor};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

/// The config file's name.
pub const CONFIG_FILE: &str = "adapter_config.json";
/// The weights file's name.
pub const WEIGHTS_FILE: &str = "adapter_model.safetensors";

/// `adapter_config.json` for `tuning` on a model of `model.cfg` (full fine-tuning has no
/// adapter file: save the whole model with [`crate::load::save_hf_dir`]).
pub fn config_json(tuning: &Tuning, model: &dyn PromptHost, base: &str) -> Result<Value> {
    let dims = model.peft_dims();
    Ok(match tuning {
        Tuning::Adapters(set) => {
            let c = &set.cfg;
            let mut v = json!({
                "peft_type": "LORA",
                "task_type": dims.task_type,
                "base_model_name_or_path": base,
                "r": c.r,
                "lora_alpha": c.alpha,
                "lora_dropout": c.dropout,
                "use_rslora": c.rslora,
                "target_modules": c.targets,
                "bias": "none",
                "fan_in_fan_out": false,
                "inference_mode": true,
                "init_lora_weights": true,
                "modules_to_save": null,
                "layers_to_transform": null,
                "layers_pattern": null,
                "rank_pattern": {},
                "alpha_pattern": {},
                "revision": null,
            });
            if c.experts > 1 {
                v["peft_type"] = json!("FAIRREC_LORA_MOE");
                v["experts"] = json!(c.experts);
                v["top_k"] = json!(c.top_k);
            }
            v
        }
        Tuning::Prompt { prompt, init } => {
            let mut v = json!({
                "peft_type": "PROMPT_TUNING",
                "task_type": dims.task_type,
                "base_model_name_or_path": base,
                "num_virtual_tokens": prompt.len(),
                "token_dim": dims.token_dim,
                "num_transformer_submodules": 1,
                "num_attention_heads": dims.heads,
                "num_layers": dims.layers,
                "inference_mode": true,
                "revision": null,
            });
            match &prompt.encoder {
                None => {
                    v["prompt_tuning_init"] = json!(init.peft_name());
                    v["prompt_tuning_init_text"] = match init {
                        PromptInit::Text(t) => json!(t),
                        _ => Value::Null,
                    };
                    v["tokenizer_name_or_path"] = Value::Null;
                }
                Some(enc) => {
                    v["peft_type"] = json!("P_TUNING");
                    v["encoder_reparameterization_type"] = json!("MLP");
                    v["encoder_hidden_size"] = json!(enc.layers[0].0.dim(0)?);
                    v["encoder_num_layers"] = json!(2);
                    v["encoder_dropout"] = json!(0.0);
                }
            }
            v
        }
        Tuning::Mos(m) => json!({
            "peft_type": "FAIRREC_MOS",
            "task_type": dims.task_type,
            "base_model_name_or_path": base,
            "token_dim": dims.token_dim,
            "mos": m.cfg,
            "inference_mode": true,
        }),
        Tuning::Full(_) => {
            return Err(LmError::Invalid(
                "full fine-tuning has no adapter file; save the model directory".into(),
            ))
        }
    })
}

/// The two files of an adapter directory, as bytes.
pub fn adapter_files(
    tuning: &Tuning,
    model: &dyn PromptHost,
    base: &str,
) -> Result<Vec<(String, Vec<u8>)>> {
    let cfg = serde_json::to_vec_pretty(&config_json(tuning, model, base)?)
        .map_err(|e| LmError::Invalid(e.to_string()))?;
    let tensors: Vec<(String, Tensor)> = match tuning {
        // PEFT saves a p-tuning prompt as the encoder's output (what inference needs).
        Tuning::Prompt { prompt, .. } if prompt.encoder.is_some() => {
            vec![("prompt_embeddings".into(), prompt.prompt()?.detach())]
        }
        _ => tuning
            .named_vars()
            .into_iter()
            .map(|(k, v)| (k, v.as_tensor().clone()))
            .collect(),
    };
    Ok(vec![
        (CONFIG_FILE.into(), cfg),
        (
            WEIGHTS_FILE.into(),
            crate::weights::safetensors_bytes(&tensors)?,
        ),
    ])
}

/// Save `tuning` in PEFT's format into `dir` (replaced as a whole, crash-safe).
pub fn save(tuning: &Tuning, model: &dyn PromptHost, base: &str, dir: &Path) -> Result<()> {
    let files = adapter_files(tuning, model, base)?;
    let refs: Vec<(&str, &[u8])> = files
        .iter()
        .map(|(n, b)| (n.as_str(), b.as_slice()))
        .collect();
    fairrec_core::fs::replace_dir(dir, &refs).map_err(|source| LmError::Io {
        path: dir.to_path_buf(),
        source,
    })
}

fn model_err(path: &Path, message: impl Into<String>) -> LmError {
    LmError::Model {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

/// Load an adapter directory written by fairrec or by PEFT and attach it to `model`.
pub fn load(dir: &Path, model: &mut Llama, tok: &crate::tokenizer::Tok) -> Result<Tuning> {
    load_into(dir, ModelMut::Decoder(model), tok)
}

/// As [`load`] for either backbone (on T5, LoRA on its `q`/`k`/`v`/`o`/`wi`/`wo` modules and
/// prompts in front of the encoder input).
pub fn load_model(dir: &Path, model: &mut Model, tok: &crate::tokenizer::Tok) -> Result<Tuning> {
    load_into(dir, model.into(), tok)
}

fn load_into(dir: &Path, mut model: ModelMut, tok: &crate::tokenizer::Tok) -> Result<Tuning> {
    let cfg_path = dir.join(CONFIG_FILE);
    let text = std::fs::read_to_string(&cfg_path).map_err(|source| LmError::Io {
        path: cfg_path.clone(),
        source,
    })?;
    let cfg: Value =
        serde_json::from_str(&text).map_err(|e| model_err(&cfg_path, e.to_string()))?;
    let w_path = dir.join(WEIGHTS_FILE);
    let mut values = candle_core::safetensors::load(&w_path, &Device::Cpu)
        .map_err(|e| model_err(&w_path, e.to_string()))?;
    let peft_type = cfg.get("peft_type").and_then(Value::as_str).unwrap_or("");
    let tuning = match peft_type {
        "LORA" | "FAIRREC_LORA_MOE" => {
            let targets = match cfg.get("target_modules") {
                Some(Value::Array(a)) => a
                    .iter()
                    .map(|t| t.as_str().map(str::to_string))
                    .collect::<Option<Vec<_>>>(),
                _ => None,
            }
            .ok_or_else(|| {
                model_err(&cfg_path, "`target_modules` must be a list of module names (regular expressions are not supported)")
            })?;
            let num = |k: &str| cfg.get(k).and_then(Value::as_f64);
            let r = num("r").ok_or_else(|| model_err(&cfg_path, "no `r`"))? as usize;
            let ac = AdapterConfig {
                r,
                alpha: num("lora_alpha").unwrap_or(8.0),
                dropout: num("lora_dropout").unwrap_or(0.0),
                rslora: cfg
                    .get("use_rslora")
                    .and_then(Value::as_bool)
                    .unwrap_or(false),
                targets,
                experts: num("experts").map(|e| e as usize).unwrap_or(1),
                top_k: num("top_k").map(|k| k as usize),
            };
            if cfg
                .get("bias")
                .and_then(Value::as_str)
                .is_some_and(|b| b != "none")
            {
                return Err(model_err(
                    &cfg_path,
                    "LoRA with trained biases is not supported",
                ));
            }
            Tuning::Adapters(model.attach_adapters(&ac, 0)?)
        }
        // A saved p-tuning prompt is the encoder's output: it loads as a fixed prompt.
        "PROMPT_TUNING" | "P_TUNING" => {
            let n = cfg
                .get("num_virtual_tokens")
                .and_then(Value::as_u64)
                .ok_or_else(|| model_err(&cfg_path, "no `num_virtual_tokens`"))?
                as usize;
            let subs = cfg
                .get("num_transformer_submodules")
                .and_then(Value::as_u64)
                .unwrap_or(1);
            if subs != 1 {
                return Err(model_err(&cfg_path, format!("num_transformer_submodules = {subs}: only prompts on one submodule (1: a decoder's input or T5's encoder input) load here")));
            }
            let init = match cfg.get("prompt_tuning_init").and_then(Value::as_str) {
                Some("TEXT") => PromptInit::Text(
                    cfg.get("prompt_tuning_init_text")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string(),
                ),
                Some("SAMPLE_VOCAB") => PromptInit::SampleVocab,
                _ => PromptInit::Random,
            };
            let host = model.host();
            let embedding = host.input_embedding();
            let prompt = Arc::new(SoftPrompt::from_embedding(embedding, tok, n, &PromptInit::Random, 0)?);
            *host.soft_prompt_slot() = Some(prompt.clone());
            Tuning::Prompt { prompt, init }
        }
        "FAIRREC_MOS" => {
            let mc: MosConfig = cfg
                .get("mos")
                .cloned()
                .ok_or_else(|| model_err(&cfg_path, "no `mos` section"))
                .and_then(|v| serde_json::from_value(v).map_err(|e| model_err(&cfg_path, format!("`mos`: {e}"))))?;
            Tuning::Mos(Arc::new(MixturePrompt::new(model.host(), tok, mc, &PromptInit::Random, 0)?))
        }
        other => {
            return Err(model_err(
                &cfg_path,
                format!(
                    "peft_type `{other}` is not supported (LORA, PROMPT_TUNING, P_TUNING, FAIRREC_LORA_MOE, FAIRREC_MOS)"
                ),
            ))
        }
    };
    let expected: Vec<String> = tuning.named_vars().into_iter().map(|(k, _)| k).collect();
    // PEFT may keep the adapter name in keys (`.default.`); fairrec's names have none.
    values = values
        .into_iter()
        .map(|(k, v)| (k.replace(".default.", "."), v))
        .collect::<HashMap<_, _>>();
    if let Some(extra) = values.keys().find(|k| !expected.contains(k)) {
        return Err(model_err(
            &w_path,
            format!("unexpected tensor `{extra}` (this model has no such adapter weight)"),
        ));
    }
    tuning
        .load_values(&values)
        .map_err(|e| model_err(&w_path, e.to_string()))?;
    Ok(tuning)
}
