//! Generations as OpenAI response bodies: completions' `logprobs` (token strings, their
//! log-probabilities, a token -> log-probability map of the alternatives, text offsets) and
//! chat's `logprobs.content` (token, log-probability, bytes, `top_logprobs`).

use super::engine::{Generation, Step};
use crate::protocol::{
    ChatChoice, ChatLogprobs, ChatResponse, CompletionChoice, CompletionLogprobs,
    CompletionResponse, Message, TokenLogprob, TopLogprob, Usage,
};
use fairrec_lm::tokenizer::Tok;
use std::collections::BTreeMap;

/// Seconds since 1970 (the responses' `created`).
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn piece(tok: &Tok, id: u32) -> fairrec_lm::Result<String> {
    tok.decode(&[id])
}

/// Prompt tokens once per prompt, completion tokens of every choice.
fn usage(gens: &[Generation]) -> Usage {
    let mut seen = std::collections::BTreeSet::new();
    let prompt: usize = gens
        .iter()
        .filter(|g| seen.insert(g.prompt))
        .map(|g| g.prompt_tokens)
        .sum();
    let completion: usize = gens.iter().map(|g| g.steps.len()).sum();
    Usage {
        prompt_tokens: prompt as u64,
        completion_tokens: completion as u64,
        total_tokens: (prompt + completion) as u64,
    }
}

/// The alternatives as completions' map (a string two tokens decode to keeps the more
/// likely one).
fn top_map(tok: &Tok, top: &[(u32, f64)]) -> fairrec_lm::Result<BTreeMap<String, f64>> {
    let mut m = BTreeMap::new();
    for &(id, lp) in top {
        m.entry(piece(tok, id)?).or_insert(lp);
    }
    Ok(m)
}

/// `/v1/completions`' body. `prompts` are the request's prompt texts (echoed when `echo`).
pub fn completion(
    tok: &Tok,
    model: &str,
    id: String,
    prompts: &[String],
    echo: bool,
    logprobs: bool,
    gens: Vec<Generation>,
) -> fairrec_lm::Result<CompletionResponse> {
    let usage = usage(&gens);
    let mut choices = Vec::with_capacity(gens.len());
    for (index, g) in gens.into_iter().enumerate() {
        let head = if echo {
            prompts[g.prompt].clone()
        } else {
            String::new()
        };
        let lp = if logprobs {
            let mut l = CompletionLogprobs::default();
            let mut offset = 0;
            // The first echoed prompt token has no log-probability.
            let first = g.echo.as_ref().map(|(t, _)| (*t, None));
            let steps = first.into_iter().chain(
                g.echo
                    .iter()
                    .flat_map(|(_, rest)| rest)
                    .chain(&g.steps)
                    .map(|s| (s.token, Some(s))),
            );
            for (token, st) in steps {
                let text = piece(tok, token)?;
                l.text_offset.push(offset);
                offset += text.chars().count();
                l.tokens.push(text);
                l.token_logprobs.push(st.map(|s: &Step| s.logprob));
                l.top_logprobs
                    .push(st.map(|s| top_map(tok, &s.top)).transpose()?);
            }
            Some(l)
        } else {
            None
        };
        choices.push(CompletionChoice {
            index,
            text: head + &g.text,
            logprobs: lp,
            finish_reason: Some(g.finish.to_string()),
        });
    }
    Ok(CompletionResponse {
        id,
        object: "text_completion".into(),
        created: now(),
        model: model.into(),
        choices,
        usage: Some(usage),
    })
}

/// `/v1/chat/completions`' body.
pub fn chat(
    tok: &Tok,
    model: &str,
    id: String,
    logprobs: bool,
    gens: Vec<Generation>,
) -> fairrec_lm::Result<ChatResponse> {
    let usage = usage(&gens);
    let mut choices = Vec::with_capacity(gens.len());
    for (index, g) in gens.into_iter().enumerate() {
        let lp = if logprobs {
            let mut content = Vec::with_capacity(g.steps.len());
            for s in &g.steps {
                let token = piece(tok, s.token)?;
                let mut top = Vec::with_capacity(s.top.len());
                for &(t, lp) in &s.top {
                    let text = piece(tok, t)?;
                    top.push(TopLogprob {
                        bytes: Some(text.as_bytes().to_vec()),
                        token: text,
                        logprob: lp,
                    });
                }
                content.push(TokenLogprob {
                    bytes: Some(token.as_bytes().to_vec()),
                    token,
                    logprob: s.logprob,
                    top_logprobs: top,
                });
            }
            Some(ChatLogprobs {
                content: Some(content),
            })
        } else {
            None
        };
        choices.push(ChatChoice {
            index,
            message: Message {
                role: "assistant".into(),
                content: g.text,
            },
            logprobs: lp,
            finish_reason: Some(g.finish.to_string()),
        });
    }
    Ok(ChatResponse {
        id,
        object: "chat.completion".into(),
        created: now(),
        model: model.into(),
        choices,
        usage: Some(usage),
    })
}
