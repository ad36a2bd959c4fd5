//! Issue 22: a SIGKILL at any moment of a write leaves the earlier outputs whole or the
//! new ones whole, never a mix; the next writer clears what the killed one left. Each
//! test kills a replacing run at a range of moments after its outputs start to be
//! staged, then reads the directory as fairrec's readers do (completing, as they do, a commit
//! that a kill interrupted).

mod common;
use common::*;
use fairrec_data::raw::sha256_hex;
use std::path::Path;
use std::time::{Duration, Instant};

/// Spawn `fairrec args`; once `dir` holds a staging directory (or the run ends), wait
/// `delay` and SIGKILL it. Returns whether the kill came before the run's own end.
fn kill_while_staging(args: &[&str], dir: &Path, delay: Duration) -> bool {
    let mut child = spawn(args);
    let t0 = Instant::now();
    while !dir.join(fairrec_core::stage::STAGE).exists() {
        if child.try_wait().unwrap().is_some() {
            return false;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(120),
            "{args:?} never staged"
        );
        std::thread::sleep(Duration::from_micros(200));
    }
    std::thread::sleep(delay);
    let killed = child.try_wait().unwrap().is_none();
    let _ = child.kill();
    child.wait().unwrap();
    killed
}

/// Names in `dir` a killed writer leaves behind (staging, journal, temporary files).
fn leftovers(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect()
}

const DELAYS_MS: [u64; 12] = [0, 1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 100];
const SEEDS: [&str; 12] = [
    "10", "11", "12", "13", "14", "15", "16", "17", "18", "19", "20", "21",
];

#[test]
fn a_killed_data_prepare_leaves_one_whole_dataset() {
    let t = tempfile::tempdir().unwrap();
    let data = prepared_world(
        t.path(),
        "2000",
        "300",
        &["--protocol", "cl-moe", "--seed", "1"],
    );
    let raw = t.path().join("raw");
    let prepare = |seed: &'static str| -> Vec<&str> {
        let mut a = vec!["data", "prepare", "--dataset", "ml-100k", "--raw", p(&raw)];
        a.extend([
            "--out",
            p(&data),
            "--protocol",
            "cl-moe",
            "--seed",
            seed,
            "--force",
        ]);
        a
    };
    let seed = |d: &Path| -> u64 {
        let m: serde_json::Value =
            serde_json::from_slice(&std::fs::read(d.join("manifest.json")).unwrap()).unwrap();
        m["seed"].as_u64().unwrap()
    };
    let mut killed = 0;
    for (i, ms) in DELAYS_MS.into_iter().enumerate() {
        let new = SEEDS[i];
        let before = seed(&data);
        killed += usize::from(kill_while_staging(
            &prepare(new),
            &data,
            Duration::from_millis(ms),
        ));
        // A reader sees one whole dataset: every split as its manifest records it.
        let stats = ok(&["data", "stats", p(&data)]);
        let m: serde_json::Value =
            serde_json::from_slice(&std::fs::read(data.join("manifest.json")).unwrap()).unwrap();
        for split in ["train", "valid", "test"] {
            let name = format!("{split}.jsonl");
            let bytes = std::fs::read(data.join(&name)).unwrap();
            assert_eq!(
                m["outputs"][&name].as_str().unwrap(),
                sha256_hex(&bytes),
                "{name}"
            );
        }
        let now = seed(&data);
        assert!(
            now == before || now.to_string() == new,
            "seed {now} after killing a prepare of seed {new} over seed {before}"
        );
        assert!(stats.contains(&format!("(seed {now})")), "{stats}");
    }
    assert!(
        killed > 0,
        "no kill landed while the dataset was being written"
    );
    // The next writer clears every leftover.
    ok(&prepare("3"));
    assert_eq!(seed(&data), 3);
    assert!(leftovers(&data).is_empty(), "{:?}", leftovers(&data));
    assert!(
        !std::fs::read_dir(t.path()).unwrap().any(|e| e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .starts_with('.')),
        "nothing is left beside the dataset either"
    );
}

#[test]
fn a_killed_audit_leaves_predictions_and_report_of_one_run() {
    let t = tempfile::tempdir().unwrap();
    let (data, model) = data_and_model(t.path(), "40");
    let out = t.path().join("audit");
    let audit = |limit: &'static str| -> Vec<&str> {
        vec![
            "audit",
            "--model",
            p(&model),
            "--data",
            p(&data),
            "--limit",
            limit,
            "--bootstrap",
            "200",
            "--out",
            p(&out),
            "--force",
        ]
    };
    ok(&audit("2"));
    let mut killed = 0;
    for (i, ms) in DELAYS_MS.into_iter().enumerate() {
        let limit = ["4", "2"][i % 2];
        killed += usize::from(kill_while_staging(
            &audit(limit),
            &out,
            Duration::from_millis(ms),
        ));
        // A kill inside the commit leaves its journal, which the next reader or writer
        // completes (README, guarantee 3): read as fairrec's readers do, after `settle`.
        fairrec_core::stage::settle(&out, false).unwrap();
        assert!(!out.join(fairrec_core::stage::JOURNAL).exists());
        // The report describes the predictions beside it, and the run record too.
        let metrics: serde_json::Value =
            serde_json::from_slice(&std::fs::read(out.join("metrics.json")).unwrap()).unwrap();
        let preds = std::fs::read(out.join("predictions.jsonl")).unwrap();
        assert_eq!(
            metrics["inputs"]["predictions_sha256"].as_str().unwrap(),
            sha256_hex(&preds),
            "metrics.json is not the report of predictions.jsonl"
        );
        let run: serde_json::Value =
            serde_json::from_slice(&std::fs::read(out.join("run.json")).unwrap()).unwrap();
        let lines = preds.iter().filter(|b| **b == b'\n').count();
        assert_eq!(run["prompts"].as_u64().unwrap() as usize, lines);
        let md = std::fs::read_to_string(out.join("report.md")).unwrap();
        assert!(md.contains(&format!("{lines} lines)")), "{md}");
    }
    assert!(
        killed > 0,
        "no kill landed while the audit was being written"
    );
    ok(&audit("2"));
    assert!(leftovers(&out).is_empty(), "{:?}", leftovers(&out));
}
