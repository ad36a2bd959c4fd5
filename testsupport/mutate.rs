//! Byte mutations of valid inputs for the property-based tests of every crate (issue
//! 22), included by each crate's `tests/fuzz.rs` with `#[path]`.

use proptest::prelude::*;

/// One edit of a file's bytes, at a position taken modulo its length.
#[derive(Debug, Clone)]
pub enum Edit {
    Set(usize, u8),
    Insert(usize, u8),
    Delete(usize),
    Truncate(usize),
    /// Repeat the line holding the position (a duplicate record).
    RepeatLine(usize),
    /// A separator or digit where it hurts most.
    Special(usize, u8),
}

pub fn edit() -> impl Strategy<Value = Edit> {
    let special = prop::sample::select(b"|\t,;:\n\r\"-0123456789 \xff\xef".to_vec());
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Edit::Set(i, b)),
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Edit::Insert(i, b)),
        any::<usize>().prop_map(Edit::Delete),
        any::<usize>().prop_map(Edit::Truncate),
        any::<usize>().prop_map(Edit::RepeatLine),
        (any::<usize>(), special).prop_map(|(i, b)| Edit::Special(i, b)),
    ]
}

pub fn apply(bytes: &mut Vec<u8>, e: &Edit) {
    let n = bytes.len();
    let at = |i: usize| if n == 0 { 0 } else { i % n };
    match *e {
        Edit::Set(i, b) | Edit::Special(i, b) if n > 0 => bytes[at(i)] = b,
        Edit::Insert(i, b) => bytes.insert(if n == 0 { 0 } else { i % (n + 1) }, b),
        Edit::Delete(i) if n > 0 => {
            bytes.remove(at(i));
        }
        Edit::Truncate(i) => bytes.truncate(if n == 0 { 0 } else { i % (n + 1) }),
        Edit::RepeatLine(i) if n > 0 => {
            let i = at(i);
            let start = bytes[..i]
                .iter()
                .rposition(|b| *b == b'\n')
                .map_or(0, |p| p + 1);
            let end = bytes[i..]
                .iter()
                .position(|b| *b == b'\n')
                .map_or(n, |p| i + p + 1);
            let line = bytes[start..end].to_vec();
            bytes.splice(end..end, line);
        }
        _ => {}
    }
}

/// `bytes` with `edits` applied in turn.
pub fn mutated(bytes: &[u8], edits: &[Edit]) -> Vec<u8> {
    let mut out = bytes.to_vec();
    for e in edits {
        apply(&mut out, e);
    }
    out
}

/// One to `n - 1` edits.
pub fn edits(n: usize) -> impl Strategy<Value = Vec<Edit>> {
    prop::collection::vec(edit(), 1..n)
}

/// The property tests' configuration: `cases` cases from a fixed seed, so that every run
/// (CI's among them) tries the same inputs, and no regression files are written into the
/// source tree. `FAIRREC_FUZZ_SEED=N` explores another seed.
pub fn config(cases: u32) -> ProptestConfig {
    let seed = std::env::var("FAIRREC_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(22);
    ProptestConfig {
        cases,
        rng_seed: proptest::test_runner::RngSeed::Fixed(seed),
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}
