//! Greedy generation through the chat template (a smoke check of a model and its template):
//! `cargo run --release -p fairrec-lm --example generate -- MODEL "question"`.
use candle_core::{Device, Tensor};
use fairrec_lm::load::load;
use fairrec_lm::score::{AnswerSpace, PromptFormat, Scorer};

fn main() {
    let mut args = std::env::args().skip(1);
    let path = args.next().expect("model path");
    let q = args
        .next()
        .unwrap_or_else(|| "What is the capital of France?".into());
    let m = load(std::path::Path::new(&path), &Device::Cpu).unwrap();
    let s = Scorer::new(
        &m.model,
        &m.tokenizer,
        PromptFormat::Chat,
        AnswerSpace::Auto,
    )
    .unwrap();
    let mut ids = m.tokenizer.encode(&s.render(&q).unwrap()).unwrap();
    for _ in 0..24 {
        let x = Tensor::new(ids.as_slice(), &Device::Cpu)
            .unwrap()
            .unsqueeze(0)
            .unwrap();
        let f = m.model.forward(&x, None).unwrap();
        let next = m
            .model
            .logits_at(&f.last, &[ids.len() - 1])
            .unwrap()
            .argmax(1)
            .unwrap()
            .to_vec1::<u32>()
            .unwrap()[0];
        if Some(next) == m.tokenizer.eos || m.tokenizer.decode(&[next]).unwrap() == "<|im_end|>" {
            break;
        }
        ids.push(next);
    }
    let prompt_len = m.tokenizer.encode(&s.render(&q).unwrap()).unwrap().len();
    println!("{}", m.tokenizer.decode(&ids[prompt_len..]).unwrap());
}
