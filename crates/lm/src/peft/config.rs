//! `adapter_config.json`, written and read through one type per `peft_type`
//! ([`PeftConfig`]). The fields are PEFT's (`LoraConfig`, `PromptTuningConfig`,
//! `PromptEncoderConfig`), so Python `peft` reads what fairrec writes; fields that PEFT
//! writes and fairrec does not use are ignored when reading. `FAIRREC_LORA_MOE` and
//! `FAIRREC_MOS` are fairrec's own types for what PEFT lacks.

use crate::mos::MosConfig;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

/// The file, tagged by `peft_type`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "peft_type")]
pub enum PeftConfig {
    #[serde(rename = "LORA")]
    Lora(LoraFile),
    /// LoRA-MoE: LoRA's fields, the experts per module and the router's top-k.
    #[serde(rename = "FAIRREC_LORA_MOE")]
    LoraMoe {
        #[serde(flatten)]
        lora: LoraFile,
        experts: usize,
        top_k: Option<usize>,
    },
    #[serde(rename = "PROMPT_TUNING")]
    PromptTuning {
        #[serde(flatten)]
        prompt: PromptFile,
        /// `TEXT`, `SAMPLE_VOCAB` or `RANDOM`.
        #[serde(default)]
        prompt_tuning_init: Option<String>,
        #[serde(default)]
        prompt_tuning_init_text: Option<String>,
        #[serde(default)]
        tokenizer_name_or_path: Option<String>,
    },
    /// p-tuning; the saved prompt is the encoder's output.
    #[serde(rename = "P_TUNING")]
    PTuning {
        #[serde(flatten)]
        prompt: PromptFile,
        encoder_reparameterization_type: String,
        encoder_hidden_size: usize,
        encoder_num_layers: usize,
        encoder_dropout: f64,
    },
    #[serde(rename = "FAIRREC_MOS")]
    Mos {
        task_type: Option<String>,
        base_model_name_or_path: Option<String>,
        token_dim: usize,
        mos: MosConfig,
        inference_mode: bool,
    },
}

/// The `peft_type`s fairrec reads.
pub const PEFT_TYPES: [&str; 5] = [
    "LORA",
    "PROMPT_TUNING",
    "P_TUNING",
    "FAIRREC_LORA_MOE",
    "FAIRREC_MOS",
];

/// What PEFT may name the target modules: a list, or a regular expression (not supported).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum TargetModules {
    List(Vec<String>),
    Pattern(String),
}

/// LoRA's fields (PEFT's `LoraConfig`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoraFile {
    #[serde(default)]
    pub task_type: Option<String>,
    #[serde(default)]
    pub base_model_name_or_path: Option<String>,
    pub r: usize,
    /// PEFT's default 8.
    #[serde(default = "eight")]
    pub lora_alpha: f64,
    #[serde(default)]
    pub lora_dropout: f64,
    #[serde(default)]
    pub use_rslora: bool,
    pub target_modules: TargetModules,
    /// `none` (trained biases are not supported).
    #[serde(default = "none")]
    pub bias: String,
    #[serde(default)]
    pub fan_in_fan_out: bool,
    #[serde(default = "yes")]
    pub inference_mode: bool,
    /// PEFT: `true`, `false` or an initialisation's name.
    #[serde(default)]
    pub init_lora_weights: Value,
    #[serde(default)]
    pub modules_to_save: Value,
    #[serde(default)]
    pub layers_to_transform: Value,
    #[serde(default)]
    pub layers_pattern: Value,
    #[serde(default)]
    pub rank_pattern: BTreeMap<String, Value>,
    #[serde(default)]
    pub alpha_pattern: BTreeMap<String, Value>,
    #[serde(default)]
    pub revision: Option<String>,
}

/// The fields of both prompt types (PEFT's `PromptLearningConfig`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PromptFile {
    #[serde(default)]
    pub task_type: Option<String>,
    #[serde(default)]
    pub base_model_name_or_path: Option<String>,
    pub num_virtual_tokens: usize,
    #[serde(default)]
    pub token_dim: Option<usize>,
    /// 1: one block (a decoder's input or T5's encoder input); 2: two blocks, PEFT's
    /// default on an encoder-decoder model ([`crate::prompt::PromptShape`]).
    #[serde(default = "one")]
    pub num_transformer_submodules: usize,
    /// fairrec's: the second of 2 blocks goes in front of T5's decoder input (PEFT before
    /// 0.4). PEFT since 0.4 ignores this key, and the block, when it loads the file.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub fairrec_decoder_prompt: bool,
    #[serde(default)]
    pub num_attention_heads: Option<usize>,
    #[serde(default)]
    pub num_layers: Option<usize>,
    #[serde(default = "yes")]
    pub inference_mode: bool,
    #[serde(default)]
    pub revision: Option<String>,
}

fn eight() -> f64 {
    8.0
}

fn one() -> usize {
    1
}

fn yes() -> bool {
    true
}

fn none() -> String {
    "none".into()
}

impl LoraFile {
    /// PEFT's defaults for what fairrec does not set (no patterns, no biases, inference
    /// mode) around the given fields.
    pub fn new(
        task_type: &str,
        base: &str,
        r: usize,
        alpha: f64,
        dropout: f64,
        rslora: bool,
        targets: Vec<String>,
    ) -> Self {
        LoraFile {
            task_type: Some(task_type.into()),
            base_model_name_or_path: Some(base.into()),
            r,
            lora_alpha: alpha,
            lora_dropout: dropout,
            use_rslora: rslora,
            target_modules: TargetModules::List(targets),
            bias: none(),
            fan_in_fan_out: false,
            inference_mode: true,
            init_lora_weights: Value::Bool(true),
            modules_to_save: Value::Null,
            layers_to_transform: Value::Null,
            layers_pattern: Value::Null,
            rank_pattern: BTreeMap::new(),
            alpha_pattern: BTreeMap::new(),
            revision: None,
        }
    }
}
