//! Adapters that fairrec trained, loaded by Python peft (issue 29 item 5): a LoRA and a
//! prompt-tuning adapter trained by `fairrec train` on SmolLM2-135M-Instruct, committed
//! under `tests/reference/peft-check/` with the P(Yes) transformers + peft compute with
//! them (`tests/reference/make_peft_check.sh` makes both). `fairrec score --adapter` must
//! give the same token ids, P(Yes) within 1e-5 and answer logits within 1e-4.

mod common;
use common::*;
use fairrec_data::raw::sha256_hex;
use std::path::Path;

#[test]
fn fairrec_trained_adapters_match_python_peft() {
    let Some(models) = std::env::var_os("FAIRREC_MODELS") else {
        skipped("fairrec_trained_adapters_match_python_peft: FAIRREC_MODELS is not set (point it at ../shared/models)");
        return;
    };
    let gguf = Path::new(&models).join("smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf");
    if !gguf.exists() {
        skipped(&format!("{} is missing", gguf.display()));
        return;
    }
    let here = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/reference");
    let r: serde_json::Value =
        serde_json::from_slice(&std::fs::read(here.join("peft_check.json")).unwrap()).unwrap();
    let adapters = r["adapters"].as_object().unwrap();
    assert_eq!(
        adapters.keys().collect::<Vec<_>>(),
        ["lora", "prompt"],
        "both kinds checked"
    );
    for (kind, a) in adapters {
        let dir = here.join("peft-check").join(kind);
        // The reference is of exactly these files.
        for (file, sha) in a["sha256"].as_object().unwrap() {
            let bytes = std::fs::read(dir.join(file)).unwrap();
            assert_eq!(sha256_hex(&bytes), sha.as_str().unwrap(), "{kind}/{file}");
        }
        let cases = a["cases"].as_array().unwrap();
        assert_eq!(cases.len(), 3);
        for c in cases {
            let prompt = c["prompt"].as_str().unwrap();
            let v = score_json(&ok(&[
                "score",
                "--model",
                p(&gguf),
                "--adapter",
                p(&dir),
                "--prompt",
                prompt,
            ]));
            assert_score_matches(&v, c);
        }
    }
}
