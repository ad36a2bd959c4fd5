//! Experiment files (`experiments/*.toml`): the grid and the flags of its cells.
//!
//! ```toml
//! name = "paper-a-table2-ml100k"
//! methods = ["llm-rec", "cot", "ins-tuning", "cf-diff", "cl-moe"]  # templates or train methods
//! # a method may carry a variant label: "cl-moe@r2" with [method_train."cl-moe@r2"] flags
//! scenarios = ["age,gender"]                                  # "gender", "age", "age,gender"
//! seeds = [0, 1, 2]
//!
//! [[datasets]]
//! name = "ml-100k"
//! prepare = { dataset = "ml-100k", raw = "${FAIRREC_DATA:-../shared/data}/ml-100k", protocol = "cl-moe" }
//! # or: path = "a/prepared/dir"; or synth = { users = 600 } plus prepare = {...} without raw
//!
//! [[models]]
//! name = "smollm2"
//! path = "${FAIRREC_MODELS:-../shared/models}/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf"
//! # or: init = { hidden = 128 } (the built-in model, its tokenizer trained per dataset)
//! # finetune = { epochs = 3 }        # optional: full fine-tune per dataset first
//! flags = { no_chat = false }          # model flags of train and audit
//! # device = "cuda"; dtype = "bf16"     # where its cells run [default: experiment run's flags]
//!
//! [train]                              # flags of every `fairrec train` cell
//! limit_train = 200
//! [method_train.cl-moe]                # flags of one method's cells
//! balance_weight = 0.01
//! [audit]                              # flags of every `fairrec audit`
//! bootstrap = 200
//! [method_audit."mos@z2"]              # flags of one method's audits
//! z_threshold = 2.0
//! [paper.ml-100k."age,gender".cl-moe]  # published figures shown beside ours
//! f1 = 77.07
//! ```
//!
//! Keys of the flag tables are the commands' long flags (as in `--config` run files).
//! Paths expand `${VAR}` and `${VAR:-default}` and are relative to the working directory.

use anyhow::{bail, Context as _, Result};
use fairrec_data::prompt::Template;
use fairrec_data::protocol::Protocol;
use fairrec_train::Method;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub datasets: Vec<DatasetSpec>,
    pub models: Vec<ModelSpec>,
    pub methods: Vec<String>,
    pub scenarios: Vec<String>,
    pub seeds: Vec<u64>,
    #[serde(default)]
    pub train: toml::Table,
    #[serde(default)]
    pub method_train: BTreeMap<String, toml::Table>,
    #[serde(default)]
    pub audit: toml::Table,
    /// Flags of one method's audits (after `[audit]`), e.g. another `z_threshold`.
    #[serde(default)]
    pub method_audit: BTreeMap<String, toml::Table>,
    /// dataset -> scenario -> method -> metric -> value, as the paper prints them: paper
    /// A's `f1` (%), `gd`, `rate` (fractions); paper B's `implicit`, `explicit`,
    /// `counterfactual` (stereotype-aware fairness), `auc`, `precision`, `recall` (%) and
    /// `trainable` (% of parameters).
    #[serde(default)]
    pub paper: BTreeMap<String, BTreeMap<String, PaperRows>>,
    /// Where the published figures come from (shown under the table).
    #[serde(default)]
    pub paper_source: String,
}

/// Published figures of one table section: method -> metric -> value.
pub type PaperRows = BTreeMap<String, BTreeMap<String, f64>>;

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatasetSpec {
    pub name: String,
    /// An already prepared dataset.
    pub path: Option<String>,
    /// `fairrec data synth` flags: make a synthetic world first (the raw input of `prepare`).
    pub synth: Option<toml::Table>,
    /// `fairrec data prepare` flags.
    pub prepare: Option<toml::Table>,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSpec {
    pub name: String,
    /// A GGUF file or HF directory.
    pub path: Option<String>,
    /// `fairrec model init` flags: the built-in model, made for each dataset.
    pub init: Option<toml::Table>,
    /// `fairrec train --method full` flags: first fine-tune the model on each dataset's
    /// train split (original prompts) and use the result as the model of the cells (how
    /// the built-in model becomes a recommender before the fairness methods run).
    pub finetune: Option<toml::Table>,
    /// Model flags given to train and audit (`no_chat`, `answer_space`).
    #[serde(default)]
    pub flags: toml::Table,
    /// Where its cells run: `auto`, `cpu`, `cuda` or `cuda:N` [default: `experiment run
    /// --device`, else auto].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    /// Its base's precision: `auto`, `f32`, `bf16` or `f16` [default: `experiment run
    /// --dtype`, else auto].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dtype: Option<String>,
}

impl ModelSpec {
    /// What names the model's files (its built-in init and fine-tune): everything but
    /// where it runs.
    pub fn files_key(&self) -> serde_json::Value {
        let mut m = self.clone();
        (m.device, m.dtype) = (None, None);
        serde_json::json!(m)
    }
}

/// What a method name in an experiment means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A prompting baseline: audit only, with this template.
    Prompt(Template),
    /// Train with this method, then audit.
    Train(Method),
}

impl Kind {
    /// A method name, optionally with a variant label after `@` (`cl-moe@r2`): variants
    /// are separate rows whose flags differ through `[method_train."cl-moe@r2"]`.
    pub fn parse(full: &str) -> Result<Kind> {
        let name = full.split_once('@').map_or(full, |(m, _)| m);
        if let Ok(m) = name.parse::<Method>() {
            return Ok(Kind::Train(m));
        }
        match name.parse::<Template>() {
            Ok(t) => Ok(Kind::Prompt(t)),
            _ => bail!(
                "method `{full}`: expected a training method ({}) or a prompting baseline (llm-rec, cot, prompt-eng-1, prompt-eng-2, prompt-eng-3, ins-tuning; sequential: paper B's plain LLM)",
                Method::ALL.map(|m| m.name()).join(", ")
            ),
        }
    }

    /// The template the method is audited with on data of `protocol`: a prompting
    /// baseline's own; Ins-Tuning's; else the protocol's (LLM Rec for paper A's,
    /// the sequential prompt for paper B's).
    pub fn template(self, protocol: Protocol) -> Template {
        match self {
            Kind::Prompt(t) => t,
            Kind::Train(m) => m.def().template(protocol),
        }
    }
}

impl Spec {
    pub fn read(path: &Path) -> Result<Spec> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read experiment file {}", path.display()))?;
        Spec::parse(&text, &format!("experiment file {}", path.display()))
    }

    /// Parse and check an experiment file's text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Spec> {
        let spec: Spec = toml::from_str(text).with_context(|| origin.to_string())?;
        spec.check().with_context(|| origin.to_string())?;
        Ok(spec)
    }

    fn check(&self) -> Result<()> {
        for m in &self.methods {
            Kind::parse(m)?;
        }
        for (table, keys) in [
            ("method_train", &self.method_train),
            ("method_audit", &self.method_audit),
        ] {
            for k in keys.keys() {
                if !self.methods.contains(k) {
                    bail!("[{table}.{k}]: `{k}` is not in `methods`");
                }
            }
        }
        if self.datasets.is_empty() || self.models.is_empty() || self.methods.is_empty() {
            bail!("datasets, models and methods must not be empty");
        }
        if self.seeds.is_empty() || self.scenarios.is_empty() {
            bail!("seeds and scenarios must not be empty");
        }
        for d in &self.datasets {
            if d.path.is_some() == d.prepare.is_some() {
                bail!("dataset `{}`: give either `path` or `prepare`", d.name);
            }
        }
        for m in &self.models {
            if m.path.is_some() == m.init.is_some() {
                bail!("model `{}`: give either `path` or `init`", m.name);
            }
            m.placement_specs()?;
        }
        Ok(())
    }
}

/// Expand `${VAR}` and `${VAR:-default}` in `s`; a default may itself hold `${...}`
/// (`${FAIRREC_MODEL:-${FAIRREC_MODELS:-../shared/models}/m.gguf}`).
pub fn expand(s: &str) -> Result<String> {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find("${") {
        out.push_str(&rest[..i]);
        // The matching brace, counting nested `${`.
        let (mut depth, mut end) = (0usize, None);
        let body = &rest[i + 2..];
        let bytes = body.as_bytes();
        for (k, &c) in bytes.iter().enumerate() {
            if c == b'{' && k > 0 && bytes[k - 1] == b'$' {
                depth += 1;
            } else if c == b'}' {
                if depth == 0 {
                    end = Some(k);
                    break;
                }
                depth -= 1;
            }
        }
        let Some(j) = end else {
            bail!("`{s}`: unclosed ${{");
        };
        let inner = &body[..j];
        let (name, default) = match inner.split_once(":-") {
            Some((n, d)) => (n, Some(d)),
            None => (inner, None),
        };
        match (std::env::var(name).ok().filter(|v| !v.is_empty()), default) {
            (Some(v), _) => out.push_str(&v),
            (None, Some(d)) => out.push_str(&expand(d)?),
            (None, None) => bail!("`{s}`: environment variable {name} is not set"),
        }
        rest = &body[j + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// `expand` into a path.
pub fn path(s: &str) -> Result<PathBuf> {
    Ok(PathBuf::from(expand(s)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expand_handles_defaults_nested_defaults_and_errors() {
        let unset = "FAIRREC_TEST_SURELY_UNSET_VAR";
        assert_eq!(
            expand("a/${FAIRREC_TEST_SURELY_UNSET_VAR:-b}/c").unwrap(),
            "a/b/c"
        );
        assert_eq!(
            expand(&format!("${{{unset}:-${{{unset}2:-x}}/m.gguf}}")).unwrap(),
            "x/m.gguf"
        );
        let home = std::env::var("PATH").unwrap();
        assert_eq!(expand("${PATH:-${X:-y}}!").unwrap(), format!("{home}!"));
        assert!(expand(&format!("${{{unset}}}")).is_err());
        assert!(expand("${PATH").is_err());
    }

    #[test]
    fn method_variants_parse_as_their_method() {
        assert_eq!(
            Kind::parse("cl-moe@r2").unwrap(),
            Kind::Train(Method::ClMoe)
        );
        assert_eq!(
            Kind::parse("llm-rec").unwrap(),
            Kind::Prompt(Template::LlmRec)
        );
        assert!(Kind::parse("nope@r2")
            .unwrap_err()
            .to_string()
            .contains("nope@r2"));
    }
}
