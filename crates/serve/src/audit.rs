//! An audit's prompts scored by a served model: the same prompts, variants and
//! predictions as a local audit ([`fairrec_train::audit`]), each prompt sent as text.

use crate::client::{AnswerMode, Api, Client, ClientConfig, Traffic};
use crate::error::{Result, ServeError};
use fairrec_lm::chat::{render_prompt, AnswerSpace, ChatTemplate};
use fairrec_metrics::predictions::Prediction;
use fairrec_train::audit::{audit_predictions, audit_prompts, AuditPlan};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where and how a served model was asked.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Connection {
    pub endpoint: String,
    pub served_model: String,
    /// The URL the requests went to.
    pub url: String,
    pub api: Api,
    /// Whether fairrec applied a chat template (`--tokenizer`) before sending the text.
    pub local_template: bool,
    pub concurrency: usize,
    pub timeout_s: f64,
    pub retries: usize,
    pub seed: u64,
}

impl Connection {
    pub fn of(client: &Client, local_template: bool) -> Self {
        let c = &client.cfg;
        Connection {
            endpoint: c.endpoint.clone(),
            served_model: c.model.clone(),
            url: client.url().to_string(),
            api: c.api,
            local_template,
            concurrency: c.concurrency,
            timeout_s: c.timeout.as_secs_f64(),
            retries: c.retries,
            seed: c.seed,
        }
    }
}

/// `run.json`'s `served`: where and how the model was asked, and what it cost.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Served {
    #[serde(flatten)]
    pub connection: Connection,
    pub answer_mode: AnswerMode,
    /// The answer strings matched (Yes, No).
    pub answers: [String; 2],
    pub traffic: Traffic,
    /// Distinct prompt texts sent or taken from the cache.
    pub distinct_prompts: usize,
}

/// The text a prompt is sent as: through `/v1/completions`, the prompt rendered with
/// `template` (or the raw `Input: ...\nOutput:` form); through chat, the prompt itself (the
/// server applies its template).
pub fn wire_text(api: Api, template: Option<&ChatTemplate>, prompt: &str) -> Result<String> {
    Ok(match api {
        Api::Completions => render_prompt(template, prompt)?,
        Api::Chat => prompt.to_string(),
    })
}

/// Score every (sample, variant) prompt of `plan` with `client`; `on(done, total)` per
/// distinct prompt. Returns the predictions (sample-major, variant order), the traffic, and
/// the number of distinct prompt texts.
pub fn score_remote(
    client: &Client,
    template: Option<&ChatTemplate>,
    plan: &AuditPlan,
    on: &(dyn Fn(usize, usize) + Sync),
) -> Result<(Vec<Prediction>, Traffic, usize)> {
    let (prompts, jobs) = audit_prompts(plan)?;
    let texts = prompts
        .iter()
        .map(|p| wire_text(client.cfg.api, template, p))
        .collect::<Result<Vec<_>>>()?;
    let distinct = texts.iter().collect::<std::collections::HashSet<_>>().len();
    let (scores, traffic) = client.score(&texts, on)?;
    let p: Vec<f64> = scores.iter().map(|s| s.p_yes).collect();
    let censored: Vec<bool> = scores.iter().map(|s| s.censored).collect();
    Ok((
        audit_predictions(plan, &jobs, &p, Some(&censored)),
        traffic,
        distinct,
    ))
}

/// `Served` of a finished run.
pub fn served_record(
    client: &Client,
    local_template: bool,
    traffic: Traffic,
    distinct: usize,
) -> Served {
    let c = &client.cfg;
    Served {
        connection: Connection::of(client, local_template),
        answer_mode: c.mode,
        answers: [c.answers.0.clone(), c.answers.1.clone()],
        traffic,
        distinct_prompts: distinct,
    }
}

/// A served model as the command line names it.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub endpoint: String,
    /// The served model's name; `None`: the only model the server lists at `/v1/models`.
    pub served_model: Option<String>,
    /// The environment variable holding the API key.
    pub api_key_env: Option<String>,
    /// The model's tokenizer (HF directory or GGUF file) whose chat template fairrec
    /// applies itself.
    pub tokenizer: Option<PathBuf>,
    /// Prompts in the model's chat format (else the raw `Input: ...\nOutput:` form).
    pub chat: bool,
    pub space: AnswerSpace,
    pub mode: AnswerMode,
    pub concurrency: usize,
    pub timeout: Duration,
    pub retries: usize,
    pub seed: u64,
}

fn invalid(flag: &str, message: impl Into<String>) -> ServeError {
    ServeError::Invalid {
        flag: flag.into(),
        message: message.into(),
    }
}

/// A client for `e` (responses cached in `cache`, if given) and the chat template fairrec
/// applies itself, if any. Chat prompts go to `/v1/chat/completions` (the server's
/// template) unless a tokenizer with a template is given; raw prompts, and prompts rendered
/// with the tokenizer's template, go to `/v1/completions`. The answer strings follow the
/// format as the local scorer's do ([`AnswerSpace::answers`]).
pub fn connect(e: &Endpoint, cache: Option<&Path>) -> Result<(Client, Option<ChatTemplate>)> {
    if !(e.endpoint.starts_with("http://") || e.endpoint.starts_with("https://")) {
        return Err(invalid(
            "--endpoint",
            format!("`{}`: expected an http:// or https:// URL", e.endpoint),
        ));
    }
    let api_key = match &e.api_key_env {
        Some(var) => Some(std::env::var(var).map_err(|_| ServeError::ApiKey {
            var: var.clone(),
            message: "the environment variable is not set".into(),
        })?),
        None => None,
    };
    let tok = e
        .tokenizer
        .as_deref()
        .map(fairrec_lm::load::load_tokenizer)
        .transpose()?;
    let template = match (&tok, e.chat) {
        (Some(t), true) => t
            .chat_template
            .as_deref()
            .map(ChatTemplate::new)
            .transpose()?,
        _ => None,
    };
    let api = if e.chat && e.tokenizer.is_none() {
        Api::Chat
    } else {
        Api::Completions
    };
    match e.mode {
        AnswerMode::Logprobs { top } if top < 2 => {
            return Err(invalid("--top-logprobs", "at least 2"))
        }
        AnswerMode::Sample { samples: 0, .. } => return Err(invalid("--samples", "at least 1")),
        _ => {}
    }
    if e.timeout.is_zero() {
        return Err(invalid("--timeout", "a positive number of seconds"));
    }
    let (yes, no) = e.space.answers(api == Api::Chat || template.is_some());
    // With the tokenizer, the answers are its first tokens of "Yes" and "No", as the local
    // scorer reads them; without it, the whole strings (one token in most vocabularies).
    let (yes, no) = match &tok {
        Some(t) => (first_token_text(t, yes)?, first_token_text(t, no)?),
        None => (yes.to_string(), no.to_string()),
    };
    if yes == no {
        return Err(invalid(
            "--tokenizer",
            format!("the answers \"Yes\" and \"No\" start with the same token `{yes}`"),
        ));
    }
    let cfg = ClientConfig {
        endpoint: e.endpoint.clone(),
        model: match &e.served_model {
            Some(m) => m.clone(),
            None => only_model(&e.endpoint, api_key.as_deref(), e.timeout)?,
        },
        api_key,
        api,
        mode: e.mode,
        answers: (yes, no),
        concurrency: e.concurrency.max(1),
        timeout: e.timeout,
        retries: e.retries,
        seed: e.seed,
    };
    Ok((Client::new(cfg, cache)?, template))
}

/// The text of `text`'s first token.
fn first_token_text(tok: &fairrec_lm::tokenizer::Tok, text: &str) -> Result<String> {
    let ids = tok.encode(text)?;
    let first = ids
        .first()
        .ok_or_else(|| invalid("--tokenizer", format!("`{text}` encodes to no token")))?;
    Ok(tok.decode(&[*first])?)
}

/// The one model `endpoint`'s `/v1/models` lists (an error naming them when there are
/// several, or the failure when the list cannot be read).
fn only_model(endpoint: &str, api_key: Option<&str>, timeout: Duration) -> Result<String> {
    let url = format!("{}/models", crate::client::base(endpoint));
    let mut rq = ureq::AgentBuilder::new().timeout(timeout).build().get(&url);
    if let Some(k) = api_key {
        rq = rq.set("Authorization", &format!("Bearer {k}"));
    }
    let text = match rq.call() {
        Ok(r) => r.into_string().map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    }
    .map_err(|e| {
        invalid(
            "--served-model",
            format!("not given, and {url} cannot be read ({e})"),
        )
    })?;
    let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
        invalid(
            "--served-model",
            format!("not given, and {url} is not a model list ({e})"),
        )
    })?;
    let ids: Vec<String> = v["data"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|m| m["id"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    match ids.as_slice() {
        [one] => Ok(one.clone()),
        _ => Err(invalid(
            "--served-model",
            format!(
                "not given, and {url} lists {} models ({}); name one",
                ids.len(),
                ids.join(", ")
            ),
        )),
    }
}
