//! `fairrec model init`: the built-in tiny model for a prepared dataset (a tokenizer
//! trained on its prompts, random weights), written as an HF directory.

use anyhow::Result;
use clap::{Args, Subcommand};
use fairrec_core::Variant;
use fairrec_data::pipeline::{read_manifest, read_split};
use fairrec_data::prompt::{render, Template};
use std::path::PathBuf;

#[derive(Subcommand, Debug)]
pub enum ModelCommand {
    /// Write the built-in tiny model for a prepared dataset.
    Init(InitArgs),
}

#[derive(Args, Debug)]
pub struct InitArgs {
    /// The prepared dataset whose prompts train the tokenizer.
    #[arg(long)]
    pub data: PathBuf,
    /// The model directory to write.
    #[arg(long)]
    pub out: PathBuf,
    /// Prompt template [default: llm-rec for cl-moe, sequential for mos].
    #[arg(long)]
    pub template: Option<Template>,
    /// Largest vocabulary (256 bytes + 3 special tokens + merges).
    #[arg(long, default_value_t = 2000)]
    pub vocab_size: usize,
    #[arg(long, default_value_t = 128)]
    pub hidden: usize,
    #[arg(long, default_value_t = 4)]
    pub layers: usize,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Replace a model already in --out (a directory holding anything else is never replaced).
    #[arg(long)]
    pub force: bool,
}

pub fn run(c: ModelCommand) -> Result<()> {
    let ModelCommand::Init(a) = c;
    let _lock = fairrec_core::fs::RunLock::acquire(&a.out, "fairrec model init")?;
    // The directory is replaced whole (old model kept until the new one is in place).
    fairrec_core::fs::claim_output(&a.out, fairrec_lm::save::OUTPUTS, a.force)?;
    let manifest = read_manifest(&a.data)?;
    let template = a
        .template
        .unwrap_or(Template::default_for(manifest.protocol));
    let scenario = manifest.attributes();
    let mut texts = vec!["Yes".to_string(), "No".to_string()];
    for split in ["train", "valid", "test"] {
        for s in read_split(&a.data, split)? {
            for v in [Variant::Original, Variant::Neutral] {
                texts.push(render(template, &s, &v, &scenario)?);
            }
        }
    }
    let cfg = fairrec_lm::builtin::write(&a.out, &texts, a.vocab_size, a.hidden, a.layers, a.seed)?;
    say!(
        "built-in model: {} parameters, vocabulary {} (tokenizer trained on {} prompts) -> {}",
        cfg.parameters(),
        cfg.vocab_size,
        texts.len() - 2,
        a.out.display()
    );
    Ok(())
}
