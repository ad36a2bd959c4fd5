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
//! Prompts on T5: `task_type` `SEQ_2_SEQ_LM` with `num_transformer_submodules` 1 (one block
//! in front of the encoder input) or 2 (PEFT's default: a table of two blocks, the first in
//! front of the encoder input and, as PEFT since 0.4 reads it, the second unused; with
//! fairrec's `fairrec_decoder_prompt`, in front of the decoder input as PEFT before 0.4
//! put it). LoRA on T5 uses its module paths
//! (`base_model.model.encoder.block.0.layer.0.SelfAttention.q.lora_A.weight`).

pub mod config;

pub use self::config::PeftConfig;
use self::config::{LoraFile, PromptFile, TargetModules, PEFT_TYPES};
use crate::adapter::AdapterConfig;
use crate::backbone::Backbone;
use crate::error::{LmError, Result};
use crate::host::PromptHost;
use crate::mos::MixturePrompt;
use crate::prompt::{PromptInit, SoftPrompt};
use crate::tuning::Tuning;
use candle_core::{Device, Tensor};
use serde_json::Value;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

/// The config file's name.
pub const CONFIG_FILE: &str = "adapter_config.json";
/// The weights file's name.
pub const WEIGHTS_FILE: &str = "adapter_model.safetensors";

/// `adapter_config.json` for `tuning` on `model` (full fine-tuning has no adapter file:
/// save the whole model with [`crate::save::save_hf_dir`]).
pub fn config(tuning: &Tuning, model: &dyn PromptHost, base: &str) -> Result<PeftConfig> {
    let dims = model.peft_dims();
    let prompt_file = |p: &SoftPrompt| PromptFile {
        task_type: Some(dims.task_type.into()),
        base_model_name_or_path: Some(base.into()),
        num_virtual_tokens: p.len(),
        token_dim: Some(dims.token_dim),
        num_transformer_submodules: p.shape.submodules,
        fairrec_decoder_prompt: p.shape.decoder,
        num_attention_heads: Some(dims.heads),
        num_layers: Some(dims.layers),
        inference_mode: true,
        revision: None,
    };
    Ok(match tuning {
        Tuning::Adapters(set) => {
            let c = &set.cfg;
            let lora = LoraFile::new(
                dims.task_type,
                base,
                c.r,
                c.alpha,
                c.dropout,
                c.rslora,
                c.targets.clone(),
            );
            match c.experts {
                1 => PeftConfig::Lora(lora),
                experts => PeftConfig::LoraMoe {
                    lora,
                    experts,
                    top_k: c.top_k,
                },
            }
        }
        Tuning::Prompt { prompt, init } => match &prompt.encoder {
            None => PeftConfig::PromptTuning {
                prompt: prompt_file(prompt),
                prompt_tuning_init: Some(init.peft_name().into()),
                prompt_tuning_init_text: match init {
                    PromptInit::Text(t) => Some(t.clone()),
                    _ => None,
                },
                // PEFT refuses a TEXT-initialised config without the tokenizer it was
                // initialised with (`PromptTuningConfig.__post_init__`); ours is the base
                // model's.
                tokenizer_name_or_path: matches!(init, PromptInit::Text(_)).then(|| base.into()),
            },
            Some(enc) => PeftConfig::PTuning {
                prompt: prompt_file(prompt),
                encoder_reparameterization_type: "MLP".into(),
                encoder_hidden_size: enc.layers[0].0.dim(0)?,
                encoder_num_layers: 2,
                encoder_dropout: 0.0,
            },
        },
        Tuning::Mos(m) => PeftConfig::Mos {
            task_type: Some(dims.task_type.into()),
            base_model_name_or_path: Some(base.into()),
            token_dim: dims.token_dim,
            mos: m.cfg.clone(),
            inference_mode: true,
        },
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
    // Keys sorted (through a JSON value), as the file has always been written.
    let cfg = serde_json::to_value(config(tuning, model, base)?)
        .and_then(|v| serde_json::to_vec_pretty(&v))
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

/// Load an adapter directory written by fairrec or by PEFT and attach it to `model` (on
/// T5, LoRA on its `q`/`k`/`v`/`o`/`wi`/`wo` modules and prompts in front of the encoder
/// input, and of the decoder input where the file says so).
pub fn load(dir: &Path, model: &mut dyn Backbone, tok: &crate::tokenizer::Tok) -> Result<Tuning> {
    let cfg_path = dir.join(CONFIG_FILE);
    let cfg = read_config(&cfg_path)?;
    let w_path = dir.join(WEIGHTS_FILE);
    let mut values = candle_core::safetensors::load(&w_path, &Device::Cpu)
        .map_err(|e| model_err(&w_path, e.to_string()))?;
    let lora = |lora: &LoraFile, experts: usize, top_k: Option<usize>| -> Result<AdapterConfig> {
        let TargetModules::List(targets) = &lora.target_modules else {
            return Err(model_err(&cfg_path, "`target_modules` must be a list of module names (regular expressions are not supported)"));
        };
        if lora.bias != "none" {
            return Err(model_err(
                &cfg_path,
                "LoRA with trained biases is not supported",
            ));
        }
        Ok(AdapterConfig {
            r: lora.r,
            alpha: lora.lora_alpha,
            dropout: lora.lora_dropout,
            rslora: lora.use_rslora,
            targets: targets.clone(),
            experts,
            top_k,
        })
    };
    // What the config asks of the model (its target modules) is the config's fault.
    let mut attach = |c: AdapterConfig| {
        let set = model.attach_adapters(&c, 0);
        set.map_err(|e| model_err(&cfg_path, e.to_string()))
    };
    let tuning = match &cfg {
        PeftConfig::Lora(l) => Tuning::Adapters(attach(lora(l, 1, None)?)?),
        PeftConfig::LoraMoe {
            lora: l,
            experts,
            top_k,
        } => Tuning::Adapters(attach(lora(l, *experts, *top_k)?)?),
        // A saved p-tuning prompt is the encoder's output: it loads as a fixed prompt.
        PeftConfig::PromptTuning { prompt, .. } | PeftConfig::PTuning { prompt, .. } => {
            let shape = crate::prompt::PromptShape {
                submodules: prompt.num_transformer_submodules,
                decoder: prompt.fairrec_decoder_prompt,
            };
            let init = match &cfg {
                PeftConfig::PromptTuning {
                    prompt_tuning_init: Some(i),
                    prompt_tuning_init_text,
                    ..
                } => match i.as_str() {
                    "TEXT" => PromptInit::Text(prompt_tuning_init_text.clone().unwrap_or_default()),
                    "SAMPLE_VOCAB" => PromptInit::SampleVocab,
                    _ => PromptInit::Random,
                },
                _ => PromptInit::Random,
            };
            let host = model.host_mut();
            let shape = host
                .check_prompt_shape(shape)
                .map_err(|e| model_err(&cfg_path, e.to_string()))?;
            let prompt = Arc::new(
                SoftPrompt::from_embedding(
                    host.input_embedding(),
                    tok,
                    prompt.num_virtual_tokens,
                    shape,
                    &PromptInit::Random,
                    0,
                )
                .map_err(|e| model_err(&cfg_path, e.to_string()))?,
            );
            *host.soft_prompt_slot() = Some(prompt.clone());
            Tuning::Prompt { prompt, init }
        }
        PeftConfig::Mos { mos, .. } => {
            let mixture =
                MixturePrompt::new(model.host_mut(), tok, mos.clone(), &PromptInit::Random, 0)?;
            Tuning::Mos(Arc::new(mixture))
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

/// Read `adapter_config.json` at `path` (a `peft_type` fairrec does not read is named).
pub fn read_config(path: &Path) -> Result<PeftConfig> {
    let text = std::fs::read_to_string(path).map_err(|source| LmError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let v: Value = serde_json::from_str(&text).map_err(|e| model_err(path, e.to_string()))?;
    let peft_type = v.get("peft_type").and_then(Value::as_str).unwrap_or("");
    if !PEFT_TYPES.contains(&peft_type) {
        return Err(model_err(
            path,
            format!(
                "peft_type `{peft_type}` is not supported ({})",
                PEFT_TYPES.join(", ")
            ),
        ));
    }
    serde_json::from_value(v).map_err(|e| model_err(path, e.to_string()))
}
