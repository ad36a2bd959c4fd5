//! Baichuan2 (paper A's other backbone): the fused `W_pack` projection, NormHead, and
//! rotary positions (7B) or ALiBi (13B), checked against
//! `fixtures/baichuan2/make_tiny_baichuan2.py`, which re-does the published modelling
//! code's arithmetic in numpy (float64) on two tiny random models saved in HF layout.

use candle_core::{DType, Device, Tensor};
use fairrec_lm::backbone::Backbone;
use fairrec_lm::load::{load, Model};
use std::path::{Path, PathBuf};

/// Seeded standard normal values of `shape`.
fn randn(shape: &[usize], seed: u64) -> Tensor {
    let mut rng = fairrec_core::Rng::derive(seed, "baichuan-test");
    let v: Vec<f32> = (0..shape.iter().product::<usize>())
        .map(|_| rng.normal() as f32)
        .collect();
    Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
}

/// `rope` (the 7B layout) or `alibi` (the 13B one).
fn fixture(layout: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/fixtures/baichuan2/{layout}"))
}

/// The reference prompts and the logits at each of their positions, each prompt run alone.
fn reference(dir: &Path) -> (Vec<Vec<u32>>, Vec<Vec<Vec<f64>>>) {
    let text = std::fs::read_to_string(dir.join("reference.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    (
        serde_json::from_value(v["ids"].clone()).unwrap(),
        serde_json::from_value(v["logits"].clone()).unwrap(),
    )
}

fn decoder(dir: &Path) -> fairrec_lm::Llama {
    load(dir, &Device::Cpu, DType::F32)
        .unwrap()
        .into_decoder("the test")
        .unwrap()
        .model
}

/// The largest difference of the model in `dir` from the reference in `want` (default:
/// `dir`'s), its prompts batched right-padded (only the real positions compared).
fn max_error(dir: &Path, want: Option<&Path>) -> f64 {
    let m = decoder(dir);
    let (prompts, want) = reference(want.unwrap_or(dir));
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

/// The `rope` fixture copied to `dir` with its config.json changed by `f`.
fn variant(dir: &Path, f: impl Fn(&mut serde_json::Value)) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    for e in std::fs::read_dir(fixture("rope")).unwrap() {
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
fn both_layouts_match_the_published_arithmetic() {
    for layout in ["rope", "alibi"] {
        let err = max_error(&fixture(layout), None);
        assert!(
            err < 1e-4,
            "{layout}: logits differ from the reference by {err}"
        );
    }
    let m = load(&fixture("rope"), &Device::Cpu, DType::F32).unwrap();
    let Model::Decoder(m) = m.model else {
        panic!("a decoder")
    };
    assert!(m.cfg.is_baichuan() && m.cfg.norm_head() && !m.cfg.alibi());
    // NormHead: every head row has unit norm once loaded
    let norms: Vec<f32> = m.head().sqr().unwrap().sum(1).unwrap().to_vec1().unwrap();
    assert!(norms.iter().all(|n| (n - 1.0).abs() < 1e-5), "{norms:?}");
}

/// ALiBi's other paths: one answer row per prompt (the scoring path) and KV-cached
/// decoding give the reference's logits too.
#[test]
fn alibi_scores_rows_and_decodes_with_a_cache_as_the_full_pass() {
    let dir = fixture("alibi");
    let m = decoder(&dir);
    let (prompts, want) = reference(&dir);
    let close = |got: Vec<f32>, want: &[f64], what: &str| {
        let d = got
            .iter()
            .zip(want)
            .map(|(g, w)| (f64::from(*g) - w).abs())
            .fold(0.0, f64::max);
        assert!(d < 1e-4, "{what}: {d}");
    };
    let t = prompts[0].len();
    let flat: Vec<u32> = prompts
        .iter()
        .flat_map(|p| p.iter().copied().chain(std::iter::repeat_n(0, t - p.len())))
        .collect();
    let ids = Tensor::from_vec(flat, (2, t), &Device::Cpu).unwrap();
    let last: Vec<usize> = prompts.iter().map(|p| p.len() - 1).collect();
    let h = m.forward_at(&ids, None, &last).unwrap();
    let rows: Vec<Vec<f32>> = m.head_logits(&h).unwrap().to_vec2().unwrap();
    for (r, p) in prompts.iter().enumerate() {
        close(rows[r].clone(), &want[r][p.len() - 1], "answer row");
        let (mut cache, _) = m.prefill(&p[..p.len() - 2], 2).unwrap();
        for (j, &tok) in p[p.len() - 2..].iter().enumerate() {
            let l = m.decode_step(&[tok], &mut [&mut cache]).unwrap();
            let l: Vec<f32> = l.squeeze(0).unwrap().to_vec1().unwrap();
            close(l, &want[r][p.len() - 2 + j], "cached decoding");
        }
    }
}

#[test]
fn norm_head_and_the_positions_matter_and_odd_ones_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let rope = fixture("rope");
    // Without NormHead the head's rows (norms 0.2..3 x) give other logits.
    let plain = variant(&tmp.path().join("plain"), |c| c["norm_head"] = false.into());
    assert!(max_error(&plain, Some(&rope)) > 1e-2);
    // Without `position_embedding`, a hidden size other than the 7B's 4096 means ALiBi
    // (as vLLM reads the 13B checkpoints): other logits.
    let sized = variant(&tmp.path().join("sized"), |c| {
        c.as_object_mut().unwrap().remove("position_embedding");
    });
    assert!(decoder(&sized).cfg.alibi());
    assert!(max_error(&sized, Some(&rope)) > 1e-2);
    let odd = variant(&tmp.path().join("odd"), |c| {
        c["position_embedding"] = "learned".into()
    });
    let e = load(&odd, &Device::Cpu, DType::F32)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("`learned`") && e.contains("config.json"), "{e}");
}

#[test]
fn a_full_fine_tune_saves_each_layout_to_reload_as_it_computes() {
    for (layout, model_type) in [("rope", "llama"), ("alibi", "baichuan")] {
        full_fine_tune_round_trip(layout, model_type);
    }
}

/// The 7B layout is saved as the Llama it computes; the 13B one (ALiBi) as Baichuan with
/// q, k, v apart and NormHead off; both reload to the reference's logits.
fn full_fine_tune_round_trip(layout: &str, model_type: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let loaded = load(&fixture(layout), &Device::Cpu, DType::F32).unwrap();
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
    assert_eq!(cfg["model_type"], model_type);
    let alibi = layout == "alibi";
    assert_eq!(cfg.get("norm_head").is_some(), alibi, "{cfg}");
    let err = max_error(&out, Some(&fixture(layout)));
    assert!(err < 1e-4, "{layout}: the saved model differs by {err}");
}

/// LoRA through ALiBi's composed attention: gradients reach every adapter tensor and
/// match central finite differences.
#[test]
fn lora_gradients_through_alibi_attention_match_finite_differences() {
    use candle_core::Var;
    let mut m = decoder(&fixture("alibi"));
    let cfg = fairrec_lm::adapter::AdapterConfig::lora(2, 4.0, &["q_proj", "v_proj"]);
    let set = m.attach_adapters(&cfg, 1).unwrap();
    let vars: Vec<(String, Var)> = set.named_vars();
    for (i, (_, v)) in vars.iter().enumerate() {
        // B starts at zero (the identity), where A gets no gradient: randomise both.
        v.set(&(randn(v.dims(), i as u64) * 0.5).unwrap()).unwrap();
    }
    let (prompts, _) = reference(&fixture("alibi"));
    let ids = Tensor::new(prompts[0].as_slice(), &Device::Cpu)
        .unwrap()
        .unsqueeze(0)
        .unwrap();
    let probe = randn(&[1, prompts[0].len(), 64], 99);
    let loss = || {
        let h = m.forward(&ids, None).unwrap().last;
        (m.head_logits(&h).unwrap() * &probe)
            .unwrap()
            .sum_all()
            .unwrap()
    };
    let grads = loss().backward().unwrap();
    for (name, v) in &vars {
        let g: Vec<f32> = grads
            .get(v.as_tensor())
            .unwrap_or_else(|| panic!("no gradient reached {name}"))
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let base: Vec<f32> = v.as_tensor().flatten_all().unwrap().to_vec1().unwrap();
        for idx in [0, base.len() / 2, base.len() - 1] {
            let eps = 1e-2f32;
            let at = |d: f32| {
                let mut w = base.clone();
                w[idx] += d;
                v.set(&Tensor::from_vec(w, v.shape(), &Device::Cpu).unwrap())
                    .unwrap();
                f64::from(loss().to_scalar::<f32>().unwrap())
            };
            let fd = (at(eps) - at(-eps)) / (2.0 * f64::from(eps));
            at(0.0);
            let an = f64::from(g[idx]);
            assert!(
                (fd - an).abs() < 2e-3 + 0.03 * an.abs().max(fd.abs()),
                "{name}[{idx}]: finite difference {fd} vs gradient {an}"
            );
        }
    }
}
