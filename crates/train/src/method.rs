//! Methods of the engine: what each makes trainable on a loaded model, and how its result
//! is saved (PEFT adapter files, or a whole HF model directory for full fine-tuning).

use crate::config::{Method, TrainConfig};
use crate::error::{Result, TrainError};
use fairrec_lm::load::save_hf_dir;
use fairrec_lm::load::Model;
use fairrec_lm::mos::{MixturePrompt, MosConfig};
use fairrec_lm::prompt::PromptInit;
use fairrec_lm::score::Backbone;
use fairrec_lm::tokenizer::Tok;
use fairrec_lm::tuning::Tuning;
use fairrec_lm::{Llama, PromptHost};
use std::path::Path;
use std::sync::Arc;

/// Make `model` trainable as `cfg.method` asks (adapters seeded with `cfg.seed`).
pub fn setup(model: &mut Llama, tok: &Tok, cfg: &TrainConfig) -> Result<Tuning> {
    if let Some(t) = setup_prompts(model, tok, cfg)? {
        return Ok(t);
    }
    Ok(match cfg.method {
        Method::Full => Tuning::Full(model.make_trainable()?),
        // LoRA, paper B's baselines and paper A's methods (LoRA or LoRA-MoE, as `cfg.lora` says).
        _ => Tuning::Adapters(model.attach_adapters(&cfg.lora, cfg.seed)?),
    })
}

/// As [`setup`] for either backbone: T5 takes full tuning, the prompt-based methods (prompt
/// tuning, p-tuning, MoS, UP5) and LoRA (lora, ifairlrs, fairllm); paper A's methods need a
/// decoder.
pub fn setup_model(model: &mut Model, tok: &Tok, cfg: &TrainConfig) -> Result<Tuning> {
    match model {
        Model::Decoder(m) => setup(m, tok, cfg),
        Model::T5(m) => {
            if let Some(t) = setup_prompts(m, tok, cfg)? {
                return Ok(t);
            }
            match cfg.method {
                Method::Full => Ok(Tuning::Full(m.make_trainable()?)),
                Method::Lora | Method::IFairLrs | Method::FairLlm => {
                    Ok(Tuning::Adapters(m.attach_adapters(&cfg.lora, cfg.seed)?))
                }
                _ => Err(TrainError::Config(format!(
                    "--method {} on T5: T5 trains full, LoRA (lora, ifairlrs, fairllm) and prompts (prompt-tuning, p-tuning, mos, up5); paper A's methods need a decoder-only model (L_diff reads decoder hidden states at prompt positions)",
                    cfg.method.name()
                ))),
            }
        }
    }
}

/// The prompt-based methods' tuning on any host of soft prompts; `None` for the others.
fn setup_prompts(
    model: &mut dyn PromptHost,
    tok: &Tok,
    cfg: &TrainConfig,
) -> Result<Option<Tuning>> {
    Ok(Some(match cfg.method {
        Method::PromptTuning | Method::Up5 => Tuning::Prompt {
            prompt: model.attach_soft_prompt(
                tok,
                cfg.virtual_tokens,
                &cfg.prompt_init,
                cfg.seed,
            )?,
            init: cfg.prompt_init.clone(),
        },
        Method::PTuning => Tuning::Prompt {
            prompt: model.attach_p_tuning(cfg.virtual_tokens, cfg.encoder_hidden_size, cfg.seed)?,
            init: PromptInit::Random,
        },
        Method::Mos => {
            let (m, st) = (&cfg.mos, &cfg.stereotype);
            let mc = MosConfig {
                experts: m.experts,
                virtual_tokens: cfg.virtual_tokens,
                groups: st.groups.clone(),
                top_k: m.top_k,
                routing: m.routing,
                reweight: m.reweight,
                attribute: st.attribute.clone(),
                z_threshold: st.z_threshold,
            };
            Tuning::Mos(Arc::new(MixturePrompt::new(
                model,
                tok,
                mc,
                &cfg.prompt_init,
                cfg.seed,
            )?))
        }
        _ => return Ok(None),
    }))
}

/// Save what `tuning` trained into `dir`: PEFT files (`adapter_config.json`,
/// `adapter_model.safetensors`) for adapters and prompts; `config.json`,
/// `model.safetensors` and the tokenizer for full fine-tuning.
pub fn save(tuning: &Tuning, model: &Llama, tok: &Tok, base: &str, dir: &Path) -> Result<()> {
    save_model_ref(tuning, Backbone::Decoder(model), tok, base, dir)
}

/// As [`save`] for either backbone.
pub fn save_model(tuning: &Tuning, model: &Model, tok: &Tok, base: &str, dir: &Path) -> Result<()> {
    save_model_ref(tuning, model.into(), tok, base, dir)
}

fn save_model_ref(
    tuning: &Tuning,
    model: Backbone,
    tok: &Tok,
    base: &str,
    dir: &Path,
) -> Result<()> {
    match tuning {
        Tuning::Full(vars) => {
            let tensors: Vec<_> = vars
                .iter()
                .map(|(k, v)| (k.clone(), v.as_tensor().clone()))
                .collect();
            match model {
                Backbone::Decoder(m) => save_hf_dir(&m.cfg, &tensors, tok, dir)?,
                Backbone::T5(m) => fairrec_lm::load::save_t5_dir(&m.cfg, &tensors, tok, dir)?,
            }
        }
        _ => fairrec_lm::peft::save(tuning, model.host(), base, dir)?,
    }
    Ok(())
}
