//! `fairrec score`: P(Yes) of one prompt.

use crate::model_args::{load_with_adapter, ModelArgs};
use anyhow::Result;
use clap::Args;
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct ScoreArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub remote: crate::endpoint::EndpointArgs,
    /// A PEFT adapter directory (LoRA or prompt tuning) to apply.
    #[arg(long)]
    pub adapter: Option<PathBuf>,
    /// The prompt (the user message of the chat template, or the `Input:` of a raw prompt).
    #[arg(long)]
    pub prompt: String,
}

/// Prints, as the last line, one JSON object `{"p_yes", "logit_yes", "logit_no",
/// "n_tokens", "ids", "yes_token", "no_token"}` (the token ids fed and the answer tokens
/// read); with `--endpoint`, `{"p_yes", "censored", "url", "text", "answers"}`.
pub fn run(a: &ScoreArgs) -> Result<()> {
    if a.remote.server.endpoint.is_some() {
        return score_served(a);
    }
    let (loaded, tuning) = load_with_adapter(&a.model, a.adapter.as_deref())?;
    if let Some(fairrec_lm::tuning::Tuning::Mos(_)) = tuning {
        anyhow::bail!(
            "{}: a MoS adapter routes its soft prompt from a dataset sample's stereotype-group inputs, which a bare --prompt does not have; use `fairrec audit --data ...`",
            a.adapter.as_deref().unwrap_or(std::path::Path::new("")).display()
        );
    }
    let scorer = a.model.scorer(&loaded)?;
    let ids = scorer.encode(std::slice::from_ref(&a.prompt))?;
    let logits = scorer.yes_no_logits(&ids, None)?;
    let l = logits.to_dtype(candle_core::DType::F64)?.to_vec2::<f64>()?[0].clone();
    // softmax over the two logits, computed stably in f64
    let p_yes = 1.0 / (1.0 + (l[1] - l[0]).exp());
    if !p_yes.is_finite() {
        anyhow::bail!(
            "the answer logits are {} and {}: the model's outputs are not finite (its weights hold NaN or infinity?)",
            l[0],
            l[1]
        );
    }
    tracing::info!(
        "answer tokens {:?} / {:?}",
        loaded.tokenizer.decode(&[scorer.yes])?,
        loaded.tokenizer.decode(&[scorer.no])?
    );
    say!(
        "{}",
        serde_json::json!({
            "p_yes": p_yes, "logit_yes": l[0], "logit_no": l[1], "n_tokens": ids[0].len(),
            "ids": ids[0], "yes_token": scorer.yes, "no_token": scorer.no,
        })
    );
    Ok(())
}

fn score_served(a: &ScoreArgs) -> Result<()> {
    if a.adapter.is_some() {
        anyhow::bail!("--adapter with --endpoint: a served model's adapter is loaded by the server (e.g. `fairrec serve --adapter DIR`)");
    }
    let (client, template) = crate::endpoint::connect(&a.remote, &a.model, 0, None)?;
    let text = fairrec_serve::audit::wire_text(client.cfg.api, template.as_ref(), &a.prompt)?;
    let (scores, _) = client.score(std::slice::from_ref(&text), &|_, _| {})?;
    say!(
        "{}",
        serde_json::json!({
            "p_yes": scores[0].p_yes, "censored": scores[0].censored, "url": client.url(),
            "text": text, "answers": [client.cfg.answers.0, client.cfg.answers.1],
        })
    );
    Ok(())
}
