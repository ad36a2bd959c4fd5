//! POSTing JSON with retries: a 429, a 408, a 5xx, a connection error, a timeout or an
//! unreadable body is retried with exponential backoff and jitter (honouring
//! `Retry-After`); any other 4xx stops at once with the server's message. The API key
//! travels in the `Authorization` header only.

use crate::error::{Result, ServeError};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

pub struct Http {
    agent: ureq::Agent,
    api_key: Option<String>,
    /// Retries after the first attempt.
    pub retries: usize,
    /// The first backoff (doubled at each retry, at most 30 s).
    pub backoff: Duration,
    /// Retries made, over all requests.
    pub retried: AtomicU64,
}

/// The error message of an OpenAI error body, or the body itself (cut).
fn message(body: &str) -> String {
    serde_json::from_str::<crate::protocol::ErrorBody>(body)
        .map(|e| e.error.message)
        .unwrap_or_else(|_| body.chars().take(300).collect())
}

impl Http {
    pub fn new(api_key: Option<String>, timeout: Duration, retries: usize, pool: usize) -> Self {
        let agent = ureq::AgentBuilder::new()
            .timeout(timeout)
            .timeout_connect(timeout.min(Duration::from_secs(30)))
            .max_idle_connections_per_host(pool.max(1))
            .build();
        Http {
            agent,
            api_key,
            retries,
            backoff: Duration::from_millis(500),
            retried: AtomicU64::new(0),
        }
    }

    /// Send one attempt: the parsed body, or (retryable?, message, Retry-After seconds).
    fn attempt(
        &self,
        url: &str,
        body: &str,
    ) -> std::result::Result<serde_json::Value, (bool, u16, String, Option<f64>)> {
        let mut rq = self.agent.post(url).set("Content-Type", "application/json");
        if let Some(k) = &self.api_key {
            rq = rq.set("Authorization", &format!("Bearer {k}"));
        }
        match rq.send_string(body) {
            Ok(resp) => {
                let text = resp
                    .into_string()
                    .map_err(|e| (true, 200, format!("reading the response: {e}"), None))?;
                serde_json::from_str(&text)
                    .map_err(|e| (true, 200, format!("unreadable response ({e})"), None))
            }
            Err(ureq::Error::Status(code, resp)) => {
                let after = resp
                    .header("Retry-After")
                    .and_then(|v| v.trim().parse::<f64>().ok());
                let text = resp.into_string().unwrap_or_default();
                let retry = code == 408 || code == 429 || code >= 500;
                Err((
                    retry,
                    code,
                    format!("HTTP {code}: {}", message(&text)),
                    after,
                ))
            }
            Err(ureq::Error::Transport(t)) => Err((true, 0, t.to_string(), None)),
        }
    }

    /// POST `body` (JSON text) to `url` and parse the answer, retrying what may pass.
    pub fn post(&self, url: &str, body: &str) -> Result<serde_json::Value> {
        let mut jitter = fairrec_core::Rng::new(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64),
        );
        let mut last = String::new();
        for attempt in 0..=self.retries {
            match self.attempt(url, body) {
                Ok(v) => return Ok(v),
                Err((false, status, message, _)) => {
                    return Err(ServeError::Refused {
                        url: url.into(),
                        status,
                        message,
                    })
                }
                Err((true, _, message, after)) => {
                    tracing::debug!("{url}: attempt {} failed: {message}", attempt + 1);
                    last = message;
                    if attempt == self.retries {
                        break;
                    }
                    let backoff = self.backoff.as_secs_f64() * 2f64.powi(attempt as i32);
                    let wait = match after {
                        Some(s) => s.clamp(0.0, 120.0),
                        None => backoff.min(30.0) * (0.5 + 0.5 * jitter.f64()),
                    };
                    self.retried.fetch_add(1, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_secs_f64(wait));
                }
            }
        }
        Err(ServeError::GaveUp {
            url: url.into(),
            attempts: self.retries + 1,
            message: last,
        })
    }
}
