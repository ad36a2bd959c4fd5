//! P(Yes) of prompts from an OpenAI-compatible server.
//!
//! **Log-probabilities** (the default): one request per distinct prompt for one token
//! (`max_tokens: 1`, `temperature: 0`) with the top `k` alternatives of that token
//! (`/v1/completions`' `logprobs: k`, or chat's `logprobs: true, top_logprobs: k`).
//! P(Yes) = softmax over the log-probabilities of the two answer strings ("Yes"/"No", or
//! " Yes"/" No" after a raw prompt; [`fairrec_lm::chat::AnswerSpace`]), matched exactly as
//! the server writes the tokens: the same two-way softmax the local scorer takes over the
//! two logits. When an answer is not among the `k` listed, its log-probability is at most
//! the `k`-th's: P(Yes) is computed with that bound (an upper bound of P(Yes) when "Yes" is
//! missing, a lower one when "No" is), and the prediction is flagged censored (ours).
//!
//! **Sampling** (`AnswerMode::Sample`, for APIs without log-probabilities): `n` answers at
//! the given temperature; P(Yes) = the share of answers starting with "yes" among those
//! starting with "yes" or "no" (case and leading spaces ignored); censored, at 0.5, when
//! none does (ours).

mod http;

use crate::error::{Result, ServeError};
pub use fairrec_core::cache::{self, Cache};
use http::Http;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// Which endpoint takes the prompts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Api {
    /// `/v1/completions` with the prompt text as fed to the model.
    Completions,
    /// `/v1/chat/completions` with the prompt as the user message (the server's template).
    Chat,
}

/// How P(Yes) is read.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case", tag = "mode")]
pub enum AnswerMode {
    /// From the answer token's top-`top` log-probabilities.
    Logprobs { top: usize },
    /// From the share of `samples` sampled answers.
    Sample { samples: usize, temperature: f64 },
}

/// Where and how to ask.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Base URL (`http://host:8000` or `http://host:8000/v1`).
    pub endpoint: String,
    /// The served model's name.
    pub model: String,
    pub api_key: Option<String>,
    pub api: Api,
    pub mode: AnswerMode,
    /// The answer strings (Yes, No) as the model writes them.
    pub answers: (String, String),
    /// Requests in flight.
    pub concurrency: usize,
    /// Per-request timeout.
    pub timeout: Duration,
    /// Retries per request.
    pub retries: usize,
    /// Sent as `seed` (servers that honour it sample reproducibly).
    pub seed: u64,
}

/// P(Yes) of one prompt.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RemoteScore {
    pub p_yes: f64,
    /// An answer was missing from the listed alternatives (or no sampled answer was yes or
    /// no): `p_yes` is a bound.
    pub censored: bool,
}

/// What the scoring cost.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Traffic {
    /// Requests answered by the server in this run.
    pub requests_sent: u64,
    /// Answers taken from the response cache.
    pub cached: u64,
    /// Retries made.
    pub retries: u64,
    /// Tokens in the used responses' `usage` (cached ones included).
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    /// Censored predictions among the distinct prompts.
    pub censored: u64,
}

/// Scores prompts against one served model.
pub struct Client {
    pub cfg: ClientConfig,
    url: String,
    http: Http,
    cache: Cache,
}

/// The `/v1` base of `endpoint`.
pub fn base(endpoint: &str) -> String {
    let e = endpoint.trim_end_matches('/');
    if e.ends_with("/v1") {
        e.to_string()
    } else {
        format!("{e}/v1")
    }
}

impl Client {
    /// A client whose responses are cached in the file `cache` (see [`cache`]), or not kept.
    pub fn new(cfg: ClientConfig, cache: Option<&Path>) -> Result<Self> {
        let path = match cfg.api {
            Api::Completions => "completions",
            Api::Chat => "chat/completions",
        };
        let url = format!("{}/{path}", base(&cfg.endpoint));
        let http = Http::new(
            cfg.api_key.clone(),
            cfg.timeout,
            cfg.retries,
            cfg.concurrency,
        );
        Ok(Client {
            url,
            http,
            cache: match cache {
                Some(p) => Cache::open(p)?,
                None => Cache::none(),
            },
            cfg,
        })
    }

    /// The URL the prompts go to.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The request body for `text` (keys sorted: the same text gives the same body).
    pub fn body(&self, text: &str) -> String {
        let c = &self.cfg;
        let mut b = serde_json::json!({ "model": c.model, "seed": c.seed });
        match c.api {
            Api::Completions => b["prompt"] = text.into(),
            Api::Chat => b["messages"] = serde_json::json!([{"role": "user", "content": text}]),
        }
        match (c.mode, c.api) {
            (AnswerMode::Logprobs { top }, api) => {
                b["max_tokens"] = 1.into();
                b["temperature"] = 0.into();
                if api == Api::Completions {
                    b["logprobs"] = top.into();
                } else {
                    b["logprobs"] = true.into();
                    b["top_logprobs"] = top.into();
                }
            }
            (
                AnswerMode::Sample {
                    samples,
                    temperature,
                },
                _,
            ) => {
                b["max_tokens"] = 3.into();
                b["n"] = samples.into();
                b["temperature"] = temperature.into();
            }
        }
        b.to_string()
    }

    /// Send `body` (or take the cached response) and read it with `read`: what it read, the
    /// response, and whether it was cached. An unreadable response is not cached.
    fn ask<T>(
        &self,
        body: &str,
        read: &dyn Fn(&serde_json::Value) -> Result<T>,
    ) -> Result<(T, serde_json::Value, bool)> {
        let key = cache::key(&self.url, body);
        if let Some(v) = self.cache.get(&key) {
            return Ok((read(v)?, v.clone(), true));
        }
        let v = self.http.post(&self.url, body)?;
        let out = read(&v)?;
        self.cache.put(&key, &v)?;
        Ok((out, v, false))
    }

    /// P(Yes) from a response.
    fn read(&self, v: &serde_json::Value) -> Result<RemoteScore> {
        let (yes, no) = (&self.cfg.answers.0, &self.cfg.answers.1);
        match self.cfg.mode {
            AnswerMode::Logprobs { .. } => {
                let top = first_token_logprobs(v).ok_or_else(|| ServeError::Response {
                    url: self.url.clone(),
                    message: format!(
                        "the response has no log-probabilities for the first answer token, so P(Yes) cannot be read; use --answer-mode sample --samples N for a server without them (response: {})",
                        cut(v)
                    ),
                })?;
                Ok(from_logprobs(&top, yes, no))
            }
            AnswerMode::Sample { .. } => {
                let texts = choice_texts(v).ok_or_else(|| ServeError::Response {
                    url: self.url.clone(),
                    message: format!("the response has no choices (response: {})", cut(v)),
                })?;
                Ok(from_samples(&texts))
            }
        }
    }

    /// P(Yes) of every text (each distinct text asked once, `concurrency` at a time);
    /// `on(done, total)` after each distinct text. The first text goes alone: a server whose
    /// answers cannot give P(Yes) fails the run at once, with what to do.
    pub fn score(
        &self,
        texts: &[String],
        on: &(dyn Fn(usize, usize) + Sync),
    ) -> Result<(Vec<RemoteScore>, Traffic)> {
        let bodies: Vec<String> = texts.iter().map(|t| self.body(t)).collect();
        let (scores, mut traffic, distinct) = self.send_all(&bodies, &|v| self.read(v), on)?;
        traffic.censored = distinct.iter().filter(|s| s.censored).count() as u64;
        Ok((scores, traffic))
    }

    /// Send every request body (each distinct body once, `concurrency` at a time, the first
    /// alone so that an unusable server fails at once) and read each response with `read`.
    /// Returns what was read per body, the traffic, and what was read per distinct body.
    pub fn send_all<T: Clone + Send>(
        &self,
        bodies: &[String],
        read: &(dyn Fn(&serde_json::Value) -> Result<T> + Sync),
        on: &(dyn Fn(usize, usize) + Sync),
    ) -> Result<(Vec<T>, Traffic, Vec<T>)> {
        let mut index = std::collections::HashMap::new();
        let mut distinct: Vec<&str> = Vec::new();
        let slot: Vec<usize> = bodies
            .iter()
            .map(|t| {
                *index.entry(t.as_str()).or_insert_with(|| {
                    distinct.push(t);
                    distinct.len() - 1
                })
            })
            .collect();
        let results: Mutex<Vec<Option<T>>> = Mutex::new(vec![None; distinct.len()]);
        let traffic = Mutex::new(Traffic::default());
        let error: Mutex<Option<ServeError>> = Mutex::new(None);
        let (next, done, stop) = (
            AtomicUsize::new(0),
            AtomicUsize::new(0),
            AtomicBool::new(false),
        );
        // Send the next distinct body; false when none is left or a request failed.
        let work_one = || {
            let i = next.fetch_add(1, Ordering::SeqCst);
            if i >= distinct.len() || stop.load(Ordering::SeqCst) {
                return false;
            }
            match self.ask(distinct[i], read) {
                Ok((out, v, cached)) => {
                    let usage: crate::protocol::Usage =
                        serde_json::from_value(v["usage"].clone()).unwrap_or_default();
                    let mut t = traffic.lock().unwrap_or_else(|p| p.into_inner());
                    if cached {
                        t.cached += 1;
                    } else {
                        t.requests_sent += 1;
                    }
                    t.prompt_tokens += usage.prompt_tokens;
                    t.completion_tokens += usage.completion_tokens;
                    drop(t);
                    results.lock().unwrap_or_else(|p| p.into_inner())[i] = Some(out);
                    on(done.fetch_add(1, Ordering::SeqCst) + 1, distinct.len());
                    true
                }
                Err(e) => {
                    stop.store(true, Ordering::SeqCst);
                    error
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .get_or_insert(e);
                    false
                }
            }
        };
        let work = || while work_one() {};
        work_one();
        std::thread::scope(|s| {
            for _ in 0..self.cfg.concurrency.max(1) {
                s.spawn(work);
            }
        });
        if let Some(e) = error.into_inner().unwrap_or_else(|p| p.into_inner()) {
            return Err(e);
        }
        let results: Vec<T> = results
            .into_inner()
            .unwrap_or_else(|p| p.into_inner())
            .into_iter()
            .map(|r| r.expect("every distinct body was sent"))
            .collect();
        let per_body = slot.iter().map(|&i| results[i].clone()).collect();
        let mut traffic = traffic.into_inner().unwrap_or_else(|p| p.into_inner());
        traffic.retries = self.http.retried.load(Ordering::SeqCst);
        Ok((per_body, traffic, results))
    }
}

/// The start of a response, for error messages.
fn cut(v: &serde_json::Value) -> String {
    v.to_string().chars().take(300).collect()
}

/// The first generated token's listed alternatives (and the token itself) as
/// (token, log-probability), from a completions or a chat response.
pub fn first_token_logprobs(v: &serde_json::Value) -> Option<Vec<(String, f64)>> {
    let lp = &v["choices"][0]["logprobs"];
    let mut out = Vec::new();
    if let Some(content) = lp["content"].as_array() {
        let first = content.first()?;
        for alt in first["top_logprobs"].as_array()? {
            out.push((alt["token"].as_str()?.to_string(), alt["logprob"].as_f64()?));
        }
        out.push((
            first["token"].as_str()?.to_string(),
            first["logprob"].as_f64()?,
        ));
    } else {
        for (t, l) in lp["top_logprobs"].as_array()?.first()?.as_object()? {
            out.push((t.clone(), l.as_f64()?));
        }
        let token = lp["tokens"][0].as_str()?;
        out.push((token.to_string(), lp["token_logprobs"][0].as_f64()?));
    }
    // A list with the chosen token alone says nothing of the other answer.
    (out.len() > 1).then_some(out)
}

/// P(Yes) from listed (token, log-probability): see the module's doc.
pub fn from_logprobs(top: &[(String, f64)], yes: &str, no: &str) -> RemoteScore {
    let find = |s: &str| {
        top.iter()
            .filter(|(t, _)| t == s)
            .map(|x| x.1)
            .reduce(f64::max)
    };
    let floor = top.iter().map(|x| x.1).fold(f64::INFINITY, f64::min);
    let (ly, ln) = (find(yes), find(no));
    let censored = ly.is_none() || ln.is_none();
    let (ly, ln) = (ly.unwrap_or(floor), ln.unwrap_or(floor));
    RemoteScore {
        p_yes: 1.0 / (1.0 + (ln - ly).exp()),
        censored,
    }
}

/// Every choice's text (completions' `text`, chat's `message.content`).
pub fn choice_texts(v: &serde_json::Value) -> Option<Vec<String>> {
    let choices = v["choices"].as_array()?;
    choices
        .iter()
        .map(|c| {
            c["text"]
                .as_str()
                .or_else(|| c["message"]["content"].as_str())
                .map(str::to_string)
        })
        .collect()
}

/// P(Yes) as the share of yes among the yes/no answers.
pub fn from_samples(texts: &[String]) -> RemoteScore {
    let (mut yes, mut no) = (0usize, 0usize);
    for t in texts {
        let t = t.trim_start().to_lowercase();
        if t.starts_with("yes") {
            yes += 1;
        } else if t.starts_with("no") {
            no += 1;
        }
    }
    if yes + no == 0 {
        return RemoteScore {
            p_yes: 0.5,
            censored: true,
        };
    }
    RemoteScore {
        p_yes: yes as f64 / (yes + no) as f64,
        censored: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn top(xs: &[(&str, f64)]) -> Vec<(String, f64)> {
        xs.iter().map(|(t, l)| (t.to_string(), *l)).collect()
    }

    #[test]
    fn p_yes_is_the_two_way_softmax_and_a_missing_answer_is_bounded() {
        let both = from_logprobs(
            &top(&[("Yes", -0.5), ("No", -1.5), (" Yes", -3.0)]),
            "Yes",
            "No",
        );
        assert!(!both.censored);
        assert!((both.p_yes - 1.0 / (1.0 + (-1.0f64).exp())).abs() < 1e-12);
        // " Yes" is another token than "Yes".
        let spaced = from_logprobs(
            &top(&[("Yes", -0.5), ("No", -1.5), (" Yes", -3.0)]),
            " Yes",
            " No",
        );
        assert!(spaced.censored);
        // "No" is missing: its log-probability is at most the floor (-3), so P(Yes) >= the bound.
        let no_missing = from_logprobs(&top(&[("Yes", -0.5), ("x", -3.0)]), "Yes", "No");
        assert!(no_missing.censored);
        assert!((no_missing.p_yes - 1.0 / (1.0 + (-2.5f64).exp())).abs() < 1e-12);
        let neither = from_logprobs(&top(&[("a", -0.1), ("b", -2.0)]), "Yes", "No");
        assert_eq!(
            neither,
            RemoteScore {
                p_yes: 0.5,
                censored: true
            }
        );
    }

    #[test]
    fn both_response_shapes_give_the_first_tokens_alternatives() {
        let completion = serde_json::json!({"choices": [{"text": "Yes", "logprobs": {
            "tokens": ["Yes"], "token_logprobs": [-0.2],
            "top_logprobs": [{"Yes": -0.2, "No": -1.8}], "text_offset": [0]}}]});
        let chat = serde_json::json!({"choices": [{"message": {"role": "assistant", "content": "No"},
            "logprobs": {"content": [{"token": "No", "logprob": -0.3,
            "top_logprobs": [{"token": "No", "logprob": -0.3}, {"token": "Yes", "logprob": -1.4}]}]}}]});
        let a = from_logprobs(&first_token_logprobs(&completion).unwrap(), "Yes", "No");
        let b = from_logprobs(&first_token_logprobs(&chat).unwrap(), "Yes", "No");
        assert!((a.p_yes - 1.0 / (1.0 + (-1.6f64).exp())).abs() < 1e-12);
        assert!((b.p_yes - 1.0 / (1.0 + (1.1f64).exp())).abs() < 1e-12);
        let none = serde_json::json!({"choices": [{"text": "Yes", "logprobs": null}]});
        assert!(first_token_logprobs(&none).is_none());
    }

    #[test]
    fn sampled_answers_give_the_share_of_yes() {
        let t = |xs: &[&str]| xs.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            from_samples(&t(&[" Yes", "no.", "YES", "maybe"])).p_yes,
            2.0 / 3.0
        );
        assert!(from_samples(&t(&["maybe", ""])).censored);
    }
}
