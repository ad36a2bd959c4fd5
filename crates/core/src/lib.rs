//! Types shared by every fairrec crate.
//!
//! * [`Variant`]: the canonical name of a prompt variant (`original`, `neutral`,
//!   `age=young,gender=female`, ...). The data crate writes these names, the metrics
//!   crate reads them back; both go through this one parser and printer.
//! * [`Rng`]: a small seeded generator (xoshiro256** seeded through SplitMix64) whose
//!   streams are fixed by this crate, not by a dependency's version, so that a seed
//!   gives the same split, synthetic world and bootstrap on every machine and release.
//! * [`fs`]: crash-safe writes of files and directories.

pub mod fs;
mod rng;
mod variant;

pub use rng::Rng;
pub use variant::{Variant, VariantError};
