//! Greedy generation through the chat template (a smoke check of a model and its template):
//! `cargo run --release -p fairrec-lm --example generate -- MODEL "question"`.
use candle_core::Device;
use fairrec_lm::load::load;
use fairrec_lm::score::{AnswerSpace, PromptFormat, Scorer};

fn main() {
    let mut args = std::env::args().skip(1);
    let path = args.next().expect("model path");
    let q = args
        .next()
        .unwrap_or_else(|| "What is the capital of France?".into());
    let m = load(
        std::path::Path::new(&path),
        &Device::Cpu,
        candle_core::DType::F32,
    )
    .and_then(|l| l.into_decoder("generation"))
    .unwrap();
    let s = Scorer::new(
        &m.model,
        &m.tokenizer,
        PromptFormat::Chat,
        AnswerSpace::Auto,
    )
    .unwrap();
    let ids = m.tokenizer.encode(&s.render(&q).unwrap()).unwrap();
    let stop: Vec<u32> = m
        .tokenizer
        .eos
        .into_iter()
        .chain(m.tokenizer.encode("<|im_end|>").unwrap())
        .collect();
    let mut out = m.model.greedy(&ids, 40, &stop).unwrap();
    out.retain(|t| !stop.contains(t));
    println!("{}", m.tokenizer.decode(&out).unwrap());
}
