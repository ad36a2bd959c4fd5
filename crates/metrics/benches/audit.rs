//! Benchmark: parse and audit 1,000,000 prediction lines (76,924 samples x 13 variants of
//! paper A's gender x age scenario), with and without 200 bootstrap resamples.
//!
//! Run with `cargo bench -p fairrec-metrics --bench audit`.

use fairrec_core::Rng;
use fairrec_metrics::{audit, parse_predictions, AuditConfig};
use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::Path;
use std::time::Instant;

fn main() {
    let variants = [
        "original",
        "neutral",
        "age=young",
        "age=middle aged",
        "age=old",
        "gender=male",
        "gender=female",
        "age=young,gender=male",
        "age=young,gender=female",
        "age=middle aged,gender=male",
        "age=middle aged,gender=female",
        "age=old,gender=male",
        "age=old,gender=female",
    ];
    let mut r = Rng::new(1);
    let mut text = String::with_capacity(100_000_000);
    let mut lines = 0;
    let mut i = 0;
    while lines < 1_000_000 {
        let label = r.below(2) == 1;
        for v in variants {
            if lines == 1_000_000 {
                break;
            }
            let p = (if label { 0.6 } else { 0.4 } + 0.5 * (r.f64() - 0.5)).clamp(0.0, 1.0);
            writeln!(
                text,
                r#"{{"sample_id": "u{i}", "variant": "{v}", "label": {label}, "p_yes": {p:.6}}}"#
            )
            .unwrap();
            lines += 1;
        }
        i += 1;
    }
    for resamples in [0, 200] {
        let mut times = Vec::new();
        for _ in 0..3 {
            let t0 = Instant::now();
            let preds = parse_predictions(Path::new("bench.jsonl"), &text).unwrap();
            let t_parse = t0.elapsed().as_secs_f64();
            let m = audit(
                &preds,
                &HashMap::new(),
                &[],
                &AuditConfig {
                    bootstrap: resamples,
                    ..Default::default()
                },
            )
            .unwrap();
            assert_eq!(m.n_predictions, 1_000_000);
            times.push((t0.elapsed().as_secs_f64(), t_parse));
        }
        times.sort_by(|a, b| a.0.total_cmp(&b.0));
        println!(
            "metrics over 1,000,000 lines ({i} samples), {resamples} resamples: median {:.2}s (parse {:.2}s), min {:.2}s",
            times[1].0, times[1].1, times[0].0
        );
    }
}
