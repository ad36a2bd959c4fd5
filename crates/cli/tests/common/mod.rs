//! Helpers of the CLI tests: run the binary, a tiny HF model, a small prepared dataset.
#![allow(dead_code)]

pub mod parity;

use std::path::Path;
use std::process::{Command, Output};

/// The binary under test: `FAIRREC_BIN` where set (a test binary carried to another machine,
/// where cargo's path does not exist), else the one cargo built beside this test.
pub fn bin() -> std::path::PathBuf {
    std::env::var_os("FAIRREC_BIN").map_or_else(|| env!("CARGO_BIN_EXE_fairrec").into(), Into::into)
}

/// Say that a test was skipped, visibly (the stderr handle bypasses libtest's capture, so
/// the line shows in a plain `cargo test`); under CI (`CI` set) a missing dataset or model
/// fails the test instead.
pub fn skipped(why: &str) {
    use std::io::Write;
    if std::env::var_os("CI").is_some() {
        panic!("{why}: CI must run every test (../shared beside the clone)");
    }
    let _ = writeln!(std::io::stderr(), "SKIPPED: {why}");
}

pub fn fairrec(args: &[&str]) -> Output {
    Command::new(bin())
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap()
}

/// Start `fairrec args` in the background, output discarded (to be killed).
pub fn spawn(args: &[&str]) -> std::process::Child {
    Command::new(bin())
        .args(args)
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

pub fn ok(args: &[&str]) -> String {
    let o = fairrec(args);
    assert!(
        o.status.success(),
        "fairrec {args:?} failed:\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

pub fn fails(args: &[&str]) -> String {
    let o = fairrec(args);
    assert!(!o.status.success(), "fairrec {args:?} should fail");
    String::from_utf8(o.stderr).unwrap()
}

pub fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// A tiny random Llama saved as an HF directory (config, safetensors, tokenizer, chat template).
pub fn tiny_hf_model(dir: &Path) {
    use fairrec_lm::{random::random_weights, tokenizer::Tok, LlamaConfig};
    let chatml = "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";
    let tok = Tok::bytes_only(&["<|endoftext|>", "<|im_start|>", "<|im_end|>"], None).unwrap();
    let cfg = LlamaConfig::tiny(tok.vocab_size());
    let w = random_weights(&cfg, 3, 0.2, &candle_core::Device::Cpu).unwrap();
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(
        dir.join("config.json"),
        serde_json::to_string(&cfg).unwrap(),
    )
    .unwrap();
    candle_core::safetensors::save(&w, dir.join("model.safetensors")).unwrap();
    tok.inner.save(dir.join("tokenizer.json"), false).unwrap();
    std::fs::write(
        dir.join("tokenizer_config.json"),
        serde_json::json!({"chat_template": chatml, "eos_token": "<|endoftext|>"}).to_string(),
    )
    .unwrap();
}

/// The arguments of `fairrec audit` of `model` on `data`'s first `limit` test samples
/// into `out`, without bootstrap (more flags may follow).
pub fn audit_argv<'a>(
    model: &'a Path,
    data: &'a Path,
    limit: &'a str,
    out: &'a Path,
) -> Vec<&'a str> {
    let mut a = vec![
        "audit",
        "--model",
        p(model),
        "--data",
        p(data),
        "--limit",
        limit,
    ];
    a.extend(["--bootstrap", "0", "--out", p(out)]);
    a
}

/// [`small_dataset`] of `users` in `dir/data` and [`tiny_hf_model`] in `dir/model`.
pub fn data_and_model(dir: &Path, users: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let model = dir.join("model");
    tiny_hf_model(&model);
    (small_dataset(dir, users), model)
}

/// A synthetic world prepared under paper A's protocol in `dir/data` (short histories).
pub fn small_dataset(dir: &Path, users: &str) -> std::path::PathBuf {
    prepared_world(
        dir,
        users,
        "50",
        &[
            "--protocol",
            "cl-moe",
            "--max-liked",
            "3",
            "--max-disliked",
            "3",
        ],
    )
}

/// A synthetic world of `users` x `items` in `dir/raw`, prepared in `dir/data` with the
/// `prepare` flags given (the protocol among them).
pub fn prepared_world(
    dir: &Path,
    users: &str,
    items: &str,
    prepare: &[&str],
) -> std::path::PathBuf {
    let (raw, data) = (dir.join("raw"), dir.join("data"));
    ok(&[
        "data",
        "synth",
        "--out",
        p(&raw),
        "--users",
        users,
        "--items",
        items,
    ]);
    let mut a = vec![
        "data",
        "prepare",
        "--dataset",
        "ml-100k",
        "--raw",
        p(&raw),
        "--out",
        p(&data),
    ];
    a.extend_from_slice(prepare);
    ok(&a);
    data
}

/// The body of an HTTP request read from `r` (headers skipped; `Content-Length` bytes).
pub fn read_request_body(r: &mut impl std::io::BufRead) -> Vec<u8> {
    let mut len = 0;
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
            break;
        }
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            len = v.trim().parse().unwrap();
        }
    }
    let mut body = vec![0; len];
    let _ = r.read_exact(&mut body);
    body
}

/// A `fairrec serve --port 0` child with `args`, and the `host:port` it listens on.
pub fn start_server(args: &[&str]) -> (std::process::Child, String) {
    use std::io::BufRead;
    let mut child = Command::new(env!("CARGO_BIN_EXE_fairrec"))
        .args(["serve", "--port", "0"])
        .args(args)
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .split("http://")
        .nth(1)
        .and_then(|s| s.trim().strip_suffix("/v1"))
        .unwrap_or_else(|| panic!("no address in `{line}`"))
        .to_string();
    (child, addr)
}

/// The JSON object `fairrec score` prints as its last line.
pub fn score_json(stdout: &str) -> serde_json::Value {
    serde_json::from_str(stdout.lines().last().unwrap()).unwrap()
}

/// `fairrec score`'s output `v` against a Python reference case `c` (transformers, peft),
/// as the README states it: the same token ids and answer tokens, P(Yes) within 1e-5,
/// both answer logits within 1e-4.
pub fn assert_score_matches(v: &serde_json::Value, c: &serde_json::Value) {
    assert_eq!(v["ids"], c["ids"], "token ids for {c}");
    assert_eq!(
        (&v["yes_token"], &v["no_token"]),
        (&c["yes_token"], &c["no_token"]),
        "{c}"
    );
    let (a, b) = (v["p_yes"].as_f64().unwrap(), c["p_yes"].as_f64().unwrap());
    assert!((a - b).abs() < 1e-5, "P(Yes) {a} vs Python {b} for {c}");
    for k in ["logit_yes", "logit_no"] {
        let (a, b) = (v[k].as_f64().unwrap(), c[k].as_f64().unwrap());
        assert!((a - b).abs() < 1e-4, "{k} {a} vs Python {b} for {c}");
    }
}
