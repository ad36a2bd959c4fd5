//! Property-based tests (issue 22): mutated predictions, ranked lists and `metrics.json`
//! files never panic their readers or the audits; each either parses (and then audits,
//! or fails with a reason) or fails naming the file and, for a bad line, its number.

#[path = "../../../testsupport/mutate.rs"]
mod mutate;

use fairrec_metrics::lists::{list_fairness, parse_lists};
use fairrec_metrics::predictions::parse_numbered_bytes;
use fairrec_metrics::{audit, AuditConfig, MetricsFile};
use mutate::{edits, mutated};
use proptest::prelude::*;
use std::collections::HashMap;
use std::path::Path;

/// A valid predictions file: 6 samples x original, neutral and two gender variants.
fn predictions() -> Vec<u8> {
    let mut out = String::new();
    for i in 0..6 {
        for (j, v) in ["original", "neutral", "gender=female", "gender=male"]
            .iter()
            .enumerate()
        {
            let p = ((i * 7 + j * 3) % 10) as f64 / 10.0 + 0.05;
            out.push_str(&format!(
                "{{\"sample_id\":\"s{i}\",\"variant\":\"{v}\",\"label\":{},\"p_yes\":{p}}}\n",
                i % 2 == 0
            ));
        }
    }
    out.into_bytes()
}

/// A valid lists file: 3 instructions x neutral and two gender variants.
fn lists() -> Vec<u8> {
    let mut out = String::new();
    for i in 0..3 {
        for (j, v) in ["neutral", "gender=female", "gender=male"]
            .iter()
            .enumerate()
        {
            let items: Vec<String> = (0..4)
                .map(|k| format!("\"m{}\"", (i + j * k) % 6))
                .collect();
            out.push_str(&format!(
                "{{\"instruction_id\":\"i{i}\",\"variant\":\"{v}\",\"items\":[{}]}}\n",
                items.join(",")
            ));
        }
    }
    out.into_bytes()
}

/// Whether error `e` names `path`, and a line when it names one (`path:N:`, N >= 1).
fn names(e: &str, path: &Path) -> bool {
    let p = path.display().to_string();
    let Some(rest) = e.split_once(&p).map(|(_, r)| r) else {
        return false;
    };
    match rest.strip_prefix(':') {
        Some(r) if r.starts_with(|c: char| c.is_ascii_digit()) => {
            let n: String = r.chars().take_while(char::is_ascii_digit).collect();
            n.parse::<usize>().is_ok_and(|n| n >= 1)
        }
        _ => true,
    }
}

proptest! {
    #![proptest_config(mutate::config(512))]

    #[test]
    fn mutated_predictions_parse_or_name_file_and_line(edits in edits(6)) {
        let path = Path::new("run/predictions.jsonl");
        let bytes = mutated(&predictions(), &edits);
        match parse_numbered_bytes(path, &bytes) {
            Err(e) => prop_assert!(names(&e.to_string(), path), "`{e}`"),
            Ok(numbered) => {
                let preds: Vec<_> = numbered.into_iter().map(|(_, p)| p).collect();
                let cfg = AuditConfig { bootstrap: 20, ..Default::default() };
                // Parsed predictions audit, or fail with a reason (a variant gone).
                let _ = audit(&preds, &HashMap::new(), &[], &cfg);
            }
        }
    }

    #[test]
    fn mutated_lists_parse_or_name_file_and_line(edits in edits(6), k in 0usize..6) {
        let path = Path::new("run/lists.jsonl");
        let bytes = mutated(&lists(), &edits);
        let Ok(text) = std::str::from_utf8(&bytes) else {
            return Ok(()); // the command refuses non-UTF-8 before parsing, naming the file
        };
        match parse_lists(path, text) {
            Err(e) => prop_assert!(names(&e.to_string(), path), "`{e}`"),
            Ok(l) => {
                let _ = list_fairness(&l, k, 20, 0, 0.95);
            }
        }
    }

    #[test]
    fn mutated_metrics_files_read_or_name_the_file(edits in edits(4)) {
        let t = tempfile::tempdir().unwrap();
        let preds: Vec<_> = parse_numbered_bytes(Path::new("p"), &predictions())
            .unwrap()
            .into_iter()
            .map(|(_, p)| p)
            .collect();
        let m = audit(&preds, &HashMap::new(), &[], &AuditConfig { bootstrap: 0, ..Default::default() })
            .unwrap();
        let file = MetricsFile { metrics: Some(m), inputs: Default::default(), fairllm: None };
        let path = t.path().join("metrics.json");
        file.write(&path).unwrap();
        std::fs::write(&path, mutated(&std::fs::read(&path).unwrap(), &edits)).unwrap();
        if let Err(e) = MetricsFile::read(&path) {
            prop_assert!(names(&e.to_string(), &path), "`{e}`");
        }
    }
}
