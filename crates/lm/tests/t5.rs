//! T5 against transformers: two tiny random T5 models saved in HF format (original T5 with
//! ReLU and tied embeddings; v1.1 / Flan style with gated GELU and an untied head) and the
//! outputs transformers computed for them, made by `fixtures/t5/make_tiny_t5.py`.

use candle_core::{Device, Tensor};
use fairrec_lm::load::{is_t5_dir, load_t5};
use fairrec_lm::t5::{relative_position_bucket, T5};
use std::path::PathBuf;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/t5")
        .join(name)
}

struct Case {
    model: T5,
    reference: serde_json::Value,
}

fn case(name: &str) -> Case {
    let dir = fixture(name);
    assert!(is_t5_dir(&dir), "{} is not recognised as T5", dir.display());
    let text = std::fs::read_to_string(dir.join("reference.json")).unwrap();
    Case {
        model: load_t5(&dir, &Device::Cpu, candle_core::DType::F32).unwrap(),
        reference: serde_json::from_str(&text).unwrap(),
    }
}

fn ints(v: &serde_json::Value) -> Vec<Vec<u32>> {
    serde_json::from_value(v.clone()).unwrap()
}

fn floats(v: &serde_json::Value) -> Vec<f32> {
    serde_json::from_value(v.clone()).unwrap()
}

fn tensor2(rows: &[Vec<u32>]) -> Tensor {
    let (b, t) = (rows.len(), rows[0].len());
    Tensor::from_vec(rows.concat(), (b, t), &Device::Cpu).unwrap()
}

/// Largest absolute difference between ours and the reference, and the reference's scale.
fn compare(ours: &Tensor, reference: &[f32]) -> (f32, f32) {
    let ours = ours.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    assert_eq!(ours.len(), reference.len(), "element count");
    let err = ours
        .iter()
        .zip(reference)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max);
    let scale = reference.iter().map(|x| x.abs()).fold(0.0, f32::max);
    (err, scale)
}

fn inputs(c: &Case) -> (Tensor, Tensor, Tensor) {
    let r = &c.reference;
    (
        tensor2(&ints(&r["input_ids"])),
        tensor2(&ints(&r["attention_mask"])),
        tensor2(&ints(&r["decoder_input_ids"])),
    )
}

fn check_against_transformers(name: &str) {
    let c = case(name);
    let (ids, mask, dec) = inputs(&c);
    let (enc, enc_mask) = c.model.encode(&ids, &mask, None).unwrap();
    let (err, scale) = compare(&enc, &floats(&c.reference["encoder_last_hidden_state"]));
    assert!(
        scale > 0.1 && err < 1e-4 * scale.max(1.0),
        "{name} encoder: {err} (scale {scale})"
    );

    let logits = c
        .model
        .logits(&c.model.decode(&dec, &enc, &enc_mask).unwrap())
        .unwrap();
    let reference = floats(&c.reference["logits"]);
    let (err, scale) = compare(&logits, &reference);
    assert!(
        scale > 0.1 && err < 1e-4 * scale.max(1.0),
        "{name} logits: {err} (scale {scale})"
    );

    // The scoring path: only the first decoder step, only the asked rows of the head.
    let v = c.model.cfg.vocab_size;
    let t_dec = dec.dim(1).unwrap();
    let tokens = [5u32, 17, 63];
    let first = c
        .model
        .first_step_logits(&ids, &mask, None, &tokens)
        .unwrap();
    let expected: Vec<f32> = (0..2)
        .flat_map(|b| tokens.map(|k| reference[b * t_dec * v + k as usize]))
        .collect();
    let (err, _) = compare(&first, &expected);
    assert!(err < 1e-4 * scale.max(1.0), "{name} first step: {err}");
}

#[test]
fn relu_t5_with_tied_head_matches_transformers() {
    check_against_transformers("relu");
}

#[test]
fn gated_gelu_t5_with_untied_head_matches_transformers() {
    check_against_transformers("gated");
}

#[test]
fn a_soft_prompt_in_front_of_the_encoder_matches_transformers_inputs_embeds() {
    for name in ["relu", "gated"] {
        let c = case(name);
        let (ids, mask, _) = inputs(&c);
        let d = c.model.cfg.d_model;
        let rows: Vec<Vec<f32>> = serde_json::from_value(c.reference["prompt"].clone()).unwrap();
        let prompt = Tensor::from_vec(rows.concat(), (1, 3, d), &Device::Cpu)
            .unwrap()
            .broadcast_as((2, 3, d))
            .unwrap()
            .contiguous()
            .unwrap();
        let v = c.model.cfg.vocab_size as u32;
        let all: Vec<u32> = (0..v).collect();
        let got = c
            .model
            .first_step_logits(&ids, &mask, Some(&prompt), &all)
            .unwrap();
        let (err, scale) = compare(&got, &floats(&c.reference["prompt_first_logits"]));
        assert!(
            scale > 0.1 && err < 1e-4 * scale.max(1.0),
            "{name}: {err} (scale {scale})"
        );
        // And the prompt changes the answer (the check above is not vacuous).
        let plain = c.model.first_step_logits(&ids, &mask, None, &all).unwrap();
        let (moved, _) = compare(&plain, &floats(&c.reference["prompt_first_logits"]));
        assert!(moved > 1e-2, "{name}: the prompt did not change the logits");
    }
}

#[test]
fn relative_position_buckets_match_transformers() {
    let c = case("relu");
    let rel: Vec<i64> = serde_json::from_value(c.reference["relative_positions"].clone()).unwrap();
    let table = c.reference["buckets"].as_object().unwrap();
    assert_eq!(table.len(), 4);
    for (key, expected) in table {
        let parts: Vec<&str> = key.split('-').collect();
        let (bi, nb, md) = (
            parts[0] == "bi",
            parts[1].parse().unwrap(),
            parts[2].parse().unwrap(),
        );
        let expected: Vec<usize> = serde_json::from_value(expected.clone()).unwrap();
        let ours: Vec<usize> = rel
            .iter()
            .map(|&r| relative_position_bucket(r, bi, nb, md))
            .collect();
        assert_eq!(ours, expected, "{key}");
    }
}

#[test]
fn padding_does_not_leak_into_real_positions() {
    // Row 1 of the fixture is padded; scored alone without its padding it must give the
    // same first-step logits.
    let c = case("gated");
    let (ids, mask, _) = inputs(&c);
    let all: Vec<u32> = (0..c.model.cfg.vocab_size as u32).collect();
    let batch = c.model.first_step_logits(&ids, &mask, None, &all).unwrap();
    let short = ids.narrow(0, 1, 1).unwrap().narrow(1, 0, 8).unwrap();
    let ones = mask.narrow(0, 1, 1).unwrap().narrow(1, 0, 8).unwrap();
    let alone = c
        .model
        .first_step_logits(&short, &ones, None, &all)
        .unwrap();
    let row = batch.narrow(0, 1, 1).unwrap().flatten_all().unwrap();
    let (err, _) = compare(&alone, &row.to_vec1::<f32>().unwrap());
    assert!(err < 1e-5, "padding changed the scores by {err}");
}

/// `sum_b log softmax(first-step logits)[b, target_b]` with whatever prompt is attached.
fn answer_log_likelihood(m: &T5, ids: &Tensor, mask: &Tensor, targets: &[u32]) -> Tensor {
    let logits = m.first_step_vocab_logits(ids, mask, None).unwrap();
    let lsm = candle_nn::ops::log_softmax(&logits, 1).unwrap();
    let idx = Tensor::from_vec(targets.to_vec(), (targets.len(), 1), &Device::Cpu).unwrap();
    lsm.gather(&idx, 1).unwrap().sum_all().unwrap()
}

#[test]
fn a_prompt_attached_to_t5_trains_through_the_first_decoder_step() {
    use fairrec_lm::prompt::PromptInit;
    use fairrec_lm::PromptHost;
    let c = case("gated");
    let (ids, mask, _) = inputs(&c);
    let mut m = c.model;
    let tok = fairrec_lm::tokenizer::Tok::bytes_only(&[], None).unwrap();
    let prompt = m
        .attach_soft_prompt(
            &tok,
            3,
            fairrec_lm::prompt::PromptShape::ONE,
            &PromptInit::Random,
            5,
        )
        .unwrap();
    // The full-vocabulary logits agree with the selected-token form, and the attached
    // prompt is the same prompt given as a per-row prefix.
    let v = m.cfg.vocab_size as u32;
    let all: Vec<u32> = (0..v).collect();
    let full = m.first_step_vocab_logits(&ids, &mask, None).unwrap();
    let picked = m
        .first_step_logits(&ids, &mask, None, &all)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    let (err, scale) = compare(&full, &picked);
    assert!(err < 1e-5 * scale.max(1.0), "{err}");
    let p = prompt.prompt().unwrap();
    let d = m.cfg.d_model;
    let prefix = p
        .unsqueeze(0)
        .unwrap()
        .expand((2, 3, d))
        .unwrap()
        .contiguous()
        .unwrap();
    m.soft_prompt = None;
    let given = m
        .first_step_vocab_logits(&ids, &mask, Some(&prefix))
        .unwrap();
    let (err, _) = compare(
        &given,
        &full.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
    );
    assert!(err < 1e-5, "attached vs prefix: {err}");
    m.soft_prompt = Some(prompt.clone());
    // The gradient of the answer's log-likelihood reaches the prompt and matches central
    // finite differences (gated GELU: smooth).
    let targets = [5u32, 17];
    let g = answer_log_likelihood(&m, &ids, &mask, &targets)
        .backward()
        .unwrap();
    let grad = g
        .get(prompt.embeddings.as_tensor())
        .expect("no gradient reached the prompt")
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    let base = prompt
        .embeddings
        .as_tensor()
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    let value = |w: &[f32]| {
        prompt
            .embeddings
            .set(&Tensor::from_vec(w.to_vec(), (3, d), &Device::Cpu).unwrap())
            .unwrap();
        f64::from(
            answer_log_likelihood(&m, &ids, &mask, &targets)
                .to_scalar::<f32>()
                .unwrap(),
        )
    };
    let mut checked = 0;
    for i in [0, d + 1, 2 * d + d / 2, 3 * d - 1] {
        let eps = 1e-2f32;
        let (mut up, mut down) = (base.clone(), base.clone());
        up[i] += eps;
        down[i] -= eps;
        let fd = (value(&up) - value(&down)) / (2.0 * f64::from(eps));
        let an = f64::from(grad[i]);
        assert!(
            (fd - an).abs() < 2e-3 + 0.03 * an.abs().max(fd.abs()),
            "prompt[{i}]: finite difference {fd} vs gradient {an}"
        );
        checked += usize::from(an.abs() > 1e-6);
    }
    assert!(checked >= 2, "the prompt barely moves the answer");
}

#[test]
fn lora_on_t5_is_the_identity_until_trained_and_saves_and_loads_in_peft_layout() {
    use fairrec_lm::adapter::AdapterConfig;
    let c = case("gated");
    let (ids, mask, _) = inputs(&c);
    let mut m = c.model;
    let plain = m.first_step_vocab_logits(&ids, &mask, None).unwrap();
    // The methods' default targets (Llama names) mean T5's q and v; the FFN's gate maps to
    // wi_0 of this gated model.
    let cfg = AdapterConfig::lora(4, 8.0, &["q_proj", "v_proj", "gate_proj"]);
    let set = m.attach_adapters(&cfg, 3).unwrap();
    let paths: Vec<&str> = set.modules.iter().map(|(p, _)| p.as_str()).collect();
    let (enc, dec) = (m.cfg.num_layers, m.cfg.decoder_layers());
    // q, v and wi_0 per encoder block; q, v (self and cross) and wi_0 per decoder block.
    assert_eq!(paths.len(), 3 * enc + 5 * dec, "{paths:?}");
    assert!(paths.contains(&"encoder.block.0.layer.0.SelfAttention.q"));
    assert!(paths.contains(&"decoder.block.0.layer.1.EncDecAttention.v"));
    assert!(paths.contains(&"decoder.block.0.layer.2.DenseReluDense.wi_0"));
    let fresh = m.first_step_vocab_logits(&ids, &mask, None).unwrap();
    let (err, _) = compare(
        &fresh,
        &plain.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
    );
    assert_eq!(err, 0.0, "a fresh adapter (B = 0) must be the identity");
    // Non-zero B changes the answer; the saved files load into a fresh model to the same.
    for (k, v) in set.named_vars() {
        if k.contains("lora_B") {
            let n = v.elem_count();
            let w: Vec<f32> = (0..n).map(|i| ((i * 7 % 11) as f32 - 5.0) * 0.05).collect();
            v.set(&Tensor::from_vec(w, v.shape(), &Device::Cpu).unwrap())
                .unwrap();
        }
    }
    let trained = m.first_step_vocab_logits(&ids, &mask, None).unwrap();
    let (moved, _) = compare(
        &trained,
        &plain.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
    );
    assert!(moved > 1e-3, "B did not move the logits");
    let tuning = fairrec_lm::tuning::Tuning::Adapters(set);
    let dir = tempfile::tempdir().unwrap();
    fairrec_lm::peft::save(&tuning, &m, "tiny-t5", dir.path()).unwrap();
    let cfg: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("adapter_config.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(cfg["task_type"], "SEQ_2_SEQ_LM");
    let tok = fairrec_lm::tokenizer::Tok::bytes_only(&[], None).unwrap();
    let mut fresh = fairrec_lm::load::Model::T5(case("gated").model);
    fairrec_lm::peft::load(dir.path(), &mut fresh, &tok).unwrap();
    let fairrec_lm::load::Model::T5(fresh) = fresh else {
        unreachable!()
    };
    let loaded = fresh.first_step_vocab_logits(&ids, &mask, None).unwrap();
    let (err, _) = compare(
        &loaded,
        &trained.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
    );
    assert!(err < 1e-6, "loaded adapter differs by {err}");
}

#[test]
fn t5_weights_by_checkpoint_key_save_and_load_back() {
    for name in ["relu", "gated"] {
        let c = case(name);
        let (ids, mask, _) = inputs(&c);
        let mut m = c.model;
        let want = m.first_step_vocab_logits(&ids, &mask, None).unwrap();
        let file =
            candle_core::safetensors::load(fixture(name).join("model.safetensors"), &Device::Cpu)
                .unwrap();
        let keys: Vec<String> = m.named_tensors_mut().into_iter().map(|(k, _)| k).collect();
        // Every checkpoint tensor is ours, except the stacks' copies of the shared table.
        let mut expected: Vec<&String> = file
            .keys()
            .filter(|k| !k.ends_with("embed_tokens.weight"))
            .collect();
        expected.sort();
        let mut ours: Vec<&String> = keys.iter().collect();
        ours.sort();
        assert_eq!(ours, expected, "{name}");
        let tensors: Vec<(String, Tensor)> = m
            .named_tensors_mut()
            .into_iter()
            .map(|(k, t)| (k, t.clone()))
            .collect();
        let dir = tempfile::tempdir().unwrap();
        let tok = fairrec_lm::tokenizer::Tok::bytes_only(&[], None).unwrap();
        fairrec_lm::save::save_t5_dir(&m.cfg, &tensors, &tok, dir.path()).unwrap();
        assert!(is_t5_dir(dir.path()));
        let back = load_t5(dir.path(), &Device::Cpu, candle_core::DType::F32).unwrap();
        let got = back.first_step_vocab_logits(&ids, &mask, None).unwrap();
        let (err, _) = compare(&got, &want.flatten_all().unwrap().to_vec1::<f32>().unwrap());
        assert_eq!(err, 0.0, "{name}: saved and loaded back differs by {err}");
    }
}
