//! Model flags shared by `score`, `audit` and `train`, and loading a model (with a trained
//! adapter, if given) ready to score.

use anyhow::{Context as _, Result};
use clap::Args;
use fairrec_lm::device::{DTypeSpec, DeviceSpec};
use fairrec_lm::load::{load, Loaded, Model};
use fairrec_lm::score::{AnswerSpace, PromptFormat};
use fairrec_lm::tuning::Tuning;
use std::path::{Path, PathBuf};

#[derive(Args, Debug, Clone)]
pub struct ModelArgs {
    /// A GGUF file, an HF model directory (a full fine-tune's `adapter/` directory too) or a
    /// Hugging Face id `org/name[@revision]` from the local HF cache. `audit` and `score`
    /// take a served model instead (`--endpoint`).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Fetch a `--model` id that is not in the Hugging Face cache (never done otherwise).
    #[arg(long)]
    pub download: bool,
    /// Feed `Input: ...\nOutput:` instead of the model's chat template.
    #[arg(long)]
    pub no_chat: bool,
    /// Answer tokens: auto (no space after a chat template, " Yes" after a raw prompt), leading or none.
    #[arg(long, default_value = "auto")]
    pub answer_space: String,
    /// Where to run: auto (the first CUDA device of a `--features cuda` build, else the CPU), cpu, cuda or cuda:N.
    #[arg(long, default_value = "auto")]
    pub device: DeviceSpec,
    /// Precision of the frozen base: auto (bf16 on a GPU that computes in it, else f32), f32, bf16 or f16; adapters, prompts and optimiser state stay f32.
    #[arg(long, default_value = "auto")]
    pub dtype: DTypeSpec,
}

impl ModelArgs {
    pub fn format(&self) -> PromptFormat {
        PromptFormat::of(!self.no_chat)
    }

    pub fn space(&self) -> Result<AnswerSpace> {
        Ok(self.answer_space.parse()?)
    }

    /// The `--model` path (required unless a served model is scored).
    pub fn path(&self) -> Result<&Path> {
        self.model.as_deref().ok_or_else(|| {
            anyhow::anyhow!(
                "--model FILE_OR_DIR is required (audit and score take --endpoint URL instead)"
            )
        })
    }

    /// Turn a Hugging Face id in `--model` into its snapshot directory in the cache (whose
    /// path, recorded in `run.json`, names the commit), fetching it with `--download`.
    pub fn resolve_hub(&mut self) -> Result<()> {
        let m = self
            .model
            .as_ref()
            .map(|m| m.to_string_lossy().into_owned());
        if let Some(hub) =
            fairrec_serve::hub::model(m.as_deref(), self.download).context("--model")?
        {
            self.model = Some(hub.path);
        }
        Ok(())
    }

    /// The scorer of `loaded` with these flags' prompt format and answer space.
    pub fn scorer<'a>(&self, loaded: &'a Loaded<Model>) -> Result<fairrec_lm::score::Scorer<'a>> {
        Ok(fairrec_lm::score::Scorer::new(
            &loaded.model,
            &loaded.tokenizer,
            self.format(),
            self.space()?,
        )?)
    }

    /// Load the model (a decoder or T5) on `--device` in `--dtype`.
    pub fn load(&self) -> Result<Loaded<Model>> {
        self.load_as(self.dtype)
    }

    /// As [`ModelArgs::load`] with the dtype `dtype` instead of `--dtype`.
    pub fn load_as(&self, dtype: DTypeSpec) -> Result<Loaded<Model>> {
        let path = self.path()?;
        let device = self.device.resolve()?;
        let dtype = dtype.resolve(&device);
        load(path, &device, dtype).with_context(|| format!("loading the model {}", path.display()))
    }
}

/// Load `m` and attach the PEFT adapter directory `adapter` (LoRA on decoder-only models;
/// prompt tuning, p-tuning and MoS on decoders and T5).
pub fn load_with_adapter(
    m: &ModelArgs,
    adapter: Option<&std::path::Path>,
) -> Result<(Loaded<Model>, Option<Tuning>)> {
    let Some(dir) = adapter else {
        return Ok((m.load()?, None));
    };
    let mut loaded = m.load()?;
    let tuning = fairrec_lm::peft::load(dir, &mut loaded.model, &loaded.tokenizer)
        .with_context(|| format!("loading the adapter {}", dir.display()))?;
    Ok((loaded, Some(tuning)))
}
