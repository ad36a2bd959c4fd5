//! The engine on tiny random models built here: loading paths, scoring invariants, errors.

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use fairrec_lm::gguf::unpermute;
use fairrec_lm::load::load_hf_dir;
use fairrec_lm::random::random_weights;
use fairrec_lm::score::{AnswerSpace, PromptFormat, Scorer};
use fairrec_lm::tokenizer::Tok;
use fairrec_lm::{Llama, LlamaConfig};
use std::collections::HashMap;

mod common;
use common::{save_hf, tiny_parts as tiny, CHATML};

fn model(cfg: &LlamaConfig, w: &HashMap<String, Tensor>) -> Llama {
    Llama::new(
        cfg,
        VarBuilder::from_tensors(w.clone(), DType::F32, &Device::Cpu),
    )
    .unwrap()
}

#[test]
fn a_prompts_score_does_not_depend_on_its_batch() {
    let (cfg, tok, w) = tiny();
    let m = model(&cfg, &w);
    let s = Scorer::new(&m, &tok, PromptFormat::Chat, AnswerSpace::Auto).unwrap();
    let prompts: Vec<String> = [
        "short",
        "a much longer prompt with many more bytes in it than the others",
        "mid length one",
    ]
    .map(String::from)
    .to_vec();
    let together = s.p_yes(&prompts, 3).unwrap();
    for (i, p) in prompts.iter().enumerate() {
        let alone = s.p_yes(std::slice::from_ref(p), 1).unwrap()[0];
        assert!(
            (alone - together[i]).abs() < 1e-5,
            "{i}: {alone} vs {}",
            together[i]
        );
        assert!((0.0..=1.0).contains(&alone));
    }
    // and in a different order / batch size
    let rev: Vec<String> = prompts.iter().rev().cloned().collect();
    let r = s.p_yes(&rev, 2).unwrap();
    assert!((r[2] - together[0]).abs() < 1e-5);
    assert_ne!(
        together[0], together[1],
        "different prompts, different scores"
    );
}

#[test]
fn chat_template_and_answer_tokens() {
    let (cfg, tok, w) = tiny();
    let m = model(&cfg, &w);
    let chat = Scorer::new(&m, &tok, PromptFormat::Chat, AnswerSpace::Auto).unwrap();
    assert_eq!(
        chat.render("Hi?").unwrap(),
        "<|im_start|>user\nHi?<|im_end|>\n<|im_start|>assistant\n"
    );
    assert_eq!(
        tok.decode(&[chat.yes]).unwrap(),
        "Y",
        "chat answers start without a space"
    );
    // Raw prompts answer with a leading space by default; with one token per byte " Yes"
    // and " No" share their first token, which the scorer refuses instead of scoring noise.
    let e = Scorer::new(&m, &tok, PromptFormat::Raw, AnswerSpace::Auto)
        .err()
        .expect("' Yes' and ' No' share their first byte token");
    assert!(e.to_string().contains("same token"), "{e}");
    let raw = Scorer::new(&m, &tok, PromptFormat::Raw, AnswerSpace::None).unwrap();
    assert_eq!(raw.render("Hi?").unwrap(), "Input: Hi?\nOutput:");
    assert_eq!(
        (
            tok.decode(&[raw.yes]).unwrap(),
            tok.decode(&[raw.no]).unwrap()
        ),
        ("Y".to_string(), "N".to_string())
    );
}

#[test]
fn hf_directory_round_trip_single_and_sharded() {
    let (cfg, tok, w) = tiny();
    let reference = model(&cfg, &w);
    let ids = Tensor::new(&[[5u32, 9, 200, 17]], &Device::Cpu).unwrap();
    let want = reference
        .forward(&ids, None)
        .unwrap()
        .last
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    for shards in [1, 3] {
        let t = tempfile::tempdir().unwrap();
        save_hf(t.path(), &cfg, &tok, &w, shards);
        let l = load_hf_dir(t.path(), &Device::Cpu, candle_core::DType::F32).unwrap();
        let got = l
            .model
            .forward(&ids, None)
            .unwrap()
            .last
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        assert_eq!(got, want, "{shards} shard(s)");
        assert_eq!(l.tokenizer.chat_template.as_deref(), Some(CHATML));
        assert_eq!(l.tokenizer.eos, Some(256));
    }
}

#[test]
fn missing_and_misshapen_tensors_are_named() {
    let (cfg, _tok, mut w) = tiny();
    w.remove("model.layers.1.mlp.up_proj.weight");
    let e = Llama::new(
        &cfg,
        VarBuilder::from_tensors(w.clone(), DType::F32, &Device::Cpu),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("model.layers.1.mlp.up_proj.weight"), "{e}");
    w.insert(
        "model.layers.1.mlp.up_proj.weight".into(),
        Tensor::zeros((3, 5), DType::F32, &Device::Cpu).unwrap(),
    );
    let e = Llama::new(&cfg, VarBuilder::from_tensors(w, DType::F32, &Device::Cpu))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("up_proj") && e.contains("[3, 5]") && e.contains("[128, 64]"),
        "{e}"
    );
}

#[test]
fn gguf_permutation_is_undone() {
    // llama.cpp's permute: reshape (heads, 2, half, in) -> swap(1, 2) -> reshape.
    let (heads, hd, inp) = (3, 8, 5);
    let hf = Tensor::arange(0f32, (heads * hd * inp) as f32, &Device::Cpu)
        .unwrap()
        .reshape((heads * hd, inp))
        .unwrap();
    let gguf = hf
        .reshape((heads, 2, hd / 2, inp))
        .unwrap()
        .transpose(1, 2)
        .unwrap()
        .contiguous()
        .unwrap()
        .reshape((heads * hd, inp))
        .unwrap();
    assert_ne!(gguf.to_vec2::<f32>().unwrap(), hf.to_vec2::<f32>().unwrap());
    assert_eq!(
        unpermute(&gguf, heads).unwrap().to_vec2::<f32>().unwrap(),
        hf.to_vec2::<f32>().unwrap()
    );
    let bias = Tensor::arange(0f32, (heads * hd) as f32, &Device::Cpu).unwrap();
    let gb = bias
        .reshape((heads, 2, hd / 2))
        .unwrap()
        .transpose(1, 2)
        .unwrap()
        .contiguous()
        .unwrap()
        .flatten_all()
        .unwrap();
    assert_eq!(
        unpermute(&gb, heads).unwrap().to_vec1::<f32>().unwrap(),
        bias.to_vec1::<f32>().unwrap()
    );
}

#[test]
fn qwen2_style_biases_load_and_matter() {
    let tok = Tok::bytes_only(&["<|endoftext|>"], None).unwrap();
    let mut cfg = LlamaConfig::tiny(tok.vocab_size());
    cfg.model_type = Some("qwen2".into());
    cfg.tie_word_embeddings = false;
    let w = random_weights(&cfg, 2, 0.1, &Device::Cpu).unwrap();
    assert!(
        w.contains_key("model.layers.0.self_attn.q_proj.bias") && w.contains_key("lm_head.weight")
    );
    let m = model(&cfg, &w);
    let ids = Tensor::new(&[[1u32, 2, 3]], &Device::Cpu).unwrap();
    let a = m
        .logits_at(&m.forward(&ids, None).unwrap().last, &[2])
        .unwrap()
        .to_vec2::<f32>()
        .unwrap();
    let mut w2 = w.clone();
    w2.insert(
        "model.layers.0.self_attn.v_proj.bias".into(),
        Tensor::zeros(
            w["model.layers.0.self_attn.v_proj.bias"].dims(),
            DType::F32,
            &Device::Cpu,
        )
        .unwrap(),
    );
    let m2 = model(&cfg, &w2);
    let b = m2
        .logits_at(&m2.forward(&ids, None).unwrap().last, &[2])
        .unwrap()
        .to_vec2::<f32>()
        .unwrap();
    assert_ne!(a, b, "the v bias is used");
    assert_eq!(
        cfg.parameters(),
        w.values().map(|t| t.elem_count()).sum::<usize>()
    );
}

/// Mean pooling covers a prompt's real tokens only: a padded row pools like the prompt
/// scored alone; last pooling reads the last real token.
#[test]
fn pooling_ignores_padding() {
    use fairrec_lm::pool::{pool, Pooling};
    let cfg = LlamaConfig::tiny(64);
    let w = random_weights(&cfg, 4, 0.1, &Device::Cpu).unwrap();
    let m = Llama::new(&cfg, VarBuilder::from_tensors(w, DType::F32, &Device::Cpu)).unwrap();
    let short = Tensor::new(&[[3u32, 9, 4]], &Device::Cpu).unwrap();
    let both = Tensor::new(&[[3u32, 9, 4, 0, 0], [1, 2, 3, 4, 5]], &Device::Cpu).unwrap();
    let hs = m.forward(&short, None).unwrap().last;
    let hb = m.forward(&both, None).unwrap().last;
    for (pooling, lasts) in [(Pooling::Mean, [2usize, 4]), (Pooling::Last, [2, 4])] {
        let a = pool(&hs, &lasts[..1], pooling)
            .unwrap()
            .to_vec2::<f32>()
            .unwrap();
        let b = pool(&hb, &lasts, pooling)
            .unwrap()
            .to_vec2::<f32>()
            .unwrap();
        for (x, y) in a[0].iter().zip(&b[0]) {
            assert!((x - y).abs() < 1e-5, "{pooling:?}");
        }
    }
    // mean pooling by hand for the short row
    let rows = hs.squeeze(0).unwrap().to_vec2::<f32>().unwrap();
    let got = pool(&hs, &[2], Pooling::Mean)
        .unwrap()
        .to_vec2::<f32>()
        .unwrap();
    for j in 0..cfg.hidden_size {
        let want = (rows[0][j] + rows[1][j] + rows[2][j]) / 3.0;
        assert!((got[0][j] - want).abs() < 1e-5);
    }
}

#[test]
fn kv_cached_generation_equals_the_uncached_token_by_token() {
    use fairrec_lm::generate::{generate, Work};
    let (cfg, tok, w) = tiny();
    let m = model(&cfg, &w);
    let s = Scorer::new(&m, &tok, PromptFormat::Chat, AnswerSpace::Auto).unwrap();
    let prompts = s
        .encode(&["a short one".into(), "and a somewhat longer prompt".into()])
        .unwrap();
    let work = Work {
        prompts: prompts.clone(),
        max_tokens: 12,
        temperature: 0.0,
        top_p: 1.0,
        n: 1,
        seed: 0,
        stop: Vec::new(),
        top: None,
        echo_logprobs: false,
    };
    // Batched (both sequences in one decode step) and one at a time.
    for batch in [2, 1] {
        let gens = generate(&s, &[&work], batch).unwrap().remove(0);
        for (g, ids) in gens.iter().zip(&prompts) {
            let cached: Vec<u32> = g.steps.iter().map(|st| st.token).collect();
            // Llama::greedy runs the whole sequence again for every token (no cache).
            let stop: Vec<u32> = tok.eos.into_iter().collect();
            let uncached = m.greedy(ids, 12, &stop).unwrap();
            assert_eq!(cached, uncached, "batch {batch}");
            assert_eq!(
                cached.len(),
                12,
                "random weights rarely say EOS: the budget ends it"
            );
        }
    }
}
