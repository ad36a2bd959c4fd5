//! FaiRLLM's list audit through a served model: each instruction
//! ([`fairrec_data::fairllm`]) sent once, greedily (`temperature: 0`, as the authors asked
//! ChatGPT), the numbered list parsed, its titles matched to the dataset's catalogue
//! ([`fairrec_data::catalogue`]). The lists then go to
//! [`fairrec_metrics::lists::list_fairness`] (Jaccard, SERP*, PRAG*; SNSR and SNSV).

mod plan;

pub use plan::{plan, write_outputs, ListPlan, PlanArgs, OUTPUTS};

use crate::client::{choice_texts, Api, Client, Traffic};
use crate::error::{Result, ServeError};
use fairrec_core::Variant;
use fairrec_data::catalogue::{Catalogue, Match, MatchKind};
use fairrec_data::fairllm::{parse_list, Instruction};
use fairrec_lm::chat::{render_prompt, ChatTemplate};
use fairrec_metrics::report::Block;
use std::collections::BTreeMap;

/// One answered instruction: a line of `lists.jsonl` (the `fairrec metrics --lists` format,
/// with what was written and how it matched).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ListRecord {
    pub instruction_id: String,
    pub variant: Variant,
    pub seed: String,
    /// The first `k` titles: the matched catalogue title, else the title as written (ours:
    /// two lists naming the same unknown title still agree on it).
    pub items: Vec<String>,
    /// The first `k` titles as parsed from the response.
    pub written: Vec<String>,
    pub matches: Vec<Match>,
    /// Titles parsed beyond the first `k` (not used).
    pub dropped: usize,
    /// The model's whole answer.
    pub response: String,
}

/// How the titles of some lists matched.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct MatchCounts {
    pub lists: usize,
    /// Lists with fewer than `k` titles (none parsed included).
    pub short_lists: usize,
    pub empty_lists: usize,
    pub titles: usize,
    pub exact: usize,
    pub fuzzy: usize,
    pub unmatched: usize,
    /// (exact + fuzzy) / titles.
    pub match_rate: f64,
}

/// The match counts of a run, overall and per variant.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct MatchSummary {
    /// Least similarity of a fuzzy match.
    pub threshold: f64,
    pub catalogue_items: usize,
    pub all: MatchCounts,
    pub per_variant: BTreeMap<String, MatchCounts>,
}

/// `run.json` of `fairrec audit-lists`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ListsRun {
    pub command: String,
    pub data: std::path::PathBuf,
    pub data_hash: String,
    pub attributes: Vec<String>,
    pub variants: Vec<String>,
    /// The seeds' file, or `most popular items`.
    pub seeds_from: String,
    pub seeds_sha256: Option<String>,
    pub seeds: Vec<String>,
    /// The instruction and system message as given (placeholders unfilled).
    pub instruction: String,
    pub system: Option<String>,
    pub k: usize,
    pub max_tokens: usize,
    pub requests: usize,
    pub served: ListsServed,
    pub matching: MatchSummary,
    pub seconds: f64,
    pub git_revision: Option<String>,
}

/// Where the lists were asked for, and what it cost.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ListsServed {
    #[serde(flatten)]
    pub connection: crate::audit::Connection,
    pub traffic: Traffic,
}

/// How the lists are asked for.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ListConfig {
    pub k: usize,
    /// Tokens the model may write per list.
    pub max_tokens: usize,
    /// Least similarity of a fuzzy title match.
    pub threshold: f64,
}

/// The request body of one instruction: through chat, the system and user messages (the
/// server's template); through `/v1/completions`, the messages rendered with `template`,
/// or without one the system message and the instruction as one raw prompt.
pub fn list_body(
    client: &Client,
    template: Option<&ChatTemplate>,
    inst: &Instruction,
    max_tokens: usize,
) -> Result<String> {
    let c = &client.cfg;
    let mut b = serde_json::json!({
        "model": c.model, "seed": c.seed, "max_tokens": max_tokens, "temperature": 0,
    });
    let mut messages: Vec<(&str, &str)> = Vec::new();
    if let Some(s) = &inst.system {
        messages.push(("system", s));
    }
    messages.push(("user", &inst.text));
    match (c.api, template) {
        (Api::Chat, _) => {
            b["messages"] = messages
                .iter()
                .map(|(role, content)| serde_json::json!({"role": role, "content": content}))
                .collect();
        }
        (Api::Completions, Some(t)) => b["prompt"] = t.render(&messages, true)?.into(),
        (Api::Completions, None) => {
            let text = match &inst.system {
                Some(s) => format!("{s} {}", inst.text),
                None => inst.text.clone(),
            };
            b["prompt"] = render_prompt(None, &text)?.into();
        }
    }
    Ok(b.to_string())
}

/// Ask for every instruction's list (`on(done, total)` per distinct request), parse and
/// match them. Returns the records (instruction order), the match summary and the traffic.
pub fn ask_lists(
    client: &Client,
    template: Option<&ChatTemplate>,
    instructions: &[Instruction],
    catalogue: &Catalogue,
    cfg: ListConfig,
    on: &(dyn Fn(usize, usize) + Sync),
) -> Result<(Vec<ListRecord>, MatchSummary, Traffic)> {
    let bodies = instructions
        .iter()
        .map(|i| list_body(client, template, i, cfg.max_tokens))
        .collect::<Result<Vec<_>>>()?;
    let url = client.url().to_string();
    let read = |v: &serde_json::Value| -> Result<String> {
        choice_texts(v)
            .and_then(|t| t.into_iter().next())
            .ok_or_else(|| ServeError::Response {
                url: url.clone(),
                message: format!(
                    "the response has no generated text (response: {})",
                    v.to_string().chars().take(300).collect::<String>()
                ),
            })
    };
    let (texts, traffic, _) = client.send_all(&bodies, &read, on)?;
    let mut records = Vec::with_capacity(texts.len());
    for (inst, response) in instructions.iter().zip(texts) {
        let mut written = parse_list(&response);
        let dropped = written.len().saturating_sub(cfg.k);
        written.truncate(cfg.k);
        let matches = catalogue.match_all(&written, cfg.threshold);
        let items = written
            .iter()
            .zip(&matches)
            .map(|(w, m)| m.title.clone().unwrap_or_else(|| w.clone()))
            .collect();
        records.push(ListRecord {
            instruction_id: inst.id.clone(),
            variant: inst.variant.clone(),
            seed: inst.seed.clone(),
            items,
            written,
            matches,
            dropped,
            response,
        });
    }
    let summary = summarise(&records, cfg, catalogue.len());
    Ok((records, summary, traffic))
}

/// The match counts of `records`.
pub fn summarise(records: &[ListRecord], cfg: ListConfig, catalogue_items: usize) -> MatchSummary {
    let mut all = MatchCounts::default();
    let mut per_variant: BTreeMap<String, MatchCounts> = BTreeMap::new();
    for r in records {
        for c in [
            &mut all,
            per_variant.entry(r.variant.to_string()).or_default(),
        ] {
            c.lists += 1;
            c.short_lists += usize::from(r.written.len() < cfg.k);
            c.empty_lists += usize::from(r.written.is_empty());
            c.titles += r.matches.len();
            for m in &r.matches {
                match m.kind {
                    MatchKind::Exact => c.exact += 1,
                    MatchKind::Fuzzy => c.fuzzy += 1,
                    MatchKind::None => c.unmatched += 1,
                }
            }
        }
    }
    for c in std::iter::once(&mut all).chain(per_variant.values_mut()) {
        c.match_rate = if c.titles == 0 {
            0.0
        } else {
            (c.exact + c.fuzzy) as f64 / c.titles as f64
        };
    }
    MatchSummary {
        threshold: cfg.threshold,
        catalogue_items,
        all,
        per_variant,
    }
}

/// The report section on title matching.
pub fn match_blocks(s: &MatchSummary) -> Vec<Block> {
    let row = |name: &str, c: &MatchCounts| {
        vec![
            name.to_string(),
            c.lists.to_string(),
            c.short_lists.to_string(),
            c.empty_lists.to_string(),
            c.titles.to_string(),
            c.exact.to_string(),
            c.fuzzy.to_string(),
            c.unmatched.to_string(),
            format!("{:.2}", 100.0 * c.match_rate),
        ]
    };
    let mut rows: Vec<Vec<String>> = s.per_variant.iter().map(|(v, c)| row(v, c)).collect();
    rows.push(row("all", &s.all));
    vec![
        Block::Heading(2, "Ranked lists: titles matched to the catalogue".into()),
        Block::Para(format!(
            "Each list's first titles were matched to the dataset's {} items: normalised exact, else the most similar title if its similarity (1 - Levenshtein distance / longer length) is at least {}. An unmatched title stays in its list as written. A short list has fewer titles than asked for.",
            s.catalogue_items, s.threshold
        )),
        Block::Table(
            ["variant", "lists", "short", "empty", "titles", "exact", "fuzzy", "unmatched", "match rate %"]
                .map(String::from)
                .to_vec(),
            rows,
        ),
    ]
}
