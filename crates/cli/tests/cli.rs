//! The `fairrec` binary end to end: commands, run files, errors.

mod common;
use common::*;
use std::path::Path;

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// The whole quickstart pipeline on a reduced world: every step runs, the report's numbers
/// are the audits' numbers, the label rates are the data's, the HTML is self-contained,
/// and a rerun redoes nothing and reports the same figures.
#[test]
fn quickstart_runs_end_to_end_on_a_small_world() {
    let t = tempfile::tempdir().unwrap();
    let out = t.path().join("qs");
    let args = [
        "quickstart",
        "--out",
        p(&out),
        "--users",
        "300",
        "--items",
        "40",
        "--finetune-epochs",
        "1",
        "--bootstrap",
        "20",
    ];
    let s = ok(&args);
    assert!(s.contains("report: "), "{s}");
    assert!(s.contains("LoRA (LLM-RS baseline): F1"), "{s}");
    for f in [
        "report.json",
        "report.md",
        "report.html",
        "results.md",
        "experiment.json",
    ] {
        assert!(out.join(f).exists(), "{f}");
    }
    let r = json(&out.join("report.json"));
    assert_eq!(r["seed"], 0);
    assert_eq!(r["world"]["users"], 300);
    assert_eq!(r["world"]["group_effect"], 0.0);
    assert_eq!(r["joint"], "age,gender");
    assert_eq!(r["data_hash"].as_str().unwrap().len(), 64);
    let methods: Vec<&str> = r["methods"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["method"].as_str().unwrap())
        .collect();
    assert_eq!(methods, ["lora", "cf-diff", "cl-moe"]);
    assert_eq!(r["findings"].as_array().unwrap().len(), 3);
    // Each method's figures are those of its own audit.
    let cells = out.join("cells/synthetic/builtin/age+gender");
    for m in r["methods"].as_array().unwrap() {
        let name = m["method"].as_str().unwrap();
        let a = json(&cells.join(name).join("seed-0/audit/metrics.json"));
        assert_eq!(m["f1"]["value"], a["original"]["f1"], "{name}");
        assert_eq!(m["f1"]["ci"], a["ci"]["original.f1"], "{name}");
        assert_eq!(m["auc"], a["original"]["auc"], "{name}");
        for set in ["age,gender", "age", "gender"] {
            let (mine, theirs) = (&m["fairness"][set], &a["fairness"][set]);
            assert_eq!(mine["gd"]["value"], theirs["gd"], "{name} {set}");
            assert_eq!(mine["gd"]["ci"], theirs["ci"]["gd"], "{name} {set}");
            assert_eq!(mine["rate_sq"]["value"], theirs["rate_sq"], "{name} {set}");
        }
        let cell = json(&cells.join(name).join("seed-0/cell.json"));
        assert!(
            cell["device"].is_string() && cell["dtype"].is_string(),
            "{cell}"
        );
        let train = json(&cells.join(name).join("seed-0/train/summary.json"));
        assert_eq!(m["train_seconds"], train["summary"]["seconds"], "{name}");
    }
    // The label rates are counted from the prepared train split.
    let data = std::fs::read_dir(out.join("data"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.is_dir())
        .unwrap();
    let (mut n, mut liked) = (0usize, 0usize);
    for line in std::fs::read_to_string(data.join("train.jsonl"))
        .unwrap()
        .lines()
    {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        if v["attributes"]["gender"] == "female" {
            n += 1;
            liked += v["label"].as_bool().unwrap() as usize;
        }
    }
    let female = &r["train_label_rates"]["gender"]["female"];
    assert_eq!(female[0].as_u64().unwrap() as usize, n);
    assert!((female[1].as_f64().unwrap() - liked as f64 / n as f64).abs() < 1e-12);
    // People's versions: every method, the charts, nothing fetched from elsewhere.
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    for label in ["LoRA (LLM-RS baseline)", "CF-Diff", "CL-MoE"] {
        assert!(html.contains(label) && md.contains(label), "{label}");
    }
    assert!(
        html.matches("<svg").count() >= 7,
        "GD x3, F1, one shift chart per method"
    );
    assert!(!html.contains("<script") && !html.contains(" src=") && !html.contains(" href="));
    // A rerun finds every step done and reports the same figures (on a CPU build, naming
    // the CPU and f32, what auto is here, changes no step's identity).
    let t0 = std::time::Instant::now();
    let mut rerun = args.to_vec();
    if !fairrec_lm::device::CUDA_BUILD {
        rerun.extend(["--device", "cpu", "--dtype", "f32"]);
    }
    ok(&rerun);
    assert!(t0.elapsed().as_secs() < 30, "rerun took {:?}", t0.elapsed());
    let again = json(&out.join("report.json"));
    assert_eq!(again["methods"], r["methods"]);
    assert_eq!(again["findings"], r["findings"]);
    // A second run into another directory writes byte-identical models, adapters and
    // predictions (what the README says of the quickstart).
    let out2 = t.path().join("qs2");
    let mut args2 = args;
    args2[2] = p(&out2);
    ok(&args2);
    let mut compared = 0;
    for f in walk_files(&out) {
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        if name.ends_with(".safetensors") || name == "predictions.jsonl" {
            let twin = out2.join(f.strip_prefix(&out).unwrap());
            assert_eq!(
                std::fs::read(&f).unwrap(),
                std::fs::read(&twin).unwrap(),
                "{} differs between two runs",
                f.display()
            );
            compared += 1;
        }
    }
    assert!(compared >= 10, "only {compared} files compared");
}

/// Every file under `dir`.
fn walk_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk_files(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn synth_prepare_show_stats() {
    let t = tempfile::tempdir().unwrap();
    let raw = t.path().join("raw");
    let data = t.path().join("data");
    ok(&[
        "data",
        "synth",
        "--out",
        p(&raw),
        "--users",
        "120",
        "--items",
        "60",
        "--seed",
        "5",
    ]);
    let s = ok(&[
        "data",
        "prepare",
        "--dataset",
        "ml-100k",
        "--raw",
        p(&raw),
        "--protocol",
        "mos",
        "--out",
        p(&data),
        "--sequences",
        "500",
    ]);
    assert!(s.contains("prepared ml-100k under mos"), "{s}");
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(data.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(m["config"]["sequences"], 500);
    assert_eq!(
        m["sources"].as_array().unwrap().len(),
        4,
        "u.genre, u.user, u.item, u.data"
    );
    let show = ok(&[
        "data",
        "show",
        p(&data),
        "--n",
        "2",
        "--variant",
        "gender=female",
    ]);
    assert_eq!(show.matches("User Profile: female.").count(), 2, "{show}");
    let neutral = ok(&["data", "show", p(&data), "--n", "1", "--variant", "neutral"]);
    assert!(!neutral.contains("User Profile"), "{neutral}");
    let stats = ok(&["data", "stats", p(&data)]);
    assert!(
        stats.contains("train") && stats.contains("female"),
        "{stats}"
    );
    let e = fails(&["data", "show", p(&data), "--variant", "gender=robot"]);
    assert!(e.contains("`robot` is not a value of `gender`"), "{e}");
    let e = fails(&["data", "show", p(&data), "--variant", "gender=male,age=old"]);
    assert!(e.contains("age=old,gender=male"), "{e}");
    let e = fails(&["data", "show", p(&data), "--template", "llm-rec"]);
    assert!(e.contains("does not fit"), "{e}");
}

#[test]
fn run_file_sets_flags_and_command_line_wins() {
    let t = tempfile::tempdir().unwrap();
    let raw = t.path().join("raw");
    let data = t.path().join("data");
    ok(&[
        "data",
        "synth",
        "--out",
        p(&raw),
        "--users",
        "100",
        "--items",
        "50",
    ]);
    let run = t.path().join("run.toml");
    std::fs::write(
        &run,
        format!(
            "dataset = \"ml-100k\"\nraw = \"{}\"\nprotocol = \"cl-moe\"\nout = \"{}\"\nseed = 3\nmax_liked = 4\nattributes = [\"gender\"]\nforce = true\n",
            p(&raw),
            p(&data)
        ),
    )
    .unwrap();
    ok(&["data", "prepare", "--config", p(&run), "--seed", "9"]);
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(data.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(m["seed"], 9, "command line wins over the run file");
    assert_eq!(m["config"]["max_liked"], 4, "run file sets flags");
    assert_eq!(m["config"]["attributes"], serde_json::json!(["gender"]));
    std::fs::write(&run, "dataset = \"ml-100k\"\nbogus_flag = 1\n").unwrap();
    let e = fails(&["data", "prepare", "--config", p(&run)]);
    assert!(e.contains("bogus_flag") && e.contains("run.toml"), "{e}");
}

#[test]
fn prepare_refuses_to_overwrite_and_reports_bad_input() {
    let t = tempfile::tempdir().unwrap();
    let raw = t.path().join("raw");
    let data = t.path().join("data");
    ok(&[
        "data",
        "synth",
        "--out",
        p(&raw),
        "--users",
        "60",
        "--items",
        "40",
    ]);
    let args = [
        "data",
        "prepare",
        "--dataset",
        "ml-100k",
        "--raw",
        p(&raw),
        "--protocol",
        "cl-moe",
        "--out",
        p(&data),
    ];
    ok(&args);
    let before = std::fs::read(data.join("train.jsonl")).unwrap();
    let e = fails(&args);
    assert!(e.contains("--force"), "{e}");
    // A malformed raw file: error names file and line; the prepared data is untouched.
    let u_data = std::fs::read_to_string(raw.join("u.data")).unwrap();
    std::fs::write(raw.join("u.data"), u_data.replacen('\t', " ", 1)).unwrap();
    let mut forced = args.to_vec();
    forced.push("--force");
    let e = fails(&forced);
    assert!(
        e.contains("u.data:1:") && e.contains("expected 4 fields"),
        "{e}"
    );
    assert_eq!(std::fs::read(data.join("train.jsonl")).unwrap(), before);
    let e = fails(&[
        "data",
        "prepare",
        "--dataset",
        "ml-10m",
        "--raw",
        "x",
        "--protocol",
        "mos",
        "--out",
        "y",
    ]);
    assert!(e.contains("unknown dataset `ml-10m`"), "{e}");
}

/// Predictions of a scorer that leans on the stated gender, for every audit variant of the
/// test split of a prepared cl-moe dataset.
fn biased_predictions(data: &Path, out: &Path) {
    let text = std::fs::read_to_string(data.join("test.jsonl")).unwrap();
    let variants = [
        "original",
        "neutral",
        "gender=male",
        "gender=female",
        "age=young",
        "age=middle aged",
        "age=old",
    ];
    let mut lines = String::new();
    for (i, line) in text.lines().enumerate() {
        let s: serde_json::Value = serde_json::from_str(line).unwrap();
        let label = s["label"].as_bool().unwrap();
        let base = if label { 0.6 } else { 0.4 } + 0.25 * (((i * 7919) % 100) as f64 / 100.0 - 0.5);
        for v in variants {
            let stated_gender = match v {
                "original" => s["attributes"]["gender"].as_str().unwrap().to_string(),
                v if v.starts_with("gender=") => v[7..].to_string(),
                _ => String::new(),
            };
            let p: f64 = base + if stated_gender == "female" { 0.2 } else { 0.0 };
            lines += &serde_json::json!({"sample_id": s["sample_id"], "variant": v, "label": label, "p_yes": p.clamp(0.0, 1.0)}).to_string();
            lines.push('\n');
        }
    }
    std::fs::write(out, lines).unwrap();
}

#[test]
fn metrics_writes_json_markdown_and_self_contained_html() {
    let t = tempfile::tempdir().unwrap();
    let (raw, data, audit) = (
        t.path().join("raw"),
        t.path().join("data"),
        t.path().join("audit"),
    );
    ok(&[
        "data",
        "synth",
        "--out",
        p(&raw),
        "--users",
        "300",
        "--items",
        "100",
    ]);
    ok(&[
        "data",
        "prepare",
        "--dataset",
        "ml-100k",
        "--raw",
        p(&raw),
        "--protocol",
        "cl-moe",
        "--out",
        p(&data),
    ]);
    let preds = t.path().join("preds.jsonl");
    biased_predictions(&data, &preds);
    let s = ok(&[
        "metrics",
        "--predictions",
        p(&preds),
        "--data",
        p(&data),
        "--bootstrap",
        "50",
        "--out",
        p(&audit),
    ]);
    assert!(s.contains("gender") && s.contains("report.html"), "{s}");
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(audit.join("metrics.json")).unwrap()).unwrap();
    for block in ["original", "neutral"] {
        for k in ["f1", "precision", "recall", "auc", "n"] {
            assert!(m[block].get(k).is_some(), "{block}.{k}");
        }
    }
    for set in ["gender", "age"] {
        for k in ["gd", "rate", "rate_sq", "groups"] {
            assert!(m["fairness"][set].get(k).is_some(), "fairness.{set}.{k}");
        }
    }
    // metrics.csv beside it, in long format, with the same figures.
    let csv = std::fs::read_to_string(audit.join("metrics.csv")).unwrap();
    let gd = m["fairness"]["gender"]["gd"].as_f64().unwrap();
    let ci = &m["fairness"]["gender"]["ci"]["gd"];
    let row = csv
        .lines()
        .find(|l| l.starts_with("fairness:gender,,gd,"))
        .unwrap();
    let x: Vec<f64> = row
        .split(',')
        .skip(3)
        .take(3)
        .map(|v| v.parse().unwrap())
        .collect();
    let want = [gd, ci[0].as_f64().unwrap(), ci[1].as_f64().unwrap()];
    // serde_json reads floats to within an ulp of what was written.
    assert!(
        x.iter().zip(want).all(|(a, b)| (a - b).abs() < 1e-12),
        "{row} {want:?}"
    );
    assert!(csv.starts_with("scope,group,metric,"));
    assert!(
        m["fairness"]["gender"]["gd"].as_f64().unwrap() > 0.01,
        "the planted gender lean shows"
    );
    assert!(m["fairness"]["gender"]["groups"]["female"]["f1"].is_number());
    assert!(m["stereotype"]["gender"]["settings"]["explicit"]["total"].is_number());
    assert_eq!(m["bootstrap"]["unit"], "user");
    let html = std::fs::read_to_string(audit.join("report.html")).unwrap();
    assert!(
        html.contains("<svg") && html.contains("neutral F1"),
        "charts are inline"
    );
    assert!(
        !html.contains("<script") && !html.contains("src=") && !html.contains("<link"),
        "no external resources"
    );
    assert!(!html.contains("NaN"));
    let md = std::fs::read_to_string(audit.join("report.md")).unwrap();
    assert!(md.contains("| gender |") && md.contains("| Rate |"), "{md}");
    // Missing neutral: a clear error, no output written.
    let only: String = std::fs::read_to_string(&preds)
        .unwrap()
        .lines()
        .filter(|l| !l.contains("\"neutral\""))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&preds, only).unwrap();
    let e = fails(&[
        "metrics",
        "--predictions",
        p(&preds),
        "--out",
        p(&t.path().join("audit2")),
    ]);
    assert!(e.contains("no predictions for variant `neutral`"), "{e}");
    assert!(!t.path().join("audit2").exists());
}

#[test]
fn metrics_on_ranked_lists_alone() {
    let t = tempfile::tempdir().unwrap();
    let lists = t.path().join("lists.jsonl");
    let mut text = String::new();
    for i in 0..30 {
        let neutral: Vec<String> = (0..5).map(|k| format!("item{}", (i + k) % 40)).collect();
        // women get the neutral list; men get it with the top two items replaced
        let mut male = neutral.clone();
        male[0] = format!("other{i}");
        male[1] = format!("other{}", i + 100);
        for (v, items) in [
            ("neutral", &neutral),
            ("gender=female", &neutral),
            ("gender=male", &male),
        ] {
            text += &serde_json::json!({"instruction_id": format!("q{i}"), "variant": v, "items": items}).to_string();
            text.push('\n');
        }
    }
    std::fs::write(&lists, text).unwrap();
    let out = t.path().join("audit");
    let s = ok(&[
        "metrics",
        "--lists",
        p(&lists),
        "--k",
        "5",
        "--bootstrap",
        "20",
        "--out",
        p(&out),
    ]);
    assert!(s.contains("FaiRLLM @5 over 30 instructions"), "{s}");
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("metrics.json")).unwrap()).unwrap();
    let j = &m["fairllm"]["attributes"]["gender"]["jaccard"];
    assert_eq!(j["per_value"]["female"], 1.0);
    // male lists share 3 of 5 items: Jaccard 3/7
    assert!((j["per_value"]["male"].as_f64().unwrap() - 3.0 / 7.0).abs() < 1e-12);
    assert!((j["snsr"].as_f64().unwrap() - 4.0 / 7.0).abs() < 1e-12);
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(html.contains("PRAG*@5"), "chart present");
    let e = fails(&["metrics", "--out", p(&out)]);
    assert!(e.contains("--predictions"), "{e}");
}

#[test]
fn audit_scores_every_variant_and_reports() {
    let t = tempfile::tempdir().unwrap();
    let data = small_dataset(t.path(), "80");
    let (model, out) = (t.path().join("model"), t.path().join("audit"));
    tiny_hf_model(&model);
    let argv = [
        "audit",
        "--model",
        p(&model),
        "--data",
        p(&data),
        "--limit",
        "6",
    ];
    let s = ok(&[
        &argv[..],
        &["--variants", "all", "--bootstrap", "20", "--out", p(&out)],
    ]
    .concat());
    assert!(
        s.contains("scored 78 prompts (72 distinct"),
        "6 samples x 13 variants, of which the original prompt is one: {s}"
    );
    let read = |out: &Path| -> Vec<serde_json::Value> {
        let preds = std::fs::read_to_string(out.join("predictions.jsonl")).unwrap();
        preds
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    let all = read(&out);
    assert_eq!(all.len(), 78);
    // The variant equal to the original prompt (its own age and gender) is the same text:
    // scored once (72 distinct of 78), it gets the original's score.
    let mut own = 0;
    for o in all.iter().filter(|x| x["variant"] == "original") {
        let at = |k: &str| o["attributes"][k].as_str().unwrap().to_string();
        let v = format!("age={},gender={}", at("age"), at("gender"));
        let twin = all
            .iter()
            .find(|x| x["sample_id"] == o["sample_id"] && x["variant"] == v.as_str())
            .unwrap_or_else(|| panic!("no {v} for {}", o["sample_id"]));
        assert_eq!(twin["p_yes"], o["p_yes"], "{v}");
        own += 1;
    }
    assert_eq!(own, 6);
    // An audit without the variants its metrics need is refused before any scoring.
    let alone = t.path().join("alone");
    let e = fails(
        &[
            &argv[..],
            &["--variants", "age=young;neutral", "--out", p(&alone)],
        ]
        .concat(),
    );
    assert!(
        e.contains("--variants") && e.contains("original") && !e.contains("scored"),
        "{e}"
    );
    assert!(!alone.exists(), "nothing written");
    let variants: std::collections::BTreeSet<&str> =
        all.iter().filter_map(|x| x["variant"].as_str()).collect();
    assert_eq!(variants.len(), 13);
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("metrics.json")).unwrap()).unwrap();
    assert!(
        m["fairness"]["age,gender"]["groups"]
            .as_object()
            .unwrap()
            .len()
            == 6
    );
    let run: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("run.json")).unwrap()).unwrap();
    assert_eq!(
        run["answer_tokens"],
        serde_json::json!(["Y", "N"]),
        "chat answers: first token of Yes / No"
    );
    assert!(out.join("report.html").exists());
    // Only some variants, raw prompts; ' Yes'/' No' share a byte token here, so --answer-space none.
    let again = [
        "audit",
        "--model",
        p(&model),
        "--data",
        p(&data),
        "--limit",
        "4",
        "--variants",
        "original;neutral;gender=male;gender=female",
        "--no-chat",
        "--answer-space",
        "none",
        "--bootstrap",
        "0",
        "--out",
        p(&out),
    ];
    // The first audit is there: replacing it takes --force, and nothing is touched without.
    let before = std::fs::read(out.join("metrics.json")).unwrap();
    let e = fails(&again);
    assert!(e.contains("already holds an audit; pass --force"), "{e}");
    assert_eq!(std::fs::read(out.join("metrics.json")).unwrap(), before);
    let s = ok(&[&again[..], &["--force"]].concat());
    // The original prompt states age too: no variant repeats it.
    assert!(s.contains("scored 16 prompts (16 distinct"), "{s}");
    let e = fails(&[
        "audit",
        "--model",
        p(&t.path().join("nope")),
        "--data",
        p(&data),
        "--out",
        p(&t.path().join("nope-audit")),
    ]);
    assert!(e.contains("loading the model") && e.contains("nope"), "{e}");
}

#[test]
fn cot_generate_reads_the_answer_after_the_models_reasoning_and_a_rerun_reuses_it() {
    let t = tempfile::tempdir().unwrap();
    let (data, model) = data_and_model(t.path(), "60");
    let (plain, cot) = (t.path().join("plain"), t.path().join("cot"));
    let with = |out: &Path| -> Vec<String> {
        let mut a = audit_argv(&model, &data, "3", out);
        a.extend(["--template", "cot"]);
        a.iter().map(|s| s.to_string()).collect()
    };
    let args = |v: &[String], extra: &[&str]| -> String {
        let all: Vec<&str> = v
            .iter()
            .map(String::as_str)
            .chain(extra.iter().copied())
            .collect();
        ok(&all)
    };
    args(&with(&plain), &[]);
    let generate = ["--cot", "generate", "--max-new-tokens", "6"];
    args(&with(&cot), &generate);
    let lines = |p: &Path| std::fs::read_to_string(p).unwrap();
    let gens = lines(&cot.join("generations.jsonl"));
    let record = json(&cot.join("run.json"));
    let distinct = record["distinct_prompts"].as_u64().unwrap() as usize;
    assert_eq!(
        gens.lines().count(),
        distinct,
        "each distinct prompt reasoned once"
    );
    assert_eq!(
        record["cot"]["reasoning"].as_u64().unwrap() as usize,
        distinct
    );
    assert_eq!(record["cot"]["settings"]["max_new_tokens"], 6);
    for l in gens.lines() {
        let r: serde_json::Value = serde_json::from_str(l).unwrap();
        let n = r["response"]["tokens"].as_array().unwrap().len();
        assert!(
            n <= 6 && (n == 6 || r["response"]["finish"] == "stop"),
            "{l}"
        );
    }
    // The answer is read after the reasoning: the scores move.
    let (a, b) = (
        lines(&plain.join("predictions.jsonl")),
        lines(&cot.join("predictions.jsonl")),
    );
    assert_eq!(a.lines().count(), b.lines().count());
    assert_ne!(a, b);
    // A rerun generates nothing (every prompt's reasoning is in the file) and gives the
    // same predictions.
    args(&with(&cot), &[&generate[..], &["--force"]].concat());
    assert_eq!(lines(&cot.join("generations.jsonl")), gens);
    assert_eq!(lines(&cot.join("predictions.jsonl")), b);
    // Another model in the same directory reuses none of it: its reasoning is its own.
    let other = t.path().join("other-model");
    std::fs::create_dir(&other).unwrap();
    for f in std::fs::read_dir(&model).unwrap() {
        let f = f.unwrap().path();
        std::fs::copy(&f, other.join(f.file_name().unwrap())).unwrap();
    }
    let mut again = audit_argv(&other, &data, "3", &cot);
    again.extend(["--template", "cot", "--force"]);
    ok(&[&again[..], &generate[..]].concat());
    let both = lines(&cot.join("generations.jsonl"));
    assert_eq!(
        both.lines().count(),
        2 * distinct,
        "the other model reasoned anew"
    );
    // Reasoning needs the template that asks for it.
    let wrong_out = t.path().join("wrong");
    let mut wrong = audit_argv(&model, &data, "3", &wrong_out);
    wrong.extend(generate);
    let e = fails(&wrong);
    assert!(e.contains("--cot generate: needs --template cot"), "{e}");
}
