//! Paper A's CoT baseline with real reasoning (`fairrec audit --template cot --cot
//! generate`; issue 26). Appendix A's CoT template asks the model to give the topic,
//! analyse the styles the user likes and dislikes, and then answer; reading P(Yes) right
//! after the prompt (the default, `--cot none`) skips the reasoning. Here the model first
//! writes its reasoning ([`fairrec_lm::generate`]: greedy, or sampled with a temperature;
//! a key/value cache; ending at EOS, a stop string or `max_new_tokens`), then P(Yes) is
//! read after the reasoning and an answer cue ([`cue`]).
//!
//! Each distinct prompt is generated once; the reasoning is appended to
//! `OUT/generations.jsonl` as it is written ([`fairrec_core::cache`], keyed by the prompt's
//! tokens, the generation settings and the model that wrote it: [`CotRun::open`]), so a
//! rerun of the audit generates nothing it already has, another model or adapter in the
//! same directory reuses nothing, and the file stays beside the predictions for reading.

use crate::error::{Result, TrainError};
use fairrec_core::cache::{key, Cache};
use fairrec_lm::generate::{generate, Work};
use fairrec_lm::score::Scorer;
use std::collections::HashMap;
use std::path::Path;

/// The file in the audit's directory that holds the reasoning.
pub const FILE: &str = "generations.jsonl";

/// How the reasoning is generated.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CotGenerate {
    /// Tokens of reasoning at most.
    pub max_new_tokens: usize,
    /// 0: greedy (the default); otherwise sampled from `softmax(logits / temperature)`.
    pub temperature: f64,
    /// Nucleus sampling's mass (1: the whole distribution).
    pub top_p: f64,
    /// Strings that end the reasoning (cut before them).
    pub stop: Vec<String>,
    /// Seed of the sampling (each prompt draws from its own stream).
    pub seed: u64,
}

impl CotGenerate {
    /// These settings, checked: reasoning needs the template that asks for it and
    /// fairrec's own engine (`served`: a model behind `--endpoint`).
    pub fn checked(self, template: fairrec_data::prompt::Template, served: bool) -> Result<Self> {
        let bad = |m: &str| Err(TrainError::Input(format!("--cot generate: {m}")));
        if template != fairrec_data::prompt::Template::Cot {
            return bad("needs --template cot (the template that asks for reasoning)");
        }
        if served {
            return bad(
                "runs fairrec's own engine; a served model (--endpoint) is audited without it",
            );
        }
        let top_p = self.top_p > 0.0 && self.top_p <= 1.0;
        if !(0.0..=2.0).contains(&self.temperature) || !top_p {
            return bad("--cot-temperature must be in [0, 2] and --cot-top-p in (0, 1]");
        }
        Ok(self)
    }
}

/// An audit's reasoning: its settings, the model it comes from and its cache.
pub struct CotRun {
    pub settings: CotGenerate,
    /// The model, adapter and placement, as [`source_stamp`] names them.
    pub source: String,
    pub cache: Cache,
}

impl CotRun {
    /// The reasoning of the audit in `out` with `settings`, by the model at `model` (with
    /// `adapter`) placed as `place` (`--device`/`--dtype`): the cache `out/`[`FILE`] opened.
    pub fn open(
        settings: CotGenerate,
        out: &Path,
        model: &Path,
        adapter: Option<&Path>,
        place: &str,
    ) -> Result<Self> {
        Ok(CotRun {
            settings,
            source: source_stamp(model, adapter, place),
            cache: Cache::open(&out.join(FILE))?,
        })
    }
}

/// What names the model that writes the reasoning (ours): its path and the adapter's, each
/// file's size and modification time (the files of a directory, not recursive), and
/// `place`. Retraining an adapter into the same directory changes it; reading the weights
/// would cost a hash of gigabytes on every audit.
pub fn source_stamp(model: &Path, adapter: Option<&Path>, place: &str) -> String {
    let mut out = format!("place {place}\n");
    for p in std::iter::once(model).chain(adapter) {
        let mut files: Vec<std::path::PathBuf> = match std::fs::read_dir(p) {
            Ok(d) => d.flatten().map(|e| e.path()).collect(),
            Err(_) => vec![p.to_path_buf()],
        };
        files.sort();
        for f in files {
            let m = std::fs::metadata(&f).ok();
            let len = m.as_ref().map_or(0, |m| m.len());
            let time = m.and_then(|m| m.modified().ok());
            let nanos = time
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_nanos());
            out.push_str(&format!("{} {len} {nanos}\n", f.display()));
        }
    }
    out
}

/// One prompt's reasoning as `generations.jsonl` keeps it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Reasoning {
    /// The reasoning's text (stop string and EOS excluded).
    pub text: String,
    /// Its tokens, as fed back before the answer cue.
    pub tokens: Vec<u32>,
    /// `stop` (EOS or a stop string) or `length` (the budget ran out).
    pub finish: String,
}

/// The text after the reasoning, before the answer is read (ours): a new line and
/// `Answer:` and a new line where a chat template puts the answer on its own line, or
/// `Output:` for raw prompts (`Input: ...\nOutput:`), so that the answer token is the
/// one the prompt's format reads (`Yes` or ` Yes`, [`fairrec_lm::chat`]).
pub fn cue(scorer: &Scorer) -> &'static str {
    match scorer.has_template() {
        true => "\nAnswer:\n",
        false => "\nOutput:",
    }
}

/// Every prompt `ids[k]` with its reasoning and the answer cue after it, and the
/// reasoning of each distinct prompt in first-seen order. Reasoning already in the run's
/// cache (same prompt, settings and source) is reused; the rest is generated `batch`
/// prompts at a time and appended to it.
pub fn reason(
    scorer: &Scorer,
    ids: &[Vec<u32>],
    run: &CotRun,
    batch: usize,
) -> Result<(Vec<Vec<u32>>, Vec<Reasoning>)> {
    scorer.model("--cot generate")?;
    let (cfg, cache) = (&run.settings, &run.cache);
    let settings = serde_json::to_string(cfg).expect("settings serialize") + "\n" + &run.source;
    let keys: Vec<String> = ids
        .iter()
        .map(|p| key(&settings, &format!("{p:?}")))
        .collect();
    let mut first: HashMap<&str, usize> = HashMap::new();
    for (k, key) in keys.iter().enumerate() {
        first.entry(key).or_insert(k);
    }
    let mut order: Vec<usize> = first.values().copied().collect();
    order.sort_unstable();
    let missing: Vec<usize> = order
        .iter()
        .copied()
        .filter(|&k| cache.get(&keys[k]).is_none())
        .collect();
    tracing::info!(
        "--cot generate: {} distinct prompts, {} with reasoning in {FILE} already",
        order.len(),
        order.len() - missing.len()
    );
    // What this run generated (the cache answers only for what it read when opened).
    let mut fresh: HashMap<usize, Reasoning> = HashMap::new();
    for (done, chunk) in missing.chunks(batch.max(1)).enumerate() {
        // Each prompt its own request, its sampling stream named by its key.
        let works: Vec<Work> = chunk
            .iter()
            .map(|&k| Work {
                prompts: vec![ids[k].clone()],
                max_tokens: cfg.max_new_tokens,
                temperature: cfg.temperature,
                top_p: cfg.top_p,
                n: 1,
                seed: cfg.seed ^ fairrec_core::fnv1a64(keys[k].as_bytes()),
                stop: cfg.stop.clone(),
                top: None,
                echo_logprobs: false,
            })
            .collect();
        let refs: Vec<&Work> = works.iter().collect();
        let gens = fairrec_lm::grad::no_grad(|| generate(scorer, &refs, batch))?;
        for (&k, g) in chunk.iter().zip(gens) {
            let g = g.into_iter().next().expect("one choice per prompt");
            let generated: Vec<u32> = g.steps.iter().map(|s| s.token).collect();
            let cut_at_stop = g.finish == "stop" && generated.last() != scorer.tok.eos.as_ref();
            let tokens = match (cut_at_stop, scorer.tok.eos) {
                // A stop string may end inside a token: the kept text, encoded again.
                (true, _) => scorer.tok.encode(&g.text)?,
                (false, Some(eos)) => generated.into_iter().filter(|&t| t != eos).collect(),
                (false, None) => generated,
            };
            let r = Reasoning {
                text: g.text,
                tokens,
                finish: g.finish.to_string(),
            };
            let value = serde_json::to_value(&r).expect("reasoning serializes");
            cache.put(&keys[k], &value)?;
            fresh.insert(k, r);
        }
        let done = ((done + 1) * batch.max(1)).min(missing.len());
        tracing::info!("--cot generate: reasoning {done}/{} written", missing.len());
    }
    let get = |k: usize| -> Result<Reasoning> {
        if let Some(r) = fresh.get(&k) {
            return Ok(r.clone());
        }
        let v = cache.get(&keys[k]).ok_or_else(|| {
            TrainError::Input(format!(
                "the reasoning of prompt {k} is missing from {FILE}"
            ))
        })?;
        serde_json::from_value(v.clone())
            .map_err(|e| TrainError::Input(format!("{FILE}: a line is not a reasoning: {e}")))
    };
    let cue = scorer.tok.encode(cue(scorer))?;
    let max = scorer.backbone.max_positions().unwrap_or(usize::MAX);
    let mut full = Vec::with_capacity(ids.len());
    for (k, p) in ids.iter().enumerate() {
        let r = get(first[keys[k].as_str()])?;
        let mut v = p.clone();
        v.extend(&r.tokens);
        v.extend(&cue);
        if v.len() > max {
            return Err(TrainError::Input(format!(
                "--cot generate: prompt {k} with its reasoning is {} tokens, beyond the model's context of {max}; lower --max-new-tokens",
                v.len()
            )));
        }
        full.push(v);
    }
    let reasoning = order.iter().map(|&k| get(k)).collect::<Result<_>>()?;
    Ok((full, reasoning))
}
