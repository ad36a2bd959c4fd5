//! Property-based tests (issue 22): mutated model directories (`config.json`, tokenizer
//! files, safetensors) and PEFT adapters (`adapter_config.json`, weights) never panic the
//! loaders; each either loads or fails with an error naming the directory or file.

mod common;
#[path = "../../../testsupport/mutate.rs"]
mod mutate;

use candle_core::{DType, Device};
use candle_nn::VarBuilder;
use common::{save_hf, tiny_parts};
use fairrec_lm::load::load_hf_dir;
use fairrec_lm::tokenizer::Tok;
use fairrec_lm::{peft, Llama, LlamaConfig};
use mutate::{edits, mutated, Edit};
use proptest::prelude::*;
use std::path::{Path, PathBuf};

/// Mutate the file `name` of `dir` with `edits`.
fn mutate_file(dir: &Path, name: &str, edits: &[Edit]) {
    let path = dir.join(name);
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, mutated(&bytes, edits)).unwrap();
}

fn peft_fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/peft")
}

fn peft_base() -> Llama {
    let dir = peft_fixture().join("base");
    let text = std::fs::read_to_string(dir.join("config.json")).unwrap();
    let cfg = LlamaConfig::from_hf_json(&text).unwrap();
    let w = candle_core::safetensors::load(dir.join("model.safetensors"), &Device::Cpu).unwrap();
    Llama::new(&cfg, VarBuilder::from_tensors(w, DType::F32, &Device::Cpu)).unwrap()
}

const MODEL_FILES: [&str; 4] = [
    "config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "model.safetensors",
];

proptest! {
    #![proptest_config(mutate::config(256))]

    #[test]
    fn mutated_model_directories_load_or_name_the_directory(
        f in 0..MODEL_FILES.len(),
        edits in edits(5),
    ) {
        let t = tempfile::tempdir().unwrap();
        let (cfg, tok, w) = tiny_parts();
        save_hf(t.path(), &cfg, &tok, &w, 1);
        mutate_file(t.path(), MODEL_FILES[f], &edits);
        if let Err(e) = load_hf_dir(t.path(), &Device::Cpu, candle_core::DType::F32) {
            let e = e.to_string();
            prop_assert!(e.contains(&t.path().display().to_string()), "{}: `{e}`", MODEL_FILES[f]);
        }
    }

    #[test]
    fn mutated_adapters_load_or_name_the_file(
        prompt in any::<bool>(),
        weights in prop::bool::weighted(0.25),
        edits in edits(5),
    ) {
        let t = tempfile::tempdir().unwrap();
        let src = peft_fixture().join(if prompt { "prompt" } else { "lora" });
        for name in ["adapter_config.json", "adapter_model.safetensors"] {
            std::fs::copy(src.join(name), t.path().join(name)).unwrap();
        }
        let name = if weights { "adapter_model.safetensors" } else { "adapter_config.json" };
        mutate_file(t.path(), name, &edits);
        let mut m = peft_base();
        let tok = Tok::bytes_only(&[], None).unwrap();
        if let Err(e) = peft::load(t.path(), &mut m, &tok) {
            let e = e.to_string();
            prop_assert!(e.contains(&t.path().display().to_string()), "{name}: `{e}`");
        }
    }
}
