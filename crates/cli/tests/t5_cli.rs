//! `fairrec score` on a T5 directory: the committed tiny Flan-layout T5 (see
//! `crates/lm/tests/fixtures/t5/make_tiny_t5.py`) with a word-level tokenizer written here so
//! that a prompt's words are exactly the reference's input ids; P(Yes) must be the softmax
//! of transformers' first-step logits at the "Yes" and "No" ids.

mod common;
use common::{fails, ok, p};
use std::path::{Path, PathBuf};

const YES: usize = 5;
const NO: usize = 17;

fn word(id: usize) -> String {
    match id {
        YES => "Yes".into(),
        NO => "No".into(),
        i => format!("w{i}"),
    }
}

/// The fixture's weights and config, plus `tokenizer.json` (word level, one word per id)
/// and a `tokenizer_config.json` whose chat template passes the prompt through.
fn t5_dir(tmp: &Path) -> (PathBuf, serde_json::Value) {
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../lm/tests/fixtures/t5/gated");
    let dir = tmp.join("t5");
    std::fs::create_dir_all(&dir).unwrap();
    for f in ["config.json", "model.safetensors"] {
        std::fs::copy(src.join(f), dir.join(f)).unwrap();
    }
    let vocab: serde_json::Map<String, serde_json::Value> =
        (0..64).map(|i| (word(i), serde_json::json!(i))).collect();
    let tok = serde_json::json!({
        "version": "1.0", "truncation": null, "padding": null, "added_tokens": [],
        "normalizer": null, "pre_tokenizer": {"type": "WhitespaceSplit"},
        "post_processor": null, "decoder": null,
        "model": {"type": "WordLevel", "vocab": vocab, "unk_token": "w2"},
    });
    std::fs::write(dir.join("tokenizer.json"), tok.to_string()).unwrap();
    let cfg =
        serde_json::json!({"chat_template": "{{ messages[0]['content'] }}", "eos_token": "w1"});
    std::fs::write(dir.join("tokenizer_config.json"), cfg.to_string()).unwrap();
    let text = std::fs::read_to_string(src.join("reference.json")).unwrap();
    (dir, serde_json::from_str(&text).unwrap())
}

#[test]
fn score_on_a_t5_directory_gives_transformers_first_step_answer() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, r) = t5_dir(tmp.path());
    let ids: Vec<Vec<usize>> = serde_json::from_value(r["input_ids"].clone()).unwrap();
    let mask: Vec<Vec<usize>> = serde_json::from_value(r["attention_mask"].clone()).unwrap();
    let logits: Vec<f64> = serde_json::from_value(r["logits"].clone()).unwrap();
    let (t_dec, v) = (7, 64);
    for b in 0..2 {
        let real = mask[b].iter().sum::<usize>();
        let prompt: Vec<String> = ids[b][..real].iter().map(|&i| word(i)).collect();
        let out = ok(&[
            "score",
            "--model",
            dir.to_str().unwrap(),
            "--answer-space",
            "none",
            "--prompt",
            &prompt.join(" "),
        ]);
        let got: serde_json::Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
        let at = |k: usize| logits[b * t_dec * v + k];
        let expected = 1.0 / (1.0 + (at(NO) - at(YES)).exp());
        let p = got["p_yes"].as_f64().unwrap();
        assert!((p - expected).abs() < 1e-5, "row {b}: {p} vs {expected}");
        assert_eq!(got["n_tokens"].as_u64().unwrap() as usize, real);
    }
}

/// The fixture T5 (64 ids) with a character-level tokenizer (lower-cased letters, digits,
/// space and some punctuation; `?` for the rest), so that paper B's prompts are real,
/// distinct inputs.
fn char_t5_dir(tmp: &Path) -> PathBuf {
    let (dir, _) = t5_dir(tmp);
    let chars = "?abcdefghijklmnopqrstuvwxyz0123456789 .,:;'()-";
    let vocab: serde_json::Map<String, serde_json::Value> = chars
        .chars()
        .enumerate()
        .map(|(i, c)| (c.to_string(), serde_json::json!(i)))
        .collect();
    let tok = serde_json::json!({
        "version": "1.0", "truncation": null, "padding": null, "added_tokens": [],
        "normalizer": {"type": "Lowercase"},
        "pre_tokenizer": {"type": "Split", "pattern": {"Regex": "."}, "behavior": "Isolated", "invert": false},
        "post_processor": null, "decoder": null,
        "model": {"type": "WordLevel", "vocab": vocab, "unk_token": "?"},
    });
    std::fs::write(dir.join("tokenizer.json"), tok.to_string()).unwrap();
    let cfg =
        serde_json::json!({"chat_template": "{{ messages[0]['content'] }}", "eos_token": "?"});
    std::fs::write(dir.join("tokenizer_config.json"), cfg.to_string()).unwrap();
    dir
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn t5_trains_mos_p_tuning_and_lora_and_audit_routes_as_training_did() {
    let tmp = tempfile::tempdir().unwrap();
    let model = char_t5_dir(tmp.path());
    let data = common::prepared_world(tmp.path(), "40", "30", &["--protocol", "mos"]);
    let train = |method: &str, out: &Path, extra: &[&str]| -> Vec<String> {
        let mut a = vec![
            "train",
            "--method",
            method,
            "--model",
            p(&model),
            "--data",
            p(&data),
            "--out",
            p(out),
            "--attributes",
            "gender",
            "--limit-train",
            "8",
            "--limit-valid",
            "6",
            "--batch-size",
            "2",
            "--virtual-tokens",
            "2",
            "--answer-space",
            "none",
            "--lr",
            "0.05",
        ];
        a.extend_from_slice(extra);
        a.into_iter().map(String::from).collect()
    };
    let mos = tmp.path().join("mos");
    let s = ok(&strs(&train("mos", &mos, &["--mos-experts", "2"])));
    assert!(s.contains("epoch 1: valid AUC"), "{s}");
    let adapter = json(&mos.join("adapter/adapter_config.json"));
    assert_eq!(adapter["peft_type"], "FAIRREC_MOS");
    assert_eq!(adapter["task_type"], "SEQ_2_SEQ_LM");
    let log = std::fs::read_to_string(mos.join("train_log.jsonl")).unwrap();
    let step: serde_json::Value = serde_json::from_str(log.lines().next().unwrap()).unwrap();
    for k in ["ntp", "fairness", "diversity", "expert/1"] {
        assert!(step[k].is_number(), "no `{k}` in {step}");
    }
    let run = json(&mos.join("run.json"));
    let base = run["base_parameters"].as_u64().unwrap();
    assert!(base > 0 && run["trainable_parameters"].as_u64().unwrap() < base);
    // audit routes each sample's prompt in front of T5's encoder as training's validation did
    audit_as_trained(
        &model,
        &mos,
        &data,
        6,
        &["--attributes", "gender"],
        &tmp.path().join("audit"),
    );
    // p-tuning on T5, saved as PEFT saves a seq2seq prompt: two blocks by default
    let pt = tmp.path().join("pt");
    ok(&strs(&train("p-tuning", &pt, &[])));
    let adapter = json(&pt.join("adapter/adapter_config.json"));
    assert_eq!(adapter["peft_type"], "P_TUNING");
    assert_eq!(adapter["task_type"], "SEQ_2_SEQ_LM");
    assert_eq!(adapter["num_transformer_submodules"], 2);
    let scored = |adapter: Option<&Path>| {
        let mut a = vec![
            "score",
            "--model",
            p(&model),
            "--answer-space",
            "none",
            "--prompt",
            "a user likes b",
        ];
        if let Some(d) = adapter {
            a.extend(["--adapter", p(d)]);
        }
        let out = ok(&a);
        let v: serde_json::Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
        v["p_yes"].as_f64().unwrap()
    };
    assert_ne!(scored(None), scored(Some(&pt.join("adapter"))));
    // prompt tuning with the second block in front of the decoder (PEFT before 0.4): the
    // mark is saved, the audit-side loader reads both blocks, the share is PEFT's
    let dp = tmp.path().join("dp");
    ok(&strs(&train("prompt-tuning", &dp, &["--decoder-prompt"])));
    let adapter = json(&dp.join("adapter/adapter_config.json"));
    assert_eq!(adapter["num_transformer_submodules"], 2);
    assert_eq!(adapter["fairrec_decoder_prompt"], true);
    let run = json(&dp.join("run.json"));
    let (t, b) = (
        run["trainable_parameters"].as_f64().unwrap(),
        run["base_parameters"].as_f64().unwrap(),
    );
    assert_eq!(run["trainable_share"].as_f64().unwrap(), t / (b + t));
    let with_decoder = scored(Some(&dp.join("adapter")));
    assert_ne!(scored(None), with_decoder);
    let mut cfg = adapter.clone();
    cfg.as_object_mut()
        .unwrap()
        .remove("fairrec_decoder_prompt");
    std::fs::write(
        dp.join("adapter/adapter_config.json"),
        serde_json::to_vec(&cfg).unwrap(),
    )
    .unwrap();
    assert_ne!(
        with_decoder,
        scored(Some(&dp.join("adapter"))),
        "the decoder block is read"
    );
    let e = fails(&strs(&train(
        "prompt-tuning",
        &tmp.path().join("three"),
        &["--prompt-submodules", "3"],
    )));
    assert!(e.contains("num_transformer_submodules"), "{e}");
    // LoRA on T5's q and v (the methods' default q_proj, v_proj), in PEFT's seq2seq layout
    let lora = tmp.path().join("lora");
    ok(&strs(&train("lora", &lora, &[])));
    let adapter = json(&lora.join("adapter/adapter_config.json"));
    assert_eq!(adapter["peft_type"], "LORA");
    assert_eq!(adapter["task_type"], "SEQ_2_SEQ_LM");
    assert_eq!(adapter["target_modules"], serde_json::json!(["q", "v"]));
    assert_ne!(scored(None), scored(Some(&lora.join("adapter"))));
    // UP5's discriminator reads T5's first-step decoder state
    let up5 = tmp.path().join("up5");
    ok(&strs(&train("up5", &up5, &[])));
    let log = std::fs::read_to_string(up5.join("train_log.jsonl")).unwrap();
    assert!(log.contains("\"adversary_accuracy\""), "{log}");
    // full tuning writes a T5 directory that scores like any model
    let full = tmp.path().join("full");
    ok(&strs(&train("full", &full, &["--lr", "0.01"])));
    let cfg = json(&full.join("adapter/config.json"));
    assert_eq!(cfg["model_type"], "t5");
    let tuned = {
        let out = ok(&[
            "score",
            "--model",
            p(&full.join("adapter")),
            "--answer-space",
            "none",
            "--prompt",
            "a user likes b",
        ]);
        let v: serde_json::Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
        v["p_yes"].as_f64().unwrap()
    };
    assert_ne!(tuned, scored(None));
}

#[test]
fn t5_trains_every_paper_a_method_and_audits_lora_moe_as_training_scored() {
    let tmp = tempfile::tempdir().unwrap();
    let model = char_t5_dir(tmp.path());
    let data = common::prepared_world(tmp.path(), "40", "30", &["--protocol", "cl-moe"]);
    let train = |method: &str, extra: &[&str]| -> (String, PathBuf) {
        let out = tmp.path().join(format!("{method}{}", extra.len()));
        let mut a = vec![
            "train",
            "--method",
            method,
            "--model",
            p(&model),
            "--data",
            p(&data),
            "--out",
            p(&out),
            "--max-steps",
            "2",
            "--limit-train",
            "4",
            "--limit-valid",
            "4",
            "--batch-size",
            "2",
            "--no-eval-before",
            "--answer-space",
            "none",
        ];
        a.extend_from_slice(extra);
        (ok(&a), out)
    };
    let step = |out: &Path| -> serde_json::Value {
        let log = std::fs::read_to_string(out.join("train_log.jsonl")).unwrap();
        serde_json::from_str(log.lines().next().unwrap()).unwrap()
    };
    for method in ["ins-tuning", "cf", "diff", "cf-diff", "moe"] {
        let (s, out) = train(method, &[]);
        assert!(s.contains("prompts)"), "{method}: {s}");
        let adapter = json(&out.join("adapter/adapter_config.json"));
        assert_eq!(adapter["task_type"], "SEQ_2_SEQ_LM", "{method}");
        let has_diff = step(&out)["diff"].as_f64().is_some_and(|d| d > 0.0);
        assert_eq!(
            has_diff,
            method.contains("diff") || method == "moe",
            "{method}"
        );
    }
    // CL-MoE: LoRA-MoE on T5's feed-forward, the curriculum's tau and sigmas logged
    let (_, clmoe) = train("cl-moe", &[]);
    let adapter = json(&clmoe.join("adapter/adapter_config.json"));
    assert_eq!(
        adapter["target_modules"],
        serde_json::json!(["wi_0", "wi", "wi_1", "wo"])
    );
    let first = step(&clmoe);
    for k in ["tau", "diff", "expert/2", "sigma/counterfactual"] {
        assert!(first[k].is_number(), "no `{k}` in {first}");
    }
    // the encoder reading of L_diff is another state, recorded in the run's config
    let (_, enc) = train(
        "cf-diff",
        &["--diff-stack", "encoder", "--diff-pooling", "mean"],
    );
    let cfg = std::fs::read_to_string(enc.join("train_config.json")).unwrap();
    assert!(cfg.contains("\"stack\": \"encoder\""), "{cfg}");
    let dec = tmp.path().join("cf-diff0"); // the decoder reading, trained above
    assert_ne!(step(&enc)["diff"], step(&dec)["diff"]);
    let e = fails(&[
        "train",
        "--method",
        "cf-diff",
        "--model",
        p(&model),
        "--data",
        p(&data),
        "--out",
        p(&tmp.path().join("refused")),
        "--diff-layer",
        "1",
        "--limit-train",
        "2",
        "--answer-space",
        "none",
    ]);
    assert!(e.contains("--diff-stack encoder"), "{e}");
    // the audit reloads the experts on T5 and scores the validation prompts as training did
    let preds = audit_as_trained(&model, &clmoe, &data, 4, &[], &tmp.path().join("audit"));
    let base = tmp.path().join("base");
    ok(&[
        "audit",
        "--model",
        p(&model),
        "--data",
        p(&data),
        "--split",
        "valid",
        "--limit",
        "4",
        "--variants",
        "original;neutral",
        "--answer-space",
        "none",
        "--bootstrap",
        "0",
        "--out",
        p(&base),
    ]);
    assert_ne!(
        std::fs::read_to_string(base.join("predictions.jsonl")).unwrap(),
        preds,
        "the adapter changes the scores"
    );
}

/// Audit `n` validation samples with `run`'s adapter (into `out`; `extra` flags as
/// training's): the mean P(Yes) of the original prompts equals the one training's last
/// validation logged. Returns the predictions file.
fn audit_as_trained(
    model: &Path,
    run: &Path,
    data: &Path,
    n: usize,
    extra: &[&str],
    out: &Path,
) -> String {
    let (limit, adapter) = (n.to_string(), run.join("adapter"));
    let mut a = vec![
        "audit",
        "--model",
        p(model),
        "--adapter",
        p(&adapter),
        "--data",
        p(data),
        "--split",
        "valid",
        "--limit",
        &limit,
        "--variants",
        "original;neutral",
        "--answer-space",
        "none",
        "--bootstrap",
        "0",
        "--out",
        p(out),
    ];
    a.extend_from_slice(extra);
    ok(&a);
    let preds = std::fs::read_to_string(out.join("predictions.jsonl")).unwrap();
    let original: Vec<f64> = preds
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v["variant"] == "original")
        .map(|v| v["p_yes"].as_f64().unwrap())
        .collect();
    assert_eq!(original.len(), n);
    let log = std::fs::read_to_string(run.join("train_log.jsonl")).unwrap();
    let eval: serde_json::Value = log
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .rfind(|v| v["event"] == "eval")
        .unwrap();
    let mean = original.iter().sum::<f64>() / n as f64;
    let logged = eval["eval"]["mean_p_yes"].as_f64().unwrap();
    assert!(
        (mean - logged).abs() < 1e-5,
        "audit {mean} vs training {logged}"
    );
    preds
}

fn strs(a: &[String]) -> Vec<&str> {
    a.iter().map(String::as_str).collect()
}
