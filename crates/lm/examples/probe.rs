//! Print P(Yes) of a few true/false statements with a model: `cargo run --release -p fairrec-lm --example probe -- MODEL`.
use candle_core::Device;
use fairrec_lm::load::load;
use fairrec_lm::score::{AnswerSpace, PromptFormat, Scorer};

fn main() {
    let path = std::env::args().nth(1).expect("model path");
    let m = load(
        std::path::Path::new(&path),
        &Device::Cpu,
        candle_core::DType::F32,
    )
    .unwrap();
    let pairs = [
        (
            "Is the sky blue on a clear day?",
            "Is the sky green on a clear day?",
        ),
        (
            "Is two plus two equal to four?",
            "Is two plus two equal to five?",
        ),
        ("Is Paris in France?", "Is Paris in Japan?"),
        ("Do cats have four legs?", "Do cats have ten legs?"),
        ("Is water wet?", "Is fire cold?"),
    ];
    for format in [PromptFormat::Chat, PromptFormat::Raw] {
        let s = Scorer::new(&m.model, &m.tokenizer, format, AnswerSpace::Auto).unwrap();
        for (t, f) in pairs {
            let p = s
                .p_yes(
                    &[
                        format!("{t} Answer \"Yes\" or \"No\"."),
                        format!("{f} Answer \"Yes\" or \"No\"."),
                    ],
                    2,
                )
                .unwrap();
            println!(
                "{format:?} true {:.3} false {:.3}  {}",
                p[0],
                p[1],
                if p[0] > p[1] { "ok" } else { "WRONG" }
            );
        }
    }
}
