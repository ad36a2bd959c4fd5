//! `fairrec serve`: an OpenAI-compatible HTTP server over fairrec's own engine (any
//! backbone and adapter `fairrec` loads; MoS excepted, whose prompt needs a sample's group
//! inputs).
//!
//! Routes: `GET /health` (`{"status", "model", "requests", "queued"}`: `requests` counts the
//! requests the model answered), `GET /v1/models`, `POST /v1/completions`,
//! `POST /v1/chat/completions`. One thread per connection reads, checks and tokenises its
//! request and queues it (bounded: a full queue answers 429 with `Retry-After`); one model thread
//! batches whatever is queued ([`engine`]) and answers. Bodies over `max_body` bytes get
//! 413; malformed JSON, wrong types and values out of range 400; an unknown model 404;
//! all with OpenAI's error body. On SIGTERM/SIGINT it stops taking connections, answers
//! every queued request, and returns.

pub mod engine;
mod http;
mod reply;

use crate::error::{Result, ServeError};
use crate::protocol::{
    ChatRequest, CompletionRequest, ErrorBody, ModelCard, ModelList, PromptInput, Sampling,
};
use engine::{Counters, Failure, Generation, Job, Work};
use fairrec_lm::chat::ChatTemplate;
use fairrec_lm::score::Scorer;
use http::Request;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::time::Duration;

/// How the server runs.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// Address to bind (`127.0.0.1` by default: loopback only).
    pub host: String,
    /// 0 = any free port (printed when ready).
    pub port: u16,
    /// The model's name in requests and `/v1/models`.
    pub name: String,
    /// Sequences per forward pass.
    pub batch: usize,
    /// Requests waiting for the model before 429.
    pub queue: usize,
    /// Largest request body in bytes (413 above).
    pub max_body: usize,
    /// Connections open at once (503 above); each has a thread that reads, checks and
    /// tokenises its request.
    pub max_connections: usize,
    /// Largest `n` (choices per prompt).
    pub max_n: usize,
}

/// What the HTTP threads share.
struct Ctx<'a> {
    scorer: &'a Scorer<'a>,
    template: Option<&'a ChatTemplate>,
    cfg: &'a ServeConfig,
    counters: &'a Counters,
    next_id: AtomicU64,
}

/// An HTTP failure before the model: status and message.
fn fail(status: u16, message: impl Into<String>) -> Failure {
    Failure {
        status,
        message: message.into(),
    }
}

/// The OpenAI error type of a status.
fn error_kind(status: u16) -> &'static str {
    match status {
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_exceeded",
        500..=599 => "server_error",
        _ => "invalid_request_error",
    }
}

fn respond(req: Request, status: u16, body: &impl serde::Serialize) {
    let json = serde_json::to_vec(body).unwrap_or_else(|_| b"{}".to_vec());
    req.respond(status, &json);
}

fn failure_body(f: &Failure) -> Vec<u8> {
    serde_json::to_vec(&ErrorBody::new(error_kind(f.status), &f.message)).unwrap_or_default()
}

fn respond_failure(req: Request, f: &Failure) {
    req.respond(f.status, &failure_body(f));
}

/// Serve `scorer`'s model (its prompt format and answer tokens are not used: clients send
/// texts) with `template` for chat requests, until `stop` is set. `ready` gets the bound
/// address. Returns the number of requests the model answered.
pub fn serve(
    scorer: &Scorer,
    template: Option<&ChatTemplate>,
    cfg: &ServeConfig,
    stop: &AtomicBool,
    ready: &mut dyn FnMut(SocketAddr),
) -> Result<u64> {
    let addr = format!("{}:{}", cfg.host, cfg.port);
    let bind = |e: std::io::Error| ServeError::Bind {
        addr: addr.clone(),
        message: e.to_string(),
    };
    let listener = std::net::TcpListener::bind(&addr).map_err(bind)?;
    listener.set_nonblocking(true).map_err(bind)?;
    ready(listener.local_addr().map_err(bind)?);
    let counters = Counters::default();
    let ctx = Ctx {
        scorer,
        template,
        cfg,
        counters: &counters,
        next_id: AtomicU64::new(0),
    };
    let open = std::sync::atomic::AtomicUsize::new(0);
    let (tx, rx) = sync_channel::<Job>(cfg.queue.max(1));
    std::thread::scope(|s| {
        let model = s.spawn(|| engine::run(scorer, rx, cfg.batch, cfg.queue.max(1), &counters));
        // Moved in, so that it closes (new connections are refused) while the requests in
        // flight drain.
        let listener = listener;
        while !stop.load(Ordering::SeqCst) {
            let stream = match listener.accept() {
                Ok((stream, _)) => stream,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                }
                Err(e) => {
                    tracing::warn!("accepting a connection: {e}");
                    continue;
                }
            };
            let _ = stream.set_nonblocking(false);
            if open.load(Ordering::SeqCst) >= cfg.max_connections {
                let busy = fail(503, "too many open connections; retry after a second");
                s.spawn(move || http::write_response(stream, 503, &failure_body(&busy)));
                continue;
            }
            open.fetch_add(1, Ordering::SeqCst);
            let (tx, ctx, open) = (tx.clone(), &ctx, &open);
            s.spawn(move || {
                match http::read_request(stream, cfg.max_body) {
                    Ok(req) => handle(req, ctx, &tx),
                    Err(Some((f, stream))) => {
                        http::write_response(stream, f.status, &failure_body(&f))
                    }
                    Err(None) => {}
                }
                open.fetch_sub(1, Ordering::SeqCst);
            });
        }
        drop(tx);
        drop(listener);
        tracing::info!("stopping: answering the requests in flight");
        let _ = model.join();
    });
    Ok(counters.answered.load(Ordering::SeqCst))
}

fn handle<'a>(req: Request, ctx: &'a Ctx<'a>, tx: &SyncSender<Job<'a>>) {
    let path = req.path.split('?').next().unwrap_or("").to_string();
    let get = req.method == "GET";
    let post = req.method == "POST";
    match path.as_str() {
        "/health" if get => respond(
            req,
            200,
            &serde_json::json!({
                "status": "ok",
                "model": ctx.cfg.name,
                "requests": ctx.counters.answered.load(Ordering::SeqCst),
                "queued": ctx.counters.queued.load(Ordering::SeqCst),
            }),
        ),
        "/v1/models" if get => respond(
            req,
            200,
            &ModelList {
                object: "list".into(),
                data: vec![ModelCard {
                    id: ctx.cfg.name.clone(),
                    object: "model".into(),
                    created: 0,
                    owned_by: "fairrec".into(),
                }],
            },
        ),
        "/v1/completions" | "/v1/chat/completions" if post => {
            let parsed = if path == "/v1/chat/completions" {
                chat_job(&req.body, ctx)
            } else {
                completion_job(&req.body, ctx)
            };
            match parsed {
                Ok((work, finish)) => enqueue(req, work, finish, ctx, tx),
                Err(f) => respond_failure(req, &f),
            }
        }
        "/health" | "/v1/models" | "/v1/completions" | "/v1/chat/completions" => {
            let m = req.method.clone();
            respond_failure(req, &fail(405, format!("{m} {path} is not allowed")))
        }
        _ => respond_failure(req, &fail(404, format!("no route {path}"))),
    }
}

/// Turns the model's generations into the response body.
type Finish<'a> =
    Box<dyn FnOnce(Vec<Generation>) -> fairrec_lm::Result<serde_json::Value> + Send + 'a>;

fn enqueue<'a>(
    req: Request,
    work: Work,
    finish: Finish<'a>,
    ctx: &'a Ctx<'a>,
    tx: &SyncSender<Job<'a>>,
) {
    let reply = Box::new(move |r: std::result::Result<Vec<Generation>, Failure>| {
        match r.and_then(|gens| {
            finish(gens).map_err(|e| fail(500, format!("formatting the response: {e}")))
        }) {
            Ok(body) => respond(req, 200, &body),
            Err(f) => respond_failure(req, &f),
        }
    });
    ctx.counters.queued.fetch_add(1, Ordering::SeqCst);
    match tx.try_send(Job { work, reply }) {
        Ok(()) => {}
        Err(TrySendError::Full(job)) | Err(TrySendError::Disconnected(job)) => {
            ctx.counters.queued.fetch_sub(1, Ordering::SeqCst);
            (job.reply)(Err(fail(
                429,
                "the server's queue is full; retry after a second",
            )));
        }
    }
}

fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> std::result::Result<T, Failure> {
    serde_json::from_slice(body).map_err(|e| fail(400, format!("invalid request body: {e}")))
}

fn check_model(ctx: &Ctx, model: &str) -> std::result::Result<(), Failure> {
    if model != ctx.cfg.name {
        return Err(fail(
            404,
            format!(
                "the model `{model}` does not exist; this server serves `{}`",
                ctx.cfg.name
            ),
        ));
    }
    Ok(())
}

/// The request's sampling settings, checked, as a [`Work`] without prompts.
fn sampling(
    ctx: &Ctx,
    s: &Sampling,
    max_tokens: usize,
    top: Option<usize>,
) -> std::result::Result<Work, Failure> {
    if s.stream == Some(true) {
        return Err(fail(400, "stream: streaming is not supported"));
    }
    let bad = |field: &str, why: &str| Err(fail(400, format!("{field}: {why}")));
    let temperature = s.temperature.unwrap_or(1.0);
    if !(0.0..=2.0).contains(&temperature) {
        return bad("temperature", "must be between 0 and 2");
    }
    let top_p = s.top_p.unwrap_or(1.0);
    if !(top_p > 0.0 && top_p <= 1.0) {
        return bad("top_p", "must be in (0, 1]");
    }
    let n = s.n.unwrap_or(1);
    if n == 0 || n > ctx.cfg.max_n {
        return bad("n", &format!("must be between 1 and {}", ctx.cfg.max_n));
    }
    if s.best_of.is_some_and(|b| b != n) {
        return bad("best_of", "is not supported (only best_of = n)");
    }
    if s.presence_penalty.unwrap_or(0.0) != 0.0 || s.frequency_penalty.unwrap_or(0.0) != 0.0 {
        return bad(
            "presence_penalty/frequency_penalty",
            "are not supported (only 0)",
        );
    }
    if s.logit_bias.as_ref().is_some_and(|b| !b.is_empty()) {
        return bad("logit_bias", "is not supported");
    }
    if ctx.scorer.backbone.decoder().is_none() && max_tokens > 1 {
        return bad(
            "max_tokens",
            "this model (T5) answers one token per request: max_tokens 0 or 1",
        );
    }
    Ok(Work {
        prompts: Vec::new(),
        max_tokens,
        temperature,
        top_p,
        n,
        seed: s.seed.unwrap_or(0),
        stop: s.stop.as_ref().map(|s| s.list()).unwrap_or_default(),
        // More alternatives than the vocabulary lists the whole vocabulary.
        top: top.map(|k| k.min(ctx.scorer.tok.vocab_size())),
        echo_logprobs: false,
    })
}

/// Token ids of `text`, checked against the model's context with `max_tokens` more.
fn encode(ctx: &Ctx, text: &str, max_tokens: usize) -> std::result::Result<Vec<u32>, Failure> {
    let ids = ctx
        .scorer
        .tok
        .encode(text)
        .map_err(|e| fail(400, format!("tokenising the prompt: {e}")))?;
    if ids.is_empty() {
        return Err(fail(400, "prompt: the prompt is empty"));
    }
    if let Some(max) = ctx.scorer.backbone.max_positions() {
        if ids.len() + max_tokens > max {
            return Err(fail(
                400,
                format!(
                    "this model's maximum context length is {max} tokens; the prompt has {} and max_tokens asks {max_tokens} more",
                    ids.len()
                ),
            ));
        }
    }
    Ok(ids)
}

fn next_id(ctx: &Ctx, head: &str) -> String {
    format!("{head}-{}", ctx.next_id.fetch_add(1, Ordering::SeqCst))
}

fn completion_job<'a>(
    body: &[u8],
    ctx: &'a Ctx<'a>,
) -> std::result::Result<(Work, Finish<'a>), Failure> {
    let r: CompletionRequest = parse(body)?;
    check_model(ctx, &r.model)?;
    let max_tokens = r.max_tokens.unwrap_or(16);
    let echo = r.echo.unwrap_or(false);
    let mut work = sampling(ctx, &r.sampling, max_tokens, r.logprobs)?;
    if echo && r.logprobs.is_some() {
        if ctx.scorer.backbone.decoder().is_none() {
            return Err(fail(400, "echo with logprobs needs a decoder-only model"));
        }
        work.echo_logprobs = true;
    }
    let texts: Vec<String> = match &r.prompt {
        PromptInput::Many(v) if v.is_empty() => return Err(fail(400, "prompt: the list is empty")),
        p => p.texts().into_iter().map(str::to_string).collect(),
    };
    for t in &texts {
        work.prompts.push(encode(ctx, t, max_tokens)?);
    }
    let (id, logprobs) = (next_id(ctx, "cmpl"), r.logprobs.is_some());
    let finish: Finish = Box::new(move |gens| {
        let body = reply::completion(
            ctx.scorer.tok,
            &ctx.cfg.name,
            id,
            &texts,
            echo,
            logprobs,
            gens,
        )?;
        Ok(serde_json::to_value(body).unwrap_or_default())
    });
    Ok((work, finish))
}

fn chat_job<'a>(body: &[u8], ctx: &'a Ctx<'a>) -> std::result::Result<(Work, Finish<'a>), Failure> {
    let r: ChatRequest = parse(body)?;
    check_model(ctx, &r.model)?;
    let Some(template) = ctx.template else {
        return Err(fail(
            400,
            "this model has no chat template; use /v1/completions",
        ));
    };
    if r.messages.is_empty() {
        return Err(fail(400, "messages: the list is empty"));
    }
    if let Some(m) = r
        .messages
        .iter()
        .find(|m| !matches!(m.role.as_str(), "system" | "user" | "assistant"))
    {
        return Err(fail(400, format!("messages: unknown role `{}`", m.role)));
    }
    let max_tokens = r.max_completion_tokens.or(r.max_tokens).unwrap_or(16);
    let logprobs = r.logprobs.unwrap_or(false);
    if r.top_logprobs.is_some() && !logprobs {
        return Err(fail(400, "top_logprobs needs logprobs: true"));
    }
    let top = logprobs.then(|| r.top_logprobs.unwrap_or(0));
    let mut work = sampling(ctx, &r.sampling, max_tokens, top)?;
    let messages: Vec<(&str, &str)> = r
        .messages
        .iter()
        .map(|m| (m.role.as_str(), m.content.as_str()))
        .collect();
    let text = template
        .render(&messages, true)
        .map_err(|e| fail(400, format!("messages: {e}")))?;
    work.prompts.push(encode(ctx, &text, max_tokens)?);
    let id = next_id(ctx, "chatcmpl");
    let finish: Finish = Box::new(move |gens| {
        let body = reply::chat(ctx.scorer.tok, &ctx.cfg.name, id, logprobs, gens)?;
        Ok(serde_json::to_value(body).unwrap_or_default())
    });
    Ok((work, finish))
}

/// A flag set by SIGTERM or SIGINT (the server's stop signal).
pub fn stop_on_signals() -> Result<std::sync::Arc<AtomicBool>> {
    let flag = std::sync::Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(sig, flag.clone()).map_err(|e| ServeError::Bind {
            addr: "signal handler".into(),
            message: e.to_string(),
        })?;
    }
    Ok(flag)
}
