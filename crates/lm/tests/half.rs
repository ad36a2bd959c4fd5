//! Half-precision models, both ways a bf16 base computes: the composed candle ops that GPUs
//! run (bf16 hidden states; selected here on the CPU with `ops::reference`) and the CPU's
//! fused kernels (f32 hidden states, bf16 weights, each product's input rounded to bf16:
//! `ops::bf16`). Either way bf16 weights give the f32 model's logits within bf16's
//! precision, LoRA variables stay f32 and get the f32 model's gradients, and a fresh adapter
//! is still exactly the identity. The loaders put each tensor straight into the dtype asked
//! for: the same tensors as a load in f32 then a cast.

mod common;
use candle_core::{DType, Device, Tensor, Var};
use common::{assert_cast_of, max_abs, save_hf, tiny, tiny_parts, weights_of};
use fairrec_core::Rng;
use fairrec_lm::adapter::AdapterConfig;
use fairrec_lm::load::{load_hf_dir, load_t5};
use fairrec_lm::Llama;

fn logits(m: &Llama) -> Tensor {
    let ids = Tensor::new(
        &[[3u32, 14, 15, 92, 65, 35], [89, 79, 32, 38, 46, 26]],
        &Device::Cpu,
    )
    .unwrap();
    let f = m.forward(&ids, None).unwrap();
    assert_eq!(f.last.dtype(), m.hidden_dtype());
    m.logits_at(&f.last, &[5, 5]).unwrap()
}

/// Run `check` on the composed path (hidden states in the weights' dtype) and on the CPU's
/// fused one (hidden states in f32), naming the path.
fn on_both_paths(check: impl Fn(&str)) {
    fairrec_lm::ops::reference(|| {
        assert_eq!(tiny(DType::BF16).hidden_dtype(), DType::BF16);
        check("composed");
    });
    assert_eq!(tiny(DType::BF16).hidden_dtype(), DType::F32);
    check("cpu-fused");
}

/// LoRA r 4 on q/v with B drawn N(0, 0.3^2) from a fixed stream (so the update is not zero).
fn with_lora(m: &mut Llama) -> Vec<(String, Var)> {
    let set = m
        .attach_adapters(&AdapterConfig::lora(4, 8.0, &["q_proj", "v_proj"]), 3)
        .unwrap();
    let mut rng = Rng::derive(11, "half-test");
    let vars = set.named_vars();
    for (name, v) in &vars {
        if name.contains("lora_B") {
            let n = v.elem_count();
            let x: Vec<f32> = (0..n).map(|_| (rng.normal() * 0.3) as f32).collect();
            v.set(&Tensor::from_vec(x, v.dims(), &Device::Cpu).unwrap())
                .unwrap();
        }
    }
    vars
}

#[test]
fn bf16_weights_give_the_f32_logits_within_bf16_precision() {
    on_both_paths(bf16_logits);
}

fn bf16_logits(path: &str) {
    let (full, half) = (logits(&tiny(DType::F32)), logits(&tiny(DType::BF16)));
    assert_eq!(half.dtype(), DType::F32, "logits come back in f32");
    let scale = max_abs(&full);
    let err = max_abs(&(&full - &half).unwrap());
    // bf16 keeps 8 bits of mantissa (relative step 2^-8 = 0.0039); two blocks of rounding
    // stay within a few steps of the logits' scale, while a wrong op would be off by O(1).
    assert!(scale > 0.1, "logits too small to compare: {scale}");
    assert!(
        err < 0.03 * scale,
        "{path}: bf16 vs f32: max diff {err} at scale {scale}"
    );
    assert!(err > 0.0, "{path}: the bf16 model is bit-identical to f32");
}

#[test]
fn a_fresh_adapter_is_the_identity_on_a_bf16_model() {
    on_both_paths(|path| {
        let mut m = tiny(DType::BF16);
        let base = logits(&m);
        m.attach_adapters(&AdapterConfig::lora(4, 8.0, &["q_proj", "v_proj"]), 3)
            .unwrap();
        assert_eq!(max_abs(&(&base - &logits(&m)).unwrap()), 0.0, "{path}");
    });
}

#[test]
fn lora_on_bf16_keeps_f32_variables_and_gets_the_f32_gradients() {
    on_both_paths(lora_gradients);
}

fn lora_gradients(path: &str) {
    let mut full = tiny(DType::F32);
    let mut half = tiny(DType::BF16);
    let (vf, vh) = (with_lora(&mut full), with_lora(&mut half));
    let target = [17u32, 60];
    let loss = |m: &Llama| {
        let l = candle_nn::ops::log_softmax(&logits(m), 1).unwrap();
        let idx = Tensor::new(&[[target[0]], [target[1]]], &Device::Cpu).unwrap();
        l.gather(&idx, 1)
            .unwrap()
            .neg()
            .unwrap()
            .mean_all()
            .unwrap()
    };
    let (gf, gh) = (
        loss(&full).backward().unwrap(),
        loss(&half).backward().unwrap(),
    );
    assert_eq!(vf.len(), 8, "2 layers x (q, v) x (A, B)");
    for ((name, a), (_, b)) in vf.iter().zip(&vh) {
        assert_eq!(b.dtype(), DType::F32, "{path}: {name} should stay f32");
        let ga = gf.get(a.as_tensor()).expect("f32 gradient");
        let gb = gh
            .get(b.as_tensor())
            .unwrap_or_else(|| panic!("{path}: no gradient reached {name} on the bf16 model"));
        assert_eq!(gb.dtype(), DType::F32);
        let scale = max_abs(ga);
        let err = max_abs(&(ga - gb).unwrap());
        assert!(scale > 0.0, "{path}: {name}: zero gradient");
        assert!(
            err < 0.1 * scale,
            "{path}: {name}: bf16 grad off by {err} at scale {scale}"
        );
    }
}

#[test]
fn hf_directories_load_straight_into_bf16_and_f16_as_a_cast_of_the_f32_load() {
    let (cfg, tok, w) = tiny_parts();
    // One checkpoint saved in f32, one in bf16 (as most HF checkpoints ship), two shards.
    for (saved, shards) in [(DType::F32, 1), (DType::BF16, 2)] {
        let dir = tempfile::tempdir().unwrap();
        let w: std::collections::HashMap<String, Tensor> = w
            .iter()
            .map(|(k, t)| (k.clone(), t.to_dtype(saved).unwrap()))
            .collect();
        save_hf(dir.path(), &cfg, &tok, &w, shards);
        let mut full = load_hf_dir(dir.path(), &Device::Cpu, DType::F32)
            .unwrap()
            .model;
        let full = weights_of(&mut full);
        for dtype in [DType::BF16, DType::F16] {
            let mut m = load_hf_dir(dir.path(), &Device::Cpu, dtype).unwrap().model;
            assert_eq!(m.embed_tokens.dtype(), dtype);
            assert_cast_of(&weights_of(&mut m), &full, dtype);
        }
    }
}

#[test]
fn t5_loads_straight_into_bf16_and_scores_within_bf16_precision() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/t5/relu");
    let mut full = load_t5(&dir, &Device::Cpu, DType::F32).unwrap();
    let mut half = load_t5(&dir, &Device::Cpu, DType::BF16).unwrap();
    let ids = Tensor::new(&[[5u32, 9, 17, 3, 1], [8, 2, 11, 1, 0]], &Device::Cpu).unwrap();
    let batch = fairrec_lm::backbone::Batch {
        x: ids,
        last: vec![4, 3],
    };
    use fairrec_lm::Backbone;
    let (_, a) = full.answer_state(&batch, None).unwrap();
    let (_, b) = half.answer_state(&batch, None).unwrap();
    assert_eq!(b.dtype(), DType::F32, "logits come back in f32");
    let (scale, err) = (max_abs(&a), max_abs(&(&a - &b).unwrap()));
    assert!(scale > 0.1 && err > 0.0, "scale {scale}, diff {err}");
    assert!(
        err < 0.03 * scale,
        "bf16 vs f32: max diff {err} at scale {scale}"
    );
    let (fw, hw) = (weights_of(&mut full), weights_of(&mut half));
    assert_cast_of(&hw, &fw, DType::BF16);
}
