//! P-tuning: the prompt is the MLP by hand over the virtual-token embeddings, the model
//! with it attached equals the model given that prompt as a prefix, gradients reach the
//! embeddings and every encoder layer (against finite differences), and the PEFT file
//! (`P_TUNING`, the encoder's output as `prompt_embeddings`) loads back to the same logits.

mod common;
use candle_core::{DType, Device, Tensor};
use common::{ids, logits, max_abs, tiny};
use fairrec_lm::peft;
use fairrec_lm::tokenizer::Tok;
use fairrec_lm::tuning::Tuning;
use fairrec_lm::PromptHost;

fn rows(t: &Tensor) -> Vec<Vec<f32>> {
    t.to_vec2::<f32>().unwrap()
}

#[test]
fn the_prompt_is_the_mlp_by_hand_and_acts_as_a_prefix() {
    let mut m = tiny(DType::F32);
    let p = m
        .attach_p_tuning(4, fairrec_lm::prompt::PromptShape::ONE, 24, 3)
        .unwrap();
    // By hand: relu(relu(x W0^T + b0) W1^T + b1) W2^T + b2, row by row.
    let x = rows(p.embeddings.as_tensor());
    let enc = p.encoder.as_ref().unwrap();
    let mut y = x.clone();
    for (i, (w, b)) in enc.layers.iter().enumerate() {
        let (w, b) = (rows(w.as_tensor()), b.as_tensor().to_vec1::<f32>().unwrap());
        y = y
            .iter()
            .map(|r| {
                w.iter()
                    .zip(&b)
                    .map(|(wr, bj)| {
                        let v = wr.iter().zip(r).map(|(a, c)| a * c).sum::<f32>() + bj;
                        if i < 2 {
                            v.max(0.0)
                        } else {
                            v
                        }
                    })
                    .collect()
            })
            .collect();
    }
    assert_eq!(enc.layers[0].0.dims(), &[24, 32]);
    let prompt = p.prompt().unwrap();
    let by_hand = Tensor::new(y, &Device::Cpu).unwrap();
    assert!(max_abs(&(&prompt - &by_hand).unwrap()) < 1e-5);
    // The attached prompt is the prefix.
    let attached = logits(&m);
    m.soft_prompt = None;
    let prefix = prompt.unsqueeze(0).unwrap().repeat((2, 1, 1)).unwrap();
    let f = m.forward_prefixed(&ids(), Some(&prefix), None).unwrap();
    let given = m.logits_at(&f.last, &[4, 4]).unwrap();
    assert!(max_abs(&(attached - given).unwrap()) < 1e-6);
}

#[test]
fn gradients_reach_every_p_tuning_tensor_and_match_finite_differences() {
    let mut m = tiny(DType::F32);
    let p = m
        .attach_p_tuning(3, fairrec_lm::prompt::PromptShape::ONE, 16, 5)
        .unwrap();
    let vars = p.named_vars();
    assert_eq!(vars.len(), 7, "embedding + 3 x (weight, bias)");
    assert_eq!(vars[0].0, "prompt_encoder.embedding.weight");
    let loss = || {
        let l = logits(&m);
        (l.narrow(1, 7, 1).unwrap().sum_all().unwrap()
            - l.narrow(1, 9, 1).unwrap().sum_all().unwrap())
        .unwrap()
    };
    let grads = loss().backward().unwrap();
    for (name, v) in &vars {
        let g = grads
            .get(v.as_tensor())
            .unwrap_or_else(|| panic!("no gradient for {name}"));
        let flat = g.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let base = v
            .as_tensor()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        for idx in [0, base.len() / 2] {
            // Small enough not to cross a ReLU kink of the encoder (1e-2 did, once).
            let eps = 1e-3f32;
            let at = |delta: f32| {
                let mut w = base.clone();
                w[idx] += delta;
                v.set(&Tensor::from_vec(w, v.shape(), &Device::Cpu).unwrap())
                    .unwrap();
                loss().to_scalar::<f32>().unwrap() as f64
            };
            let fd = (at(eps) - at(-eps)) / (2.0 * eps as f64);
            at(0.0);
            let an = flat[idx] as f64;
            assert!(
                (fd - an).abs() < 2e-3 + 0.03 * an.abs().max(fd.abs()),
                "{name}[{idx}]: finite difference {fd} vs gradient {an}"
            );
        }
    }
}

#[test]
fn the_peft_file_holds_the_encoders_output_and_loads_back() {
    let mut m = tiny(DType::F32);
    let p = m
        .attach_p_tuning(4, fairrec_lm::prompt::PromptShape::ONE, 0, 9)
        .unwrap();
    let t = Tuning::Prompt {
        prompt: p.clone(),
        init: fairrec_lm::prompt::PromptInit::Random,
    };
    let want = logits(&m);
    let dir = tempfile::tempdir().unwrap();
    peft::save(&t, &m, "tiny", dir.path()).unwrap();
    let cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join(peft::CONFIG_FILE)).unwrap())
            .unwrap();
    assert_eq!(cfg["peft_type"], "P_TUNING");
    assert_eq!(cfg["encoder_hidden_size"], 32, "0 means the model's width");
    let w =
        candle_core::safetensors::load(dir.path().join(peft::WEIGHTS_FILE), &Device::Cpu).unwrap();
    assert_eq!(w.keys().collect::<Vec<_>>(), vec!["prompt_embeddings"]);
    assert!(max_abs(&(&w["prompt_embeddings"] - p.prompt().unwrap()).unwrap()) < 1e-6);
    let mut fresh = tiny(DType::F32);
    peft::load(dir.path(), &mut fresh, &Tok::bytes_only(&[], None).unwrap()).unwrap();
    assert!(max_abs(&(logits(&fresh) - want).unwrap()) < 1e-5);
}
