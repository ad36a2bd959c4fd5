//! Paper A's objective on T5 (ours: paper A has decoder-only backbones): `L_diff` on the
//! decoder's first-step state and on the encoder's pooled output, each against states
//! computed prompt by prompt through T5's own API; LoRA-MoE on T5's feed-forward with
//! gradients against finite differences; the encoder reading refused on a decoder.

mod common;

use candle_core::{DType, Device, Tensor, D};
use common::{check_finite_differences, model, randomise_b, scalar, tok};
use fairrec_lm::pool::{Capture, Pooling, Stack};
use fairrec_lm::score::{AnswerSpace, PromptFormat, Scorer};
use fairrec_lm::t5::T5;
use fairrec_lm::tokenizer::Tok;
use fairrec_train::engine::objective::{AnswerLoss, Objective};
use fairrec_train::methods::paper_a::loss::{Copy, FairLoss, Group};
use fairrec_train::Method;
use std::path::{Path, PathBuf};

const YES: u32 = 5;
const NO: u32 = 17;

fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../lm/tests/fixtures/t5/gated")
}

/// A word-level tokenizer over the fixture's 64 ids (`Yes` = 5, `No` = 17, `wN` = N).
fn word_tok(dir: &Path) -> Tok {
    let word = |i: u32| match i {
        YES => "Yes".to_string(),
        NO => "No".to_string(),
        i => format!("w{i}"),
    };
    let vocab: serde_json::Map<String, serde_json::Value> =
        (0..64).map(|i| (word(i), serde_json::json!(i))).collect();
    let tok = serde_json::json!({
        "version": "1.0", "truncation": null, "padding": null, "added_tokens": [],
        "normalizer": null, "pre_tokenizer": {"type": "WhitespaceSplit"},
        "post_processor": null, "decoder": null,
        "model": {"type": "WordLevel", "vocab": vocab, "unk_token": "w2"},
    });
    std::fs::write(dir.join("tokenizer.json"), tok.to_string()).unwrap();
    std::fs::write(dir.join("tokenizer_config.json"), r#"{"eos_token": "w1"}"#).unwrap();
    Tok::from_hf_dir(dir).unwrap()
}

fn t5() -> T5 {
    fairrec_lm::load::load_t5(&fixture(), &Device::Cpu, DType::F32).unwrap()
}

/// Samples whose copies differ in their first word (the "sensitive" one) and in length,
/// so that a batch is right-padded.
fn groups() -> Vec<Group> {
    let mut rng = fairrec_core::Rng::new(9);
    (0..3)
        .map(|i| {
            let body: Vec<u32> = (0..4 + i).map(|_| 20 + rng.below(40) as u32).collect();
            let with = |first: &[u32]| [first, &body].concat();
            Group {
                stated: [
                    ("original", &[3u32][..]),
                    ("counterfactual", &[4, 6]),
                    ("aux-age", &[7]),
                ]
                .iter()
                .map(|(kind, first)| Copy {
                    ids: with(first),
                    kind: kind.to_string(),
                })
                .collect(),
                neutral: Some(body.clone()),
                label: i % 2 == 0,
            }
        })
        .collect()
}

/// One prompt through T5's own API (no padding): the state `capture` names and the NLL of
/// the label's answer token at the first decoder step.
fn by_hand(m: &T5, ids: &[u32], capture: Capture, label: bool) -> (Vec<f64>, f64) {
    let x = Tensor::new(ids, &Device::Cpu)
        .unwrap()
        .unsqueeze(0)
        .unwrap();
    let mask = Tensor::ones_like(&x).unwrap();
    let layer = (capture.stack == Stack::Encoder)
        .then_some(capture.layer)
        .flatten();
    let (enc, enc_mask, captured) = m.encode_capturing(&x, &mask, None, layer).unwrap();
    let h = m.decoded_answer_state(1, &enc, &enc_mask).unwrap();
    let state = match capture.stack {
        Stack::Decoder => h.get(0).unwrap(),
        Stack::Encoder => {
            let s = captured.unwrap_or(enc).get(0).unwrap();
            match capture.pooling {
                Pooling::Last => s.get(ids.len() - 1).unwrap(),
                Pooling::Mean => s.mean(0).unwrap(),
            }
        }
    };
    let logits = m
        .logits(&h.unsqueeze(1).unwrap())
        .unwrap()
        .squeeze(1)
        .unwrap();
    let lsm = candle_nn::ops::log_softmax(&logits, D::Minus1).unwrap();
    let row = lsm.get(0).unwrap().to_vec1::<f32>().unwrap();
    let state = state
        .to_dtype(DType::F64)
        .unwrap()
        .to_vec1::<f64>()
        .unwrap();
    (state, -row[if label { YES } else { NO } as usize] as f64)
}

const CAPTURES: [Capture; 3] = [
    Capture {
        layer: None,
        pooling: Pooling::Last,
        stack: Stack::Decoder,
    },
    Capture {
        layer: None,
        pooling: Pooling::Mean,
        stack: Stack::Encoder,
    },
    Capture {
        layer: Some(1),
        pooling: Pooling::Last,
        stack: Stack::Encoder,
    },
];

#[test]
fn l_diff_on_t5_reads_the_decoder_or_the_encoder_as_computed_by_hand() {
    let tmp = tempfile::tempdir().unwrap();
    let tok = word_tok(tmp.path());
    let m = t5();
    let scorer = Scorer::new(&m, &tok, PromptFormat::Raw, AnswerSpace::None).unwrap();
    assert_eq!((scorer.yes, scorer.no), (YES, NO));
    let gs = groups();
    let items: Vec<&Group> = gs.iter().collect();
    let mut diffs = Vec::new();
    for capture in CAPTURES {
        let mut cfg = Method::CfDiff.defaults(true).objective;
        cfg.diff_weight = 0.7;
        cfg.capture = capture;
        let obj = FairLoss::new(AnswerLoss { scorer: &scorer }, cfg, None);
        let got = scalar(&obj.loss(&items).unwrap().0);
        let (mut sum, mut dsum, mut n) = (0.0, 0.0, 0.0);
        for g in &gs {
            let (hb, _) = by_hand(&m, g.neutral.as_ref().unwrap(), capture, g.label);
            for c in &g.stated {
                let (h, nll) = by_hand(&m, &c.ids, capture, g.label);
                let d = h
                    .iter()
                    .zip(&hb)
                    .map(|(a, b)| (a - b).powi(2))
                    .sum::<f64>()
                    .sqrt();
                sum += nll + 0.7 * d;
                dsum += d;
                n += 1.0;
            }
        }
        assert!(dsum / n > 1e-3, "{capture:?}: distances vanish ({dsum})");
        assert!(
            (got - sum / n).abs() < 1e-4,
            "{capture:?}: {got} vs {}",
            sum / n
        );
        let logged = obj.end_step()["diff"];
        assert!(
            (logged - dsum / n).abs() < 1e-4 * (dsum / n).max(1.0),
            "{capture:?}"
        );
        diffs.push(logged);
    }
    // the three readings are different states
    assert!((diffs[0] - diffs[1]).abs() > 1e-4 && (diffs[1] - diffs[2]).abs() > 1e-4);
    // the decoder runs one step: a decoder block is refused, naming the encoder reading
    let mut cfg = Method::CfDiff.defaults(true).objective;
    cfg.capture.layer = Some(0);
    let obj = FairLoss::new(AnswerLoss { scorer: &scorer }, cfg, None);
    let e = obj.loss(&items).unwrap_err().to_string();
    assert!(e.contains("--diff-stack encoder"), "{e}");
    // a block the encoder lacks
    let mut cfg = Method::CfDiff.defaults(true).objective;
    cfg.capture.layer = Some(3);
    cfg.capture.stack = Stack::Encoder;
    let obj = FairLoss::new(AnswerLoss { scorer: &scorer }, cfg, None);
    let e = obj.loss(&items).unwrap_err().to_string();
    assert!(e.contains("block 3") && e.contains("has 3"), "{e}");
}

#[test]
fn lora_moe_on_t5_s_feed_forward_gets_gradients_that_match_finite_differences() {
    let tmp = tempfile::tempdir().unwrap();
    let tok = word_tok(tmp.path());
    let mut m = t5();
    // CL-MoE's adapters (3 experts on gate/up/down: T5's wi_0, wi_1, wo)
    let mut lora = Method::ClMoe.defaults(true).lora;
    lora.dropout = 0.0;
    lora.r = 2;
    // scale 2: the tiny random T5 (attention unscaled) is too curved for central
    // differences at PEFT's alpha 32 / r 2
    lora.alpha = 4.0;
    let set = m.attach_adapters(&lora, 3).unwrap();
    set.set_training(true); // routes are recorded in training passes
    let vars = set.named_vars();
    let names: Vec<&str> = vars.iter().map(|(n, _)| n.as_str()).collect();
    for part in [
        "encoder.block.0.layer.1.DenseReluDense.wi_0",
        "encoder.block.2.layer.1.DenseReluDense.wi_1",
        "decoder.block.1.layer.2.DenseReluDense.wo",
    ] {
        assert!(
            names.iter().any(|n| n.contains(part)),
            "{part} in {names:?}"
        );
    }
    assert!(names.iter().any(|n| n.contains("router")), "{names:?}");
    assert!(!names.iter().any(|n| n.contains(".q.") || n.contains(".v.")));
    randomise_b(&vars);
    // larger B so that every tensor's gradient is measurable on a 16-wide model
    for (k, v) in &vars {
        if k.contains("lora_B") {
            v.set(&(v.as_tensor() * 4.0).unwrap()).unwrap();
        }
    }
    let scorer = Scorer::new(&m, &tok, PromptFormat::Raw, AnswerSpace::None).unwrap();
    let gs = groups();
    let items: Vec<&Group> = gs.iter().collect();
    for capture in [CAPTURES[0], CAPTURES[1]] {
        let mut cfg = Method::ClMoe.defaults(true).objective;
        cfg.curriculum = None;
        cfg.capture = capture;
        let obj = FairLoss::new(AnswerLoss { scorer: &scorer }, cfg, Some(&set));
        let loss = || obj.loss(&items).unwrap().0;
        check_finite_differences(&vars, &loss, &format!("T5 {:?}", capture.stack));
        let logged = obj.end_step();
        assert!(logged.contains_key("expert/2"), "{logged:?}");
    }
}

#[test]
fn the_encoder_reading_is_refused_on_a_decoder_only_model() {
    let tok = tok();
    let m = model(&tok);
    let scorer = Scorer::new(&m, &tok, PromptFormat::Raw, AnswerSpace::None).unwrap();
    let enc = |s: &str| scorer.encode(&[s.to_string()]).unwrap().remove(0);
    let g = Group {
        stated: vec![Copy {
            ids: enc("m:cdea"),
            kind: "original".into(),
        }],
        neutral: Some(enc("cdea")),
        label: true,
    };
    let mut cfg = Method::CfDiff.defaults(true).objective;
    cfg.capture.stack = Stack::Encoder;
    let obj = FairLoss::new(AnswerLoss { scorer: &scorer }, cfg, None);
    let e = obj.loss(&[&g]).unwrap_err().to_string();
    assert!(e.contains("encoder-decoder"), "{e}");
}
