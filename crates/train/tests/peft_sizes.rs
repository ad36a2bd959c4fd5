//! The PEFT paradigms sized as paper B's Table V sizes them, against Python `peft`:
//! `fairrec-lm/tests/fixtures/peft/t5.json` (made by `make_t5_fixture.py`) holds the
//! trainable and total parameter counts `peft` reports for prompt tuning (PEFT's seq2seq
//! default of two blocks), p-tuning (encoder hidden 128) and LoRA (r 8 on q and v) on the
//! tiny T5 of the fixtures and on T5-base's shape. fairrec's methods, set up as training
//! sets them up, must give the same counts, and on T5-base the shares Table V prints
//! (taken from `experiments/paper-b-table5-ml100k.toml`).

use candle_core::{DType, Device, Shape, Tensor};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::{Init, VarBuilder};
use fairrec_lm::adapter::AdapterConfig;
use fairrec_lm::t5::{T5Config, T5};
use fairrec_lm::tokenizer::Tok;
use fairrec_train::config::TrainConfig;
use fairrec_train::method::Method;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn reference() -> serde_json::Value {
    let p = root().join("crates/lm/tests/fixtures/peft/t5.json");
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

/// Zero weights for every key but `lm_head.weight`: a tied T5 checkpoint's layout.
struct TiedZeros;

impl SimpleBackend for TiedZeros {
    fn get(
        &self,
        s: Shape,
        _: &str,
        _: Init,
        dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<Tensor> {
        Tensor::zeros(s, dtype, dev)
    }

    fn get_unchecked(&self, name: &str, _: DType, _: &Device) -> candle_core::Result<Tensor> {
        candle_core::bail!("no shape for `{name}`")
    }

    fn contains_tensor(&self, name: &str) -> bool {
        name != "lm_head.weight"
    }
}

/// The three paradigms as Table V sets them, with `n` virtual tokens per block.
fn paradigms(n: usize) -> Vec<(&'static str, TrainConfig)> {
    let base = TrainConfig {
        virtual_tokens: n,
        encoder_hidden_size: 128,
        prompt_init: fairrec_lm::prompt::PromptInit::Random,
        lora: AdapterConfig::lora(8, 16.0, &["q", "v"]),
        ..TrainConfig::default()
    };
    [
        ("prompt-tuning", Method::PromptTuning),
        ("p-tuning", Method::PTuning),
        ("lora", Method::Lora),
    ]
    .into_iter()
    .map(|(name, method)| {
        (
            name,
            TrainConfig {
                method,
                ..base.clone()
            },
        )
    })
    .collect()
}

/// For each paradigm: (name, trainable, all parameters, share in % to 4 decimals).
fn sizes(make: &dyn Fn() -> T5, n: usize) -> Vec<(&'static str, usize, usize, String)> {
    let tok = Tok::bytes_only(&[], None).unwrap();
    paradigms(n)
        .into_iter()
        .map(|(name, cfg)| {
            let mut m = make();
            let base = m.parameters();
            let tuning = fairrec_train::methods::setup(&mut m, &tok, &cfg).unwrap();
            let t = tuning.parameters();
            let share = format!("{:.4}", 100.0 * tuning.trainable_share(base));
            (name, t, base + t, share)
        })
        .collect()
}

fn check(ours: &[(&str, usize, usize, String)], peft: &serde_json::Value) {
    for (name, t, all, share) in ours {
        let p = &peft[name];
        assert_eq!(
            *t as u64,
            p["trainable"].as_u64().unwrap(),
            "{name}: trainable"
        );
        assert_eq!(*all as u64, p["all"].as_u64().unwrap(), "{name}: all");
        assert_eq!(
            share.parse::<f64>().unwrap(),
            p["percent"].as_f64().unwrap(),
            "{name}: share"
        );
    }
}

#[test]
fn the_tiny_t5_takes_as_many_trainable_parameters_as_peft_gives_it() {
    let dir = root().join("crates/lm/tests/fixtures/t5/relu");
    let make = || fairrec_lm::load::load_t5(&dir, &Device::Cpu, candle_core::DType::F32).unwrap();
    check(&sizes(&make, 3), &reference()["tiny"]);
}

#[test]
fn on_t5_base_the_shares_are_table_v_s() {
    let r = reference();
    let cfg = T5Config::from_hf_json(&r["t5_base_config"].to_string()).unwrap();
    let make = || {
        let vb = VarBuilder::from_backend(Box::new(TiedZeros), DType::F32, Device::Cpu);
        T5::new(&cfg, vb).unwrap()
    };
    let ours = sizes(&make, 20);
    check(&ours, &r["t5_base"]);
    // And the shares the paper prints, as the experiment file records them.
    let text =
        std::fs::read_to_string(root().join("experiments/paper-b-table5-ml100k.toml")).unwrap();
    let file: toml::Table = toml::from_str(&text).unwrap();
    let paper = &file["paper"]["ml-100k"]["gender"];
    for (name, _, _, share) in &ours {
        let printed = paper[&format!("{name}@fair")]["trainable"]
            .as_float()
            .unwrap();
        assert_eq!(share.parse::<f64>().unwrap(), printed, "{name}");
    }
}
