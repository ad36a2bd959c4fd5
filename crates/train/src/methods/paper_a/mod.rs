//! Paper A's methods (CL-MoE, Sec. 4-5): LoRA compositions trained on each sample with the
//! augmented copies the method asks for (`fairrec_data::augment`), in the scenario's
//! attributes:
//!
//! | method | template | copies of each sample | adapter | loss |
//! |---|---|---|---|---|
//! | `ins-tuning` | Ins-Tuning | original + counterfactual | LoRA | `L_LLM` |
//! | `cf` | LLM Rec | original + counterfactual | LoRA | `L_LLM` |
//! | `diff` | LLM Rec | original (+ neutral anchor) | LoRA | `L_LLM + L_diff` |
//! | `cf-diff` | LLM Rec | original + counterfactual (+ neutral anchor) | LoRA | `L_LLM + L_diff` (Eq. 7) |
//! | `moe` | LLM Rec | as cf-diff + single-attribute auxiliary copies | LoRA-MoE (Eq. 10-12) | Eq. 7 |
//! | `cl-moe` | LLM Rec | as moe | LoRA-MoE | SuperLoss of Eq. 7 per copy (Eq. 13-19) |
//!
//! Ins-Tuning trains on the counterfactually augmented data: the paper says that with that
//! augmentation Jiang et al.'s frequency weights become uniform and the method "reverts to
//! standard instruction tuning" (our reading; Sec. 5.1). The losses are in [`loss`], the
//! curriculum in [`curriculum`].
//!
//! On T5 (ours: paper A has decoder-only backbones) the methods are the same: LoRA on
//! `q`/`v`, LoRA-MoE on the feed-forward (`wi_0`, `wi_1`, `wo`; `wi`, `wo` on non-gated
//! T5) of every encoder and decoder block, the curriculum unchanged; `L_diff` reads the
//! decoder's first-step state (the one the answer is read from) or, with
//! `--diff-stack encoder`, the encoder's pooled output ([`fairrec_lm::pool::Stack`]).

pub mod curriculum;
pub mod loss;

use self::curriculum::Curriculum;
use self::loss::{Copy, FairLoss, Group};
use super::{adapters, Copies, Family, MethodDef};
use crate::config::TrainConfig;
use crate::engine::trainer::Summary;
use crate::error::{Result, TrainError};
use crate::fit::Fit;
use fairrec_core::Variant;
use fairrec_data::augment::{augment, AugmentConfig};
use fairrec_data::prompt::{render, Template};
use fairrec_data::protocol::Protocol;
use fairrec_data::sample::Sample;
use fairrec_lm::adapter::AdapterConfig;
use fairrec_lm::score::Scorer;
use fairrec_lm::tokenizer::Tok;
use fairrec_lm::tuning::Tuning;
use fairrec_lm::Backbone;

/// One of paper A's methods.
pub struct PaperA {
    pub label: &'static str,
    pub copies: Copies,
    /// LoRA-MoE adapters (3 experts on the FFN) instead of LoRA on q/v.
    pub moe: bool,
    /// SuperLoss curriculum (CL-MoE).
    pub curriculum: bool,
    /// Trains and is audited with the Ins-Tuning template.
    pub ins_tuning: bool,
}

const fn paper_a(label: &'static str, copies: Copies, moe: bool) -> PaperA {
    PaperA {
        label,
        copies,
        moe,
        curriculum: false,
        ins_tuning: false,
    }
}

const CF_COPIES: Copies = Copies {
    counterfactual: true,
    neutral: false,
    auxiliary: false,
};
const CF_DIFF_COPIES: Copies = Copies {
    counterfactual: true,
    neutral: true,
    auxiliary: false,
};
const MOE_COPIES: Copies = Copies {
    counterfactual: true,
    neutral: true,
    auxiliary: true,
};

pub const INS_TUNING: PaperA = PaperA {
    ins_tuning: true,
    ..paper_a("Ins-Tuning", CF_COPIES, false)
};
pub const CF: PaperA = paper_a("CF", CF_COPIES, false);
pub const DIFF: PaperA = paper_a(
    "Diff",
    Copies {
        counterfactual: false,
        neutral: true,
        auxiliary: false,
    },
    false,
);
pub const CF_DIFF: PaperA = paper_a("CF-Diff", CF_DIFF_COPIES, false);
pub const MOE: PaperA = paper_a("LoRA-MoE", MOE_COPIES, true);
pub const CL_MOE: PaperA = PaperA {
    curriculum: true,
    ..paper_a("CL-MoE", MOE_COPIES, true)
};

impl MethodDef for PaperA {
    fn family(&self) -> Family {
        Family::PaperA
    }

    fn label(&self) -> &'static str {
        self.label
    }

    fn copies(&self) -> Copies {
        self.copies
    }

    /// The paper's settings (Sec. 5.1): LoRA r 16, alpha 32, dropout 0.05 (q/v for the
    /// LoRA methods; 3 experts on the FFN linear layers for MoE and CL-MoE), lr 3e-4 for
    /// one sensitive attribute and 5e-4 for several, 5 epochs, `L_diff` with weight 1
    /// where the method has it, the curriculum for CL-MoE.
    fn defaults(&self, c: &mut TrainConfig, multi_attribute: bool) {
        c.lr = if multi_attribute { 5e-4 } else { 3e-4 };
        c.epochs = 5;
        c.lora = AdapterConfig {
            dropout: 0.05,
            experts: if self.moe { 3 } else { 1 },
            ..AdapterConfig::lora(
                16,
                32.0,
                if self.moe {
                    &["gate_proj", "up_proj", "down_proj"]
                } else {
                    &["q_proj", "v_proj"]
                },
            )
        };
        if self.copies.neutral {
            c.objective.diff_weight = 1.0;
        }
        if self.curriculum {
            c.objective.curriculum = Some(Curriculum::default());
        }
    }

    fn template(&self, protocol: Protocol) -> Template {
        if self.ins_tuning {
            Template::InsTuning
        } else {
            Template::default_for(protocol)
        }
    }

    fn setup(&self, model: &mut dyn Backbone, _tok: &Tok, cfg: &TrainConfig) -> Result<Tuning> {
        adapters(model, cfg)
    }

    fn fit(&self, f: &Fit) -> Result<Summary> {
        let aug = f.spec.augment.as_ref().ok_or_else(|| {
            TrainError::Config(format!(
                "--method {}: the run's specification has no augmentation",
                f.cfg().method.name()
            ))
        })?;
        let groups = encode_groups(f.scorer, f.spec.template, f.train, aug)?;
        let adapters = match f.tuning {
            Tuning::Adapters(s) => Some(s),
            _ => None,
        };
        let objective = FairLoss::new(f.answer(), f.cfg().objective.clone(), adapters);
        let prompts = groups
            .iter()
            .map(|g| g.stated.len() + usize::from(g.neutral.is_some()))
            .sum::<usize>();
        f.fit(&objective, &groups, prompts)
    }
}

/// Every sample with its augmented copies, encoded.
pub fn encode_groups(
    scorer: &Scorer,
    template: Template,
    samples: &[Sample],
    cfg: &AugmentConfig,
) -> Result<Vec<Group>> {
    let mut prompts = Vec::new();
    let mut names = Vec::new();
    let mut plan = Vec::new();
    for s in samples {
        let copies = augment(s, cfg)?;
        for c in &copies {
            prompts.push(render(template, s, &c.variant, &cfg.attributes)?);
            names.push(format!("sample {} ({})", s.sample_id, c.variant));
        }
        plan.push(copies);
    }
    let mut ids = scorer
        .encode(&prompts)
        .map_err(|e| e.name_prompt(|k| names[k].clone()))?
        .into_iter();
    let mut out = Vec::with_capacity(samples.len());
    for (s, copies) in samples.iter().zip(plan) {
        let mut g = Group {
            stated: Vec::new(),
            neutral: None,
            label: s.label,
        };
        for c in copies {
            let x = ids
                .next()
                .ok_or_else(|| TrainError::Config("one encoding per prompt".into()))?;
            if c.variant == Variant::Neutral {
                g.neutral = Some(x);
            } else {
                g.stated.push(Copy {
                    ids: x,
                    kind: c.kind.to_string(),
                });
            }
        }
        out.push(g);
    }
    Ok(out)
}
