//! The names of the training methods: what `--method` takes and `train_config.json` stores.
//! What each method does is in [`crate::methods`] (one module per method or family); this
//! list is the one place a new method's name is added (the compiler then points at the one
//! `match` arm in `crate::methods::Method::def` that it needs).

/// Declares [`Method`] with its names, [`Method::ALL`] and `FromStr`.
macro_rules! method_names {
    ($($(#[$doc:meta])* $variant:ident = $name:literal,)*) => {
        /// A training method (what a run makes trainable, on which copies of the data, with
        /// which losses: see [`crate::methods`]).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
        #[serde(rename_all = "kebab-case")]
        pub enum Method {
            $($(#[$doc])* $variant,)*
        }

        impl Method {
            pub const ALL: [Method; [$($name),*].len()] = [$(Method::$variant,)*];

            /// The name `--method` takes.
            pub fn name(self) -> &'static str {
                match self {
                    $(Method::$variant => $name,)*
                }
            }
        }
    };
}

method_names! {
    /// LoRA adapters on the target modules.
    Lora = "lora",
    /// Every weight.
    Full = "full",
    /// A soft prompt of virtual tokens.
    PromptTuning = "prompt-tuning",
    /// Virtual tokens through a trainable prompt encoder (p-tuning, MLP).
    PTuning = "p-tuning",
    /// Paper A's Ins-Tuning baseline.
    InsTuning = "ins-tuning",
    /// Paper A: counterfactual augmentation.
    Cf = "cf",
    /// Paper A: `L_diff`.
    Diff = "diff",
    /// Paper A: CF-Diff (Eq. 7).
    CfDiff = "cf-diff",
    /// Paper A: LoRA-MoE (Eq. 10-12).
    Moe = "moe",
    /// Paper A: CL-MoE (Eq. 13-19).
    ClMoe = "cl-moe",
    /// Paper B's Mixture-of-Stereotypes soft prompts ([`crate::methods::mos`]).
    Mos = "mos",
    /// Paper B's item-side baseline IFairLRS ([`crate::methods::ifairlrs`]).
    IFairLrs = "ifairlrs",
    /// Paper B's user-side FaiRLLM-objective baseline ([`crate::methods::fairllm`]).
    FairLlm = "fairllm",
    /// Paper B's counterfactually fair prompting baseline UP5 ([`crate::methods::up5`]).
    Up5 = "up5",
}

impl std::str::FromStr for Method {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Method::ALL
            .into_iter()
            .find(|m| m.name() == s)
            .ok_or_else(|| {
                format!(
                    "method `{s}`: expected one of {}",
                    Method::ALL.map(|m| m.name()).join(", ")
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use super::Method;

    /// `train_config.json` (and so every checkpoint's fingerprint) stores serde's names,
    /// which differ from the flag's for two methods: they must never change.
    #[test]
    fn serialized_names_are_stable() {
        let json: Vec<String> = Method::ALL
            .iter()
            .map(|m| serde_json::to_string(m).unwrap())
            .collect();
        assert_eq!(
            json.join(","),
            "\"lora\",\"full\",\"prompt-tuning\",\"p-tuning\",\"ins-tuning\",\"cf\",\"diff\",\"cf-diff\",\"moe\",\"cl-moe\",\"mos\",\"i-fair-lrs\",\"fair-llm\",\"up5\""
        );
    }
}
