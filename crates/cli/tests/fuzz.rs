//! Property-based tests (issue 22) of the parsers that live in the binary: mutated run
//! files (`--config`) and experiment files never panic `fairrec`; each run either
//! succeeds or fails naming the file or the flag at fault.

mod common;
#[path = "../../../testsupport/mutate.rs"]
mod mutate;

use common::p;
use mutate::{edits, mutated};
use proptest::prelude::*;

/// `fairrec args` run in `dir` (a mutated relative path lands there) must not panic
/// (exit 101, "panicked"); returns (success, stderr).
fn run(dir: &std::path::Path, args: &[&str]) -> (bool, String) {
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_fairrec"))
        .args(args)
        .current_dir(dir)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    let e = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(
        o.status.code() != Some(101) && !e.contains("panicked"),
        "fairrec {args:?} panicked: {e}"
    );
    (o.status.success(), e)
}

const PREDICTIONS: &str = concat!(
    "{\"sample_id\":\"a\",\"variant\":\"original\",\"label\":true,\"p_yes\":0.7}\n",
    "{\"sample_id\":\"a\",\"variant\":\"neutral\",\"label\":true,\"p_yes\":0.6}\n",
    "{\"sample_id\":\"a\",\"variant\":\"gender=female\",\"label\":true,\"p_yes\":0.4}\n",
    "{\"sample_id\":\"b\",\"variant\":\"original\",\"label\":false,\"p_yes\":0.2}\n",
    "{\"sample_id\":\"b\",\"variant\":\"neutral\",\"label\":false,\"p_yes\":0.3}\n",
    "{\"sample_id\":\"b\",\"variant\":\"gender=female\",\"label\":false,\"p_yes\":0.6}\n",
);

const EXPERIMENT: &str = r#"name = "fuzz"
description = "a grid over data that is not there"
methods = ["llm-rec", "ins-tuning"]
scenarios = ["gender"]
seeds = [0, 1]

[[datasets]]
name = "d"
path = "/nonexistent/data"

[[models]]
name = "m"
path = "/nonexistent/model"

[train]
epochs = 1
limit_train = 4

[audit]
limit = 3
bootstrap = 10
"#;

proptest! {
    #![proptest_config(mutate::config(96))]

    #[test]
    fn mutated_run_files_run_or_name_the_file_or_flag(edits in edits(5)) {
        let t = tempfile::tempdir().unwrap();
        let preds = t.path().join("p.jsonl");
        std::fs::write(&preds, PREDICTIONS).unwrap();
        let text = format!(
            "predictions = \"{}\"\nout = \"{}\"\nbootstrap = 0\nthreshold = 0.5\nseed = 3\n",
            p(&preds),
            p(&t.path().join("out"))
        );
        let file = t.path().join("run.toml");
        std::fs::write(&file, mutated(text.as_bytes(), &edits)).unwrap();
        let (ok, e) = run(t.path(), &["metrics", "--config", p(&file)]);
        prop_assert!(
            // or the path the file gives (a mutated one included: all lie under a `tmp` dir)
            ok || e.contains("run.toml") || e.contains("--") || e.contains("jsonl") || e.contains("tmp"),
            "{e}"
        );
    }

    #[test]
    fn mutated_experiment_files_fail_naming_the_file(edits in edits(5)) {
        let t = tempfile::tempdir().unwrap();
        let file = t.path().join("grid.toml");
        std::fs::write(&file, mutated(EXPERIMENT.as_bytes(), &edits)).unwrap();
        let out = t.path().join("out");
        let (ok, e) = run(t.path(), &["experiment", "run", p(&file), "--out", p(&out)]);
        // Nothing it names exists: a grid that parses fails on its data or model.
        prop_assert!(!ok, "{e}");
        prop_assert!(e.contains("grid.toml"), "{e}");
        if out.join("experiment.json").exists() {
            let (_, e) = run(t.path(), &["experiment", "show", p(&out)]);
            prop_assert!(!e.contains("panicked"));
        }
    }
}
