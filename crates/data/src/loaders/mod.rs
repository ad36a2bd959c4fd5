//! Raw loaders, one per dataset, each reading the original files with their quirks.
//! Every error names the file and the line.

mod bookcrossing;
mod movielens;
mod sushi;

pub use bookcrossing::{split_bx_line, BookCrossingOptions};
pub use movielens::{ML100K_GENRES, ML1M_OCCUPATIONS};
pub use sushi::{SushiOptions, SushiOrder};

use crate::error::Result;
use crate::raw::{DatasetKind, RawDataset, SourceFile};
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
