//! MovieLens loaders.
//!
//! * ML-1M: `users.dat` (`UserID::Gender::Age::Occupation::Zip`, age as ML-1M's code,
//!   occupation as a code 0-20), `movies.dat` (`MovieID::Title::Genres`, genres joined by
//!   `|`, ISO-8859-1), `ratings.dat` (`UserID::MovieID::Rating::Timestamp`).
//! * ML-100K: `u.user` (`id|age|gender|occupation|zip`, age in years), `u.item` (24 `|`
//!   fields: id, title, release date, video release date, IMDb URL, 19 genre flags in
//!   `u.genre` order; ISO-8859-1), `u.data` (TAB-separated `user item rating timestamp`).
//!   `u.genre`, when present, names the genre flags; otherwise the documented 19 names.
//!
//! Equal timestamps keep file order (ratings carry their file position as a tie-breaker).

use super::{open, RatingLog};
use crate::error::{DataError, Result};
use crate::raw::{Age, DatasetKind, Gender, IdIndex, Item, Rating, RawDataset, User};
use crate::text::{Legacy, TextFile};
use std::collections::BTreeMap;
use std::path::Path;

/// ML-1M's occupation codes, from its README.
pub const ML1M_OCCUPATIONS: [&str; 21] = [
    "other",
    "academic/educator",
    "artist",
    "clerical/admin",
    "college/grad student",
    "customer service",
    "doctor/health care",
    "executive/managerial",
    "farmer",
    "homemaker",
    "K-12 student",
    "lawyer",
    "programmer",
    "retired",
    "sales/marketing",
    "scientist",
    "self-employed",
    "technician/engineer",
    "tradesman/craftsman",
    "unemployed",
    "writer",
];

/// ML-100K's genre names in flag order (u.genre).
pub const ML100K_GENRES: [&str; 19] = [
    "unknown",
    "Action",
    "Adventure",
    "Animation",
    "Children's",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "Film-Noir",
    "Horror",
    "Musical",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Thriller",
    "War",
    "Western",
];

const ML1M_AGE_CODES: [u8; 7] = [1, 18, 25, 35, 45, 50, 56];

fn gender(f: &TextFile, line: usize, s: &str) -> Result<Gender> {
    match s.trim() {
        "M" => Ok(Gender::Male),
        "F" => Ok(Gender::Female),
        _ => Err(f.bad(line, "gender", "M or F", s)),
    }
}

fn rating(
    f: &TextFile,
    line: usize,
    fields: &[&str],
    users: &IdIndex,
    items: &IdIndex,
    seq: usize,
) -> Result<Rating> {
    let unknown = |kind: &str, id: &str| DataError::UnknownId {
        path: f.path.clone(),
        line,
        kind: kind.into(),
        id: id.into(),
    };
    let (u, i) = (fields[0].trim(), fields[1].trim());
    let user = users.get(u).ok_or_else(|| unknown("user", u))?;
    let item = items.get(i).ok_or_else(|| unknown("movie", i))?;
    let value: f32 = f.parse(line, "rating", "a whole number 1-5", fields[2])?;
    if !(1.0..=5.0).contains(&value) || value.fract() != 0.0 {
        return Err(f.bad(line, "rating", "a whole number 1-5", fields[2]));
    }
    let time: i64 = f.parse(line, "timestamp", "seconds since the epoch", fields[3])?;
    Ok(Rating {
        user,
        item,
        value,
        time,
        seq: seq as u32,
    })
}

/// Load ML-1M from `dir` (`users.dat`, `movies.dat`, `ratings.dat`).
pub fn load_ml1m(dir: &Path) -> Result<RawDataset> {
    let mut sources = Vec::new();
    let uf = open(
        dir,
        "users.dat",
        "ML-1M users",
        Legacy::Latin1,
        &mut sources,
    )?;
    let mut users = Vec::new();
    let mut uidx = IdIndex::new();
    for (line, text) in uf.lines() {
        let f = uf.fields(line, text, "::", 5)?;
        let code: u8 = uf.parse(line, "age", "an ML-1M age code (1,18,25,35,45,50,56)", f[2])?;
        if !ML1M_AGE_CODES.contains(&code) {
            return Err(uf.bad(line, "age", "an ML-1M age code (1,18,25,35,45,50,56)", f[2]));
        }
        let occ: usize = uf.parse(line, "occupation", "an occupation code 0-20", f[3])?;
        let occ = ML1M_OCCUPATIONS
            .get(occ)
            .ok_or_else(|| uf.bad(line, "occupation", "an occupation code 0-20", f[3]))?;
        let id = f[0].trim().to_string();
        uidx.insert(&uf, line, &id, users.len())?;
        users.push(User {
            id,
            gender: Some(gender(&uf, line, f[1])?),
            age: Some(Age::Ml1mCode(code)),
            profile: BTreeMap::from([
                ("occupation".to_string(), occ.to_string()),
                ("zip".to_string(), f[4].trim().to_string()),
            ]),
        });
    }
    let mf = open(
        dir,
        "movies.dat",
        "ML-1M movies",
        Legacy::Latin1,
        &mut sources,
    )?;
    let mut items = Vec::new();
    let mut iidx = IdIndex::new();
    for (line, text) in mf.lines() {
        let f = mf.fields(line, text, "::", 3)?;
        let id: u32 = mf.parse(line, "MovieID", "a movie id", f[0])?;
        iidx.insert(&mf, line, &id.to_string(), items.len())?;
        items.push(Item {
            id: id.to_string(),
            title: f[1].trim().to_string(),
            genres: f[2]
                .split('|')
                .filter(|g| !g.is_empty())
                .map(str::to_string)
                .collect(),
        });
    }
    let rf = open(
        dir,
        "ratings.dat",
        "ML-1M ratings",
        Legacy::Latin1,
        &mut sources,
    )?;
    let mut log = RatingLog::default();
    for (seq, (line, text)) in rf.lines().enumerate() {
        let f = rf.fields(line, text, "::", 4)?;
        log.push(&rf, line, rating(&rf, line, &f, &uidx, &iidx, seq)?)?;
    }
    let mut dropped = BTreeMap::new();
    let ratings = log.finish(&mut dropped);
    Ok(RawDataset {
        kind: DatasetKind::Ml1m,
        users,
        items,
        ratings,
        sources,
        dropped,
    })
}

/// Load ML-100K (or the synthetic world) from `dir` (`u.user`, `u.item`, `u.data`,
/// optional `u.genre`).
pub fn load_ml100k(dir: &Path) -> Result<RawDataset> {
    let mut sources = Vec::new();
    let mut genres: Vec<String> = ML100K_GENRES.iter().map(|g| g.to_string()).collect();
    if dir.join("u.genre").exists() {
        let gf = open(
            dir,
            "u.genre",
            "ML-100K genres",
            Legacy::Latin1,
            &mut sources,
        )?;
        let mut named = Vec::new();
        for (line, text) in gf.lines() {
            let f = gf.fields(line, text, "|", 2)?;
            let idx: usize = gf.parse(line, "genre index", "a number", f[1])?;
            if idx != named.len() {
                return Err(gf.bad(line, "genre index", &named.len().to_string(), f[1]));
            }
            named.push(f[0].to_string());
        }
        genres = named;
    }
    let uf = open(dir, "u.user", "ML-100K users", Legacy::Latin1, &mut sources)?;
    let mut users = Vec::new();
    let mut uidx = IdIndex::new();
    for (line, text) in uf.lines() {
        let f = uf.fields(line, text, "|", 5)?;
        let age: u32 = uf.parse(line, "age", "an age in years", f[1])?;
        let id = f[0].trim().to_string();
        uidx.insert(&uf, line, &id, users.len())?;
        users.push(User {
            id,
            gender: Some(gender(&uf, line, f[2])?),
            age: Some(Age::Years(age)),
            profile: BTreeMap::from([
                ("occupation".to_string(), f[3].trim().to_string()),
                ("zip".to_string(), f[4].trim().to_string()),
            ]),
        });
    }
    let itf = open(dir, "u.item", "ML-100K items", Legacy::Latin1, &mut sources)?;
    let mut items = Vec::new();
    let mut iidx = IdIndex::new();
    let n_fields = 5 + genres.len();
    for (line, text) in itf.lines() {
        let f = itf.fields(line, text, "|", n_fields)?;
        let id: u32 = itf.parse(line, "movie id", "a movie id", f[0])?;
        let mut g = Vec::new();
        for (k, flag) in f[5..].iter().enumerate() {
            match flag.trim() {
                "1" => g.push(genres[k].clone()),
                "0" => {}
                other => {
                    return Err(itf.bad(
                        line,
                        &format!("genre flag {}", genres[k]),
                        "0 or 1",
                        other,
                    ))
                }
            }
        }
        iidx.insert(&itf, line, &id.to_string(), items.len())?;
        items.push(Item {
            id: id.to_string(),
            title: f[1].trim().to_string(),
            genres: g,
        });
    }
    let df = open(
        dir,
        "u.data",
        "ML-100K ratings",
        Legacy::Latin1,
        &mut sources,
    )?;
    let mut log = RatingLog::default();
    for (seq, (line, text)) in df.lines().enumerate() {
        let f = df.fields(line, text, "\t", 4)?;
        log.push(&df, line, rating(&df, line, &f, &uidx, &iidx, seq)?)?;
    }
    let mut dropped = BTreeMap::new();
    let ratings = log.finish(&mut dropped);
    Ok(RawDataset {
        kind: DatasetKind::Ml100k,
        users,
        items,
        ratings,
        sources,
        dropped,
    })
}
