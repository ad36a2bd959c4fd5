//! Sushi3 loader (the bug-fixed sushi3-2016 release, item set B with scores).
//!
//! Files: `sushi3.udata` (11 TAB fields; column 1 is the respondent's original id,
//! gender 0 male / 1 female, age code 0-5), `sushi3.idata` (9 TAB fields: id, romanized
//! name, style, major group, ...), `sushi3b.5000.10.score` (one row per user *by line
//! position* in udata, 100 space-separated columns, 0 = most disliked ... 4 = most
//! preferred, -1 = not rated) and, when present, `sushi3b.5000.10.order` (header
//! `100 1`, then `0 10 <ids, most preferred first>`), which is checked to hold the same
//! items as the score row.
//!
//! **Which item is "latest"** (paper A takes the last item as target, but Sushi has no
//! time): the score file gives no order, and the order file's order is the user's own
//! ranking, so taking its last item as target would make almost every label "No". fairrec
//! orders each user's rated items by item id ([`SushiOrder::ItemId`], the score file's
//! column order; the default) or by a seeded per-user shuffle ([`SushiOrder::Shuffled`]).
//!
//! **Scale**: files downloaded before 29 Dec 2015 have the scale inverted (0 = most
//! preferred); `inverted_scale = true` reads such a copy as `4 - x`.

use super::open;
use crate::error::Result;
use crate::raw::{Age, DatasetKind, Gender, IdIndex, Item, Rating, RawDataset, SourceFile, User};
use crate::text::Legacy;
use fairrec_core::Rng;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// How Sushi3 ratings are put in "time" order; see the module docs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SushiOrder {
    /// Ascending item id (the score file's column order).
    #[default]
    ItemId,
    /// A seeded random order per user.
    Shuffled,
}

/// Options of the Sushi3 loader.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SushiOptions {
    #[serde(default)]
    pub order: SushiOrder,
    /// Seed of [`SushiOrder::Shuffled`].
    #[serde(default)]
    pub shuffle_seed: u64,
    /// Read a pre-2016 score file whose scale is inverted.
    #[serde(default)]
    pub inverted_scale: bool,
}

const SCORE_FILE: &str = "sushi3b.5000.10.score";
const ORDER_FILE: &str = "sushi3b.5000.10.order";

/// Load Sushi3 from `dir`.
pub fn load(dir: &Path, opts: &SushiOptions) -> Result<RawDataset> {
    let mut sources = Vec::new();
    let users = load_users(dir, &mut sources)?;
    let items = load_items(dir, &mut sources)?;
    let (ratings, rated) = load_scores(dir, opts, users.len(), items.len(), &mut sources)?;
    if dir.join(ORDER_FILE).exists() {
        check_order_file(dir, &rated, items.len(), &mut sources)?;
    }
    Ok(RawDataset {
        kind: DatasetKind::Sushi3,
        users,
        items,
        ratings,
        sources,
        dropped: BTreeMap::new(),
    })
}

/// `sushi3.udata`: id, gender, age code and the prefectures.
fn load_users(dir: &Path, sources: &mut Vec<SourceFile>) -> Result<Vec<User>> {
    let uf = open(dir, "sushi3.udata", "Sushi3 users", Legacy::Ascii, sources)?;
    let mut users = Vec::new();
    let mut uidx = IdIndex::new();
    for (line, text) in uf.lines() {
        let f = uf.fields(line, text, "\t", 11)?;
        let gender = match f[1].trim() {
            "0" => Gender::Male,
            "1" => Gender::Female,
            other => return Err(uf.bad(line, "gender", "0 (male) or 1 (female)", other)),
        };
        let age: u8 = uf.parse(line, "age", "an age code 0-5", f[2])?;
        if age > 5 {
            return Err(uf.bad(line, "age", "an age code 0-5", f[2]));
        }
        let id = f[0].trim().to_string();
        uidx.insert(&uf, line, &id, users.len())?;
        users.push(User {
            id,
            gender: Some(gender),
            age: Some(Age::SushiCode(age)),
            profile: BTreeMap::from([
                ("prefecture_until_15".to_string(), f[4].trim().to_string()),
                ("prefecture_now".to_string(), f[7].trim().to_string()),
            ]),
        });
    }
    Ok(users)
}

/// `sushi3.idata`: ids are row positions; style and group become the genres.
fn load_items(dir: &Path, sources: &mut Vec<SourceFile>) -> Result<Vec<Item>> {
    let itf = open(dir, "sushi3.idata", "Sushi3 items", Legacy::Ascii, sources)?;
    let mut items = Vec::new();
    for (line, text) in itf.lines() {
        let f = itf.fields(line, text, "\t", 9)?;
        let id: usize = itf.parse(line, "item id", "an item id", f[0])?;
        if id != items.len() {
            return Err(itf.bad(
                line,
                "item id",
                &format!("{} (ids are row positions)", items.len()),
                f[0],
            ));
        }
        let style = if f[2].trim() == "0" {
            "maki"
        } else {
            "other style"
        };
        let group = if f[3].trim() == "0" {
            "seafood"
        } else {
            "other"
        };
        items.push(Item {
            id: id.to_string(),
            title: f[1].trim().replace('_', " "),
            genres: vec![style.to_string(), group.to_string()],
        });
    }
    Ok(items)
}

/// The score matrix (one row per user of `sushi3.udata`, one column per item, -1 = not
/// scored) as ratings in each user's order, and the items each user scored.
fn load_scores(
    dir: &Path,
    opts: &SushiOptions,
    n_users: usize,
    n_items: usize,
    sources: &mut Vec<SourceFile>,
) -> Result<(Vec<Rating>, Vec<BTreeSet<usize>>)> {
    let sf = open(
        dir,
        SCORE_FILE,
        "Sushi3 scores (item set B)",
        Legacy::Ascii,
        sources,
    )?;
    let mut ratings = Vec::new();
    let mut rated: Vec<BTreeSet<usize>> = Vec::new();
    let mut rng = Rng::derive(opts.shuffle_seed, "sushi-order");
    let mut n_rows = 0;
    for (line, text) in sf.lines() {
        let row = n_rows;
        n_rows += 1;
        if row >= n_users {
            return Err(sf.format_err(
                line,
                format!("more score rows than the {} users of sushi3.udata", n_users),
            ));
        }
        let cols: Vec<&str> = text.split_whitespace().collect();
        if cols.len() != n_items {
            return Err(crate::error::DataError::FieldCount {
                path: sf.path.clone(),
                line,
                sep: " ".into(),
                expected: n_items,
                found: cols.len(),
            });
        }
        let mut mine = Vec::new();
        for (item, c) in cols.iter().enumerate() {
            let v: i8 = sf.parse(
                line,
                &format!("score of item {item}"),
                "-1 or a score 0-4",
                c,
            )?;
            match v {
                -1 => {}
                0..=4 => mine.push((item, if opts.inverted_scale { 4 - v } else { v })),
                _ => {
                    return Err(sf.bad(
                        line,
                        &format!("score of item {item}"),
                        "-1 or a score 0-4",
                        c,
                    ))
                }
            }
        }
        let mut order: Vec<usize> = (0..mine.len()).collect();
        if opts.order == SushiOrder::Shuffled {
            rng.shuffle(&mut order);
        }
        for (pos, &k) in order.iter().enumerate() {
            let (item, v) = mine[k];
            ratings.push(Rating {
                user: row as u32,
                item: item as u32,
                value: f32::from(v),
                time: pos as i64,
                seq: ratings.len() as u32,
            });
        }
        rated.push(mine.iter().map(|(i, _)| *i).collect());
    }
    if n_rows != n_users {
        return Err(sf.format_err(
            n_rows + 1,
            format!("{n_rows} score rows for {} users in sushi3.udata", n_users),
        ));
    }
    Ok((ratings, rated))
}

/// The order file must rank exactly the items each user scored.
fn check_order_file(
    dir: &Path,
    rated: &[BTreeSet<usize>],
    n_items: usize,
    sources: &mut Vec<crate::raw::SourceFile>,
) -> Result<()> {
    let of = open(
        dir,
        ORDER_FILE,
        "Sushi3 orders (item set B)",
        Legacy::Ascii,
        sources,
    )?;
    let mut lines = of.lines();
    match lines.next() {
        Some((line, h))
            if h.split_whitespace().collect::<Vec<_>>() != [n_items.to_string().as_str(), "1"] =>
        {
            return Err(of.bad(line, "header", &format!("`{n_items} 1`"), h));
        }
        None => return Err(of.format_err(1, "empty order file")),
        _ => {}
    }
    for (row, (line, text)) in lines.enumerate() {
        let f: Vec<&str> = text.split_whitespace().collect();
        let n: usize = match f.get(1) {
            Some(s) => of.parse(line, "order length", "a number", s)?,
            None => return Err(of.format_err(line, "expected `0 <length> <item ids>`")),
        };
        if f.len() != n + 2 {
            return Err(of.format_err(
                line,
                format!(
                    "order length {n} but {} item ids",
                    f.len().saturating_sub(2)
                ),
            ));
        }
        let mut set = BTreeSet::new();
        for s in &f[2..] {
            set.insert(of.parse::<usize>(line, "item id", "an item id", s)?);
        }
        match rated.get(row) {
            Some(r) if *r == set => {}
            Some(_) => {
                return Err(of.format_err(
                    line,
                    format!("ranks other items than score row {}", row + 1),
                ))
            }
            None => return Err(of.format_err(line, "more order rows than score rows")),
        }
    }
    Ok(())
}

impl std::str::FromStr for SushiOrder {
    type Err = crate::error::DataError;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "item-id" => Ok(SushiOrder::ItemId),
            "shuffled" => Ok(SushiOrder::Shuffled),
            _ => Err(crate::error::DataError::Config {
                option: "sushi-order".into(),
                message: format!("unknown order `{s}` (expected item-id or shuffled)"),
            }),
        }
    }
}
