//! Issue 22's findings, one command each: outputs are replaced only with `--force` and
//! never over files that are not the command's own; bad numbers and model configurations
//! are errors naming the file or flag, never panics; a refused run changes nothing.

mod common;
use common::*;
use std::path::Path;

fn tree(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let bytes = if e.path().is_file() {
                std::fs::read(e.path()).unwrap()
            } else {
                Vec::new()
            };
            (e.file_name().to_string_lossy().into_owned(), bytes)
        })
        .collect();
    out.sort();
    out
}

/// What a failed command printed on stderr.
fn stderr_of(out: std::process::Output) -> String {
    assert!(!out.status.success(), "expected a failure");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `fairrec audit` of `model` on `data`'s first `limit` test samples into `out`, without
/// bootstrap.
fn audit(model: &Path, data: &Path, limit: &str, out: &Path) -> std::process::Output {
    fairrec(&audit_argv(model, data, limit, out))
}

#[test]
fn model_init_never_replaces_what_is_not_a_model() {
    let t = tempfile::tempdir().unwrap();
    let data = small_dataset(t.path(), "12");
    // A prepared dataset is not a model: refused, even with --force, and left whole.
    let before = tree(&data);
    for force in [false, true] {
        let mut a = vec!["model", "init", "--data", p(&data), "--out", p(&data)];
        if force {
            a.push("--force");
        }
        let e = fails(&a);
        assert!(
            e.contains("holds files that are not a model") && e.contains("manifest.json"),
            "{e}"
        );
        assert_eq!(tree(&data), before);
    }
    // A file as --out: refused, untouched, nothing written beside it.
    let file = t.path().join("notes.txt");
    std::fs::write(&file, "mine").unwrap();
    let e = fails(&["model", "init", "--data", p(&data), "--out", p(&file)]);
    assert!(e.contains("not a directory"), "{e}");
    assert_eq!(std::fs::read(&file).unwrap(), b"mine");
    let siblings: Vec<String> = std::fs::read_dir(t.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(siblings.iter().all(|n| !n.starts_with('.')), "{siblings:?}");
    // A model is replaced only with --force.
    let model = t.path().join("model");
    ok(&["model", "init", "--data", p(&data), "--out", p(&model)]);
    let first = tree(&model);
    let e = fails(&[
        "model",
        "init",
        "--data",
        p(&data),
        "--out",
        p(&model),
        "--seed",
        "1",
    ]);
    assert!(e.contains("already holds a model; pass --force"), "{e}");
    assert_eq!(tree(&model), first);
    ok(&[
        "model",
        "init",
        "--data",
        p(&data),
        "--out",
        p(&model),
        "--seed",
        "1",
        "--force",
    ]);
    assert_ne!(tree(&model), first);
}

#[test]
fn bad_model_configs_and_numbers_are_errors_not_panics() {
    let t = tempfile::tempdir().unwrap();
    let model = t.path().join("model");
    tiny_hf_model(&model);
    let cfg_path = model.join("config.json");
    let cfg: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&cfg_path).unwrap()).unwrap();
    for (field, value, says) in [
        (
            "num_attention_heads",
            serde_json::json!(0),
            "`num_attention_heads` is 0",
        ),
        (
            "num_hidden_layers",
            serde_json::json!(0),
            "`num_hidden_layers` is 0",
        ),
        ("hidden_size", serde_json::json!(66), "not a multiple"),
        ("model_type", serde_json::json!("gpt2"), "`gpt2`"),
    ] {
        let mut bad = cfg.clone();
        bad[field] = value;
        std::fs::write(&cfg_path, bad.to_string()).unwrap();
        let e = fails(&["score", "--model", p(&model), "--prompt", "hi"]);
        assert!(
            e.contains(says) && e.contains("config.json"),
            "{field}: {e}"
        );
    }
    for c in ["1.5", "NaN", "-0.1", "0", "1"] {
        let e = fails(&[
            "metrics",
            "--predictions",
            "x.jsonl",
            &format!("--confidence={c}"),
            "--out",
            p(&t.path().join("m")),
        ]);
        assert!(
            e.contains("confidence must be strictly between 0 and 1"),
            "{c}: {e}"
        );
    }
    let e = fails(&[
        "bench",
        "--shape",
        "smollm2-135m",
        "--mode",
        "score",
        "--seq",
        "0",
    ]);
    assert!(e.contains("--seq 0: at least 1"), "{e}");
}

#[test]
fn outputs_are_replaced_only_with_force_and_bad_settings_fail_before_scoring() {
    let t = tempfile::tempdir().unwrap();
    let data = small_dataset(t.path(), "12");
    let model = t.path().join("model");
    tiny_hf_model(&model);
    let out = t.path().join("audit");
    let audit = |extra: &[&str]| {
        let mut a = vec![
            "audit",
            "--model",
            p(&model),
            "--data",
            p(&data),
            "--limit",
            "2",
        ];
        a.extend_from_slice(&[
            "--variants",
            "original;neutral",
            "--bootstrap",
            "0",
            "--out",
            p(&out),
        ]);
        a.extend_from_slice(extra);
        fairrec(&a)
    };
    // A threshold outside [0, 1] stops the audit before it scores or writes anything.
    let o = audit(&["--threshold", "7"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("threshold must be in [0, 1]"));
    assert!(!out.exists());
    assert!(audit(&[]).status.success());
    // metrics into the audit's directory: its report is replaced only with --force.
    let preds = out.join("predictions.jsonl");
    let m = [
        "metrics",
        "--predictions",
        p(&preds),
        "--bootstrap",
        "0",
        "--out",
        p(&out),
    ];
    assert!(fails(&m).contains("already holds an audit report; pass --force"));
    ok(&[&m[..], &["--force"]].concat());
    assert!(preds.exists(), "metrics replaces its own files only");
    // data synth over a world.
    let raw = t.path().join("raw");
    let e = fails(&[
        "data",
        "synth",
        "--out",
        p(&raw),
        "--users",
        "12",
        "--items",
        "50",
    ]);
    assert!(
        e.contains("already holds a synthetic world; pass --force"),
        "{e}"
    );
    ok(&[
        "data",
        "synth",
        "--out",
        p(&raw),
        "--users",
        "12",
        "--items",
        "50",
        "--force",
    ]);
}

#[test]
fn a_refused_train_leaves_the_run_it_refuses_as_it_was() {
    let t = tempfile::tempdir().unwrap();
    let (data, model) = data_and_model(t.path(), "30");
    let out = t.path().join("run");
    let train = |extra: &[&str]| {
        let mut a = vec![
            "train",
            "--method",
            "lora",
            "--model",
            p(&model),
            "--data",
            p(&data),
        ];
        a.extend_from_slice(&[
            "--out",
            p(&out),
            "--answer-space",
            "none",
            "--max-steps",
            "2",
        ]);
        a.extend_from_slice(&["--limit-valid", "4", "--no-eval-before"]);
        a.extend_from_slice(extra);
        fairrec(&a)
    };
    assert!(train(&[]).status.success());
    let before = tree(&out);
    // Another flag, no --force: refused before anything is written.
    let o = train(&["--lr", "0.5"]);
    assert!(!o.status.success());
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        e.contains("holds a finished run") && e.contains("--force"),
        "{e}"
    );
    assert_eq!(
        tree(&out),
        before,
        "train_config.json and run.json untouched"
    );
    // A bad flag with --force is refused too, and the old run survives it.
    let o = train(&["--force", "--attributes", "shoe size"]);
    assert!(!o.status.success());
    assert_eq!(tree(&out), before);
    // With --force the run starts over.
    assert!(train(&["--lr", "0.5", "--force"]).status.success());
    let cfg: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("train_config.json")).unwrap()).unwrap();
    assert_eq!(cfg["train"]["lr"], 0.5);
}

#[test]
fn an_edited_or_mixed_prepared_dataset_is_refused_naming_the_file() {
    let t = tempfile::tempdir().unwrap();
    let data = small_dataset(t.path(), "12");
    let model = t.path().join("model");
    tiny_hf_model(&model);
    let audit = |out: &str| audit(&model, &data, "1", &t.path().join(out));
    assert!(audit("a0").status.success());
    // One sample's label flipped by hand.
    let train = data.join("train.jsonl");
    let original = std::fs::read_to_string(&train).unwrap();
    let edited = original.replacen("\"label\":true", "\"label\":false", 1);
    assert_ne!(edited, original, "the fixture has a positive sample");
    std::fs::write(&train, edited).unwrap();
    let e = fails(&[
        "model",
        "init",
        "--data",
        p(&data),
        "--out",
        p(&t.path().join("m2")),
    ]);
    assert!(e.contains("train.jsonl") && e.contains("SHA-256"), "{e}");
    std::fs::write(&train, &original).unwrap();
    // A split from another preparation (what a killed `data prepare --force` left).
    let other = prepared_world(
        &t.path().join("other"),
        "12",
        "50",
        &["--protocol", "cl-moe", "--seed", "9"],
    );
    std::fs::copy(other.join("test.jsonl"), data.join("test.jsonl")).unwrap();
    let o = audit("a1");
    assert!(!o.status.success());
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        e.contains("test.jsonl") && e.contains("another preparation"),
        "{e}"
    );
}

#[test]
fn one_writer_per_directory_and_a_killed_writers_lock_is_taken_over() {
    let t = tempfile::tempdir().unwrap();
    let (data, model) = data_and_model(t.path(), "30");
    let out = t.path().join("run");
    let lock = t.path().join(".run.lock");
    let args = |extra: &[&'static str]| -> Vec<String> {
        let mut a: Vec<String> = [
            "train",
            "--method",
            "lora",
            "--model",
            p(&model),
            "--data",
            p(&data),
        ]
        .map(String::from)
        .to_vec();
        a.extend(["--out", p(&out), "--answer-space", "none", "--no-eval"].map(String::from));
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    };
    let first = args(&["--max-steps", "100000"]);
    let mut child = spawn(&first.iter().map(String::as_str).collect::<Vec<_>>());
    let t0 = std::time::Instant::now();
    while !lock.exists() {
        assert!(
            t0.elapsed().as_secs() < 60,
            "the first train never locked {}",
            out.display()
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(std::fs::read_to_string(&lock)
        .unwrap()
        .contains("fairrec train"));
    let second = args(&["--max-steps", "2", "--force"]);
    let e = fails(&second.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(
        e.contains("being written by another fairrec process") && e.contains("pid"),
        "{e}"
    );
    // SIGKILL leaves the lock behind; the next writer sees its holder gone and takes over.
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(lock.exists());
    ok(&second.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(!lock.exists(), "released at the end");
}

#[test]
fn bad_values_are_refused_before_anything_is_written() {
    let t = tempfile::tempdir().unwrap();
    let raw = t.path().join("raw");
    let e = fails(&["data", "synth", "--out", p(&raw), "--noise", "NaN"]);
    assert!(e.contains("noise") && e.contains("finite"), "{e}");
    assert!(!raw.join("u.data").exists());
    ok(&[
        "data",
        "synth",
        "--out",
        p(&raw),
        "--users",
        "12",
        "--items",
        "50",
    ]);
    let data = t.path().join("data");
    let prep = |extra: &[&str]| {
        let mut a = vec!["data", "prepare", "--dataset", "ml-100k", "--raw", p(&raw)];
        a.extend_from_slice(&["--protocol", "cl-moe", "--out", p(&data)]);
        a.extend_from_slice(extra);
        fails(&a)
    };
    let e = prep(&["--like-threshold", "NaN"]);
    assert!(e.contains("like-threshold") && e.contains("finite"), "{e}");
    // An empty ratings file leaves no training samples: an error, and no dataset.
    std::fs::write(raw.join("u.data"), "").unwrap();
    let e = prep(&[]);
    assert!(
        e.contains("no training samples") && e.contains("nothing was written"),
        "{e}"
    );
    assert!(!data.join("manifest.json").exists());
    // AdamW's betas.
    let data = small_dataset(&t.path().join("w"), "12");
    let model = t.path().join("model");
    tiny_hf_model(&model);
    let e = fails(&[
        "train",
        "--method",
        "lora",
        "--model",
        p(&model),
        "--data",
        p(&data),
        "--out",
        p(&t.path().join("run")),
        "--beta1",
        "1.5",
    ]);
    assert!(e.contains("beta1"), "{e}");
    assert!(!t.path().join("run").join("run.json").exists());
    // A prediction line given twice.
    let preds = t.path().join("preds.jsonl");
    let line = r#"{"sample_id":"a","variant":"original","label":true,"p_yes":0.7}"#;
    std::fs::write(&preds, format!("{line}\n{line}\n")).unwrap();
    let e = fails(&[
        "metrics",
        "--predictions",
        p(&preds),
        "--out",
        p(&t.path().join("m")),
    ]);
    assert!(
        e.contains("preds.jsonl:2:") && e.contains("first at line 1"),
        "{e}"
    );
}

#[test]
fn a_prompt_longer_than_the_context_is_named_by_its_sample() {
    let t = tempfile::tempdir().unwrap();
    let data = small_dataset(t.path(), "12");
    let model = t.path().join("model");
    tiny_hf_model(&model);
    let cfg_path = model.join("config.json");
    let mut cfg: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&cfg_path).unwrap()).unwrap();
    cfg["max_position_embeddings"] = 16.into();
    std::fs::write(&cfg_path, cfg.to_string()).unwrap();
    let first = std::fs::read_to_string(data.join("test.jsonl")).unwrap();
    let first: serde_json::Value = serde_json::from_str(first.lines().next().unwrap()).unwrap();
    let id = first["sample_id"].as_str().unwrap();
    let out = t.path().join("a");
    let e = stderr_of(audit(&model, &data, "1", &out));
    assert!(
        e.contains(&format!("sample {id} (original)"))
            && e.contains("exceeds the model's context of 16"),
        "{e}"
    );
    assert!(!out.join("predictions.jsonl").exists());
    let e = fails(&[
        "train",
        "--model",
        p(&model),
        "--data",
        p(&data),
        "--method",
        "ins-tuning",
        "--out",
        p(&t.path().join("r")),
    ]);
    assert!(
        e.contains("sample ") && e.contains("exceeds the model's context of 16"),
        "{e}"
    );
}

#[test]
fn a_model_with_nan_weights_is_named_before_anything_is_written() {
    let t = tempfile::tempdir().unwrap();
    let data = small_dataset(t.path(), "12");
    let model = t.path().join("model");
    tiny_hf_model(&model);
    let w = model.join("model.safetensors");
    let mut tensors = candle_core::safetensors::load(&w, &candle_core::Device::Cpu).unwrap();
    let norm = tensors.get_mut("model.norm.weight").unwrap();
    let n = norm.elem_count();
    *norm = candle_core::Tensor::from_vec(vec![f32::NAN; n], n, &candle_core::Device::Cpu).unwrap();
    candle_core::safetensors::save(&tensors, &w).unwrap();
    let out = t.path().join("a");
    let e = stderr_of(audit(&model, &data, "2", &out));
    assert!(
        e.contains("sample ") && e.contains("P(Yes) is NaN") && e.contains("not finite"),
        "{e}"
    );
    assert!(!out.join("predictions.jsonl").exists() && !out.join("metrics.json").exists());
    let e = fails(&["score", "--model", p(&model), "--prompt", "hi"]);
    assert!(e.contains("not finite"), "{e}");
}

#[test]
fn predictions_must_match_the_data_they_are_joined_to() {
    let t = tempfile::tempdir().unwrap();
    let data = small_dataset(t.path(), "12");
    let model = t.path().join("model");
    tiny_hf_model(&model);
    let audit_dir = t.path().join("a");
    assert!(audit(&model, &data, "3", &audit_dir).status.success());
    let preds = std::fs::read_to_string(audit_dir.join("predictions.jsonl")).unwrap();
    let metrics = |file: &str, extra: &[&str]| {
        let path = t.path().join(file);
        let out = t.path().join(format!("m-{file}"));
        let mut a = vec![
            "metrics",
            "--predictions",
            p(&path),
            "--data",
            p(&data),
            "--bootstrap",
            "0",
            "--out",
            p(&out),
        ];
        a.extend_from_slice(extra);
        fairrec(&a)
    };
    // A value spelled otherwise than the data spells it is not a new group.
    let at = preds
        .lines()
        .position(|l| l.contains("\"variant\":\"gender=female\""))
        .expect("a counterfactual variant stating gender=female");
    let cased: Vec<String> = preds
        .lines()
        .enumerate()
        .map(|(i, l)| {
            if i == at {
                l.replace("gender=female", "gender=Female")
            } else {
                l.to_string()
            }
        })
        .collect();
    std::fs::write(t.path().join("cased.jsonl"), cased.join("\n") + "\n").unwrap();
    let out = metrics("cased.jsonl", &[]);
    let e = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!out.status.success(), "{e}");
    assert!(e.contains(&format!("cased.jsonl:{}:", at + 1)), "{e}");
    assert!(
        e.contains("`Female` is not a value of `gender`") && e.contains("female"),
        "{e}"
    );
    // A prediction of another dataset's sample: an error unless --allow-partial.
    let foreign = preds.replacen("\"sample_id\":\"", "\"sample_id\":\"elsewhere-", 1);
    assert_ne!(foreign, preds);
    std::fs::write(t.path().join("foreign.jsonl"), &foreign).unwrap();
    let out = metrics("foreign.jsonl", &[]);
    let e = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        !out.status.success() && e.contains("1 of ") && e.contains("have no sample in"),
        "{e}"
    );
    assert!(metrics("foreign.jsonl", &["--allow-partial"])
        .status
        .success());
}
