//! `fairrec train`'s flags and how they resolve into a [`TrainConfig`]: every method starts
//! from its own defaults (`Method::defaults`: `TrainConfig::default()` with the method's
//! settings over it, e.g. paper A's for its methods) and the flags given override them.
//! The flags carry no defaults of their own, so the library's are the only ones.

use crate::model_args::ModelArgs;
use anyhow::{bail, Result};
use clap::Args;
use fairrec_data::augment::AuxValues;
use fairrec_data::prompt::Template;
use fairrec_lm::mos::Routing;
use fairrec_lm::pool::Pooling;
use fairrec_lm::prompt::PromptInit;
use fairrec_metrics::stereotype::ZThreshold;
use fairrec_train::engine::optim::AdafactorConfig;
use fairrec_train::engine::schedule::Decay;
use fairrec_train::methods::mos::loss::{MosSettings, MosWeights};
use fairrec_train::methods::paper_a::curriculum::TauSource;
use fairrec_train::methods::stereo::StereotypeSettings;
use fairrec_train::{Method, TrainConfig};
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct TrainArgs {
    /// lora, full, prompt-tuning, p-tuning, paper A's ins-tuning, cf, diff, cf-diff, moe, cl-moe, or paper B's mos and the baselines ifairlrs, fairllm and up5.
    #[arg(long, default_value = "lora")]
    pub method: Method,
    #[command(flatten)]
    pub model: ModelArgs,
    /// A prepared dataset (`fairrec data prepare`).
    #[arg(long)]
    pub data: PathBuf,
    /// The run directory.
    #[arg(long)]
    pub out: PathBuf,
    /// Continue the run in --out from its last checkpoint (its own saved configuration is used).
    #[arg(long)]
    pub resume: bool,
    /// Start over in --out, deleting its checkpoint and log.
    #[arg(long)]
    pub force: bool,
    /// Sensitive attributes of the scenario, comma-separated [default: all the dataset's].
    #[arg(long, value_delimiter = ',')]
    pub attributes: Option<Vec<String>>,
    /// Ablation -A: no age-only auxiliary samples (moe, cl-moe).
    #[arg(long)]
    pub no_aux_age: bool,
    /// Ablation -G: no gender-only auxiliary samples (moe, cl-moe).
    #[arg(long)]
    pub no_aux_gender: bool,
    /// Auxiliary samples for every value of the attribute (all) or only the user's (true).
    #[arg(long, default_value = "all")]
    pub aux_values: AuxValues,
    /// Paper A's counterfactual copies: every other joint value (joint) or one attribute changed at a time (single-flip).
    #[arg(long, default_value = "joint")]
    pub counterfactuals: fairrec_data::augment::Counterfactuals,
    /// Prompt template [default: ins-tuning for --method ins-tuning, else llm-rec for cl-moe data, sequential for mos].
    #[arg(long)]
    pub template: Option<Template>,
    /// Train on the first N samples of the train split only.
    #[arg(long)]
    pub limit_train: Option<usize>,
    /// Validate on the first N samples of the valid split only.
    #[arg(long)]
    pub limit_valid: Option<usize>,
    /// Skip scoring the valid split before training.
    #[arg(long)]
    pub no_eval_before: bool,
    /// Peak learning rate [default: 3e-4; paper A's methods: 3e-4 for one attribute, 5e-4 for several].
    #[arg(long)]
    pub lr: Option<f64>,
    /// [default: 1; paper A's methods: 5].
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Stop after N optimizer steps.
    #[arg(long)]
    pub max_steps: Option<u64>,
    /// Samples per forward pass (with all their augmented copies) [default: 4].
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Forward passes per optimizer step [default: 1].
    #[arg(long)]
    pub grad_accum: Option<usize>,
    /// Global gradient-norm clip (0: none) [default: 1].
    #[arg(long)]
    pub max_grad_norm: Option<f64>,
    /// Fraction of the steps spent in linear warmup [default: 0.05].
    #[arg(long)]
    pub warmup_ratio: Option<f64>,
    /// Decay after warmup: constant, linear or cosine [default: linear].
    #[arg(long)]
    pub schedule: Option<Decay>,
    /// adamw, or adafactor (paper B's: factored second moments, no relative step: the rate is --lr with its schedule).
    #[arg(long, default_value = "adamw", value_parser = ["adamw", "adafactor"])]
    pub optimizer: String,
    /// Adafactor: scale the rate by each tensor's RMS (transformers' `scale_parameter`).
    #[arg(long)]
    pub adafactor_scale_parameter: bool,
    /// Decoupled weight decay (AdamW and Adafactor) [default: 0].
    #[arg(long)]
    pub weight_decay: Option<f64>,
    /// [default: 0.9 for AdamW; Adafactor keeps no first moment unless given].
    #[arg(long)]
    pub beta1: Option<f64>,
    /// [default: 0.999].
    #[arg(long)]
    pub beta2: Option<f64>,
    /// [default: 1e-8].
    #[arg(long)]
    pub adam_eps: Option<f64>,
    /// [default: 0].
    #[arg(long)]
    pub seed: Option<u64>,
    /// Stop when the valid AUC has not improved for N epochs.
    #[arg(long)]
    pub early_stopping: Option<usize>,
    /// Checkpoint every N optimizer steps (and at every epoch end) [default: 50].
    #[arg(long)]
    pub checkpoint_every: Option<u64>,
    /// Do not score the valid split after each epoch.
    #[arg(long)]
    pub no_eval: bool,
    /// LoRA rank [default: 8; paper A's methods: 16].
    #[arg(long)]
    pub lora_r: Option<usize>,
    /// [default: 16; paper A's methods: 32].
    #[arg(long)]
    pub lora_alpha: Option<f64>,
    /// [default: 0.05].
    #[arg(long)]
    pub lora_dropout: Option<f64>,
    /// Target modules, comma-separated (q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj) [default: q_proj,v_proj; moe and cl-moe: gate_proj,up_proj,down_proj].
    #[arg(long, value_delimiter = ',')]
    pub lora_targets: Option<Vec<String>>,
    /// Scale LoRA by alpha / sqrt(r).
    #[arg(long)]
    pub rslora: bool,
    /// LoRA experts per module [default: 1; moe and cl-moe: 3].
    #[arg(long)]
    pub experts: Option<usize>,
    /// Keep only the k largest router weights per token (MoE).
    #[arg(long)]
    pub top_k: Option<usize>,
    /// Weight of the router load-balance loss (MoE) [default: 0].
    #[arg(long)]
    pub balance_weight: Option<f64>,
    /// Weight of L_diff [default: 1 for diff, cf-diff, moe, cl-moe; 0 turns it off].
    #[arg(long)]
    pub diff_weight: Option<f64>,
    /// Block whose output L_diff compares (0-based) [default: the final hidden states].
    #[arg(long)]
    pub diff_layer: Option<usize>,
    /// How L_diff pools a prompt's states: last (token) or mean [default: last].
    #[arg(long)]
    pub diff_pooling: Option<Pooling>,
    /// T5: L_diff reads the decoder's first-step state or the encoder's output [default: decoder].
    #[arg(long)]
    pub diff_stack: Option<fairrec_lm::pool::Stack>,
    /// Which stated copies L_diff covers: all (Eq. 6 over every stated value) or original [default: all].
    #[arg(long)]
    pub diff_over: Option<fairrec_train::methods::paper_a::loss::DiffOver>,
    /// Also train the neutral copies on the answer loss.
    #[arg(long)]
    pub ntp_neutral: bool,
    /// cl-moe without its curriculum (= moe).
    #[arg(long)]
    pub no_curriculum: bool,
    /// SuperLoss lambda (Eq. 13) [default: 0.25].
    #[arg(long)]
    pub curriculum_lambda: Option<f64>,
    /// Moving-average weight delta of tau (Eq. 19) [default: 0.8].
    #[arg(long)]
    pub curriculum_delta: Option<f64>,
    /// What tau tracks: cl-moe (the step's CL-MoE loss, as Eq. 19 is printed) or raw (Eq. 7).
    #[arg(long)]
    pub tau_source: Option<TauSource>,
    /// Virtual tokens of prompt tuning (and of each MoS expert) [default: 20].
    #[arg(long)]
    pub virtual_tokens: Option<usize>,
    /// Prompt initialisation: text, sample-vocab or random [default: text; mos: sample-vocab].
    #[arg(long)]
    pub prompt_init: Option<String>,
    /// The text whose token embeddings start the prompt (--prompt-init text) [default: "Predict whether the user will like the item. Answer Yes or No."].
    #[arg(long)]
    pub prompt_init_text: Option<String>,
    /// MoS: prompt experts [default: 4].
    #[arg(long)]
    pub mos_experts: Option<usize>,
    /// MoS: experts kept per group input [default: 1].
    #[arg(long)]
    pub mos_top_k: Option<usize>,
    /// MoS: top (the k most probable experts) or stochastic (drawn in proportion while training) [default: top].
    #[arg(long)]
    pub mos_routing: Option<String>,
    /// MoS ablation: no reweighting layer (the groups' routes are averaged).
    #[arg(long)]
    pub no_reweight: bool,
    /// Weight of paper B's stereotype-aware fairness loss (Eq. 13) [default: 0.1 for mos (0 = the ablation); 0 for lora, full, prompt-tuning and p-tuning, which above 0 train on NTP + this loss as in paper B's Table V].
    #[arg(long)]
    pub fairness_weight: Option<f64>,
    /// MoS: weight of the expert diversity term (Eq. 14; 0 = the ablation) [default: 0.1].
    #[arg(long)]
    pub diversity_weight: Option<f64>,
    /// MoS: weight of a load-balance loss on the router (ours, not in paper B; against routing that collapses onto one expert) [default: 0].
    #[arg(long)]
    pub mos_balance_weight: Option<f64>,
    /// Paper B's methods: z-score above which an item belongs to a stereotype group, or `auto` (the largest of 3, 2.5, 2, 1.5, 1, 0.5 leaving every group 20 items of the train split; `fairrec data stereotypes` shows them) [default: auto].
    #[arg(long)]
    pub z_threshold: Option<ZThreshold>,
    /// Paper B's methods: stereotype degrees from raw interaction counts instead of rates per group size.
    #[arg(long)]
    pub raw_counts: bool,
    /// p-tuning: hidden width of the prompt encoder [default: the model's width].
    #[arg(long)]
    pub encoder_hidden_size: Option<usize>,
    /// prompt-tuning, p-tuning: PEFT's num_transformer_submodules, blocks of --virtual-tokens rows in the prompt table: 1, or 2 on T5 (the second block unused, as PEFT since 0.4 has it; Table V of paper B counts both) [default: PEFT's, 2 on T5, 1 on a decoder-only model].
    #[arg(long)]
    pub prompt_submodules: Option<usize>,
    /// prompt-tuning, p-tuning on T5: put the second block in front of the decoder input (PEFT before 0.4) [implies --prompt-submodules 2].
    #[arg(long)]
    pub decoder_prompt: bool,
    /// up5: lambda of the gradient reversal against the attribute discriminator [default: 1].
    #[arg(long)]
    pub adversary_weight: Option<f64>,
    /// up5: train on the prompts that state the attribute (`stated`, paper B's setting) or on the neutral prompts (`neutral`, UP5's own counterfactually fair prompting) [default: stated].
    #[arg(long)]
    pub up5_input: Option<fairrec_train::config::Up5Input>,
    /// fairllm: weight of the divergence between the answers with and without the stated attribute [default: 1].
    #[arg(long)]
    pub divergence_weight: Option<f64>,
}

impl TrainArgs {
    /// The configuration: the method's defaults for a scenario of `attributes`, then the
    /// flags.
    pub fn config(&self, attributes: usize) -> Result<TrainConfig> {
        let d = self.method.defaults(attributes >= 2);
        let text = match (&self.prompt_init_text, &TrainConfig::default().prompt_init) {
            (Some(t), _) => t.clone(),
            (None, PromptInit::Text(t)) => t.clone(),
            (None, _) => String::new(),
        };
        let prompt_init = match self.prompt_init.as_deref() {
            None => d.prompt_init.clone(),
            Some("text") => PromptInit::Text(text),
            Some("sample-vocab") => PromptInit::SampleVocab,
            Some("random") => PromptInit::Random,
            Some(o) => bail!("--prompt-init `{o}`: expected text, sample-vocab or random"),
        };
        let routing = match self.mos_routing.as_deref() {
            None => d.mos.routing,
            Some("top") => Routing::Top,
            Some("stochastic") => Routing::Stochastic,
            Some(o) => bail!("--mos-routing `{o}`: expected top or stochastic"),
        };
        let dm = &d.mos;
        let mos_fairness = match self.fairness_weight {
            Some(w) if self.method == Method::Mos => w,
            Some(_) if !self.method.is_paradigm() => bail!(
                "--fairness-weight applies to mos, lora, full, prompt-tuning and p-tuning, not {}",
                self.method.name()
            ),
            _ => dm.weights.fairness,
        };
        let mos = MosSettings {
            experts: self.mos_experts.unwrap_or(dm.experts),
            top_k: self.mos_top_k.unwrap_or(dm.top_k),
            routing,
            reweight: !self.no_reweight,
            weights: MosWeights {
                fairness: mos_fairness,
                diversity: self.diversity_weight.unwrap_or(dm.weights.diversity),
                balance: self.mos_balance_weight.unwrap_or(dm.weights.balance),
            },
        };
        let stereotype = StereotypeSettings {
            z_threshold: self.z_threshold.unwrap_or(d.stereotype.z_threshold),
            normalize: !self.raw_counts,
            ..d.stereotype.clone()
        };
        let mut objective = d.objective.clone();
        objective.diff_weight = self.diff_weight.unwrap_or(objective.diff_weight);
        objective.capture.layer = self.diff_layer;
        objective.capture.pooling = self.diff_pooling.unwrap_or(objective.capture.pooling);
        objective.capture.stack = self.diff_stack.unwrap_or(objective.capture.stack);
        objective.ntp_neutral = self.ntp_neutral;
        objective.diff_over = self.diff_over.unwrap_or(objective.diff_over);
        objective.balance_weight = self.balance_weight.unwrap_or(objective.balance_weight);
        objective.set_curriculum(
            self.no_curriculum,
            self.curriculum_lambda,
            self.curriculum_delta,
            self.tau_source,
        )?;
        let c = TrainConfig {
            method: self.method,
            lr: self.lr.unwrap_or(d.lr),
            schedule: self.schedule.unwrap_or(d.schedule),
            warmup_ratio: self.warmup_ratio.unwrap_or(d.warmup_ratio),
            epochs: self.epochs.unwrap_or(d.epochs),
            max_steps: self.max_steps,
            batch_size: self.batch_size.unwrap_or(d.batch_size),
            grad_accum: self.grad_accum.unwrap_or(d.grad_accum),
            max_grad_norm: self.max_grad_norm.unwrap_or(d.max_grad_norm),
            adamw: fairrec_train::engine::optim::AdamWConfig {
                beta1: self.beta1.unwrap_or(d.adamw.beta1),
                beta2: self.beta2.unwrap_or(d.adamw.beta2),
                eps: self.adam_eps.unwrap_or(d.adamw.eps),
                weight_decay: self.weight_decay.unwrap_or(d.adamw.weight_decay),
            },
            adafactor: (self.optimizer == "adafactor").then(|| AdafactorConfig {
                beta1: self.beta1,
                weight_decay: self.weight_decay.unwrap_or(0.0),
                scale_parameter: self.adafactor_scale_parameter,
                ..AdafactorConfig::default()
            }),
            seed: self.seed.unwrap_or(d.seed),
            early_stopping: self.early_stopping,
            checkpoint_every: self.checkpoint_every.unwrap_or(d.checkpoint_every),
            eval: !self.no_eval,
            lora: fairrec_lm::adapter::AdapterConfig {
                r: self.lora_r.unwrap_or(d.lora.r),
                alpha: self.lora_alpha.unwrap_or(d.lora.alpha),
                dropout: self.lora_dropout.unwrap_or(d.lora.dropout),
                rslora: self.rslora,
                targets: self.lora_targets.clone().unwrap_or(d.lora.targets),
                experts: self.experts.unwrap_or(d.lora.experts),
                top_k: self.top_k,
            },
            virtual_tokens: self.virtual_tokens.unwrap_or(d.virtual_tokens),
            prompt_init,
            objective,
            mos,
            stereotype,
            divergence_weight: self.divergence_weight.unwrap_or(d.divergence_weight),
            encoder_hidden_size: self.encoder_hidden_size.unwrap_or(d.encoder_hidden_size),
            prompt_submodules: self.prompt_submodules.or(d.prompt_submodules),
            decoder_prompt: self.decoder_prompt,
            adversary_weight: self.adversary_weight.unwrap_or(d.adversary_weight),
            up5_input: self.up5_input.unwrap_or(d.up5_input),
            fairness_weight: match self.method {
                Method::Mos => 0.0,
                _ => self.fairness_weight.unwrap_or(d.fairness_weight),
            },
        };
        fairrec_train::methods::validate(&c)?;
        Ok(c)
    }

    /// The attributes that get single-attribute auxiliary samples (before the method says
    /// whether it uses any).
    pub fn auxiliary(&self, scenario: &[String]) -> Vec<String> {
        scenario
            .iter()
            .filter(|a| !(self.no_aux_age && *a == "age" || self.no_aux_gender && *a == "gender"))
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::TrainArgs;
    use clap::Parser;
    use fairrec_train::Method;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        train: TrainArgs,
    }

    /// With no flags, every method's configuration is the library's (`Method::defaults`):
    /// the flags hold no defaults of their own.
    #[test]
    fn no_flags_give_the_library_defaults() {
        for m in Method::ALL {
            for attributes in [1, 2] {
                let argv = [
                    "t",
                    "--method",
                    m.name(),
                    "--model",
                    "m",
                    "--data",
                    "d",
                    "--out",
                    "o",
                ];
                let cli = Cli::try_parse_from(argv).unwrap();
                let got = cli.train.config(attributes).unwrap();
                assert_eq!(got, m.defaults(attributes >= 2), "{}", m.name());
            }
        }
    }
}
