//! Types shared by every fairrec crate.
//!
//! * [`Variant`]: the canonical name of a prompt variant (`original`, `neutral`,
//!   `age=young,gender=female`, ...). The data crate writes these names, the metrics
//!   crate reads them back; both go through this one parser and printer.
//! * [`Rng`]: a small seeded generator (xoshiro256** seeded through SplitMix64) whose
//!   streams are fixed by this crate, not by a dependency's version, so that a seed
//!   gives the same split, synthetic world and bootstrap on every machine and release.
//! * [`fs`]: crash-safe writes of files and directories, one writer per directory.
//! * [`stage`]: a set of output files that lands in a directory as one.

mod atomic;
pub mod cache;
pub mod fs;
mod rng;
pub mod stage;
mod variant;

pub use rng::Rng;

/// 64-bit FNV-1a of `bytes`: a stable fingerprint (not a cryptographic hash) for
/// configurations, identical on every machine and release.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}
pub use variant::{Variant, VariantError};
