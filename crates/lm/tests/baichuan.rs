//! Baichuan2 (paper A's other backbone) in its 7B layout: the fused `W_pack` projection,
//! NormHead and rotary positions, checked against `fixtures/baichuan2/make_tiny_baichuan2.py`,
//! which re-does the published modelling code's arithmetic in numpy (float64) on a tiny
//! random model saved in HF layout.

use candle_core::{DType, Device, Tensor};
use fairrec_lm::backbone::Backbone;
use fairrec_lm::load::{load, Model};
use std::path::{Path, PathBuf};

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/baichuan2/rope")
}

/// The reference prompts and the logits at each of their positions, each prompt run alone.
fn reference() -> (Vec<Vec<u32>>, Vec<Vec<Vec<f64>>>) {
    let text = std::fs::read_to_string(fixture().join("reference.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    (
        serde_json::from_value(v["ids"].clone()).unwrap(),
        serde_json::from_value(v["logits"].clone()).unwrap(),
    )
}

/// The largest difference from the reference of the model in `dir`, its prompts batched
/// right-padded (only the real positions compared).
fn max_error(dir: &Path) -> f64 {
    let m = load(dir, &Device::Cpu, DType::F32)
        .unwrap()
        .into_decoder("the test")
        .unwrap()
        .model;
    let (prompts, want) = reference();
    let t = prompts.iter().map(Vec::len).max().unwrap();
    let flat: Vec<u32> = prompts
        .iter()
        .flat_map(|p| p.iter().copied().chain(std::iter::repeat_n(0, t - p.len())))
        .collect();
    let ids = Tensor::from_vec(flat, (prompts.len(), t), &Device::Cpu).unwrap();
    let f = m.forward(&ids, None).unwrap();
    let got: Vec<Vec<Vec<f32>>> = m.head_logits(&f.last).unwrap().to_vec3().unwrap();
    let mut err = 0f64;
    for (w, g) in want.iter().zip(&got) {
        assert!(w.len() <= g.len());
        for (wr, gr) in w.iter().zip(g) {
            for (a, b) in wr.iter().zip(gr) {
                err = err.max((a - f64::from(*b)).abs());
            }
        }
    }
    err
}

/// The fixture copied to `dir` with its config.json changed by `f`.
fn variant(dir: &Path, f: impl Fn(&mut serde_json::Value)) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    for e in std::fs::read_dir(fixture()).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), dir.join(e.file_name())).unwrap();
    }
    let path = dir.join("config.json");
    let mut cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    f(&mut cfg);
    std::fs::write(&path, cfg.to_string()).unwrap();
    dir.to_path_buf()
}

#[test]
fn baichuan2_7b_layout_matches_the_published_arithmetic() {
    let err = max_error(&fixture());
    assert!(err < 1e-4, "logits differ from the reference by {err}");
    let m = load(&fixture(), &Device::Cpu, DType::F32).unwrap();
    let Model::Decoder(m) = m.model else {
        panic!("a decoder")
    };
    assert!(m.cfg.is_baichuan() && m.cfg.norm_head());
    // NormHead: every head row has unit norm once loaded
    let norms: Vec<f32> = m.head().sqr().unwrap().sum(1).unwrap().to_vec1().unwrap();
    assert!(norms.iter().all(|n| (n - 1.0).abs() < 1e-5), "{norms:?}");
}

#[test]
fn norm_head_matters_and_alibi_is_refused_by_name() {
    let tmp = tempfile::tempdir().unwrap();
    // Without NormHead the head's rows (norms 0.2..3 x) give other logits.
    let plain = variant(&tmp.path().join("plain"), |c| c["norm_head"] = false.into());
    assert!(max_error(&plain) > 1e-2);
    // ALiBi (the 13B models) is not built: said, whether the config or the sizes ask.
    let asked = variant(&tmp.path().join("alibi"), |c| {
        c["position_embedding"] = "alibi".into()
    });
    let sized = variant(&tmp.path().join("sized"), |c| {
        c.as_object_mut().unwrap().remove("position_embedding");
    });
    for (dir, says) in [(asked, "says alibi"), (sized, "not the 7B's 4096")] {
        let e = load(&dir, &Device::Cpu, DType::F32)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("ALiBi") && e.contains(says), "{e}");
        assert!(e.contains("config.json"), "names the file: {e}");
    }
    let odd = variant(&tmp.path().join("odd"), |c| {
        c["position_embedding"] = "learned".into()
    });
    let e = load(&odd, &Device::Cpu, DType::F32)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("`learned`"), "{e}");
}

#[test]
fn a_full_fine_tune_saves_baichuan2_as_the_llama_it_computes() {
    let tmp = tempfile::tempdir().unwrap();
    let loaded = load(&fixture(), &Device::Cpu, DType::F32).unwrap();
    let mut m = loaded.model;
    let tensors: Vec<(String, Tensor)> = m
        .make_trainable()
        .unwrap()
        .into_iter()
        .map(|(k, v)| (k, v.as_tensor().clone()))
        .collect();
    let keys: Vec<&str> = tensors.iter().map(|(k, _)| k.as_str()).collect();
    assert!(
        keys.contains(&"model.layers.1.self_attn.k_proj.weight"),
        "{keys:?}"
    );
    assert!(!keys.iter().any(|k| k.contains("W_pack")), "{keys:?}");
    let out = tmp.path().join("saved");
    m.save_dir(&tensors, &loaded.tokenizer, &out).unwrap();
    let cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("config.json")).unwrap()).unwrap();
    assert_eq!(cfg["model_type"], "llama");
    assert!(cfg.get("norm_head").is_none() && cfg.get("position_embedding").is_none());
    let err = max_error(&out);
    assert!(err < 1e-4, "the saved Llama differs by {err}");
}
