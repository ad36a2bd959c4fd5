//! The conventional paradigms: LoRA, full fine-tuning, prompt tuning and p-tuning, on the
//! original prompts with `L_LLM` (paper A's Eq. 4), or, with `fairness_weight` above 0, on
//! `L_LLM + lambda_f` times paper B's stereotype-aware fairness loss (Eq. 13), as paper B's
//! Table V trains them "using the same learning objectives" as MoS ([`super::stereo`]).

use super::stereo::{groups_of, stereo_of, StereoExample, StereoLoss};
use super::{adapters, p_tuning, soft_prompt, Family, MethodDef};
use crate::config::TrainConfig;
use crate::encode::{originals, samples};
use crate::engine::trainer::Summary;
use crate::error::Result;
use crate::fit::Fit;
use fairrec_lm::tokenizer::Tok;
use fairrec_lm::tuning::Tuning;
use fairrec_lm::Backbone;

/// What a paradigm makes trainable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trains {
    /// LoRA adapters on the target modules (`cfg.lora`).
    Lora,
    /// Every weight.
    Full,
    /// A soft prompt of `cfg.virtual_tokens` virtual tokens.
    Prompt,
    /// Virtual tokens through a trainable prompt encoder (p-tuning, MLP).
    PTuning,
}

/// A conventional paradigm.
pub struct Plain {
    pub trains: Trains,
    pub label: &'static str,
}

pub const LORA: Plain = Plain {
    trains: Trains::Lora,
    label: "LoRA (LLM-RS baseline)",
};
pub const FULL: Plain = Plain {
    trains: Trains::Full,
    label: "full",
};
pub const PROMPT_TUNING: Plain = Plain {
    trains: Trains::Prompt,
    label: "prompt-tuning",
};
pub const P_TUNING: Plain = Plain {
    trains: Trains::PTuning,
    label: "p-tuning",
};

impl MethodDef for Plain {
    fn family(&self) -> Family {
        Family::Paradigm
    }

    fn label(&self) -> &'static str {
        self.label
    }

    fn saves_model(&self) -> bool {
        self.trains == Trains::Full
    }

    fn setup(&self, model: &mut dyn Backbone, tok: &Tok, cfg: &TrainConfig) -> Result<Tuning> {
        match self.trains {
            Trains::Lora => adapters(model, cfg),
            Trains::Full => Ok(Tuning::Full(model.make_trainable()?)),
            Trains::Prompt => soft_prompt(model, tok, cfg),
            Trains::PTuning => p_tuning(model, cfg),
        }
    }

    fn fit(&self, f: &Fit) -> Result<Summary> {
        let (cfg, spec) = (f.cfg(), f.spec);
        let examples = originals(f.scorer, spec.template, f.train, &spec.attributes)?;
        if cfg.fairness_weight <= 0.0 {
            let n = examples.len();
            return f.fit(&f.answer(), &examples, n);
        }
        // Paper B's objective (NTP + lambda_f * Eq. 13) over the train split's groups.
        let st = &cfg.stereotype;
        let items = groups_of(
            &samples(f.session.data, "train", None)?,
            &st.attribute,
            &st.config(),
        );
        let train_set = examples
            .into_iter()
            .zip(f.train)
            .map(|(example, s)| {
                Ok(StereoExample {
                    example,
                    stereo: stereo_of(s, &st.attribute, &st.groups, &items)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let objective = StereoLoss::new(f.answer(), cfg.fairness_weight, st.groups.len());
        let n = train_set.len();
        f.fit(&objective, &train_set, n)
    }
}
