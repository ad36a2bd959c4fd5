//! `fairrec serve`: an OpenAI-compatible server over fairrec's engine
//! ([`fairrec_serve::server`]).

use crate::model_args::{load_with_adapter, ModelArgs};
use anyhow::{bail, Result};
use clap::Args;
use fairrec_lm::chat::ChatTemplate;
use fairrec_lm::score::{AnswerSpace, PromptFormat, Scorer};
use fairrec_serve::server::{serve, stop_on_signals, ServeConfig};
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// A GGUF file or an HF model directory.
    #[arg(long)]
    pub model: PathBuf,
    /// An adapter directory (LoRA or prompt tuning) to apply.
    #[arg(long)]
    pub adapter: Option<PathBuf>,
    /// Address to listen on (loopback by default; 0.0.0.0 for every interface).
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Port (0: any free port; the address is printed when ready).
    #[arg(long, default_value_t = 8000)]
    pub port: u16,
    /// The model's name in requests [default: the model file's or directory's name].
    #[arg(long)]
    pub served_model_name: Option<String>,
    /// Sequences per forward pass.
    #[arg(long, default_value_t = 8)]
    pub batch_size: usize,
    /// Requests waiting for the model before the server answers 429.
    #[arg(long, default_value_t = 256)]
    pub queue: usize,
    /// Largest request body in bytes (413 above).
    #[arg(long, default_value_t = 4 << 20)]
    pub max_body_bytes: usize,
    /// Connections open at once (503 above).
    #[arg(long, default_value_t = 1024)]
    pub max_connections: usize,
    /// Where to run: auto, cpu, cuda or cuda:N (as `audit --device`).
    #[arg(long, default_value = "auto")]
    pub device: fairrec_lm::device::DeviceSpec,
    /// Precision of the weights: auto, f32, bf16 or f16 (as `audit --dtype`).
    #[arg(long, default_value = "auto")]
    pub dtype: fairrec_lm::device::DTypeSpec,
    /// Largest `n` (choices per prompt) a request may ask.
    #[arg(long, default_value_t = 64)]
    pub max_n: usize,
}

pub fn run(a: &ServeArgs) -> Result<()> {
    let mut margs = ModelArgs {
        model: Some(a.model.clone()),
        download: false,
        no_chat: false,
        answer_space: "auto".into(),
        device: a.device,
        dtype: a.dtype,
    };
    margs.resolve_hub()?;
    let (loaded, tuning) = load_with_adapter(&margs, a.adapter.as_deref())?;
    if let Some(fairrec_lm::tuning::Tuning::Mos(_)) = tuning {
        bail!("--adapter: a MoS adapter routes its soft prompt from a sample's stereotype-group inputs, which a served request does not carry");
    }
    let tok = &loaded.tokenizer;
    // Clients send texts: the format and answer tokens of the scorer are not used.
    let scorer = Scorer::new(&loaded.model, tok, PromptFormat::Raw, AnswerSpace::None)?;
    let template = tok
        .chat_template
        .as_deref()
        .map(ChatTemplate::new)
        .transpose()?;
    let name = a.served_model_name.clone().unwrap_or_else(|| {
        let stem = a.model.file_stem().or(a.model.file_name());
        stem.map_or("model".into(), |s| s.to_string_lossy().into_owned())
    });
    let cfg = ServeConfig {
        host: a.host.clone(),
        port: a.port,
        name: name.clone(),
        batch: a.batch_size.max(1),
        queue: a.queue.max(1),
        max_body: a.max_body_bytes,
        max_connections: a.max_connections.max(1),
        max_n: a.max_n.max(1),
    };
    let stop = stop_on_signals()?;
    let answered = serve(&scorer, template.as_ref(), &cfg, &stop, &mut |addr| {
        say!("serving `{name}` on http://{addr}/v1");
    })?;
    tracing::info!("stopped after answering {answered} requests");
    Ok(())
}
