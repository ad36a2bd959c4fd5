//! The in-memory form every loader produces: users, items and ratings with their
//! dataset-specific raw attributes, plus the fingerprints of the files they came from.

use crate::error::{DataError, Result};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::Path;

/// The datasets fairrec reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DatasetKind {
    /// MovieLens 1M (`users.dat`, `movies.dat`, `ratings.dat`).
    Ml1m,
    /// MovieLens 100K (`u.data`, `u.user`, `u.item`); also the synthetic world's format.
    Ml100k,
    /// Kamishima's SUSHI preference data, item set B with scores (sushi3-2016 release).
    Sushi3,
    /// Book-Crossing (`BX-Users.csv`, `BX-Books.csv`, `BX-Book-Ratings.csv`).
    BookCrossing,
}

impl DatasetKind {
    /// The name used on the command line and in manifests.
    pub fn name(self) -> &'static str {
        match self {
            DatasetKind::Ml1m => "ml-1m",
            DatasetKind::Ml100k => "ml-100k",
            DatasetKind::Sushi3 => "sushi3",
            DatasetKind::BookCrossing => "book-crossing",
        }
    }

    /// Every dataset, in CLI order.
    pub const ALL: [DatasetKind; 4] = [
        DatasetKind::Ml1m,
        DatasetKind::Ml100k,
        DatasetKind::Sushi3,
        DatasetKind::BookCrossing,
    ];

    /// The noun prompts use for an item (`item_type` of paper A's templates).
    pub fn item_type(self) -> &'static str {
        match self {
            DatasetKind::Ml1m | DatasetKind::Ml100k => "movie",
            DatasetKind::Sushi3 => "sushi",
            DatasetKind::BookCrossing => "book",
        }
    }
}

impl std::str::FromStr for DatasetKind {
    type Err = DataError;
    fn from_str(s: &str) -> Result<Self> {
        DatasetKind::ALL
            .into_iter()
            .find(|d| d.name() == s)
            .ok_or_else(|| DataError::Config {
                option: "dataset".into(),
                message: format!(
                    "unknown dataset `{s}` (expected ml-1m, ml-100k, sushi3 or book-crossing)"
                ),
            })
    }
}

/// A user's gender as the datasets record it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gender {
    Male,
    Female,
}

impl Gender {
    /// The word prompts use.
    pub fn word(self) -> &'static str {
        match self {
            Gender::Male => "male",
            Gender::Female => "female",
        }
    }
}

/// A user's age as the dataset records it; protocols turn it into buckets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Age {
    /// Age in years (ML-100K, Book-Crossing, the synthetic world).
    Years(u32),
    /// ML-1M's age code: 1 (<18), 18, 25, 35, 45, 50 (50-55), 56 (56+).
    Ml1mCode(u8),
    /// Sushi3's age code: 0 (15-19), 1 (20-29), 2 (30-39), 3 (40-49), 4 (50-59), 5 (60+).
    SushiCode(u8),
}

/// One user.
#[derive(Debug, Clone)]
pub struct User {
    /// The dataset's own id, as written in its files.
    pub id: String,
    pub gender: Option<Gender>,
    pub age: Option<Age>,
    /// Non-sensitive attributes (occupation, zip code, location, ...).
    pub profile: BTreeMap<String, String>,
}

/// One item.
#[derive(Debug, Clone)]
pub struct Item {
    /// The dataset's own id (movie id, sushi id, ISBN).
    pub id: String,
    /// Title as prompts show it.
    pub title: String,
    pub genres: Vec<String>,
}

/// One rating. `user` and `item` index [`RawDataset::users`] and [`RawDataset::items`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rating {
    pub user: u32,
    pub item: u32,
    pub value: f32,
    /// Time order key: the timestamp where the dataset has one, otherwise the position
    /// that the loader documents (file order for Book-Crossing, see the Sushi3 loader).
    pub time: i64,
    /// Position of the rating in its file (0-based); breaks ties in `time`.
    pub seq: u32,
}

/// A raw input file's fingerprint, recorded in every manifest.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SourceFile {
    /// File name relative to the raw directory.
    pub file: String,
    pub bytes: u64,
    pub sha256: String,
}

impl SourceFile {
    /// Fingerprint of `bytes` read from `path`.
    pub fn of(path: &Path, bytes: &[u8]) -> Self {
        SourceFile {
            file: path
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_default(),
            bytes: bytes.len() as u64,
            sha256: sha256_hex(bytes),
        }
    }
}

/// Lowercase hex SHA-256.
pub fn sha256_hex(bytes: &[u8]) -> String {
    let d = Sha256::digest(bytes);
    d.iter().map(|b| format!("{b:02x}")).collect()
}

/// A whole dataset in memory.
#[derive(Debug, Clone)]
pub struct RawDataset {
    pub kind: DatasetKind,
    pub users: Vec<User>,
    pub items: Vec<Item>,
    pub ratings: Vec<Rating>,
    /// Fingerprints of the files read, in reading order.
    pub sources: Vec<SourceFile>,
    /// What the loader left out, by reason (e.g. `ratings_unknown_isbn`).
    pub dropped: BTreeMap<String, usize>,
}

impl RawDataset {
    /// Ratings grouped by user, each group sorted oldest first by (`time`, `seq`).
    pub fn ratings_by_user(&self) -> Vec<Vec<Rating>> {
        let mut by_user: Vec<Vec<Rating>> = vec![Vec::new(); self.users.len()];
        for r in &self.ratings {
            by_user[r.user as usize].push(*r);
        }
        for rs in &mut by_user {
            rs.sort_by_key(|r| (r.time, r.seq));
        }
        by_user
    }
}

/// Builds an id -> index map and reports duplicate ids with their line.
pub(crate) struct IdIndex {
    map: std::collections::HashMap<String, u32>,
}

impl IdIndex {
    pub fn new() -> Self {
        IdIndex {
            map: Default::default(),
        }
    }

    /// Register `id` as index `idx`; an id seen before is a format error at `line`.
    pub fn insert(
        &mut self,
        file: &crate::text::TextFile,
        line: usize,
        id: &str,
        idx: usize,
    ) -> Result<()> {
        if self.map.insert(id.to_string(), idx as u32).is_some() {
            return Err(file.format_err(line, format!("duplicate id `{id}`")));
        }
        Ok(())
    }

    pub fn get(&self, id: &str) -> Option<u32> {
        self.map.get(id).copied()
    }
}

/// Which paper's protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Protocol {
    /// Paper A (CL-MoE): liked/disliked history, last rating is the target, split 7:1:2.
    ClMoe,
    /// Paper B (MoS): sequences of 11 interactions, split 8:1:1.
    Mos,
}

impl Protocol {
    /// Name on the command line and in manifests.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::ClMoe => "cl-moe",
            Protocol::Mos => "mos",
        }
    }
}

impl std::str::FromStr for Protocol {
    type Err = DataError;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "cl-moe" => Ok(Protocol::ClMoe),
            "mos" => Ok(Protocol::Mos),
            _ => Err(DataError::Config {
                option: "protocol".into(),
                message: format!("unknown protocol `{s}` (expected cl-moe or mos)"),
            }),
        }
    }
}
