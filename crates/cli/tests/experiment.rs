//! `fairrec experiment run/show` on a tiny synthetic grid: every method of paper A's
//! Table 2, the table over seeds, skipping finished cells, a SIGKILLed run continued to
//! the same table; paper B's methods and paradigms in its own table layout; and paper A's
//! train flags through the CLI.

mod common;

use common::{fails, fairrec, ok, p, small_dataset, spawn, tiny_hf_model};
use std::path::Path;
use std::time::{Duration, Instant};

const GRID: &str = r#"
name = "tiny"
methods = ["llm-rec", "cot", "prompt-eng-1", "prompt-eng-2", "prompt-eng-3", "ins-tuning", "cf", "diff", "cf-diff", "moe", "cl-moe"]
scenarios = ["age,gender"]
seeds = [0, 1]

[[datasets]]
name = "synthetic"
synth = { users = 60, items = 30 }
prepare = { dataset = "ml-100k", protocol = "cl-moe", max_liked = 2, max_disliked = 2 }

[[models]]
name = "builtin"
init = { hidden = 32, layers = 1, vocab_size = 400 }
finetune = { epochs = 1, lr = 1e-3, batch_size = 8, no_eval_before = true }

[train]
max_steps = 2
batch_size = 2
limit_train = 4
limit_valid = 6
no_eval_before = true

[audit]
limit = 8
bootstrap = 10

[paper.synthetic."age,gender".cl-moe]
f1 = 77.07
gd = 0.03
rate = 0.00433
"#;

fn cells(dir: &Path) -> usize {
    fn walk(p: &Path) -> usize {
        std::fs::read_dir(p).map_or(0, |r| {
            r.map(|e| e.unwrap().path())
                .map(|p| {
                    if p.is_dir() {
                        walk(&p)
                    } else {
                        usize::from(p.ends_with("cell.json"))
                    }
                })
                .sum()
        })
    }
    walk(&dir.join("cells"))
}

#[test]
fn table_2_grid_runs_skips_finished_cells_and_a_killed_run_gives_the_same_table() {
    let t = tempfile::tempdir().unwrap();
    let file = t.path().join("grid.toml");
    std::fs::write(&file, GRID).unwrap();
    let (a, b) = (t.path().join("a"), t.path().join("b"));
    let out = ok(&["experiment", "run", p(&file), "--out", p(&a)]);
    assert!(out.contains("17 cells"), "{out}");
    assert_eq!(cells(&a), 17, "5 prompting cells + 6 methods x 2 seeds");
    let md = std::fs::read_to_string(a.join("results.md")).unwrap();
    for m in [
        "| llm-rec | 1 |",
        "| cot | 1 |",
        "| prompt-eng-3 | 1 |",
        "| ins-tuning | 2 |",
        "| cf-diff | 2 |",
        "| cl-moe | 2 |",
    ] {
        assert!(md.contains(m), "{m} missing in\n{md}");
    }
    assert!(
        md.contains("GD ×10⁻² (age,gender)") && md.contains("paper F1 %") && md.contains("77.07")
    );
    let html = std::fs::read_to_string(a.join("results.html")).unwrap();
    assert!(html.contains("<svg") && html.contains("cl-moe"));
    let csv = std::fs::read_to_string(a.join("results.csv")).unwrap();
    assert!(csv
        .lines()
        .any(|l| l.starts_with("synthetic,builtin,\"age,gender\",cl-moe,gd/age,2,")));
    // the ins-tuning cell trained and audited with its own template
    let run: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            a.join("cells/synthetic/builtin/age+gender/ins-tuning/seed-0/audit/run.json"),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(run["template"], "ins-tuning");
    // a rerun skips every finished cell and writes the same table
    let t0 = Instant::now();
    ok(&["experiment", "run", p(&file), "--out", p(&a)]);
    assert!(
        t0.elapsed() < Duration::from_secs(20),
        "rerun took {:?}",
        t0.elapsed()
    );
    assert_eq!(std::fs::read_to_string(a.join("results.md")).unwrap(), md);
    // show re-renders the same table
    std::fs::remove_file(a.join("results.md")).unwrap();
    ok(&["experiment", "show", p(&a)]);
    assert_eq!(std::fs::read_to_string(a.join("results.md")).unwrap(), md);
    paired_comparisons_come_from_the_cells_audits(&a, &md);
    // kill a run part-way (SIGKILL), continue it: the same table
    let mut child = spawn(&["experiment", "run", p(&file), "--out", p(&b)]);
    let t0 = Instant::now();
    while cells(&b) < 8 {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before it could be killed"
        );
        assert!(t0.elapsed() < Duration::from_secs(600));
        std::thread::sleep(Duration::from_millis(5));
    }
    // One grid run per directory: a second one fails at once, naming the first.
    let e = fails(&["experiment", "run", p(&file), "--out", p(&b)]);
    assert!(
        e.contains("being written by another fairrec process"),
        "{e}"
    );
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(cells(&b) < 17);
    ok(&["experiment", "run", p(&file), "--out", p(&b)]);
    assert_eq!(std::fs::read_to_string(b.join("results.md")).unwrap(), md);
}

/// Every pair of the 11 methods is compared (`pairs.json`), with the prompting baselines'
/// one audit against every seed; a pair's figures are those of the two cells' own audits
/// (the cells audit the same test users); and the tables show them after the predictions
/// are gone, as committed results are (no predictions are committed).
fn paired_comparisons_come_from_the_cells_audits(a: &Path, md: &str) {
    let read = |p: &Path| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
    };
    let pairs = read(&a.join("pairs.json"));
    let table = &pairs[0];
    assert_eq!(table["cells"].as_array().unwrap().len(), 17);
    assert_eq!(
        table["pairs"].as_array().unwrap().len(),
        55,
        "11 methods, 2 by 2"
    );
    let pair = |x: &str, y: &str| {
        table["pairs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|q| q["a"] == x && q["b"] == y)
            .unwrap()
    };
    let cell = |m: &str, s: &str| {
        read(&a.join(format!(
            "cells/synthetic/builtin/age+gender/{m}/{s}/cell.json"
        )))
    };
    let q = pair("llm-rec", "ins-tuning");
    assert_eq!(q["seeds"], serde_json::json!([0, 1]));
    let f1 = &q["figures"]["f1"];
    let ins = (cell("ins-tuning", "seed-0")["metrics"]["f1"]
        .as_f64()
        .unwrap()
        + cell("ins-tuning", "seed-1")["metrics"]["f1"]
            .as_f64()
            .unwrap())
        / 2.0;
    assert_eq!(f1["a"], cell("llm-rec", "prompt")["metrics"]["f1"]);
    assert!((f1["b"].as_f64().unwrap() - ins).abs() < 1e-12, "{f1}");
    let gd = &pair("cf", "cl-moe")["figures"]["gd/age,gender"];
    let per: Vec<f64> = ["seed-0", "seed-1"]
        .iter()
        .map(|s| {
            let g = |m| cell(m, s)["metrics"]["gd/age,gender"].as_f64().unwrap();
            g("cf") - g("cl-moe")
        })
        .collect();
    assert_eq!(gd["per_pair"], serde_json::json!(per), "{gd}");
    assert!(
        md.contains("Paired comparisons") && md.contains("| cf − cl-moe | 2 |"),
        "{md}"
    );
    for f in walk(a)
        .into_iter()
        .filter(|f| f.ends_with("predictions.jsonl"))
    {
        std::fs::remove_file(f).unwrap();
    }
    ok(&["experiment", "show", p(a)]);
    assert_eq!(std::fs::read_to_string(a.join("results.md")).unwrap(), md);
}

const PAPER_B: &str = r#"
name = "tiny-b"
methods = ["sequential", "lora", "lora@fair", "p-tuning@fair", "mos", "ifairlrs", "fairllm", "up5"]
scenarios = ["gender"]
seeds = [0]

[[datasets]]
name = "synthetic"
synth = { users = 60, items = 30 }
prepare = { dataset = "ml-100k", protocol = "mos" }

[[models]]
name = "builtin"
init = { hidden = 32, layers = 1, vocab_size = 400 }

[train]
max_steps = 2
batch_size = 2
limit_train = 6
limit_valid = 4
no_eval_before = true
virtual_tokens = 4

[method_train."lora@fair"]
fairness_weight = 0.5

[method_train."p-tuning@fair"]
fairness_weight = 0.5

[audit]
limit = 12
bootstrap = 5

[paper.synthetic.gender.mos]
explicit = 53.71
auc = 69.64
"#;

#[test]
fn paper_b_grid_reports_stereotype_fairness_per_setting_and_side() {
    let t = tempfile::tempdir().unwrap();
    let file = t.path().join("b.toml");
    std::fs::write(&file, PAPER_B).unwrap();
    let a = t.path().join("a");
    // A part of the grid first: experiment.json keeps the file's whole grid, and the table
    // shows the cells that have finished.
    let (f, o) = (p(&file), p(&a));
    let only = |m: &'static str| ["experiment", "run", f, "--out", o, "--methods", m];
    let out = ok(&only("mos,lora"));
    assert!(out.contains("2 cells"), "{out}");
    let spec: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(a.join("experiment.json")).unwrap()).unwrap();
    assert_eq!(spec["methods"].as_array().unwrap().len(), 8, "{spec}");
    let md = std::fs::read_to_string(a.join("results.md")).unwrap();
    assert!(
        md.contains("2 finished cells") && md.contains("| mos | 1 |"),
        "{md}"
    );
    assert!(!md.contains("| up5 |"), "{md}");
    let e = fails(&only("cf"));
    assert!(
        e.contains("--methods cf") && e.contains("no such method"),
        "{e}"
    );
    let out = ok(&["experiment", "run", p(&file), "--out", p(&a)]);
    assert!(out.contains("8 cells"), "{out}");
    let md = std::fs::read_to_string(a.join("results.md")).unwrap();
    for m in [
        "8 finished cells",
        "% bootstrap interval",
        "| implicit (gender) | explicit (gender) | counterfactual (gender) | Σ\\|Δ\\| implicit | Σ\\|Δ\\| explicit | Σ\\|Δ\\| counterfactual | AUC % | Precision % | Recall % |",
        "paper explicit",
        "53.71",
        "| sequential | 1 | – |",
        "| lora@fair | 1 |",
        "By side (gender, explicit setting)",
        "| mos | users=",
        "| A − B | Seeds | F1 % | implicit (gender) | explicit (gender) | counterfactual (gender) | What the data supports |",
        "| sequential − lora | 1 |",
        "items=neutral",
    ] {
        assert!(md.contains(m), "{m} missing in\n{md}");
    }
    // the cells audited with paper B's template; the fair variant trained with the loss
    let cell = a.join("cells/synthetic/builtin/gender");
    let run: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(cell.join("mos/seed-0/audit/run.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(run["template"], "sequential");
    let cfg =
        std::fs::read_to_string(cell.join("lora@fair/seed-0/train/train_config.json")).unwrap();
    assert!(cfg.contains("\"fairness_weight\": 0.5"), "{cfg}");
    let log =
        std::fs::read_to_string(cell.join("p-tuning@fair/seed-0/train/train_log.jsonl")).unwrap();
    assert!(log.contains("\"fairness\""), "{log}");
    let c: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(cell.join("lora/seed-0/cell.json")).unwrap())
            .unwrap();
    let m = &c["metrics"];
    let trainable = m["trainable"].as_f64().unwrap();
    assert!(trainable > 0.0 && trainable < 1.0, "{m}");
    for k in [
        "stereo/gender/explicit",
        "stereo/gender/implicit",
        "auc",
        "precision",
    ] {
        assert!(m[k].as_f64().is_some(), "no {k} in {m}");
    }
    // the audit's interval of F1 reaches the cell
    let (lo, hi) = (m["ci_lo/f1"].as_f64(), m["ci_hi/f1"].as_f64());
    assert!(lo.zip(hi).is_some_and(|(lo, hi)| lo <= hi), "{m}");
    // a side's figure is the sum of its pairs
    let pairs: f64 = m
        .as_object()
        .unwrap()
        .iter()
        .filter(|(k, _)| k.starts_with("pair/gender/explicit/"))
        .map(|(_, v)| v.as_f64().unwrap().abs() * 100.0)
        .sum();
    let total = m["stereo/gender/explicit"].as_f64().unwrap();
    assert!((pairs - total).abs() < 1e-9, "{pairs} vs {total}");
    // the headline average, where defined, lies between its consistent and inconsistent parts
    let f = |k: &str| m[format!("{k}/gender/explicit")].as_f64();
    if let (Some(a), Some(s), Some(o)) =
        (f("stereo_avg"), f("stereo_avg_same"), f("stereo_avg_other"))
    {
        assert!(a >= s.min(o) - 1e-9 && a <= s.max(o) + 1e-9, "{m}");
    }
    let csv = std::fs::read_to_string(a.join("results.csv")).unwrap();
    assert!(
        csv.lines()
            .any(|l| l.starts_with("synthetic,builtin,\"gender\",mos,stereo/gender/explicit,1,")),
        "{csv}"
    );
    // Editing a method's flags makes its finished cell stale: a run of other methods leaves
    // it out of the tables (and `show` agrees) until a run includes it again.
    let edited = PAPER_B.replace(
        "[method_train.\"lora@fair\"]\nfairness_weight = 0.5",
        "[method_train.\"lora@fair\"]\nfairness_weight = 0.25",
    );
    assert_ne!(edited, PAPER_B);
    std::fs::write(&file, edited).unwrap();
    let out = ok(&only("mos"));
    assert!(
        out.contains("1 finished cell(s) left out") && out.contains("lora@fair/seed-0"),
        "{out}"
    );
    let md = std::fs::read_to_string(a.join("results.md")).unwrap();
    assert!(
        md.contains("7 finished cells") && !md.contains("| lora@fair |"),
        "{md}"
    );
    assert!(cell.join("lora@fair/seed-0/stale").exists());
    assert!(ok(&["experiment", "show", p(&a)]).contains("lora@fair/seed-0"));
    assert_eq!(std::fs::read_to_string(a.join("results.md")).unwrap(), md);
    let out = ok(&only("lora@fair"));
    assert!(!out.contains("left out"), "{out}");
    let md = std::fs::read_to_string(a.join("results.md")).unwrap();
    assert!(
        md.contains("8 finished cells") && md.contains("| lora@fair | 1 |"),
        "{md}"
    );
    let cfg =
        std::fs::read_to_string(cell.join("lora@fair/seed-0/train/train_config.json")).unwrap();
    assert!(cfg.contains("\"fairness_weight\": 0.25"), "{cfg}");
}

/// Paper B's Table VI: every ablation of MoS trains and is audited (the file's method
/// variants on a tiny world).
#[test]
fn every_table_vi_ablation_trains_and_audits() {
    let t = tempfile::tempdir().unwrap();
    let table6 = PAPER_B
        .replace(
            r#"methods = ["sequential", "lora", "lora@fair", "p-tuning@fair", "mos", "ifairlrs", "fairllm", "up5"]"#,
            r#"methods = ["mos", "mos@top2", "mos@stochastic", "mos@no-reweight", "mos@no-diversity", "mos@no-fairness"]"#,
        )
        .replace("[method_train.\"lora@fair\"]\nfairness_weight = 0.5", "[method_train.\"mos@top2\"]\nmos_top_k = 2\n\n[method_train.\"mos@stochastic\"]\nmos_routing = \"stochastic\"\n\n[method_train.\"mos@no-reweight\"]\nno_reweight = true\n\n[method_train.\"mos@no-diversity\"]\ndiversity_weight = 0.0")
        .replace("[method_train.\"p-tuning@fair\"]\nfairness_weight = 0.5", "[method_train.\"mos@no-fairness\"]\nfairness_weight = 0.0");
    assert!(
        table6.contains("no_reweight = true")
            && table6.contains("mos@no-fairness\"]\nfairness_weight = 0.0")
    );
    let file = t.path().join("table6.toml");
    std::fs::write(&file, table6).unwrap();
    let out = t.path().join("out");
    ok(&["experiment", "run", p(&file), "--out", p(&out)]);
    let cells = out.join("cells/synthetic/builtin/gender");
    for m in [
        "mos",
        "mos@top2",
        "mos@stochastic",
        "mos@no-reweight",
        "mos@no-diversity",
        "mos@no-fairness",
    ] {
        let dir = cells.join(m).join("seed-0");
        let summary: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join("train/summary.json")).unwrap())
                .unwrap();
        assert_eq!(summary["summary"]["steps"], 2, "{m}");
        assert!(dir.join("audit/metrics.json").exists(), "{m}");
        let adapter: serde_json::Value = serde_json::from_slice(
            &std::fs::read(dir.join("train/adapter/adapter_config.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(adapter["mos"]["reweight"], m != "mos@no-reweight", "{m}");
        // The audit records expert usage per group: K routed probabilities per group.
        let run: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join("audit/run.json")).unwrap()).unwrap();
        let routes = run["mos_routes"].as_object().unwrap();
        assert_eq!(routes.len(), 2, "{m}: {routes:?}");
        for usage in routes.values() {
            let u = usage.as_array().unwrap();
            assert_eq!(u.len(), 4, "{m}");
            assert!(u.iter().all(|x| (0.0..=1.0).contains(&x.as_f64().unwrap())));
        }
    }
    let md = std::fs::read_to_string(out.join("results.md")).unwrap();
    assert!(md.contains("6 finished cells"), "{md}");
}

#[test]
fn experiment_files_are_checked() {
    let t = tempfile::tempdir().unwrap();
    let file = t.path().join("bad.toml");
    for (from, to, message) in [
        ("\"cot\"", "\"cott\"", "method `cott`"),
        (
            "max_steps = 2",
            "max_stepz = 2",
            "`max_stepz` is not an option of `train`",
        ),
    ] {
        std::fs::write(&file, GRID.replace(from, to)).unwrap();
        let out = t.path().join("o");
        let e = fails(&["experiment", "run", p(&file), "--out", p(&out)]);
        assert!(e.contains(message), "{e}");
        assert!(
            !out.join("cells").exists(),
            "nothing may run before the flags are checked"
        );
    }
}

#[test]
fn a_failed_cell_says_why_on_the_console_and_in_its_log() {
    let t = tempfile::tempdir().unwrap();
    let file = t.path().join("bad.toml");
    let grid = GRID
        .replace(
            r#"methods = ["llm-rec", "cot", "prompt-eng-1", "prompt-eng-2", "prompt-eng-3", "ins-tuning", "cf", "diff", "cf-diff", "moe", "cl-moe"]"#,
            r#"methods = ["ins-tuning"]"#,
        )
        .replace("[train]\nmax_steps = 2", "[train]\nmax_steps = 2\nlr = -1.0");
    assert!(grid.contains("lr = -1.0") && grid.contains(r#"methods = ["ins-tuning"]"#));
    std::fs::write(&file, grid).unwrap();
    let out = t.path().join("o");
    let e = fails(&["-q", "experiment", "run", p(&file), "--out", p(&out)]);
    // Under -q the final error says, cell by cell, why (a negative value from the file
    // reaches the flag as `--lr=-1`, not as a flag of its own).
    assert!(e.contains("2 cell(s) failed:"), "{e}");
    assert_eq!(e.matches("lr must be a positive number").count(), 2, "{e}");
    let logs: Vec<_> = walk(&out)
        .into_iter()
        .filter(|f| f.ends_with("log.txt"))
        .collect();
    assert_eq!(logs.len(), 2, "{logs:?}");
    for l in logs {
        let log = std::fs::read_to_string(&l).unwrap();
        assert!(
            log.contains("--lr=-1")
                && log.contains(
                    "error: invalid training configuration: lr must be a positive number"
                ),
            "{log}"
        );
    }
}

#[test]
fn paper_a_methods_through_train_flags() {
    let t = tempfile::tempdir().unwrap();
    let data = small_dataset(t.path(), "40");
    let model = t.path().join("model");
    tiny_hf_model(&model);
    // `train` of the model on the data into `out`, then `extra`.
    let argv = |out: &Path, extra: &[&str]| -> Vec<String> {
        [
            "train",
            "--model",
            p(&model),
            "--data",
            p(&data),
            "--out",
            p(out),
        ]
        .iter()
        .chain(extra)
        .map(|s| s.to_string())
        .collect()
    };
    let run = |out: &str, extra: &[&str]| {
        let o = t.path().join(out);
        let mut args = argv(&o, &[]);
        args.extend(
            [
                "--max-steps",
                "2",
                "--limit-train",
                "4",
                "--limit-valid",
                "4",
                "--no-eval-before",
            ]
            .map(String::from),
        );
        args.extend(extra.iter().map(|s| s.to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        (ok(&args), o)
    };
    // CL-MoE, multi-attribute: 1 original + 5 counterfactual + 2 + 3 auxiliary + 1 neutral
    let (s, o) = run("clmoe", &["--method", "cl-moe"]);
    assert!(s.contains("4 train samples (48 prompts)"), "{s}");
    let cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(o.join("train_config.json")).unwrap())
            .unwrap();
    assert_eq!(cfg["train"]["lr"], 5e-4);
    assert_eq!(cfg["train"]["epochs"], 5);
    assert_eq!(cfg["train"]["lora"]["experts"], 3);
    assert_eq!(cfg["train"]["lora"]["r"], 16);
    assert_eq!(cfg["train"]["objective"]["curriculum"]["lambda"], 0.25);
    let log = std::fs::read_to_string(o.join("train_log.jsonl")).unwrap();
    assert!(
        log.contains("\"tau\"")
            && log.contains("\"expert/2\"")
            && log.contains("\"sigma/aux-age\"")
    );
    // -GA: no auxiliary samples; single attribute: lr 3e-4, one counterfactual, no auxiliaries
    let (s, _) = run(
        "ga",
        &["--method", "cl-moe", "--no-aux-age", "--no-aux-gender"],
    );
    assert!(s.contains("(28 prompts)"), "{s}");
    // The readings as options: single-flip counterfactuals (3 for gender x age: 4 samples x
    // (1 original + 3 + 1 neutral) = 20 prompts, 28 jointly) and L_diff on the originals only.
    let (s, o) = run(
        "flip",
        &[
            "--method",
            "cf-diff",
            "--counterfactuals",
            "single-flip",
            "--diff-over",
            "original",
        ],
    );
    assert!(s.contains("(20 prompts)"), "{s}");
    let cfg = std::fs::read_to_string(o.join("train_config.json")).unwrap();
    assert!(
        cfg.contains("\"counterfactuals\": \"single-flip\"")
            && cfg.contains("\"diff_over\": \"original\""),
        "{cfg}"
    );
    let (s, _) = run("joint", &["--method", "cf-diff"]);
    assert!(s.contains("(28 prompts)"), "{s}");
    let x = t.path().join("x");
    let refused = |extra: &[&str]| {
        let args = argv(&x, extra);
        fails(&args.iter().map(String::as_str).collect::<Vec<_>>())
    };
    let e = refused(&["--method", "diff", "--counterfactuals", "single-flip"]);
    assert!(
        e.contains("--counterfactuals applies to methods with counterfactual copies"),
        "{e}"
    );
    let e = refused(&["--method", "cf", "--diff-over", "original"]);
    assert!(e.contains("diff_over applies where L_diff is on"), "{e}");
    let (s, o) = run("single", &["--method", "cf-diff", "--attributes", "gender"]);
    assert!(s.contains("(12 prompts)"), "{s}");
    let cfg = std::fs::read_to_string(o.join("train_config.json")).unwrap();
    assert!(cfg.contains("\"lr\": 0.0003"), "{cfg}");
    // the adapter audits in the single-attribute scenario
    let a = t.path().join("audit");
    ok(&[
        "audit",
        "--model",
        p(&model),
        "--adapter",
        p(&o.join("adapter")),
        "--data",
        p(&data),
        "--attributes",
        "gender",
        "--limit",
        "4",
        "--bootstrap",
        "5",
        "--out",
        p(&a),
    ]);
    let m = std::fs::read_to_string(a.join("metrics.json")).unwrap();
    assert!(m.contains("\"gender\"") && !m.contains("\"age,gender\""));
    // wrong combinations are refused
    let e = fairrec(&[
        "train",
        "--method",
        "cf",
        "--diff-weight",
        "1",
        "--model",
        p(&model),
        "--data",
        p(&data),
        "--out",
        p(&t.path().join("x")),
    ]);
    assert!(
        !e.status.success()
            && String::from_utf8_lossy(&e.stderr).contains("L_diff needs the neutral copies")
    );
    let e = fails(&[
        "train",
        "--method",
        "cf",
        "--attributes",
        "race",
        "--model",
        p(&model),
        "--data",
        p(&data),
        "--out",
        p(&t.path().join("y")),
    ]);
    assert!(e.contains("`race` is not an attribute"), "{e}");
}

#[test]
fn show_rerenders_committed_cells_and_names_degenerate_answers() {
    // The committed Sushi3 table: cot, prompt-eng-2 and moe never answer Yes (F1 0);
    // prompt-eng-3 says Yes to every liked target (recall 1). Make every seed of `cf` do
    // that too and re-render.
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../experiments/results/paper-a-table2-sushi3");
    let t = tempfile::tempdir().unwrap();
    let (plain, changed) = (t.path().join("plain"), t.path().join("changed"));
    for to in [&plain, &changed] {
        copy_tree(&src, to, &[]);
    }
    let cf = changed.join("cells/sushi3/smollm2-135m/age+gender/cf");
    for seed in 0..3 {
        let path = cf.join(format!("seed-{seed}/cell.json"));
        let mut c: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert!(c["metrics"]["recall"].as_f64().unwrap() < 1.0);
        c["metrics"]["recall"] = serde_json::json!(1.0);
        std::fs::write(&path, c.to_string()).unwrap();
    }
    let render = |dir: &Path| {
        ok(&["experiment", "show", p(dir)]);
        std::fs::read_to_string(dir.join("results.md")).unwrap()
    };
    let (before, after) = (render(&plain), render(&changed));
    for md in [&before, &after] {
        assert!(
            md.contains("F1 is 0 for cot, prompt-eng-2, moe in every seed"),
            "{md}"
        );
    }
    assert!(
        before.contains("Recall is 100 % for prompt-eng-3 in every seed"),
        "{before}"
    );
    assert!(
        after.contains("Recall is 100 % for prompt-eng-3, cf in every seed"),
        "{after}"
    );
}

const TABLES: [&str; 3] = ["results.md", "results.csv", "results.html"];

#[test]
fn every_committed_result_rerenders_to_its_committed_tables() {
    // experiments/results/<name>/ holds experiment.json, the cells' cell.json and the
    // tables: `show` on a copy must write the same Markdown, CSV and HTML, so no committed
    // table says what its cells do not.
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../experiments/results");
    let mut checked = Vec::new();
    for e in std::fs::read_dir(&root).unwrap() {
        let src = e.unwrap().path();
        if !src.join("experiment.json").is_file() {
            continue;
        }
        let t = tempfile::tempdir().unwrap();
        copy_tree(&src, t.path(), &TABLES);
        ok(&["experiment", "show", p(t.path())]);
        for table in TABLES {
            let committed = std::fs::read_to_string(src.join(table)).unwrap();
            let rendered = std::fs::read_to_string(t.path().join(table)).unwrap();
            assert!(
                committed == rendered,
                "{}: the committed {table} differs from what its cells render",
                src.display()
            );
        }
        checked.push(src.file_name().unwrap().to_string_lossy().into_owned());
    }
    assert!(
        checked.iter().any(|n| n == "paper-a-table2-sushi3"),
        "{checked:?}"
    );
}

/// Copy every file under `src` to the same place under `to`, except the top-level files
/// named in `skip`.
fn copy_tree(src: &Path, to: &Path, skip: &[&str]) {
    for entry in walk(src) {
        let rel = entry.strip_prefix(src).unwrap();
        if skip.iter().any(|s| rel == Path::new(s)) {
            continue;
        }
        let dest = to.join(rel);
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        std::fs::copy(&entry, &dest).unwrap();
    }
}

/// Every file under `dir`.
fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let path = e.unwrap().path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// Every `cell.json` under `dir`, by path: its bytes.
fn cell_files(dir: &Path) -> std::collections::BTreeMap<std::path::PathBuf, Vec<u8>> {
    walk(dir)
        .into_iter()
        .filter(|f| f.ends_with("cell.json"))
        .map(|f| {
            let b = std::fs::read(&f).unwrap();
            (f, b)
        })
        .collect()
}

#[test]
fn where_cells_run_is_not_their_identity_on_the_cpu_in_f32() {
    let t = tempfile::tempdir().unwrap();
    let file = t.path().join("grid.toml");
    let grid = GRID
        .replace(
            r#"methods = ["llm-rec", "cot", "prompt-eng-1", "prompt-eng-2", "prompt-eng-3", "ins-tuning", "cf", "diff", "cf-diff", "moe", "cl-moe"]"#,
            r#"methods = ["llm-rec", "cf-diff"]"#,
        )
        .replace("seeds = [0, 1]", "seeds = [0]");
    assert!(grid.contains(r#"methods = ["llm-rec", "cf-diff"]"#) && grid.contains("seeds = [0]\n"));
    std::fs::write(&file, &grid).unwrap();
    let out = t.path().join("o");
    let run = |extra: &[&str]| {
        let mut a = vec!["-q", "experiment", "run", p(&file), "--out", p(&out)];
        a.extend_from_slice(extra);
        ok(&a);
        cell_files(&out)
    };
    let first = run(&[]);
    assert_eq!(first.len(), 2);
    for b in first.values() {
        let v: serde_json::Value = serde_json::from_slice(b).unwrap();
        assert_eq!(
            (v["device"].as_str(), v["dtype"].as_str()),
            (Some("cpu"), Some("f32"))
        );
    }
    // Naming the CPU and f32 (what auto is here) reruns nothing: the same cells, untouched.
    if !fairrec_lm::device::CUDA_BUILD {
        assert_eq!(run(&["--device", "cpu", "--dtype", "f32"]), first);
    }
    // A bf16 base is another computation: every cell runs again, with another identity.
    let half = run(&["--dtype", "bf16"]);
    assert_eq!(
        half.keys().collect::<Vec<_>>(),
        first.keys().collect::<Vec<_>>()
    );
    for (f, b) in &half {
        let (v, was): (serde_json::Value, serde_json::Value) = (
            serde_json::from_slice(b).unwrap(),
            serde_json::from_slice(&first[f]).unwrap(),
        );
        assert_eq!(v["dtype"], "bf16", "{}", f.display());
        assert_ne!(v["hash"], was["hash"], "{}", f.display());
    }
    // The model's own setting wins over the command line's, and is checked up front.
    let per_model = grid.replace(
        "name = \"builtin\"\n",
        "name = \"builtin\"\ndtype = \"f32\"\n",
    );
    assert_ne!(per_model, grid);
    std::fs::write(&file, &per_model).unwrap();
    assert_eq!(
        run(&["--dtype", "bf16"])
            .values()
            .map(|b| { serde_json::from_slice::<serde_json::Value>(b).unwrap()["dtype"].clone() })
            .collect::<Vec<_>>(),
        vec!["f32", "f32"]
    );
    std::fs::write(
        &file,
        grid.replace(
            "name = \"builtin\"\n",
            "name = \"builtin\"\ndtype = \"fp8\"\n",
        ),
    )
    .unwrap();
    let e = fails(&["experiment", "run", p(&file), "--out", p(&out)]);
    assert!(
        e.contains("model `builtin`: dtype `fp8`: expected auto, f32, bf16 or f16"),
        "{e}"
    );
    std::fs::write(
        &file,
        grid.replace("[audit]\n", "[audit]\ndevice = \"cpu\"\n"),
    )
    .unwrap();
    let e = fails(&["experiment", "run", p(&file), "--out", p(&out)]);
    assert!(e.contains("[audit]: `device` is where cells run"), "{e}");
}
