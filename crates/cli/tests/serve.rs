//! Served models, on loopback only: `fairrec audit --endpoint` against `fairrec serve` on
//! the built-in tiny model (equal to the direct audit; a killed audit resends nothing
//! answered), against a scripted fake server (429, 500, a hang, a cut body, then answers;
//! no log-probabilities), and malformed requests to `fairrec serve`.

mod common;
use common::*;
use std::io::{BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A `fairrec serve` child on a free port.
struct Served {
    child: Child,
    addr: String,
}

impl Served {
    fn start(args: &[&str]) -> Served {
        let (child, addr) = start_server(args);
        Served { child, addr }
    }

    fn url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// Requests the model answered (`/health`).
    fn requests(&self) -> u64 {
        let (status, v) = request(&self.addr, "GET", "/health", "");
        assert_eq!(status, 200);
        v["requests"].as_u64().unwrap()
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Send raw bytes, read the whole answer: (status, body).
fn raw(addr: &str, bytes: &[u8]) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    s.write_all(bytes).unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status in `{text}`"));
    let body = text.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
    (status, body)
}

fn request(addr: &str, method: &str, path: &str, body: &str) -> (u16, serde_json::Value) {
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let (status, text) = raw(addr, &[head.as_bytes(), body.as_bytes()].concat());
    let v = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: `{text}`"));
    (status, v)
}

fn predictions(dir: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(dir.join("predictions.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// `audit` of `data` through `url` (model `name`), `--bootstrap 20`, then `extra`.
fn served_audit(data: &Path, url: &str, name: &str, extra: &[&str]) -> Vec<String> {
    let mut a: Vec<String> = [
        "audit",
        "--data",
        p(data),
        "--bootstrap",
        "20",
        "--endpoint",
        url,
        "--served-model",
        name,
    ]
    .map(String::from)
    .to_vec();
    a.extend(extra.iter().map(|s| s.to_string()));
    a
}

/// A prepared world and the built-in model for it.
fn world(dir: &Path, users: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let data = small_dataset(dir, users);
    let model = dir.join("model");
    ok(&["model", "init", "--data", p(&data), "--out", p(&model)]);
    (data, model)
}

#[test]
fn a_served_audit_equals_the_direct_one_in_every_prompt_route() {
    let dir = tempfile::tempdir().unwrap();
    let (data, model) = world(dir.path(), "30");
    let srv = Served::start(&["--model", p(&model), "--served-model-name", "tiny"]);
    let base = ["audit", "--data", p(&data), "--bootstrap", "20"];
    // (prompt format flags, served-only flags, the endpoint the prompts must go to)
    let routes: [(&[&str], &[&str], &str); 3] = [
        (&[], &["--tokenizer", p(&model)], "completions"),
        (&[], &[], "chat/completions"),
        (
            &["--no-chat", "--answer-space", "none"],
            &["--tokenizer", p(&model)],
            "completions",
        ),
    ];
    for (i, (format, served, route)) in routes.iter().enumerate() {
        let (d, s) = (
            dir.path().join(format!("d{i}")),
            dir.path().join(format!("s{i}")),
        );
        let mut a = base.to_vec();
        a.extend_from_slice(format);
        let mut direct = a.clone();
        direct.extend(["--model", p(&model), "--out", p(&d)]);
        ok(&direct);
        let url = srv.url();
        let mut remote = a.clone();
        remote.extend_from_slice(served);
        remote.extend([
            "--endpoint",
            &url,
            "--served-model",
            "tiny",
            "--top-logprobs",
            "5000",
        ]);
        remote.extend(["--out", p(&s)]);
        ok(&remote);
        let (pd, ps) = (predictions(&d), predictions(&s));
        assert_eq!(pd.len(), ps.len());
        for (x, y) in pd.iter().zip(&ps) {
            assert_eq!(
                (&x["sample_id"], &x["variant"]),
                (&y["sample_id"], &y["variant"])
            );
            let diff = (x["p_yes"].as_f64().unwrap() - y["p_yes"].as_f64().unwrap()).abs();
            assert!(diff <= 1e-5, "route {route}: P(Yes) differs by {diff}");
            assert!(y.get("censored").is_none(), "route {route}: censored");
        }
        let (md, ms) = (json(&d.join("metrics.json")), json(&s.join("metrics.json")));
        for set in md["fairness"].as_object().unwrap().keys() {
            for k in ["gd", "rate"] {
                let f = |m: &serde_json::Value| m["fairness"][set][k].as_f64();
                let same = match (f(&md), f(&ms)) {
                    (Some(x), Some(y)) => (x - y).abs() < 1e-6,
                    (x, y) => x == y,
                };
                assert!(same, "{set}: {k} differs");
            }
        }
        for k in ["f1", "precision", "recall", "positives"] {
            assert_eq!(md["original"][k], ms["original"][k], "original {k}");
        }
        let run = json(&s.join("run.json"));
        let served = &run["served"];
        assert_eq!(served["url"], format!("{url}/{route}"));
        let t = &served["traffic"];
        assert_eq!(t["requests_sent"], served["distinct_prompts"]);
        assert_eq!(t["cached"], 0);
        assert!(t["prompt_tokens"].as_u64().unwrap() > 0);
    }
    // Too few alternatives: answers outside them are censored, counted and reported.
    let c = dir.path().join("censored");
    let url = srv.url();
    let mut a = base.to_vec();
    // No --served-model: the server's only model.
    a.extend(["--endpoint", &url, "--tokenizer", p(&model)]);
    a.extend(["--top-logprobs", "2", "--out", p(&c)]);
    ok(&a);
    let n = predictions(&c)
        .iter()
        .filter(|x| x["censored"] == true)
        .count();
    assert!(
        n > 0,
        "two alternatives of a ~560-token vocabulary should miss an answer"
    );
    assert_eq!(json(&c.join("metrics.json"))["n_censored"], n);
    assert_eq!(json(&c.join("run.json"))["served"]["served_model"], "tiny");
    let report = std::fs::read_to_string(c.join("report.md")).unwrap();
    assert!(report.contains(&format!("{n} of")) && report.contains("censored"));
}

#[test]
fn a_killed_served_audit_resends_nothing_already_answered() {
    let dir = tempfile::tempdir().unwrap();
    let (data, model) = world(dir.path(), "300");
    let srv = Served::start(&["--model", p(&model), "--served-model-name", "tiny"]);
    let url = srv.url();
    let args = |out: &Path| {
        let extra = [
            "--tokenizer",
            p(&model),
            "--top-logprobs",
            "5000",
            "--concurrency",
            "1",
            "--out",
            p(out),
        ];
        served_audit(&data, &url, "tiny", &extra)
    };
    let killed = dir.path().join("killed");
    let mut child = Command::new(env!("CARGO_BIN_EXE_fairrec"))
        .args(args(&killed))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let cache = killed.join("responses.jsonl");
    let t0 = Instant::now();
    loop {
        let lines = std::fs::read_to_string(&cache).map_or(0, |t| t.lines().count());
        if lines >= 40 {
            break;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "the audit ended before the kill"
        );
        assert!(t0.elapsed() < Duration::from_secs(120), "no answers arrive");
        std::thread::sleep(Duration::from_millis(2));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    // The request in flight at the kill may still be answered: wait until the server is idle.
    let mut before = srv.requests();
    loop {
        std::thread::sleep(Duration::from_millis(300));
        let now = srv.requests();
        if now == before {
            break;
        }
        before = now;
    }
    assert!(!killed.join("predictions.jsonl").exists());
    let kept = std::fs::read_to_string(&cache)
        .unwrap()
        .lines()
        .filter(|l| serde_json::from_str::<serde_json::Value>(l).is_ok())
        .count() as u64;
    let a = args(&killed);
    ok(&a.iter().map(String::as_str).collect::<Vec<_>>());
    let sent = srv.requests() - before;
    let run = json(&killed.join("run.json"));
    let distinct = run["served"]["distinct_prompts"].as_u64().unwrap();
    assert!(
        kept >= 40 && kept < distinct,
        "{kept} of {distinct} answered before the kill"
    );
    assert_eq!(
        sent,
        distinct - kept,
        "the rerun sent only the unanswered prompts"
    );
    assert_eq!(run["served"]["traffic"]["cached"], kept);
    assert_eq!(run["served"]["traffic"]["requests_sent"], distinct - kept);
    // An uninterrupted run gives the same predictions, byte for byte.
    let whole = dir.path().join("whole");
    let a = args(&whole);
    ok(&a.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(
        std::fs::read(killed.join("predictions.jsonl")).unwrap(),
        std::fs::read(whole.join("predictions.jsonl")).unwrap()
    );
}

/// How the fake server answers its `i`-th request.
fn scripted(i: usize, logprobs: bool) -> Option<String> {
    let ok_body = if logprobs {
        r#"{"id":"x","object":"text_completion","created":0,"model":"fake","choices":[{"index":0,"text":"Yes","finish_reason":"length","logprobs":{"tokens":[" Yes"],"token_logprobs":[-0.1],"top_logprobs":[{" Yes":-0.1," No":-2.4," Maybe":-4.0}],"text_offset":[0]}}],"usage":{"prompt_tokens":7,"completion_tokens":1,"total_tokens":8}}"#
    } else {
        r#"{"id":"x","object":"text_completion","created":0,"model":"fake","choices":[{"index":0,"text":"Yes","finish_reason":"length","logprobs":null}],"usage":{"prompt_tokens":7,"completion_tokens":1,"total_tokens":8}}"#
    };
    let reply = |status: &str, extra: &str, body: &str| {
        format!(
            "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n{extra}\r\n{body}",
            body.len()
        )
    };
    let err = r#"{"error":{"message":"slow down","type":"rate_limit_exceeded","param":null,"code":null}}"#;
    match (logprobs, i) {
        (true, 0) => Some(reply("429 Too Many Requests", "Retry-After: 1\r\n", err)),
        (true, 1) => Some(reply("500 Internal Server Error", "", err)),
        (true, 2) => None, // hang past the client's timeout
        // A body cut short: the length promises more than arrives.
        (true, 3) => Some(reply("200 OK", "", ok_body).replace("\"usage\"", "")[..120].to_string()),
        _ => Some(reply("200 OK", "", ok_body)),
    }
}

/// A fake OpenAI server following [`scripted`]; counts requests.
fn fake_server(logprobs: bool) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let count = Arc::new(AtomicUsize::new(0));
    let c = count.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { continue };
            let i = c.fetch_add(1, Ordering::SeqCst);
            std::thread::spawn(move || {
                read_request_body(&mut BufReader::new(s.try_clone().unwrap()));
                match scripted(i, logprobs) {
                    Some(answer) => {
                        let _ = s.write_all(answer.as_bytes());
                    }
                    None => std::thread::sleep(Duration::from_secs(3)),
                }
            });
        }
    });
    (addr, count)
}

#[test]
fn the_client_retries_what_may_pass_and_stops_at_once_without_logprobs() {
    let dir = tempfile::tempdir().unwrap();
    let data = small_dataset(dir.path(), "12");
    let audit = |addr: &str, out: &Path| {
        let extra = [
            "--no-chat",
            "--concurrency",
            "1",
            "--timeout",
            "1",
            "--retries",
            "5",
            "--out",
            p(out),
        ];
        let a = served_audit(&data, &format!("http://{addr}"), "fake", &extra);
        fairrec(&a.iter().map(String::as_str).collect::<Vec<_>>())
    };
    let (addr, count) = fake_server(true);
    let out = dir.path().join("retried");
    let o = audit(&addr, &out);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let expect = 1.0 / (1.0 + (-2.3f64).exp());
    let preds = predictions(&out);
    for x in &preds {
        assert!((x["p_yes"].as_f64().unwrap() - expect).abs() < 1e-12, "{x}");
    }
    let run = json(&out.join("run.json"));
    let t = &run["served"]["traffic"];
    assert_eq!(
        t["retries"], 4,
        "429, 500, the hang and the cut body were retried"
    );
    let distinct = run["served"]["distinct_prompts"].as_u64().unwrap() as usize;
    assert_eq!(count.load(Ordering::SeqCst), distinct + 4);
    // No log-probabilities: the first answer stops the audit, with what to do.
    let (addr, count) = fake_server(false);
    let out = dir.path().join("no-logprobs");
    let o = audit(&addr, &out);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("no log-probabilities") && err.contains("--answer-mode sample"),
        "{err}"
    );
    assert_eq!(
        count.load(Ordering::SeqCst),
        1,
        "stopped at the first answer"
    );
    assert!(!out.join("predictions.jsonl").exists());
}

#[test]
fn serve_answers_malformed_requests_and_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let (_, model) = world(dir.path(), "12");
    let mut srv = Served::start(&[
        "--model",
        p(&model),
        "--served-model-name",
        "tiny",
        "--max-body-bytes",
        "100000",
    ]);
    let a = srv.addr.clone();
    let post = |path: &str, body: &str| request(&a, "POST", path, body);
    let cases: Vec<(&str, String, u16)> = vec![
        (
            "/v1/completions",
            "{\"model\": \"tiny\", \"prompt\": ".into(),
            400,
        ),
        (
            "/v1/completions",
            r#"{"model": "tiny", "prompt": 5}"#.into(),
            400,
        ),
        ("/v1/completions", r#"{"prompt": "a"}"#.into(), 400),
        (
            "/v1/completions",
            r#"{"model": "gpt-9", "prompt": "a"}"#.into(),
            404,
        ),
        (
            "/v1/completions",
            r#"{"model": "tiny", "prompt": "a", "stream": true}"#.into(),
            400,
        ),
        (
            "/v1/completions",
            r#"{"model": "tiny", "prompt": "a", "n": 0}"#.into(),
            400,
        ),
        (
            "/v1/completions",
            r#"{"model": "tiny", "prompt": "a", "temperature": 5}"#.into(),
            400,
        ),
        (
            "/v1/completions",
            r#"{"model": "tiny", "prompt": "", "max_tokens": 1}"#.into(),
            400,
        ),
        (
            "/v1/completions",
            r#"{"model": "tiny", "prompt": "a", "logit_bias": {"1": 3}}"#.into(),
            400,
        ),
        (
            "/v1/chat/completions",
            r#"{"model": "tiny", "messages": []}"#.into(),
            400,
        ),
        (
            "/v1/chat/completions",
            r#"{"model": "tiny", "messages": [{"role": "robot", "content": "a"}]}"#.into(),
            400,
        ),
        ("/v1/nothing", "{}".into(), 404),
        // Over the context: 90,000 characters under the body limit.
        (
            "/v1/completions",
            format!(
                r#"{{"model": "tiny", "prompt": "{}"}}"#,
                "xq7 ".repeat(22_000)
            ),
            400,
        ),
        // Over the body limit.
        (
            "/v1/completions",
            format!(
                r#"{{"model": "tiny", "prompt": "{}"}}"#,
                "a".repeat(200_000)
            ),
            413,
        ),
    ];
    for (path, body, status) in &cases {
        let (got, v) = post(path, body);
        assert_eq!(got, *status, "{path} {}: {v}", &body[..body.len().min(80)]);
        assert!(
            v["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{v}"
        );
    }
    assert_eq!(request(&a, "GET", "/v1/completions", "").0, 405);
    // 1,000 connections opened and dropped, half of them mid-request.
    for i in 0..1000 {
        let mut s = TcpStream::connect(&a).unwrap();
        if i % 2 == 1 {
            let _ =
                s.write_all(b"POST /v1/completions HTTP/1.1\r\nContent-Length: 500\r\n\r\n{\"mo");
        }
    }
    // Still serving: a completion with logprobs and echo, and a chat completion.
    let (status, v) = post(
        "/v1/completions",
        r#"{"model": "tiny", "prompt": "Yes or no", "max_tokens": 3, "temperature": 0, "logprobs": 2, "echo": true}"#,
    );
    assert_eq!(status, 200, "{v}");
    let lp = &v["choices"][0]["logprobs"];
    let n_prompt = v["usage"]["prompt_tokens"].as_u64().unwrap() as usize;
    let n_out = v["usage"]["completion_tokens"].as_u64().unwrap() as usize;
    assert_eq!(lp["tokens"].as_array().unwrap().len(), n_prompt + n_out);
    assert!(lp["token_logprobs"][0].is_null() && lp["token_logprobs"][1].is_number());
    // The echoed tokens spell the prompt, its first token included.
    let tokens: Vec<&str> = lp["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    assert!(tokens.concat().starts_with("Yes or no"), "{tokens:?}");
    assert!(!tokens[0].is_empty());
    assert!(v["choices"][0]["text"]
        .as_str()
        .unwrap()
        .starts_with("Yes or no"));
    let (status, v) = post(
        "/v1/chat/completions",
        r#"{"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2, "logprobs": true, "top_logprobs": 3, "n": 2, "temperature": 0.7, "seed": 1}"#,
    );
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["choices"].as_array().unwrap().len(), 2);
    assert_eq!(
        v["choices"][0]["logprobs"]["content"][0]["top_logprobs"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    assert_eq!(
        request(&a, "GET", "/v1/models", "").1["data"][0]["id"],
        "tiny"
    );
    // SIGTERM: the server stops and exits cleanly.
    let pid = srv.child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let t0 = Instant::now();
    let status = loop {
        if let Some(s) = srv.child.try_wait().unwrap() {
            break s;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "still running after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status}");
}
