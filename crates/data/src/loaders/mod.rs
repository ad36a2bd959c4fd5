//! Raw loaders, one per dataset, each reading the original files with their quirks.
//! Every error names the file and the line.

mod bookcrossing;
mod movielens;
mod sushi;

pub use bookcrossing::{split_bx_line, BookCrossingOptions};
pub use movielens::{ML100K_GENRES, ML1M_OCCUPATIONS};
pub use sushi::{SushiOptions, SushiOrder};

use crate::error::{DataError, Result};
use crate::raw::{DatasetKind, Rating, RawDataset, SourceFile};
use crate::text::{read_bytes, Legacy, TextFile};
use std::path::Path;

/// Options of the loaders that have any (defaults are the documented readings).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LoadOptions {
    #[serde(default)]
    pub sushi: SushiOptions,
    #[serde(default)]
    pub book_crossing: BookCrossingOptions,
}

/// Load `kind` from the directory `dir` holding its original files.
pub fn load(kind: DatasetKind, dir: &Path, opts: &LoadOptions) -> Result<RawDataset> {
    match kind {
        DatasetKind::Ml1m => movielens::load_ml1m(dir),
        DatasetKind::Ml100k => movielens::load_ml100k(dir),
        DatasetKind::Sushi3 => sushi::load(dir, &opts.sushi),
        DatasetKind::BookCrossing => bookcrossing::load(dir, &opts.book_crossing),
    }
}

/// Read `dir/name`, record its fingerprint and decode it.
fn open(
    dir: &Path,
    name: &str,
    what: &str,
    legacy: Legacy,
    sources: &mut Vec<SourceFile>,
) -> Result<TextFile> {
    let path = dir.join(name);
    let bytes = read_bytes(&path, what)?;
    sources.push(SourceFile::of(&path, &bytes));
    TextFile::from_bytes(&path, &bytes, legacy)
}

/// The ratings of one file, checked pair by pair: a (user, item) rated again with another
/// value is an error naming both lines (which would the history hold?); rated again with
/// the same value, the copy is left out and counted (`ratings_duplicate`).
#[derive(Default)]
pub(crate) struct RatingLog {
    ratings: Vec<Rating>,
    seen: std::collections::HashMap<(u32, u32), (usize, f32)>,
    duplicates: usize,
}

impl RatingLog {
    /// Add `r`, read at `line` of `f`.
    pub fn push(&mut self, f: &TextFile, line: usize, r: Rating) -> Result<()> {
        match self.seen.get(&(r.user, r.item)) {
            Some(&(first, v)) if v != r.value => Err(DataError::Format {
                path: f.path.clone(),
                line,
                message: format!(
                    "this user rated this item {v} at line {first} and {} here: conflicting duplicate ratings",
                    r.value
                ),
            }),
            Some(_) => {
                self.duplicates += 1;
                Ok(())
            }
            None => {
                self.seen.insert((r.user, r.item), (line, r.value));
                self.ratings.push(r);
                Ok(())
            }
        }
    }

    /// The ratings; the duplicates left out are counted under `ratings_duplicate`.
    pub fn finish(self, dropped: &mut std::collections::BTreeMap<String, usize>) -> Vec<Rating> {
        if self.duplicates > 0 {
            dropped.insert("ratings_duplicate".into(), self.duplicates);
        }
        self.ratings
    }
}
