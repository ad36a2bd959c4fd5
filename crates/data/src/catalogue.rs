//! A prepared dataset's items by title, and the matching of titles a model wrote (FaiRLLM's
//! lists) to them.
//!
//! **Normalisation** (ours): lowercase; a year in parentheses is kept aside to tell remakes
//! apart; every parenthesised or bracketed part is dropped (`Seven (Se7en) (1995)`); `&`
//! reads `and`; apostrophes are dropped; a leading article and a trailing `, The`-style article are dropped, so
//! `Godfather, The (1972)` and `The Godfather` agree; everything but letters and digits
//! becomes a space, and spaces are collapsed.
//!
//! **Matching** (ours): a written title matches the item with the same normalised form
//! (`exact`); when several items share it, the one with the written year, else the most
//! popular. Otherwise it matches the item whose normalised form is most similar,
//! similarity = 1 - Levenshtein distance / the longer length (in characters), if that is
//! at least the threshold (`fuzzy`); ties go to the more popular item.

use crate::sample::{History, Sample};
use std::collections::{BTreeMap, HashMap};

/// Articles dropped at either end of a title (English, and those MovieLens moves to the
/// end: `Avventura, L' (1960)`; a leading `L'` stays joined to its word).
const ARTICLES: [&str; 13] = [
    "the", "a", "an", "les", "la", "le", "il", "el", "das", "der", "die", "los", "las",
];

/// One item of the catalogue.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub id: String,
    pub title: String,
    /// Samples naming it (as target or in a history): its popularity.
    pub count: usize,
    norm: String,
    year: Option<u16>,
}

/// How a written title was matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MatchKind {
    Exact,
    Fuzzy,
    None,
}

/// A written title's match.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Match {
    pub kind: MatchKind,
    /// The matched item's id and title.
    pub item_id: Option<String>,
    pub title: Option<String>,
    /// Similarity of the normalised forms (1 for an exact match; the best one found when
    /// none was close enough).
    pub similarity: f64,
}

/// The items of a prepared dataset.
#[derive(Debug, Clone, Default)]
pub struct Catalogue {
    entries: Vec<Entry>,
    by_norm: HashMap<String, Vec<usize>>,
}

impl Catalogue {
    /// Every item named in `samples` (targets and histories), with how many samples name it.
    pub fn from_samples<'a>(samples: impl IntoIterator<Item = &'a Sample>) -> Self {
        let mut items: BTreeMap<&str, (&str, usize)> = BTreeMap::new();
        let mut add = |id: &'a str, title: &'a str| items.entry(id).or_insert((title, 0)).1 += 1;
        for s in samples {
            add(&s.target_id, &s.target);
            match &s.history {
                History::Split {
                    history_liked,
                    history_disliked,
                    history_liked_ids,
                    history_disliked_ids,
                } => {
                    for (id, t) in history_liked_ids.iter().zip(history_liked) {
                        add(id, t);
                    }
                    for (id, t) in history_disliked_ids.iter().zip(history_disliked) {
                        add(id, t);
                    }
                }
                History::Sequence {
                    history,
                    history_ids,
                } => {
                    for (id, t) in history_ids.iter().zip(history) {
                        add(id, t);
                    }
                }
            }
        }
        let mut c = Catalogue::default();
        for (id, (title, count)) in items {
            let (norm, year) = normalise(title);
            c.by_norm
                .entry(norm.clone())
                .or_default()
                .push(c.entries.len());
            c.entries.push(Entry {
                id: id.to_string(),
                title: title.to_string(),
                count,
                norm,
                year,
            });
        }
        c
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The `n` most popular items (ties by title).
    pub fn most_popular(&self, n: usize) -> Vec<&Entry> {
        let mut e: Vec<&Entry> = self.entries.iter().collect();
        e.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.title.cmp(&b.title)));
        e.truncate(n);
        e
    }

    /// Match every written title (each distinct normalised form is searched once).
    pub fn match_all(&self, written: &[String], threshold: f64) -> Vec<Match> {
        let mut memo: HashMap<(String, Option<u16>), Match> = HashMap::new();
        written
            .iter()
            .map(|w| {
                let key = normalise(w);
                memo.entry(key)
                    .or_insert_with_key(|(norm, year)| self.find(norm, *year, threshold))
                    .clone()
            })
            .collect()
    }

    fn find(&self, norm: &str, year: Option<u16>, threshold: f64) -> Match {
        let better =
            |a: &Entry, b: &Entry| a.count > b.count || (a.count == b.count && a.title < b.title);
        if let Some(ix) = self.by_norm.get(norm) {
            let mut best = &self.entries[ix[0]];
            for &i in &ix[1..] {
                let e = &self.entries[i];
                let (ey, by) = (
                    e.year == year && year.is_some(),
                    best.year == year && year.is_some(),
                );
                if (ey && !by) || (ey == by && better(e, best)) {
                    best = e;
                }
            }
            return found(MatchKind::Exact, best, 1.0);
        }
        let w: Vec<char> = norm.chars().collect();
        let mut best: Option<(&Entry, f64)> = None;
        for e in &self.entries {
            let c: Vec<char> = e.norm.chars().collect();
            let longer = w.len().max(c.len()).max(1) as f64;
            // The length difference bounds the distance from below.
            let bound = 1.0 - w.len().abs_diff(c.len()) as f64 / longer;
            if best.is_some_and(|(_, s)| bound < s) {
                continue;
            }
            let s = 1.0 - levenshtein(&w, &c) as f64 / longer;
            if best.is_none_or(|(b, bs)| s > bs || (s == bs && better(e, b))) {
                best = Some((e, s));
            }
        }
        match best {
            Some((e, s)) if s >= threshold && !norm.is_empty() => found(MatchKind::Fuzzy, e, s),
            b => Match {
                kind: MatchKind::None,
                item_id: None,
                title: None,
                similarity: b.map_or(0.0, |(_, s)| s),
            },
        }
    }
}

fn found(kind: MatchKind, e: &Entry, similarity: f64) -> Match {
    Match {
        kind,
        item_id: Some(e.id.clone()),
        title: Some(e.title.clone()),
        similarity,
    }
}

/// A title's normalised form and its year, if one is given in parentheses (see the
/// module's docs).
pub fn normalise(title: &str) -> (String, Option<u16>) {
    let mut year = None;
    let mut depth = 0usize;
    let mut inner = String::new();
    let mut kept = String::new();
    for ch in title.chars() {
        match ch {
            '(' | '[' => {
                depth += 1;
                inner.clear();
            }
            ')' | ']' if depth > 0 => {
                depth -= 1;
                let t = inner.trim();
                if t.len() == 4 && t.chars().all(|c| c.is_ascii_digit()) {
                    year = t.parse().ok();
                }
                kept.push(' ');
            }
            _ if depth > 0 => inner.push(ch),
            '&' => kept.push_str(" and "),
            // `Schindler's` and `Schindlers` agree.
            '\'' | '’' => {}
            c if c.is_alphanumeric() => kept.extend(c.to_lowercase()),
            // A trailing ", The" stays recognisable by its comma.
            ',' => kept.push_str(" , "),
            _ => kept.push(' '),
        }
    }
    let mut words: Vec<&str> = kept.split_whitespace().collect();
    if let [.., ",", last] = words.as_slice() {
        if ARTICLES.contains(last) || *last == "l" {
            words.truncate(words.len() - 2);
        }
    }
    if words.len() > 1 && ARTICLES.contains(&words[0]) {
        words.remove(0);
    }
    words.retain(|w| *w != ",");
    (words.join(" "), year)
}

/// Levenshtein distance of two character sequences.
fn levenshtein(a: &[char], b: &[char]) -> usize {
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.iter().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cat(titles: &[(&str, usize)]) -> Catalogue {
        let mut c = Catalogue::default();
        for (i, (t, n)) in titles.iter().enumerate() {
            let (norm, year) = normalise(t);
            c.by_norm.entry(norm.clone()).or_default().push(i);
            c.entries.push(Entry {
                id: i.to_string(),
                title: t.to_string(),
                count: *n,
                norm,
                year,
            });
        }
        c
    }

    #[test]
    fn titles_normalise_across_the_ways_they_are_written() {
        assert_eq!(
            normalise("Godfather, The (1972)"),
            ("godfather".into(), Some(1972))
        );
        assert_eq!(normalise("The Godfather"), ("godfather".into(), None));
        assert_eq!(normalise("Seven (Se7en) (1995)").0, "seven");
        assert_eq!(normalise("Postino, Il (1994)").0, "postino");
        assert_eq!(
            normalise("Monty Python & the Holy Grail").0,
            "monty python and the holy grail"
        );
        assert_eq!(normalise("  \"Star Wars\"  ").0, "star wars");
        assert_eq!(normalise("A").0, "a");
        assert_eq!(normalise("L.A. Confidential (1997)").0, "l a confidential");
    }

    #[test]
    fn exact_matches_prefer_the_written_year_then_popularity_and_fuzzy_ones_need_the_threshold() {
        let c = cat(&[
            ("Sabrina (1954)", 10),
            ("Sabrina (1995)", 50),
            ("Godfather, The (1972)", 400),
            ("Twelve Monkeys (1995)", 300),
        ]);
        let w = |s: &str| vec![s.to_string()];
        assert_eq!(
            c.match_all(&w("Sabrina (1954)"), 0.85)[0]
                .item_id
                .as_deref(),
            Some("0")
        );
        assert_eq!(
            c.match_all(&w("Sabrina"), 0.85)[0].item_id.as_deref(),
            Some("1")
        );
        let g = &c.match_all(&w("The Godfather"), 0.85)[0];
        assert_eq!((g.kind, g.similarity), (MatchKind::Exact, 1.0));
        let f = &c.match_all(&w("12 Monkeys"), 0.5)[0];
        assert_eq!(f.kind, MatchKind::Fuzzy);
        assert_eq!(f.title.as_deref(), Some("Twelve Monkeys (1995)"));
        // "twelve monkeys" vs "12 monkeys": distance 6 over 14 characters.
        assert!((f.similarity - (1.0 - 6.0 / 14.0)).abs() < 1e-12);
        let none = &c.match_all(&w("12 Monkeys"), 0.85)[0];
        assert_eq!(none.kind, MatchKind::None);
        assert!((none.similarity - f.similarity).abs() < 1e-12);
        assert_eq!(c.match_all(&w("Godfathr"), 0.85)[0].kind, MatchKind::Fuzzy);
    }

    #[test]
    fn levenshtein_counts_edits() {
        let l = |a: &str, b: &str| {
            levenshtein(
                &a.chars().collect::<Vec<_>>(),
                &b.chars().collect::<Vec<_>>(),
            )
        };
        assert_eq!(l("kitten", "sitting"), 3);
        assert_eq!(l("", "abc"), 3);
        assert_eq!(l("same", "same"), 0);
    }
}
