//! `--endpoint`: `audit` and `score` with a served model (an OpenAI-compatible server)
//! instead of a local `--model`.

use crate::model_args::ModelArgs;
use anyhow::{bail, Context as _, Result};
use clap::{Args, ValueEnum};
use fairrec_lm::chat::ChatTemplate;
use fairrec_lm::score::{AnswerSpace, PromptFormat};
use fairrec_serve::audit::Endpoint;
use fairrec_serve::client::{AnswerMode, Client};
use std::path::Path;
use std::time::Duration;

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Mode {
    /// P(Yes) from the answer token's log-probabilities.
    Logprobs,
    /// P(Yes) = the share of sampled answers that say yes (servers without log-probabilities).
    Sample,
}

/// Where the served model is and how to talk to it (`audit`, `score`, `audit-lists`).
#[derive(Args, Debug, Clone)]
pub struct ServerArgs {
    /// Score with a served model instead of --model: an OpenAI-compatible server's base URL
    /// (vLLM, TGI, llama.cpp's server, Ollama, `fairrec serve`, a hosted API), e.g.
    /// http://localhost:8000/v1.
    #[arg(long)]
    pub endpoint: Option<String>,
    /// The served model's name (as the server's /v1/models lists it) [default: the only
    /// model the server lists].
    #[arg(long, requires = "endpoint")]
    pub served_model: Option<String>,
    /// The environment variable that holds the API key (sent as a bearer token, never
    /// written anywhere).
    #[arg(long, requires = "endpoint")]
    pub api_key_env: Option<String>,
    /// The served model's tokenizer (an HF directory or a GGUF file): fairrec applies its
    /// chat template and sends the text to /v1/completions. Without it, chat prompts go to
    /// /v1/chat/completions and the server applies its own template.
    #[arg(long, requires = "endpoint")]
    pub tokenizer: Option<std::path::PathBuf>,
    /// Requests in flight.
    #[arg(long, default_value_t = 8)]
    pub concurrency: usize,
    /// Seconds before a request is abandoned (and retried).
    #[arg(long, default_value_t = 120.0)]
    pub timeout: f64,
    /// Retries of a request after a 429, 5xx, timeout or dropped connection.
    #[arg(long, default_value_t = 6)]
    pub retries: usize,
}

#[derive(Args, Debug, Clone)]
pub struct EndpointArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    /// How P(Yes) is read from the server.
    #[arg(long, value_enum, default_value = "logprobs")]
    pub answer_mode: Mode,
    /// Alternatives asked for at the answer token (an answer outside them is censored).
    #[arg(long, default_value_t = 20)]
    pub top_logprobs: usize,
    /// Answers sampled per prompt (--answer-mode sample).
    #[arg(long, default_value_t = 10)]
    pub samples: usize,
    /// Sampling temperature (--answer-mode sample).
    #[arg(long, default_value_t = 1.0)]
    pub temperature: f64,
}

/// A client for `e`'s server with `m`'s prompt format and answer space, caching responses
/// in `cache`, and the chat template fairrec applies itself (`--tokenizer`), if any.
pub fn connect(
    e: &EndpointArgs,
    m: &ModelArgs,
    seed: u64,
    cache: Option<&Path>,
) -> Result<(Client, Option<ChatTemplate>)> {
    if m.model.is_some() {
        bail!("--model and --endpoint: give one (a local model or a served one)");
    }
    let mode = match e.answer_mode {
        Mode::Logprobs => AnswerMode::Logprobs {
            top: e.top_logprobs,
        },
        Mode::Sample => AnswerMode::Sample {
            samples: e.samples,
            temperature: e.temperature,
        },
    };
    connect_server(
        &e.server,
        m.format() == PromptFormat::Chat,
        m.space()?,
        mode,
        seed,
        cache,
    )
}

/// A client for `s`'s server (see [`fairrec_serve::audit::connect`]).
pub fn connect_server(
    s: &ServerArgs,
    chat: bool,
    space: AnswerSpace,
    mode: AnswerMode,
    seed: u64,
    cache: Option<&Path>,
) -> Result<(Client, Option<ChatTemplate>)> {
    let Some(endpoint) = s.endpoint.clone() else {
        bail!("--endpoint URL is required");
    };
    let endpoint = Endpoint {
        endpoint,
        served_model: s.served_model.clone(),
        api_key_env: s.api_key_env.clone(),
        tokenizer: s.tokenizer.clone(),
        chat,
        space,
        mode,
        concurrency: s.concurrency,
        timeout: Duration::try_from_secs_f64(s.timeout)
            .ok()
            .filter(|t| !t.is_zero())
            .context("--timeout: a positive number of seconds")?,
        retries: s.retries,
        seed,
    };
    Ok(fairrec_serve::audit::connect(&endpoint, cache)?)
}
