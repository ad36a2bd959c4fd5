//! `fairrec train`, `score` and `bench` end to end: the run directory, adapters used by
//! `audit` and `score`, SIGKILL + `--resume`, and P(Yes) against transformers.

mod common;
use common::*;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn train_args<'a>(
    model: &'a Path,
    data: &'a Path,
    out: &'a Path,
    extra: &[&'a str],
) -> Vec<&'a str> {
    let mut a = vec![
        "train",
        "--method",
        "lora",
        "--model",
        p(model),
        "--data",
        p(data),
        "--out",
        p(out),
        "--answer-space",
        "none",
        "--lr",
        "0.01",
        "--batch-size",
        "2",
        "--checkpoint-every",
        "3",
        "--seed",
        "4",
    ];
    a.extend_from_slice(extra);
    a
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_slice(
        &std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())),
    )
    .unwrap()
}

#[test]
fn train_writes_a_run_directory_and_audit_and_score_use_the_adapter() {
    let t = tempfile::tempdir().unwrap();
    let data = small_dataset(t.path(), "80");
    let model = t.path().join("model");
    tiny_hf_model(&model);
    let out = t.path().join("run");
    let s = ok(&train_args(
        &model,
        &data,
        &out,
        &["--max-steps", "5", "--limit-valid", "8"],
    ));
    assert!(s.contains("valid before training: AUC"), "{s}");
    assert!(s.contains("trained 5 steps"), "{s}");
    let run = json(&out.join("run.json"));
    assert_eq!(run["method"], "lora");
    assert_eq!(run["seed"], 4);
    assert_eq!(run["data_hash"].as_str().unwrap().len(), 64);
    assert!(run.get("git_revision").is_some());
    assert_eq!(json(&out.join("train_config.json"))["train"]["lr"], 0.01);
    let log = std::fs::read_to_string(out.join("train_log.jsonl")).unwrap();
    assert_eq!(log.lines().filter(|l| l.contains("\"loss\"")).count(), 5);
    assert!(json(&out.join("summary.json"))["before"]["auc"].is_number());
    let cfg = json(&out.join("adapter/adapter_config.json"));
    assert_eq!(cfg["peft_type"], "LORA");
    assert_eq!(
        cfg["target_modules"],
        serde_json::json!(["q_proj", "v_proj"])
    );
    // The audit loads the adapter and scores with it.
    let audit = t.path().join("audit");
    let adapter = out.join("adapter");
    ok(&[
        "audit",
        "--model",
        p(&model),
        "--adapter",
        p(&adapter),
        "--data",
        p(&data),
        "--limit",
        "3",
        "--variants",
        "original;neutral",
        "--answer-space",
        "none",
        "--bootstrap",
        "0",
        "--out",
        p(&audit),
    ]);
    assert_eq!(json(&audit.join("run.json"))["adapter"], p(&adapter));
    // score with and without the adapter differ (the adapter was trained)
    let last = |s: String| -> f64 {
        let v: serde_json::Value = serde_json::from_str(s.lines().last().unwrap()).unwrap();
        v["p_yes"].as_f64().unwrap()
    };
    let base = last(ok(&[
        "score",
        "--model",
        p(&model),
        "--answer-space",
        "none",
        "--prompt",
        "hello",
    ]));
    let tuned = last(ok(&[
        "score",
        "--model",
        p(&model),
        "--adapter",
        p(&adapter),
        "--answer-space",
        "none",
        "--prompt",
        "hello",
    ]));
    assert!((base - tuned).abs() > 1e-6, "{base} vs {tuned}");
    // a second run into the same directory must not silently overwrite the run
    let e = fails(&train_args(&model, &data, &out, &["--max-steps", "5"]));
    assert!(
        e.contains("holds a finished run") && e.contains("--resume"),
        "{e}"
    );
    // --force starts over: the old checkpoint and log are gone, the new log has 2 steps
    let s = ok(&train_args(
        &model,
        &data,
        &out,
        &["--max-steps", "2", "--no-eval", "--force"],
    ));
    assert!(s.contains("trained 2 steps"), "{s}");
    assert_eq!(log_steps(&out.join("train_log.jsonl")), 2);
    let e = fails(&train_args(
        &model,
        &data,
        &t.path().join("fresh"),
        &["--resume"],
    ));
    assert!(e.contains("train_config.json"), "{e}");
}

fn log_steps(path: &Path) -> usize {
    std::fs::read_to_string(path)
        .map(|s| s.lines().filter(|l| l.contains("\"loss\"")).count())
        .unwrap_or(0)
}

#[test]
fn a_run_killed_with_sigkill_and_resumed_ends_with_the_same_adapter() {
    let t = tempfile::tempdir().unwrap();
    let data = small_dataset(t.path(), "150");
    let model = t.path().join("model");
    tiny_hf_model(&model);
    let extra = ["--epochs", "2", "--limit-valid", "10", "--no-eval-before"];
    let (a, b): (PathBuf, PathBuf) = (t.path().join("a"), t.path().join("b"));
    ok(&train_args(&model, &data, &a, &extra));
    let total = log_steps(&a.join("train_log.jsonl"));
    assert!(total > 40, "need a long enough run to kill: {total} steps");
    let mut child = spawn(&train_args(&model, &data, &b, &extra));
    let t0 = Instant::now();
    while log_steps(&b.join("train_log.jsonl")) < total / 3 {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before it could be killed"
        );
        assert!(t0.elapsed() < Duration::from_secs(300));
        std::thread::sleep(Duration::from_millis(2));
    }
    child.kill().unwrap(); // SIGKILL on Unix
    child.wait().unwrap();
    let done = log_steps(&b.join("train_log.jsonl"));
    assert!(done < total, "killed after {done} of {total} steps");
    assert!(!b.join("adapter").exists());
    // What the checkpoint holds: its step and the log lines written up to it.
    let state = json(&b.join("checkpoint/state.json"));
    let (at, kept) = (
        state["loop"]["step"].as_u64().unwrap(),
        state["loop"]["log_lines"].as_u64().unwrap() as usize,
    );
    assert!(
        at > 0 && at < total as u64,
        "checkpoint at step {at} of {total}"
    );
    let before: Vec<String> = std::fs::read_to_string(b.join("train_log.jsonl"))
        .unwrap()
        .lines()
        .take(kept)
        .map(String::from)
        .collect();
    let s = ok(&train_args(
        &model,
        &data,
        &b,
        &[&extra[..], &["--resume"]].concat(),
    ));
    assert!(s.contains(&format!("trained {total} steps")), "{s}");
    let bytes = |d: &Path| std::fs::read(d.join("adapter/adapter_model.safetensors")).unwrap();
    assert_eq!(
        bytes(&a),
        bytes(&b),
        "resumed adapter differs from the uninterrupted one"
    );
    // the log of the resumed run has each step once
    assert_eq!(log_steps(&b.join("train_log.jsonl")), total);
    // TensorBoard's event file shows exactly the resumed log's steps.
    let tb = std::fs::read(b.join("tb/events.out.tfevents.fairrec")).unwrap();
    let log = std::fs::read_to_string(b.join("train_log.jsonl")).unwrap();
    assert_eq!(tb, fairrec_train::tensorboard::events_of_log(&log).unwrap());
    let lines = |d: &Path| -> Vec<String> {
        std::fs::read_to_string(d.join("train_log.jsonl"))
            .unwrap()
            .lines()
            .map(String::from)
            .collect()
    };
    let (la, lb) = (lines(&a), lines(&b));
    // A resume, not a silent restart: the lines up to the checkpoint are the killed run's,
    // byte for byte (their timing fields included), and the first line after them is
    // the step after the checkpoint's.
    assert_eq!(
        lb[..kept],
        before[..],
        "the resumed run rewrote the log before step {at}"
    );
    assert_eq!(json_line(&lb[kept])["step"], at + 1, "{}", lb[kept]);
    // Line by line, the uninterrupted run's log but for the timing fields.
    assert_eq!(la.len(), lb.len());
    for (x, y) in la.iter().zip(&lb) {
        assert_eq!(untimed(x), untimed(y));
    }
}

fn json_line(line: &str) -> serde_json::Value {
    serde_json::from_str(line).unwrap()
}

/// A log line without its timing field (`tokens_per_s`).
fn untimed(line: &str) -> serde_json::Value {
    let mut v = json_line(line);
    if let Some(o) = v.as_object_mut() {
        o.remove("tokens_per_s");
    }
    v
}

#[test]
fn bench_reports_throughput_and_memory() {
    let t = tempfile::tempdir().unwrap();
    let model = t.path().join("model");
    tiny_hf_model(&model);
    for mode in ["score", "train"] {
        let s = ok(&[
            "bench",
            "--model",
            p(&model),
            "--mode",
            mode,
            "--batch",
            "2",
            "--seq",
            "16",
            "--steps",
            "2",
        ]);
        let v: serde_json::Value = serde_json::from_str(s.lines().last().unwrap()).unwrap();
        assert_eq!(v["mode"], mode);
        assert_eq!(v["steps"], 2);
        assert!(v["tokens_per_s"].as_f64().unwrap() > 0.0);
        assert!(v["peak_rss_bytes"].as_u64().unwrap() > 1 << 20);
        let (gflop, step_s) = (
            v["step_gflop"].as_f64().unwrap(),
            v["step_s"].as_f64().unwrap(),
        );
        assert!(gflop > 0.0);
        assert!((v["gflops"].as_f64().unwrap() - gflop / step_s).abs() <= 1e-9 * gflop / step_s);
    }
    let e = fails(&["bench", "--shape", "gpt5", "--mode", "score"]);
    assert!(e.contains("--shape `gpt5`"), "{e}");
    let e = fails(&["bench", "--mode", "score"]);
    assert!(e.contains("give --model or --shape"), "{e}");
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
        let s = ok(&["bench", "--mode", "peak"]);
        let v: serde_json::Value = serde_json::from_str(s.lines().last().unwrap()).unwrap();
        assert_eq!(v["mode"], "peak");
        assert!(v["gflops"].as_f64().unwrap() > 1.0, "{v}");
        assert!(
            v["f32_avx2"].as_f64().unwrap() <= v["gflops"].as_f64().unwrap(),
            "{v}"
        );
        let bf16 = std::arch::is_x86_feature_detected!("avx512bf16")
            && std::arch::is_x86_feature_detected!("avx512f");
        assert_eq!(v["bf16_dot"].is_f64(), bf16, "{v}");
        return;
    }
    assert!(fails(&["bench", "--mode", "peak"]).contains("AVX2"));
}

/// `fairrec score` against transformers on the same GGUF (reference made by
/// `tests/reference/make_score_reference.py`): P(Yes) within 1e-3, with and without the
/// chat template.
#[test]
fn score_matches_transformers_on_smollm2() {
    let Some(models) = std::env::var_os("FAIRREC_MODELS") else {
        common::skipped("score_matches_transformers_on_smollm2: FAIRREC_MODELS is not set (point it at ../shared/models)");
        return;
    };
    let gguf = Path::new(&models).join("smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf");
    if !gguf.exists() {
        common::skipped(&format!(
            "score_matches_transformers_on_smollm2: {} is missing",
            gguf.display()
        ));
        return;
    }
    let r =
        json(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/reference/score_reference.json"));
    let cases = r["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 8);
    for c in cases {
        let mut args = vec![
            "score",
            "--model",
            p(&gguf),
            "--prompt",
            c["prompt"].as_str().unwrap(),
        ];
        if !c["chat"].as_bool().unwrap() {
            args.push("--no-chat");
        }
        let v = score_json(&ok(&args));
        // (measured 2026-12-04: 2.6e-6 and 1.9e-5 at most)
        assert_eq!(v["n_tokens"], c["n_tokens"], "{c}");
        assert_score_matches(&v, c);
    }
}

#[test]
fn builtin_model_trains_in_full_and_with_prompt_tuning_and_p_tuning() {
    let t = tempfile::tempdir().unwrap();
    let data = small_dataset(t.path(), "80");
    let model = t.path().join("builtin");
    let s = ok(&[
        "model",
        "init",
        "--data",
        p(&data),
        "--out",
        p(&model),
        "--vocab-size",
        "600",
        "--hidden",
        "32",
        "--layers",
        "2",
    ]);
    assert!(s.contains("built-in model"), "{s}");
    let e = fails(&["model", "init", "--data", p(&data), "--out", p(&model)]);
    assert!(e.contains("--force"), "{e}");
    // full fine-tuning writes a whole model directory that audit takes as --model
    let full = t.path().join("full");
    let mut a = train_args(
        &model,
        &data,
        &full,
        &["--max-steps", "3", "--limit-valid", "6"],
    );
    a[2] = "full";
    ok(&a);
    let tuned = full.join("adapter");
    assert!(tuned.join("model.safetensors").exists() && tuned.join("tokenizer.json").exists());
    ok(&[
        "audit",
        "--model",
        p(&tuned),
        "--data",
        p(&data),
        "--limit",
        "2",
        "--variants",
        "original;neutral",
        "--bootstrap",
        "0",
        "--out",
        p(&t.path().join("audit")),
    ]);
    // prompt tuning and p-tuning write PEFT's PROMPT_TUNING / P_TUNING files that score
    // takes as --adapter
    for (method, peft_type) in [("prompt-tuning", "PROMPT_TUNING"), ("p-tuning", "P_TUNING")] {
        let pt = t.path().join(method);
        let mut a = train_args(
            &model,
            &data,
            &pt,
            &["--max-steps", "3", "--no-eval", "--virtual-tokens", "4"],
        );
        a[2] = method;
        ok(&a);
        let cfg = json(&pt.join("adapter/adapter_config.json"));
        assert_eq!(cfg["peft_type"], peft_type);
        assert_eq!(cfg["num_virtual_tokens"], 4);
        let adapter = pt.join("adapter");
        ok(&[
            "score",
            "--model",
            p(&model),
            "--adapter",
            p(&adapter),
            "--prompt",
            "hello",
        ]);
    }
}

/// A small synthetic world under paper B's protocol and the tiny HF model, in `dir`.
fn paper_b_world(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let data = prepared_world(
        dir,
        "60",
        "40",
        &["--protocol", "mos", "--attributes", "age,gender"],
    );
    let model = dir.join("model");
    tiny_hf_model(&model);
    (data, model)
}

#[test]
fn mos_trains_on_paper_b_data_and_audit_routes_its_prompts_as_training_did() {
    let t = tempfile::tempdir().unwrap();
    let (data, model) = paper_b_world(t.path());
    let out = t.path().join("mos");
    let mut a = train_args(
        &model,
        &data,
        &out,
        &[
            "--limit-train",
            "24",
            "--limit-valid",
            "8",
            "--virtual-tokens",
            "4",
            "--mos-experts",
            "3",
            "--attributes",
            "gender",
        ],
    );
    a[2] = "mos";
    let s = ok(&a);
    assert!(
        s.contains("valid before training: AUC") && s.contains("epoch 1: valid AUC"),
        "{s}"
    );
    let cfg = json(&out.join("train_config.json"));
    assert_eq!(
        cfg["train"]["stereotype"]["groups"],
        serde_json::json!(["female", "male"])
    );
    assert_eq!(cfg["train"]["stereotype"]["attribute"], "gender");
    assert_eq!(cfg["train"]["prompt_init"], "sample-vocab");
    let adapter = json(&out.join("adapter/adapter_config.json"));
    assert_eq!(adapter["peft_type"], "FAIRREC_MOS");
    assert_eq!(adapter["mos"]["experts"], 3);
    let log = std::fs::read_to_string(out.join("train_log.jsonl")).unwrap();
    let step: serde_json::Value = serde_json::from_str(log.lines().next().unwrap()).unwrap();
    for k in ["ntp", "diversity", "fairness", "expert/0", "expert/2"] {
        assert!(step[k].is_number(), "no `{k}` in the step log: {step}");
    }
    // audit routes every sample's prompt as training's validation did: the valid split's
    // original prompts get the same P(Yes) (mean and AUC as the last epoch logged)
    let audit_valid = |adapter: Option<&Path>, out: &Path| {
        let mut args = vec![
            "audit",
            "--model",
            p(&model),
            "--data",
            p(&data),
            "--split",
            "valid",
            "--limit",
            "8",
            "--attributes",
            "gender",
            "--variants",
            "original;neutral",
            "--answer-space",
            "none",
            "--bootstrap",
            "0",
            "--out",
            p(out),
        ];
        if let Some(dir) = adapter {
            args.extend(["--adapter", p(dir)]);
        }
        ok(&args);
        std::fs::read_to_string(out.join("predictions.jsonl")).unwrap()
    };
    let audit = t.path().join("audit");
    let preds = audit_valid(Some(&out.join("adapter")), &audit);
    let eval: serde_json::Value = log
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .rfind(|v| v["event"] == "eval")
        .unwrap();
    let original: Vec<f64> = preds
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v["variant"] == "original")
        .map(|v| v["p_yes"].as_f64().unwrap())
        .collect();
    assert_eq!(original.len(), 8);
    let mean = original.iter().sum::<f64>() / 8.0;
    let logged = eval["eval"]["mean_p_yes"].as_f64().unwrap();
    assert!(
        (mean - logged).abs() < 1e-5,
        "audit mean P(Yes) {mean} vs training's {logged}"
    );
    let m = json(&audit.join("metrics.json"));
    assert_eq!(m["original"]["auc"], eval["eval"]["auc"]);
    // One item grouping for training and audit: `auto` resolved on the train split, saved
    // beside the adapter, and taken by the audit; `data stereotypes` shows the same pick.
    let st = &cfg["train"]["stereotype"];
    assert_eq!(st["z_auto"], true);
    let z = st["z_threshold"].as_f64().unwrap();
    let saved = json(&out.join("adapter/fairrec_stereotype.json"));
    assert_eq!(saved["z_threshold"].as_f64(), Some(z));
    assert_eq!(adapter["mos"]["z_threshold"].as_f64(), Some(z));
    assert_eq!(m["stereotype"]["gender"]["z_threshold"].as_f64(), Some(z));
    assert_eq!(
        m["stereotype"]["gender"]["z_auto"], false,
        "taken from the adapter"
    );
    let dist_dir = t.path().join("dist");
    let shown = ok(&["data", "stereotypes", p(&data), "--out", p(&dist_dir)]);
    assert!(
        shown.contains(&format!("`auto` picks z* = {z} ")),
        "{shown}"
    );
    let dists = json(&dist_dir.join("stereotypes.json"));
    let dist = dists
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["attribute"] == "gender")
        .unwrap();
    assert_eq!(dist["auto"].as_f64(), Some(z));
    let sizes: Vec<u64> = ["female", "male"]
        .iter()
        .map(|g| {
            m["stereotype"]["gender"]["item_groups"][g]
                .as_u64()
                .unwrap()
        })
        .collect();
    let at = dist["sizes"][format!("{z:.1}")].as_array().unwrap();
    assert_eq!(
        at.iter().map(|v| v.as_u64().unwrap()).collect::<Vec<_>>(),
        sizes
    );
    let e = fails(&["data", "stereotypes", p(&data), "--out", p(&dist_dir)]);
    assert!(e.contains("--force"), "{e}");
    let e = fails(&["data", "stereotypes", p(&data), "--attributes", "height"]);
    assert!(e.contains("`height` is not an attribute"), "{e}");
    // the mixed prompt matters: without the adapter the same prompts score otherwise
    let base = audit_valid(None, &t.path().join("plain"));
    assert_ne!(base.lines().next(), preds.lines().next());
    // a bare prompt has no group inputs to route on: score refuses a MoS adapter
    let e = fails(&[
        "score",
        "--model",
        p(&model),
        "--adapter",
        p(&out.join("adapter")),
        "--prompt",
        "hello",
    ]);
    assert!(
        e.contains("MoS adapter") && e.contains("fairrec audit"),
        "{e}"
    );
    // MoS groups one attribute's values
    let two = t.path().join("two");
    let mut b = train_args(&model, &data, &two, &["--attributes", "age,gender"]);
    b[2] = "mos";
    let e = fails(&b);
    assert!(e.contains("exactly one sensitive attribute"), "{e}");
}

#[test]
fn ifairlrs_trains_lora_with_sample_weights_on_one_attribute() {
    let t = tempfile::tempdir().unwrap();
    let (data, model) = paper_b_world(t.path());
    let out = t.path().join("ifairlrs");
    let limits = ["--limit-train", "24", "--limit-valid", "8"];
    let mut a = train_args(
        &model,
        &data,
        &out,
        &[&limits[..], &["--attributes", "gender"]].concat(),
    );
    a[2] = "ifairlrs";
    let s = ok(&a);
    assert!(s.contains("IFairLRS sample weights over 24 samples"), "{s}");
    assert!(s.contains("epoch 1: valid AUC"), "{s}");
    let cfg = json(&out.join("train_config.json"));
    assert_eq!(cfg["train"]["stereotype"]["attribute"], "gender");
    assert_eq!(
        json(&out.join("adapter/adapter_config.json"))["peft_type"],
        "LORA"
    );
    // Paper B's methods need exactly one sensitive attribute.
    let out2 = t.path().join("two");
    let both = [&limits[..], &["--attributes", "age,gender"]].concat();
    let mut two = train_args(&model, &data, &out2, &both);
    two[2] = "ifairlrs";
    let e = fails(&two);
    assert!(
        e.contains("--method ifairlrs needs exactly one sensitive attribute"),
        "{e}"
    );
}

/// Train `method` on the paper-B world (gender, 12 training samples) with `extra` flags;
/// checks that an epoch was validated and that the first step's log has every `logged`
/// figure, finite; returns the run directory.
fn train_paper_b(t: &Path, method: &str, extra: &[&str], logged: &[&str]) -> std::path::PathBuf {
    let (data, model) = paper_b_world(t);
    let out = t.join(method);
    let base = [
        "--limit-train",
        "12",
        "--limit-valid",
        "8",
        "--attributes",
        "gender",
    ];
    let flags = [&base[..], extra].concat();
    let mut a = train_args(&model, &data, &out, &flags);
    a[2] = method;
    let s = ok(&a);
    assert!(s.contains("epoch 1: valid AUC"), "{s}");
    let log = std::fs::read_to_string(out.join("train_log.jsonl")).unwrap();
    let step: serde_json::Value = serde_json::from_str(log.lines().next().unwrap()).unwrap();
    for k in logged {
        assert!(
            step[k].as_f64().is_some_and(f64::is_finite),
            "no `{k}` in {step}"
        );
    }
    out
}

#[test]
fn fairllm_trains_lora_against_the_divergence_from_the_implicit_prompt() {
    let t = tempfile::tempdir().unwrap();
    let extra = ["--divergence-weight", "2"];
    let out = train_paper_b(t.path(), "fairllm", &extra, &["ntp", "divergence"]);
    assert_eq!(
        json(&out.join("train_config.json"))["train"]["divergence_weight"],
        2.0
    );
}

#[test]
fn up5_trains_a_prompt_against_an_attribute_discriminator() {
    let t = tempfile::tempdir().unwrap();
    let extra = ["--virtual-tokens", "4", "--adversary-weight", "0.5"];
    let logged = ["ntp", "adversary", "adversary_accuracy"];
    let out = train_paper_b(t.path(), "up5", &extra, &logged);
    assert_eq!(
        json(&out.join("train_config.json"))["train"]["adversary_weight"],
        0.5
    );
    assert_eq!(
        json(&out.join("adapter/adapter_config.json"))["peft_type"],
        "PROMPT_TUNING"
    );
    assert!(json(&out.join("train_config.json"))["train"]
        .get("up5_input")
        .is_none());
    // UP5's own setting: the neutral prompts, recorded; the prompt trains on other inputs.
    let t2 = tempfile::tempdir().unwrap();
    let neutral = [&extra[..], &["--up5-input", "neutral"]].concat();
    let out2 = train_paper_b(t2.path(), "up5", &neutral, &logged);
    assert_eq!(
        json(&out2.join("train_config.json"))["train"]["up5_input"],
        "neutral"
    );
    let weights = |d: &Path| std::fs::read(d.join("adapter/adapter_model.safetensors")).unwrap();
    assert_ne!(weights(&out), weights(&out2));
    let (w, x) = (t2.path().join("w"), t2.path().join("x"));
    std::fs::create_dir_all(&w).unwrap();
    let (data, model) = paper_b_world(&w);
    let mut a = train_args(&model, &data, &x, &["--up5-input", "neutral"]);
    a[2] = "lora";
    let e = fails(&a);
    assert!(e.contains("up5_input applies to up5"), "{e}");
}

#[test]
fn paradigms_train_on_paper_b_objective_with_fairness_weight() {
    let t = tempfile::tempdir().unwrap();
    let extra = ["--virtual-tokens", "4", "--fairness-weight", "0.5"];
    let out = train_paper_b(t.path(), "p-tuning", &extra, &["ntp", "fairness"]);
    let cfg = json(&out.join("train_config.json"));
    assert_eq!(cfg["train"]["fairness_weight"], 0.5);
    assert_eq!(cfg["train"]["stereotype"]["attribute"], "gender");
    assert_eq!(
        json(&out.join("adapter/adapter_config.json"))["peft_type"],
        "P_TUNING"
    );
    // Methods with their own fairness objective refuse it; the loss needs one attribute.
    let w = t.path().join("w");
    std::fs::create_dir_all(&w).unwrap();
    let (data, model) = paper_b_world(&w);
    let (x, y) = (t.path().join("x"), t.path().join("y"));
    let mut a = train_args(&model, &data, &x, &["--fairness-weight", "1"]);
    a[2] = "up5";
    let e = fails(&a);
    assert!(e.contains("--fairness-weight applies to mos, lora"), "{e}");
    let both = ["--fairness-weight", "1", "--attributes", "age,gender"];
    let e = fails(&train_args(&model, &data, &y, &both));
    assert!(
        e.contains("--method lora with --fairness-weight needs exactly one sensitive attribute"),
        "{e}"
    );
}
