//! What a training method makes trainable on a frozen model, in one place: LoRA / LoRA-MoE
//! adapters attached by target-module name ([`AdapterSet`]), a soft prompt (prompt
//! tuning), MoS's mixture of prompt experts, or every weight (full fine-tuning). [`Tuning`] is what the trainer sees.

use crate::adapter::{Adapter, AdapterConfig, TARGET_MODULES};
use crate::error::{LmError, Result};
use crate::layers::{Linear, RmsNorm};
use crate::llama::{Attention, Llama, Mlp};
use crate::mos::MixturePrompt;
use crate::prompt::{PromptInit, SoftPrompt};
use candle_core::{Tensor, Var};
use fairrec_core::Rng;
use std::sync::Arc;

/// The adapters attached to a model, by module path.
#[derive(Debug, Clone)]
pub struct AdapterSet {
    pub cfg: AdapterConfig,
    /// `(module path, adapter)`, e.g. `model.layers.0.self_attn.q_proj`.
    pub modules: Vec<(String, Arc<Adapter>)>,
}

impl AdapterSet {
    /// Every trainable variable under PEFT's key names
    /// (`base_model.model.<module path>.lora_A.weight`, ...).
    pub fn named_vars(&self) -> Vec<(String, candle_core::Var)> {
        self.modules
            .iter()
            .flat_map(|(path, a)| {
                a.vars().into_iter().map(move |(suffix, v)| {
                    (format!("base_model.model.{path}.{suffix}"), v.clone())
                })
            })
            .collect()
    }

    /// Dropout on (training) or off.
    pub fn set_training(&self, on: bool) {
        for (_, a) in &self.modules {
            a.set_training(on);
        }
    }

    /// Record (or stop recording) the router weights of training passes (MoE only).
    pub fn record_routes(&self, on: bool) {
        for (_, a) in &self.modules {
            a.record_routes(on);
        }
    }

    /// The router weights recorded since the last call, module by module.
    pub fn take_routes(&self) -> Vec<Tensor> {
        self.modules
            .iter()
            .flat_map(|(_, a)| a.take_routes())
            .collect()
    }

    /// Restart every module's dropout stream for optimizer step `step` of a run seeded
    /// with `seed`.
    pub fn reseed(&self, seed: u64, step: u64) {
        for (path, a) in &self.modules {
            a.reseed(Rng::derive(seed, &format!("dropout/{step}/{path}")));
        }
    }

    /// Number of trainable parameters.
    pub fn parameters(&self) -> usize {
        self.named_vars().iter().map(|(_, v)| v.elem_count()).sum()
    }
}

/// The seven linear modules of a decoder layer, attention first.
fn layer_linears<'a>(a: &'a mut Attention, m: &'a mut Mlp) -> [&'a mut Linear; 7] {
    [
        &mut a.q_proj,
        &mut a.k_proj,
        &mut a.v_proj,
        &mut a.o_proj,
        &mut m.gate_proj,
        &mut m.up_proj,
        &mut m.down_proj,
    ]
}

impl Llama {
    /// Every linear module with its checkpoint path.
    pub fn linears_mut(&mut self) -> Vec<(String, &mut Linear)> {
        let mut out = Vec::new();
        for l in &mut self.layers {
            for lin in layer_linears(&mut l.self_attn, &mut l.mlp) {
                out.push((lin.path.clone(), lin));
            }
        }
        out
    }

    /// Attach a fresh adapter (seeded) to every linear module named in `cfg.targets`.
    pub fn attach_adapters(&mut self, cfg: &AdapterConfig, seed: u64) -> Result<AdapterSet> {
        if let Some(bad) = cfg
            .targets
            .iter()
            .find(|t| !TARGET_MODULES.contains(&t.as_str()))
        {
            return Err(LmError::Invalid(format!(
                "unknown target module `{bad}` (one of {})",
                TARGET_MODULES.join(", ")
            )));
        }
        let device = self.device().clone();
        attach(self.linears_mut(), cfg, seed, &device)
    }

    /// Fold every plain-LoRA adapter into its base weight (`W0 + s B A`) and detach it.
    pub fn merge_adapters(&mut self) -> Result<()> {
        for (_, lin) in self.linears_mut() {
            // The delta first: a mixture that cannot merge stays attached.
            if let Some(delta) = lin.adapter.as_ref().map(|a| a.delta_weight()).transpose()? {
                lin.weight = (&lin.weight + delta)?;
                lin.adapter = None;
            }
        }
        Ok(())
    }
}

impl Llama {
    /// Every weight with its HF checkpoint key, mutable (full fine-tuning, saving).
    pub fn named_tensors_mut(&mut self) -> Vec<(String, &mut Tensor)> {
        let mut out: Vec<(String, &mut Tensor)> = Vec::new();
        out.push(("model.embed_tokens.weight".into(), &mut self.embed_tokens));
        for l in &mut self.layers {
            push_norm(&mut out, &mut l.input_layernorm);
            push_norm(&mut out, &mut l.post_attention_layernorm);
            for lin in layer_linears(&mut l.self_attn, &mut l.mlp) {
                push_linear(&mut out, lin);
            }
        }
        push_norm(&mut out, &mut self.norm);
        if let Some(h) = &mut self.lm_head {
            out.push(("lm_head.weight".into(), h));
        }
        out
    }

    /// Turn every weight into a trainable variable (full fine-tuning).
    pub fn make_trainable(&mut self) -> Result<Vec<(String, Var)>> {
        trainable(self.named_tensors_mut())
    }
}

/// Attach a fresh adapter (seeded) to every module of `linears` whose name `cfg.targets`
/// holds.
fn attach(
    linears: Vec<(String, &mut Linear)>,
    cfg: &AdapterConfig,
    seed: u64,
    device: &candle_core::Device,
) -> Result<AdapterSet> {
    let mut rng = fairrec_core::Rng::derive(seed, "adapter-init");
    let mut modules = Vec::new();
    for (path, lin) in linears {
        if cfg.targets.contains(&lin.name) {
            let (out_dim, in_dim) = lin.weight.dims2()?;
            let a = Arc::new(Adapter::new(cfg, in_dim, out_dim, &mut rng, device)?);
            lin.adapter = Some(a.clone());
            modules.push((path, a));
        }
    }
    Ok(AdapterSet {
        cfg: cfg.clone(),
        modules,
    })
}

/// The linear modules of one T5 block and its other weights (layer norms, the position
/// bucket table of block 0), under their checkpoint paths.
#[allow(clippy::type_complexity)]
fn t5_block_parts(b: &mut crate::t5::T5Block) -> (Vec<&mut Linear>, Vec<(String, &mut Tensor)>) {
    let (mut lin, mut other): (Vec<&mut Linear>, Vec<(String, &mut Tensor)>) =
        (Vec::new(), Vec::new());
    let a = &mut b.self_attn;
    if let Some(t) = &mut a.relative_attention_bias {
        other.push((format!("{}.relative_attention_bias.weight", a.path), t));
    }
    lin.extend([&mut a.q, &mut a.k, &mut a.v, &mut a.o]);
    push_norm(&mut other, &mut b.self_norm);
    if let Some((a, norm)) = &mut b.cross {
        lin.extend([&mut a.q, &mut a.k, &mut a.v, &mut a.o]);
        push_norm(&mut other, norm);
    }
    let f = &mut b.ff;
    lin.push(&mut f.wi_0);
    lin.extend(f.wi_1.as_mut());
    lin.push(&mut f.wo);
    push_norm(&mut other, &mut b.ff_norm);
    (lin, other)
}

impl crate::t5::T5 {
    /// Every linear module with its checkpoint path
    /// (`encoder.block.0.layer.0.SelfAttention.q`, ...).
    pub fn linears_mut(&mut self) -> Vec<(String, &mut Linear)> {
        let mut out = Vec::new();
        for s in [&mut self.encoder, &mut self.decoder] {
            for b in &mut s.block {
                out.extend(t5_block_parts(b).0.into_iter().map(|l| (l.path.clone(), l)));
            }
        }
        out
    }

    /// Attach a fresh adapter (seeded) to every linear module named in `cfg.targets`,
    /// given by T5's names or their Llama-family equivalents ([`crate::adapter::t5_target`]);
    /// the returned set records T5's names.
    pub fn attach_adapters(&mut self, cfg: &AdapterConfig, seed: u64) -> Result<AdapterSet> {
        let mut targets = Vec::new();
        for t in &cfg.targets {
            let name = crate::adapter::t5_target(t).ok_or_else(|| {
                LmError::Invalid(format!(
                    "unknown T5 target module `{t}` (one of {})",
                    crate::adapter::T5_TARGET_MODULES.join(", ")
                ))
            })?;
            // A gated model has wi_0/wi_1, a plain one wi: `wi_0` also means `wi`.
            for n in [name, if name == "wi_0" { "wi" } else { name }] {
                if !targets.iter().any(|x: &String| x == n) {
                    targets.push(n.to_string());
                }
            }
        }
        let cfg = AdapterConfig {
            targets,
            ..cfg.clone()
        };
        let device = self.device().clone();
        let set = attach(self.linears_mut(), &cfg, seed, &device)?;
        if set.modules.is_empty() {
            return Err(LmError::Invalid(format!(
                "no T5 module matches the targets [{}]",
                cfg.targets.join(", ")
            )));
        }
        Ok(set)
    }
}

/// Replace every tensor by a fresh variable holding a copy of it.
fn trainable(tensors: Vec<(String, &mut Tensor)>) -> Result<Vec<(String, Var)>> {
    let mut vars = Vec::new();
    for (key, t) in tensors {
        let v = Var::from_tensor(&t.detach().copy()?)?;
        *t = v.as_tensor().clone();
        vars.push((key, v));
    }
    Ok(vars)
}

impl crate::t5::T5 {
    /// Every weight with its HF checkpoint key, mutable (full fine-tuning, saving). The
    /// head is listed once: `lm_head.weight` when the checkpoint has its own, else it is
    /// `shared.weight`.
    pub fn named_tensors_mut(&mut self) -> Vec<(String, &mut Tensor)> {
        let mut out: Vec<(String, &mut Tensor)> = vec![("shared.weight".into(), &mut self.shared)];
        if let Some(h) = &mut self.lm_head {
            out.push(("lm_head.weight".into(), h));
        }
        for s in [&mut self.encoder, &mut self.decoder] {
            for b in &mut s.block {
                let (lin, other) = t5_block_parts(b);
                for l in lin {
                    push_linear(&mut out, l);
                }
                out.extend(other);
            }
            push_norm(&mut out, &mut s.final_layer_norm);
        }
        out
    }

    /// Turn every weight into a trainable variable (full fine-tuning).
    pub fn make_trainable(&mut self) -> Result<Vec<(String, Var)>> {
        trainable(self.named_tensors_mut())
    }
}

fn push_linear<'a>(out: &mut Vec<(String, &'a mut Tensor)>, lin: &'a mut Linear) {
    out.push((format!("{}.weight", lin.path), &mut lin.weight));
    if let Some(b) = &mut lin.bias {
        out.push((format!("{}.bias", lin.path), b));
    }
}

fn push_norm<'a>(out: &mut Vec<(String, &'a mut Tensor)>, norm: &'a mut RmsNorm) {
    out.push((format!("{}.weight", norm.path), &mut norm.weight));
}

/// What a method trains.
#[derive(Debug, Clone)]
pub enum Tuning {
    /// LoRA or LoRA-MoE adapters.
    Adapters(AdapterSet),
    /// Prompt tuning, or p-tuning when the prompt has an encoder.
    Prompt {
        prompt: Arc<SoftPrompt>,
        init: PromptInit,
    },
    /// Every weight, under its checkpoint key.
    Full(Vec<(String, Var)>),
    /// MoS's prompt experts, router and reweighting layer (paper B).
    Mos(Arc<MixturePrompt>),
}

impl Tuning {
    /// Every trainable variable with a stable name (PEFT's key names for adapters and
    /// prompts, checkpoint keys for full fine-tuning), in a fixed order.
    pub fn named_vars(&self) -> Vec<(String, Var)> {
        match self {
            Tuning::Adapters(set) => set.named_vars(),
            Tuning::Prompt { prompt, .. } => prompt.named_vars(),
            Tuning::Full(v) => v.clone(),
            Tuning::Mos(m) => m.named_vars(),
        }
    }

    /// Dropout on or off.
    pub fn set_training(&self, on: bool) {
        match self {
            Tuning::Adapters(set) => set.set_training(on),
            Tuning::Mos(m) => m.set_training(on),
            _ => {}
        }
    }

    /// Reseed the dropout streams for one optimizer step.
    pub fn reseed(&self, seed: u64, step: u64) {
        match self {
            Tuning::Adapters(set) => set.reseed(seed, step),
            Tuning::Mos(m) => m.reseed(seed, step),
            _ => {}
        }
    }

    /// Number of trainable parameters.
    pub fn parameters(&self) -> usize {
        self.named_vars().iter().map(|(_, v)| v.elem_count()).sum()
    }

    /// The trainable share of a model of `base` parameters, as PEFT's
    /// `get_nb_trainable_parameters` (and so paper B's Table V) counts it: adapter and
    /// prompt weights join the model, `trainable / (base + trainable)`; full fine-tuning
    /// trains the base itself, `trainable / base`.
    pub fn trainable_share(&self, base: usize) -> f64 {
        let t = self.parameters();
        let all = match self {
            Tuning::Full(_) => base,
            _ => base + t,
        };
        t as f64 / all.max(1) as f64
    }

    /// Overwrite the variables with `values` (by name); every variable must be present
    /// with its shape.
    pub fn load_values(&self, values: &std::collections::HashMap<String, Tensor>) -> Result<()> {
        for (name, var) in self.named_vars() {
            let t = values
                .get(&name)
                .ok_or_else(|| LmError::Invalid(format!("no tensor `{name}`")))?;
            if t.dims() != var.dims() {
                return Err(LmError::Invalid(format!(
                    "tensor `{name}` has shape {:?}, expected {:?}",
                    t.dims(),
                    var.dims()
                )));
            }
            var.set(&t.to_dtype(var.dtype())?.to_device(var.device())?)?;
        }
        Ok(())
    }
}
